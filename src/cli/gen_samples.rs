//! `gdo gen-samples`: regenerate the sample pool, or a large synthetic pool for benchmarks.

use std::path::PathBuf;

use crate::error::{GdoError, Result};
use gdo_samples::{SampleOptions, generate_sample_pool, generate_synthetic_pool};

/// Generate the sample pool of `data-samples/` (real frames, deterministic for a seed),
/// or with --synthetic-pairs N a large text-only pool for benchmarks.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Instead of the sample pool, write a synthetic pool of about N pairs (no media).
    #[arg(long, value_name = "N")]
    pub synthetic_pairs: Option<usize>,
}

pub async fn run(args: Args) -> Result<()> {
    let out = args.out.clone();
    let summary = tokio::task::spawn_blocking(move || match args.synthetic_pairs {
        Some(n) => generate_synthetic_pool(&args.out, n, args.seed),
        None => generate_sample_pool(&args.out, &SampleOptions { seed: args.seed }),
    })
    .await
    .map_err(|e| GdoError::Usage(format!("generator failed: {e}")))?
    .map_err(|e| GdoError::io(out.display().to_string(), e))?;
    println!(
        "wrote {} image rows, {} video rows ({} clips, {} images, {} frame files, {} broken lines), {} bytes to {}",
        summary.image_rows,
        summary.video_rows,
        summary.clips,
        summary.images,
        summary.frame_files,
        summary.broken_lines,
        summary.bytes_written,
        out.display()
    );
    Ok(())
}
