//! What the training loop needs from a model, so one loop (order, blind draws, AdamW,
//! clipping, checkpoints, resume, evaluation) trains every model `gdo train` knows:
//! [`TinyVlmTrainee`] (trained from a seeded initialisation) and
//! [`crate::train::qwen3_vl::Qwen3VlTrainee`] (fine-tuned from a checkpoint folder).

use std::path::Path;

use candle_core::{D, Device, Tensor, Var};
use candle_nn::VarMap;
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::models::tiny_vlm::inputs::{FramePrep, build_batch, encode_pair};
use crate::models::tiny_vlm::model::{TinyVlm, TinyVlmConfig, batch_mean_nll, row_mean_nll, token_nll};
use crate::models::tiny_vlm::scorer::answer_losses;
use crate::models::tiny_vlm::tokenizer::{PAD, TextTokenizer};
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
    /// [`Self::candidate_losses`] of several questions (row i: question i's losses); a
    /// model may score them in one batch.
    fn candidate_losses_many(&self, questions: &[(&str, &[RgbImage])], candidates: &[String]) -> Result<Vec<Vec<f64>>> {
        questions.iter().map(|(q, f)| self.candidate_losses(q, f, candidates)).collect()
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

impl TinyVlmTrainee {
    /// Candidate losses of a few questions: each question's frames encoded and its
    /// prompt decoded once (a prefill), then only the candidates' tokens are stepped
    /// through, every candidate continuing its question's cache. The same losses as
    /// decoding every (question, candidate) pair whole, at a fraction of the cost. A
    /// question so long that a candidate would truncate it is scored whole instead.
    fn rank_chunk(&self, chunk: &[(&str, &[RgbImage])], candidates: &[String]) -> Result<Vec<Vec<f64>>> {
        let cfg = self.model.config();
        let (q, c) = (chunk.len(), candidates.len());
        let prompts = chunk.iter().map(|(qu, _)| encode_pair(&self.tok, cfg, qu, "")).collect::<Result<Vec<_>>>()?;
        // Each (question, candidate): the answer tokens and EOS after the prompt.
        let mut answers: Vec<Vec<u32>> = Vec::with_capacity(q * c);
        for (i, (qu, _)) in chunk.iter().enumerate() {
            for cand in candidates {
                let e = encode_pair(&self.tok, cfg, qu, cand)?;
                let n = e.text_mask.iter().filter(|&&m| m > 0.0).count();
                if e.prompt_len != prompts[i].prompt_len || n <= e.prompt_len {
                    return chunk.iter().map(|(qu, f)| self.candidate_losses(qu, f, candidates)).collect();
                }
                answers.push(e.tokens[e.prompt_len..n].to_vec());
            }
        }
        let frame_refs: Vec<&[RgbImage]> = chunk.iter().map(|(_, f)| *f).collect();
        let one = build_batch(&prompts, &frame_refs, &vec![false; q], cfg, &self.device)?;
        let v = self.model.encode_frames(&one.frames)?;
        // The prompts alone (encode_pair put EOS after the empty answer).
        let width = prompts.iter().map(|p| p.prompt_len).max().unwrap_or(1);
        let (mut tokens, mut mask) = (vec![PAD; q * width], vec![0f32; q * width]);
        for (i, p) in prompts.iter().enumerate() {
            tokens[i * width..i * width + p.prompt_len].copy_from_slice(&p.tokens[..p.prompt_len]);
            mask[i * width..i * width + p.prompt_len].iter_mut().for_each(|m| *m = 1.0);
        }
        let (logits, cache) = self.model.prefill(
            &v,
            &one.frame_mask,
            &Tensor::from_vec(tokens, (q, width), &self.device)?,
            &Tensor::from_vec(mask, (q, width), &self.device)?,
        )?;
        let vocab = logits.dim(2)?;
        let last: Vec<u32> = (0..q).map(|i| (i * width + prompts[i].prompt_len - 1) as u32).collect();
        let first =
            logits.reshape((q * width, vocab))?.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?;
        let owners: Vec<u32> = (0..q * c).map(|r| (r / c) as u32).collect();
        let owners = Tensor::new(owners.as_slice(), &self.device)?;
        let mut log_probs =
            candle_nn::ops::log_softmax(&first.index_select(&owners, 0)?, D::Minus1)?.to_vec2::<f32>()?;
        let mut cache = cache.select_rows(&owners)?;
        let mut nll = vec![0f64; q * c];
        let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
        for j in 0..longest {
            for (r, a) in answers.iter().enumerate() {
                if let Some(&t) = a.get(j) {
                    nll[r] -= f64::from(log_probs[r][t as usize]);
                }
            }
            if j + 1 == longest {
                break;
            }
            // Feed answer token j (padding where a candidate has ended: that row is done).
            let feed: Vec<u32> = answers.iter().map(|a| a.get(j).copied().unwrap_or(PAD)).collect();
            let pos: Vec<u32> =
                (0..q * c).map(|r| (prompts[r / c].prompt_len + j).min(cfg.max_text - 1) as u32).collect();
            let step = self.model.step(
                &Tensor::new(feed.as_slice(), &self.device)?,
                &Tensor::new(pos.as_slice(), &self.device)?,
                &mut cache,
            )?;
            log_probs = candle_nn::ops::log_softmax(&step, D::Minus1)?.to_vec2::<f32>()?;
        }
        Ok(nll
            .chunks(c)
            .enumerate()
            .map(|(i, row)| row.iter().enumerate().map(|(k, l)| l / answers[i * c + k].len() as f64).collect())
            .collect())
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
        let b = build_batch(&texts, &frame_refs, blind, cfg, &self.device)?.trimmed()?;
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

    fn candidate_losses_many(&self, questions: &[(&str, &[RgbImage])], candidates: &[String]) -> Result<Vec<Vec<f64>>> {
        let c = candidates.len();
        if c == 0 {
            return Ok(vec![Vec::new(); questions.len()]);
        }
        let mut out = Vec::with_capacity(questions.len());
        for chunk in questions.chunks((512 / c).max(1)) {
            out.extend(self.rank_chunk(chunk, candidates)?);
        }
        Ok(out)
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
        // Several questions at once (prefix shared, candidates stepped) give each
        // question's own losses.
        let other: Vec<RgbImage> = frames.iter().map(image::imageops::flip_horizontal).collect();
        let asked = [("what colour is the disc", &frames[..]), ("left", &other[..]), ("red", &[][..])];
        let many = model.candidate_losses_many(&asked, &candidates).unwrap();
        for (row, (q, f)) in many.iter().zip(asked) {
            let alone = model.candidate_losses(q, f, &candidates).unwrap();
            assert!(row.iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-4), "{q}: {row:?} vs {alone:?}");
        }
        // The frames matter: without them the losses differ.
        let blind = model.candidate_losses("what colour is the disc", &[], &candidates).unwrap();
        assert!(blind.iter().zip(&shared).any(|(a, b)| (a - b).abs() > 1e-4), "{blind:?} vs {shared:?}");
    }
}
