//! AdamW (decoupled weight decay) with global-norm gradient clipping and a linear
//! warm-up then cosine decay to 10% of the peak rate. Our own so its moments can be
//! checkpointed and restored bit for bit.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct AdamW {
    /// Parameters, sorted by name (the order every reduction uses).
    pub vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates done so far.
    pub step: u64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(mut vars: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        Ok(Self { vars, m, v, step: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay })
    }

    /// One update; returns the gradient's global norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_clip: f64) -> Result<f64> {
        let gs = self
            .vars
            .iter()
            .map(|(_, var)| match grads.get(var.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => var.zeros_like(),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sq = 0f64;
        for g in &gs {
            sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
        let norm = sq.sqrt();
        let scale = if grad_clip > 0.0 && norm > grad_clip { grad_clip / norm } else { 1.0 };
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let g = (&gs[i] * scale)?;
            self.m[i] = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&self.m[i] / bc1)? / ((&self.v[i] / bc2)?.sqrt()? + self.eps)?)?;
            // Decay matrices only (not biases, norms' gains or 1-D tensors).
            let decay = if var.rank() >= 2 { self.weight_decay } else { 0.0 };
            let theta = var.as_tensor();
            let new = ((theta * (1.0 - lr * decay))? - (update * lr)?)?;
            var.set(&new)?;
        }
        Ok(norm)
    }

    /// Moments as named tensors (`m.NAME`, `v.NAME`) for the checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restore moments saved by [`AdamW::state_tensors`].
    pub fn load_state(&mut self, mut state: HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let t = state
                    .remove(&format!("{prefix}.{name}"))
                    .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {prefix}.{name}")))?;
                if t.dims() != var.dims() {
                    candle_core::bail!(
                        "optimizer state {prefix}.{name} has shape {:?}, the model {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                *slot = t.to_device(var.device())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Learning rate at `step` (0-based): linear warm-up over `warmup` steps, then cosine
/// decay to 10% of `peak` at `total`.
pub fn lr_at(step: u64, total: u64, warmup: u64, peak: f64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup.min(step)) as f64 / span).min(1.0);
    let floor = 0.1 * peak;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((lr_at(0, 100, 10, 1.0) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 100, 10, 1.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 100, 10, 1.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(100, 100, 10, 1.0) - 0.1).abs() < 1e-12);
        assert!(lr_at(50, 100, 10, 1.0) < lr_at(20, 100, 10, 1.0));
    }

    #[test]
    fn first_step_matches_adamw_by_hand_and_clips() {
        // With bias correction the first update is lr * sign(g) (|g| >> eps).
        let w = Var::from_tensor(&Tensor::new(&[[1.0f32, -2.0]], &Device::Cpu).unwrap()).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], 0.5).unwrap();
        let loss = (w.as_tensor() * &Tensor::new(&[[3.0f32, -4.0]], &Device::Cpu).unwrap()).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let norm = opt.step(&grads, 0.1, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let got: Vec<Vec<f32>> = w.as_tensor().to_vec2().unwrap();
        // theta*(1 - lr*wd) - lr*sign(g)
        assert!((got[0][0] - (1.0 * 0.95 - 0.1)).abs() < 1e-5, "{got:?}");
        assert!((got[0][1] - (-2.0 * 0.95 + 0.1)).abs() < 1e-5, "{got:?}");
    }
}
