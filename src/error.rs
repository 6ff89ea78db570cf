//! The one error type at the crate edge. Inside the engine, DataFusion's own
//! `plan_err!`/`exec_err!` are used and arrive here wrapped.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::parquet::errors::ParquetError;

/// Everything a `gdo` command can fail with, each with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum GdoError {
    /// An input file or table that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A path or URI that cannot name a location.
    #[error("invalid location '{location}': {reason}")]
    InvalidLocation { location: String, reason: String },
    /// A local I/O failure, with the path it concerns.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A folder that is not a committed gdo table.
    #[error("{0}")]
    Table(String),
    /// Ingest rejected more lines than `--max-reject-ratio` allows.
    #[error(
        "{rejected} of {lines} lines rejected ({pct:.2}%), above --max-reject-ratio {max}; \
         nothing was written. Reasons: {reasons}. Raise the ratio to accept the file as it is."
    )]
    TooManyRejects { rejected: u64, lines: u64, pct: f64, max: f64, reasons: String },
    /// A wrong combination of arguments.
    #[error("{0}")]
    Usage(String),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A cluster process failed to start or serve (Ballista's message).
    #[error("cluster: {0}")]
    Cluster(String),
    /// A model failed (shapes, weights, device): candle's message.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}

impl GdoError {
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

pub type Result<T, E = GdoError> = std::result::Result<T, E>;
