//! gdo's integration tests: one binary, one module per capability.

mod atomic;
mod bad_input;
mod cluster;
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

/// The kill-and-resume tests drive the product's fault injection, a cargo feature:
/// without it they are not built, and this says so instead of passing quietly.
#[cfg(not(feature = "fault-injection"))]
#[test]
fn fault_injection_tests_need_their_feature() {
    panic!("build the tests with `--features fault-injection` (scripts/test.sh, the README's test command, does)");
}
