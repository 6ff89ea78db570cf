//! The `gdo select` job: pool + metrics -> scoring views -> one or more goal files ->
//! the goal subset and its Uni-10x baseline, written as Parquet, SFT-ready JSONL and a
//! report.
//!
//! Output folder per goal (`--all-goals` puts each goal in a sub-folder named after it):
//! the tables `gdo_1x/` and `uni_10x/`, `gdo_1x.jsonl`, `uni_10x.jsonl`, `report.json`.
//! `report.json` is removed first and written last: a folder without it is incomplete.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::{concat_batches, interleave};
use datafusion::arrow::datatypes::{DataType, Field, Int8Type, Int64Type, Schema};
use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::Expr;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};

use super::exclude::{ExcludeMode, ExclusionReport, apply_exclusions};
use super::metrics::{MetricsReport, load_metrics};
use super::sft_jsonl::{SftOptions, dataset_info, write_sft_jsonl};
use crate::error::{GdoError, Result};
use crate::memory::{peak_rss_mib, release_free_heap, rss_mib};
use crate::ops::common::{i64_at, i64s};
use crate::ops::goal::{Pair, Profile, js_to_profile, uni_draw};
use crate::ops::goal_select::goal_runs;
use crate::ops::shipped_goal::shipped_goal_selection;
use crate::ops::uni_sample::draw_batch;
use crate::session::{create_score_views_keeping, new_context_limited, register_table};
use crate::store::Location;
use crate::table::TableWriter;

/// The goals shipped in `queries/goals/`.
pub const GOALS: &[(&str, &str)] = &[
    ("minloss", include_str!("../../queries/goals/minloss.sql")),
    ("diverse", include_str!("../../queries/goals/diverse.sql")),
    ("temp", include_str!("../../queries/goals/temp.sql")),
    ("temp_plus", include_str!("../../queries/goals/temp_plus.sql")),
    ("balanced", include_str!("../../queries/goals/balanced.sql")),
];

/// The paper's four presets (`--all-goals`).
pub const PAPER_GOALS: &[&str] = &["minloss", "diverse", "temp", "temp_plus"];

/// Pools up to this size are scored once and kept in memory (see `run_select`).
/// Measured on a 2-core, 24 GiB machine with 10M pairs: scoring once and keeping it
/// peaked at 8.3 GiB, no more than streaming the scoring through each operator (8.5
/// GiB, hash-join and repartition buffers), and it saves one scoring pass.
pub const MATERIALISE_MAX_PAIRS: u64 = 12_000_000;

pub const UNI_SQL: &str = include_str!("../../queries/select/uni_10x.sql");

/// A goal: a shipped name or a SQL file.
#[derive(Debug, Clone)]
pub struct GoalSource {
    pub name: String,
    pub sql: String,
}

impl GoalSource {
    /// `temp_plus` (shipped) or `path/to/goal.sql`.
    pub fn resolve(spec: &str) -> Result<Self> {
        if let Some((name, sql)) = GOALS.iter().find(|(n, _)| *n == spec) {
            return Ok(GoalSource { name: name.to_string(), sql: sql.to_string() });
        }
        if spec.ends_with(".sql") || std::path::Path::new(spec).exists() {
            let sql = std::fs::read_to_string(spec).map_err(|e| GdoError::io(spec, e))?;
            let name = std::path::Path::new(spec)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "custom".into());
            return Ok(GoalSource { name, sql });
        }
        let known: Vec<&str> = GOALS.iter().map(|(n, _)| *n).collect();
        let hint = crate::ops::params::closest(spec, known.iter().copied())
            .map(|k| format!(" Did you mean {k}?"))
            .unwrap_or_default();
        Err(GdoError::Usage(format!(
            "unknown goal '{spec}': give a shipped goal ({}) or a .sql file.{hint}",
            known.join(", ")
        )))
    }
}

/// Everything `gdo select` takes.
#[derive(Debug, Clone)]
pub struct SelectJob {
    pub pool: String,
    pub metrics: Vec<String>,
    pub goals: Vec<GoalSource>,
    pub out: String,
    /// Put each goal in `out/<goal>/` (always true for more than one goal).
    pub per_goal_folders: bool,
    /// `SET gdo.<name> = <value>` applied before scoring (seed, count, ablations, ...).
    pub settings: Vec<(String, String)>,
    /// How the SFT JSONL exports are written.
    pub sft: SftOptions,
    pub write_jsonl: bool,
    /// Exclusion files (decontamination, method §5.9) and how they match.
    pub exclude: Vec<String>,
    pub exclude_mode: ExcludeMode,
    /// Bound on the memory the session's queries hold (bytes); None: unbounded.
    pub memory_limit: Option<usize>,
    /// Score on this cluster (`df://HOST:PORT`); None: in this process.
    pub cluster: Option<String>,
}

/// One goal's outcome.
#[derive(Debug, Clone)]
pub struct GoalOutcome {
    pub goal: String,
    pub folder: String,
    pub report: Value,
}

async fn set(ctx: &SessionContext, key: &str, value: &str) -> Result<()> {
    ctx.sql(&format!("SET gdo.{key} = '{value}'")).await?.collect().await?;
    Ok(())
}

/// What a goal query returned.
enum GoalRows {
    /// The goal query's own rows.
    Full(Vec<RecordBatch>),
    /// goal_select's rows alone: the goal query is the shipped full-row join (marked
    /// by [`crate::ops::shipped_goal`]), whose rows `gdo select` fetches in the same
    /// pool scan as the Uni-10x rows'.
    Selected(Vec<RecordBatch>),
}

/// Run every statement; return the last one's rows and the run of the goal_select
/// operator in its plan (report and reservoir, read from the operator's metrics).
async fn run_goal_sql(ctx: &SessionContext, sql: &str, goal: &str) -> Result<(GoalRows, Option<GoalRun>)> {
    let statements = DFParser::parse_sql(sql)?;
    let count = statements.len();
    if count == 0 {
        return Err(GdoError::Usage(format!("goal {goal}: the goal file has no SQL statement")));
    }
    let mut out = (GoalRows::Full(Vec::new()), None);
    for (i, statement) in statements.into_iter().enumerate() {
        let plan = ctx.state().statement_to_plan(statement).await?;
        crate::sql::check_query_only(&plan, &format!("goal {goal}"))?;
        if i + 1 < count {
            ctx.execute_logical_plan(plan).await?.collect().await?;
            continue;
        }
        let state = ctx.state();
        let optimized = state.optimize(&plan)?;
        let (plan, selected_only) = match shipped_goal_selection(&optimized) {
            Some(selection) => (selection.clone(), true),
            None => (optimized, false),
        };
        let physical = state.query_planner().create_physical_plan(&plan, &state).await?;
        let batches = collect(Arc::clone(&physical), ctx.task_ctx()).await?;
        let rows = if selected_only { GoalRows::Selected(batches) } else { GoalRows::Full(batches) };
        out = (rows, goal_runs(&physical).into_iter().next());
    }
    Ok(out)
}

/// A finished goal_select run: its report and its reservoir.
type GoalRun = (Value, Arc<Vec<Pair>>);

async fn profile(ctx: &SessionContext) -> Result<Profile> {
    let batches = ctx.sql("SELECT stratum, pairs, first_seen FROM gdo_strata").await?.collect().await?;
    Ok(crate::ops::common::profile_of("gdo select", &batches)?)
}

/// The distinct qa_uids of `batches`, borrowed from them.
fn uid_set(batches: &[RecordBatch]) -> Result<HashSet<&str>> {
    let mut out = HashSet::new();
    for b in batches {
        let u = b
            .column_by_name("qa_uid")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| GdoError::Table("subset rows lack a Utf8 qa_uid column".into()))?;
        out.extend(u.iter().flatten());
    }
    Ok(out)
}

fn one_batch(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
    let Some(schema) = batches.first().map(|b| b.schema()) else { return Ok(None) };
    Ok(Some(concat_batches(&schema, &batches)?))
}

/// The batch as a Parquet file, its columns encoded side by side on the rayon pool.
/// The bytes are those `ArrowWriter::write` then `close` give (the same column
/// writers, row groups cut at the same row counts); only the encoding is parallel.
fn parquet_bytes(batch: RecordBatch) -> Result<Vec<u8>> {
    let schema = batch.schema();
    let props = crate::table::writer_properties();
    let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
    let (mut file, factory) =
        ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props))?.into_serialized_writer()?;
    let leaves = crate::table::leaves_per_field(file.schema_descr(), schema.fields().len());
    for (index, offset) in (0..batch.num_rows()).step_by(group_rows).enumerate() {
        let group = batch.slice(offset, group_rows.min(batch.num_rows() - offset));
        let writers = factory.create_column_writers(index)?;
        let chunks = crate::table::encode_row_group(&schema, &leaves, writers, &[group])?;
        let mut group_writer = file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group_writer)?;
        }
        group_writer.close()?;
    }
    Ok(file.into_inner()?)
}

async fn count_sql(ctx: &SessionContext, sql: &str) -> Result<u64> {
    let b = ctx.sql(sql).await?.collect().await?;
    let Some(first) = b.first() else { return Ok(0) };
    let c = i64s(first, first.schema().field(0).name())?;
    Ok(i64_at(&c, 0).unwrap_or(0) as u64)
}

/// Scoring views always replaced by their rows: small lookups (one row per stratum
/// or source), which the scoring joins then build their hash tables from.
const KEPT_LOOKUPS: &[&str] = &["gdo_strata", "gdo_stratum_alignment", "gdo_source_prior"];

/// A session opened by [`open_scored_session`].
pub struct ScoredSession {
    pub ctx: SessionContext,
    /// Pairs in the pool (after exclusions).
    pub total: u64,
    pub metrics: MetricsReport,
    pub exclusion: Option<ExclusionReport>,
    /// The pool read: path, version and table id (files for plain Parquet).
    pub pool_read: Value,
}

/// Open a session with `pool`, `metrics` and the scoring views, ready for `goals`
/// goal runs.
///
/// The goal and its Uni-10x baseline (and every further goal) read the same scored
/// pairs: they are scored once and kept in memory when the pool has at most
/// [`MATERIALISE_MAX_PAIRS`] pairs or more than one goal runs (about 250 bytes a
/// pair); above the limit each operator streams the scoring again, so the kept rows
/// are bounded by the candidates.
pub async fn open_scored_session(
    pool: &str,
    metrics: &[String],
    settings: &[(String, String)],
    exclude: &[String],
    exclude_mode: ExcludeMode,
    goals: usize,
    memory_limit: Option<usize>,
) -> Result<ScoredSession> {
    let ctx = new_context_limited(memory_limit);
    let (total, report, exclusion, pool_read) =
        score_in(&ctx, pool, metrics, settings, exclude, exclude_mode, goals).await?;
    Ok(ScoredSession { ctx, total, metrics: report, exclusion, pool_read })
}

/// [`open_scored_session`] with the scoring (statistics, strata, scores, VDS3)
/// computed on the cluster at `url`. Its rows come back to a local session, where the
/// goal operators run as they do without a cluster: they need every scored pair in
/// one place, and their reports stay in this process.
pub async fn open_scored_session_on(
    url: &str,
    pool: &str,
    metrics: &[String],
    settings: &[(String, String)],
    exclude_mode: ExcludeMode,
    memory_limit: Option<usize>,
) -> Result<ScoredSession> {
    let remote = crate::cluster::connect(url).await?;
    let (total, report, _, _) = score_in(&remote, pool, metrics, settings, &[], exclude_mode, usize::MAX).await?;
    let ctx = new_context_limited(memory_limit);
    let pool_read = register_table(&ctx, "pool", pool).await?.read;
    for (k, v) in settings {
        set(&ctx, k, v).await?;
    }
    for name in CLUSTER_SCORED {
        ctx.register_table(*name, remote.table_provider(*name).await?)?;
    }
    Ok(ScoredSession { ctx, total, metrics: report, exclusion: None, pool_read })
}

/// The tables a cluster's scoring hands to the local session: what the goal files and
/// the coverage counts read.
const CLUSTER_SCORED: &[&str] = &[
    "metrics",
    "gdo_metric_stats",
    "gdo_strata",
    "gdo_stratum_alignment",
    "gdo_source_prior",
    "gdo_metric_vds3",
    "gdo_scored",
];

async fn score_in(
    ctx: &SessionContext,
    pool: &str,
    metrics: &[String],
    settings: &[(String, String)],
    exclude: &[String],
    exclude_mode: ExcludeMode,
    goals: usize,
) -> Result<(u64, MetricsReport, Option<ExclusionReport>, Value)> {
    let pool_read = register_table(ctx, "pool", pool).await?.read;
    let exclusion = if exclude.is_empty() { None } else { Some(apply_exclusions(ctx, exclude, exclude_mode).await?) };
    if metrics.is_empty() {
        return Err(GdoError::Usage("no --metrics given: selection needs the merged descriptors".into()));
    }
    let started = Instant::now();
    let report = load_metrics(ctx, metrics).await?;
    tracing::info!(rows = report.loaded, secs = started.elapsed().as_secs_f64(), "metrics loaded");
    for (k, v) in settings {
        set(ctx, k, v).await?;
    }
    let total = count_sql(ctx, "SELECT count(*) FROM pool").await?;
    let mut keep = KEPT_LOOKUPS.to_vec();
    if goals > 1 || total <= MATERIALISE_MAX_PAIRS {
        keep.extend(["gdo_metric_vds3", "gdo_scored"]);
    }
    create_score_views_keeping(ctx, &keep).await?;
    Ok((total, report, exclusion, pool_read))
}

/// What every goal of one `gdo select` run reads; nothing in it changes once the
/// goals start, so they can run at the same time.
struct SharedRun {
    ctx: SessionContext,
    job: SelectJob,
    prof: Profile,
    total: u64,
    metrics: MetricsReport,
    exclusion: Option<ExclusionReport>,
    pool_read: Value,
    unknown: u64,
    covered: u64,
    started: Instant,
    /// Goals whose goal query has not finished yet; the last one to finish drops the
    /// scored pairs and the metrics, so their memory is free for the row fetches and
    /// encodings that follow (where the run peaks).
    goals_selecting: AtomicUsize,
}

/// In-memory tables only the goal queries read.
const SCORING_TABLES: &[&str] = &["gdo_scored", "gdo_metric_vds3", "metrics"];

pub async fn run_select(job: &SelectJob) -> Result<Vec<GoalOutcome>> {
    let started = Instant::now();
    if job.goals.is_empty() {
        return Err(GdoError::Usage("no goal given (--goal NAME|FILE.sql or --all-goals)".into()));
    }
    let scored = match &job.cluster {
        Some(url) if !job.exclude.is_empty() => {
            return Err(GdoError::Usage(format!(
                "--exclude does not run on a cluster yet ({url}); run the selection without --cluster"
            )));
        }
        Some(url) => {
            open_scored_session_on(url, &job.pool, &job.metrics, &job.settings, job.exclude_mode, job.memory_limit)
                .await?
        }
        None => {
            open_scored_session(
                &job.pool,
                &job.metrics,
                &job.settings,
                &job.exclude,
                job.exclude_mode,
                job.goals.len(),
                job.memory_limit,
            )
            .await?
        }
    };
    let ScoredSession { ctx, total, metrics, exclusion, pool_read } = scored;
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        peak_mib = peak_rss_mib(),
        rss_mib = rss_mib(),
        "session, metrics and scoring views ready"
    );
    if total == 0 {
        return Err(GdoError::Usage(format!("{}: the pool is empty; nothing to select", job.pool)));
    }
    let unknown =
        count_sql(&ctx, "SELECT count(*) FROM metrics m LEFT ANTI JOIN pool p ON p.qa_uid = m.qa_uid").await?;
    let covered =
        count_sql(&ctx, "SELECT count(*) FROM pool p LEFT SEMI JOIN metrics m ON p.qa_uid = m.qa_uid").await?;
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        peak_mib = peak_rss_mib(),
        rss_mib = rss_mib(),
        "metric coverage counted"
    );
    let prof = profile(&ctx).await?;
    tracing::info!(
        secs = started.elapsed().as_secs_f64(),
        peak_mib = peak_rss_mib(),
        rss_mib = rss_mib(),
        "pool profile read"
    );
    let out_root = Location::parse(&job.out)?;
    // Each goal spends most of its time in one serial pass (goal_select's scan), so
    // goals run side by side, as many at once as the session has partitions (cores).
    // They only read the session (the Uni-10x draw takes its size, seed and cap from
    // the goal's report, not from session settings), unless a goal file has more than
    // one statement (its `SET`s would reach the goals beside it) or two goals share a
    // name (and so an output folder): then they run one after another. Outcomes come
    // back in goal order.
    let single_statement = |g: &GoalSource| DFParser::parse_sql(&g.sql).map_or(true, |s| s.len() == 1);
    let names: HashSet<&str> = job.goals.iter().map(|g| g.name.as_str()).collect();
    let parallel = if names.len() == job.goals.len() && job.goals.iter().all(single_statement) {
        ctx.state().config().target_partitions().clamp(1, job.goals.len())
    } else {
        1
    };
    let shared = Arc::new(SharedRun {
        ctx,
        job: job.clone(),
        prof,
        total,
        metrics,
        exclusion,
        pool_read,
        unknown,
        covered,
        started,
        goals_selecting: AtomicUsize::new(job.goals.len()),
    });
    let runs = job.goals.iter().cloned().map(|goal| {
        let (shared, out_root) = (Arc::clone(&shared), out_root.clone());
        async move {
            let name = goal.name.clone();
            tokio::spawn(run_goal(shared, goal, out_root))
                .await
                .map_err(|e| GdoError::Table(format!("goal {name}: the goal's task stopped: {e}")))?
        }
    });
    futures::stream::iter(runs).buffered(parallel).try_collect().await
}

/// One goal: its subset, its Uni-10x baseline from the goal's own reservoir, the
/// output files and `report.json` (written last).
async fn run_goal(shared: Arc<SharedRun>, goal: GoalSource, out_root: Location) -> Result<GoalOutcome> {
    let SharedRun { ctx, job, prof, total, metrics, exclusion, pool_read, unknown, covered, started, goals_selecting } =
        shared.as_ref();
    let goal_started = Instant::now();
    let folder = if job.per_goal_folders || job.goals.len() > 1 { out_root.child(&goal.name) } else { out_root };
    let report_loc = folder.child("report.json");
    if report_loc.exists().await? {
        object_store::ObjectStoreExt::delete(report_loc.store.as_ref(), &report_loc.path).await?;
    }
    let (rows, run) = run_goal_sql(ctx, &goal.sql, &goal.name).await?;
    if goals_selecting.fetch_sub(1, Ordering::AcqRel) == 1 {
        for name in SCORING_TABLES {
            ctx.deregister_table(*name)?;
        }
    }
    tracing::info!(secs = started.elapsed().as_secs_f64(), peak_mib = peak_rss_mib(), rss_mib = rss_mib(), goal = %goal.name, "goal subset selected");
    let Some((mut report, reservoir)) = run else {
        return Err(GdoError::Usage(format!(
            "goal {}: the goal file's last statement does not run goal_select(...)",
            goal.name
        )));
    };
    let params = report.get("params").cloned().unwrap_or(Value::Null);
    let uni_target = report.get("uni_target_count").and_then(Value::as_u64).unwrap_or(0);
    let per_video = params.get("max_qa_per_video").and_then(Value::as_u64).unwrap_or(8);
    // The reference draws Uni-10x from the reservoir its goal pass filled (method §5.6,
    // 4.8); `uni_sample` with this seed, count and oversample builds the same one.
    let drawn = uni_draw(&reservoir, uni_target, per_video);
    tracing::debug!(secs = started.elapsed().as_secs_f64(), goal = %goal.name, "uni baseline drawn from the reservoir");
    let drawn_rows = draw_batch(&drawn)?;
    // What the report needs of the draw, taken now: the reservoir (every pair the goal
    // pass kept a place for) is freed before the pool scan below, the run's peak.
    let mut uni_passes = Map::new();
    for (_, pass) in &drawn {
        let e = uni_passes.entry(pass.to_string()).or_insert(json!(0));
        *e = json!(e.as_u64().unwrap_or(0) + 1);
    }
    let js_uni = js_to_profile(prof, drawn.iter().map(|(p, _)| p.stratum));
    drop(drawn);
    drop(reservoir);
    // With several goals in flight, each one's allocations reuse what the others free,
    // and handing that memory back would only make them fault it in again.
    let alone = job.goals.len() == 1;
    let (subset, uni) = match rows {
        GoalRows::Selected(selected) => full_rows(ctx, &selected, drawn_rows, alone).await?,
        GoalRows::Full(subset) => (subset, full_rows(ctx, &[], drawn_rows, alone).await?.1),
    };
    tracing::info!(secs = started.elapsed().as_secs_f64(), peak_mib = peak_rss_mib(), rss_mib = rss_mib(), goal = %goal.name, "full rows of the subset and Uni-10x fetched");

    // The Uni-10x rows are the drawn pairs, joined to their pool rows.
    let (a, b) = (uid_set(&subset)?, uid_set(&uni)?);
    let overlap = if a.is_empty() || b.is_empty() {
        0.0
    } else {
        a.iter().filter(|u| b.contains(*u)).count() as f64 / a.len().min(b.len()) as f64
    };
    let obj = report.as_object_mut().expect("goal report is an object");
    let js_1x = obj.remove("js_divergence").unwrap_or(Value::Null);
    obj.insert("js_divergence".into(), json!({"gdo_1x": js_1x, "uni_10x": js_uni}));
    obj.insert("uni_count".into(), json!(uni.iter().map(RecordBatch::num_rows).sum::<usize>()));
    obj.insert("uni_passes".into(), Value::Object(uni_passes));
    obj.insert("overlap_ratio".into(), json!(overlap));
    obj.insert(
        "metrics".into(),
        json!({
            "report": metrics,
            "unknown_qa_uids": unknown,
            "pool_pairs_with_metrics": covered,
            "coverage_ratio": *covered as f64 / *total as f64,
        }),
    );
    obj.insert("exclusion".into(), json!(exclusion));
    obj.insert("pool".into(), pool_read.clone());
    obj.insert("goal_seconds".into(), json!(goal_started.elapsed().as_secs_f64()));
    obj.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));

    // One batch per subset, so the files do not depend on how the rows were batched;
    // the batches go as they are joined, so the rows are not held twice.
    let subset = one_batch(subset)?;
    let uni = one_batch(uni)?;
    // The two Parquet encodings run side by side on the rayon pool, off the async
    // workers; the JSONL exports stream out after them, so the encoders' buffers and
    // the export's are not held at the same time.
    let parquet = {
        let (subset, uni) = (subset.clone(), uni.clone());
        tokio::task::spawn_blocking(move || {
            rayon::join(|| subset.map(parquet_bytes).transpose(), || uni.map(parquet_bytes).transpose())
        })
    };
    let (a, b) =
        parquet.await.map_err(|e| GdoError::Table(format!("goal {}: encoding the outputs stopped: {e}", goal.name)))?;
    // Each subset is a table of its own (`<folder>/gdo_1x/`, `<folder>/uni_10x/`), its
    // commit naming the goal and the pool version it was selected from.
    let mut tables = serde_json::Map::new();
    for (name, bytes, batch) in [("gdo_1x", a?, &subset), ("uni_10x", b?, &uni)] {
        if let (Some(bytes), Some(batch)) = (bytes, batch) {
            let root = folder.child(name);
            let mut table = TableWriter::open(root.clone(), "subset").await?;
            table.read_input("pool", pool_read.clone());
            let rows = batch.num_rows() as u64;
            table.add_file(None, bytes, rows, batch.schema()).await?;
            let committed = table.commit(json!({ "goal": goal.name, "subset": name, "rows": rows })).await?;
            tables.insert(name.into(), json!({ "path": root.to_string(), "version": committed.version, "rows": rows }));
        }
    }
    if let Some(obj) = report.as_object_mut() {
        obj.insert("tables".into(), Value::Object(tables));
    }
    tracing::debug!(secs = started.elapsed().as_secs_f64(), peak_mib = peak_rss_mib(), rss_mib = rss_mib(), goal = %goal.name, "parquet outputs written");
    if job.write_jsonl {
        let mut info = serde_json::Map::new();
        let mut exports = serde_json::Map::new();
        for (name, batch) in [("gdo_1x", subset), ("uni_10x", uni)] {
            if let Some(batch) = batch {
                let file = format!("{name}.jsonl");
                let stats = write_sft_jsonl(&folder.child(&file), batch, &job.sft).await?;
                if stats.remote_media_rows > 0 {
                    eprintln!(
                        "warning: {}/{file}: {} of {} rows name media in object storage (s3://, gs://, az://), \
                         which ms-swift and LLaMA-Factory do not open; copy the media to a local folder and \
                         ingest with --media-root there",
                        folder, stats.remote_media_rows, stats.rows
                    );
                }
                info.insert(name.into(), dataset_info(&file));
                exports.insert(name.into(), serde_json::to_value(&stats)?);
            }
        }
        // LLaMA-Factory: `dataset_dir` = this folder, `dataset: gdo_1x`.
        folder.child("dataset_info.json").write_all(serde_json::to_vec_pretty(&Value::Object(info))?).await?;
        if let Some(obj) = report.as_object_mut() {
            obj.insert("jsonl".into(), Value::Object(exports));
        }
    }
    tracing::info!(secs = started.elapsed().as_secs_f64(), peak_mib = peak_rss_mib(), rss_mib = rss_mib(), goal = %goal.name, "outputs written");
    // After the outputs: encoding them is part of the run's peak.
    if let Some(obj) = report.as_object_mut() {
        obj.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
    }
    report_loc.write_all(serde_json::to_vec_pretty(&report)?).await?;
    Ok(GoalOutcome { goal: goal.name.clone(), folder: folder.to_string(), report })
}

/// The full pool rows of the goal subset (from goal_select's rows, when the goal query
/// left them to `gdo select`) and of a Uni-10x draw, from one join with the pool: a
/// pool scan decodes every column of every row, so one scan serves both. Each subset
/// comes back in its own order (selection, draw) with the operator's columns after
/// the pool's, as the shipped goal query and `queries/select/uni_10x.sql` give them.
async fn full_rows(
    ctx: &SessionContext,
    selected: &[RecordBatch],
    drawn: RecordBatch,
    release_scan_memory: bool,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let field = |name: &str, t: DataType| Field::new(name, t, false);
    let wanted_schema = Arc::new(Schema::new(vec![
        field("pool_index", DataType::Int64),
        field("score", DataType::Float64),
        field("base_score", DataType::Float64),
        field("vds3", DataType::Float64),
        field("metric_quality", DataType::Float64),
        field("stage", DataType::Utf8),
        field("selection_order", DataType::Int64),
        field("subset", DataType::Int8),
    ]));
    let part = |b: &RecordBatch, stage: &str, order: &str, subset: i8| -> Result<RecordBatch> {
        let col = |name: &str| {
            b.column_by_name(name).cloned().ok_or_else(|| GdoError::Table(format!("rows to fetch lack {name}")))
        };
        let columns = vec![
            col("pool_index")?,
            col("score")?,
            col("base_score")?,
            col("vds3")?,
            col("metric_quality")?,
            col(stage)?,
            col(order)?,
            Arc::new(Int8Array::from(vec![subset; b.num_rows()])) as ArrayRef,
        ];
        Ok(RecordBatch::try_new(Arc::clone(&wanted_schema), columns)?)
    };
    let mut parts = selected.iter().map(|b| part(b, "stage", "selection_order", 0)).collect::<Result<Vec<_>>>()?;
    parts.push(part(&drawn, "pass", "sample_order", 1)?);
    let wanted = concat_batches(&wanted_schema, &parts)?;
    drop(parts);

    let pool = ctx.table("pool").await?;
    let w = |name: &str| Expr::Column(Column::new(Some("w"), name));
    let mut columns: Vec<Expr> =
        pool.schema().fields().iter().map(|f| Expr::Column(Column::new(Some("p"), f.name()))).collect();
    columns.extend(["score", "base_score", "vds3", "metric_quality", "stage", "selection_order", "subset"].map(w));
    let joined = ctx.read_batch(wanted)?.alias("w")?.join_on(
        pool.alias("p")?,
        JoinType::Inner,
        [w("pool_index").eq(Expr::Column(Column::new(Some("p"), "pool_index")))],
    )?;
    let joined = crate::session::left_built(joined.select(columns)?).collect().await?;
    let Some(schema) = joined.first().map(|b| b.schema()) else { return Ok((Vec::new(), Vec::new())) };
    // The scan decoded every pool row to keep a fifth of them; its buffers go back to
    // the OS before the reordering copies below allocate (the run peaks here).
    if release_scan_memory {
        release_free_heap();
    }
    // Where each subset's rows are, in its own order.
    let mut keys: [Vec<(i64, usize, usize)>; 2] = [Vec::new(), Vec::new()];
    let last = schema.fields().len() - 1;
    for (b, batch) in joined.iter().enumerate() {
        let subset = batch.column(last).as_primitive::<Int8Type>();
        let order = batch.column(last - 1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            keys[usize::from(subset.value(i) != 0)].push((order.value(i), b, i));
        }
    }
    let [goal_at, uni_at] = keys.map(|mut k| {
        k.sort_unstable();
        k.into_iter().map(|(_, b, i)| (b, i)).collect::<Vec<_>>()
    });
    // Reorder column by column, each joined column dropped once both subsets have
    // theirs: the run's peak holds the joined rows plus one column's copy (the frame
    // lists at most), not the joined rows twice over.
    let mut by_column: Vec<Vec<ArrayRef>> =
        (0..last).map(|c| joined.iter().map(|b| Arc::clone(b.column(c))).collect()).collect();
    drop(joined);
    let (mut goal_columns, mut uni_columns) = (Vec::with_capacity(last), Vec::with_capacity(last));
    for column in &mut by_column {
        let arrays = std::mem::take(column);
        let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        goal_columns.push(interleave(&refs, &goal_at)?);
        uni_columns.push(interleave(&refs, &uni_at)?);
    }
    let out_schema = Arc::new(schema.project(&(0..last).collect::<Vec<_>>())?);
    let batch = |columns: Vec<ArrayRef>, at: &[(usize, usize)]| -> Result<Vec<RecordBatch>> {
        if at.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![RecordBatch::try_new(Arc::clone(&out_schema), columns)?])
    };
    Ok((batch(goal_columns, &goal_at)?, batch(uni_columns, &uni_at)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_parquet_encoding_gives_the_writers_bytes() {
        use datafusion::arrow::array::{Int64Array, ListBuilder, StringArray, StringBuilder};
        // Over one row group (65,536 rows) so the cut between groups is covered too.
        let n = 70_000usize;
        let mut frames = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            for k in 0..(i % 4) {
                frames.values().append_value(format!("file:///f/{}/{k}.jpg", i % 977));
            }
            frames.append(i % 11 != 0);
        }
        let frames = frames.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("pool_index", DataType::Int64, false),
            Field::new("stage", DataType::Utf8, true),
            Field::new("frames", frames.data_type().clone(), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(StringArray::from_iter((0..n).map(|i| (i % 7 != 0).then(|| format!("stage{}", i % 5))))),
            Arc::new(frames),
        ];
        let batch = RecordBatch::try_new(schema, columns).expect("batch");
        let mut expected = Vec::new();
        let mut w = ArrowWriter::try_new(&mut expected, batch.schema(), Some(crate::table::writer_properties()))
            .expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        assert_eq!(parquet_bytes(batch).expect("parallel encoding"), expected);
    }
}
