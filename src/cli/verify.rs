//! `gdo verify`: check every data file of a table against the checksums of its commits.

use crate::error::Result;
use crate::store::Location;
use crate::table::AsOf;

/// Check that every data file of a table version (and of its side tables) is present,
/// has the size its commit records and the sha256 gdo recorded when it wrote it. Exits
/// non-zero naming the first file that fails. Files other writers added (no recorded
/// checksum) are checked for size only and counted.
///
/// Example: gdo verify pool/        gdo verify pool/@v3
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table folder; `TABLE@vN` or `TABLE@<RFC 3339 time>` checks an earlier version.
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let (path, at) = AsOf::split(&args.table);
    let root = Location::parse(path)?;
    let report = crate::table::verify(&root, &at).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let sides = if report.side_tables.is_empty() {
            String::new()
        } else {
            let s: Vec<String> = report.side_tables.iter().map(|(n, v)| format!("{n} v{v}")).collect();
            format!(", with side tables {}", s.join(", "))
        };
        println!(
            "ok: {} version {}{sides}: {} files, {} bytes; {} match their recorded sha256, {} size only",
            report.table, report.version, report.files, report.bytes, report.checksummed, report.size_only
        );
    }
    Ok(())
}
