//! `gdo ingest`: LLaVA JSONL pools into the pool table.

use crate::error::Result;
use crate::stage::Ingest;

/// Read LLaVA-OneVision and LLaVA-Video JSONL (plain or .gz, local or s3://, gs://,
/// az://) into a pool table: one row per question-answer pair, with the 7 strata fields.
///
/// Example: gdo ingest --onevision ov.jsonl.gz --video 'raw/video_*.jsonl.gz' --out pool/
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// LLaVA-OneVision image-QA JSONL files (ingested first, in the order given). A folder
    /// stands for the .jsonl/.ndjson/.json[.gz] files directly in it and a pattern in the
    /// file name ('s3://b/raw/ov_*.jsonl.gz', quoted) for the files it matches, both in
    /// name order.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub onevision: Vec<String>,
    /// LLaVA-Video JSONL files, folders or patterns (ingested after the image files, in the
    /// order given).
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub video: Vec<String>,
    /// Output table folder (local path or s3://, gs://, az:// URI). Replaced atomically.
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// Folder that relative frame paths are resolved against [default: each JSONL's folder].
    #[arg(long, value_name = "DIR")]
    pub media_root: Option<String>,
    /// Frames kept per video pair (uniform resampling, round half to even).
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub target_frames: usize,
    /// Fail, writing nothing, when more than this share of non-blank lines is rejected.
    #[arg(long, default_value_t = 0.5)]
    pub max_reject_ratio: f64,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows_per_file: usize,
    /// Lines per parse chunk (the unit of parallel parsing).
    #[arg(long, default_value_t = 8192, hide = true)]
    pub chunk_lines: usize,
    /// Longest input line read whole, in bytes; a longer line is rejected as
    /// `line_too_long` (its first 256 bytes kept in pool_rejects), memory bounded.
    #[arg(long, default_value_t = crate::pool::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,
    /// Fault injection (tests): abort the process (as kill -9 would) after N data files.
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true)]
    pub fail_after_parts: Option<usize>,
}

pub async fn run(args: Args) -> Result<()> {
    crate::memory::keep_freed_heap();
    let mut ingest = Ingest::new(args.out)
        .with_onevision(args.onevision)
        .with_video(args.video)
        .with_target_frames(args.target_frames)
        .with_max_reject_ratio(args.max_reject_ratio)
        .with_rows_per_file(args.rows_per_file)
        .with_chunk_lines(args.chunk_lines)
        .with_max_line_bytes(args.max_line_bytes)
        .with_progress(true);
    if let Some(root) = args.media_root {
        ingest = ingest.with_media_root(root);
    }
    #[cfg(feature = "fault-injection")]
    let ingest = ingest.with_fail_after_parts(args.fail_after_parts);
    let report = ingest.await?;
    println!(
        "ingested {} pairs from {} rows into {} version {} ({} data file(s)) in {:.2}s ({:.0} pairs/s)",
        report.total_pairs,
        report.rows,
        report.out,
        report.version.unwrap_or_default(),
        report.data_files,
        report.seconds,
        report.pairs_per_second
    );
    for (bucket, n) in &report.bucket_counts {
        println!("  {bucket}: {n} pairs");
    }
    if report.rejected > 0 {
        let reasons: Vec<String> = report.rejected_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "  rejected {} line(s): {} (see table pool_rejects: gdo sql --pool {} --query rejects)",
            report.rejected,
            reasons.join(", "),
            report.out
        );
    }
    if !report.ignored_files.is_empty() {
        let shown: Vec<&str> = report.ignored_files.iter().take(5).map(String::as_str).collect();
        let more = report.ignored_files.len().saturating_sub(shown.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        println!(
            "  not read: {} entr{} of input folders not named .jsonl/.ndjson/.json[.gz]: {}{more}",
            report.ignored_files.len(),
            if report.ignored_files.len() == 1 { "y" } else { "ies" },
            shown.join(", ")
        );
    }
    if report.blank_lines > 0 {
        println!("  skipped {} blank line(s)", report.blank_lines);
    }
    Ok(())
}
