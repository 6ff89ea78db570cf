//! `gdo train`: the candle trainer fed from subset tables, the `tiny-vlm` model and
//! its proxy [`crate::models::scorer::Scorer`].
//!
//! - [`tokenizer`]: word-level tokenizer (`tokenizers` crate) saved as `tokenizer.json`.
//! - [`batcher`]: DataFusion stream -> tensors, frames fetched on the fly.
//! - [`tiny_vlm`]: the model trained from scratch.
//! - [`trainee`]: what the loop needs from a model; [`qwen3_vl`]: fine-tuning Qwen3-VL.
//! - [`optimizer`]: AdamW, clipping, schedule.
//! - [`checkpoint`]: atomic checkpoints and resume.
//! - [`eval`]: benchmark accuracy by ranking candidate answers.
//! - [`train_loop`]: [`train`] itself and the Parquet metrics log.
//! - [`scorer`]: the proxy scorer, [`scorer::TinyVlmScorer`].

pub mod batcher;
pub mod checkpoint;
pub mod eval;
pub mod optimizer;
pub mod qwen3_vl;
pub mod train_loop;
pub mod trainee;

use datafusion::prelude::DataFrame;
use serde::{Deserialize, Serialize};

pub use crate::models::tiny_vlm::{Holdout, TinyVlm, TinyVlmConfig};
pub use train_loop::{evaluate, train};

/// The training recipe. Defaults are sized so that six models train on the ~700-pair
/// sample pool in minutes on two CPU cores.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: u64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (0 = none).
    pub grad_clip: f64,
    /// Checkpoint (and evaluate) every this many samples; always at the end.
    pub checkpoint_every: u64,
    /// Fraction of training pairs shown without frames, so blind input is in
    /// distribution for the proxy scorer.
    pub blind_fraction: f64,
    /// Model hyper-parameters (`vocab_size` is set from the tokenizer; `holdout`, when
    /// set, leaves that fold of the table out of training and is saved with the model).
    pub model: TinyVlmConfig,
    /// Fine-tune this checkpoint instead of training `tiny-vlm` from its seeded
    /// initialisation: a Qwen3-VL folder (of `model`, only `max_frames` applies then) or
    /// a `tiny-vlm` run folder or checkpoint (its config and tokenizer are kept).
    pub base_model: Option<std::path::PathBuf>,
    /// Largest vocabulary of a tokenizer built from the training table.
    pub max_vocab: usize,
    /// A `tokenizer.json` to reuse (models compared with each other must share one).
    pub tokenizer: Option<String>,
    /// Evaluation: at most this many questions per split and candidates per question.
    pub eval_max_questions: usize,
    pub eval_max_candidates: usize,
    pub device: candle_core::Device,
    /// Show a progress bar.
    pub progress: bool,
    /// Fault injection (tests): stop (as if killed) after this many steps, after any
    /// checkpoint due.
    #[cfg(feature = "fault-injection")]
    pub stop_after_steps: Option<u64>,
    /// The tables read (name -> path, version and table id), recorded in each commit of
    /// the run's metrics table.
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            epochs: 1,
            batch_size: 16,
            lr: 3e-3,
            warmup: 10,
            weight_decay: 0.01,
            grad_clip: 1.0,
            checkpoint_every: 256,
            blind_fraction: 0.25,
            model: TinyVlmConfig::default(),
            base_model: None,
            max_vocab: 2000,
            tokenizer: None,
            eval_max_questions: 64,
            eval_max_candidates: 16,
            device: candle_core::Device::Cpu,
            progress: false,
            #[cfg(feature = "fault-injection")]
            stop_after_steps: None,
            inputs: serde_json::Map::new(),
        }
    }
}

/// A benchmark split to evaluate at each checkpoint.
#[derive(Clone)]
pub struct EvalSplit {
    pub name: String,
    pub table: DataFrame,
}

/// Accuracy of one split at one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: u64,
    pub samples_seen: u64,
    pub split: String,
    pub accuracy: f64,
    pub n: u64,
}

/// One row of the `metrics` table: one per evaluated split per checkpoint (split null
/// when no split is evaluated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: u64,
    pub samples_seen: u64,
    pub train_loss: f64,
    pub lr: f64,
    pub split: Option<String>,
    pub accuracy: Option<f64>,
    pub n: Option<u64>,
}

/// What [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub samples_seen: u64,
    pub steps: u64,
    pub final_train_loss: f64,
    pub evals: Vec<EvalRecord>,
    /// Unreadable frames skipped, by kind (`frame_missing`, `frame_undecodable`, ...).
    pub frame_skips: std::collections::BTreeMap<String, u64>,
    /// The last checkpoint folder (loads as a `--scorer`).
    pub checkpoint: std::path::PathBuf,
    /// Whether the run stopped early (`stop_after_steps`).
    pub stopped_early: bool,
}
