//! `goal_select`: GDO's constrained goal selection (method §5.4-5.7) as a DataFusion
//! operator; its SQL use is documented by [`DOCUMENTATION`].
//!
//! Inputs: the scored pairs (read in one pass), the strata table and the VDS3 of every
//! metric row. Memory is bounded by the candidates and the reservoir, not by the pool.
//!
//! File layout: logical node, planner, `ExecutionPlan`, stream.

use std::any::Any;
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
use datafusion::logical_expr::{Documentation, Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::StatisticsArgs;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, CustomMetricValue, ExecutionPlanMetricsSet, MetricBuilder, MetricValue, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions,
    execute_stream,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;
use serde_json::json;

use super::common::{
    ExtensionTable, Skipped, add_count, count_skipped, f64_at, f64s, read_profile, require_columns,
    row_bound_statistics, scan_pairs, table_arg_plan,
};
use super::goal::{
    Candidates, Pair, Reservoir, TIE, Vds3Counts, derive_budget, fill, js_to_profile, pair_random, plan_quotas,
};
use super::params::GoalParams;
use gdo_udfs::options::gdo_options;

const NAME: &str = "goal_select";

/// The name of [`GoalSelectNode`] in logical plans.
pub const NODE_NAME: &str = "GoalSelect";

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
    .with_argument(
        "scored",
        "Name of the scored-pairs table, usually 'gdo_scored' (a view gdo creates when pool and metrics are \
         registered).",
    )
    .with_argument(
        "strata",
        "Name of the strata table, usually 'gdo_strata': the pairs and first-seen position of each stratum \
         (columns stratum, pairs, first_seen).",
    )
    .with_argument("metric_vds3", "Name of the per-metric-row VDS3 table, usually 'gdo_metric_vds3' (column vds3).")
    .with_argument("params", "named_struct('name', value, ...) of the goal's parameters.")
    .with_sql_example(
        "SELECT p.*, g.stage FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3',\n  \
         named_struct('goal', 'temp_plus', 'min_count', 16000, ...)) g\n\
         JOIN pool p ON p.pool_index = g.pool_index ORDER BY g.selection_order;",
    )
    .with_related_udf("uni_sample")
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
        NODE_NAME
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

/// SQL table function `goal_select`; user documentation: [`DOCUMENTATION`] (`gdo sql --help-functions`).
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
    metrics: ExecutionPlanMetricsSet,
}

/// The name of the [`GoalRun`] metric.
pub const GOAL_RUN_METRIC: &str = "goal_run";

/// A finished goal_select run, recorded as the operator's `goal_run` metric: the report
/// `gdo select` writes as `report.json` (budget, quotas, constraints, stage counts)
/// and the uniform reservoir (method §5.6) the goal's fill drew on, from which `gdo
/// select` draws the goal's Uni-10x baseline without a second pass over the pool. The
/// reservoir is `max(U, ceil(U * reservoir_oversample))` pairs with the smallest
/// `pair_random(seed, RESERVOIR, qa_uid)`, in that order (U: the report's
/// `uni_target_count`); `uni_sample` with the same seed, count and oversample builds
/// the same one. `EXPLAIN ANALYZE` shows it as a one-line summary.
#[derive(Debug, Default)]
pub struct GoalRun {
    run: Mutex<Option<(serde_json::Value, Arc<Vec<Pair>>)>>,
}

impl GoalRun {
    fn set(&self, report: serde_json::Value, reservoir: Vec<Pair>) {
        if let Ok(mut slot) = self.run.lock() {
            *slot = Some((report, Arc::new(reservoir)));
        }
    }

    /// The report and the reservoir, once the run has finished.
    pub fn get(&self) -> Option<(serde_json::Value, Arc<Vec<Pair>>)> {
        self.run.lock().ok().and_then(|r| r.clone())
    }
}

impl fmt::Display for GoalRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some((r, reservoir)) => write!(
                f,
                "goal {} selected {} of {} (reservoir {})",
                r["goal"].as_str().unwrap_or("?"),
                r["selected_count"],
                r["target_count"],
                reservoir.len()
            ),
            None => write!(f, "not run"),
        }
    }
}

impl CustomMetricValue for GoalRun {
    fn new_empty(&self) -> Arc<dyn CustomMetricValue> {
        Arc::new(GoalRun::default())
    }
    /// One run per operator: aggregating keeps the first finished run.
    fn aggregate(&self, other: Arc<dyn CustomMetricValue>) {
        if let (None, Some(o)) = (self.get(), other.as_any().downcast_ref::<GoalRun>())
            && let Some((r, res)) = o.get()
        {
            self.set(r, res.as_ref().clone());
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn is_eq(&self, other: &Arc<dyn CustomMetricValue>) -> bool {
        other.as_any().downcast_ref::<GoalRun>().is_some_and(|o| o.get().map(|r| r.0) == self.get().map(|r| r.0))
    }
}

/// The finished goal_select runs in an executed plan, read from its metrics.
pub fn goal_runs(plan: &Arc<dyn ExecutionPlan>) -> Vec<(serde_json::Value, Arc<Vec<Pair>>)> {
    let mut out = Vec::new();
    for m in plan.metrics().iter().flat_map(|set| set.iter().cloned().collect::<Vec<_>>()) {
        if let MetricValue::Custom { name, value } = m.value()
            && name == GOAL_RUN_METRIC
            && let Some(run) = value.as_any().downcast_ref::<GoalRun>().and_then(GoalRun::get)
        {
            out.push(run);
        }
    }
    for child in plan.children() {
        out.extend(goal_runs(child));
    }
    out
}

impl GoalSelectExec {
    pub fn new(inputs: Vec<Arc<dyn ExecutionPlan>>, params: GoalParams) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&OUTPUT_SCHEMA)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { inputs, params, properties, metrics: ExecutionPlanMetricsSet::new() }
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
        Ok(Arc::new(GoalSelectExec::new(children, self.params.clone())))
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
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    /// All three inputs are read whole by the one task that selects.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition; self.inputs.len()]
    }
    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GoalSelectExec has one partition, asked for {partition}");
        }
        let inputs = self.inputs.clone();
        let params = self.params.clone();
        let metrics = self.metrics.clone();
        let fut = async move { run(inputs, params, context, metrics).await };
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&OUTPUT_SCHEMA), futures::stream::once(fut))))
    }
}

// ---------------------------------------------------------------------------------
// Stream

async fn run(
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    p: GoalParams,
    ctx: Arc<TaskContext>,
    metrics: ExecutionPlanMetricsSet,
) -> Result<RecordBatch> {
    let started = Instant::now();
    let baseline = BaselineMetrics::new(&metrics, 0);
    let _timer = baseline.elapsed_compute().timer();
    let prof = read_profile(NAME, Arc::clone(&inputs[1]), Arc::clone(&ctx)).await?;
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
    let rows = scan_pairs(NAME, Arc::clone(&inputs[0]), Arc::clone(&ctx), Some(&prof), &mut skipped, |pair| {
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
    add_count(&metrics, "pairs_in", rows);
    count_skipped(&metrics, &skipped);
    add_count(&metrics, "vds3_rows", vds3.total);
    add_count(&metrics, "vds3_positive", vds3.positive);
    add_count(&metrics, "strata", prof.strata.len() as u64);
    add_count(&metrics, "candidates_kept", kept as u64);
    add_count(&metrics, "target_count", n);
    add_count(&metrics, "selected", selected.len() as u64);
    add_count(&metrics, "uni_target_count", uni_count);
    add_count(&metrics, "reservoir_size", reservoir.len() as u64);
    for (stage, c) in &result.stage_counts {
        add_count(&metrics, format!("stage_{stage}"), *c);
    }
    for (floor, short) in &result.unmet {
        add_count(&metrics, format!("unmet_{floor}"), *short);
    }
    baseline.record_output(selected.len());
    let run = Arc::new(GoalRun::default());
    run.set(r, reservoir);
    MetricBuilder::new(&metrics).build(MetricValue::Custom { name: GOAL_RUN_METRIC.into(), value: run });

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
