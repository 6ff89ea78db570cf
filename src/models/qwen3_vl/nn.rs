//! Small building blocks shared by the vision tower and the decoder. Each op has a fast
//! path (candle's fused kernels, which autograd cannot see through) and a differentiable
//! path built from plain tensor ops, chosen once per model by [`Mode`].

use candle_core::{D, DType, Result, Tensor};
use candle_nn::VarBuilder;

/// Inference uses candle's fused kernels; training uses ops that carry gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Inference,
    Training,
}

/// LayerNorm (with mean and bias) or RMSNorm (without), as the checkpoint names them.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
    mode: Mode,
}

impl Norm {
    /// `weight` and `bias`, mean removed (the vision tower's LayerNorm).
    pub fn layer(size: usize, eps: f64, mode: Mode, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, bias: Some(vb.get(size, "bias")?), eps, mode })
    }

    /// `weight` only, no mean removed (the decoder's RMSNorm).
    pub fn rms(size: usize, eps: f64, mode: Mode, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, bias: None, eps, mode })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.contiguous()?;
        match (&self.bias, self.mode) {
            (None, Mode::Inference) => candle_nn::ops::rms_norm(&xs, &self.weight, self.eps as f32),
            (None, Mode::Training) => candle_nn::ops::rms_norm_slow(&xs, &self.weight, self.eps as f32),
            (Some(b), Mode::Inference) => candle_nn::ops::layer_norm(&xs, &self.weight, b, self.eps as f32),
            (Some(b), Mode::Training) => candle_nn::ops::layer_norm_slow(&xs, &self.weight, b, self.eps as f32),
        }
    }
}

/// Softmax over the last dimension, computed in f32 (attention scores in bf16 lose the
/// small probabilities otherwise), returned in `dtype`.
pub fn softmax_last(xs: &Tensor, dtype: DType, mode: Mode) -> Result<Tensor> {
    let xs = xs.to_dtype(DType::F32)?.contiguous()?;
    let p = match mode {
        Mode::Inference => candle_nn::ops::softmax_last_dim(&xs)?,
        Mode::Training => candle_nn::ops::softmax(&xs, D::Minus1)?,
    };
    p.to_dtype(dtype)
}

/// `[-x2, x1]` for `x = [x1, x2]` split at the middle of the last dimension.
pub fn rotate_half(xs: &Tensor) -> Result<Tensor> {
    let d = xs.dim(D::Minus1)?;
    let x1 = xs.narrow(D::Minus1, 0, d / 2)?;
    let x2 = xs.narrow(D::Minus1, d / 2, d - d / 2)?;
    Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
}

/// Rotary embedding of `xs` `(B, H, L, D)` with per-row `cos`/`sin` `(B, L, D/2)` in the
/// rotate-half layout (`emb = [freqs, freqs]`).
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Inference => candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin),
        Mode::Training => {
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            xs.broadcast_mul(&cos)? + rotate_half(xs)?.broadcast_mul(&sin)?
        }
    }
}
