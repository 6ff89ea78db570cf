//! `gdo demo`: the paper's experiment in miniature on the embedded sample data.
//!
//! Stages, each a table another gdo command could have written:
//! 1. ingest the sample pool and the three benchmark splits;
//! 2. split off a held-out slice of the pool (a quarter, by `text_hash`, so
//!    near-duplicates stay on one side) and train a `tiny-vlm` proxy scorer on it;
//! 3. `describe` the rest of the pool with that scorer (all six descriptors);
//! 4. `merge` the descriptors into metrics;
//! 5. `select` the four paper goals at one fixed 1x size, plus Uni-10x;
//! 6. train the same `tiny-vlm`, from the same initialisation and under one recipe, on
//!    each subset, evaluating every checkpoint on the benchmark splits;
//! 7. write `report.md`, `report.html` and the frontier plot (PNG and SVG).

use std::path::{Path, PathBuf};

use datafusion::prelude::SessionContext;
use futures::TryStreamExt;

use crate::error::{GdoError, Result};
use crate::pool::{IngestOptions, IngestReport, ingest};
use crate::report::{EvalPoint, RunCurve, UNIFORM_RUN, compute_tables, plot_frontier, render_html, render_markdown};
use crate::session::{new_context, register_table};
use crate::store::Location;
use crate::table::TableWriter;

/// The benchmark splits of `data-samples/benchmarks/`: (name, file, is it video).
pub const BENCHMARK_SPLITS: &[(&str, &str, bool)] = &[
    ("image_static", "image_static.jsonl", false),
    ("video_temporal", "video_temporal.jsonl", true),
    ("video_long", "video_long.jsonl", true),
];

/// Ingest the sample pool (`onevision.jsonl`, `video.jsonl`) into `out`.
pub async fn ingest_samples(samples: &Path, out: &Path, progress: bool) -> Result<IngestReport> {
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
    let opts = IngestOptions {
        onevision: vec![onevision.display().to_string()],
        video: vec![video.display().to_string()],
        out: out.display().to_string(),
        progress,
        ..IngestOptions::default()
    };
    ingest(&opts).await
}

/// Ingest each benchmark split into `out/<split>`; returns (split, table folder, pairs).
pub async fn ingest_benchmarks(samples: &Path, out: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let bench = samples.join("benchmarks");
    let mut tables = Vec::new();
    for &(name, file, is_video) in BENCHMARK_SPLITS {
        let src = bench.join(file);
        if !src.exists() {
            return Err(GdoError::NotFound(format!("benchmark split {}", src.display())));
        }
        let dir = out.join(name);
        let src = src.display().to_string();
        let opts = IngestOptions {
            onevision: if is_video { vec![] } else { vec![src.clone()] },
            video: if is_video { vec![src] } else { vec![] },
            out: dir.display().to_string(),
            ..IngestOptions::default()
        };
        let report = ingest(&opts).await?;
        tables.push((name.to_owned(), dir, report.total_pairs));
    }
    Ok(tables)
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

/// The held-out scorer slice: pairs whose `text_hash` starts with 0-3 (a quarter).
pub const SCORER_SLICE_PREDICATE: &str = "substr(text_hash, 1, 1) IN ('0', '1', '2', '3')";

/// Split `pool` into the scorer slice and the selection pool (every `thin`-th of the
/// remaining pairs), as two tables.
pub async fn split_pool(pool: &Path, scorer_slice: &Path, selection_pool: &Path, thin: u64) -> Result<(u64, u64)> {
    let ctx = new_context();
    register_table(&ctx, "pool", &pool.display().to_string()).await?;
    let slice = write_query_table(
        &ctx,
        &format!("SELECT * FROM pool WHERE {SCORER_SLICE_PREDICATE} ORDER BY pool_index"),
        scorer_slice,
        "pool",
    )
    .await?;
    let rest = write_query_table(
        &ctx,
        &format!(
            "SELECT * FROM pool WHERE NOT ({SCORER_SLICE_PREDICATE}) AND pool_index % {} = 0 ORDER BY pool_index",
            thin.max(1)
        ),
        selection_pool,
        "pool",
    )
    .await?;
    Ok((slice, rest))
}

/// What `gdo demo` does, and how big.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Output folder (`demo/`).
    pub out: PathBuf,
    /// Sample data folder (`data-samples/`).
    pub samples: PathBuf,
    /// The small variant the test suite runs (fewer epochs, smaller evaluations).
    pub quick: bool,
    pub seed: u64,
    /// Pairs in each goal's 1x subset (Uni-10x is ten times that, capped at the pool).
    pub count: u64,
    pub progress: bool,
}

/// The training recipe every subset run shares (and the proxy scorer's).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Evaluation cadence of the 1x goal runs (samples); Uni-10x evaluates about eight
    /// times over its run (its final accuracy is what the goals are compared with).
    pub goal_checkpoint_every: u64,
    pub uni_checkpoint_every: u64,
    pub eval_max_questions: usize,
    pub eval_max_candidates: usize,
    pub scorer_epochs: usize,
    /// Sampled answers per pair for SC (0: not computed; merge uses the method's SC fallback).
    pub sc_samples: usize,
    /// Keep every `thin`-th pair of the selection pool (the quick variant thins it).
    pub thin: u64,
}

impl Recipe {
    pub fn for_options(o: &DemoOptions) -> Self {
        let count = o.count.max(1);
        let (epochs, thin) = if o.quick { (2, 3) } else { (4, 1) };
        Recipe {
            epochs,
            batch_size: 16,
            lr: 3e-3,
            goal_checkpoint_every: count,
            uni_checkpoint_every: (10 * count * epochs as u64).div_ceil(8),
            eval_max_questions: if o.quick { 12 } else { 48 },
            eval_max_candidates: 8,
            scorer_epochs: if o.quick { 2 } else { 6 },
            // SC from 5 answers sampled by the proxy (batched generation, frames
            // encoded once per pair), as the method computes it.
            sc_samples: 5,
            thin,
        }
    }
}

/// One subset's training run, as the report sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoRun {
    pub curve: RunCurve,
    pub seconds: f64,
    pub frame_skips: u64,
}

/// Everything the demo measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub pool_pairs: u64,
    pub scorer_slice_pairs: u64,
    pub selection_pool_pairs: u64,
    pub recipe: Recipe,
    pub runs: Vec<DemoRun>,
    pub report_md: PathBuf,
    pub report_html: PathBuf,
    pub plot_png: PathBuf,
    pub plot_svg: PathBuf,
    pub seconds: f64,
}

fn stage(i: usize, n: usize, what: &str) {
    println!("[{i}/{n}] {what}");
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

/// Run the whole demo.
pub async fn run_demo(opts: &DemoOptions) -> Result<DemoSummary> {
    let started = std::time::Instant::now();
    let recipe = Recipe::for_options(opts);
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| GdoError::io(path_str(out), e))?;
    const N: usize = 8;

    stage(1, N, "ingest the sample pool and the benchmark splits");
    let pool_dir = out.join("pool");
    let pool_report = ingest_samples(&opts.samples, &pool_dir, opts.progress).await?;
    let benchmarks = ingest_benchmarks(&opts.samples, &out.join("benchmarks")).await?;
    println!(
        "      pool: {} pairs; benchmarks: {}",
        pool_report.total_pairs,
        benchmarks.iter().map(|(n, _, p)| format!("{n} {p}")).collect::<Vec<_>>().join(", ")
    );

    stage(2, N, "split off the proxy scorer's held-out slice; build the shared tokenizer");
    let slice_dir = out.join("scorer_slice");
    let selection_dir = out.join("selection_pool");
    let (slice_pairs, selection_pairs) = split_pool(&pool_dir, &slice_dir, &selection_dir, recipe.thin).await?;
    let mut text_tables = vec![pool_dir.clone()];
    text_tables.extend(benchmarks.iter().map(|(_, d, _)| d.clone()));
    let all_texts = texts(&text_tables).await?;
    let tokenizer =
        crate::models::tiny_vlm::tokenizer::TextTokenizer::build(all_texts.iter().map(String::as_str), 4000)?;
    let tokenizer_path = out.join("tokenizer.json");
    tokenizer.save(&tokenizer_path)?;
    println!(
        "      scorer slice {slice_pairs} pairs, selection pool {selection_pairs} pairs, vocabulary {}",
        tokenizer.vocab_size()
    );

    let base_cfg = |epochs: usize, checkpoint_every: u64| crate::train::TrainConfig {
        seed: opts.seed,
        epochs,
        batch_size: recipe.batch_size,
        lr: recipe.lr,
        checkpoint_every,
        eval_max_questions: recipe.eval_max_questions,
        eval_max_candidates: recipe.eval_max_candidates,
        tokenizer: Some(path_str(&tokenizer_path)),
        progress: opts.progress,
        ..crate::train::TrainConfig::default()
    };

    stage(3, N, "train the tiny-vlm proxy scorer on the held-out slice");
    let scorer_dir = out.join("scorer");
    fresh_dir(&scorer_dir)?;
    let ctx = new_context();
    register_table(&ctx, "slice", &path_str(&slice_dir)).await?;
    let scorer = crate::train::train(
        &ctx,
        ctx.table("slice").await?,
        &base_cfg(recipe.scorer_epochs, 1 << 40),
        &[],
        &path_str(&scorer_dir),
        false,
    )
    .await?;
    println!("      {} steps, final train loss {:.3}", scorer.steps, scorer.final_train_loss);

    stage(4, N, "describe the selection pool (all six descriptors, proxy scorer)");
    let descriptors_dir = out.join("descriptors");
    let described = describe_with_scorer(&selection_dir, &scorer.checkpoint, &descriptors_dir, &recipe, opts).await?;
    println!("      {} rows described, errors by kind: {:?}", described.rows, described.errors_by_kind);

    stage(5, N, "merge descriptors into metrics (robust z, k-means, quality score)");
    let metrics_dir = out.join("metrics");
    let merge = crate::merge::merge(&crate::merge::MergeOptions {
        descriptors: vec![path_str(&descriptors_dir)],
        out: path_str(&metrics_dir),
        seed: opts.seed,
        cluster_k: 16,
        ..crate::merge::MergeOptions::default()
    })
    .await?;
    println!("      {} rows merged into {} clusters", merge.rows_written, merge.cluster_k);

    stage(6, N, "select the four goals and Uni-10x");
    let select_dir = out.join("select");
    let goals: Vec<crate::select::run::GoalSource> = crate::select::run::PAPER_GOALS
        .iter()
        .map(|g| crate::select::run::GoalSource::resolve(g))
        .collect::<Result<_>>()?;
    let outcomes = crate::select::run::run_select(&crate::select::run::SelectJob {
        pool: path_str(&selection_dir),
        metrics: vec![path_str(&metrics_dir)],
        goals,
        out: path_str(&select_dir),
        per_goal_folders: true,
        settings: vec![("seed".into(), opts.seed.to_string()), ("count".into(), opts.count.to_string())],
        sft: crate::select::sft_jsonl::SftOptions::default(),
        write_jsonl: true,
        exclude: vec![],
        exclude_mode: crate::select::exclude::ExcludeMode::Question,
        memory_limit: None,
        cluster: None,
    })
    .await?;
    let mut subsets: Vec<(String, PathBuf)> =
        outcomes.iter().map(|o| (o.goal.clone(), PathBuf::from(&o.folder).join("gdo_1x"))).collect();
    // Every goal gets the same Uni-10x (same count and seed): train it once.
    let first = outcomes.first().ok_or_else(|| GdoError::Usage("selection produced no goal".into()))?;
    subsets.push((UNIFORM_RUN.to_owned(), PathBuf::from(&first.folder).join("uni_10x")));

    stage(7, N, "train tiny-vlm on every subset from the same initialisation, evaluating each checkpoint");
    let mut runs = Vec::new();
    for (name, table) in &subsets {
        let t0 = std::time::Instant::now();
        let ctx = new_context();
        register_table(&ctx, "subset", &path_str(table)).await?;
        let mut evals = Vec::new();
        for (split, dir, _) in &benchmarks {
            register_table(&ctx, split, &path_str(dir)).await?;
            evals.push(crate::train::EvalSplit { name: split.clone(), table: ctx.table(split.as_str()).await? });
        }
        let run_dir = out.join("runs").join(name);
        fresh_dir(&run_dir)?;
        let input = ctx.table("subset").await?;
        let subset_size = input.clone().count().await?;
        let every = if name == UNIFORM_RUN { recipe.uni_checkpoint_every } else { recipe.goal_checkpoint_every };
        let summary =
            crate::train::train(&ctx, input, &base_cfg(recipe.epochs, every), &evals, &path_str(&run_dir), false)
                .await?;
        let points = summary
            .evals
            .iter()
            .map(|e| EvalPoint {
                samples_seen: e.samples_seen,
                split: e.split.clone(),
                accuracy: e.accuracy,
                n: e.n as usize,
            })
            .collect();
        let seconds = t0.elapsed().as_secs_f64();
        println!(
            "      {name}: {subset_size} pairs, {} samples seen, final loss {:.3}, {:.1} s",
            summary.samples_seen, summary.final_train_loss, seconds
        );
        runs.push(DemoRun {
            curve: RunCurve { name: name.clone(), subset_size, points },
            seconds,
            frame_skips: summary.frame_skips.values().sum(),
        });
    }

    stage(8, N, "write the report");
    let curves: Vec<RunCurve> = runs.iter().map(|r| r.curve.clone()).collect();
    let tables = compute_tables(&curves)?;
    let (png, svg) = (out.join("frontier.png"), out.join("frontier.svg"));
    plot_frontier(&curves, &tables.splits, &png, &svg)?;
    let (md_path, html_path) = (out.join("report.md"), out.join("report.html"));
    let intro = intro_text(&pool_report, slice_pairs, selection_pairs, &recipe, opts, &runs);
    let md = format!(
        "# gdo demo: goal subsets vs Uni-10x\n\n{intro}\n{}\n![frontier](frontier.png)\n\n{}",
        render_markdown(&tables),
        audits_markdown(&pool_dir, &pool_report).await?
    );
    std::fs::write(&md_path, md).map_err(|e| GdoError::io(path_str(&md_path), e))?;
    let html_intro = format!("<pre>{}</pre>", intro.replace('&', "&amp;").replace('<', "&lt;"));
    let html = render_html("gdo demo: goal subsets vs Uni-10x", &html_intro, &tables, "frontier.svg");
    std::fs::write(&html_path, html).map_err(|e| GdoError::io(path_str(&html_path), e))?;
    let summary = DemoSummary {
        pool_pairs: pool_report.total_pairs,
        scorer_slice_pairs: slice_pairs,
        selection_pool_pairs: selection_pairs,
        recipe,
        runs,
        report_md: md_path,
        report_html: html_path,
        plot_png: png,
        plot_svg: svg,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&summary)?;
    let json_path = out.join("demo_summary.json");
    std::fs::write(&json_path, json).map_err(|e| GdoError::io(path_str(&json_path), e))?;
    Ok(summary)
}

/// The shipped audit queries over the sample pool, as Markdown sections.
async fn audits_markdown(pool_dir: &Path, report: &IngestReport) -> Result<String> {
    use std::fmt::Write as _;
    let ctx = new_context();
    register_table(&ctx, "pool", &path_str(pool_dir)).await?;
    let mut md = String::from("## The sample pool\n\n");
    let _ = writeln!(
        md,
        "Ingest: {} pairs from {} rows, {} rejected lines ({}), {} strata, {:.2} s.\n",
        report.total_pairs,
        report.rows,
        report.rejected,
        report.rejected_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", "),
        report.num_strata,
        report.seconds
    );
    for q in crate::queries::AUDIT {
        let results = crate::sql::run_statements(&ctx, q.sql).await?;
        let Some(last) = results.last() else { continue };
        let table = String::from_utf8_lossy(&crate::sql::render(last, crate::sql::Format::Table)?).into_owned();
        let _ = writeln!(md, "### {}\n\n{}\n\n```text\n{}```\n", q.name, q.summary(), table);
    }
    Ok(md)
}

fn intro_text(
    pool: &IngestReport,
    slice: u64,
    selection: u64,
    recipe: &Recipe,
    opts: &DemoOptions,
    runs: &[DemoRun],
) -> String {
    let mut s = format!(
        "Sample pool: {} pairs ({} rejected lines). Proxy scorer (tiny-vlm) trained on a held-out slice of {} pairs; \
         the goals select from the other {} pairs, {} pairs each (Uni-10x: {}).\n\n\
         Recipe for every run: tiny-vlm, same initialisation (seed {}), {} epochs, batch {}, peak lr {}, \
         evaluation every {} samples (goals) / {} samples (Uni-10x) on at most {} questions per split \
         (accuracy = the right answer ranked first by answer loss among the split's {} most frequent answers).{}\n\n",
        pool.total_pairs,
        pool.rejected,
        slice,
        selection,
        opts.count,
        runs.iter().find(|r| r.curve.name == UNIFORM_RUN).map_or(0, |r| r.curve.subset_size),
        opts.seed,
        recipe.epochs,
        recipe.batch_size,
        recipe.lr,
        recipe.goal_checkpoint_every,
        recipe.uni_checkpoint_every,
        recipe.eval_max_questions,
        recipe.eval_max_candidates,
        if opts.quick { " Quick variant (every third pair of the selection pool): numbers are noisy." } else { "" },
    );
    for r in runs {
        s.push_str(&format!(
            "- {}: {} pairs, {:.1} s, {} unreadable frames skipped\n",
            r.curve.name, r.curve.subset_size, r.seconds, r.frame_skips
        ));
    }
    s
}

/// Stage 4: all six descriptors of the selection pool with the proxy scorer. TNC uses
/// the regex mode: the proxy never saw the TNC prompt in training, so its `llm` reply
/// would be noise (see the README on what the proxy can tell).
async fn describe_with_scorer(
    pool: &Path,
    scorer: &Path,
    out: &Path,
    recipe: &Recipe,
    opts: &DemoOptions,
) -> Result<crate::describe::DescribeReport> {
    let device = candle_core::Device::Cpu;
    let model = crate::models::load_scorer(scorer, &device)?;
    let report = crate::describe::run_describe(&crate::describe::DescribeOptions {
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
    .await?;
    Ok(report)
}
