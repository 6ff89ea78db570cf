//! [`Qwen3VlScorer`]: the paper's scorer. Answer-only losses with and without frames in
//! padded batches, TNC by a greedy three-token reply, and seeded top-p sampling for SC.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::model::Qwen3VlModel;
use super::processor::{FramePatches, Padding, Processor, Sequence, answer_targets};
use super::text::KvCache;
use crate::error::{GdoError, Result};
use crate::models::scorer::{AnswerLosses, ScoreItem, Scorer};

/// The method's TNC prompt (method §3, TNC).
pub const TNC_PROMPT: &str = "Decide if the question requires temporal reasoning over multiple frames.\n\
                              Answer only one word: Temporal or Static.\nQuestion: ";
/// TNC: at most this many new tokens, greedy.
pub const TNC_MAX_NEW_TOKENS: usize = 3;
/// SC sampling (method §3, item 6).
pub const SC_TOP_P: f64 = 0.9;
pub const SC_TEMPERATURE: f64 = 0.8;
pub const SC_MAX_NEW_TOKENS: usize = 32;

/// Qwen3-VL loaded from a local checkpoint folder.
pub struct Qwen3VlScorer {
    model: Qwen3VlModel,
    processor: Processor,
}

impl Qwen3VlScorer {
    /// Loads `config.json`, `tokenizer.json`, `*.safetensors` (and
    /// `preprocessor_config.json` if present) from `dir`, in bf16 on a GPU and f32 on CPU.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_dtype(dir, device, crate::device::model_dtype(device))
    }

    /// As [`Self::load`] with an explicit dtype (e.g. f32 on a GPU for exactness, or bf16
    /// on CPU to exercise the GPU numerics).
    pub fn load_with_dtype(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let model = Qwen3VlModel::load(dir, dtype, device)?;
        let processor = Processor::load(dir, &model.config)?;
        Ok(Self { model, processor })
    }

    /// A scorer over an already-built model (e.g. one being trained, whose weights are
    /// variables).
    pub fn from_parts(model: Qwen3VlModel, processor: Processor) -> Self {
        Self { model, processor }
    }

    pub fn model(&self) -> &Qwen3VlModel {
        &self.model
    }

    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// The per-frame pixel budget (default: the checkpoint's `preprocessor_config.json`).
    pub fn set_pixel_range(&mut self, min_pixels: usize, max_pixels: usize) -> Result<()> {
        self.processor.set_pixel_range(min_pixels, max_pixels)
    }

    fn frames(&self, item: usize, frames: &[image::RgbImage]) -> Result<Vec<FramePatches>> {
        frames
            .iter()
            .map(|f| self.processor.frame_patches(f))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| GdoError::Usage(format!("item {item}: {e}")))
    }

    /// Mean answer-token cross-entropy per sequence (NaN for an empty answer: undefined,
    /// stored as null downstream).
    pub fn sequence_losses(&self, seqs: &[Sequence]) -> Result<Vec<f64>> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let device = self.model.device().clone();
        let refs: Vec<&Sequence> = seqs.iter().collect();
        let (input, offsets) = self.processor.collate(&refs, Padding::Right, &device)?;
        let hidden = self.model.forward_hidden(&input, None)?;
        let (b, l, _) = hidden.dims3()?;
        let targets = answer_targets(&refs, &offsets, l);
        let mut sums = vec![0f64; b];
        let mut counts = vec![0usize; b];
        if !targets.rows.is_empty() {
            let nll: Vec<f32> = self.model.token_nll(&hidden, &targets.rows, &targets.ids)?.to_vec1()?;
            for (v, &i) in nll.iter().zip(&targets.owner) {
                sums[i] += *v as f64;
                counts[i] += 1;
            }
        }
        Ok(sums.iter().zip(&counts).map(|(s, &c)| if c == 0 { f64::NAN } else { s / c as f64 }).collect())
    }

    /// Generates up to `max_new` tokens after each prompt, `copies` continuations per
    /// prompt (the prompt is prefilled once and its cache shared). `pick(row, logits)`
    /// chooses the next token of continuation `row` (prompt `row / copies`).
    pub fn generate(
        &self,
        prompts: &[Sequence],
        copies: usize,
        max_new: usize,
        mut pick: impl FnMut(usize, &[f32]) -> Result<u32>,
    ) -> Result<Vec<Vec<u32>>> {
        if prompts.is_empty() || copies == 0 {
            return Ok(vec![Vec::new(); prompts.len() * copies]);
        }
        let device = self.model.device().clone();
        let refs: Vec<&Sequence> = prompts.iter().collect();
        let (input, _) = self.processor.collate(&refs, Padding::Left, &device)?;
        let mut cache = KvCache::new();
        let hidden = self.model.forward_hidden(&input, Some(&mut cache))?;
        let l = hidden.dim(1)?;
        let mut logits = self.model.text.lm_head(&hidden.i((.., l - 1))?)?.to_dtype(DType::F32)?;
        let mut mask = input.attention_mask;
        let mut next_pos: Vec<i64> = prompts.iter().map(|p| p.next_position).collect();
        if copies > 1 {
            let rows: Vec<u32> = (0..prompts.len() as u32).flat_map(|r| std::iter::repeat_n(r, copies)).collect();
            let rows_t = Tensor::from_vec(rows.clone(), rows.len(), &device)?;
            cache = cache.select_rows(&rows_t)?;
            logits = logits.index_select(&rows_t, 0)?;
            mask = rows.iter().map(|&r| mask[r as usize].clone()).collect();
            next_pos = rows.iter().map(|&r| next_pos[r as usize]).collect();
        }
        let n = next_pos.len();
        let stop = &self.processor.tokens.stop;
        let mut out = vec![Vec::new(); n];
        let mut done = vec![false; n];
        for step in 0..max_new {
            let table: Vec<Vec<f32>> = logits.to_vec2()?;
            let mut next = vec![self.processor.tokens.pad; n];
            for r in 0..n {
                if done[r] {
                    continue;
                }
                let t = pick(r, &table[r])?;
                if stop.contains(&t) {
                    done[r] = true;
                } else {
                    out[r].push(t);
                }
                next[r] = t;
            }
            if step + 1 == max_new || done.iter().all(|d| *d) {
                break;
            }
            mask.iter_mut().for_each(|m| m.push(true));
            let step_input = super::model::ModelInput {
                input_ids: next.iter().map(|&t| vec![t]).collect(),
                attention_mask: mask.clone(),
                positions: next_pos.iter().map(|&p| vec![[p; 3]]).collect(),
                pixel_values: None,
                image_grids: Vec::new(),
                bias_override: None,
            };
            next_pos.iter_mut().for_each(|p| *p += 1);
            let hidden = self.model.forward_hidden(&step_input, Some(&mut cache))?;
            logits = self.model.text.lm_head(&hidden.i((.., 0))?)?.to_dtype(DType::F32)?;
        }
        Ok(out)
    }
}

/// The method's reply rule: "temporal" -> 1.0, else "static" -> 0.0, else 0.5.
pub fn tnc_from_reply(reply: &str) -> f64 {
    let r = reply.to_lowercase();
    if r.contains("temporal") {
        1.0
    } else if r.contains("static") {
        0.0
    } else {
        0.5
    }
}

/// Greedy choice: the first index of the largest logit. `-inf` marks a token the caller
/// masked out; NaN or `+inf` (or nothing left) is an error.
pub fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<usize> = None;
    for (i, v) in logits.iter().enumerate() {
        if v.is_nan() || *v == f32::INFINITY {
            return Err(GdoError::Usage(format!("the model produced a non-finite logit ({v})")));
        }
        if *v > f32::NEG_INFINITY && best.is_none_or(|b| *v > logits[b]) {
            best = Some(i);
        }
    }
    best.map(|b| b as u32).ok_or_else(|| GdoError::Usage("every token is masked out".into()))
}

/// Nucleus sampling: softmax of `logits / temperature` over the tokens not masked out
/// (`-inf`), keep the most probable until their mass reaches `top_p` (at least one),
/// draw among them.
pub fn sample_top_p(logits: &[f32], temperature: f64, top_p: f64, rng: &mut impl Rng) -> Result<u32> {
    let max = logits[argmax(logits)? as usize] as f64; // also rejects NaN and +inf
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| (i, ((v as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Stable order: by probability, ties by token id.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for p in &probs {
        kept += 1;
        mass += p.1 / total;
        if mass >= top_p {
            break;
        }
    }
    let nucleus = &probs[..kept];
    let sum: f64 = nucleus.iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * sum;
    for p in nucleus {
        u -= p.1;
        if u < 0.0 {
            return Ok(p.0 as u32);
        }
    }
    Ok(nucleus[kept - 1].0 as u32)
}

/// Seed of one sampled answer: depends on the run seed, the pair's text, its frame count
/// and the sample number, never on batch composition.
fn sample_seed(seed: u64, item: &ScoreItem<'_>, k: usize) -> u64 {
    let mut h = Sha256::new();
    h.update(b"gdo/qwen3-vl/sc");
    h.update(seed.to_le_bytes());
    h.update((k as u64).to_le_bytes());
    h.update((item.frames.len() as u64).to_le_bytes());
    h.update((item.question.len() as u64).to_le_bytes());
    h.update(item.question.as_bytes());
    h.update(item.answer.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("sha256 has 32 bytes"))
}

impl Scorer for Qwen3VlScorer {
    fn name(&self) -> &str {
        "qwen3-vl"
    }

    fn answer_losses(&self, items: &[ScoreItem<'_>]) -> Result<Vec<AnswerLosses>> {
        let mut sighted = Vec::with_capacity(items.len());
        let mut blind = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            sighted.push(self.processor.scoring_sequence(it.question, it.answer, self.frames(i, it.frames)?)?);
            blind.push(self.processor.scoring_sequence(it.question, it.answer, Vec::new())?);
        }
        let video = self.sequence_losses(&sighted)?;
        let no_frames = self.sequence_losses(&blind)?;
        Ok(video
            .into_iter()
            .zip(no_frames)
            .map(|(loss_video, loss_blind)| AnswerLosses { loss_video, loss_blind })
            .collect())
    }

    fn tnc_llm(&self, questions: &[&str]) -> Result<Vec<f64>> {
        let prompts = questions
            .iter()
            .map(|q| self.processor.prompt(&format!("{TNC_PROMPT}{q}"), Vec::new()))
            .collect::<Result<Vec<_>>>()?;
        let replies = self.generate(&prompts, 1, TNC_MAX_NEW_TOKENS, |_, logits| argmax(logits))?;
        replies.iter().map(|ids| Ok(tnc_from_reply(&self.processor.decode(ids)?))).collect()
    }

    fn sample_answers(&self, items: &[ScoreItem<'_>], n: usize, seed: u64) -> Result<Vec<Vec<String>>> {
        if n == 0 {
            return Ok(vec![Vec::new(); items.len()]);
        }
        let prompts = items
            .iter()
            .enumerate()
            .map(|(i, it)| self.processor.prompt(it.question, self.frames(i, it.frames)?))
            .collect::<Result<Vec<_>>>()?;
        let mut rngs: Vec<ChaCha8Rng> = items
            .iter()
            .flat_map(|it| (0..n).map(move |k| ChaCha8Rng::seed_from_u64(sample_seed(seed, it, k))))
            .collect();
        let replies = self.generate(&prompts, n, SC_MAX_NEW_TOKENS, |row, logits| {
            sample_top_p(logits, SC_TEMPERATURE, SC_TOP_P, &mut rngs[row])
        })?;
        let texts = replies.iter().map(|ids| self.processor.decode(ids)).collect::<Result<Vec<_>>>()?;
        Ok(texts.chunks(n).map(|c| c.to_vec()).collect())
    }
}
