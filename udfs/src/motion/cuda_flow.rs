//! The motion descriptors' Farneback flow as CUDA kernels (`farneback.cu`, built to PTX
//! by `build.rs` with the `cuda` feature), launched on a candle CUDA device's stream.
//!
//! Why own kernels: the same method as candle tensor programs
//! ([`super::candle_flow`]'s tensor path) spends its time in temporaries (every
//! elementwise step of the normal equations is a full-size tensor, the 15x15 box filter
//! an im2col convolution 15 times the data); here each step is one pass that keeps its
//! intermediates in registers. The operation order is the tuned CPU kernel's, with no
//! fused multiply-adds and the same double sums, so both agree to float rounding.
//!
//! Ballista-safe: nothing global; the PTX module is loaded once per device by candle.

// Kernel launches and device allocations through cudarc (see the SAFETY notes).
#![allow(unsafe_code)]

use std::sync::Arc;

use rayon::prelude::*;

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{Result, bail};

use super::farneback::{
    ExpansionKernel, ITERATIONS, POLY_N, POLY_SIGMA, PYR_SCALE, WINSIZE, border_weights, level_plan,
};
use super::imgops::{Plane, linear_tab};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/farneback.ptx"));
/// The module's name in the device's cache of custom kernels.
const MODULE: &str = "gdo_farneback";
const THREADS: u32 = 256;
/// Partial sums per pair in the per-pair reductions (fixed, so the bits are too).
const SLOTS: usize = 512;

/// One thread per element, `THREADS` per block.
fn grid(elements: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (elements.div_ceil(THREADS as usize) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn i32_of(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("motion: {v} exceeds a kernel's int range")))
}

struct Kernels<'a> {
    dev: &'a CudaDevice,
    stream: Arc<CudaStream>,
}

impl Kernels<'_> {
    fn upload<T: DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(v).w()
    }

    fn alloc<T: DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        // SAFETY: every buffer allocated here is fully written by a kernel before it is
        // read (each kernel writes one value per thread over the whole shape).
        unsafe { self.stream.alloc::<T>(len) }.w()
    }

    /// Resize `planes` planes `src` [sh][sw] -> [dh][dw] (bilinear, half-pixel centres),
    /// times `scale`.
    fn resize(
        &self,
        src: &CudaSlice<f32>,
        planes: usize,
        (sw, sh): (usize, usize),
        (dw, dh): (usize, usize),
        scale: f32,
    ) -> Result<CudaSlice<f32>> {
        let (xt, yt) = (linear_tab(sw, dw), linear_tab(sh, dh));
        let xi = self.upload(&xt.iter().map(|&(s, _)| s as i32).collect::<Vec<_>>())?;
        let xf = self.upload(&xt.iter().map(|&(_, f)| f).collect::<Vec<_>>())?;
        let yi = self.upload(&yt.iter().map(|&(s, _)| s as i32).collect::<Vec<_>>())?;
        let yf = self.upload(&yt.iter().map(|&(_, f)| f).collect::<Vec<_>>())?;
        let mut dst = self.alloc::<f32>(planes * dw * dh)?;
        let f = self.dev.get_or_load_custom_func("fb_resize", MODULE, PTX)?;
        let (np, sh, sw, dh_, dw_) = (i32_of(planes)?, i32_of(sh)?, i32_of(sw)?, i32_of(dh)?, i32_of(dw)?);
        let mut b = f.builder();
        b.arg(src).arg(&mut dst).arg(&np).arg(&sh).arg(&sw).arg(&dh_).arg(&dw_);
        b.arg(&xi).arg(&xf).arg(&yi).arg(&yf).arg(&scale);
        // SAFETY: argument list matches fb_resize's signature; the buffers hold
        // planes*sh*sw (src) and planes*dh*dw (dst) floats and dw/dh taps.
        unsafe { b.launch(grid(planes * dw * dh)) }.w()?;
        Ok(dst)
    }
}

/// AMM and frame diversity per clip ((0, 0) for clips under two frames), frames
/// prepared by [`super::prepare_gray`], all of one size; every frame and pair of
/// `clips` in each launch. Frame diversity is exact (integer sums), so it equals the CPU
/// kernel's bit for bit.
pub fn motion_batch(dev: &CudaDevice, clips: &[Vec<Plane<u8>>]) -> Result<Vec<(f64, f64)>> {
    let frames: Vec<&Plane<u8>> = clips.iter().flatten().collect();
    let (mut prev, mut next) = (Vec::new(), Vec::new());
    let mut first = 0i32;
    for clip in clips {
        for t in 1..clip.len() as i32 {
            prev.push(first + t - 1);
            next.push(first + t);
        }
        first += clip.len() as i32;
    }
    if prev.is_empty() {
        return Ok(vec![(0.0, 0.0); clips.len()]);
    }
    let (w, h) = (frames[0].width, frames[0].height);
    if frames.iter().any(|f| f.width != w || f.height != h) {
        bail!("motion: frames of different sizes in one batch");
    }
    let k = Kernels { dev, stream: dev.cuda_stream() };
    let n = frames.len();
    let pairs = prev.len();
    let (n_, pairs_, w_, h_) = (i32_of(n)?, i32_of(pairs)?, i32_of(w)?, i32_of(h)?);
    let func = |name: &str| dev.get_or_load_custom_func(name, MODULE, PTX);

    // Frames side by side, copied in parallel (a batch is tens of MB).
    let mut bytes = vec![0u8; n * w * h];
    bytes.par_chunks_mut(w * h).zip(&frames).for_each(|(dst, f)| dst.copy_from_slice(&f.data));
    let gray = k.upload(&bytes)?;
    let mut full = k.alloc::<f32>(n * w * h)?;
    {
        let total = (n * w * h) as i64;
        let f = func("fb_to_float")?;
        let mut b = f.builder();
        b.arg(&gray).arg(&mut full).arg(&total);
        // SAFETY: fb_to_float(const u8*, float*, long long) over n*w*h elements.
        unsafe { b.launch(grid(n * w * h)) }.w()?;
    }
    let prev = k.upload(&prev)?;
    let next = k.upload(&next)?;
    let kernel = ExpansionKernel::new(POLY_N, POLY_SIGMA);
    let taps = k.upload(&[kernel.g.as_slice(), &kernel.xg, &kernel.xxg].concat())?;
    let r = POLY_N as i32;
    let mut tmp = k.alloc::<f32>(n * w * h)?;
    let mut blurred = k.alloc::<f32>(n * w * h)?;
    let mut flow: Option<(CudaSlice<f32>, usize, usize)> = None;
    for (lw, lh, blur) in level_plan(w, h) {
        // The level's image: the full frame blurred, then resized (as the CPU kernel).
        let bk = k.upload(&blur)?;
        let ks = i32_of(blur.len())?;
        let blur_pass = |name: &str, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>| -> Result<()> {
            let f = func(name)?;
            let mut b = f.builder();
            b.arg(src).arg(dst).arg(&n_).arg(&h_).arg(&w_).arg(&bk).arg(&ks);
            // SAFETY: (src, dst, n, h, w, kernel, ksize) over n*h*w floats each.
            unsafe { b.launch(grid(n * w * h)) }.w()?;
            Ok(())
        };
        blur_pass("fb_blur_h", &full, &mut tmp)?;
        blur_pass("fb_blur_v", &tmp, &mut blurred)?;
        let resized;
        let img = if (lw, lh) == (w, h) {
            &blurred
        } else {
            resized = k.resize(&blurred, n, (w, h), (lw, lh), 1.0)?;
            &resized
        };
        let hw = lw * lh;
        let (lw_, lh_) = (i32_of(lw)?, i32_of(lh)?);
        let mut rows = k.alloc::<f32>(n * 3 * hw)?;
        {
            let f = func("fb_expand_v")?;
            let mut b = f.builder();
            b.arg(img).arg(&mut rows).arg(&n_).arg(&lh_).arg(&lw_).arg(&taps).arg(&r);
            // SAFETY: (img, rows, n, h, w, taps, r): n*hw in, n*3*hw out, 3*(2r+1) taps.
            unsafe { b.launch(grid(n * hw)) }.w()?;
        }
        let mut coef = k.alloc::<f32>(n * 5 * hw)?;
        {
            let f = func("fb_expand_h")?;
            let mut b = f.builder();
            b.arg(&rows).arg(&mut coef).arg(&n_).arg(&lh_).arg(&lw_).arg(&taps).arg(&r);
            b.arg(&kernel.ig11).arg(&kernel.ig03).arg(&kernel.ig33).arg(&kernel.ig55);
            // SAFETY: (rows, coef, n, h, w, taps, r, 4 doubles): n*3*hw in, n*5*hw out.
            unsafe { b.launch(grid(n * hw)) }.w()?;
        }
        drop(rows);
        let mut fl = match flow.take() {
            None => k.stream.alloc_zeros::<f32>(pairs * 2 * hw).w()?,
            Some((f, fw, fh)) => k.resize(&f, pairs * 2, (fw, fh), (lw, lh), (1.0 / PYR_SCALE) as f32)?,
        };
        let col_w = k.upload(&border_weights(lw))?;
        let row_w = k.upload(&border_weights(lh))?;
        let mut m = k.alloc::<f32>(pairs * 5 * hw)?;
        let mut t = k.alloc::<f64>(pairs * 5 * hw)?;
        let matrices = |fl: &CudaSlice<f32>, m: &mut CudaSlice<f32>| -> Result<()> {
            let f = func("fb_matrices")?;
            let mut b = f.builder();
            b.arg(&coef).arg(&prev).arg(&next).arg(fl).arg(m).arg(&pairs_).arg(&lh_).arg(&lw_);
            b.arg(&col_w).arg(&row_w);
            // SAFETY: (coef, prev, next, flow, m, pairs, h, w, col_w, row_w) with the
            // shapes of the module's layout comment; prev/next index frames < n.
            unsafe { b.launch(grid(pairs * hw)) }.w()?;
            Ok(())
        };
        let rad = (WINSIZE / 2) as i32;
        let scale = 1.0 / (WINSIZE * WINSIZE) as f64;
        matrices(&fl, &mut m)?;
        for it in 0..ITERATIONS {
            {
                let f = func("fb_box_v")?;
                let mut b = f.builder();
                b.arg(&m).arg(&mut t).arg(&pairs_).arg(&lh_).arg(&lw_).arg(&rad);
                // SAFETY: (m, t, pairs, h, w, r): pairs*5*hw floats in, doubles out.
                unsafe { b.launch(grid(pairs * 5 * hw)) }.w()?;
            }
            {
                let f = func("fb_box_h_solve")?;
                let mut b = f.builder();
                b.arg(&t).arg(&mut fl).arg(&pairs_).arg(&lh_).arg(&lw_).arg(&rad).arg(&scale);
                // SAFETY: (t, flow, pairs, h, w, r, scale): pairs*5*hw doubles in,
                // pairs*2*hw floats out.
                unsafe { b.launch(grid(pairs * hw)) }.w()?;
            }
            if it + 1 < ITERATIONS {
                matrices(&fl, &mut m)?;
            }
        }
        flow = Some((fl, lw, lh));
    }
    let (fl, fw, fh) = flow.expect("level_plan yields at least one level");
    if (fw, fh) != (w, h) {
        bail!("motion: the finest level is {fw}x{fh}, not the frames' {w}x{h}");
    }
    let hw = w * h;
    let hw_ = i32_of(hw)?;
    let slots_ = SLOTS as i32;
    let per_pair = |partial_of: &dyn Fn(&mut CudaSlice<f64>) -> Result<()>| -> Result<Vec<f64>> {
        let mut partial = k.alloc::<f64>(pairs * SLOTS)?;
        partial_of(&mut partial)?;
        let mut sums = k.alloc::<f64>(pairs)?;
        let f = func("fb_sum_slots")?;
        let mut b = f.builder();
        b.arg(&partial).arg(&mut sums).arg(&pairs_).arg(&slots_);
        // SAFETY: (partial, sums, pairs, slots): pairs*slots doubles in, pairs out.
        unsafe { b.launch(grid(pairs)) }.w()?;
        k.stream.clone_dtoh(&sums).w()
    };
    let magnitude = per_pair(&|partial| {
        let f = func("fb_magnitude_partial")?;
        let mut b = f.builder();
        b.arg(&fl).arg(partial).arg(&pairs_).arg(&hw_).arg(&slots_);
        // SAFETY: (flow, partial, pairs, hw, slots): pairs*2*hw floats in.
        unsafe { b.launch(grid(pairs * SLOTS)) }.w()?;
        Ok(())
    })?;
    let absdiff = per_pair(&|partial| {
        let f = func("fb_absdiff_partial")?;
        let mut b = f.builder();
        b.arg(&gray).arg(&prev).arg(&next).arg(partial).arg(&pairs_).arg(&hw_).arg(&slots_);
        // SAFETY: (gray, prev, next, partial, pairs, hw, slots): n*hw bytes in.
        unsafe { b.launch(grid(pairs * SLOTS)) }.w()?;
        Ok(())
    })?;
    k.stream.synchronize().w()?;
    // The CPU kernel's arithmetic from here on: per pair a mean over pixels, then the
    // clip's mean over pairs (frame diversity: the exact integer sum / pixels / 255).
    let pixels = hw as f64;
    let mut out = Vec::with_capacity(clips.len());
    let mut at = 0;
    for clip in clips {
        let pairs = clip.len().saturating_sub(1);
        if pairs == 0 {
            out.push((0.0, 0.0));
            continue;
        }
        let amm = magnitude[at..at + pairs].iter().map(|s| s / pixels).sum::<f64>() / pairs as f64;
        let div = absdiff[at..at + pairs].iter().map(|s| s / pixels / 255.0).sum::<f64>() / pairs as f64;
        out.push((amm, div));
        at += pairs;
    }
    Ok(out)
}
