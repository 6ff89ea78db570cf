//! `gdo vacuum`: delete the files no recent version of a table needs.

use std::time::Duration;

use crate::error::Result;
use crate::store::Location;

/// Delete the data files that the current version does not use and that are older than
/// the retention period: files of replaced versions and the leftovers of killed or
/// failed runs. Versions older than the retention period can no longer be read after it;
/// newer ones, and runs still writing, keep their files.
///
/// Example: gdo vacuum pool/ --retain 7d        gdo vacuum pool/ --retain 0s --dry-run
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table folder (local path or s3://, gs://, az:// URI).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Keep files removed or written within this period (e.g. 7d, 12h, 30m, 0s).
    #[arg(long, default_value = "7d", value_parser = parse_period)]
    pub retain: Duration,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `7d`, `12h`, `30m`, `45s`.
pub fn parse_period(s: &str) -> std::result::Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("'{s}': expected a number and a unit, e.g. 7d, 12h, 30m, 0s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("'{s}': the unit is one of d, h, m, s")),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(|| format!("'{s}': too long"))
}

pub async fn run(args: Args) -> Result<()> {
    let root = Location::parse(&args.table)?;
    let report = crate::table::vacuum(&root, args.retain, args.dry_run).await?;
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    for f in &report.files_deleted {
        println!("{verb} {f}");
    }
    eprintln!("gdo vacuum: {verb} {} files of {}", report.files_deleted.len(), report.table);
    Ok(())
}
