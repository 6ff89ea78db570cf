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
//!
//! Speed, without changing a bit of the result (a test compares the paths): the
//! coefficients and the normal equations are stored row-planar, the displacement
//! update runs 8 pixels at a time with AVX2 where the CPU has it (`matrices_x8`),
//! and every large buffer is recycled ([`Buf`]).

// AVX2 intrinsics, each call behind a CPU feature check (see the SAFETY notes).
#![allow(unsafe_code)]

use super::imgops::{Plane, gaussian_blur_f32, gaussian_kernel, resize_linear_f32};
use super::scratch::Buf;

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

/// Polynomial coefficients of one level: 5 per pixel (linear y, linear x, quadratic yy,
/// quadratic xx, mixed xy), row-planar: row `y` holds its 5 coefficient rows one after
/// another, coefficient `c` of pixel `x` at `y * 5 * width + c * width + x`, so that the
/// displacement update reads 8 neighbouring pixels' coefficient in one load.
#[derive(Debug, Clone)]
pub struct PolyLevel {
    pub width: usize,
    pub height: usize,
    pub coef: Buf,
}

/// One frame's polynomial expansion at every pyramid level, coarsest first.
#[derive(Debug, Clone)]
pub struct FlowPyramid {
    pub levels: Vec<PolyLevel>,
}

pub(super) struct ExpansionKernel {
    pub(super) g: Vec<f32>,
    pub(super) xg: Vec<f32>,
    pub(super) xxg: Vec<f32>,
    pub(super) ig11: f64,
    pub(super) ig03: f64,
    pub(super) ig33: f64,
    pub(super) ig55: f64,
}

impl ExpansionKernel {
    /// Gaussian applicability and the entries of the inverse normal-equation matrix the
    /// least-squares fit of `1, x, y, x^2, y^2, xy` needs (the matrix is block sparse,
    /// so the 3x3 block of `1, x^2, y^2` is inverted in closed form).
    pub(super) fn new(n: usize, sigma: f64) -> Self {
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
fn poly_expand(src: &[f32], width: usize, height: usize, k: &ExpansionKernel) -> Buf {
    let n = POLY_N;
    let mut out = Buf::uninit(width * height * 5);
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
        let (o0, rest) = orow.split_at_mut(width);
        let (o1, rest) = rest.split_at_mut(width);
        let (o2, rest) = rest.split_at_mut(width);
        let (o3, o4) = rest.split_at_mut(width);
        for x in 0..width {
            o0[x] = (b3[x] * k.ig11) as f32;
            o1[x] = (b2[x] * k.ig11) as f32;
            o2[x] = (b1[x] * k.ig03 + b5[x] * k.ig33) as f32;
            o3[x] = (b1[x] * k.ig03 + b4[x] * k.ig33) as f32;
            o4[x] = (b6[x] * k.ig55) as f32;
        }
    }
    out
}

/// Level sizes and their smoothing, finest last: (scale, width, height, blur kernel).
pub(super) fn level_plan(width: usize, height: usize) -> Vec<(usize, usize, Vec<f32>)> {
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

impl FlowPyramid {
    /// Expand an 8-bit gray frame at every level.
    pub fn new(gray: &Plane<u8>) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { expand_frame_avx2(gray) };
        }
        expand_frame(gray)
    }
}

/// [`expand_frame`] compiled for AVX2: its loops are written so that the compiler
/// vectorises them, 8 floats (4 doubles) wide here instead of 4 (2). Rust never fuses
/// a multiply and an add on its own, so each element sees the same operations either
/// way: bit-identical results. [`flow`] dispatches the same way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn expand_frame_avx2(gray: &Plane<u8>) -> FlowPyramid {
    expand_frame(gray)
}

// The kernels below are `inline(always)` so that they are compiled into both the
// baseline and the AVX2 variant.
#[inline(always)]
fn expand_frame(gray: &Plane<u8>) -> FlowPyramid {
    let kernel = ExpansionKernel::new(POLY_N, POLY_SIGMA);
    let mut f = Buf::uninit(gray.data.len());
    for (o, &v) in f.iter_mut().zip(&gray.data) {
        *o = v as f32;
    }
    // A plain loop, not `map(..).collect()`: the iterator's generic `try_fold` is its
    // own function, which does not get the AVX2 of `expand_frame_avx2` (the profile
    // showed the expansion there, outside the AVX2 function).
    let plan = level_plan(gray.width, gray.height);
    let mut levels = Vec::with_capacity(plan.len());
    for (w, h, blur) in plan {
        let smooth = gaussian_blur_f32(&f, gray.width, gray.height, &blur);
        let img = resize_linear_f32(&smooth, gray.width, gray.height, 1, w, h);
        levels.push(PolyLevel { width: w, height: h, coef: poly_expand(&img, w, h, &kernel) });
    }
    FlowPyramid { levels }
}

const BORDER: usize = 5;
const BORDER_WEIGHT: [f32; BORDER] = [0.14, 0.14, 0.4472, 0.4472, 0.4472];

/// Border damping of one axis: OpenCV's weights on the five outermost pixels, 1 inside.
pub(super) fn border_weights(len: usize) -> Vec<f32> {
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

/// One level's inputs to the normal equations, and their row-planar geometry.
struct MatrixInputs<'a> {
    r0: &'a [f32],
    r1: &'a [f32],
    flow: &'a [f32],
    w: usize,
    h: usize,
    col_w: &'a [f32],
}

/// Normal equations (G11, G12, G22, h1, h2) of the displacement update at pixel
/// `(x, y)`, written to `mrow[c * w + x]`, with the row's border weight `wy`.
#[inline(always)]
fn matrices_at(inp: &MatrixInputs, x: usize, y: usize, wy: f32, mrow: &mut [f32]) {
    let (w, h) = (inp.w, inp.h);
    let s = w * 5;
    let prow = &inp.r0[y * s..(y + 1) * s];
    let p0 = |c: usize| prow[c * w + x];
    let (dx, dy) = (inp.flow[(y * w + x) * 2], inp.flow[(y * w + x) * 2 + 1]);
    let mut fx = x as f32 + dx;
    let mut fy = y as f32 + dy;
    let x1 = floor_i32(fx);
    let y1 = floor_i32(fy);
    fx -= x1 as f32;
    fy -= y1 as f32;
    let (mut r2, mut r3, r4, r5, r6);
    if (x1 as u32) < (w - 1) as u32 && (y1 as u32) < (h - 1) as u32 {
        let a00 = (1.0 - fx) * (1.0 - fy);
        let a01 = fx * (1.0 - fy);
        let a10 = (1.0 - fx) * fy;
        let a11 = fx * fy;
        let b = y1 as usize * s + x1 as usize;
        let c1 = inp.r1;
        let v = |c: usize| {
            let q = b + c * w;
            a00 * c1[q] + a01 * c1[q + 1] + a10 * c1[q + s] + a11 * c1[q + s + 1]
        };
        r2 = v(0);
        r3 = v(1);
        r4 = (p0(2) + v(2)) * 0.5;
        r5 = (p0(3) + v(3)) * 0.5;
        r6 = (p0(4) + v(4)) * 0.25;
    } else {
        // Displaced outside the next frame: no observation, keep frame 0's shape.
        r2 = 0.0;
        r3 = 0.0;
        r4 = p0(2);
        r5 = p0(3);
        r6 = p0(4) * 0.5;
    }
    r2 = (p0(0) - r2) * 0.5;
    r3 = (p0(1) - r3) * 0.5;
    r2 += r4 * dy + r6 * dx;
    r3 += r6 * dy + r5 * dx;
    // Damp the equations near the image border, where the expansion is poor
    // (the weight is exactly 1 inside, so multiplying everywhere changes nothing).
    let scale = inp.col_w[x] * wy;
    let (r2, r3, r4, r5, r6) = (r2 * scale, r3 * scale, r4 * scale, r5 * scale, r6 * scale);
    mrow[x] = r4 * r4 + r6 * r6;
    mrow[w + x] = (r4 + r5) * r6;
    mrow[2 * w + x] = r5 * r5 + r6 * r6;
    mrow[3 * w + x] = r4 * r2 + r6 * r3;
    mrow[4 * w + x] = r6 * r2 + r5 * r3;
}

/// [`matrices_at`] for the pixels `x0..x0 + 8` of row `y`, 8 lanes wide. Every lane does the scalar code's operations in the same order, without fused
/// multiply-adds, so the results are bit-identical (a unit test compares them).
///
/// The caller guarantees `x0 + 8 <= w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matrices_x8(inp: &MatrixInputs, x0: usize, y: usize, wy: f32, mrow: &mut [f32]) {
    use std::arch::x86_64::*;
    let (w, h) = (inp.w, inp.h);
    let s = w * 5;
    assert!(x0 + 8 <= w && y < h && inp.r0.len() >= h * s && inp.r1.len() >= h * s && mrow.len() >= s);
    assert!(inp.flow.len() >= h * w * 2 && inp.col_w.len() >= w && h * s < i32::MAX as usize);
    let prow = &inp.r0[y * s..(y + 1) * s];
    let fl = &inp.flow[(y * w + x0) * 2..(y * w + x0 + 8) * 2];
    let load = |v: &[f32]| -> __m256 {
        let v: &[f32; 8] = v[..8].try_into().expect("8 floats");
        // SAFETY: `v` is 8 initialised floats; unaligned load.
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    };
    let p0 = |c: usize| load(&prow[c * w + x0..]);
    // Interleaved (dx, dy) pairs -> a dx and a dy vector in pixel order.
    let (f0, f1) = (load(&fl[..8]), load(&fl[8..]));
    let dx = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(_mm256_shuffle_ps::<
        0b10_00_10_00,
    >(f0, f1))));
    let dy = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(_mm256_shuffle_ps::<
        0b11_01_11_01,
    >(f0, f1))));
    let xs = _mm256_add_ps(_mm256_set1_ps(x0 as f32), _mm256_setr_ps(0., 1., 2., 3., 4., 5., 6., 7.));
    let mut fx = _mm256_add_ps(xs, dx);
    let mut fy = _mm256_add_ps(_mm256_set1_ps(y as f32), dy);
    // floor_i32: truncate, then step down where truncation went up. Out-of-range values
    // truncate to i32::MIN here (saturate in the scalar code): out of bounds either way.
    let floor = |v: __m256| {
        let t = _mm256_cvttps_epi32(v);
        _mm256_add_epi32(t, _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_cvtepi32_ps(t), v)))
    };
    let (x1, y1) = (floor(fx), floor(fy));
    fx = _mm256_sub_ps(fx, _mm256_cvtepi32_ps(x1));
    fy = _mm256_sub_ps(fy, _mm256_cvtepi32_ps(y1));
    let inside = |v: __m256i, n: usize| {
        _mm256_and_si256(
            _mm256_cmpgt_epi32(v, _mm256_set1_epi32(-1)),
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32 - 1), v),
        )
    };
    let mask = _mm256_and_si256(inside(x1, w), inside(y1, h));
    let one = _mm256_set1_ps(1.0);
    let a00 = _mm256_mul_ps(_mm256_sub_ps(one, fx), _mm256_sub_ps(one, fy));
    let a01 = _mm256_mul_ps(fx, _mm256_sub_ps(one, fy));
    let a10 = _mm256_mul_ps(_mm256_sub_ps(one, fx), fy);
    let a11 = _mm256_mul_ps(fx, fy);
    // Top-left sample index per lane; lanes outside the frame read pixel 0 instead
    // (always in bounds) and their values are discarded by the blends below.
    let idx = _mm256_and_si256(_mm256_add_epi32(_mm256_mullo_epi32(y1, _mm256_set1_epi32(s as i32)), x1), mask);
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 8 writable i32; unaligned store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), idx) };
    let c1 = inp.r1;
    // Each lane's two horizontally adjacent samples are one 8-byte load (the
    // coefficients are row-planar); four lanes' pairs make a vector that is then split
    // into the left and the right samples. AVX2 gathers did the same 2x slower here.
    let pairs = |off: usize| -> (__m256, __m256) {
        // SAFETY: a lane index is 0 or `y1 * s + x1` with 0 <= x1 < w - 1 and
        // 0 <= y1 < h - 1, and `off <= 4w + s`, so both floats read lie below `h * s`,
        // which the assertion above bounds by `r1.len()`.
        let pair = |i: usize| unsafe { c1.as_ptr().add(lanes[i] as usize + off).cast::<i64>().read_unaligned() };
        let lo = _mm256_castsi256_ps(_mm256_set_epi64x(pair(3), pair(2), pair(1), pair(0)));
        let hi = _mm256_castsi256_ps(_mm256_set_epi64x(pair(7), pair(6), pair(5), pair(4)));
        let left = _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi);
        let right = _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi);
        let order = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
        (order(left), order(right))
    };
    let v = |c: usize| {
        let (q00, q01) = pairs(c * w);
        let (q10, q11) = pairs(c * w + s);
        let t = _mm256_add_ps(_mm256_mul_ps(a00, q00), _mm256_mul_ps(a01, q01));
        let t = _mm256_add_ps(t, _mm256_mul_ps(a10, q10));
        _mm256_add_ps(t, _mm256_mul_ps(a11, q11))
    };
    let mask_ps = _mm256_castsi256_ps(mask);
    let (half, quarter) = (_mm256_set1_ps(0.5), _mm256_set1_ps(0.25));
    let pick = |inside: __m256, outside: __m256| _mm256_blendv_ps(outside, inside, mask_ps);
    let zero = _mm256_setzero_ps();
    let mut r2 = pick(v(0), zero);
    let mut r3 = pick(v(1), zero);
    let r4 = pick(_mm256_mul_ps(_mm256_add_ps(p0(2), v(2)), half), p0(2));
    let r5 = pick(_mm256_mul_ps(_mm256_add_ps(p0(3), v(3)), half), p0(3));
    let r6 = pick(_mm256_mul_ps(_mm256_add_ps(p0(4), v(4)), quarter), _mm256_mul_ps(p0(4), half));
    r2 = _mm256_mul_ps(_mm256_sub_ps(p0(0), r2), half);
    r3 = _mm256_mul_ps(_mm256_sub_ps(p0(1), r3), half);
    r2 = _mm256_add_ps(r2, _mm256_add_ps(_mm256_mul_ps(r4, dy), _mm256_mul_ps(r6, dx)));
    r3 = _mm256_add_ps(r3, _mm256_add_ps(_mm256_mul_ps(r6, dy), _mm256_mul_ps(r5, dx)));
    let scale = _mm256_mul_ps(load(&inp.col_w[x0..]), _mm256_set1_ps(wy));
    let (r2, r3, r4, r5, r6) = (
        _mm256_mul_ps(r2, scale),
        _mm256_mul_ps(r3, scale),
        _mm256_mul_ps(r4, scale),
        _mm256_mul_ps(r5, scale),
        _mm256_mul_ps(r6, scale),
    );
    let out = [
        _mm256_add_ps(_mm256_mul_ps(r4, r4), _mm256_mul_ps(r6, r6)),
        _mm256_mul_ps(_mm256_add_ps(r4, r5), r6),
        _mm256_add_ps(_mm256_mul_ps(r5, r5), _mm256_mul_ps(r6, r6)),
        _mm256_add_ps(_mm256_mul_ps(r4, r2), _mm256_mul_ps(r6, r3)),
        _mm256_add_ps(_mm256_mul_ps(r6, r2), _mm256_mul_ps(r5, r3)),
    ];
    for (c, o) in out.into_iter().enumerate() {
        let dst: &mut [f32; 8] = (&mut mrow[c * w + x0..c * w + x0 + 8]).try_into().expect("8 floats");
        // SAFETY: `dst` is 8 writable floats; unaligned store.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), o) };
    }
}

/// Per-pixel normal equations (G11, G12, G22, h1, h2) of the displacement update,
/// from the two expansions and the current flow, into `m` (row-planar like the
/// coefficients). `avx2`: the caller runs on a CPU with AVX2.
#[inline(always)]
fn update_matrices(r0: &PolyLevel, r1: &PolyLevel, flow: &[f32], m: &mut [f32], avx2: bool) {
    let (w, h) = (r0.width, r0.height);
    let s = w * 5;
    let col_w = border_weights(w);
    let row_w = border_weights(h);
    let inp = MatrixInputs { r0: &r0.coef, r1: &r1.coef, flow, w, h, col_w: &col_w };
    for y in 0..h {
        let mrow = &mut m[y * s..(y + 1) * s];
        let mut x = 0;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            while x + 8 <= w {
                // SAFETY: `avx2` is only set where the CPU was checked to have AVX2.
                unsafe { matrices_x8(&inp, x, y, row_w[y], mrow) };
                x += 8;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = avx2;
        for x in x..w {
            matrices_at(&inp, x, y, row_w[y], mrow);
        }
    }
}

/// Box-filter the equations over the window (replicated borders, double sums) and
/// solve the 2x2 system per pixel for the new flow. `m` is row-planar (channel `c` of
/// row `y` at `y * 5w + c * w`).
#[inline(always)]
fn update_flow_box(m: &[f32], flow: &mut [f32], w: usize, h: usize) {
    let r = WINSIZE / 2;
    let scale = 1.0 / (WINSIZE * WINSIZE) as f64;
    // Vertical running sums per channel and column, each channel padded with r + 1
    // replicated columns on the left and r on the right so the horizontal window needs
    // no clamping: column x of channel c is at padded[c * pw + left + x].
    let (left, right) = (r + 1, r);
    let pw = w + left + right;
    let mut padded = vec![0f64; pw * 5];
    let row = |y: i64| -> &[f32] {
        let y = y.clamp(0, h as i64 - 1) as usize;
        &m[y * w * 5..(y + 1) * w * 5]
    };
    for k in -(r as i64)..=(r as i64) {
        let src = row(k);
        for c in 0..5 {
            for (v, &s) in padded[c * pw + left..c * pw + left + w].iter_mut().zip(&src[c * w..(c + 1) * w]) {
                *v += s as f64;
            }
        }
    }
    for y in 0..h {
        if y > 0 {
            let add = row(y as i64 + r as i64);
            let sub = row(y as i64 - r as i64 - 1);
            for c in 0..5 {
                let vsum = &mut padded[c * pw + left..c * pw + left + w];
                for ((v, &a), &s) in vsum.iter_mut().zip(&add[c * w..(c + 1) * w]).zip(&sub[c * w..(c + 1) * w]) {
                    *v += a as f64 - s as f64;
                }
            }
        }
        for ch in padded.chunks_exact_mut(pw) {
            let (first, last) = (ch[left], ch[left + w - 1]);
            ch[..left].fill(first);
            ch[left + w..].fill(last);
        }
        let ch: [&[f64]; 5] = std::array::from_fn(|c| &padded[c * pw..(c + 1) * pw]);
        // The window of x = 0, summed in column order.
        let hs0 = |c: usize| ch[c][left - r..=left + r].iter().fold(0f64, |a, &v| a + v);
        let mut hs: [f64; 5] = std::array::from_fn(hs0);
        let frow = &mut flow[y * w * 2..(y + 1) * w * 2];
        for x in 0..w {
            if x > 0 {
                let (a, s) = (x + left + r, x + left - r - 1);
                for c in 0..5 {
                    hs[c] += ch[c][a] - ch[c][s];
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

/// Dense flow from `prev` to `next` (interleaved dx, dy per pixel at the finest level).
pub fn flow(prev: &FlowPyramid, next: &FlowPyramid) -> Buf {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU was just checked to support AVX2.
        return unsafe { solve_flow_avx2(prev, next) };
    }
    solve_flow(prev, next, false)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn solve_flow_avx2(prev: &FlowPyramid, next: &FlowPyramid) -> Buf {
    solve_flow(prev, next, true)
}

#[inline(always)]
fn solve_flow(prev: &FlowPyramid, next: &FlowPyramid, avx2: bool) -> Buf {
    let mut flow = Buf::zeroed(0);
    let mut prev_size = (0usize, 0usize);
    for (r0, r1) in prev.levels.iter().zip(&next.levels) {
        let (w, h) = (r0.width, r0.height);
        flow = if flow.is_empty() {
            Buf::zeroed(w * h * 2)
        } else {
            let mut f = resize_linear_f32(&flow, prev_size.0, prev_size.1, 2, w, h);
            let s = (1.0 / PYR_SCALE) as f32;
            f.iter_mut().for_each(|v| *v *= s);
            f
        };
        let mut m = Buf::uninit(w * h * 5);
        update_matrices(r0, r1, &flow, &mut m, avx2);
        for it in 0..ITERATIONS {
            update_flow_box(&m, &mut flow, w, h);
            if it + 1 < ITERATIONS {
                update_matrices(r0, r1, &flow, &mut m, avx2);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test values in [0, 1) (xorshift64*).
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    /// A textured frame: smooth gradients plus noise, so the expansion is not flat.
    fn frame(w: usize, h: usize, seed: u64) -> Plane<u8> {
        let n = noise(seed, w * h);
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                (96.0 + 60.0 * (x * 0.21 + seed as f32).sin() * (y * 0.13).cos() + 40.0 * n[i]) as u8
            })
            .collect();
        Plane { width: w, height: h, data }
    }

    #[test]
    fn avx2_kernel_equals_the_scalar_kernel_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx2") {
                eprintln!("no AVX2 on this CPU: only the scalar kernel exists here");
                return;
            }
            // 224: the method's size (levels 224, 112, 56); 61 x 45: rows that end in a
            // scalar tail, and a single pyramid level.
            for (w, h) in [(224, 224), (61, 45)] {
                let (a, b) = (FlowPyramid::new(&frame(w, h, 1)), FlowPyramid::new(&frame(w, h, 2)));
                let (r0, r1) = (a.levels.last().unwrap(), b.levels.last().unwrap());
                // Small, large and far-outside displacements, and exact integers.
                let field: Vec<f32> = noise(3, w * h * 2)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match i % 7 {
                        0 => (v * 2000.0 - 1000.0).round(),
                        1 => v * 80.0 - 40.0,
                        _ => v * 6.0 - 3.0,
                    })
                    .collect();
                let (mut scalar, mut simd) = (vec![0f32; w * h * 5], vec![0f32; w * h * 5]);
                update_matrices(r0, r1, &field, &mut scalar, false);
                update_matrices(r0, r1, &field, &mut simd, true);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(scalar.iter().all(|v| v.is_finite()));
                assert_eq!(bits(&scalar), bits(&simd), "{w}x{h}: normal equations differ");
                // The whole flow, through both kernels.
                let fast = flow(&a, &b);
                let plain = solve_flow(&a, &b, false);
                assert_eq!(bits(&fast), bits(&plain), "{w}x{h}: flows differ");
                assert!(plain.iter().any(|v| v.abs() > 1e-3), "{w}x{h}: the test flow is not trivially zero");
            }
        }
    }
}
