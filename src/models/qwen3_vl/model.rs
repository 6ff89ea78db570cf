//! The whole Qwen3-VL model: image tokens replaced by vision-tower features, then the
//! decoder over padded batches, returning hidden states or logits at every position.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;

use super::config::Qwen3VlConfig;
use super::nn::Mode;
use super::text::{DeepStack, KvCache, Position, TextModel};
use super::vision::{Grid, VisionModel};
use crate::error::{GdoError, Result};

/// A padded batch. Rows have equal length; `attention_mask[b]` covers the cached
/// positions plus these (`true` = a real token, `false` = padding, on either side).
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// `B x L` token ids, image placeholders included.
    pub input_ids: Vec<Vec<u32>>,
    /// `B x (past + L)`.
    pub attention_mask: Vec<Vec<bool>>,
    /// `B x L` rotary positions (see `processor::rope_positions`).
    pub positions: Vec<Vec<Position>>,
    /// `(N, C*T*P*P)` patches of all images, in placeholder order (row by row).
    pub pixel_values: Option<Tensor>,
    pub image_grids: Vec<Grid>,
    /// An additive attention bias `(B, 1, L, past + L)` replacing the causal + padding
    /// mask (e.g. bidirectional attention to compare with an implementation that has no
    /// prefill mask).
    pub bias_override: Option<Tensor>,
}

/// Qwen3-VL: vision tower + decoder. Holds weights only; no cache, no RNG.
#[derive(Debug, Clone)]
pub struct Qwen3VlModel {
    pub vision: VisionModel,
    pub text: TextModel,
    pub config: Qwen3VlConfig,
    device: Device,
}

impl Qwen3VlModel {
    /// Builds from a `VarBuilder` rooted at the checkpoint (names `model.visual.*`,
    /// `model.language_model.*`, `lm_head.*`).
    pub fn new(config: &Qwen3VlConfig, mode: Mode, vb: VarBuilder) -> CandleResult<Self> {
        let vision = VisionModel::new(&config.vision_config, mode, vb.pp("model").pp("visual"))?;
        let text = TextModel::new(&config.text_config, config.tied_embeddings(), mode, vb.clone())?;
        Ok(Self { vision, text, config: config.clone(), device: vb.device().clone() })
    }

    /// Loads `DIR/config.json` and `DIR/*.safetensors` (one file or shards) in `dtype`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = Qwen3VlConfig::load(dir)?;
        let files = safetensors_files(dir)?;
        // SAFETY: the weight files are memory-mapped read-only; they must not be changed
        // while the model is loaded, as with any mmap-based loader.
        // Memory-mapped weights: the files must not change while the model is loaded.
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device) }
            .map_err(|e| GdoError::Usage(format!("{}: cannot read the weights: {e}", dir.display())))?;
        Self::new(&config, Mode::Inference, vb)
            .map_err(|e| GdoError::Usage(format!("{}: the weights do not match config.json: {e}", dir.display())))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.text.dtype()
    }

    /// Logits `(B, L, vocab)` at every position (model dtype).
    pub fn forward(&self, input: &ModelInput) -> CandleResult<Tensor> {
        self.text.lm_head(&self.forward_hidden(input, None)?)
    }

    /// Negative log-likelihood `(K,)` in f32 of `targets[k]` predicted at flat row
    /// `rows[k]` (`b * L + l`) of `hidden` `(B, L, hidden)`. Logits are computed only at
    /// those rows: the vocabulary is large. Differentiable in training mode.
    pub fn token_nll(&self, hidden: &Tensor, rows: &[u32], targets: &[u32]) -> CandleResult<Tensor> {
        let (b, l, h) = hidden.dims3()?;
        let k = rows.len();
        let rows = Tensor::from_vec(rows.to_vec(), k, &self.device)?;
        let picked = hidden.reshape((b * l, h))?.index_select(&rows, 0)?;
        let logits = self.text.lm_head(&picked)?.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let targets = Tensor::from_vec(targets.to_vec(), (k, 1), &self.device)?;
        logp.gather(&targets, 1)?.squeeze(1)?.neg()
    }

    /// Final hidden states `(B, L, hidden)`; with a cache, its keys/values are used as the
    /// past and the new ones appended.
    pub fn forward_hidden(&self, input: &ModelInput, cache: Option<&mut KvCache>) -> CandleResult<Tensor> {
        let b = input.input_ids.len();
        let l = input.input_ids.first().map_or(0, |r| r.len());
        if b == 0 || l == 0 {
            candle_core::bail!("empty batch");
        }
        if input.input_ids.iter().any(|r| r.len() != l) || input.positions.len() != b {
            candle_core::bail!("batch rows must be padded to one length");
        }
        let past = cache.as_ref().map_or(0, |c| c.len());
        if input.attention_mask.len() != b || input.attention_mask.iter().any(|m| m.len() != past + l) {
            candle_core::bail!("attention_mask must be {b} rows of {} (cached + new positions)", past + l);
        }
        let flat_ids: Vec<u32> = input.input_ids.concat();
        let ids = Tensor::from_vec(flat_ids.clone(), (b, l), &self.device)?;
        let mut embeds = self.text.embed(&ids)?;
        let hidden = embeds.dim(2)?;

        // Image placeholders are looked for in prompts only: a generated placeholder token
        // (decoding with a cache, no pixels) is embedded like any other token.
        let image_token = self.config.image_token_id;
        let visual: Vec<u32> = if input.pixel_values.is_some() || past == 0 {
            flat_ids.iter().enumerate().filter(|(_, t)| **t == image_token).map(|(i, _)| i as u32).collect()
        } else {
            Vec::new()
        };
        let mut deepstack_features = Vec::new();
        let visual_positions = Tensor::from_vec(visual.clone(), visual.len(), &self.device)?;
        match &input.pixel_values {
            Some(pixels) => {
                let (image_embeds, features) = self.vision.forward(pixels, &input.image_grids)?;
                if image_embeds.dim(0)? != visual.len() {
                    candle_core::bail!(
                        "{} image placeholder tokens but the images give {} features",
                        visual.len(),
                        image_embeds.dim(0)?
                    );
                }
                // Placeholder embeddings are zeroed, then the image features added in.
                let keep: Vec<f32> = flat_ids.iter().map(|t| if *t == image_token { 0.0 } else { 1.0 }).collect();
                let keep = Tensor::from_vec(keep, (b * l, 1), &self.device)?.to_dtype(embeds.dtype())?;
                let flat = embeds.reshape((b * l, hidden))?.broadcast_mul(&keep)?;
                embeds = flat
                    .index_add(&visual_positions, &image_embeds.to_dtype(flat.dtype())?, 0)?
                    .reshape((b, l, hidden))?;
                deepstack_features = features;
            }
            None if !visual.is_empty() => {
                candle_core::bail!("{} image placeholder tokens but no images", visual.len())
            }
            None => {}
        }

        let (cos, sin) = self.text.rotary.cos_sin(&input.positions, embeds.dtype(), &self.device)?;
        let bias = match &input.bias_override {
            Some(bias) => bias.to_dtype(DType::F32)?,
            None => attention_bias(&input.attention_mask, l, &self.device)?,
        };
        let deepstack = DeepStack { positions: &visual_positions, features: &deepstack_features };
        let deepstack = (!deepstack_features.is_empty()).then_some(&deepstack);
        self.text.forward(&embeds, &cos, &sin, &bias, deepstack, cache)
    }
}

/// Causal plus key-padding bias `(B, 1, L, K)`, `K` = cached + new positions, the new
/// queries being the last `L` of them. Padded keys get a large finite negative rather
/// than -inf, so a padding query with nothing real to attend to stays finite (its output
/// is never used) instead of spreading NaN through the keys of later layers.
pub fn attention_bias(mask: &[Vec<bool>], l: usize, device: &Device) -> CandleResult<Tensor> {
    let b = mask.len();
    let k = mask.first().map_or(0, |m| m.len());
    let past = k - l;
    let causal: Vec<f32> =
        (0..l).flat_map(|i| (0..k).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    let causal = Tensor::from_vec(causal, (1, 1, l, k), device)?;
    let padding: Vec<f32> = mask.iter().flat_map(|m| m.iter().map(|&real| if real { 0.0 } else { -1e30 })).collect();
    let padding = Tensor::from_vec(padding, (b, 1, 1, k), device)?;
    causal.broadcast_add(&padding)
}

/// `model.safetensors` or the shards of a sharded checkpoint, sorted.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| GdoError::io(dir.display().to_string(), e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(GdoError::NotFound(format!(
            "{}: no *.safetensors weights (expected model.safetensors or model-0000N-of-0000M.safetensors)",
            dir.display()
        )));
    }
    Ok(files)
}
