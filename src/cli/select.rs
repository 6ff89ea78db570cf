//! `gdo select`: build goal subsets (and their Uni-10x baselines) from a pool and its
//! merged descriptors.

use crate::error::{GdoError, Result};
use crate::select::exclude::ExcludeMode;
use crate::select::run::{GoalSource, PAPER_GOALS};
use crate::select::sft_jsonl::{SftOptions, VideoAs};
use crate::stage::Select;

/// Select the goal-driven 1x subset and the Uni-10x baseline (method §5).
///
/// Examples:
///   gdo select --pool pool/ --metrics merged/ --goal temp_plus --out subsets/
///   gdo select --pool pool/ --metrics metrics.jsonl.gz --all-goals --out subsets/
///   gdo select --pool pool/ --metrics merged/ --goal my_goal.sql --count 5000 --out s/
///   gdo select --pool pool/ --metrics merged/ --goal temp --out s/ --video-as video --media-base /data
///
/// Each goal folder holds the subsets as tables (gdo_1x/, uni_10x/), their SFT JSONL
/// for ms-swift and LLaMA-Factory (gdo_1x.jsonl, uni_10x.jsonl), LLaMA-Factory's
/// dataset_info.json and report.json.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pool table (from `gdo ingest`).
    #[arg(long, value_name = "DIR")]
    pub pool: String,
    /// Merged descriptors: a `gdo merge` table, Parquet, or the reference's JSONL (.gz).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub metrics: Vec<String>,
    /// A shipped goal (minloss, diverse, temp, temp_plus, balanced) or a goal .sql file.
    #[arg(long, num_args = 1.., value_name = "NAME|FILE.sql", conflicts_with = "all_goals")]
    pub goal: Vec<String>,
    /// The paper's four presets in one run, sharing the scan and the scoring.
    #[arg(long)]
    pub all_goals: bool,
    /// Output folder (one sub-folder per goal when several goals run).
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// Fixed subset size instead of the goal's budget rules.
    #[arg(long)]
    pub count: Option<u64>,
    /// Fixed subset ratio of the pool (when no --count).
    #[arg(long)]
    pub ratio: Option<f64>,
    /// Uni baseline size as a multiple of the subset [goal default: 10].
    #[arg(long)]
    pub uni_multiplier: Option<f64>,
    /// Seed of every random step [goal default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// At most this many pairs per video [goal default: 8].
    #[arg(long)]
    pub max_qa_per_video: Option<u64>,
    /// Frames per pair in the JSONL export.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub target_frames: usize,
    /// Write local media paths in the JSONL relative to this folder (default: absolute
    /// paths). Run the trainer from this folder, or point LLaMA-Factory's `media_dir` /
    /// ms-swift's `ROOT_IMAGE_DIR` at it.
    #[arg(long, value_name = "DIR")]
    pub media_base: Option<std::path::PathBuf>,
    /// How video pairs are written in the JSONL: `images` (one <image> tag per frame)
    /// or `video` (one <video> tag: the frame list, or the source file of pairs
    /// ingested from a video file). Pairs from video files are always written as video.
    #[arg(long, value_enum, default_value = "images")]
    pub video_as: VideoAs,
    /// A system prompt opening every conversation in the JSONL.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Ablation: drop the VDS3 term from video scores.
    #[arg(long)]
    pub no_vds: bool,
    /// Ablation: drop the text-quality term from the base score.
    #[arg(long)]
    pub no_ppl: bool,
    /// Ablation: drop the metric-quality (SC) terms.
    #[arg(long)]
    pub no_sc: bool,
    /// Ablation: skip the VDS3 budget adjustment.
    #[arg(long)]
    pub no_vds3_budget: bool,
    /// Exclusion lists (e.g. benchmark questions, JSONL with question/answer or
    /// messages): matching pairs are removed before profiling and selection.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub exclude: Vec<String>,
    /// How exclusion rows match pool pairs.
    #[arg(long, value_enum, default_value = "both")]
    pub exclude_mode: ExcludeMode,
    /// Skip the JSONL exports (tables and report only).
    #[arg(long)]
    pub no_jsonl: bool,
    /// Bound the memory the selection's queries hold (e.g. 8GiB); a goal that needs
    /// more fails with "Resources exhausted" instead of growing unbounded.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<crate::session::MemoryLimit>,
    /// Compute the scoring (statistics, strata, scores) on a gdo cluster (`gdo
    /// scheduler`); the goal operators then run here on the scored pairs.
    #[arg(long, env = crate::cluster::CLUSTER_ENV, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let goals: Vec<GoalSource> = if args.all_goals {
        PAPER_GOALS.iter().map(|g| GoalSource::resolve(g)).collect::<Result<_>>()?
    } else {
        args.goal.iter().map(|g| GoalSource::resolve(g)).collect::<Result<_>>()?
    };
    if goals.is_empty() {
        return Err(GdoError::Usage("give --goal NAME|FILE.sql or --all-goals".into()));
    }
    let mut settings = Vec::new();
    if let Some(c) = args.count {
        settings.push(("count".to_string(), c.to_string()));
    }
    if let Some(r) = args.ratio {
        settings.push(("ratio".to_string(), r.to_string()));
    }
    if let Some(m) = args.uni_multiplier {
        settings.push(("uni_multiplier".to_string(), m.to_string()));
    }
    if let Some(s) = args.seed {
        settings.push(("seed".to_string(), s.to_string()));
    }
    if let Some(m) = args.max_qa_per_video {
        settings.push(("max_qa_per_video".to_string(), m.to_string()));
    }
    for (flag, name) in [
        (args.no_vds, "no_vds"),
        (args.no_ppl, "no_ppl"),
        (args.no_sc, "no_sc"),
        (args.no_vds3_budget, "no_vds3_budget"),
    ] {
        if flag {
            settings.push((name.to_string(), "true".to_string()));
        }
    }
    let mut select = Select::new(args.pool, args.metrics, args.out)
        .with_per_goal_folders(goals.len() > 1)
        .with_sft(SftOptions {
            target_frames: args.target_frames,
            media_base: args.media_base.map(|b| std::path::absolute(&b).unwrap_or(b)),
            video_as: args.video_as,
            system: args.system,
        })
        .with_jsonl(!args.no_jsonl)
        .with_exclude(args.exclude, args.exclude_mode)
        .with_memory_limit(args.memory_limit.map(|m| m.0))
        .on_cluster(args.cluster)
        .with_goal_sources(goals);
    for (name, value) in settings {
        select = select.with_setting(name, value);
    }
    for o in select.await?.goals {
        if let Some(short) = o.report.get("unmet").and_then(|u| u.get("target_count")).and_then(|v| v.as_u64()) {
            eprintln!(
                "warning: {}: {short} pair(s) short of the budget (per-video cap, video cap and text dedup left \
                 no more eligible pairs); see unmet in report.json",
                o.goal
            );
        }
        let r = &o.report;
        let get = |k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let unmet = r.get("unmet").and_then(|u| u.as_object()).map(|u| u.len()).unwrap_or(0);
        eprintln!(
            "{}: {} of {} pairs selected (target {}), Uni-10x {} pairs, {} unmet floor(s) -> {}",
            o.goal,
            get("selected_count"),
            get("total_pairs"),
            get("target_count"),
            get("uni_count"),
            unmet,
            o.folder
        );
    }
    Ok(())
}
