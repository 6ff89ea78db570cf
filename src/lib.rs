//! gdo: goal-driven data optimization (GDO) for multimodal instruction tuning, as a
//! DataFusion pipeline engine. See README.md for the tour and
//! `docs/method.md` for the method.

pub mod cli;
pub mod cluster;
pub mod demo;
pub mod describe;
pub mod device;
pub mod error;
pub mod export;
pub mod io;
pub mod memory;
pub mod merge;
pub mod models;
pub mod ops;
pub mod pool;
pub mod queries;
pub mod report;
pub mod schema;
pub mod select;
pub mod session;
pub mod shell;
pub mod sql;
pub mod stage;
pub mod store;
pub mod table;
pub mod train;

pub use error::{GdoError, Result};
