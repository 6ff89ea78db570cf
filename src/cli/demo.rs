//! `gdo demo`: the paper's protocol in miniature on generated data (see `gdo::demo`).

use std::path::PathBuf;

use crate::error::Result;
use crate::stage::Demo;

/// Pretrain a base tiny-vlm, let it score a generated pool with low-value pairs and a
/// clean control pool, select the paper's goals and Uni-10x, fine-tune the base on each
/// subset over several seeds, and write demo/report.md, report.html, the frontier plot
/// and demo_summary.json.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output folder (its data/, tables/, runs/ ... are rewritten).
    #[arg(long, default_value = "demo", value_name = "DIR")]
    pub out: PathBuf,
    /// The small variant the test suite runs: 400-pair pools, 100-question splits,
    /// 25-pair goals, one seed.
    #[arg(long)]
    pub quick: bool,
    /// Seed of the data and the base model, and the first selection/fine-tuning seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Selection and fine-tuning seeds: SEED, SEED+1, ... [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    pub seeds: Option<usize>,
    /// Pairs in each goal's 1x subset (Uni-10x is ten times that, capped at the pool)
    /// [default: 100; 25 with --quick].
    #[arg(long)]
    pub count: Option<u64>,
}

pub async fn run(args: Args) -> Result<()> {
    let summary = Demo::new(args.out)
        .with_quick(args.quick)
        .with_seed(args.seed)
        .with_seeds(args.seeds)
        .with_count(args.count)
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .await?;
    for line in &summary.conclusion.sentences {
        println!("- {line}");
    }
    println!("done in {:.1} s", summary.seconds);
    println!("report: {}", summary.report_md.display());
    println!("        {}", summary.report_html.display());
    println!("plot:   {} / {}", summary.plot_png.display(), summary.plot_svg.display());
    Ok(())
}
