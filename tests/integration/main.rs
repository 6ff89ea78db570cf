//! gdo's integration tests: one binary, one module per capability.

mod atomic;
mod bad_input;
mod common;
mod delta;
mod describe;
mod ingest_parity;

mod interop;
mod layers;
mod media_sql;
mod merge_parity;
mod motion_parity;
mod outside_reader;
mod s3;
mod select_parity;
mod sql_cli;
mod train_qwen;
mod train_tiny;
