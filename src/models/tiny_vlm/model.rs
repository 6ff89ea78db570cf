//! `tiny-vlm`: a vision-language model small enough to train on two CPU cores in
//! seconds per few hundred pairs.
//!
//! Vision: each frame (`image_size`² RGB) is cut into `patch_size`² patches, embedded
//! linearly with learned patch positions, passed through `vision_layers` transformer
//! blocks (none by default), layer-normed and max-pooled (`region_pool`) over a
//! `frame_grid`² grid of regions (2x2 by default: four tokens per frame, each with a
//! learned region position); a learned temporal position
//! (the frame's slot after uniform resampling) is added. Decoder: a causal transformer over
//! `[frame tokens, text tokens]`; absent frames and text padding are masked as keys, so
//! a pair without frames (blind) sees exactly nothing of the frame slots.
//!
//! Defaults (d_model 64, 4 heads, 2 decoder layers, no vision block, 32x32 frames, 8x8
//! patches, 4 frames, 48 text tokens): about 0.1 M parameters plus the embeddings. The
//! vision defaults were chosen by how soon a proxy trained on the sample pool starts to
//! read its frames (colour questions, 10 epochs: loss_blind - loss_video 0.004 with one
//! vision block and mean pooling, 0.167 with no block and max pooling, which is also 40%
//! faster per step); blocks stay available for larger frames.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};
use serde::{Deserialize, Serialize};

pub use crate::models::scorer::Holdout;

pub const MODEL_TYPE: &str = "tiny-vlm";

/// Hyper-parameters, saved as the checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TinyVlmConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub vision_layers: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub max_frames: usize,
    pub max_text: usize,
    /// Each frame becomes `frame_grid`² tokens (patch tokens mean-pooled over a
    /// `frame_grid` x `frame_grid` grid of regions), so "leftmost" and "which way" keep
    /// their spatial signal. 1 = one token per frame.
    #[serde(default = "one")]
    pub frame_grid: usize,
    /// How a region's patch tokens become its one token. `max` keeps a small saturated
    /// object's colour that a mean over the region's background would wash out (with one
    /// vision block, 10 epochs on the sample pool's colour questions: VDS 0.004 with
    /// `mean`, 0.066 with `max`). Checkpoints written before this field existed pooled by
    /// `mean`.
    #[serde(default)]
    pub region_pool: RegionPool,
    /// Cross-fitting: the fold of its training table this model never saw (`gdo train
    /// --holdout-fold I/K` leaves out the rows with `gdo_fold(video_uid, K) = I`).
    /// `gdo describe` given the K models of a cross-fit scores every row with the model
    /// that did not train on it. None: trained on the whole table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionPool {
    #[default]
    Mean,
    Max,
}

fn one() -> usize {
    1
}

impl Default for TinyVlmConfig {
    fn default() -> Self {
        Self {
            model_type: MODEL_TYPE.to_owned(),
            vocab_size: 0,
            d_model: 64,
            n_heads: 4,
            n_layers: 2,
            vision_layers: 0,
            image_size: 32,
            patch_size: 8,
            max_frames: 4,
            max_text: 48,
            frame_grid: 2,
            region_pool: RegionPool::Max,
            holdout: None,
        }
    }
}

impl TinyVlmConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.model_type != MODEL_TYPE {
            return Err(format!("model_type '{}' is not '{MODEL_TYPE}'", self.model_type));
        }
        if self.d_model == 0 || self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return Err(format!("d_model {} must be a positive multiple of n_heads {}", self.d_model, self.n_heads));
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!("image_size {} must be a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        let g = self.image_size / self.patch_size.max(1);
        if self.frame_grid == 0 || !g.is_multiple_of(self.frame_grid) {
            return Err(format!("frame_grid {} must divide the {g}x{g} patch grid", self.frame_grid));
        }
        if self.max_frames == 0 || self.max_text < 4 || self.vocab_size < 6 {
            return Err("max_frames >= 1, max_text >= 4 and a vocabulary are needed".into());
        }
        Ok(())
    }
}

/// Layer norm from primitive ops (candle-nn's fused kernel has no backward pass).
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(d, "weight")?, bias: vb.get(d, "bias")? })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

struct Block {
    ln1: Norm,
    qkv: Linear,
    proj: Linear,
    ln2: Norm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Block {
    fn new(d: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln1: Norm::new(d, vb.pp("ln1"))?,
            qkv: linear(d, 3 * d, vb.pp("qkv"))?,
            proj: linear(d, d, vb.pp("proj"))?,
            ln2: Norm::new(d, vb.pp("ln2"))?,
            fc1: linear(d, 4 * d, vb.pp("fc1"))?,
            fc2: linear(4 * d, d, vb.pp("fc2"))?,
            heads,
        })
    }

    /// `mask`: additive, broadcastable to `[B, heads, L, L]`.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.forward_cached(x, mask, &mut None)
    }

    /// [`Self::forward`] for new positions `x` `[B, L, d]` after the ones whose keys and
    /// values `cache` holds (appended to it); `mask` broadcastable to `[B, heads, L, past + L]`.
    fn forward_cached(&self, x: &Tensor, mask: &Tensor, cache: &mut Option<(Tensor, Tensor)>) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let dh = d / self.heads;
        let qkv = self.qkv.forward(&self.ln1.forward(x)?)?.reshape((b, l, 3, self.heads, dh))?;
        let qkv = qkv.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let mut k = qkv.get(1)?.contiguous()?;
        let mut v = qkv.get(2)?.contiguous()?;
        if let Some((pk, pv)) = cache.as_ref() {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        *cache = Some((k.clone(), v.clone()));
        let att = (q.matmul(&k.t()?.contiguous()?)? / (dh as f64).sqrt())?.broadcast_add(mask)?;
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
        let x = (x + self.proj.forward(&y)?)?;
        let h = self.fc2.forward(&self.fc1.forward(&self.ln2.forward(&x)?)?.gelu()?)?;
        x + h
    }
}

/// Keys and values of every decoder layer for the positions generated from so far, and
/// their additive key mask `[B, 1, 1, K]` (padding excluded).
pub struct DecodeCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    key_add: Option<Tensor>,
}

impl DecodeCache {
    /// A cache whose row i is row `rows[i]` of this one (`rows` u32 `[B']`), so that
    /// several continuations can share one prefill.
    pub fn select_rows(&self, rows: &Tensor) -> Result<DecodeCache> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((k.index_select(rows, 0)?, v.index_select(rows, 0)?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let key_add = self.key_add.as_ref().map(|k| k.index_select(rows, 0)).transpose()?;
        Ok(DecodeCache { layers, key_add })
    }
}

/// The model. Build with [`TinyVlm::new`] from a `VarBuilder`.
pub struct TinyVlm {
    cfg: TinyVlmConfig,
    patch: Linear,
    patch_pos: Tensor,
    vision: Vec<Block>,
    ln_vision: Norm,
    temporal_pos: Tensor,
    region_pos: Tensor,
    tok_emb: Embedding,
    text_pos: Tensor,
    decoder: Vec<Block>,
    ln_f: Norm,
    lm_head: Linear,
}

impl TinyVlm {
    pub fn new(cfg: &TinyVlmConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let d = cfg.d_model;
        let g = cfg.image_size / cfg.patch_size;
        let vv = vb.pp("vision");
        let vision = (0..cfg.vision_layers)
            .map(|i| Block::new(d, cfg.n_heads, vv.pp(format!("block{i}"))))
            .collect::<Result<_>>()?;
        let dv = vb.pp("decoder");
        let decoder =
            (0..cfg.n_layers).map(|i| Block::new(d, cfg.n_heads, dv.pp(format!("block{i}")))).collect::<Result<_>>()?;
        Ok(Self {
            patch: linear(3 * cfg.patch_size * cfg.patch_size, d, vv.pp("patch"))?,
            patch_pos: vv.get((g * g, d), "patch_pos")?,
            vision,
            ln_vision: Norm::new(d, vv.pp("ln_out"))?,
            temporal_pos: vv.get((cfg.max_frames, d), "temporal_pos")?,
            region_pos: vv.get((cfg.frame_grid * cfg.frame_grid, d), "region_pos")?,
            tok_emb: embedding(cfg.vocab_size, d, dv.pp("tok_emb"))?,
            text_pos: dv.get((cfg.max_text, d), "text_pos")?,
            decoder,
            ln_f: Norm::new(d, dv.pp("ln_f"))?,
            lm_head: linear(d, cfg.vocab_size, dv.pp("lm_head"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &TinyVlmConfig {
        &self.cfg
    }

    /// `[B, F, 3, S, S]` frames -> `[B, F * r², d]` frame tokens (r = `frame_grid`).
    pub fn encode_frames(&self, frames: &Tensor) -> Result<Tensor> {
        let (b, f, c, s, _) = frames.dims5()?;
        let p = self.cfg.patch_size;
        let g = s / p;
        let r = self.cfg.frame_grid;
        let d = self.cfg.d_model;
        let x = frames.reshape((b * f, c, g, p, g, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((
            b * f,
            g * g,
            c * p * p,
        ))?;
        let mut x = self.patch.forward(&x)?.broadcast_add(&self.patch_pos)?;
        let no_mask = Tensor::zeros((1, 1, g * g, g * g), x.dtype(), x.device())?;
        for blk in &self.vision {
            x = blk.forward(&x, &no_mask)?;
        }
        // Patch (gy, gx) = (ry * k + iy, rx * k + ix): pooled over (iy, ix) per region (ry, rx).
        let k = g / r;
        let x = self.ln_vision.forward(&x)?.reshape((b * f, r, k, r, k, d))?;
        let x = match self.cfg.region_pool {
            RegionPool::Max => x.max(4)?.max(2)?,
            RegionPool::Mean => x.mean(4)?.mean(2)?,
        };
        let x = x.reshape((b, f, r * r, d))?.broadcast_add(&self.region_pos)?;
        let x = x.broadcast_add(&self.temporal_pos.narrow(0, 0, f)?.unsqueeze(1)?)?;
        x.reshape((b, f * r * r, d))
    }

    /// Logits `[B, T, vocab]` for the text positions.
    /// `frames [B, F, 3, S, S]` f32, `frame_mask [B, F]` (1 = present), `tokens [B, T]`
    /// u32, `text_mask [B, T]` (1 = real token). F and T must not exceed the config's.
    pub fn forward(&self, frames: &Tensor, frame_mask: &Tensor, tokens: &Tensor, text_mask: &Tensor) -> Result<Tensor> {
        let f = frame_mask.dim(1)?;
        let t = tokens.dim(1)?;
        if f > self.cfg.max_frames || t > self.cfg.max_text {
            candle_core::bail!(
                "{f} frames / {t} tokens exceed the model's {} / {}",
                self.cfg.max_frames,
                self.cfg.max_text
            );
        }
        self.decode(&self.encode_frames(frames)?, frame_mask, tokens, text_mask)
    }

    /// [`Self::forward`] from frame tokens already encoded by [`Self::encode_frames`].
    pub fn decode(&self, v: &Tensor, frame_mask: &Tensor, tokens: &Tensor, text_mask: &Tensor) -> Result<Tensor> {
        self.decode_cached(v, frame_mask, tokens, text_mask, None)
    }

    /// Generation, first pass: [`Self::decode`] of the (right-padded) prompts that also
    /// returns the cache [`Self::step`] continues from.
    pub fn prefill(
        &self,
        v: &Tensor,
        frame_mask: &Tensor,
        tokens: &Tensor,
        text_mask: &Tensor,
    ) -> Result<(Tensor, DecodeCache)> {
        let mut cache = DecodeCache { layers: vec![None; self.decoder.len()], key_add: None };
        let logits = self.decode_cached(v, frame_mask, tokens, text_mask, Some(&mut cache))?;
        Ok((logits, cache))
    }

    /// Generation, one new token per row: `tokens [B]` (u32) at text positions
    /// `positions [B]` (u32, below `max_text`) attend to everything in `cache` but its
    /// padding. Returns logits `[B, vocab]`.
    pub fn step(&self, tokens: &Tensor, positions: &Tensor, cache: &mut DecodeCache) -> Result<Tensor> {
        let b = tokens.dim(0)?;
        let x = (self.tok_emb.forward(tokens)? + self.text_pos.index_select(positions, 0)?)?.unsqueeze(1)?;
        let Some(key_add) = cache.key_add.as_ref() else { candle_core::bail!("step before prefill") };
        let key_add = Tensor::cat(&[key_add, &Tensor::zeros((b, 1, 1, 1), key_add.dtype(), key_add.device())?], 3)?;
        let mut x = x;
        for (blk, layer) in self.decoder.iter().zip(cache.layers.iter_mut()) {
            x = blk.forward_cached(&x, &key_add, layer)?;
        }
        cache.key_add = Some(key_add);
        self.lm_head.forward(&self.ln_f.forward(&x)?)?.squeeze(1)
    }

    fn decode_cached(
        &self,
        v: &Tensor,
        frame_mask: &Tensor,
        tokens: &Tensor,
        text_mask: &Tensor,
        mut cache: Option<&mut DecodeCache>,
    ) -> Result<Tensor> {
        let (b, f) = frame_mask.dims2()?;
        let t = tokens.dim(1)?;
        let rr = self.cfg.frame_grid * self.cfg.frame_grid;
        // Each frame's presence covers its rr region tokens.
        let frame_mask = frame_mask.unsqueeze(2)?.repeat((1, 1, rr))?.reshape((b, f * rr))?;
        let f = f * rr;
        let txt = self.tok_emb.forward(tokens)?.broadcast_add(&self.text_pos.narrow(0, 0, t)?)?;
        let mut x = Tensor::cat(&[v, &txt], 1)?;
        let l = f + t;
        let causal: Vec<f32> = (0..l).flat_map(|i| (0..l).map(move |j| if j <= i { 0.0 } else { -1e9 })).collect();
        let causal = Tensor::from_vec(causal, (1, 1, l, l), x.device())?;
        let keys = Tensor::cat(&[&frame_mask, text_mask], 1)?;
        let key_add = ((keys - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let mask = causal.broadcast_add(&key_add)?;
        match cache.as_mut() {
            None => {
                for blk in &self.decoder {
                    x = blk.forward(&x, &mask)?;
                }
            }
            Some(c) => {
                for (blk, layer) in self.decoder.iter().zip(c.layers.iter_mut()) {
                    x = blk.forward_cached(&x, &mask, layer)?;
                }
                c.key_add = Some(key_add);
            }
        }
        let x = self.ln_f.forward(&x)?.narrow(1, f, t)?;
        self.lm_head.forward(&x)
    }
}

/// Per-token negative log-likelihood `[B, T]` of `targets [B, T]` (u32).
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let lp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    lp.gather(&targets.unsqueeze(D::Minus1)?.contiguous()?, D::Minus1)?.squeeze(D::Minus1)?.neg()
}

/// Mean NLL over masked tokens, per row `[B]`.
pub fn row_mean_nll(nll: &Tensor, loss_mask: &Tensor) -> Result<Tensor> {
    let num = (nll * loss_mask)?.sum(1)?;
    let den = loss_mask.sum(1)?.clamp(1.0, f64::MAX)?;
    num / den
}

/// Mean NLL over all masked tokens of the batch (the training loss).
pub fn batch_mean_nll(nll: &Tensor, loss_mask: &Tensor) -> Result<Tensor> {
    let num = (nll * loss_mask)?.sum_all()?;
    let den = loss_mask.sum_all()?.clamp(1.0, f64::MAX)?;
    num / den
}

/// Read `config.json` of a checkpoint folder.
pub fn read_config(dir: &std::path::Path) -> crate::error::Result<TinyVlmConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| crate::error::GdoError::io(path.display().to_string(), e))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    match value.get("model_type").and_then(|v| v.as_str()) {
        Some(MODEL_TYPE) => {}
        other => {
            return Err(crate::error::GdoError::Usage(format!(
                "{}: model_type {other:?}: only tiny-vlm checkpoints are supported here",
                path.display()
            )));
        }
    }
    let cfg: TinyVlmConfig = serde_json::from_value(value)?;
    cfg.validate().map_err(|e| crate::error::GdoError::Usage(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp};
    use candle_nn::{VarBuilder, VarMap};

    use super::*;

    #[test]
    fn holdout_parses_i_of_k_and_refuses_the_rest() {
        assert_eq!("1/4".parse::<Holdout>(), Ok(Holdout { fold: 1, folds: 4 }));
        assert_eq!(" 0 / 2 ".parse::<Holdout>().map(|h| h.to_string()), Ok("0/2".to_owned()));
        for bad in ["2/2", "0/1", "1", "a/2", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Holdout>().unwrap_err().contains("expected I/K"), "{bad}");
        }
        // Checkpoints written before the field load as trained on every fold.
        let old = r#"{"model_type":"tiny-vlm","vocab_size":40,"d_model":64,"n_heads":4,"n_layers":2,
            "vision_layers":0,"image_size":32,"patch_size":8,"max_frames":4,"max_text":48}"#;
        assert_eq!(serde_json::from_str::<TinyVlmConfig>(old).unwrap().holdout, None);
    }

    /// Cached generation (prefill, then one token per step) gives the logits a full
    /// recomputation over the longer text gives, for rows of different prompt lengths.
    #[test]
    fn cached_steps_equal_full_recomputation() {
        let dev = Device::Cpu;
        let cfg = TinyVlmConfig { vocab_size: 40, max_frames: 2, max_text: 10, ..TinyVlmConfig::default() };
        let varmap = VarMap::new();
        let model = TinyVlm::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        crate::models::weights::init_weights(&varmap, 3).unwrap();
        let frames = Tensor::randn(0f32, 0.3, (2, 2, 3, 32, 32), &dev).unwrap();
        let frame_mask = Tensor::new(&[[1f32, 1.], [1., 0.]], &dev).unwrap();
        let v = model.encode_frames(&frames).unwrap();
        // Row 0: prompt of 4 tokens, row 1: 2 tokens; then two generated tokens each.
        let prompts: [&[u32]; 2] = [&[2, 7, 9, 4], &[2, 4]];
        let generated: [[u32; 2]; 2] = [[11, 12], [13, 14]];
        let padded = |texts: &[Vec<u32>]| {
            let mut ids = vec![0u32; 2 * cfg.max_text];
            let mut mask = vec![0f32; 2 * cfg.max_text];
            for (r, t) in texts.iter().enumerate() {
                ids[r * cfg.max_text..r * cfg.max_text + t.len()].copy_from_slice(t);
                mask[r * cfg.max_text..r * cfg.max_text + t.len()].iter_mut().for_each(|m| *m = 1.0);
            }
            (
                Tensor::from_vec(ids, (2, cfg.max_text), &dev).unwrap(),
                Tensor::from_vec(mask, (2, cfg.max_text), &dev).unwrap(),
            )
        };
        let texts: Vec<Vec<u32>> = prompts.iter().map(|p| p.to_vec()).collect();
        let (ids, mask) = padded(&texts);
        let (_, mut cache) = model.prefill(&v, &frame_mask, &ids, &mask).unwrap();
        let mut texts = texts;
        for step in 0..2 {
            for (text, tokens) in texts.iter_mut().zip(&generated) {
                text.push(tokens[step]);
            }
            let tokens = Tensor::new(&[generated[0][step], generated[1][step]], &dev).unwrap();
            let pos = Tensor::new(&[(texts[0].len() - 1) as u32, (texts[1].len() - 1) as u32], &dev).unwrap();
            let cached = model.step(&tokens, &pos, &mut cache).unwrap();
            let (ids, mask) = padded(&texts);
            let full = model.decode(&v, &frame_mask, &ids, &mask).unwrap();
            for (r, text) in texts.iter().enumerate() {
                let want = full.i((r, text.len() - 1)).unwrap();
                let diff = (cached.i(r).unwrap() - want).unwrap().abs().unwrap().max(0).unwrap();
                let diff = diff.to_scalar::<f32>().unwrap();
                assert!(diff < 1e-4, "step {step} row {r}: {diff}");
            }
        }
    }
}
