//! The motion descriptors as candle tensor programs, for GPUs (`cuda` feature).
//!
//! The same method as [`super::farneback`]: a pyramid of Gaussian-smoothed, linearly
//! resized levels; the polynomial expansion as separable convolutions with replicated
//! borders; per pair and level, the normal equations from bilinear samples of the next
//! frame's coefficients (gathers), a 15x15 box filter (two depthwise convolutions over
//! replicated borders) and the 2x2 solve. Whole batches of frames and pairs run as one
//! program, which is what a GPU needs; on a CPU the tuned kernel in
//! [`super::farneback`] is faster, so `gdo` uses this path only for a CUDA device.
//!
//! On a CUDA device (`cuda` feature) [`CandleMotion::new`] runs the same steps as gdo's
//! own CUDA kernels ([`super::cuda_flow`]), each step one pass over the data;
//! [`CandleMotion::tensor_ops`] keeps the candle tensor program (the reference the
//! kernels are checked against, and the path on candle's CPU device).
//!
//! Everything runs in f32 (the tuned kernel sums some terms in f64, as OpenCV does), so
//! the two paths agree closely but not bit for bit; tests bound the difference on the
//! OpenCV reference clips.

use candle_core::{D, DType, Device, Result, Tensor};

use super::farneback::{
    ExpansionKernel, ITERATIONS, POLY_N, POLY_SIGMA, PYR_SCALE, WINSIZE, border_weights, level_plan,
};
use super::imgops::{Plane, linear_tab, reflect101};
use super::mean_abs_diff;

/// Most frames in one batch by default (bounds device memory: about 10 MB per frame
/// for the tensor program, 5 MB for the kernels).
pub const FRAME_BATCH: usize = 256;

/// Farneback motion on one candle device.
#[derive(Debug, Clone)]
pub struct CandleMotion {
    device: Device,
    /// Run gdo's CUDA kernels rather than the tensor program (CUDA devices only).
    kernels: bool,
    /// Most frames per device batch (whole clips; a longer clip runs alone).
    frame_batch: usize,
}

impl CandleMotion {
    /// The fastest path on `device`: gdo's CUDA kernels on a GPU, the tensor program on
    /// candle's CPU device.
    pub fn new(device: Device) -> Self {
        let kernels = cfg!(feature = "cuda") && device.is_cuda();
        Self { device, kernels, frame_batch: FRAME_BATCH }
    }

    /// The candle tensor program on any device (on a GPU: the reference for the kernels).
    pub fn tensor_ops(device: Device) -> Self {
        Self { device, kernels: false, frame_batch: FRAME_BATCH }
    }

    /// Batches of up to `frames` frames (more: fewer launches, more device memory).
    pub fn with_frame_batch(mut self, frames: usize) -> Self {
        self.frame_batch = frames.max(1);
        self
    }

    /// Most frames per device batch.
    pub fn frame_batch(&self) -> usize {
        self.frame_batch
    }

    /// Whether this runs gdo's CUDA kernels (else the candle tensor program).
    pub fn uses_kernels(&self) -> bool {
        self.kernels
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// AMM and frame diversity of each clip (frames prepared by
    /// [`super::prepare_gray`], in time order), like [`super::motion_descriptors`] per
    /// clip. All frames must have one size.
    pub fn motion_descriptors(&self, clips: &[Vec<Plane<u8>>]) -> Result<Vec<(f64, f64)>> {
        let mut out = vec![(0.0, 0.0); clips.len()];
        // Clips in batches of whole clips, up to frame_batch frames each.
        let mut start = 0;
        while start < clips.len() {
            let mut end = start;
            let mut frames = 0;
            while end < clips.len() && (end == start || frames + clips[end].len() <= self.frame_batch) {
                frames += clips[end].len();
                end += 1;
            }
            #[cfg(feature = "cuda")]
            if self.kernels
                && let Device::Cuda(dev) = &self.device
            {
                let got = super::cuda_flow::motion_batch(dev, &clips[start..end])?;
                out[start..end].copy_from_slice(&got);
                start = end;
                continue;
            }
            let amm = self.amm_batch(&clips[start..end])?;
            for (i, clip) in clips[start..end].iter().enumerate() {
                if clip.len() < 2 {
                    continue;
                }
                let div: f64 =
                    clip.windows(2).map(|p| mean_abs_diff(&p[0], &p[1]) / 255.0).sum::<f64>() / (clip.len() - 1) as f64;
                out[start + i] = (amm[i], div);
            }
            start = end;
        }
        Ok(out)
    }

    /// Mean flow magnitude per clip (0 for clips under two frames), as a tensor program.
    fn amm_batch(&self, clips: &[Vec<Plane<u8>>]) -> Result<Vec<f64>> {
        let frames: Vec<&Plane<u8>> = clips.iter().flatten().collect();
        let mut pairs = (Vec::new(), Vec::new());
        let mut first = 0u32;
        for clip in clips {
            for t in 1..clip.len() as u32 {
                pairs.0.push(first + t - 1);
                pairs.1.push(first + t);
            }
            first += clip.len() as u32;
        }
        if pairs.0.is_empty() {
            return Ok(vec![0.0; clips.len()]);
        }
        let (w, h) = (frames[0].width, frames[0].height);
        if frames.iter().any(|f| f.width != w || f.height != h) {
            candle_core::bail!("motion: frames of different sizes in one batch");
        }
        let data: Vec<f32> = frames.iter().flat_map(|f| f.data.iter().map(|&v| v as f32)).collect();
        let gray = Tensor::from_vec(data, (frames.len(), 1, h, w), &self.device)?;
        let n = pairs.0.len();
        let prev = Tensor::from_vec(pairs.0, n, &self.device)?;
        let next = Tensor::from_vec(pairs.1, n, &self.device)?;
        let kernel = ExpansionKernel::new(POLY_N, POLY_SIGMA);
        let mut flow: Option<(Tensor, usize, usize)> = None;
        for (lw, lh, blur) in level_plan(w, h) {
            let img = self.resize(&self.blur(&gray, &blur)?, lw, lh)?;
            let coef = self.expand(&img, &kernel)?;
            let (r0, r1) = (coef.index_select(&prev, 0)?, coef.index_select(&next, 0)?);
            let mut f = match flow {
                None => Tensor::zeros((n, 2, lh, lw), DType::F32, &self.device)?,
                Some((f, _, _)) => self.resize(&f, lw, lh)?.affine(1.0 / PYR_SCALE, 0.0)?,
            };
            let mut m = self.matrices(&r0, &r1, &f)?;
            for it in 0..ITERATIONS {
                f = self.box_solve(&m)?;
                if it + 1 < ITERATIONS {
                    m = self.matrices(&r0, &r1, &f)?;
                }
            }
            flow = Some((f, lw, lh));
        }
        let (f, _, _) = flow.expect("at least one level");
        let mag = f.sqr()?.sum_keepdim(1)?.sqrt()?.flatten_from(1)?.to_dtype(DType::F64)?.mean(D::Minus1)?;
        let per_pair = mag.to_vec1::<f64>()?;
        let mut out = Vec::with_capacity(clips.len());
        let mut at = 0;
        for clip in clips {
            let k = clip.len().saturating_sub(1);
            out.push(if k == 0 { 0.0 } else { per_pair[at..at + k].iter().sum::<f64>() / k as f64 });
            at += k;
        }
        Ok(out)
    }

    fn index(&self, v: Vec<u32>) -> Result<Tensor> {
        let n = v.len();
        Tensor::from_vec(v, n, &self.device)
    }

    /// Separable Gaussian blur with reflect-101 borders, rows then columns.
    fn blur(&self, x: &Tensor, kernel: &[f32]) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let r = (kernel.len() / 2) as i64;
        let pad = |n: usize| self.index((-r..n as i64 + r).map(|i| reflect101(i, n) as u32).collect());
        let k = Tensor::from_slice(kernel, kernel.len(), &self.device)?;
        let x = x.index_select(&pad(w)?, 3)?.conv2d(&k.reshape((1, 1, 1, kernel.len()))?, 0, 1, 1, 1)?;
        x.index_select(&pad(h)?, 2)?.conv2d(&k.reshape((1, 1, kernel.len(), 1))?, 0, 1, 1, 1)
    }

    /// Bilinear resize (half-pixel centres, clamped edges) of a [N, C, H, W] tensor,
    /// horizontal pass first.
    fn resize(&self, x: &Tensor, dw: usize, dh: usize) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if (w, h) == (dw, dh) {
            return Ok(x.clone());
        }
        let axis = |x: &Tensor, dim: usize, src: usize, dst: usize| -> Result<Tensor> {
            let tab = linear_tab(src, dst);
            let i0 = self.index(tab.iter().map(|&(s, _)| s as u32).collect())?;
            let i1 = self.index(tab.iter().map(|&(s, _)| (s + 1).min(src - 1) as u32).collect())?;
            let mut shape = [1usize; 4];
            shape[dim] = dst;
            let f = Tensor::from_vec(tab.iter().map(|&(_, f)| f).collect::<Vec<_>>(), &shape[..], &self.device)?;
            let a = x.index_select(&i0, dim)?;
            let b = x.index_select(&i1, dim)?;
            a.broadcast_mul(&f.affine(-1.0, 1.0)?)?.add(&b.broadcast_mul(&f)?)
        };
        let x = axis(x, 3, w, dw)?;
        axis(&x, 2, h, dh)
    }

    /// Polynomial expansion: [N, 1, H, W] -> coefficients [N, 5, H, W] in the tuned
    /// kernel's order (linear y, linear x, yy, xx, xy).
    fn expand(&self, img: &Tensor, k: &ExpansionKernel) -> Result<Tensor> {
        let taps = k.g.len();
        let n = taps / 2;
        // Vertical: even, odd and squared moments along y.
        let vk: Vec<f32> = [&k.g, &k.xg, &k.xxg].iter().flat_map(|v| v.iter().copied()).collect();
        let vk = Tensor::from_vec(vk, (3, 1, taps, 1), &self.device)?;
        let rows = img.pad_with_same(2, n, n)?.conv2d(&vk, 0, 1, 1, 1)?;
        // Horizontal: b1 = g*r0, b2 = xg*r0, b4 = xxg*r0, b3 = g*r1, b6 = xg*r1, b5 = g*r2.
        let zero = vec![0f32; taps];
        let row = |r0: &Vec<f32>, r1: &Vec<f32>, r2: &Vec<f32>| [r0.clone(), r1.clone(), r2.clone()].concat();
        let hk: Vec<f32> = [
            row(&k.g, &zero, &zero),   // b1
            row(&k.xg, &zero, &zero),  // b2
            row(&zero, &k.g, &zero),   // b3
            row(&k.xxg, &zero, &zero), // b4
            row(&zero, &zero, &k.g),   // b5
            row(&zero, &k.xg, &zero),  // b6
        ]
        .concat();
        let hk = Tensor::from_vec(hk, (6, 3, 1, taps), &self.device)?;
        let b = rows.pad_with_same(3, n, n)?.conv2d(&hk, 0, 1, 1, 1)?;
        // Coefficients as a 1x1 convolution of the six moments.
        let (i11, i03, i33, i55) = (k.ig11 as f32, k.ig03 as f32, k.ig33 as f32, k.ig55 as f32);
        #[rustfmt::skip]
        let mix = vec![
            // b1   b2   b3   b4   b5   b6
            0.0, 0.0, i11, 0.0, 0.0, 0.0,
            0.0, i11, 0.0, 0.0, 0.0, 0.0,
            i03, 0.0, 0.0, 0.0, i33, 0.0,
            i03, 0.0, 0.0, i33, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, i55,
        ];
        b.conv2d(&Tensor::from_vec(mix, (5, 6, 1, 1), &self.device)?, 0, 1, 1, 1)
    }

    /// Normal equations [P, 5, h, w] (G11, G12, G22, h1, h2) of the displacement update.
    fn matrices(&self, r0: &Tensor, r1: &Tensor, flow: &Tensor) -> Result<Tensor> {
        let (p, _, h, w) = r0.dims4()?;
        let dev = &self.device;
        let ch = |t: &Tensor, c: usize| t.narrow(1, c, 1);
        let (dx, dy) = (ch(flow, 0)?, ch(flow, 1)?);
        let xs = Tensor::arange(0u32, w as u32, dev)?.to_dtype(DType::F32)?.reshape((1, 1, 1, w))?;
        let ys = Tensor::arange(0u32, h as u32, dev)?.to_dtype(DType::F32)?.reshape((1, 1, h, 1))?;
        let fx = dx.broadcast_add(&xs)?;
        let fy = dy.broadcast_add(&ys)?;
        let (x1, y1) = (fx.floor()?, fy.floor()?);
        let (fx, fy) = ((fx - &x1)?, (fy - &y1)?);
        let inside = x1.ge(0f32)?.mul(&x1.lt((w - 1) as f32)?)?.mul(&y1.ge(0f32)?)?.mul(&y1.lt((h - 1) as f32)?)?;
        // Out-of-frame lanes sample pixel (0, 0) and are replaced below.
        let xc = x1.clamp(0f32, (w - 2) as f32)?;
        let yc = y1.clamp(0f32, (h - 2) as f32)?;
        let idx = (yc.affine(w as f64, 0.0)? + xc)?.to_dtype(DType::U32)?.reshape((p, 1, h * w))?;
        let flat = r1.reshape((p, 5, h * w))?;
        let sample = |off: u32| -> Result<Tensor> {
            let i = idx.broadcast_add(&Tensor::new(off, dev)?)?.broadcast_as((p, 5, h * w))?.contiguous()?;
            flat.gather(&i, 2)?.reshape((p, 5, h, w))
        };
        let one_x = fx.affine(-1.0, 1.0)?;
        let one_y = fy.affine(-1.0, 1.0)?;
        let v = (sample(0)?.broadcast_mul(&(&one_x * &one_y)?)? + sample(1)?.broadcast_mul(&(&fx * &one_y)?)?)?
            .add(&sample(w as u32)?.broadcast_mul(&(&one_x * &fy)?)?)?
            .add(&sample(w as u32 + 1)?.broadcast_mul(&(&fx * &fy)?)?)?;
        let (p0, v0) = (|c| ch(r0, c), |c| ch(&v, c));
        let pick = |a: Tensor, b: Tensor| inside.where_cond(&a, &b);
        let zero = dx.zeros_like()?;
        let r2 = pick(v0(0)?, zero.clone())?;
        let r3 = pick(v0(1)?, zero)?;
        let r4 = pick((p0(2)? + v0(2)?)?.affine(0.5, 0.0)?, p0(2)?)?;
        let r5 = pick((p0(3)? + v0(3)?)?.affine(0.5, 0.0)?, p0(3)?)?;
        let r6 = pick((p0(4)? + v0(4)?)?.affine(0.25, 0.0)?, p0(4)?.affine(0.5, 0.0)?)?;
        let r2 = ((p0(0)? - r2)?.affine(0.5, 0.0)? + ((&r4 * &dy)? + (&r6 * &dx)?)?)?;
        let r3 = ((p0(1)? - r3)?.affine(0.5, 0.0)? + ((&r6 * &dy)? + (&r5 * &dx)?)?)?;
        // Border damping: weights per column times weights per row.
        let col = Tensor::from_vec(border_weights(w), (1, 1, 1, w), dev)?;
        let row = Tensor::from_vec(border_weights(h), (1, 1, h, 1), dev)?;
        let scale = col.broadcast_mul(&row)?;
        let [r2, r3, r4, r5, r6] = [r2, r3, r4, r5, r6].map(|t| t.broadcast_mul(&scale));
        let (r2, r3, r4, r5, r6) = (r2?, r3?, r4?, r5?, r6?);
        Tensor::cat(
            &[
                ((&r4 * &r4)? + (&r6 * &r6)?)?,
                ((&r4 + &r5)? * &r6)?,
                ((&r5 * &r5)? + (&r6 * &r6)?)?,
                ((&r4 * &r2)? + (&r6 * &r3)?)?,
                ((&r6 * &r2)? + (&r5 * &r3)?)?,
            ],
            1,
        )
    }

    /// Box-filter the equations (replicated borders) and solve for the flow [P, 2, h, w].
    fn box_solve(&self, m: &Tensor) -> Result<Tensor> {
        let r = WINSIZE / 2;
        let ones = Tensor::full(1.0 / WINSIZE as f32, (5, 1, WINSIZE, 1), &self.device)?;
        let m = m.pad_with_same(2, r, r)?.conv2d(&ones, 0, 1, 1, 5)?;
        let m = m.pad_with_same(3, r, r)?.conv2d(&ones.reshape((5, 1, 1, WINSIZE))?, 0, 1, 1, 5)?;
        let c = |i| m.narrow(1, i, 1);
        let (g11, g12, g22, h1, h2) = (c(0)?, c(1)?, c(2)?, c(3)?, c(4)?);
        let idet = (((&g11 * &g22)? - g12.sqr()?)?.affine(1.0, 1e-3))?.recip()?;
        let dx = (((&g11 * &h2)? - (&g12 * &h1)?)? * &idet)?;
        let dy = (((&g22 * &h1)? - (&g12 * &h2)?)? * &idet)?;
        Tensor::cat(&[dx, dy], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::{MOTION_SIZE, motion_descriptors, shifted_test_frame};

    /// A textured 224x224 frame shifted by (`sx`, `sy`) pixels.
    fn shifted(sx: f32, sy: f32) -> Plane<u8> {
        shifted_test_frame(MOTION_SIZE, MOTION_SIZE, sx, sy)
    }

    /// The device these tests run the candle program on: the CPU, or the GPU that
    /// `GDO_TEST_MOTION_DEVICE=cuda[:N]` names (scripts/gpu-check.sh on a GPU machine).
    fn test_device() -> Device {
        match std::env::var("GDO_TEST_MOTION_DEVICE") {
            Ok(spec) => crate::device::select(&spec).unwrap_or_else(|why| panic!("GDO_TEST_MOTION_DEVICE: {why}")),
            Err(_) => Device::Cpu,
        }
    }

    #[test]
    fn candle_path_agrees_with_the_tuned_kernel() {
        let clips = vec![
            vec![shifted(0.0, 0.0), shifted(1.5, 0.0), shifted(3.0, 0.5), shifted(4.0, 1.5)],
            vec![shifted(0.0, 0.0), shifted(0.0, 0.0)],
            vec![shifted(2.0, 2.0)],
            vec![shifted(0.0, 0.0), shifted(-2.5, 1.0)],
        ];
        // On a GPU both the kernels and the tensor program; on the CPU the tensor program.
        let device = test_device();
        let mut paths = vec![CandleMotion::tensor_ops(device.clone())];
        if CandleMotion::new(device.clone()).uses_kernels() {
            paths.push(CandleMotion::new(device));
        }
        for motion in paths {
            let what = if motion.uses_kernels() { "cuda kernels" } else { "tensor program" };
            let got = motion.motion_descriptors(&clips).unwrap();
            for (clip, (amm, div)) in clips.iter().zip(&got) {
                let (want_amm, want_div) = motion_descriptors(clip);
                assert!((amm - want_amm).abs() <= 1e-6 + 1e-4 * want_amm, "{what}: amm {amm} vs tuned {want_amm}");
                assert_eq!(*div, want_div, "frame diversity is the same computation");
            }
            assert!(got[0].0 > 1.0, "{what}: a moving clip has motion: {}", got[0].0);
            // Identical frames: only the border columns, which see no next pixel, move.
            assert!(got[1].0 < 0.01, "{what}: identical frames have (almost) no motion: {}", got[1].0);
            assert_eq!(got[2], (0.0, 0.0), "one frame: no pair");
            // Same input, same bits (the GPU sums run in a fixed order).
            assert_eq!(motion.motion_descriptors(&clips).unwrap(), got, "{what}: a second run differs");
        }
    }
}
