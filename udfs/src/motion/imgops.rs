//! Image operations behind the motion descriptors: BT.601 luma, the area resize to
//! 224x224, and the float Gaussian blur / linear resize of the flow pyramid.
//!
//! Each one follows OpenCV's arithmetic (fixed-point weights, rounding, border rules)
//! because the reference descriptors were computed with OpenCV; the facts come from
//! OpenCV's documentation and source, the code is ours.

use super::scratch::Buf;

/// A single-channel image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane<T> {
    pub width: usize,
    pub height: usize,
    pub data: Vec<T>,
}

impl<T: Copy> Plane<T> {
    pub fn row(&self, y: usize) -> &[T] {
        &self.data[y * self.width..(y + 1) * self.width]
    }
}

/// BT.601 luma of packed RGB8 pixels, in OpenCV's 14-bit fixed point
/// (`(4899 R + 9617 G + 1868 B + 2^13) >> 14`), so a gray value equals cvtColor's.
pub fn luma_bt601(rgb: &[u8], width: usize, height: usize) -> Plane<u8> {
    let data = rgb
        .chunks_exact(3)
        .map(|p| ((p[0] as u32 * 4899 + p[1] as u32 * 9617 + p[2] as u32 * 1868 + (1 << 13)) >> 14) as u8)
        .collect();
    Plane { width, height, data }
}

/// OpenCV's `cvRound`: round half to even.
#[inline]
fn round_even_f32(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Area ("INTER_AREA") resize of an 8-bit plane.
///
/// OpenCV does two different things under this name: when both axes shrink it
/// averages with fractional pixel coverage (float weights, result rounded); when
/// either axis grows it does a 2-tap interpolation with coverage-derived weights in
/// 11-bit fixed point. Both are reproduced here.
pub fn resize_area_u8(src: &Plane<u8>, dw: usize, dh: usize) -> Plane<u8> {
    if src.width == dw && src.height == dh {
        return src.clone();
    }
    let scale_x = src.width as f64 / dw as f64;
    let scale_y = src.height as f64 / dh as f64;
    if scale_x >= 1.0 && scale_y >= 1.0 {
        shrink_area_u8(src, dw, dh, scale_x, scale_y)
    } else {
        grow_area_u8(src, dw, dh, scale_x, scale_y)
    }
}

/// Coverage weights of one axis for shrinking: for each destination cell, the source
/// pixels it overlaps and the share of the cell each covers.
fn area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<Vec<(usize, f32)>> {
    (0..dsize)
        .map(|d| {
            let fs1 = d as f64 * scale;
            let fs2 = fs1 + scale;
            let cell = scale.min(ssize as f64 - fs1);
            let mut s1 = fs1.ceil() as usize;
            let s2 = (fs2.floor() as usize).min(ssize - 1);
            s1 = s1.min(s2);
            let mut taps = Vec::new();
            if s1 as f64 - fs1 > 1e-3 {
                taps.push((s1 - 1, ((s1 as f64 - fs1) / cell) as f32));
            }
            for s in s1..s2 {
                taps.push((s, (1.0 / cell) as f32));
            }
            if fs2 - s2 as f64 > 1e-3 {
                taps.push((s2, ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32));
            }
            taps
        })
        .collect()
}

fn shrink_area_u8(src: &Plane<u8>, dw: usize, dh: usize, scale_x: f64, scale_y: f64) -> Plane<u8> {
    let xtab = area_tab(src.width, dw, scale_x);
    let ytab = area_tab(src.height, dh, scale_y);
    let mut out = vec![0u8; dw * dh];
    let mut hbuf = vec![0f32; dw];
    let mut acc = vec![0f32; dw];
    for (dy, ytaps) in ytab.iter().enumerate() {
        acc.iter_mut().for_each(|v| *v = 0.0);
        for &(sy, beta) in ytaps {
            let row = src.row(sy);
            for (h, taps) in hbuf.iter_mut().zip(&xtab) {
                *h = taps.iter().fold(0f32, |s, &(sx, a)| s + row[sx] as f32 * a);
            }
            for (a, h) in acc.iter_mut().zip(&hbuf) {
                *a += beta * h;
            }
        }
        for (o, a) in out[dy * dw..(dy + 1) * dw].iter_mut().zip(&acc) {
            *o = round_even_f32(*a).clamp(0, 255) as u8;
        }
    }
    Plane { width: dw, height: dh, data: out }
}

/// A 2-tap interpolation's first source index and fraction, with the edges clamped:
/// before the first pixel or from the last one on, the tap is that pixel alone.
fn clamp_tap(s: i64, f: f32, ssize: usize) -> (usize, f32) {
    if s < 0 {
        (0, 0.0)
    } else if s >= ssize as i64 - 1 {
        (ssize - 1, 0.0)
    } else {
        (s as usize, f)
    }
}

/// Source index and 11-bit fixed-point weights of one axis for the growing case.
fn grow_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<(usize, i32, i32)> {
    let inv_scale = dsize as f64 / ssize as f64;
    (0..dsize)
        .map(|d| {
            let s = (d as f64 * scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            let (s, f) = clamp_tap(s, if f <= 0.0 { 0.0 } else { f - f.floor() }, ssize);
            let w0 = round_even_f32((1.0 - f) * 2048.0);
            let w1 = round_even_f32(f * 2048.0);
            (s, w0, w1)
        })
        .collect()
}

fn grow_area_u8(src: &Plane<u8>, dw: usize, dh: usize, scale_x: f64, scale_y: f64) -> Plane<u8> {
    let xtab = grow_tab(src.width, dw, scale_x);
    let ytab = grow_tab(src.height, dh, scale_y);
    let last = src.width - 1;
    // Horizontal pass per source row, in fixed point (value * 2048).
    let hrow = |sy: usize| -> Vec<i32> {
        let row = src.row(sy);
        xtab.iter().map(|&(sx, a0, a1)| row[sx] as i32 * a0 + row[(sx + 1).min(last)] as i32 * a1).collect()
    };
    let rows: Vec<Vec<i32>> = (0..src.height).map(hrow).collect();
    let mut out = vec![0u8; dw * dh];
    for (dy, &(sy, b0, b1)) in ytab.iter().enumerate() {
        let r0 = &rows[sy];
        let r1 = &rows[(sy + 1).min(src.height - 1)];
        for (dx, o) in out[dy * dw..(dy + 1) * dw].iter_mut().enumerate() {
            // OpenCV's vector path: drop 4 bits, 16-bit high multiplies, round by 2 bits.
            let v = ((b0 * (r0[dx] >> 4)) >> 16) + ((b1 * (r1[dx] >> 4)) >> 16);
            *o = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    Plane { width: dw, height: dh, data: out }
}

/// Reflect-101 border index (`gfedcb|abcdefgh|gfedcba`), OpenCV's default for filters.
#[inline]
pub(super) fn reflect101(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let n = n as i64;
    let mut i = i;
    loop {
        if i < 0 {
            i = -i;
        } else if i >= n {
            i = 2 * n - 2 - i;
        } else {
            return i as usize;
        }
    }
}

/// The Gaussian kernel OpenCV builds for `GaussianBlur(ksize, sigma)` on float images:
/// the fixed binomial table for sigma <= 0 and small sizes, else sampled and normalised.
pub fn gaussian_kernel(ksize: usize, sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        match ksize {
            1 => return vec![1.0],
            3 => return vec![0.25, 0.5, 0.25],
            5 => return vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
            7 => return vec![0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
            _ => {}
        }
    }
    let sigma = if sigma > 0.0 { sigma } else { ((ksize as f64 - 1.0) * 0.5 - 1.0) * 0.3 + 0.8 };
    let scale2x = -0.5 / (sigma * sigma);
    let mut k: Vec<f32> = (0..ksize)
        .map(|i| {
            let x = i as f64 - (ksize as f64 - 1.0) * 0.5;
            (scale2x * x * x).exp() as f32
        })
        .collect();
    let sum: f64 = k.iter().map(|&v| v as f64).sum();
    let inv = 1.0 / sum;
    k.iter_mut().for_each(|v| *v = (*v as f64 * inv) as f32);
    k
}

/// Separable Gaussian blur of a `w` x `h` float plane with reflect-101 borders (rows,
/// then columns).
#[inline(always)]
pub fn gaussian_blur_f32(src: &[f32], w: usize, h: usize, kernel: &[f32]) -> Buf {
    let r = kernel.len() / 2;
    let mut tmp = Buf::uninit(w * h);
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let trow = &mut tmp[y * w..(y + 1) * w];
        for x in 0..w {
            let mut s = 0f32;
            if x >= r && x + r < w {
                // Interior: the window is a plain slice (same sum order as the border path).
                let win = &row[x - r..=x + r];
                for (v, kv) in win.iter().zip(kernel) {
                    s += v * kv;
                }
            } else {
                for (k, kv) in kernel.iter().enumerate() {
                    s += row[reflect101(x as i64 + k as i64 - r as i64, w)] * kv;
                }
            }
            trow[x] = s;
        }
    }
    let mut out = Buf::uninit(w * h);
    for y in 0..h {
        let orow = &mut out[y * w..(y + 1) * w];
        for (k, &kv) in kernel.iter().enumerate() {
            let sy = reflect101(y as i64 + k as i64 - r as i64, h);
            let trow = &tmp[sy * w..(sy + 1) * w];
            if k == 0 {
                for (o, t) in orow.iter_mut().zip(trow) {
                    *o = t * kv;
                }
            } else {
                for (o, t) in orow.iter_mut().zip(trow) {
                    *o += t * kv;
                }
            }
        }
    }
    out
}

/// Source index and fraction of the linear interpolation along one axis: half-pixel
/// centres, edge pixels clamped.
pub(super) fn linear_tab(ssize: usize, dsize: usize) -> Vec<(usize, f32)> {
    let scale = ssize as f64 / dsize as f64;
    (0..dsize)
        .map(|d| {
            let fx = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = fx.floor() as i64;
            clamp_tap(s, fx - s as f32, ssize)
        })
        .collect()
}

/// Bilinear ("INTER_LINEAR") resize of an interleaved float image with `cn` channels:
/// half-pixel centres, edge pixels clamped; a 2x shrink averages 2x2 blocks as OpenCV does.
#[inline(always)]
pub fn resize_linear_f32(src: &[f32], sw: usize, sh: usize, cn: usize, dw: usize, dh: usize) -> Buf {
    if sw == dw && sh == dh {
        return Buf::copy_of(src);
    }
    if sw == dw * 2 && sh == dh * 2 {
        let mut out = Buf::uninit(dw * dh * cn);
        for y in 0..dh {
            let r0 = &src[2 * y * sw * cn..(2 * y + 1) * sw * cn];
            let r1 = &src[(2 * y + 1) * sw * cn..(2 * y + 2) * sw * cn];
            for x in 0..dw {
                for c in 0..cn {
                    let a = r0[2 * x * cn + c] + r0[(2 * x + 1) * cn + c];
                    let b = r1[2 * x * cn + c] + r1[(2 * x + 1) * cn + c];
                    out[(y * dw + x) * cn + c] = (a + b) * 0.25;
                }
            }
        }
        return out;
    }
    let xt = linear_tab(sw, dw);
    let yt = linear_tab(sh, dh);
    // Each source row is interpolated horizontally once, then blended vertically.
    let stride = dw * cn;
    let mut hrows = Buf::uninit(sh * stride);
    for sy in 0..sh {
        let row = &src[sy * sw * cn..(sy + 1) * sw * cn];
        let o = &mut hrows[sy * stride..(sy + 1) * stride];
        for (dx, &(sx, f)) in xt.iter().enumerate() {
            let sx1 = (sx + 1).min(sw - 1);
            for c in 0..cn {
                o[dx * cn + c] = row[sx * cn + c] * (1.0 - f) + row[sx1 * cn + c] * f;
            }
        }
    }
    let mut out = Buf::uninit(dh * stride);
    for (dy, &(sy, f)) in yt.iter().enumerate() {
        let sy1 = (sy + 1).min(sh - 1);
        let r0 = &hrows[sy * stride..(sy + 1) * stride];
        let r1 = &hrows[sy1 * stride..(sy1 + 1) * stride];
        let (b0, b1) = (1.0 - f, f);
        for (i, o) in out[dy * stride..(dy + 1) * stride].iter_mut().enumerate() {
            *o = r0[i] * b0 + r1[i] * b1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_fixed_point_examples() {
        // pure white and black stay exact; pure red is round(0.299*255) = 76
        let p = luma_bt601(&[255, 255, 255, 0, 0, 0, 255, 0, 0], 3, 1);
        assert_eq!(p.data, vec![255, 0, 76]);
    }

    #[test]
    fn area_resize_of_constant_is_constant() {
        let src = Plane { width: 160, height: 120, data: vec![77u8; 160 * 120] };
        assert!(resize_area_u8(&src, 224, 224).data.iter().all(|&v| v == 77));
        let src = Plane { width: 640, height: 360, data: vec![200u8; 640 * 360] };
        assert!(resize_area_u8(&src, 224, 224).data.iter().all(|&v| v == 200));
    }

    #[test]
    fn gaussian_kernel_sums_to_one() {
        for (n, s) in [(3, 0.0), (3, 0.5), (9, 1.5)] {
            let k = gaussian_kernel(n, s);
            assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
