//! `gdo select` (method §5): the scoring views over the pool and the metrics, the goal
//! queries (run through the operators of [`crate::ops`]), the Uni-10x baseline and the
//! subset tables and files.

pub mod exclude;
pub mod metrics;
pub mod run;
pub mod sft_jsonl;
