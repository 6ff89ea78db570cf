//! `goal_select`: GDO's constrained goal selection (method §5.4-5.7) as a DataFusion
//! operator. In SQL:
//!
//! ```sql
//! SELECT * FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3',
//!                           named_struct('goal', 'temp_plus', 'min_count', 16000, ...));
//! ```
//!
//! Inputs: the scored pairs (one pass), the strata table (pairs and first-seen
//! position per stratum) and the VDS3 of every metric row. Output: the selected pairs
//! in selection order (`pool_index, qa_uid, stage, selection_order, score, base_score,
//! vds3, metric_quality`); join back to `pool` for the full rows. Memory is bounded by
//! the candidates and the reservoir, not by the pool.
//!
//! File layout: logical node, planner, `ExecutionPlan`, stream.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, Result, Statistics, exec_err, internal_err, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Documentation, Expr, Extension, LogicalPlan, TableType, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::StatisticsArgs;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions, execute_stream,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;
use serde_json::json;

use super::common::{
    ReportHandle, f64_at, f64s, i64_at, i64s, require_columns, row_bound_statistics, str_at, strings, table_arg_plan,
};
use super::goal::{
    Candidates, Pair, Profile, Reservoir, TIE, Vds3Counts, derive_budget, fill, js_to_profile, pair_random, plan_quotas,
};
use super::params::GoalParams;
use gdo_udfs::options::gdo_options;

const NAME: &str = "goal_select";

/// The SQL reference of `goal_select` (`gdo sql --help-functions`, docs/sql-functions.md).
pub static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::DOC_SECTION_OPERATORS,
        "GDO's goal selection: derives the budget, plans bucket and stratum quotas, fills them by score \
         under the hard constraints (video, temporal and source-group floors, per-video cap, text dedup) \
         and returns the selected pairs in selection order: pool_index, qa_uid, stage, selection_order, \
         score, base_score, vds3, metric_quality. Join to pool on pool_index for the full rows. \
         Parameters are literals in a named_struct; a goal file (queries/goals/) passes all of them. \
         Required: min_count, max_count, min_ratio, max_ratio, strata_mult, coverage_mass, tail_target, \
         vds3_target_positive, vds3_threshold, vds3_max_mult, min_video_ratio, max_video_ratio, \
         min_temporal_in_video_ratio, temporal_categories, oversample, video_oversample, \
         temporal_oversample, source_group_floor_topk, min_source_group_ratio, \
         source_group_floor_frac_of_expected. Optional: goal ('custom'), seed (42), max_qa_per_video (8), \
         uni_multiplier (10), reservoir_oversample (1.35), count, ratio, vds3_budget (true). The settings \
         gdo.seed, gdo.count, gdo.ratio, gdo.max_qa_per_video, gdo.uni_multiplier and \
         gdo.no_vds3_budget override the call. EXPLAIN shows every parameter and the seed.",
        "goal_select(scored, strata, metric_vds3, params)",
    )
    .with_argument("scored", "Name of the scored-pairs table, usually 'gdo_scored' (a view gdo creates when pool and metrics are registered).")
    .with_argument("strata", "Name of the strata table, usually 'gdo_strata'.")
    .with_argument("metric_vds3", "Name of the per-metric-row VDS3 table, usually 'gdo_metric_vds3'.")
    .with_argument("params", "named_struct('name', value, ...) of the goal's parameters.")
    .with_sql_example(
        "SELECT p.*, g.stage FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3',\n  \
         named_struct('goal', 'temp_plus', 'min_count', 16000, ...)) g\n\
         JOIN pool p ON p.pool_index = g.pool_index ORDER BY g.selection_order;",
    )
    .build()
});

/// Columns `goal_select` reads from the scored pairs.
pub const SCORED_COLUMNS: &[&str] =
    &["pool_index", "qa_uid", "video_uid", "stratum", "text_hash", "score", "base_score", "vds3", "metric_quality"];

/// The output schema.
pub static OUTPUT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pool_index", DataType::Int64, false),
        Field::new("qa_uid", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("selection_order", DataType::Int64, false),
        Field::new("score", DataType::Float64, false),
        Field::new("base_score", DataType::Float64, false),
        Field::new("vds3", DataType::Float64, false),
        Field::new("metric_quality", DataType::Float64, false),
    ]))
});

// ---------------------------------------------------------------------------------
// Logical node

/// The logical node: three inputs (scored, strata, metric VDS3) and the parameters.
#[derive(Debug, Clone)]
pub struct GoalSelectNode {
    pub inputs: Vec<LogicalPlan>,
    pub params: GoalParams,
    schema: DFSchemaRef,
}

impl GoalSelectNode {
    pub fn try_new(scored: LogicalPlan, strata: LogicalPlan, vds3: LogicalPlan, params: GoalParams) -> Result<Self> {
        require_columns(NAME, "the scored table", scored.schema(), SCORED_COLUMNS)?;
        require_columns(NAME, "the strata table", strata.schema(), &["stratum", "pairs", "first_seen"])?;
        require_columns(NAME, "the metric VDS3 table", vds3.schema(), &["vds3"])?;
        let schema = Arc::new(DFSchema::try_from(OUTPUT_SCHEMA.as_ref().clone())?);
        Ok(Self { inputs: vec![scored, strata, vds3], params, schema })
    }
}

impl PartialEq for GoalSelectNode {
    fn eq(&self, other: &Self) -> bool {
        self.inputs == other.inputs && self.params.explain() == other.params.explain()
    }
}
impl Eq for GoalSelectNode {}
impl Hash for GoalSelectNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inputs.hash(state);
        self.params.explain().hash(state);
    }
}
impl PartialOrd for GoalSelectNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self == other).then_some(std::cmp::Ordering::Equal)
    }
}

impl UserDefinedLogicalNodeCore for GoalSelectNode {
    fn name(&self) -> &str {
        "GoalSelect"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GoalSelect: goal={}, seed={}, params={}", self.params.goal, self.params.seed, self.params.explain())
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if inputs.len() != 3 {
            return internal_err!("GoalSelect takes 3 inputs, got {}", inputs.len());
        }
        Ok(Self { inputs, params: self.params.clone(), schema: Arc::clone(&self.schema) })
    }
}

/// `goal_select(scored, strata, metric_vds3, params)` as a SQL table function.
#[derive(Debug, Default)]
pub struct GoalSelectFunction;

impl TableFunctionImpl for GoalSelectFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 4 {
            return plan_err!(
                "{NAME}(scored, strata, metric_vds3, named_struct(...)) takes 4 arguments, got {}",
                exprs.len()
            );
        }
        let session = args.session();
        let scored = table_arg_plan(session, NAME, &exprs[0])?;
        let strata = table_arg_plan(session, NAME, &exprs[1])?;
        let vds3 = table_arg_plan(session, NAME, &exprs[2])?;
        let options = gdo_options(session.config_options());
        let params = GoalParams::from_named_struct(&exprs[3], &options)?;
        let node = GoalSelectNode::try_new(scored, strata, vds3, params)?;
        Ok(Arc::new(ExtensionTable::new(node)))
    }
}

/// A table whose plan is an extension node: the SQL planner inlines it, so the node
/// (not a scan) appears in the plan and in EXPLAIN.
#[derive(Debug)]
pub struct ExtensionTable {
    plan: LogicalPlan,
    schema: SchemaRef,
}

impl ExtensionTable {
    pub fn new<N: UserDefinedLogicalNodeCore>(node: N) -> Self {
        let schema = Arc::new(node.schema().as_arrow().clone());
        Self { plan: LogicalPlan::Extension(Extension { node: Arc::new(node) }), schema }
    }
}

#[async_trait]
impl TableProvider for ExtensionTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        Some(std::borrow::Cow::Borrowed(&self.plan))
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Only reached when a filter was pushed into the table reference itself.
        plan_err!("gdo's selection operators cannot be scanned with filters; wrap them in a subquery")
    }
}

// ---------------------------------------------------------------------------------
// Planner

/// Turns [`GoalSelectNode`] into [`GoalSelectExec`].
#[derive(Debug, Default)]
pub struct GoalSelectPlanner;

#[async_trait]
impl ExtensionPlanner for GoalSelectPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session_state: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<GoalSelectNode>() else {
            return Ok(None);
        };
        if physical_inputs.len() != 3 {
            return internal_err!("GoalSelect planned with {} inputs", physical_inputs.len());
        }
        Ok(Some(Arc::new(GoalSelectExec::new(physical_inputs.to_vec(), node.params.clone()))))
    }
}

// ---------------------------------------------------------------------------------
// ExecutionPlan

/// Runs one goal's selection; one output partition.
#[derive(Debug)]
pub struct GoalSelectExec {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    pub params: GoalParams,
    properties: Arc<PlanProperties>,
    report: ReportHandle,
    reservoir: ReservoirHandle,
}

/// Where the operator leaves its uniform reservoir (method §5.6) once the stream has
/// finished, so the caller can draw the goal's Uni-10x baseline from the very
/// reservoir the goal's fill used, without a second pass over the pool.
pub type ReservoirHandle = Arc<Mutex<Option<Arc<Vec<Pair>>>>>;

impl GoalSelectExec {
    pub fn new(inputs: Vec<Arc<dyn ExecutionPlan>>, params: GoalParams) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&OUTPUT_SCHEMA)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { inputs, params, properties, report: Arc::new(Mutex::new(None)), reservoir: Arc::new(Mutex::new(None)) }
    }

    /// The run report, once the output stream has finished.
    pub fn report(&self) -> Option<serde_json::Value> {
        self.report.lock().ok().and_then(|r| r.clone())
    }

    /// The reservoir of the finished run: `max(U, ceil(U * reservoir_oversample))`
    /// pairs with the smallest `pair_random(seed, RESERVOIR, qa_uid)`, in that order,
    /// where U is the report's `uni_target_count`. `uni_sample` with the same seed,
    /// count and oversample builds the same reservoir.
    pub fn reservoir(&self) -> Option<Arc<Vec<Pair>>> {
        self.reservoir.lock().ok().and_then(|r| r.clone())
    }
}

impl DisplayAs for GoalSelectExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GoalSelectExec: goal={}, seed={}, params={}",
            self.params.goal,
            self.params.seed,
            self.params.explain()
        )
    }
}

impl ExecutionPlan for GoalSelectExec {
    fn name(&self) -> &str {
        "GoalSelectExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut exec = GoalSelectExec::new(children, self.params.clone());
        exec.report = Arc::clone(&self.report);
        exec.reservoir = Arc::clone(&self.reservoir);
        Ok(Arc::new(exec))
    }
    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Recompute),
        )
    }
    /// Row bound: `count`, else `max_count` (unknown for a `ratio` goal).
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let bound =
            if self.params.ratio.is_some() { None } else { Some(self.params.count.unwrap_or(self.params.max_count)) };
        Ok(row_bound_statistics(&self.schema(), bound))
    }
    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GoalSelectExec has one partition, asked for {partition}");
        }
        let inputs = self.inputs.clone();
        let params = self.params.clone();
        let report = Arc::clone(&self.report);
        let reservoir = Arc::clone(&self.reservoir);
        let fut = async move { run(inputs, params, context, report, reservoir).await };
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&OUTPUT_SCHEMA), futures::stream::once(fut))))
    }
}

// ---------------------------------------------------------------------------------
// Stream

/// Read the strata table into a [`Profile`].
pub async fn read_profile(plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>) -> Result<Profile> {
    let mut rows = Vec::new();
    let mut stream = execute_stream(plan, ctx)?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (s, n, f) = (strings(&batch, "stratum")?, i64s(&batch, "pairs")?, i64s(&batch, "first_seen")?);
        for i in 0..batch.num_rows() {
            let (Some(pairs), Some(first)) = (i64_at(&n, i), i64_at(&f, i)) else {
                return exec_err!("{NAME}: strata table has a NULL count or first_seen");
            };
            rows.push((str_at(&s, i).to_string(), pairs.max(0) as u64, first));
        }
    }
    Profile::new(rows)
}

/// Rows skipped while reading scored pairs, by reason.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Skipped {
    pub null_score: u64,
    pub non_finite_score: u64,
}

/// A scored row as `scan_pairs` offers it: borrowed, so rows nobody keeps cost no
/// allocation.
pub struct PairRef<'a> {
    pub pool_index: i64,
    pub qa_uid: &'a str,
    pub video_uid: &'a str,
    pub text_hash: &'a str,
    pub stratum: u32,
    pub score: f64,
    pub base_score: f64,
    pub vds3: f64,
    pub metric_quality: f64,
}

impl PairRef<'_> {
    pub fn to_pair(&self, tie: u64) -> Pair {
        Pair {
            pool_index: self.pool_index,
            qa_uid: self.qa_uid.to_string(),
            video_uid: self.video_uid.to_string(),
            text_hash: self.text_hash.to_string(),
            stratum: self.stratum,
            score: self.score,
            base_score: self.base_score,
            vds3: self.vds3,
            metric_quality: self.metric_quality,
            tie,
        }
    }
}

/// One pass over the scored pairs: hand each to `visit`.
/// Without a profile (`uni_sample`), every pair gets stratum 0.
pub async fn scan_pairs(
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
    prof: Option<&Profile>,
    skipped: &mut Skipped,
    mut visit: impl FnMut(&PairRef<'_>),
) -> Result<u64> {
    let mut stream = execute_stream(plan, ctx)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let pi = i64s(&batch, "pool_index")?;
        let uid = strings(&batch, "qa_uid")?;
        let vid = strings(&batch, "video_uid")?;
        let st = if prof.is_some() { Some(strings(&batch, "stratum")?) } else { None };
        let th = strings(&batch, "text_hash")?;
        let sc = f64s(&batch, "score")?;
        let bs = f64s(&batch, "base_score")?;
        let v3 = f64s(&batch, "vds3")?;
        let mq = f64s(&batch, "metric_quality")?;
        // Consecutive rows often share a stratum; skip the hash lookup then.
        let mut last: Option<(&str, u32)> = None;
        for i in 0..batch.num_rows() {
            rows += 1;
            let Some(score) = f64_at(&sc, i) else {
                skipped.null_score += 1;
                continue;
            };
            if !score.is_finite() {
                skipped.non_finite_score += 1;
                continue;
            }
            let key = st.as_ref().map_or("", |st| str_at(st, i));
            let stratum = match (prof, last) {
                (None, _) => 0,
                (Some(_), Some((k, id))) if k == key => id,
                (Some(prof), _) => {
                    let Some(&id) = prof.index.get(key) else {
                        return exec_err!(
                            "{NAME}: pair {} has stratum {key:?}, which the strata table lacks",
                            str_at(&uid, i)
                        );
                    };
                    last = Some((key, id));
                    id
                }
            };
            visit(&PairRef {
                pool_index: i64_at(&pi, i).unwrap_or(-1),
                qa_uid: str_at(&uid, i),
                video_uid: str_at(&vid, i),
                text_hash: str_at(&th, i),
                stratum,
                score,
                base_score: f64_at(&bs, i).unwrap_or(0.0),
                vds3: f64_at(&v3, i).unwrap_or(0.0),
                metric_quality: f64_at(&mq, i).unwrap_or(0.0),
            });
        }
    }
    Ok(rows)
}

async fn run(
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    p: GoalParams,
    ctx: Arc<TaskContext>,
    report: ReportHandle,
    reservoir_slot: ReservoirHandle,
) -> Result<RecordBatch> {
    let started = Instant::now();
    let prof = read_profile(Arc::clone(&inputs[1]), Arc::clone(&ctx)).await?;
    if prof.total == 0 {
        return exec_err!("{NAME}: the pool is empty; nothing to select");
    }
    // VDS3 over every metric row, for the budget adjustment.
    let mut vds3 = Vds3Counts::default();
    let mut stream = execute_stream(Arc::clone(&inputs[2]), Arc::clone(&ctx))?;
    while let Some(batch) = stream.next().await {
        let v = f64s(&batch?, "vds3")?;
        for i in 0..v.len() {
            if let Some(x) = f64_at(&v, i) {
                vds3.total += 1;
                if x > p.vds3_threshold {
                    vds3.positive += 1;
                }
            }
        }
    }
    let budget = derive_budget(&p, &prof, Some(vds3));
    let n = budget.n;
    let plan = plan_quotas(&p, &prof, n);
    let uni_count = (n as f64 * p.uni_multiplier).ceil() as u64;
    let reservoir_size = uni_count.max((uni_count as f64 * p.reservoir_oversample).ceil() as u64);

    let mut candidates = Candidates::new(&p, &prof, &plan);
    let mut reservoir = Reservoir::new(reservoir_size as usize);
    let mut skipped = Skipped::default();
    let seed = p.seed;
    let rows = scan_pairs(Arc::clone(&inputs[0]), Arc::clone(&ctx), Some(&prof), &mut skipped, |pair| {
        reservoir.offer(seed, pair);
        if candidates.wants(pair.stratum) {
            let tie = pair_random(seed, TIE, pair.qa_uid);
            if candidates.would_take(pair.stratum, pair.score, tie) {
                candidates.offer(pair.to_pair(tie));
            }
        }
    })
    .await?;
    tracing::debug!(goal = %p.goal, rows, secs = started.elapsed().as_secs_f64(), "goal_select: scored pairs scanned");
    let sorted = candidates.into_sorted();
    let kept: usize = sorted.iter().map(Vec::len).sum();
    let reservoir = reservoir.into_pairs();
    let result = fill(&prof, &plan, sorted, &reservoir, p.max_qa_per_video);

    let selected = &result.selected;
    let count = selected.len() as u64;
    let mut constraints = plan.constraints.clone();
    constraints.insert("selected_video_count".into(), json!(result.video));
    constraints.insert("selected_video_ratio".into(), json!(result.video as f64 / count.max(1) as f64));
    constraints.insert("selected_temporal_video_count".into(), json!(result.temporal_video));
    constraints.insert(
        "selected_temporal_in_video_ratio".into(),
        json!(result.temporal_video as f64 / result.video.max(1) as f64),
    );
    let met = json!({
        "video_min": result.video >= plan.min_video,
        "video_max": result.video <= plan.max_video,
        "temporal_min": result.temporal_video >= plan.min_temporal,
        "source_group_floors": result.unmet.iter().all(|(k, _)| !k.starts_with("source_group::")),
        "target_count": count == n,
    });
    let mut bucket_counts = serde_json::Map::new();
    for s in selected {
        let b = prof.strata[s.pair.stratum as usize].bucket().to_string();
        let e = bucket_counts.entry(b).or_insert(json!(0));
        *e = json!(e.as_u64().unwrap_or(0) + 1);
    }
    let full_profile: serde_json::Map<String, serde_json::Value> = super::goal::PROFILE_FIELDS
        .iter()
        .enumerate()
        .map(|(f, name)| {
            let shares: serde_json::Map<String, serde_json::Value> =
                prof.shares(f).into_iter().map(|(v, s)| (v, json!(s))).collect();
            (name.to_string(), serde_json::Value::Object(shares))
        })
        .collect();
    let r = json!({
        "goal": p.goal,
        "params": p,
        "total_pairs": prof.total,
        "rows_scanned": rows,
        "target_count": n,
        "selected_count": count,
        "uni_target_count": uni_count,
        "reservoir_size": reservoir.len(),
        "budget": budget.info,
        "bucket_quotas": plan.bucket_quotas.iter().map(|(b, q)| (b.clone(), json!(q))).collect::<serde_json::Map<_, _>>(),
        "num_strata": prof.strata.len(),
        "strata_with_quota": plan.stratum_quotas.iter().filter(|&&q| q > 0).count(),
        "candidates_kept": kept,
        "constraints": constraints,
        "constraints_met": met,
        "stage_counts": result.stage_counts.iter().map(|(s, c)| (s.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "unmet": result.unmet.iter().map(|(s, c)| (s.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "selected_bucket_counts": bucket_counts,
        "js_divergence": js_to_profile(&prof, selected.iter().map(|s| s.pair.stratum)),
        "full_profile": full_profile,
        "full_bucket_counts": prof.field_counts[0].iter().map(|(b, c)| (b.clone(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "skipped": skipped,
        "seconds": started.elapsed().as_secs_f64(),
    });
    tracing::debug!(goal = %p.goal, secs = started.elapsed().as_secs_f64(), "goal_select: subset filled");
    if let Ok(mut slot) = report.lock() {
        *slot = Some(r);
    }
    if let Ok(mut slot) = reservoir_slot.lock() {
        *slot = Some(Arc::new(reservoir));
    }

    let columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(selected.iter().map(|s| s.pair.pool_index))),
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.pair.qa_uid.as_str()))),
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.stage.as_str()))),
        Arc::new(Int64Array::from_iter_values(0..selected.len() as i64)),
        Arc::new(Float64Array::from_iter_values(selected.iter().map(|s| s.pair.score))),
        Arc::new(Float64Array::from_iter_values(selected.iter().map(|s| s.pair.base_score))),
        Arc::new(Float64Array::from_iter_values(selected.iter().map(|s| s.pair.vds3))),
        Arc::new(Float64Array::from_iter_values(selected.iter().map(|s| s.pair.metric_quality))),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&OUTPUT_SCHEMA), columns)?)
}
