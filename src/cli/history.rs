//! `gdo history`: the versions of a table, newest first, with the command that wrote each.

use crate::error::Result;
use crate::store::Location;

/// List the versions of a table still in its log, newest first: when each was written,
/// by which command, its rows, and the versions of the tables the command read.
///
/// Example: gdo history pool/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table folder (local path or s3://, gs://, az:// URI).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Print JSON (one array) instead of a text table.
    #[arg(long)]
    pub json: bool,
    /// Show at most this many versions.
    #[arg(long)]
    pub limit: Option<usize>,
}

pub async fn run(args: Args) -> Result<()> {
    let root = Location::parse(&args.table)?;
    let mut entries = crate::table::history(&root).await?;
    if let Some(n) = args.limit {
        entries.truncate(n);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    println!("{:>7}  {:<24}  {:<10}  {:>10}  command (inputs)", "version", "written (UTC)", "operation", "rows");
    for e in &entries {
        let when = e
            .timestamp_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
        let rows = e.rows.map_or_else(|| "-".to_owned(), |r| r.to_string());
        let inputs = match &e.inputs {
            serde_json::Value::Object(m) if !m.is_empty() => format!(" ({})", inputs_text(m)),
            _ => String::new(),
        };
        println!(
            "{:>7}  {:<24}  {:<10}  {:>10}  {}{}",
            e.version,
            when,
            e.operation.as_deref().unwrap_or("-"),
            rows,
            e.command.as_deref().unwrap_or("(not written by gdo)"),
            inputs
        );
    }
    Ok(())
}

fn inputs_text(m: &serde_json::Map<String, serde_json::Value>) -> String {
    m.iter()
        .map(|(name, read)| match read.get("version").and_then(|v| v.as_i64()) {
            Some(v) => format!("{name}: {} v{v}", read.get("path").and_then(|p| p.as_str()).unwrap_or("?")),
            None => format!("{name}: {}", read.get("path").and_then(|p| p.as_str()).unwrap_or("?")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
