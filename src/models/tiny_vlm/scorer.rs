//! A trained `tiny-vlm` checkpoint as a [`Scorer`]: a proxy for machines without a
//! large model.
//!
//! What a proxy can tell: for data like its own training pool, whether an answer is
//! predictable from the question alone (`loss_blind`) or needs the frames
//! (`loss_video`), so VDS = blind - video ranks pairs by how much they lean on the
//! frames; PPL ranks pairs by how surprising their answers are to a small model. What
//! it cannot tell: anything a large pretrained model knows (world knowledge, reading
//! text in images, fine detail at 32x32), and its TNC `llm` replies and sampled answers
//! are only as good as a few-hundred-pair model: treat them as weak signals.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{GdoError, Result};
use crate::models::qwen3_vl::scorer::{SC_TEMPERATURE, SC_TOP_P, argmax, sample_top_p};
use crate::models::scorer::{AnswerLosses, ScoreItem, Scorer};
use crate::models::tiny_vlm::inputs::{build_batch, encode_pair, prepare_frame, resample_indices};
use crate::models::tiny_vlm::model::{TinyVlm, row_mean_nll, token_nll};
use crate::models::tiny_vlm::tokenizer::{EOS, PAD, TextTokenizer};
use crate::models::weights;

/// Pairs per forward pass.
const BATCH: usize = 8;
/// The TNC `llm` prompt, in the words a `tiny-vlm` vocabulary always has.
const TNC_PROMPT: &str = "is this question temporal or static ?";

pub struct TinyVlmScorer {
    model: TinyVlm,
    tok: TextTokenizer,
    device: Device,
}

impl TinyVlmScorer {
    /// Load a checkpoint folder (`config.json` with `"model_type": "tiny-vlm"`,
    /// `model.safetensors`, `tokenizer.json`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let cfg = crate::models::tiny_vlm::model::read_config(dir)?;
        let tok = TextTokenizer::load(&dir.join("tokenizer.json"))?;
        if tok.vocab_size() != cfg.vocab_size {
            return Err(GdoError::Usage(format!(
                "{}: tokenizer.json has {} entries but config.json says vocab_size {}",
                dir.display(),
                tok.vocab_size(),
                cfg.vocab_size
            )));
        }
        let varmap = VarMap::new();
        let model = TinyVlm::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        weights::load_weights(&varmap, dir, device)?;
        Ok(Self { model, tok, device: device.clone() })
    }

    fn frames(&self, frames: &[RgbImage]) -> Vec<RgbImage> {
        let cfg = self.model.config();
        resample_indices(frames.len(), cfg.max_frames).into_iter().map(|i| prepare_frame(&frames[i], cfg)).collect()
    }

    /// Generate after `[BOS] question [SEP]` for every prompt `(question, frames)`,
    /// `copies` continuations each (row `p * copies + c`), all rows in one batch: each
    /// prompt's frames are encoded once, the prompts prefilled once, then one cached
    /// decoder step per new token. `pick(row, logits)` chooses the next token; special
    /// tokens other than EOS are never offered (their logits are -inf). A row stops at
    /// EOS, `max_new` tokens or the model's text length.
    fn generate(
        &self,
        prompts: &[(&str, &[RgbImage])],
        copies: usize,
        max_new: usize,
        mut pick: impl FnMut(usize, &[f32]) -> Result<usize>,
    ) -> Result<Vec<String>> {
        let cfg = self.model.config();
        let t = cfg.max_text;
        let rows = prompts.len() * copies;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let mut texts = Vec::with_capacity(prompts.len());
        for (q, _) in prompts {
            texts.push(encode_pair(&self.tok, cfg, q, "")?);
        }
        let frames: Vec<&[RgbImage]> = prompts.iter().map(|p| p.1).collect();
        let b = build_batch(&texts, &frames, &vec![false; prompts.len()], cfg, &self.device)?;
        let v = self.model.encode_frames(&b.frames)?;
        let owners = Tensor::from_vec((0..rows).map(|r| (r / copies) as u32).collect::<Vec<_>>(), rows, &self.device)?;
        // The prompts alone (encode_pair also placed EOS after the empty answer).
        let mut len: Vec<usize> = (0..rows).map(|r| texts[r / copies].prompt_len).collect();
        let (mut tokens, mut mask) = (vec![PAD; rows * t], vec![0f32; rows * t]);
        for r in 0..rows {
            let p = &texts[r / copies].tokens[..len[r]];
            tokens[r * t..r * t + p.len()].copy_from_slice(p);
            mask[r * t..r * t + p.len()].iter_mut().for_each(|m| *m = 1.0);
        }
        let (logits, mut cache) = self.model.prefill(
            &v.index_select(&owners, 0)?,
            &b.frame_mask.index_select(&owners, 0)?,
            &Tensor::from_vec(tokens, (rows, t), &self.device)?,
            &Tensor::from_vec(mask, (rows, t), &self.device)?,
        )?;
        let vocab = logits.dim(2)?;
        let last =
            Tensor::from_vec((0..rows).map(|r| (r * t + len[r] - 1) as u32).collect::<Vec<_>>(), rows, &self.device)?;
        let mut logits = logits.reshape((rows * t, vocab))?.index_select(&last, 0)?;
        let mut produced: Vec<Vec<u32>> = vec![Vec::new(); rows];
        let mut done: Vec<bool> = len.iter().map(|&l| l >= t || max_new == 0).collect();
        while !done.iter().all(|d| *d) {
            let table: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
            let (mut next, mut pos) = (vec![PAD; rows], vec![0u32; rows]);
            for r in 0..rows {
                if done[r] {
                    continue;
                }
                let mut row = table[r].clone();
                for (i, l) in row.iter_mut().enumerate() {
                    if i != EOS as usize && i < 5 {
                        *l = f32::NEG_INFINITY;
                    }
                }
                let tok = pick(r, &row)?;
                if tok == EOS as usize {
                    done[r] = true;
                    continue;
                }
                produced[r].push(tok as u32);
                len[r] += 1;
                (next[r], pos[r]) = (tok as u32, (len[r] - 1) as u32);
                done[r] = produced[r].len() >= max_new || len[r] >= t;
            }
            if done.iter().all(|d| *d) {
                break;
            }
            // Finished rows step on with padding; their outputs are not read.
            logits = self.model.step(
                &Tensor::from_vec(next, rows, &self.device)?,
                &Tensor::from_vec(pos, rows, &self.device)?,
                &mut cache,
            )?;
        }
        produced.iter().map(|p| self.tok.decode(p)).collect()
    }
}

impl Scorer for TinyVlmScorer {
    fn name(&self) -> &str {
        "tiny-vlm"
    }

    fn holdout(&self) -> Option<crate::models::tiny_vlm::Holdout> {
        self.model.config().holdout
    }

    fn answer_losses(&self, items: &[ScoreItem<'_>]) -> Result<Vec<AnswerLosses>> {
        let frames: Vec<Vec<RgbImage>> = items.iter().map(|it| self.frames(it.frames)).collect();
        let triples: Vec<(&str, &str, &[RgbImage])> =
            items.iter().zip(&frames).map(|(it, f)| (it.question, it.answer, f.as_slice())).collect();
        let video = answer_losses(&self.model, &self.tok, &triples, false, BATCH, &self.device)?;
        // Blind: no frames at all (every frame slot masked out).
        let blind = answer_losses(&self.model, &self.tok, &triples, true, BATCH, &self.device)?;
        Ok(video.into_iter().zip(blind).map(|(v, b)| AnswerLosses { loss_video: v, loss_blind: b }).collect())
    }

    fn tnc_llm(&self, questions: &[&str]) -> Result<Vec<f64>> {
        let prompts: Vec<String> = questions.iter().map(|q| format!("{TNC_PROMPT} {q}")).collect();
        let items: Vec<(&str, &[RgbImage])> = prompts.iter().map(|p| (p.as_str(), &[][..])).collect();
        let replies = self.generate(&items, 1, 3, |_, logits| Ok(argmax(logits)? as usize))?;
        Ok(replies
            .iter()
            .map(|reply| {
                if reply.contains("temporal") {
                    1.0
                } else if reply.contains("static") {
                    0.0
                } else {
                    0.5
                }
            })
            .collect())
    }

    fn sample_answers(&self, items: &[ScoreItem<'_>], n: usize, seed: u64) -> Result<Vec<Vec<String>>> {
        if n == 0 {
            return Ok(vec![Vec::new(); items.len()]);
        }
        let frames: Vec<Vec<RgbImage>> = items.iter().map(|it| self.frames(it.frames)).collect();
        let prompts: Vec<(&str, &[RgbImage])> =
            items.iter().zip(&frames).map(|(it, f)| (it.question, f.as_slice())).collect();
        // Sample k of every item draws from stream k of the seed's ChaCha8 generator: an
        // item's samples do not depend on which batch it comes in.
        let mut rngs: Vec<ChaCha8Rng> = (0..items.len() * n)
            .map(|r| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream((r % n) as u64);
                rng
            })
            .collect();
        let replies = self.generate(&prompts, n, 32, |row, logits| {
            Ok(sample_top_p(logits, SC_TEMPERATURE, SC_TOP_P, &mut rngs[row])? as usize)
        })?;
        Ok(replies.chunks(n).map(|c| c.to_vec()).collect())
    }
}

/// Answer losses of `(question, answer, frames)` triples, in batches of `batch`.
pub fn answer_losses(
    model: &TinyVlm,
    tok: &TextTokenizer,
    items: &[(&str, &str, &[RgbImage])],
    blind: bool,
    batch: usize,
    device: &Device,
) -> Result<Vec<f64>> {
    let cfg = model.config();
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch.max(1)) {
        let texts = chunk.iter().map(|(q, a, _)| encode_pair(tok, cfg, q, a)).collect::<Result<Vec<_>>>()?;
        let frames: Vec<&[RgbImage]> = chunk.iter().map(|(_, _, f)| *f).collect();
        let b = build_batch(&texts, &frames, &vec![blind; chunk.len()], cfg, device)?;
        let logits = model.forward(&b.frames, &b.frame_mask, &b.tokens, &b.text_mask)?;
        let losses = row_mean_nll(&token_nll(&logits, &b.targets)?, &b.loss_mask)?;
        out.extend(losses.to_vec1::<f32>()?.into_iter().map(f64::from));
    }
    Ok(out)
}
