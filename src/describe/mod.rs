//! The descriptor job (`gdo describe`): the pool's pairs through the descriptor
//! functions into a descriptors table. Loss-based descriptors (VDS, PPL, TNC-llm, SC)
//! are computed through a [`crate::models::Scorer`].

pub mod job;

pub use job::{DescribeOptions, DescribeReport, TncMode, run_describe};
