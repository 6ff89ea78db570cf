//! Files that are not tables: JSON lines in ([`jsonl`]: one reader for ingest, merge,
//! metrics and exclusion lists) and small files written atomically ([`write_atomic`]).

pub mod jsonl;

use std::path::Path;

use crate::error::{GdoError, Result};

/// Write a local file atomically: a temporary file in the same folder, then a rename,
/// so a reader or a kill sees the old file or the new one, never half of one. (Object
/// store puts are atomic themselves: [`crate::store::Location::write_all`].)
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes).map_err(|e| GdoError::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| GdoError::io(path.display().to_string(), e))
}
