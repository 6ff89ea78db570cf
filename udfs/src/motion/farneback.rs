//! Farneback dense optical flow with the method's fixed parameters.
//!
//! Each frame is expanded once into a pyramid of quadratic polynomial coefficients
//! ([`FlowPyramid`]); a frame pair then only needs the displacement estimation
//! ([`flow_magnitude_mean`]). Reusing a frame's expansion for both pairs it belongs to
//! halves the work compared with computing the flow pair by pair.
//!
//! The arithmetic follows OpenCV's `calcOpticalFlowFarneback` (pyr_scale 0.5, levels 2,
//! winsize 15, iterations 2, poly_n 5, poly_sigma 1.1, flags 0), which computed the
//! reference descriptors: the same pyramid (float Gaussian blur then bilinear resize,
//! 3 levels for 224x224), replicated borders in the expansion and the box filter, the
//! border damping of the matrices, the 1e-3 regulariser, and float vs double where it
//! matters. Written from the algorithm (Farneback 2003) and those facts.

use super::imgops::{Plane, gaussian_kernel, gaussian_blur_f32, resize_linear_f32};

/// Pyramid scale between levels.
pub const PYR_SCALE: f64 = 0.5;
/// Requested pyramid levels (OpenCV stops earlier when a level would be under 32 px).
pub const LEVELS: usize = 2;
/// Box-filter window of the displacement estimate.
pub const WINSIZE: usize = 15;
/// Displacement updates per level.
pub const ITERATIONS: usize = 2;
/// Neighbourhood half-size of the polynomial expansion.
pub const POLY_N: usize = 5;
/// Gaussian sigma of the polynomial expansion's applicability.
pub const POLY_SIGMA: f64 = 1.1;
const MIN_SIZE: f64 = 32.0;

/// Polynomial coefficients of one level: 5 floats per pixel
/// (linear y, linear x, quadratic yy, quadratic xx, mixed xy).
#[derive(Debug, Clone)]
pub struct PolyLevel {
    pub width: usize,
    pub height: usize,
    pub coef: Vec<f32>,
}

/// One frame's polynomial expansion at every pyramid level, coarsest first.
#[derive(Debug, Clone)]
pub struct FlowPyramid {
    pub levels: Vec<PolyLevel>,
}

struct ExpansionKernel {
    g: Vec<f32>,
    xg: Vec<f32>,
    xxg: Vec<f32>,
    ig11: f64,
    ig03: f64,
    ig33: f64,
    ig55: f64,
}

impl ExpansionKernel {
    /// Gaussian applicability and the entries of the inverse normal-equation matrix the
    /// least-squares fit of `1, x, y, x^2, y^2, xy` needs (the matrix is block sparse,
    /// so the 3x3 block of `1, x^2, y^2` is inverted in closed form).
    fn new(n: usize, sigma: f64) -> Self {
        let ni = n as i64;
        let raw: Vec<f32> = (-ni..=ni).map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
        let s: f64 = 1.0 / raw.iter().map(|&v| v as f64).sum::<f64>();
        let g: Vec<f32> = raw.iter().map(|&v| (v as f64 * s) as f32).collect();
        let xg: Vec<f32> = (-ni..=ni).zip(&g).map(|(x, &v)| x as f32 * v).collect();
        let xxg: Vec<f32> = (-ni..=ni).zip(&g).map(|(x, &v)| (x * x) as f32 * v).collect();
        let (mut g00, mut g11, mut g33, mut g55) = (0f64, 0f64, 0f64, 0f64);
        for y in -ni..=ni {
            for x in -ni..=ni {
                let p = g[(y + ni) as usize] * g[(x + ni) as usize];
                let (xf, yf) = (x as f32, y as f32);
                g00 += p as f64;
                g11 += (p * xf * xf) as f64;
                g33 += (p * xf * xf * xf * xf) as f64;
                g55 += (p * xf * xf * yf * yf) as f64;
            }
        }
        // Block [[g00, g11, g11], [g11, g33, g55], [g11, g55, g33]] of (1, x^2, y^2).
        let a = [[g00, g11, g11], [g11, g33, g55], [g11, g55, g33]];
        let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
        let inv01 = -(a[0][1] * a[2][2] - a[0][2] * a[2][1]) / det;
        let inv11 = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det;
        Self { g, xg, xxg, ig11: 1.0 / g11, ig03: inv01, ig33: inv11, ig55: 1.0 / g55 }
    }
}

/// Polynomial expansion of a float plane (replicated borders).
///
/// Separable: a vertical pass gives three planar rows (even, odd and squared moments),
/// then a horizontal pass accumulates the six sums in double, as OpenCV does. Both
/// passes run with `x` innermost over planar arrays so that the compiler vectorises
/// them; the per-pixel operation order is OpenCV's, so the result does not change.
#[inline(always)]
fn poly_expand(src: &[f32], width: usize, height: usize, k: &ExpansionKernel) -> Vec<f32> {
    let n = POLY_N;
    let mut out = vec![0f32; width * height * 5];
    let padded = width + 2 * n;
    let mut rows = [vec![0f32; padded], vec![0f32; padded], vec![0f32; padded]];
    let mut b = [(); 6].map(|_| vec![0f64; width]);
    for y in 0..height {
        let s0 = &src[y * width..(y + 1) * width];
        {
            let [r0, r1, r2] = &mut rows;
            let (r0, r1, r2) = (&mut r0[n..n + width], &mut r1[n..n + width], &mut r2[n..n + width]);
            let g0 = k.g[n];
            for x in 0..width {
                r0[x] = s0[x] * g0;
            }
            r1.fill(0.0);
            r2.fill(0.0);
            for kk in 1..=n {
                let (g0, g1, g2) = (k.g[n + kk], k.xg[n + kk], k.xxg[n + kk]);
                let up = &src[y.saturating_sub(kk) * width..][..width];
                let dn = &src[(y + kk).min(height - 1) * width..][..width];
                for x in 0..width {
                    let p = up[x] + dn[x];
                    r0[x] += g0 * p;
                    r1[x] += g1 * (dn[x] - up[x]);
                    r2[x] += g2 * p;
                }
            }
        }
        for r in &mut rows {
            let (left, right) = (r[n], r[n + width - 1]);
            r[..n].fill(left);
            r[n + width..].fill(right);
        }
        let [r0, r1, r2] = &rows;
        let [b1, b2, b3, b4, b5, b6] = &mut b;
        let g0 = k.g[n];
        for x in 0..width {
            b1[x] = (r0[x + n] * g0) as f64;
            b3[x] = (r1[x + n] * g0) as f64;
            b5[x] = (r2[x + n] * g0) as f64;
        }
        b2.fill(0.0);
        b4.fill(0.0);
        b6.fill(0.0);
        for kk in 1..=n {
            let (gk, xgk, xxgk) = (k.g[n + kk], k.xg[n + kk], k.xxg[n + kk]);
            let (r0r, r0l) = (&r0[n + kk..n + kk + width], &r0[n - kk..n - kk + width]);
            let (r1r, r1l) = (&r1[n + kk..n + kk + width], &r1[n - kk..n - kk + width]);
            let (r2r, r2l) = (&r2[n + kk..n + kk + width], &r2[n - kk..n - kk + width]);
            for x in 0..width {
                let tg = (r0r[x] + r0l[x]) as f64;
                b1[x] += tg * gk as f64;
                b4[x] += tg * xxgk as f64;
                b2[x] += ((r0r[x] - r0l[x]) * xgk) as f64;
                b3[x] += ((r1r[x] + r1l[x]) * gk) as f64;
                b6[x] += ((r1r[x] - r1l[x]) * xgk) as f64;
                b5[x] += ((r2r[x] + r2l[x]) * gk) as f64;
            }
        }
        let orow = &mut out[y * width * 5..(y + 1) * width * 5];
        for (x, o) in orow.chunks_exact_mut(5).enumerate() {
            o[0] = (b3[x] * k.ig11) as f32;
            o[1] = (b2[x] * k.ig11) as f32;
            o[2] = (b1[x] * k.ig03 + b5[x] * k.ig33) as f32;
            o[3] = (b1[x] * k.ig03 + b4[x] * k.ig33) as f32;
            o[4] = (b6[x] * k.ig55) as f32;
        }
    }
    out
}

/// Level sizes and their smoothing, finest last: (scale, width, height, blur kernel).
fn level_plan(width: usize, height: usize) -> Vec<(usize, usize, Vec<f32>)> {
    let mut levels = 0;
    let mut scale = 1.0;
    while levels < LEVELS {
        scale *= PYR_SCALE;
        if width as f64 * scale < MIN_SIZE || height as f64 * scale < MIN_SIZE {
            break;
        }
        levels += 1;
    }
    (0..=levels)
        .rev()
        .map(|k| {
            let scale = PYR_SCALE.powi(k as i32);
            let sigma = (1.0 / scale - 1.0) * 0.5;
            let ksize = (((sigma * 5.0).round_ties_even() as i64) | 1).max(3) as usize;
            let w = (width as f64 * scale).round_ties_even() as usize;
            let h = (height as f64 * scale).round_ties_even() as usize;
            (w, h, gaussian_kernel(ksize, sigma))
        })
        .collect()
}

/// Runs the kernel compiled for AVX2 when the CPU has it, else for baseline x86-64.
/// The hot loops are written so the compiler vectorises them; with AVX2 they run 8
/// floats (4 doubles) wide instead of 4 (2). Rust never fuses a multiply and an add on
/// its own, so each element sees the same operations either way: bit-identical results.
macro_rules! avx2_dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $body:ident, $fast:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU was just checked to support AVX2.
                return unsafe { $fast($($arg),*) };
            }
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $fast($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
    };
}

impl FlowPyramid {
    /// Expand an 8-bit gray frame at every level.
    pub fn new(gray: &Plane<u8>) -> Self {
        expand(gray)
    }
}

avx2_dispatch! {
    fn expand(gray: &Plane<u8>) -> FlowPyramid => expand_frame, expand_frame_avx2
}

// The kernels below are `inline(always)` so that they are compiled into each variant
// of the dispatch above.
#[inline(always)]
fn expand_frame(gray: &Plane<u8>) -> FlowPyramid {
    let kernel = ExpansionKernel::new(POLY_N, POLY_SIGMA);
    let f = Plane { width: gray.width, height: gray.height, data: gray.data.iter().map(|&v| v as f32).collect() };
    // A plain loop, not `map(..).collect()`: the iterator's generic `try_fold` is its
    // own function, which does not get the AVX2 of `expand_frame_avx2` (the profile
    // showed the expansion there, outside the AVX2 function).
    let plan = level_plan(gray.width, gray.height);
    let mut levels = Vec::with_capacity(plan.len());
    for (w, h, blur) in plan {
        let smooth = gaussian_blur_f32(&f, &blur);
        let img = resize_linear_f32(&smooth.data, f.width, f.height, 1, w, h);
        levels.push(PolyLevel { width: w, height: h, coef: poly_expand(&img, w, h, &kernel) });
    }
    FlowPyramid { levels }
}

const BORDER: usize = 5;
const BORDER_WEIGHT: [f32; BORDER] = [0.14, 0.14, 0.4472, 0.4472, 0.4472];

/// Border damping of one axis: OpenCV's weights on the five outermost pixels, 1 inside.
fn border_weights(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (if i < BORDER { BORDER_WEIGHT[i] } else { 1.0 })
                * (if i + BORDER >= len { BORDER_WEIGHT[len - i - 1] } else { 1.0 })
        })
        .collect()
}

/// `floor` as an integer without a libm call (no SSE4.1 `roundps` on baseline x86-64);
/// equal to `v.floor() as i32` for every finite `v` in range, 0 for NaN.
#[inline(always)]
fn floor_i32(v: f32) -> i32 {
    let t = v as i32;
    t - ((t as f32) > v) as i32
}

/// Per-pixel normal equations (G11, G12, G22, h1, h2) of the displacement update,
/// from the two expansions and the current flow.
#[inline(always)]
fn update_matrices(r0: &PolyLevel, r1: &PolyLevel, flow: &[f32], m: &mut [f32]) {
    let (w, h) = (r0.width, r0.height);
    let c1 = &r1.coef;
    let s = w * 5;
    let (col_w, row_w) = (border_weights(w), border_weights(h));
    for y in 0..h {
        let frow = &flow[y * w * 2..(y + 1) * w * 2];
        let prow = &r0.coef[y * s..(y + 1) * s];
        let mrow = &mut m[y * s..(y + 1) * s];
        let wy = row_w[y];
        for x in 0..w {
            let (dx, dy) = (frow[x * 2], frow[x * 2 + 1]);
            let mut fx = x as f32 + dx;
            let mut fy = y as f32 + dy;
            let x1 = floor_i32(fx);
            let y1 = floor_i32(fy);
            fx -= x1 as f32;
            fy -= y1 as f32;
            let p0: &[f32; 5] = prow[x * 5..x * 5 + 5].try_into().expect("5 coefficients");
            let (mut r2, mut r3, r4, r5, r6);
            if (x1 as u32) < (w - 1) as u32 && (y1 as u32) < (h - 1) as u32 {
                let a00 = (1.0 - fx) * (1.0 - fy);
                let a01 = fx * (1.0 - fy);
                let a10 = (1.0 - fx) * fy;
                let a11 = fx * fy;
                let b = (y1 as usize * w + x1 as usize) * 5;
                let q0: &[f32; 10] = c1[b..b + 10].try_into().expect("two pixels");
                let q1: &[f32; 10] = c1[b + s..b + s + 10].try_into().expect("two pixels");
                let mut v = [0f32; 5];
                for c in 0..5 {
                    v[c] = a00 * q0[c] + a01 * q0[c + 5] + a10 * q1[c] + a11 * q1[c + 5];
                }
                r2 = v[0];
                r3 = v[1];
                r4 = (p0[2] + v[2]) * 0.5;
                r5 = (p0[3] + v[3]) * 0.5;
                r6 = (p0[4] + v[4]) * 0.25;
            } else {
                // Displaced outside the next frame: no observation, keep frame 0's shape.
                r2 = 0.0;
                r3 = 0.0;
                r4 = p0[2];
                r5 = p0[3];
                r6 = p0[4] * 0.5;
            }
            r2 = (p0[0] - r2) * 0.5;
            r3 = (p0[1] - r3) * 0.5;
            r2 += r4 * dy + r6 * dx;
            r3 += r6 * dy + r5 * dx;
            // Damp the equations near the image border, where the expansion is poor
            // (the weight is exactly 1 inside, so multiplying everywhere changes nothing).
            let scale = col_w[x] * wy;
            let (r2, r3, r4, r5, r6) = (r2 * scale, r3 * scale, r4 * scale, r5 * scale, r6 * scale);
            let o = &mut mrow[x * 5..x * 5 + 5];
            o[0] = r4 * r4 + r6 * r6;
            o[1] = (r4 + r5) * r6;
            o[2] = r5 * r5 + r6 * r6;
            o[3] = r4 * r2 + r6 * r3;
            o[4] = r6 * r2 + r5 * r3;
        }
    }
}

/// Box-filter the equations over the window (replicated borders, double sums) and
/// solve the 2x2 system per pixel for the new flow.
#[inline(always)]
fn update_flow_box(m: &[f32], flow: &mut [f32], w: usize, h: usize) {
    let r = WINSIZE / 2;
    let scale = 1.0 / (WINSIZE * WINSIZE) as f64;
    // Vertical running sums per column and channel, with r + 1 replicated columns on
    // the left and r on the right so the horizontal window needs no clamping.
    let (left, right) = (r + 1, r);
    let mut padded = vec![0f64; (w + left + right) * 5];
    let row = |y: i64| -> &[f32] {
        let y = y.clamp(0, h as i64 - 1) as usize;
        &m[y * w * 5..(y + 1) * w * 5]
    };
    {
        let vsum = &mut padded[left * 5..(left + w) * 5];
        for k in -(r as i64)..=(r as i64) {
            for (v, &s) in vsum.iter_mut().zip(row(k)) {
                *v += s as f64;
            }
        }
    }
    for y in 0..h {
        if y > 0 {
            let add = row(y as i64 + r as i64);
            let sub = row(y as i64 - r as i64 - 1);
            let vsum = &mut padded[left * 5..(left + w) * 5];
            for ((v, &a), &s) in vsum.iter_mut().zip(add).zip(sub) {
                *v += a as f64 - s as f64;
            }
        }
        for i in 0..left {
            padded.copy_within(left * 5..left * 5 + 5, i * 5);
        }
        for i in 0..right {
            let last = (left + w - 1) * 5;
            padded.copy_within(last..last + 5, (left + w + i) * 5);
        }
        // col(x) = padded[(x + left) * 5..]
        let mut hs = [0f64; 5];
        for j in (left - r)..=(left + r) {
            for c in 0..5 {
                hs[c] += padded[j * 5 + c];
            }
        }
        let frow = &mut flow[y * w * 2..(y + 1) * w * 2];
        for x in 0..w {
            if x > 0 {
                let (a, s) = ((x + left + r) * 5, (x + left - r - 1) * 5);
                for c in 0..5 {
                    hs[c] += padded[a + c] - padded[s + c];
                }
            }
            let g11 = hs[0] * scale;
            let g12 = hs[1] * scale;
            let g22 = hs[2] * scale;
            let h1 = hs[3] * scale;
            let h2 = hs[4] * scale;
            let idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
            frow[x * 2] = ((g11 * h2 - g12 * h1) * idet) as f32;
            frow[x * 2 + 1] = ((g22 * h1 - g12 * h2) * idet) as f32;
        }
    }
}

avx2_dispatch! {
    /// Dense flow from `prev` to `next` (interleaved dx, dy per pixel at the finest level).
    pub fn flow(prev: &FlowPyramid, next: &FlowPyramid) -> Vec<f32> => solve_flow, solve_flow_avx2
}

#[inline(always)]
fn solve_flow(prev: &FlowPyramid, next: &FlowPyramid) -> Vec<f32> {
    let mut flow: Vec<f32> = Vec::new();
    let mut prev_size = (0usize, 0usize);
    for (r0, r1) in prev.levels.iter().zip(&next.levels) {
        let (w, h) = (r0.width, r0.height);
        flow = if flow.is_empty() {
            vec![0f32; w * h * 2]
        } else {
            let mut f = resize_linear_f32(&flow, prev_size.0, prev_size.1, 2, w, h);
            let s = (1.0 / PYR_SCALE) as f32;
            f.iter_mut().for_each(|v| *v *= s);
            f
        };
        let mut m = vec![0f32; w * h * 5];
        update_matrices(r0, r1, &flow, &mut m);
        for it in 0..ITERATIONS {
            update_flow_box(&m, &mut flow, w, h);
            if it + 1 < ITERATIONS {
                update_matrices(r0, r1, &flow, &mut m);
            }
        }
        prev_size = (w, h);
    }
    flow
}

/// Mean per-pixel flow magnitude sqrt(u^2+v^2) from `prev` to `next`.
pub fn flow_magnitude_mean(prev: &FlowPyramid, next: &FlowPyramid) -> f64 {
    let f = flow(prev, next);
    let n = f.len() / 2;
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = f.chunks_exact(2).map(|p| ((p[0] * p[0] + p[1] * p[1]) as f64).sqrt()).sum();
    sum / n as f64
}
