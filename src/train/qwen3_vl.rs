//! Fine-tuning Qwen3-VL (`gdo train --model DIR`): gdo's own Qwen3-VL module
//! ([`crate::models::qwen3_vl`]) built in training mode (norms, softmax and rotary
//! embedding from differentiable ops) over a [`VarMap`] filled from the checkpoint
//! folder. Inputs follow the scorer exactly (chat template, one image per frame, the
//! processor's resize), with answer-only loss plus `<|im_end|>` as a target.
//!
//! Weights and AdamW moments are f32 on every device: about 16 bytes per parameter
//! (a 2B model needs about 32 GB of accelerator memory plus activations). bf16 mixed
//! precision is not implemented.
//!
//! A checkpoint folder holds `model.safetensors` (one file, whatever the shards of the
//! base were) plus the base's `config.json`, `tokenizer.json`, `preprocessor_config.json`
//! and other small files, so it loads as `--scorer` and as the base of another run.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::models::qwen3_vl::model::safetensors_files;
use crate::models::qwen3_vl::processor::answer_targets;
use crate::models::qwen3_vl::{Mode, Padding, Processor, Qwen3VlConfig, Qwen3VlModel, Qwen3VlScorer, Sequence};
use crate::models::tiny_vlm::inputs::FramePrep;
use crate::models::weights;
use crate::train::batcher::Row;
use crate::train::trainee::Trainee;

/// Pairs per forward pass when scoring candidate answers.
const EVAL_BATCH: usize = 8;

/// `config.json`'s `model_type` of a Qwen3-VL checkpoint.
pub const MODEL_TYPE: &str = "qwen3_vl";

pub struct Qwen3VlTrainee {
    /// The variable-backed model and its processor (scores candidates for evaluation).
    scorer: Qwen3VlScorer,
    varmap: VarMap,
    config: serde_json::Value,
    files: Vec<(String, Vec<u8>)>,
    max_frames: usize,
    device: Device,
}

impl Qwen3VlTrainee {
    /// Loads the checkpoint folder `dir` (`config.json`, `tokenizer.json`,
    /// `*.safetensors`) as trainable f32 weights on `device`; each pair shows the model at
    /// most `max_frames` frames.
    pub fn load(dir: &Path, max_frames: usize, device: &Device) -> Result<Self> {
        if max_frames == 0 {
            return Err(GdoError::Usage("--frames must be at least 1".into()));
        }
        let config = Qwen3VlConfig::load(dir)?;
        let varmap = VarMap::new();
        let model = Qwen3VlModel::new(&config, Mode::Training, VarBuilder::from_varmap(&varmap, DType::F32, device))
            .map_err(|e| {
                GdoError::Usage(format!("{}: config.json describes no model gdo can build: {e}", dir.display()))
            })?;
        let mut saved = std::collections::HashMap::new();
        for file in safetensors_files(dir)? {
            let part = candle_core::safetensors::load(&file, device)
                .map_err(|e| GdoError::Table(format!("{}: cannot read weights: {e}", file.display())))?;
            saved.extend(part);
        }
        // A release may carry tensors this model does not use (e.g. an lm_head beside tied
        // embeddings); they are reported, not trained.
        weights::set_weights(&varmap, saved, dir, true)?;
        let processor = Processor::load(dir, &config)?;
        let config_path = dir.join("config.json");
        let config_bytes =
            std::fs::read(&config_path).map_err(|e| GdoError::io(config_path.display().to_string(), e))?;
        let config_json: serde_json::Value = serde_json::from_slice(&config_bytes)?;
        Ok(Self {
            scorer: Qwen3VlScorer::from_parts(model, processor),
            varmap,
            config: config_json,
            files: carried_files(dir)?,
            max_frames,
            device: device.clone(),
        })
    }

    /// Sequences of `(question, answer, frames)`; `None` frames: blind.
    fn sequences<'a>(
        &self,
        items: impl Iterator<Item = (&'a str, &'a str, Option<&'a [RgbImage]>)>,
        training: bool,
    ) -> Result<Vec<Sequence>> {
        let proc = self.scorer.processor();
        items
            .map(|(q, a, frames)| {
                let images =
                    frames.unwrap_or_default().iter().map(|f| proc.frame_patches(f)).collect::<Result<Vec<_>>>()?;
                if training { proc.training_sequence(q, a, images) } else { proc.scoring_sequence(q, a, images) }
            })
            .collect()
    }
}

/// The small files of a checkpoint folder a trained copy must carry: `*.json` (but not
/// a shard index, nor a gdo checkpoint's own `state.json`), `*.jinja`, `*.txt`, sorted.
fn carried_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| GdoError::io(dir.display().to_string(), e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            (n.ends_with(".json") || n.ends_with(".jinja") || n.ends_with(".txt"))
                && n != "model.safetensors.index.json"
                && n != "state.json"
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            std::fs::read(&p).map(|b| (n, b)).map_err(|e| GdoError::io(p.display().to_string(), e))
        })
        .collect()
}

impl Trainee for Qwen3VlTrainee {
    fn model_type(&self) -> &str {
        MODEL_TYPE
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn frame_prep(&self) -> FramePrep {
        // Qwen3-VL's processor resizes each frame to its own pixel budget.
        FramePrep { max_frames: self.max_frames, size: None }
    }

    fn batch_loss(&self, rows: &[&Row], frames: &[Vec<RgbImage>], blind: &[bool]) -> Result<Tensor> {
        let items = rows
            .iter()
            .zip(frames)
            .zip(blind)
            .map(|((r, f), &b)| (r.question.as_str(), r.answer.as_str(), (!b).then_some(f.as_slice())));
        let seqs = self.sequences(items, true)?;
        let refs: Vec<&Sequence> = seqs.iter().collect();
        let model = self.scorer.model();
        let (input, offsets) = self.scorer.processor().collate(&refs, Padding::Right, &self.device)?;
        let hidden = model.forward_hidden(&input, None)?;
        // Every training sequence ends in <|im_end|>, so each row has a target.
        let t = answer_targets(&refs, &offsets, hidden.dim(1)?);
        Ok(model.token_nll(&hidden, &t.rows, &t.ids)?.mean_all()?)
    }

    fn answer_losses(&self, items: &[(&str, &str, &[RgbImage])]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(EVAL_BATCH) {
            let seqs = self.sequences(chunk.iter().map(|(q, a, f)| (*q, *a, Some(*f))), false)?;
            out.extend(self.scorer.sequence_losses(&seqs)?);
        }
        Ok(out)
    }

    fn checkpoint_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.files.clone())
    }

    fn check_resume(&self, dir: &Path) -> Result<()> {
        let path = dir.join("config.json");
        let text = std::fs::read(&path).map_err(|e| GdoError::io(path.display().to_string(), e))?;
        let saved: serde_json::Value = serde_json::from_slice(&text)?;
        if saved != self.config {
            let kind = saved.get("model_type").and_then(|v| v.as_str()).unwrap_or("?");
            return Err(GdoError::Usage(format!(
                "--resume: {} holds a checkpoint of another model ({kind}, or another Qwen3-VL config.json) \
                 than --model",
                dir.display()
            )));
        }
        Ok(())
    }
}
