//! `gdo demo`: the paper's experiment in miniature on the embedded sample data, with no
//! arguments (see `gdo::demo` for the stages).

use std::path::PathBuf;

use crate::error::Result;
use crate::stage::Demo;

/// Run the whole loop on the sample data and write demo/report.md, demo/report.html
/// and the frontier plot.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Sample data folder (onevision.jsonl, video.jsonl, benchmarks/) [default: the repository's data-samples/].
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// The small variant the test suite runs: every third pair of the selection pool,
    /// 16-pair goals, shorter training and evaluation, no SC sampling.
    #[arg(long)]
    pub quick: bool,
    /// Seed of every random step (scorer slice training, k-means, selection ties, Uni-10x, training).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Pairs in each goal's 1x subset (Uni-10x is ten times that, capped at the pool)
    /// [default: 40; 16 with --quick].
    #[arg(long)]
    pub count: Option<u64>,
}

/// The sample pool committed with the sources.
pub fn default_samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data-samples")
}

pub async fn run(args: Args) -> Result<()> {
    let summary = Demo::new(args.samples.unwrap_or_else(default_samples_dir), args.out)
        .with_quick(args.quick)
        .with_seed(args.seed)
        .with_count(args.count)
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .await?;
    println!("done in {:.1} s", summary.seconds);
    println!("report: {}", summary.report_md.display());
    println!("        {}", summary.report_html.display());
    println!("plot:   {} / {}", summary.plot_png.display(), summary.plot_svg.display());
    Ok(())
}
