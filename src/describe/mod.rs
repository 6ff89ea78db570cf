//! The descriptor job (`gdo describe`) and the model side of the descriptors: the
//! [`Scorer`] trait that loss-based descriptors (VDS, PPL, TNC-llm, SC) are computed
//! through.

pub mod job;
pub mod load;
pub mod qwen3_vl;
pub mod scorer;

pub use job::{DescribeOptions, DescribeReport, TncMode, run_describe};
pub use load::load_scorer;
pub use scorer::{AnswerLosses, ScoreItem, Scorer, Scorers};
