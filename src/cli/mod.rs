//! One file per subcommand: its clap arguments and a `run` that calls the library.
//! `src/main.rs` only parses and dispatches.

pub mod demo;
pub mod describe;
pub mod executor;
pub mod export;
pub mod gen_samples;
pub mod history;
pub mod ingest;
pub mod merge;
pub mod scheduler;
pub mod select;
pub mod sql;
pub mod train;
pub mod vacuum;
pub mod verify;
