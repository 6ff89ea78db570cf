//! `gdo export`: plain-file copies of a table version, for readers without Delta Lake
//! support.

use datafusion::dataframe::DataFrameWriteOptions;
use futures::TryStreamExt;
use serde::Serialize;

use crate::error::{GdoError, Result};
use crate::session::{in_table_order, new_context, register_store, register_table};
use crate::store::Location;

/// File format of `gdo export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Parquet files (gdo's writer settings).
    Parquet,
    /// JSON Lines: one object per row, lists as arrays.
    Jsonl,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub table: String,
    /// The table version exported (None for plain Parquet input).
    pub version: Option<u64>,
    pub out: String,
    pub rows: u64,
    pub files: Vec<String>,
}

/// Export `table` (any path `gdo sql --table` takes) to the folder `out`.
pub async fn export(table: &str, out: &str, format: ExportFormat) -> Result<ExportReport> {
    let ctx = new_context();
    let read = register_table(&ctx, "t", table).await?;
    let out_loc = Location::parse(out)?;
    if crate::table::is_table(&out_loc).await? {
        return Err(GdoError::Usage(format!(
            "{out_loc} holds a table; export writes plain files into a folder of its own"
        )));
    }
    register_store(&ctx, &out_loc);
    // One partition: the files hold the rows in table order.
    let df = in_table_order(ctx.table("t").await?);
    let url = out_loc.dir_url();
    let options = DataFrameWriteOptions::new().with_single_file_output(false);
    let batches = match format {
        ExportFormat::Parquet => {
            let mut opts = ctx.state().default_table_options().parquet;
            opts.global.compression = Some("zstd(1)".into());
            df.write_parquet(url.as_str(), options, Some(opts)).await?
        }
        ExportFormat::Jsonl => df.write_json(url.as_str(), options, None).await?,
    };
    let rows = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<datafusion::arrow::array::UInt64Array>())
        .map_or(0, |c| c.value(0));
    let mut files: Vec<String> = out_loc
        .store
        .list(Some(&out_loc.path))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_owned())
        .try_collect()
        .await?;
    files.sort();
    Ok(ExportReport { table: table.to_owned(), version: read.version, out: out_loc.to_string(), rows, files })
}
