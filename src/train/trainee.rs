//! What the training loop needs from a model, so one loop (order, blind draws, AdamW,
//! clipping, checkpoints, resume, evaluation) trains every model `gdo train` knows:
//! [`TinyVlmTrainee`] (trained from a seeded initialisation) and
//! [`crate::train::qwen3_vl::Qwen3VlTrainee`] (fine-tuned from a checkpoint folder).

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::train::batcher::{FramePrep, Row, build_batch, encode_pair};
use crate::train::checkpoint;
use crate::train::eval::answer_losses;
use crate::train::tiny_vlm::{TinyVlm, TinyVlmConfig, batch_mean_nll, token_nll};
use crate::train::tokenizer::TextTokenizer;

/// A trainable model: weights in a [`VarMap`], a differentiable loss over a batch of
/// rows, answer losses for evaluation, and the files that make a checkpoint folder
/// loadable again (as a model to resume and as a `--scorer`).
pub trait Trainee {
    /// `config.json`'s `model_type`.
    fn model_type(&self) -> &str;
    /// The trainable weights.
    fn varmap(&self) -> &VarMap;
    /// How many frames per pair the loop fetches, and whether it resizes them.
    fn frame_prep(&self) -> FramePrep;
    /// Mean answer-token cross-entropy of a batch (`frames[i]` already fetched for row
    /// i; `blind[i]` drops them), differentiable with respect to [`Self::varmap`].
    fn batch_loss(&self, rows: &[&Row], frames: &[Vec<RgbImage>], blind: &[bool]) -> Result<Tensor>;
    /// Mean answer-token loss of each `(question, answer, frames)` triple (evaluation).
    fn answer_losses(&self, items: &[(&str, &str, &[RgbImage])]) -> Result<Vec<f64>>;
    /// Files written beside `model.safetensors` in every checkpoint (name, bytes).
    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>>;
    /// Error unless the checkpoint in `dir` was written for a model of this shape.
    fn check_resume(&self, dir: &Path) -> Result<()>;

    /// The weights by name, sorted (the order every reduction uses).
    fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        let data = self.varmap().data().lock().map_err(|_| GdoError::Usage("weights lock poisoned".into()))?;
        let mut named: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }
}

/// `tiny-vlm` with its word-level tokenizer.
pub struct TinyVlmTrainee {
    model: TinyVlm,
    tok: TextTokenizer,
    varmap: VarMap,
    device: Device,
}

impl TinyVlmTrainee {
    /// A model of `cfg` (its `vocab_size` must match `tok`) with seeded initial weights.
    pub fn new(cfg: &TinyVlmConfig, tok: TextTokenizer, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate().map_err(GdoError::Usage)?;
        let varmap = VarMap::new();
        let model = TinyVlm::new(cfg, candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, device))?;
        checkpoint::init_weights(&varmap, seed)?;
        Ok(Self { model, tok, varmap, device: device.clone() })
    }
}

impl Trainee for TinyVlmTrainee {
    fn model_type(&self) -> &str {
        crate::train::tiny_vlm::MODEL_TYPE
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn frame_prep(&self) -> FramePrep {
        FramePrep::from(self.model.config())
    }

    fn batch_loss(&self, rows: &[&Row], frames: &[Vec<RgbImage>], blind: &[bool]) -> Result<Tensor> {
        let cfg = self.model.config();
        let texts =
            rows.iter().map(|r| encode_pair(&self.tok, cfg, &r.question, &r.answer)).collect::<Result<Vec<_>>>()?;
        let frame_refs: Vec<&[RgbImage]> = frames.iter().map(|f| f.as_slice()).collect();
        let b = build_batch(&texts, &frame_refs, blind, cfg, &self.device)?;
        let logits = self.model.forward(&b.frames, &b.frame_mask, &b.tokens, &b.text_mask)?;
        Ok(batch_mean_nll(&token_nll(&logits, &b.targets)?, &b.loss_mask)?)
    }

    fn answer_losses(&self, items: &[(&str, &str, &[RgbImage])]) -> Result<Vec<f64>> {
        answer_losses(&self.model, &self.tok, items, false, 32, &self.device)
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![
            ("config.json".to_owned(), serde_json::to_vec_pretty(self.model.config())?),
            ("tokenizer.json".to_owned(), self.tok.json().as_bytes().to_vec()),
        ])
    }

    fn check_resume(&self, dir: &Path) -> Result<()> {
        let saved = checkpoint::read_config(dir)?;
        let ours = self.model.config();
        if &saved != ours {
            return Err(GdoError::Usage(format!(
                "--resume: {} holds a checkpoint of another model shape ({saved:?}, this run: {ours:?})",
                dir.display()
            )));
        }
        Ok(())
    }
}
