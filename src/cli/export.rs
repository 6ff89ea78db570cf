//! `gdo export`: a table version as a plain folder of Parquet or JSON Lines files.

use crate::error::Result;
use crate::export::{ExportFormat, export};

/// Write a table version as plain files, for tools that do not read Delta Lake (e.g.
/// `datasets.load_dataset("parquet", data_files="export/*.parquet")`). Rows keep the
/// table's order. The folder is written in place, not committed: write it afresh
/// rather than over an export another process reads.
///
/// Example: gdo export pool/ --out pool-export/ --format jsonl
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table (`TABLE@vN` or `TABLE@<RFC 3339 time>` for an earlier version).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Output folder (local path or s3://, gs://, az:// URI); must not hold a table.
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: ExportFormat,
}

pub async fn run(args: Args) -> Result<()> {
    let r = export(&args.table, &args.out, args.format).await?;
    let version = r.version.map_or_else(String::new, |v| format!(" version {v}"));
    println!("exported {} rows of {}{version} to {} ({} file(s))", r.rows, r.table, r.out, r.files.len());
    Ok(())
}
