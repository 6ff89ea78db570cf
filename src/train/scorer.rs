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

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::describe::scorer::{AnswerLosses, ScoreItem, Scorer};
use crate::error::{GdoError, Result};
use crate::train::batcher::{EncodedText, build_batch, encode_pair, prepare_frame, resample_indices};
use crate::train::checkpoint;
use crate::train::eval::answer_losses;
use crate::train::tiny_vlm::TinyVlm;
use crate::train::tokenizer::{EOS, PAD, TextTokenizer};

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
        let cfg = checkpoint::read_config(dir)?;
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
        checkpoint::load_weights(&varmap, dir, device)?;
        Ok(Self { model, tok, device: device.clone() })
    }

    fn frames(&self, frames: &[RgbImage]) -> Vec<RgbImage> {
        let cfg = self.model.config();
        resample_indices(frames.len(), cfg.max_frames).into_iter().map(|i| prepare_frame(&frames[i], cfg)).collect()
    }

    /// Generate after `[BOS] question [SEP]`: greedy when `rng` is None, else top-p
    /// sampling. Special tokens other than EOS are never produced.
    fn generate(
        &self,
        question: &str,
        frames: &[RgbImage],
        max_new: usize,
        mut rng: Option<(&mut ChaCha8Rng, f64, f64)>,
    ) -> Result<String> {
        let cfg = self.model.config();
        let enc = encode_pair(&self.tok, cfg, question, "")?;
        let mut ids: Vec<u32> = enc.tokens[..enc.prompt_len].to_vec();
        let mut produced = Vec::new();
        while produced.len() < max_new && ids.len() < cfg.max_text {
            let mut text = EncodedText {
                tokens: vec![PAD; cfg.max_text],
                targets: vec![PAD; cfg.max_text],
                loss_mask: vec![0.0; cfg.max_text],
                text_mask: vec![0.0; cfg.max_text],
                prompt_len: ids.len(),
            };
            text.tokens[..ids.len()].copy_from_slice(&ids);
            text.text_mask[..ids.len()].iter_mut().for_each(|m| *m = 1.0);
            let b = build_batch(&[text], &[frames], &[false], cfg, &self.device)?;
            let logits = self.model.forward(&b.frames, &b.frame_mask, &b.tokens, &b.text_mask)?;
            let last: Vec<f32> = logits.get(0)?.get(ids.len() - 1)?.to_dtype(DType::F32)?.to_vec1()?;
            let allowed = |i: usize| i == EOS as usize || i >= 5;
            let next = match rng.as_mut() {
                None => (0..last.len())
                    .filter(|&i| allowed(i))
                    .fold(EOS as usize, |best, i| if last[i] > last[best] { i } else { best }),
                Some((rng, top_p, temperature)) => {
                    let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let mut probs: Vec<(usize, f64)> = (0..last.len())
                        .filter(|&i| allowed(i))
                        .map(|i| (i, ((last[i] as f64 - max) / *temperature).exp()))
                        .collect();
                    let sum: f64 = probs.iter().map(|p| p.1).sum();
                    probs.iter_mut().for_each(|p| p.1 /= sum);
                    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let mut kept = 0.0;
                    let mut cut = probs.len();
                    for (k, p) in probs.iter().enumerate() {
                        kept += p.1;
                        if kept >= *top_p {
                            cut = k + 1;
                            break;
                        }
                    }
                    let nucleus = &probs[..cut];
                    let total: f64 = nucleus.iter().map(|p| p.1).sum();
                    let mut u = rng.random::<f64>() * total;
                    let mut pick = nucleus[nucleus.len() - 1].0;
                    for p in nucleus {
                        if u < p.1 {
                            pick = p.0;
                            break;
                        }
                        u -= p.1;
                    }
                    pick
                }
            };
            if next == EOS as usize {
                break;
            }
            ids.push(next as u32);
            produced.push(next as u32);
        }
        self.tok.decode(&produced)
    }
}

impl Scorer for TinyVlmScorer {
    fn name(&self) -> &str {
        "tiny-vlm"
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
        questions
            .iter()
            .map(|q| {
                let reply = self.generate(&format!("{TNC_PROMPT} {q}"), &[], 3, None)?;
                Ok(if reply.contains("temporal") {
                    1.0
                } else if reply.contains("static") {
                    0.0
                } else {
                    0.5
                })
            })
            .collect()
    }

    fn sample_answers(&self, items: &[ScoreItem<'_>], n: usize, seed: u64) -> Result<Vec<Vec<String>>> {
        items
            .iter()
            .map(|it| {
                // One stream per item from the seed alone: the same item gets the same
                // samples whatever batch it comes in.
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let frames = self.frames(it.frames);
                (0..n).map(|_| self.generate(it.question, &frames, 32, Some((&mut rng, 0.9, 0.8)))).collect()
            })
            .collect()
    }
}
