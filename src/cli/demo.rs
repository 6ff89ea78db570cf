//! `gdo demo`: the main job on the embedded sample data, with no arguments.
//!
//! Today it runs the stages gdo has: ingest of `data-samples/` and the audit queries,
//! written to `demo/report.md`. Each later stage (descriptors, selection, training)
//! adds its section here.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::{GdoError, Result};
use crate::pool::{IngestOptions, ingest};
use crate::queries;
use crate::session::{new_context, register_table};
use crate::sql::{Format, render, run_statements};

/// Run the main job on the sample pool and write demo/report.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Sample pool folder (onevision.jsonl, video.jsonl) [default: the repository's data-samples/].
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
}

/// The sample pool committed with the sources.
pub fn default_samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data-samples")
}

pub async fn run(args: Args) -> Result<()> {
    let samples = args.samples.unwrap_or_else(default_samples_dir);
    let onevision = samples.join("onevision.jsonl");
    let video = samples.join("video.jsonl");
    for f in [&onevision, &video] {
        if !f.exists() {
            return Err(GdoError::NotFound(format!(
                "sample file {} (regenerate with: gdo gen-samples --out {})",
                f.display(),
                samples.display()
            )));
        }
    }
    std::fs::create_dir_all(&args.out).map_err(|e| GdoError::io(args.out.display().to_string(), e))?;
    let pool_dir = args.out.join("pool");
    let opts = IngestOptions {
        onevision: vec![onevision.display().to_string()],
        video: vec![video.display().to_string()],
        out: pool_dir.display().to_string(),
        progress: true,
        ..IngestOptions::default()
    };
    let report = ingest(&opts).await?;
    println!(
        "[1/2] ingest: {} pairs ({} rejected lines) -> {}",
        report.total_pairs,
        report.rejected,
        pool_dir.display()
    );

    let ctx = new_context();
    register_table(&ctx, "pool", &pool_dir.display().to_string()).await?;
    let mut md = String::new();
    let _ = writeln!(md, "# gdo demo report\n");
    let _ = writeln!(
        md,
        "Sample pool: `{}`. Stages run: ingest, audit.\n\n\
         Ingest: {} pairs from {} rows, {} rejected lines ({}), {} strata, {:.2} s.\n",
        samples.display(),
        report.total_pairs,
        report.rows,
        report.rejected,
        report.rejected_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", "),
        report.num_strata,
        report.seconds
    );
    for q in queries::AUDIT {
        let results = run_statements(&ctx, q.sql).await?;
        let Some(last) = results.last() else { continue };
        let table = String::from_utf8_lossy(&render(last, Format::Table)?).into_owned();
        let _ = writeln!(md, "## {}\n\n{}\n\n```text\n{}```\n", q.name, q.summary(), table);
    }
    let report_path = args.out.join("report.md");
    std::fs::write(&report_path, md).map_err(|e| GdoError::io(report_path.display().to_string(), e))?;
    println!("[2/2] audit: {} queries", queries::AUDIT.len());
    println!("report: {}", report_path.display());
    Ok(())
}
