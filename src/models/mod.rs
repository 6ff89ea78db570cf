//! The models, below both stages that use them: `describe` scores pairs through the
//! [`Scorer`] trait and `train` fine-tunes the same models.
//!
//! - [`scorer`]: the [`Scorer`] trait (answer losses, sampled answers, TNC replies).
//! - [`qwen3_vl`]: Qwen3-VL (the paper's scorer) built from a `VarBuilder`.
//! - [`tiny_vlm`]: the small model gdo trains from scratch, and its proxy scorer.
//! - [`weights`]: seeded initialisation and checked loading of `model.safetensors`.
//! - [`load`]: a model folder (or a `gdo train` output) to a [`Scorer`].

pub mod load;
pub mod qwen3_vl;
pub mod scorer;
pub mod tiny_vlm;
pub mod weights;

pub use load::load_scorer;
pub use scorer::{AnswerLosses, ScoreItem, Scorer, Scorers};
