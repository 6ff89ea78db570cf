//! [`Scorer`]: the model behind the loss-based descriptors (spec section 2, items 3-6).
//!
//! A scorer works on batches, never one pair at a time. Implementations: the Qwen3-VL
//! family loaded from a local safetensors folder (the paper's scorer) and a trained
//! `tiny-vlm` checkpoint (a proxy for machines without a large model). `gdo describe`
//! only sees this trait, so the descriptor math (VDS = blind - video, PPL, the SC
//! Jaccard) lives in one place and is the same for every model.

use image::RgbImage;

use crate::error::Result;

/// One question-answer pair to score, with its decoded frames (empty for none).
#[derive(Debug, Clone, Copy)]
pub struct ScoreItem<'a> {
    pub question: &'a str,
    pub answer: &'a str,
    pub frames: &'a [RgbImage],
}

/// Mean cross-entropy over the answer tokens only (prompt tokens masked), with the
/// frames given (`loss_video`) and with no frames at all (`loss_blind`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerLosses {
    pub loss_video: f64,
    pub loss_blind: f64,
}

/// A model that scores question-answer pairs.
pub trait Scorer: Send + Sync {
    /// A short name for reports (`qwen3-vl`, `tiny-vlm`, ...).
    fn name(&self) -> &str;

    /// Answer-only mean token cross-entropy with and without frames, one entry per item,
    /// in order. A batch of N gives the same numbers as N batches of one.
    fn answer_losses(&self, items: &[ScoreItem<'_>]) -> Result<Vec<AnswerLosses>>;

    /// TNC in `llm` mode: greedy, at most 3 new tokens, the spec's text-only prompt;
    /// 1.0 for a reply containing "temporal", 0.0 for "static", else 0.5.
    fn tnc_llm(&self, questions: &[&str]) -> Result<Vec<f64>>;

    /// `n` sampled answers per item given its frames (top-p 0.9, temperature 0.8, at
    /// most 32 new tokens), deterministic for a seed. SC is computed from these by the
    /// caller.
    fn sample_answers(&self, items: &[ScoreItem<'_>], n: usize, seed: u64) -> Result<Vec<Vec<String>>>;
}
