//! [`Scorer`]: the model behind the loss-based descriptors (method §3, items 3-6).
//!
//! A scorer works on batches, never one pair at a time. Implementations: the Qwen3-VL
//! family loaded from a local safetensors folder (the paper's scorer) and a trained
//! `tiny-vlm` checkpoint (a proxy for machines without a large model). `gdo describe`
//! only sees this trait, so the descriptor math (VDS = blind - video, PPL, the SC
//! Jaccard) lives in one place and is the same for every model.

use std::sync::Arc;

use image::RgbImage;

use crate::error::{GdoError, Result};

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

    /// The fold of its training table the model never saw (`gdo train --holdout-fold`),
    /// if it was trained with one left out.
    fn holdout(&self) -> Option<Holdout> {
        None
    }

    /// Answer-only mean token cross-entropy with and without frames, one entry per item,
    /// in order. A batch of N gives the same numbers as N batches of one.
    fn answer_losses(&self, items: &[ScoreItem<'_>]) -> Result<Vec<AnswerLosses>>;

    /// TNC in `llm` mode: greedy, at most 3 new tokens, the method's text-only prompt;
    /// 1.0 for a reply containing "temporal", 0.0 for "static", else 0.5.
    fn tnc_llm(&self, questions: &[&str]) -> Result<Vec<f64>>;

    /// `n` sampled answers per item given its frames (top-p 0.9, temperature 0.8, at
    /// most 32 new tokens), deterministic for a seed. SC is computed from these by the
    /// caller.
    fn sample_answers(&self, items: &[ScoreItem<'_>], n: usize, seed: u64) -> Result<Vec<Vec<String>>>;
}

/// The model(s) `gdo describe` scores with: one model for every row, or the K models of
/// a cross-fit, where the model that held out fold `i` scores the rows with
/// `gdo_fold(video_uid, K) = i`.
///
/// Why cross-fit: a small proxy trained on the very pairs it scores can use the frames
/// as a key to memorise answers it cannot work out (arithmetic with random numbers,
/// say), and then shows VDS on pairs that need no frames at all. Scored by a model
/// that never saw the pair, frames only help where they generalise.
#[derive(Clone)]
pub struct Scorers {
    /// One model, or model `i` held out fold `i` of `models.len()`.
    models: Vec<Arc<dyn Scorer>>,
}

impl Scorers {
    /// One model for every row.
    pub fn one(model: Arc<dyn Scorer>) -> Self {
        Self { models: vec![model] }
    }

    /// The K >= 2 models of a cross-fit, in any order: each must hold out a different
    /// fold of the same K (`names` name them in errors).
    pub fn cross_fit(models: Vec<Arc<dyn Scorer>>, names: &[String]) -> Result<Self> {
        if names.len() != models.len() {
            return Err(GdoError::Usage(format!("{} scorer(s) but {} name(s)", models.len(), names.len())));
        }
        let k = models.len() as u64;
        let mut by_fold: Vec<Option<Arc<dyn Scorer>>> = vec![None; models.len()];
        for (m, name) in models.into_iter().zip(names) {
            let Some(h) = m.holdout() else {
                return Err(GdoError::Usage(format!(
                    "--scorer {name} was trained on every fold: cross-fitting with {k} scorers needs models \
                     trained with --holdout-fold 0/{k} .. {}/{k}",
                    k - 1
                )));
            };
            if h.folds != k {
                return Err(GdoError::Usage(format!(
                    "--scorer {name} holds out fold {h} but {k} scorers were given: give one model per fold"
                )));
            }
            let slot = &mut by_fold[h.fold as usize];
            if slot.is_some() {
                return Err(GdoError::Usage(format!("--scorer {name}: a second model holding out fold {h}")));
            }
            *slot = Some(m);
        }
        // k models, k distinct folds below k: every slot is filled.
        Ok(Self { models: by_fold.into_iter().flatten().collect() })
    }

    /// Folds of the cross-fit (1: one model for every row).
    pub fn folds(&self) -> usize {
        self.models.len()
    }

    /// The model that scores the row of `video_uid` (NULL hashes as '').
    pub fn index_for(&self, video_uid: Option<&str>) -> usize {
        match self.models.len() {
            1 => 0,
            k => gdo_udfs::fold_of(video_uid.unwrap_or(""), k as u64) as usize,
        }
    }

    pub fn model(&self, index: usize) -> &dyn Scorer {
        self.models[index].as_ref()
    }

    /// For reports: `tiny-vlm`, or `tiny-vlm cross-fitted over 2 folds of video_uid`.
    pub fn describe(&self) -> String {
        match self.models.len() {
            1 => self.models[0].name().to_owned(),
            k => format!("{} cross-fitted over {k} folds of video_uid", self.models[0].name()),
        }
    }
}

/// Pairs a model was not trained on: fold `fold` of `folds`, by `gdo_fold(video_uid, folds)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holdout {
    pub fold: u64,
    pub folds: u64,
}

impl std::fmt::Display for Holdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.fold, self.folds)
    }
}

impl std::str::FromStr for Holdout {
    type Err = String;
    /// `I/K` with 0 <= I < K and K >= 2.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s}: expected I/K (fold I of K folds, 0 <= I < K, K >= 2)");
        let (i, k) = s.split_once('/').ok_or_else(bad)?;
        let (fold, folds) = (i.trim().parse::<u64>().map_err(|_| bad())?, k.trim().parse::<u64>().map_err(|_| bad())?);
        if folds < 2 || fold >= folds {
            return Err(bad());
        }
        Ok(Self { fold, folds })
    }
}
