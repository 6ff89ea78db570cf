//! The pool: LLaVA JSONL in, one Parquet row per question-answer pair out.

pub mod ingest;
pub mod parse;

pub use crate::schema::{POOL_SCHEMA, REJECTS_SCHEMA};
pub use ingest::{
    DEFAULT_MAX_LINE_BYTES, IngestOptions, IngestReport, InputReport, REJECTS_TABLE, REPORT_FILE, ingest,
};
pub use parse::{Layout, RejectReason, text_hash};
