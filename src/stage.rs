//! One API for every stage, in the style of delta-rs's operations: a builder per stage,
//! configured with `with_*` setters, that runs when awaited and gives the stage's typed
//! report. Every stage writes gdo tables (train: its `metrics` table beside the
//! checkpoints). The CLI's subcommands are these builders filled from flags.
//!
//! ```no_run
//! # async fn example() -> gdo::Result<()> {
//! use gdo::stage::{Ingest, Merge, Select};
//! let pool = Ingest::new("work/pool").with_onevision(["raw/onevision.jsonl.gz"]).with_video(["raw/video.jsonl.gz"]).await?;
//! println!("{} pairs", pool.total_pairs);
//! let merged = Merge::new(["work/descriptors"], "work/merged").with_cluster_k(512).await?;
//! let subsets = Select::new("work/pool", ["work/merged"], "work/subsets").with_goals(["temp_plus"])?.await?;
//! println!("{} rows merged, {} goals selected", merged.rows_written, subsets.goals.len());
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;

use datafusion::prelude::{DataFrame, SessionContext};

use crate::demo::{DemoOptions, DemoSummary, run_demo};
use crate::describe::{DescribeOptions, DescribeReport, TncMode, run_describe};
use crate::error::Result;
use crate::merge::{MergeOptions, MergeReport, merge};
use crate::models::Scorers;
use crate::pool::{IngestOptions, IngestReport, ingest};
use crate::select::exclude::ExcludeMode;
use crate::select::run::{GoalOutcome, GoalSource, SelectJob, run_select};
use crate::select::sft_jsonl::SftOptions;
use crate::train::{EvalSplit, TrainConfig, TrainSummary, train};

/// A stage running (not `Send`: some stages hold non-`Send` state across awaits).
type Running<T> = Pin<Box<dyn Future<Output = Result<T>>>>;

fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

/// `gdo ingest`: JSONL pools to the pool table (and `pool_rejects`).
#[derive(Debug, Clone)]
pub struct Ingest {
    opts: IngestOptions,
}

impl Ingest {
    /// Ingest into the pool table at `out` (a folder or bucket URI).
    pub fn new(out: impl Into<String>) -> Self {
        Self { opts: IngestOptions { out: out.into(), ..IngestOptions::default() } }
    }
    /// OneVision-layout inputs: files, folders or file-name patterns.
    pub fn with_onevision<S: Into<String>>(mut self, inputs: impl IntoIterator<Item = S>) -> Self {
        self.opts.onevision.extend(strings(inputs));
        self
    }
    /// Video-layout inputs: files, folders or file-name patterns.
    pub fn with_video<S: Into<String>>(mut self, inputs: impl IntoIterator<Item = S>) -> Self {
        self.opts.video.extend(strings(inputs));
        self
    }
    /// The folder relative frame paths are resolved against (default: each file's own).
    pub fn with_media_root(mut self, dir: impl Into<String>) -> Self {
        self.opts.media_root = Some(dir.into());
        self
    }
    /// Frames kept per video pair (default 32).
    pub fn with_target_frames(mut self, n: usize) -> Self {
        self.opts.target_frames = n;
        self
    }
    /// Fail, writing nothing, above this share of rejected lines (default 0.5).
    pub fn with_max_reject_ratio(mut self, ratio: f64) -> Self {
        self.opts.max_reject_ratio = ratio;
        self
    }
    /// Rows per Parquet file.
    pub fn with_rows_per_file(mut self, rows: usize) -> Self {
        self.opts.rows_per_file = rows;
        self
    }
    /// Lines per parse chunk (the unit of parallel parsing).
    pub fn with_chunk_lines(mut self, lines: usize) -> Self {
        self.opts.chunk_lines = lines;
        self
    }
    /// Longest line read whole; longer ones are rejected as `line_too_long`.
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.opts.max_line_bytes = bytes;
        self
    }
    /// Draw a progress bar (on a terminal).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.opts.progress = on;
        self
    }
    /// Fault injection (tests): abort the process after this many data files.
    #[cfg(feature = "fault-injection")]
    pub fn with_fail_after_parts(mut self, parts: Option<usize>) -> Self {
        self.opts.fail_after_parts = parts;
        self
    }
}

impl IntoFuture for Ingest {
    type Output = Result<IngestReport>;
    type IntoFuture = Running<IngestReport>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { ingest(&self.opts).await })
    }
}

/// `gdo describe`: the six descriptors of every pair of a pool, to a descriptors table.
pub struct Describe {
    opts: DescribeOptions,
}

impl Describe {
    /// Describe the pool table at `pool` into the descriptors table at `out`.
    pub fn new(pool: impl Into<String>, out: impl Into<String>) -> Self {
        Self { opts: DescribeOptions { pool: pool.into(), out: out.into(), ..DescribeOptions::default() } }
    }
    /// Media, text and TNC-regex descriptors only; the model columns stay NULL.
    pub fn with_cheap_only(mut self, on: bool) -> Self {
        self.opts.cheap_only = on;
        self
    }
    /// The scorer(s) of the model descriptors; `id` names them in the resume fingerprint.
    pub fn with_scorer(mut self, scorers: Scorers, id: impl Into<String>) -> Self {
        self.opts.scorer = Some(scorers);
        self.opts.scorer_id = Some(id.into());
        self
    }
    pub fn with_tnc(mut self, tnc: TncMode) -> Self {
        self.opts.tnc = tnc;
        self
    }
    /// Sampled answers per pair for self-consistency (0: not computed).
    pub fn with_sc_samples(mut self, n: usize) -> Self {
        self.opts.sc_samples = n;
        self
    }
    /// Shard `index` of `count` (pool row i goes to shard i mod count).
    pub fn with_shard(mut self, index: u64, count: u64) -> Self {
        self.opts.shard = (index, count);
        self
    }
    /// Pairs per scorer call.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.opts.batch_size = n;
        self
    }
    /// Rows per resumable chunk.
    pub fn with_chunk_size(mut self, n: usize) -> Self {
        self.opts.chunk_size = n;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.opts.seed = seed;
        self
    }
    /// Compute on the cluster at `url` (`df://HOST:PORT`), `jobs` chunks at once; the
    /// cheap descriptors only. None: in this process.
    pub fn on_cluster(mut self, url: Option<String>, jobs: usize) -> Self {
        self.opts.cluster = url;
        self.opts.cluster_jobs = jobs;
        self
    }
    /// Where AMM and frame diversity run: `cpu`, `cuda[:N]` or `candle-cpu`.
    pub fn with_motion_device(mut self, device: impl Into<String>) -> Self {
        self.opts.motion_device = device.into();
        self
    }
    /// Fail, committing nothing, above this share of rows with an error (default 0.5).
    pub fn with_max_error_ratio(mut self, ratio: f64) -> Self {
        self.opts.max_error_ratio = ratio;
        self
    }
    pub fn with_progress(mut self, on: bool) -> Self {
        self.opts.progress = on;
        self
    }
    /// Fault injection (tests): stop, committing nothing, after this many new chunks.
    #[cfg(feature = "fault-injection")]
    pub fn with_stop_after_chunks(mut self, chunks: Option<usize>) -> Self {
        self.opts.stop_after_chunks = chunks;
        self
    }
}

impl IntoFuture for Describe {
    type Output = Result<DescribeReport>;
    type IntoFuture = Running<DescribeReport>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { run_describe(&self.opts).await })
    }
}

/// `gdo merge`: descriptors to the merged table (robust statistics, clusters, quality).
#[derive(Debug, Clone)]
pub struct Merge {
    opts: MergeOptions,
}

impl Merge {
    /// Merge descriptor inputs (tables, Parquet, JSONL shards) into the table at `out`.
    pub fn new<S: Into<String>>(descriptors: impl IntoIterator<Item = S>, out: impl Into<String>) -> Self {
        Self { opts: MergeOptions { descriptors: strings(descriptors), out: out.into(), ..MergeOptions::default() } }
    }
    /// Requested k of the k-means (default 4096; at most the rows).
    pub fn with_cluster_k(mut self, k: usize) -> Self {
        self.opts.cluster_k = k;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.opts.seed = seed;
        self
    }
    /// Rows per k-means mini-batch (and per read chunk).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.opts.batch_size = n;
        self
    }
    pub fn with_rows_per_file(mut self, rows: usize) -> Self {
        self.opts.rows_per_file = rows;
        self
    }
    pub fn with_progress(mut self, on: bool) -> Self {
        self.opts.progress = on;
        self
    }
}

impl IntoFuture for Merge {
    type Output = Result<MergeReport>;
    type IntoFuture = Running<MergeReport>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { merge(&self.opts).await })
    }
}

/// What [`Select`] produced: one outcome per goal, in the order asked.
#[derive(Debug, Clone)]
pub struct SelectReport {
    pub goals: Vec<GoalOutcome>,
}

/// `gdo select`: goal subsets (tables, SFT JSONL, reports) and their Uni-10x baselines.
pub struct Select {
    job: SelectJob,
}

impl Select {
    /// Select from the pool table `pool` scored with the merged descriptors `metrics`
    /// into `out`; the goals default to none (set them with [`Select::with_goals`]).
    pub fn new<S: Into<String>>(
        pool: impl Into<String>,
        metrics: impl IntoIterator<Item = S>,
        out: impl Into<String>,
    ) -> Self {
        Self {
            job: SelectJob {
                pool: pool.into(),
                metrics: strings(metrics),
                goals: Vec::new(),
                out: out.into(),
                per_goal_folders: false,
                settings: Vec::new(),
                sft: SftOptions::default(),
                write_jsonl: true,
                exclude: Vec::new(),
                exclude_mode: ExcludeMode::Question,
                memory_limit: None,
                cluster: None,
            },
        }
    }
    /// Goals by shipped name (`temp_plus`, ...) or goal-file path.
    pub fn with_goals<S: AsRef<str>>(mut self, goals: impl IntoIterator<Item = S>) -> Result<Self> {
        for g in goals {
            self.job.goals.push(GoalSource::resolve(g.as_ref())?);
        }
        Ok(self)
    }
    /// Goals already resolved (name and SQL).
    pub fn with_goal_sources(mut self, goals: impl IntoIterator<Item = GoalSource>) -> Self {
        self.job.goals.extend(goals);
        self
    }
    /// Put each goal in `out/<goal>/` (always so for more than one goal).
    pub fn with_per_goal_folders(mut self, on: bool) -> Self {
        self.job.per_goal_folders = on;
        self
    }
    /// `SET gdo.<name> = <value>` before scoring (seed, count, ablations, ...).
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.job.settings.push((name.into(), value.into()));
        self
    }
    /// How the SFT JSONL exports are written.
    pub fn with_sft(mut self, sft: SftOptions) -> Self {
        self.job.sft = sft;
        self
    }
    /// Write the SFT JSONL exports (default on).
    pub fn with_jsonl(mut self, on: bool) -> Self {
        self.job.write_jsonl = on;
        self
    }
    /// Exclusion files (decontamination, method §5.9) and how they match.
    pub fn with_exclude<S: Into<String>>(mut self, files: impl IntoIterator<Item = S>, mode: ExcludeMode) -> Self {
        self.job.exclude.extend(strings(files));
        self.job.exclude_mode = mode;
        self
    }
    /// Bound the memory the session's queries hold (bytes).
    /// Score on the cluster at `url` (`df://HOST:PORT`); the goal operators still run
    /// here. None: everything in this process.
    pub fn on_cluster(mut self, url: Option<String>) -> Self {
        self.job.cluster = url;
        self
    }

    pub fn with_memory_limit(mut self, bytes: Option<usize>) -> Self {
        self.job.memory_limit = bytes;
        self
    }
}

impl IntoFuture for Select {
    type Output = Result<SelectReport>;
    type IntoFuture = Running<SelectReport>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { Ok(SelectReport { goals: run_select(&self.job).await? }) })
    }
}

/// `gdo train`: a model trained on a subset, with checkpoints and the `metrics` table.
pub struct Train {
    ctx: SessionContext,
    input: DataFrame,
    out: String,
    cfg: TrainConfig,
    evals: Vec<EvalSplit>,
    resume: bool,
}

impl Train {
    /// Train on the pairs of `input` (columns qa_uid, question, answer, frames), planned
    /// in `ctx`, into the local folder `out`.
    pub fn new(ctx: SessionContext, input: DataFrame, out: impl Into<String>) -> Self {
        Self { ctx, input, out: out.into(), cfg: TrainConfig::default(), evals: Vec::new(), resume: false }
    }
    /// The recipe (seed, epochs, batch size, schedule, model, device, ...).
    pub fn with_config(mut self, cfg: TrainConfig) -> Self {
        self.cfg = cfg;
        self
    }
    /// A benchmark split evaluated at every checkpoint.
    pub fn with_eval(mut self, split: EvalSplit) -> Self {
        self.evals.push(split);
        self
    }
    /// Continue from the newest checkpoint in `out`.
    pub fn with_resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }
}

impl IntoFuture for Train {
    type Output = Result<TrainSummary>;
    type IntoFuture = Running<TrainSummary>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { train(&self.ctx, self.input, &self.cfg, &self.evals, &self.out, self.resume).await })
    }
}

/// `gdo demo`: the paper's protocol in miniature on generated data, with a control and a report.
#[derive(Debug, Clone)]
pub struct Demo {
    opts: DemoOptions,
    /// None: 100 pairs, 25 with `quick`.
    count: Option<u64>,
    /// None: 3 seeds, 1 with `quick`.
    seeds: Option<usize>,
}

impl Demo {
    /// Run the demo, writing its data, tables and report into `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            opts: DemoOptions { out: out.into(), quick: false, seed: 7, seeds: 3, count: 100, progress: false },
            count: None,
            seeds: None,
        }
    }
    /// The small variant the test suite runs.
    pub fn with_quick(mut self, on: bool) -> Self {
        self.opts.quick = on;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.opts.seed = seed;
        self
    }
    /// Selection and fine-tuning seeds (`seed`, `seed + 1`, ...).
    pub fn with_seeds(mut self, seeds: Option<usize>) -> Self {
        self.seeds = seeds;
        self
    }
    /// Pairs in each goal's 1x subset.
    pub fn with_count(mut self, count: Option<u64>) -> Self {
        self.count = count;
        self
    }
    pub fn with_progress(mut self, on: bool) -> Self {
        self.opts.progress = on;
        self
    }
}

impl IntoFuture for Demo {
    type Output = Result<DemoSummary>;
    type IntoFuture = Running<DemoSummary>;
    fn into_future(self) -> Self::IntoFuture {
        let mut opts = self.opts;
        opts.count = self.count.unwrap_or(if opts.quick { 25 } else { 100 });
        opts.seeds = self.seeds.unwrap_or(if opts.quick { 1 } else { 3 });
        Box::pin(async move { run_demo(&opts).await })
    }
}
