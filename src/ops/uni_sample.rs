//! `uni_sample`: the seeded uniform baseline (method §5.6 reservoir + 5.8 draw) as a
//! DataFusion operator; its SQL use is documented by [`DOCUMENTATION`].
//!
//! File layout: logical node, planner, `ExecutionPlan`, stream.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, Result, Statistics, internal_err, plan_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Documentation, Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::StatisticsArgs;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use serde::{Deserialize, Serialize};

use super::common::{ExtensionTable, Skipped, add_count, count_skipped, scan_pairs};
use super::common::{require_columns, row_bound_statistics, table_arg_plan};
use super::goal::{Pair, Reservoir, uni_draw};
use super::params::{closest, named_struct_args};
use gdo_udfs::options::gdo_options;

const NAME: &str = "uni_sample";

/// Parameters of the uniform baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniParams {
    pub count: u64,
    pub seed: u64,
    pub max_qa_per_video: u64,
    pub oversample: f64,
}

impl UniParams {
    fn explain(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }
}

pub static OUTPUT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pool_index", DataType::Int64, false),
        Field::new("qa_uid", DataType::Utf8, false),
        Field::new("sample_order", DataType::Int64, false),
        Field::new("pass", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("base_score", DataType::Float64, false),
        Field::new("vds3", DataType::Float64, false),
        Field::new("metric_quality", DataType::Float64, false),
    ]))
});

const INPUT_COLUMNS: &[&str] =
    &["pool_index", "qa_uid", "video_uid", "text_hash", "score", "base_score", "vds3", "metric_quality"];

// ---------------------------------------------------------------------------------
// Logical node

#[derive(Debug, Clone)]
pub struct UniSampleNode {
    pub input: LogicalPlan,
    pub params: UniParams,
    schema: DFSchemaRef,
}

impl UniSampleNode {
    pub fn try_new(input: LogicalPlan, params: UniParams) -> Result<Self> {
        require_columns(NAME, "the scored table", input.schema(), INPUT_COLUMNS)?;
        let schema = Arc::new(DFSchema::try_from(OUTPUT_SCHEMA.as_ref().clone())?);
        Ok(Self { input, params, schema })
    }
}

impl PartialEq for UniSampleNode {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input && self.params == other.params
    }
}
impl Eq for UniSampleNode {}
impl Hash for UniSampleNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.params.explain().hash(state);
    }
}
impl PartialOrd for UniSampleNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self == other).then_some(std::cmp::Ordering::Equal)
    }
}

impl UserDefinedLogicalNodeCore for UniSampleNode {
    fn name(&self) -> &str {
        "UniSample"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "UniSample: count={}, seed={}, params={}", self.params.count, self.params.seed, self.params.explain())
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        if inputs.len() != 1 {
            return internal_err!("UniSample takes 1 input, got {}", inputs.len());
        }
        Ok(Self { input: inputs.remove(0), params: self.params.clone(), schema: Arc::clone(&self.schema) })
    }
}

/// The SQL reference of `uni_sample` (`gdo sql --help-functions`, docs/sql-functions.md).
pub static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::DOC_SECTION_OPERATORS,
        "The seeded uniform baseline (Uni-10x): the pairs with the smallest seeded hash of their qa_uid, \
         taken in that random order under the goal subsets' dedup rules (per-video cap, then text dedup). \
         Returns pool_index, qa_uid, sample_order, pass, score, base_score, vds3, metric_quality; pass is \
         unique (taken under both rules), text_dup (if short, a second pass ignoring text hashes) or any \
         (if still short, any pair not yet taken). \
         Parameters: count (default: the setting gdo.uni_count; one of the two is required), seed \
         (gdo.seed, else 42), max_qa_per_video (gdo.max_qa_per_video, else 8), oversample (1.35, sizes \
         the reservoir). The sample does not depend on how the input is partitioned.",
        "uni_sample(scored [, params])",
    )
    .with_argument("scored", "Name of the scored-pairs table, usually 'gdo_scored'.")
    .with_argument("params", "Optional named_struct('count', N, 'seed', S, ...) of non-negative literals.")
    .with_sql_example("SELECT * FROM uni_sample('gdo_scored', named_struct('count', 3300, 'seed', 42));")
    .with_related_udf("goal_select")
    .build()
});

/// SQL table function `uni_sample`; user documentation: [`DOCUMENTATION`] (`gdo sql --help-functions`).
#[derive(Debug, Default)]
pub struct UniSampleFunction;

impl TableFunctionImpl for UniSampleFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return plan_err!("{NAME}(scored [, named_struct(...)]) takes 1 or 2 arguments, got {}", exprs.len());
        }
        let session = args.session();
        let input = table_arg_plan(session, NAME, &exprs[0])?;
        let o = gdo_options(session.config_options());
        let mut count = o.uni_count;
        let mut seed = o.seed.unwrap_or(42);
        let mut max_qa_per_video = o.max_qa_per_video.unwrap_or(8);
        let mut oversample = 1.35;
        if let Some(arg) = exprs.get(1) {
            for (key, value) in named_struct_args(arg, NAME)? {
                let Expr::Literal(v, _) = &value else {
                    return plan_err!("{NAME}: parameter {key} must be a literal");
                };
                let num = match v.cast_to(&DataType::Float64)? {
                    datafusion::common::ScalarValue::Float64(Some(x)) if x.is_finite() && x >= 0.0 => x,
                    _ => {
                        return plan_err!("{NAME}: parameter {key} must be a non-negative number, got {v}");
                    }
                };
                match key.as_str() {
                    "count" => count = Some(num as u64),
                    "seed" => seed = num as u64,
                    "max_qa_per_video" => max_qa_per_video = num as u64,
                    "oversample" => oversample = num,
                    other => {
                        let hint = closest(other, ["count", "seed", "max_qa_per_video", "oversample"])
                            .map(|k| format!(" (did you mean {k}?)"))
                            .unwrap_or_default();
                        return plan_err!("{NAME}: unknown parameter {other:?}{hint}");
                    }
                }
            }
        }
        let Some(count) = count else {
            return plan_err!("{NAME}: no count given (pass named_struct('count', N) or SET gdo.uni_count = N)");
        };
        let node = UniSampleNode::try_new(input, UniParams { count, seed, max_qa_per_video, oversample })?;
        Ok(Arc::new(ExtensionTable::new(node)))
    }
}

// ---------------------------------------------------------------------------------
// Planner

#[derive(Debug, Default)]
pub struct UniSamplePlanner;

#[async_trait]
impl ExtensionPlanner for UniSamplePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session_state: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<UniSampleNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("UniSample planned with {} inputs", physical_inputs.len());
        };
        Ok(Some(Arc::new(UniSampleExec::new(Arc::clone(input), node.params.clone()))))
    }
}

// ---------------------------------------------------------------------------------
// ExecutionPlan

#[derive(Debug)]
pub struct UniSampleExec {
    input: Arc<dyn ExecutionPlan>,
    pub params: UniParams,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl UniSampleExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, params: UniParams) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&OUTPUT_SCHEMA)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { input, params, properties, metrics: ExecutionPlanMetricsSet::new() }
    }
}

impl DisplayAs for UniSampleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "UniSampleExec: count={}, seed={}, params={}",
            self.params.count,
            self.params.seed,
            self.params.explain()
        )
    }
}

impl ExecutionPlan for UniSampleExec {
    fn name(&self) -> &str {
        "UniSampleExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("UniSampleExec takes one child");
        }
        Ok(Arc::new(UniSampleExec::new(children.remove(0), self.params.clone())))
    }
    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(datafusion::physical_plan::ChildrenPropertiesMode::Recompute),
        )
    }
    /// Row bound: `count`.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(row_bound_statistics(&self.schema(), Some(self.params.count)))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    /// The reservoir sees every pair: one task reads the input whole.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }
    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("UniSampleExec has one partition, asked for {partition}");
        }
        let fut = run(Arc::clone(&self.input), self.params.clone(), context, self.metrics.clone());
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&OUTPUT_SCHEMA), futures::stream::once(fut))))
    }
}

// ---------------------------------------------------------------------------------
// Stream

async fn run(
    input: Arc<dyn ExecutionPlan>,
    p: UniParams,
    ctx: Arc<TaskContext>,
    metrics: ExecutionPlanMetricsSet,
) -> Result<RecordBatch> {
    let baseline = BaselineMetrics::new(&metrics, 0);
    let _timer = baseline.elapsed_compute().timer();
    let size = p.count.max((p.count as f64 * p.oversample).ceil() as u64) as usize;
    let mut reservoir = Reservoir::new(size);
    // Rows without a finite score are skipped here exactly as goal_select skips them.
    let mut skipped = Skipped::default();
    let rows = scan_pairs(NAME, input, ctx, None, &mut skipped, |pair| reservoir.offer(p.seed, pair)).await?;
    let sample = reservoir.into_pairs();
    let drawn = uni_draw(&sample, p.count, p.max_qa_per_video);
    add_count(&metrics, "pairs_in", rows);
    count_skipped(&metrics, &skipped);
    add_count(&metrics, "reservoir_size", sample.len() as u64);
    add_count(&metrics, "drawn", drawn.len() as u64);
    let mut passes = std::collections::BTreeMap::<&str, u64>::new();
    for (_, pass) in &drawn {
        *passes.entry(pass).or_default() += 1;
    }
    for (pass, n) in passes {
        add_count(&metrics, format!("pass_{pass}"), n);
    }
    baseline.record_output(drawn.len());
    draw_batch(&drawn)
}

/// The drawn pairs as the operator's output rows (`OUTPUT_SCHEMA`), in draw order.
pub fn draw_batch(drawn: &[(&Pair, &'static str)]) -> Result<RecordBatch> {
    let columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(drawn.iter().map(|(s, _)| s.pool_index))),
        Arc::new(StringArray::from_iter_values(drawn.iter().map(|(s, _)| s.qa_uid.as_str()))),
        Arc::new(Int64Array::from_iter_values(0..drawn.len() as i64)),
        Arc::new(StringArray::from_iter_values(drawn.iter().map(|(_, pass)| *pass))),
        Arc::new(Float64Array::from_iter_values(drawn.iter().map(|(s, _)| s.score))),
        Arc::new(Float64Array::from_iter_values(drawn.iter().map(|(s, _)| s.base_score))),
        Arc::new(Float64Array::from_iter_values(drawn.iter().map(|(s, _)| s.vds3))),
        Arc::new(Float64Array::from_iter_values(drawn.iter().map(|(s, _)| s.metric_quality))),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&OUTPUT_SCHEMA), columns)?)
}
