//! The `gdo select` job: pool + metrics -> scoring views -> one or more goal files ->
//! the goal subset and its Uni-10x baseline, written as Parquet, SFT-ready JSONL and a
//! report.
//!
//! Output folder per goal (`--all-goals` puts each goal in a sub-folder named after it):
//! `gdo_1x.parquet`, `uni_10x.parquet`, `gdo_1x.jsonl`, `uni_10x.jsonl`, `report.json`.
//! `report.json` is removed first and written last: a folder without it is incomplete.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};

use super::common::{f64_at, f64s, i64_at, i64s, str_at, strings};
use super::goal::{Pair, Profile, js_to_profile, uni_draw};
use super::goal_select::GoalSelectExec;
use super::uni_sample::draw_batch;
use super::exclude::{ExcludeMode, ExclusionReport, apply_exclusions};
use super::metrics::{MetricsReport, load_metrics};
use crate::error::{GdoError, Result};
use crate::session::{create_score_views_keeping, new_context, register_table};
use crate::store::Location;

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
        let hint = super::params::closest(spec, known.iter().copied())
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
    pub target_frames: usize,
    pub write_jsonl: bool,
    /// Exclusion files (decontamination, spec 4.9) and how they match.
    pub exclude: Vec<String>,
    pub exclude_mode: ExcludeMode,
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

/// Run every statement; return the last one's batches and the goal report found in
/// its plan.
async fn run_goal_sql(ctx: &SessionContext, sql: &str, goal: &str) -> Result<(Vec<RecordBatch>, Option<GoalRun>)> {
    let statements = DFParser::parse_sql(sql)?;
    let count = statements.len();
    if count == 0 {
        return Err(GdoError::Usage(format!("goal {goal}: the goal file has no SQL statement")));
    }
    let mut out = (Vec::new(), None);
    for (i, statement) in statements.into_iter().enumerate() {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        if i + 1 < count {
            df.collect().await?;
            continue;
        }
        let physical = df.create_physical_plan().await?;
        let batches = collect(Arc::clone(&physical), ctx.task_ctx()).await?;
        out = (batches, find_goal_run(&physical));
    }
    Ok(out)
}

/// A finished goal_select run: its report and its reservoir.
type GoalRun = (Value, Arc<Vec<Pair>>);

fn find_goal_run(plan: &Arc<dyn ExecutionPlan>) -> Option<GoalRun> {
    let any: &dyn std::any::Any = plan.as_ref();
    if let Some(g) = any.downcast_ref::<GoalSelectExec>() {
        return g.report().zip(g.reservoir());
    }
    plan.children().into_iter().find_map(find_goal_run)
}

async fn profile(ctx: &SessionContext) -> Result<Profile> {
    let batches = ctx.sql("SELECT stratum, pairs, first_seen FROM gdo_strata").await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        let (s, n, f) = (strings(b, "stratum")?, i64s(b, "pairs")?, i64s(b, "first_seen")?);
        for i in 0..b.num_rows() {
            rows.push((str_at(&s, i).to_string(), i64_at(&n, i).unwrap_or(0) as u64, i64_at(&f, i).unwrap_or(0)));
        }
    }
    Ok(Profile::new(rows)?)
}

fn uids(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let u = strings(b, "qa_uid")?;
        out.extend((0..b.num_rows()).map(|i| str_at(&u, i).to_string()));
    }
    Ok(out)
}

fn parquet_bytes(batches: &[RecordBatch], schema: datafusion::arrow::datatypes::SchemaRef) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(crate::table::writer_properties()))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(buf)
}

/// SFT-ready JSONL (LLaVA / ms-swift `messages` + `images`): one `<image>` per frame
/// before the question; frames resampled to `target_frames`.
fn jsonl_bytes(batches: &[RecordBatch], target_frames: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let list_utf8 = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    for b in batches {
        let col = |n: &str| strings(b, n);
        let (uid, vid, q, a, bucket, src, tc, stage) = (
            col("qa_uid")?,
            col("video_uid")?,
            col("question")?,
            col("answer")?,
            col("bucket")?,
            col("data_source")?,
            col("temporal_category")?,
            col("stage")?,
        );
        let (score, base, vds3, mq) =
            (f64s(b, "score")?, f64s(b, "base_score")?, f64s(b, "vds3")?, f64s(b, "metric_quality")?);
        let Some(frames) = b.column_by_name("frames") else {
            return Err(GdoError::Table("subset rows lack the frames column".into()));
        };
        let frames: ArrayRef = cast(frames, &list_utf8)?;
        let frames = frames.as_list::<i32>();
        for i in 0..b.num_rows() {
            let all: Vec<String> = if frames.is_null(i) {
                Vec::new()
            } else {
                let v = frames.value(i);
                let v = v.as_string::<i32>();
                (0..v.len()).map(|j| v.value(j).to_string()).collect()
            };
            let keep: Vec<String> = gdo_udfs::method::uniform_indices(all.len(), target_frames)
                .into_iter()
                .map(|k| all[k].clone())
                .collect();
            let prompt = format!("{}\n{}", "<image>".repeat(keep.len()), str_at(&q, i));
            let row = json!({
                "id": str_at(&uid, i),
                "messages": [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": str_at(&a, i)},
                ],
                "images": keep,
                "meta": {
                    "qa_uid": str_at(&uid, i),
                    "video_uid": str_at(&vid, i),
                    "bucket": str_at(&bucket, i),
                    "source": str_at(&src, i),
                    "n_frames": all.len(),
                    "temporal_category": str_at(&tc, i),
                    "score": f64_at(&score, i),
                    "base_score": f64_at(&base, i),
                    "vds3": f64_at(&vds3, i),
                    "metric_quality": f64_at(&mq, i),
                    "stage": str_at(&stage, i),
                },
            });
            serde_json::to_writer(&mut out, &row)?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Peak resident memory of this process so far (Linux; None elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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
) -> Result<ScoredSession> {
    let ctx = new_context();
    register_table(&ctx, "pool", pool).await?;
    let exclusion = if exclude.is_empty() { None } else { Some(apply_exclusions(&ctx, exclude, exclude_mode).await?) };
    if metrics.is_empty() {
        return Err(GdoError::Usage("no --metrics given: selection needs the merged descriptors".into()));
    }
    let started = Instant::now();
    let report = load_metrics(&ctx, metrics).await?;
    tracing::info!(rows = report.loaded, secs = started.elapsed().as_secs_f64(), "metrics loaded");
    for (k, v) in settings {
        set(&ctx, k, v).await?;
    }
    let total = count_sql(&ctx, "SELECT count(*) FROM pool").await?;
    let mut keep = KEPT_LOOKUPS.to_vec();
    if goals > 1 || total <= MATERIALISE_MAX_PAIRS {
        keep.extend(["gdo_metric_vds3", "gdo_scored"]);
    }
    create_score_views_keeping(&ctx, &keep).await?;
    Ok(ScoredSession { ctx, total, metrics: report, exclusion })
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
    let ScoredSession { ctx, total, metrics, exclusion } =
        open_scored_session(&job.pool, &job.metrics, &job.settings, &job.exclude, job.exclude_mode, job.goals.len())
            .await?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), "session, metrics and scoring views ready");
    if total == 0 {
        return Err(GdoError::Usage(format!("{}: the pool is empty; nothing to select", job.pool)));
    }
    let unknown =
        count_sql(&ctx, "SELECT count(*) FROM metrics m LEFT ANTI JOIN pool p ON p.qa_uid = m.qa_uid").await?;
    let covered =
        count_sql(&ctx, "SELECT count(*) FROM pool p LEFT SEMI JOIN metrics m ON p.qa_uid = m.qa_uid").await?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), "metric coverage counted");
    let prof = profile(&ctx).await?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), "pool profile read");
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
    let SharedRun { ctx, job, prof, total, metrics, exclusion, unknown, covered, started, goals_selecting } =
        shared.as_ref();
    let goal_started = Instant::now();
    let folder = if job.per_goal_folders || job.goals.len() > 1 { out_root.child(&goal.name) } else { out_root };
    let report_loc = folder.child("report.json");
    if report_loc.exists().await? {
        object_store::ObjectStoreExt::delete(report_loc.store.as_ref(), &report_loc.path).await?;
    }
    let (subset, run) = run_goal_sql(ctx, &goal.sql, &goal.name).await?;
    if goals_selecting.fetch_sub(1, Ordering::AcqRel) == 1 {
        for name in SCORING_TABLES {
            ctx.deregister_table(*name)?;
        }
    }
    tracing::info!(secs = started.elapsed().as_secs_f64(), goal = %goal.name, "goal subset selected");
    let Some((mut report, reservoir)) = run else {
        return Err(GdoError::Usage(format!(
            "goal {}: the goal file's last statement does not run goal_select(...)",
            goal.name
        )));
    };
    let params = report.get("params").cloned().unwrap_or(Value::Null);
    let uni_target = report.get("uni_target_count").and_then(Value::as_u64).unwrap_or(0);
    let per_video = params.get("max_qa_per_video").and_then(Value::as_u64).unwrap_or(8);
    // The reference draws Uni-10x from the reservoir its goal pass filled (spec 4.6,
    // 4.8); `uni_sample` with this seed, count and oversample builds the same one.
    let drawn = uni_draw(&reservoir, uni_target, per_video);
    tracing::debug!(secs = started.elapsed().as_secs_f64(), goal = %goal.name, "uni baseline drawn from the reservoir");
    let uni = uni_rows(ctx, draw_batch(&drawn)?).await?;
    tracing::info!(secs = started.elapsed().as_secs_f64(), goal = %goal.name, "uni baseline drawn");

    // Overlap against the drawn pairs' own ids: no copy of the 10x baseline's strings.
    let a: HashSet<String> = uids(&subset)?.into_iter().collect();
    let b: HashSet<&str> = drawn.iter().map(|(p, _)| p.qa_uid.as_str()).collect();
    let overlap = if a.is_empty() || b.is_empty() {
        0.0
    } else {
        a.iter().filter(|u| b.contains(u.as_str())).count() as f64 / a.len().min(b.len()) as f64
    };
    let mut uni_passes = Map::new();
    for (_, pass) in &drawn {
        let e = uni_passes.entry(pass.to_string()).or_insert(json!(0));
        *e = json!(e.as_u64().unwrap_or(0) + 1);
    }
    let obj = report.as_object_mut().expect("goal report is an object");
    let js_1x = obj.remove("js_divergence").unwrap_or(Value::Null);
    obj.insert(
        "js_divergence".into(),
        json!({"gdo_1x": js_1x, "uni_10x": js_to_profile(prof, drawn.iter().map(|(p, _)| p.stratum))}),
    );
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
    obj.insert("goal_seconds".into(), json!(goal_started.elapsed().as_secs_f64()));
    obj.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));

    for (name, batches) in [("gdo_1x", subset), ("uni_10x", uni)] {
        let Some(schema) = batches.first().map(|b| b.schema()) else { continue };
        // One batch, so the file's pages do not depend on how the rows were batched;
        // the batches are dropped first so the rows are not held twice while encoding.
        let one = [concat_batches(&schema, &batches)?];
        drop(batches);
        folder.child(&format!("{name}.parquet")).write_all(parquet_bytes(&one, schema)?).await?;
        if job.write_jsonl {
            folder.child(&format!("{name}.jsonl")).write_all(jsonl_bytes(&one, job.target_frames)?).await?;
        }
    }
    tracing::info!(secs = started.elapsed().as_secs_f64(), goal = %goal.name, "outputs written");
    // After the outputs: encoding them is part of the run's peak.
    if let Some(obj) = report.as_object_mut() {
        obj.insert("peak_rss_mib".into(), json!(peak_rss_mib()));
    }
    report_loc.write_all(serde_json::to_vec_pretty(&report)?).await?;
    Ok(GoalOutcome { goal: goal.name.clone(), folder: folder.to_string(), report })
}

/// The full pool rows of a Uni-10x draw, in draw order, with the columns the goal
/// subsets have (`queries/select/uni_10x.sql` gives the same rows from SQL).
async fn uni_rows(ctx: &SessionContext, drawn: RecordBatch) -> Result<Vec<RecordBatch>> {
    let pool = ctx.table("pool").await?;
    let mut columns: Vec<Expr> =
        pool.schema().fields().iter().map(|f| Expr::Column(Column::new(Some("p"), f.name()))).collect();
    let u = |name: &str| Expr::Column(Column::new(Some("u"), name));
    columns.extend([
        u("score"),
        u("base_score"),
        u("vds3"),
        u("metric_quality"),
        u("pass").alias("stage"),
        u("sample_order").alias("selection_order"),
    ]);
    let joined = ctx.read_batch(drawn)?.alias("u")?.join_on(
        pool.alias("p")?,
        JoinType::Inner,
        [u("pool_index").eq(Expr::Column(Column::new(Some("p"), "pool_index")))],
    )?;
    Ok(joined.sort(vec![u("sample_order").sort(true, false)])?.select(columns)?.collect().await?)
}
