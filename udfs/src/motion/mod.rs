//! The motion descriptors of the method (method §3): AMM and frame diversity.
//!
//! Frames are 8-bit BT.601 gray planes resized to 224x224 with area interpolation
//! ([`prepare_gray`]); [`motion_descriptors`] then averages, over consecutive pairs,
//! the mean Farneback flow magnitude (AMM) and the mean absolute gray difference / 255
//! (frame diversity). The reference computed the difference on the resized uint8
//! frames (its static clips score exactly 0), and so do we.

pub mod candle_flow;
#[cfg(feature = "cuda")]
pub mod cuda_flow;
pub mod farneback;
pub mod imgops;
#[cfg(test)]
mod kernel_emulation;
pub mod scratch;

use rayon::prelude::*;

pub use farneback::FlowPyramid;
pub use imgops::Plane;

/// Side of the square frames the motion descriptors are computed on.
pub const MOTION_SIZE: usize = 224;
/// At most this many frames (uniformly resampled) enter the motion descriptors.
pub const FLOW_FRAMES: usize = 8;

/// RGB8 pixels -> BT.601 gray -> 224x224 area resize.
pub fn prepare_gray(rgb: &[u8], width: usize, height: usize) -> Plane<u8> {
    let gray = imgops::luma_bt601(rgb, width, height);
    imgops::resize_area_u8(&gray, MOTION_SIZE, MOTION_SIZE)
}

/// AMM and frame diversity of frames already prepared by [`prepare_gray`], in time
/// order. Fewer than two frames give (0, 0). Frames are expanded in parallel, then the
/// pairs are solved in parallel; the sums are taken in pair order, so the result does
/// not depend on the thread count.
pub fn motion_descriptors(frames: &[Plane<u8>]) -> (f64, f64) {
    if frames.len() < 2 {
        return (0.0, 0.0);
    }
    let pyramids: Vec<FlowPyramid> = frames.par_iter().map(FlowPyramid::new).collect();
    let per_pair: Vec<(f64, f64)> = (1..frames.len())
        .into_par_iter()
        .map(|t| {
            let amm = farneback::flow_magnitude_mean(&pyramids[t - 1], &pyramids[t]);
            (amm, mean_abs_diff(&frames[t - 1], &frames[t]) / 255.0)
        })
        .collect();
    let n = per_pair.len() as f64;
    let amm = per_pair.iter().map(|p| p.0).sum::<f64>() / n;
    let div = per_pair.iter().map(|p| p.1).sum::<f64>() / n;
    (amm, div)
}

/// Mean |a - b| over pixels (frames of equal size).
pub fn mean_abs_diff(a: &Plane<u8>, b: &Plane<u8>) -> f64 {
    let total: u64 = a.data.iter().zip(&b.data).map(|(&x, &y)| x.abs_diff(y) as u64).sum();
    total as f64 / a.data.len().max(1) as f64
}

/// A textured `w` x `h` frame shifted by (`sx`, `sy`) pixels: a smooth pattern the flow
/// can follow (the motion tests' input).
#[cfg(test)]
pub(crate) fn shifted_test_frame(w: usize, h: usize, sx: f32, sy: f32) -> Plane<u8> {
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32 - sx, (i / w) as f32 - sy);
            (128.0 + 50.0 * (x * 0.19).sin() * (y * 0.23).cos() + 30.0 * ((x + y) * 0.07).sin()) as u8
        })
        .collect();
    Plane { width: w, height: h, data }
}
