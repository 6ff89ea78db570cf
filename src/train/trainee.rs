//! What the training loop needs from a model, so one loop (order, blind draws, AdamW,
//! clipping, checkpoints, resume, evaluation) trains every model `gdo train` knows:
//! [`TinyVlmTrainee`] (trained from a seeded initialisation) and
//! [`crate::train::qwen3_vl::Qwen3VlTrainee`] (fine-tuned from a checkpoint folder).

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::models::tiny_vlm::inputs::{FramePrep, build_batch, encode_pair};
use crate::models::tiny_vlm::model::{TinyVlm, TinyVlmConfig, batch_mean_nll, row_mean_nll, token_nll};
use crate::models::tiny_vlm::scorer::answer_losses;
use crate::models::tiny_vlm::tokenizer::TextTokenizer;
use crate::models::weights;
use crate::train::batcher::Row;

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
    /// Answer losses of each candidate answer to one question with its frames (the
    /// evaluation's ranking); a model may share the frames' encoding across candidates.
    fn candidate_losses(&self, question: &str, frames: &[RgbImage], candidates: &[String]) -> Result<Vec<f64>> {
        let items: Vec<(&str, &str, &[RgbImage])> = candidates.iter().map(|c| (question, c.as_str(), frames)).collect();
        self.answer_losses(&items)
    }
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
        weights::init_weights(&varmap, seed)?;
        Ok(Self { model, tok, varmap, device: device.clone() })
    }
}

impl Trainee for TinyVlmTrainee {
    fn model_type(&self) -> &str {
        crate::models::tiny_vlm::model::MODEL_TYPE
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

    fn candidate_losses(&self, question: &str, frames: &[RgbImage], candidates: &[String]) -> Result<Vec<f64>> {
        // The frames are encoded once, then every candidate decoded against them.
        let cfg = self.model.config();
        let texts = candidates.iter().map(|c| encode_pair(&self.tok, cfg, question, c)).collect::<Result<Vec<_>>>()?;
        let one = build_batch(&texts[..1], &[frames], &[false], cfg, &self.device)?;
        let b = build_batch(&texts, &vec![&[][..]; texts.len()], &vec![true; texts.len()], cfg, &self.device)?;
        let n = texts.len();
        let v = self.model.encode_frames(&one.frames)?;
        let (_, l, d) = v.dims3()?;
        let v = v.broadcast_as((n, l, d))?.contiguous()?;
        let mask = one.frame_mask.broadcast_as((n, cfg.max_frames))?.contiguous()?;
        let logits = self.model.decode(&v, &mask, &b.tokens, &b.text_mask)?;
        let losses = row_mean_nll(&token_nll(&logits, &b.targets)?, &b.loss_mask)?;
        Ok(losses.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(vec![
            ("config.json".to_owned(), serde_json::to_vec_pretty(self.model.config())?),
            ("tokenizer.json".to_owned(), self.tok.json().as_bytes().to_vec()),
        ])
    }

    fn check_resume(&self, dir: &Path) -> Result<()> {
        let saved = crate::models::tiny_vlm::model::read_config(dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranking candidates with the frames encoded once gives the losses of scoring each
    /// (question, candidate, frames) triple on its own.
    #[test]
    fn candidate_losses_equal_per_triple_answer_losses() {
        let tok = TextTokenizer::build(["what colour is the disc", "red blue green left"], 50).unwrap();
        let cfg = TinyVlmConfig { vocab_size: tok.vocab_size(), max_frames: 3, ..TinyVlmConfig::default() };
        let model = TinyVlmTrainee::new(&cfg, tok, 4, &Device::Cpu).unwrap();
        let frames: Vec<RgbImage> = (0..2)
            .map(|k| RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 7 + k) as u8, (y * 5) as u8, (x ^ y) as u8])))
            .collect();
        let candidates: Vec<String> = ["red", "blue", "green left", "left"].iter().map(|s| s.to_string()).collect();
        let shared = model.candidate_losses("what colour is the disc", &frames, &candidates).unwrap();
        let items: Vec<(&str, &str, &[RgbImage])> =
            candidates.iter().map(|c| ("what colour is the disc", c.as_str(), frames.as_slice())).collect();
        let each = model.answer_losses(&items).unwrap();
        assert_eq!(shared.len(), 4);
        for (a, b) in shared.iter().zip(&each) {
            assert!((a - b).abs() < 1e-5, "{shared:?} vs {each:?}");
        }
        // The frames matter: without them the losses differ.
        let blind = model.candidate_losses("what colour is the disc", &[], &candidates).unwrap();
        assert!(blind.iter().zip(&shared).any(|(a, b)| (a - b).abs() > 1e-4), "{blind:?} vs {shared:?}");
    }
}
