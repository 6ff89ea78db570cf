//! `gdo demo`: the paper's protocol in miniature, with a control.
//!
//! Stages, each writing tables another gdo command could have written:
//! 1. generate the demo's data with `gdo-samples` (a pretraining set, a pool with
//!    low-value kinds in stated shares, a clean pool of the same size, three benchmark
//!    splits; see [`gdo_samples::generate_demo_data`]);
//! 2. ingest each of them;
//! 3. pretrain the base `tiny-vlm` on the pretraining set and evaluate it;
//! 4. `describe` both pools with the base model as the scorer (all six descriptors);
//! 5. `merge` the descriptors of each pool into metrics;
//! 6. `select` MinLoss, Diverse, Temp, Temp+ (1x) and Uni-10x, once per seed and pool;
//! 7. fine-tune a copy of the base on every subset under one recipe, evaluating each
//!    checkpoint on every split;
//! 8. count each subset's make-up by kind (the generator's labels);
//! 9. write `report.md`, `report.html`, the frontier plot and `demo_summary.json`.

mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use gdo_samples::{DEMO_BENCHMARKS, DemoDataOptions, DemoDataSummary};
use serde::Serialize;

use crate::error::{GdoError, Result};
use crate::pool::{IngestOptions, IngestReport, ingest};
use crate::report::{EvalPoint, RunCurve, UNIFORM_RUN};
use crate::session::{new_context, register_table};
use crate::store::Location;
use crate::table::TableWriter;

pub use report::{Conclusion, PoolResult};

/// Ingest JSONL files (image layout, then video layout) into the table `out`.
pub async fn ingest_files(image: &[PathBuf], video: &[PathBuf], out: &Path, progress: bool) -> Result<IngestReport> {
    for f in image.iter().chain(video) {
        if !f.exists() {
            return Err(GdoError::NotFound(format!("demo data file {}", f.display())));
        }
    }
    let opts = IngestOptions {
        onevision: image.iter().map(|p| path_str(p)).collect(),
        video: video.iter().map(|p| path_str(p)).collect(),
        out: path_str(out),
        progress,
        ..IngestOptions::default()
    };
    ingest(&opts).await
}

/// Write the rows of `sql` (over the session's tables) as a committed table folder.
pub async fn write_query_table(ctx: &SessionContext, sql: &str, out: &Path, kind: &str) -> Result<u64> {
    // In table order: the same rows in the same order, so the same bytes, every run.
    let df = crate::session::in_table_order(ctx.sql(sql).await?);
    let schema = df.schema().inner().clone();
    let mut stream = df.execute_stream().await?;
    let mut writer = TableWriter::open(Location::parse(&out.display().to_string())?, kind).await?;
    let mut part = writer.open_part(None, schema)?;
    while let Some(batch) = stream.try_next().await? {
        part.write(&batch).await?;
    }
    let entry = part.finish().await?;
    writer.add_part(None, entry);
    let rows = writer.rows();
    writer.commit(serde_json::json!({ "query": sql })).await?;
    Ok(rows)
}

/// What `gdo demo` does, and how big.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output folder (`demo/`).
    pub out: PathBuf,
    /// The small variant the test suite runs (smaller data, one seed, shorter training).
    pub quick: bool,
    /// The data's seed and the first selection and fine-tuning seed.
    pub seed: u64,
    /// Selection and fine-tuning seeds: `seed`, `seed + 1`, ... (the pool and the base
    /// model are made once, from `seed`).
    pub seeds: usize,
    /// Pairs in each goal's 1x subset (Uni-10x is ten times that, capped at the pool).
    pub count: u64,
    pub progress: bool,
}

/// The recipe: sizes, and how the base model and every fine-tuning run train.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Recipe {
    pub pool_pairs: usize,
    pub pretrain_pairs: usize,
    pub bench_questions: usize,
    pub pretrain_epochs: usize,
    pub pretrain_lr: f64,
    /// Share of pretraining pairs shown without frames (so the scorer's blind pass is in
    /// distribution); fine-tuning shows every pair with its frames.
    pub pretrain_blind_fraction: f64,
    pub finetune_epochs: usize,
    pub finetune_lr: f64,
    pub batch_size: usize,
    /// Evaluations over a run (at even steps of its samples, and at its end): a 1x
    /// goal's, and Uni-10x's.
    pub goal_evals: u64,
    pub uni_evals: u64,
    pub eval_max_candidates: usize,
    /// Sampled answers per pair for SC (0: merge's fallback for a missing SC).
    pub sc_samples: usize,
}

impl Recipe {
    pub fn for_options(o: &DemoOptions) -> Self {
        let data = data_options(o);
        let finetune_epochs = 2;
        Recipe {
            pool_pairs: data.pool_pairs,
            pretrain_pairs: data.pretrain_pairs,
            bench_questions: data.bench_questions,
            pretrain_epochs: if o.quick { 2 } else { 3 },
            pretrain_lr: 3e-3,
            pretrain_blind_fraction: 0.25,
            finetune_epochs,
            finetune_lr: 1e-3,
            batch_size: 16,
            goal_evals: 4,
            uni_evals: 8,
            eval_max_candidates: 8,
            // SC from sampled answers costs about twice the rest of describe on two
            // cores; without it merge uses the method's fallback for a missing SC.
            sc_samples: 0,
        }
    }
}

/// The base model's shape: tiny-vlm's defaults with 4x4-pixel patches, which place a
/// small moving object finely enough to tell its direction (from scratch on 288
/// direction questions, 4,600 samples: 84% on 64 held-out questions with 4x4 patches,
/// 44% with the default 8x8; chance 25%).
pub fn base_model_config() -> crate::train::TinyVlmConfig {
    crate::train::TinyVlmConfig { patch_size: 4, ..crate::train::TinyVlmConfig::default() }
}

fn data_options(o: &DemoOptions) -> DemoDataOptions {
    if o.quick { DemoDataOptions::quick(o.seed) } else { DemoDataOptions::full(o.seed) }
}

/// One fine-tuning run.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRun {
    /// `pool` or `clean`.
    pub pool: String,
    pub seed: u64,
    pub curve: RunCurve,
    pub seconds: f64,
}

/// A stage's wall time.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
}

/// Everything the demo measured; `report.md`'s numbers are these.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub seeds: Vec<u64>,
    pub quick: bool,
    pub count: u64,
    pub recipe: Recipe,
    pub data: DataSummary,
    /// Chance accuracy per split (1 / its distinct answers), then the average.
    pub chance: Vec<(String, f64)>,
    /// The base model's accuracy per split before fine-tuning, then the average.
    pub base_accuracy: Vec<(String, f64)>,
    pub base_final_loss: f64,
    /// Main pool, then the clean control.
    pub pools: Vec<PoolResult>,
    pub conclusion: Conclusion,
    pub runs: Vec<DemoRun>,
    pub stages: Vec<StageTime>,
    pub report_md: PathBuf,
    pub report_html: PathBuf,
    pub plot_png: PathBuf,
    pub plot_svg: PathBuf,
    pub seconds: f64,
}

/// The generator's summary, as the report states it.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub pretrain_pairs: usize,
    pub pool_kinds: Vec<(String, usize)>,
    pub clean_kinds: Vec<(String, usize)>,
    pub bench_questions: Vec<(String, usize)>,
    pub frame_files: usize,
    pub bytes: u64,
}

impl From<DemoDataSummary> for DataSummary {
    fn from(s: DemoDataSummary) -> Self {
        Self {
            pretrain_pairs: s.pretrain_pairs,
            pool_kinds: s.pool_kinds,
            clean_kinds: s.clean_kinds,
            bench_questions: s.bench_questions,
            frame_files: s.frame_files,
            bytes: s.bytes_written,
        }
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Fresh output sub-folder (a rerun of the demo starts each stage clean).
fn fresh_dir(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).map_err(|e| GdoError::io(path_str(p), e))?;
    }
    std::fs::create_dir_all(p).map_err(|e| GdoError::io(path_str(p), e))
}

/// Prints stage headers and their times.
struct Stages {
    n: usize,
    done: Vec<StageTime>,
    current: Option<(String, Instant)>,
}

impl Stages {
    fn start(&mut self, what: &str) {
        self.finish();
        println!("[{}/{}] {what}", self.done.len() + 1, self.n);
        self.current = Some((what.to_owned(), Instant::now()));
    }
    fn finish(&mut self) {
        if let Some((stage, t0)) = self.current.take() {
            let seconds = t0.elapsed().as_secs_f64();
            println!("      ({seconds:.1} s)");
            self.done.push(StageTime { stage, seconds });
        }
    }
}

/// Every question and answer text of the given tables (for the shared tokenizer).
async fn texts(tables: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in tables {
        let ctx = new_context();
        register_table(&ctx, "t", &path_str(t)).await?;
        let batches = ctx.sql("SELECT question, answer FROM t").await?.collect().await?;
        for b in batches {
            for c in 0..2 {
                let col = datafusion::arrow::compute::cast(b.column(c), &datafusion::arrow::datatypes::DataType::Utf8)?;
                let col = datafusion::arrow::array::AsArray::as_string::<i32>(&col);
                out.extend(col.iter().flatten().map(str::to_owned));
            }
        }
    }
    Ok(out)
}

/// A session with the benchmark splits registered, and the splits to evaluate.
async fn eval_session(benchmarks: &[(String, PathBuf)]) -> Result<(SessionContext, Vec<crate::train::EvalSplit>)> {
    let ctx = new_context();
    let mut evals = Vec::new();
    for (split, dir) in benchmarks {
        register_table(&ctx, split, &path_str(dir)).await?;
        evals.push(crate::train::EvalSplit { name: split.clone(), table: ctx.table(split.as_str()).await? });
    }
    Ok((ctx, evals))
}

/// 1 / the number of distinct (normalised) answers of each split.
async fn chance_levels(benchmarks: &[(String, PathBuf)], max_candidates: usize) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for (split, dir) in benchmarks {
        let ctx = new_context();
        register_table(&ctx, "b", &path_str(dir)).await?;
        let batches = ctx.sql("SELECT count(DISTINCT lower(trim(answer))) FROM b").await?.collect().await?;
        let n = batches
            .first()
            .and_then(|b| {
                datafusion::arrow::array::AsArray::as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>(
                    b.column(0),
                )
                .map(|a| a.value(0))
            })
            .unwrap_or(0)
            .clamp(1, max_candidates as i64);
        out.push((split.clone(), 1.0 / n as f64));
    }
    Ok(out)
}

fn with_average(mut v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mean = v.iter().map(|p| p.1).sum::<f64>() / v.len().max(1) as f64;
    v.push((crate::report::AVERAGE_SPLIT.to_owned(), mean));
    v
}

/// Run the whole demo.
pub async fn run_demo(opts: &DemoOptions) -> Result<DemoSummary> {
    let started = Instant::now();
    if opts.seeds == 0 {
        return Err(GdoError::Usage("--seeds must be at least 1".into()));
    }
    let recipe = Recipe::for_options(opts);
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| GdoError::io(path_str(out), e))?;
    let mut stages = Stages { n: 9, done: Vec::new(), current: None };
    let seeds: Vec<u64> = (0..opts.seeds as u64).map(|i| opts.seed + i).collect();

    stages.start("generate the data: pretraining set, pool, clean pool, benchmark splits");
    let data_dir = out.join("data");
    fresh_dir(&data_dir)?;
    let data = gdo_samples::generate_demo_data(&data_dir, &data_options(opts))
        .map_err(|e| GdoError::io(path_str(&data_dir), e))?;
    println!(
        "      {} pretraining captions; pools of {} pairs; benchmarks {}; {} frame files, {:.1} MB",
        data.pretrain_pairs,
        data.pool_pairs,
        data.bench_questions.iter().map(|(n, q)| format!("{n} {q}")).collect::<Vec<_>>().join(", "),
        data.frame_files,
        data.bytes_written as f64 / 1e6
    );

    stages.start("ingest every set into a pool table");
    let tables = out.join("tables");
    fresh_dir(&tables)?;
    let d = |f: &str| data_dir.join(f);
    ingest_files(&[d("pretrain.jsonl")], &[], &tables.join("pretrain"), false).await?;
    let pools = [("pool", "main pool"), ("clean", "clean pool")];
    for (name, _) in pools {
        let r = ingest_files(
            &[d(&format!("{name}_image.jsonl"))],
            &[d(&format!("{name}_video.jsonl"))],
            &tables.join(name),
            false,
        )
        .await?;
        if r.rejected > 0 {
            return Err(GdoError::Usage(format!("demo data: ingest rejected {} lines of the {name} pool", r.rejected)));
        }
    }
    let mut benchmarks = Vec::new();
    for (split, file, is_video, _) in DEMO_BENCHMARKS {
        let dir = tables.join(format!("bench_{split}"));
        let (img, vid) = if is_video { (vec![], vec![d(file)]) } else { (vec![d(file)], vec![]) };
        ingest_files(&img, &vid, &dir, false).await?;
        benchmarks.push((split.to_owned(), dir));
    }
    let chance = with_average(chance_levels(&benchmarks, recipe.eval_max_candidates).await?);

    stages.start("pretrain the base tiny-vlm (captions only) and evaluate it");
    let mut text_tables = vec![tables.join("pretrain"), tables.join("pool"), tables.join("clean")];
    text_tables.extend(benchmarks.iter().map(|(_, d)| d.clone()));
    let all_texts = texts(&text_tables).await?;
    let tokenizer =
        crate::models::tiny_vlm::tokenizer::TextTokenizer::build(all_texts.iter().map(String::as_str), 4000)?;
    let tokenizer_path = out.join("tokenizer.json");
    tokenizer.save(&tokenizer_path)?;
    let base_dir = out.join("base");
    fresh_dir(&base_dir)?;
    let ctx = new_context();
    register_table(&ctx, "pretrain", &path_str(&tables.join("pretrain"))).await?;
    let base = crate::train::train(
        &ctx,
        ctx.table("pretrain").await?,
        &crate::train::TrainConfig {
            seed: opts.seed,
            epochs: recipe.pretrain_epochs,
            batch_size: recipe.batch_size,
            lr: recipe.pretrain_lr,
            blind_fraction: recipe.pretrain_blind_fraction,
            checkpoint_every: 1 << 40,
            tokenizer: Some(path_str(&tokenizer_path)),
            model: base_model_config(),
            progress: opts.progress,
            ..crate::train::TrainConfig::default()
        },
        &[],
        &path_str(&base_dir),
        false,
    )
    .await?;
    let finetune_cfg = |seed: u64, every: u64| crate::train::TrainConfig {
        seed,
        epochs: recipe.finetune_epochs,
        batch_size: recipe.batch_size,
        lr: recipe.finetune_lr,
        blind_fraction: 0.0,
        checkpoint_every: every,
        base_model: Some(base.checkpoint.clone()),
        eval_max_questions: recipe.bench_questions,
        eval_max_candidates: recipe.eval_max_candidates,
        progress: opts.progress,
        ..crate::train::TrainConfig::default()
    };
    let (ectx, evals) = eval_session(&benchmarks).await?;
    let base_evals = crate::train::evaluate(&ectx, &finetune_cfg(opts.seed, 1), &evals).await?;
    let base_accuracy = with_average(base_evals.iter().map(|e| (e.split.clone(), e.accuracy)).collect());
    println!(
        "      {} steps, final loss {:.3}; base accuracy {}",
        base.steps,
        base.final_train_loss,
        base_accuracy.iter().map(|(s, a)| format!("{s} {:.1}%", 100.0 * a)).collect::<Vec<_>>().join(", ")
    );

    stages.start("describe both pools with the base model as the scorer (six descriptors)");
    for (name, _) in pools {
        let r = describe_with_scorer(
            &tables.join(name),
            &base.checkpoint,
            &out.join("descriptors").join(name),
            &recipe,
            opts,
        )
        .await?;
        println!("      {name}: {} rows described, errors by kind: {:?}", r.rows, r.errors_by_kind);
    }

    stages.start("merge each pool's descriptors into metrics (robust z, k-means, quality score)");
    for (name, _) in pools {
        let m = crate::merge::merge(&crate::merge::MergeOptions {
            descriptors: vec![path_str(&out.join("descriptors").join(name))],
            out: path_str(&out.join("metrics").join(name)),
            seed: opts.seed,
            cluster_k: 16,
            ..crate::merge::MergeOptions::default()
        })
        .await?;
        println!("      {name}: {} rows merged into {} clusters", m.rows_written, m.cluster_k);
    }

    stages.start("select MinLoss, Diverse, Temp, Temp+ and Uni-10x per pool and seed");
    // (pool, seed, run name, subset table)
    let mut subsets: Vec<(&str, u64, String, PathBuf)> = Vec::new();
    for (name, _) in pools {
        for &seed in &seeds {
            let dir = out.join("select").join(name).join(format!("seed{seed}"));
            let goals = crate::select::run::PAPER_GOALS
                .iter()
                .map(|g| crate::select::run::GoalSource::resolve(g))
                .collect::<Result<Vec<_>>>()?;
            let outcomes = crate::select::run::run_select(&crate::select::run::SelectJob {
                pool: path_str(&tables.join(name)),
                metrics: vec![path_str(&out.join("metrics").join(name))],
                goals,
                out: path_str(&dir),
                per_goal_folders: true,
                settings: vec![("seed".into(), seed.to_string()), ("count".into(), opts.count.to_string())],
                sft: crate::select::sft_jsonl::SftOptions::default(),
                write_jsonl: false,
                exclude: vec![],
                exclude_mode: crate::select::exclude::ExcludeMode::Question,
                memory_limit: None,
                cluster: None,
            })
            .await?;
            for o in &outcomes {
                subsets.push((name, seed, o.goal.clone(), PathBuf::from(&o.folder).join("gdo_1x")));
            }
            // Every goal's Uni-10x is the same (same count and seed): train it once.
            let first = outcomes.first().ok_or_else(|| GdoError::Usage("selection produced no goal".into()))?;
            subsets.push((name, seed, UNIFORM_RUN.to_owned(), PathBuf::from(&first.folder).join("uni_10x")));
        }
    }

    stages.start("fine-tune the base on every subset, evaluating each checkpoint");
    let pb = if opts.progress {
        indicatif::ProgressBar::new(subsets.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut runs = Vec::new();
    for (pool, seed, name, table) in &subsets {
        let t0 = Instant::now();
        let ctx = ectx.clone();
        let table_name = format!("subset_{pool}_{seed}_{name}");
        register_table(&ctx, &table_name, &path_str(table)).await?;
        let input = ctx.table(table_name.as_str()).await?;
        let subset_size = input.clone().count().await?;
        let run_dir = out.join("runs").join(pool).join(format!("seed{seed}")).join(name);
        fresh_dir(&run_dir)?;
        // The cadence follows the run's own length, so every seed's run of one goal has
        // the same number of evaluations even where the subsets' sizes differ.
        let evals_wanted = if name == UNIFORM_RUN { recipe.uni_evals } else { recipe.goal_evals };
        let every = (subset_size as u64 * recipe.finetune_epochs as u64).div_ceil(evals_wanted).max(1);
        let summary =
            crate::train::train(&ctx, input, &finetune_cfg(*seed, every), &evals, &path_str(&run_dir), false).await?;
        let points = summary
            .evals
            .iter()
            .map(|e| EvalPoint::single(e.samples_seen, e.split.clone(), e.accuracy, e.n as usize))
            .collect();
        let seconds = t0.elapsed().as_secs_f64();
        pb.suspend(|| {
            println!(
                "      {pool} seed {seed} {:<8} {subset_size:>5} pairs, {:>5} samples, final loss {:.3}, {seconds:.1} s",
                crate::report::display_name(name),
                summary.samples_seen,
                summary.final_train_loss
            )
        });
        pb.inc(1);
        runs.push(DemoRun {
            pool: (*pool).to_owned(),
            seed: *seed,
            curve: RunCurve { name: name.clone(), subset_size, points },
            seconds,
        });
    }
    pb.finish_and_clear();

    stages.start("count each subset's make-up by kind");
    let composition = report::composition(&data_dir.join("labels.csv"), &subsets).await?;

    stages.start("write the report");
    let (md_path, html_path) = (out.join("report.md"), out.join("report.html"));
    let (png, svg) = (out.join("frontier.png"), out.join("frontier.svg"));
    let results = report::pool_results(&pools, &runs, &composition)?;
    let conclusion = report::conclude(&results, &chance);
    stages.finish();
    let mut summary = DemoSummary {
        seeds,
        quick: opts.quick,
        count: opts.count,
        recipe,
        data: data.into(),
        chance,
        base_accuracy,
        base_final_loss: base.final_train_loss,
        pools: results,
        conclusion,
        runs,
        stages: stages.done.clone(),
        report_md: md_path.clone(),
        report_html: html_path.clone(),
        plot_png: png.clone(),
        plot_svg: svg.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    report::write(&summary, &png, &svg, &md_path, &html_path)?;
    summary.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&summary)?;
    let json_path = out.join("demo_summary.json");
    std::fs::write(&json_path, json).map_err(|e| GdoError::io(path_str(&json_path), e))?;
    Ok(summary)
}

/// Stage 4: all six descriptors of a pool with the base model. TNC uses the regex mode:
/// the base never saw the TNC prompt, so its `llm` reply would be noise.
async fn describe_with_scorer(
    pool: &Path,
    scorer: &Path,
    out: &Path,
    recipe: &Recipe,
    opts: &DemoOptions,
) -> Result<crate::describe::DescribeReport> {
    let device = candle_core::Device::Cpu;
    let model = crate::models::load_scorer(scorer, &device)?;
    crate::describe::run_describe(&crate::describe::DescribeOptions {
        pool: path_str(pool),
        out: path_str(out),
        cheap_only: false,
        scorer: Some(crate::models::Scorers::one(std::sync::Arc::from(model))),
        scorer_id: Some(path_str(scorer)),
        tnc: crate::describe::TncMode::Regex,
        sc_samples: recipe.sc_samples,
        batch_size: 16,
        seed: opts.seed,
        progress: opts.progress,
        ..crate::describe::DescribeOptions::default()
    })
    .await
}
