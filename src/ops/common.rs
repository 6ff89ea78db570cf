//! Plumbing the selection operators share: resolving table arguments into plans,
//! reading typed columns, and the report handle.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Result, Statistics, TableReference, exec_err, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::logical_expr::{Extension, TableType, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::{FutureExt, StreamExt};

use super::goal::{PairRef, Profile};

/// The logical plan of the table or view named by a string-literal argument.
pub fn table_arg_plan(session: &dyn Session, func: &str, arg: &Expr) -> Result<LogicalPlan> {
    let name = match arg {
        Expr::Literal(v, _) => match v.try_as_str() {
            Some(Some(s)) => s.to_string(),
            _ => return plan_err!("{func}: expected a table name as a string literal, got {arg}"),
        },
        _ => return plan_err!("{func}: expected a table name as a string literal, got {arg}"),
    };
    let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
        return plan_err!("{func}: needs a DataFusion SessionState");
    };
    let reference = TableReference::from(name.as_str());
    let schema = state.schema_for_ref(reference.clone())?;
    // Catalog lookups are async in general; gdo's tables and views live in memory
    // schemas whose lookup is immediate.
    let provider: Option<Arc<dyn TableProvider>> = match schema.table(reference.table()).now_or_never() {
        Some(r) => r?,
        None => {
            return plan_err!("{func}: table {name:?} lives in a catalog that cannot be read while planning");
        }
    };
    let Some(provider) = provider else {
        return plan_err!("{func}: no table or view named {name:?}");
    };
    if let Some(plan) = provider.get_logical_plan() {
        return Ok(plan.into_owned());
    }
    LogicalPlanBuilder::scan(reference, provider_as_source(provider), None)?.build()
}

/// Check that a plan has the columns an operator reads.
pub fn require_columns(func: &str, what: &str, schema: &DFSchema, columns: &[&str]) -> Result<()> {
    let missing: Vec<&str> =
        columns.iter().copied().filter(|c| schema.fields().iter().all(|f| f.name() != c)).collect();
    if !missing.is_empty() {
        return plan_err!("{func}: {what} lacks the column(s) {}", missing.join(", "));
    }
    Ok(())
}

/// Read one column of a batch as the wanted type (strings may arrive as Utf8View).
pub fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let Some(c) = batch.column_by_name(name) else {
        return exec_err!("input batch lacks column {name}");
    };
    if c.data_type() == to { Ok(Arc::clone(c)) } else { Ok(cast(c, to)?) }
}

pub fn strings(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    column(batch, name, &DataType::Utf8)
}

pub fn f64s(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    column(batch, name, &DataType::Float64)
}

pub fn i64s(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    column(batch, name, &DataType::Int64)
}

pub fn str_at(a: &ArrayRef, i: usize) -> &str {
    let a = a.as_string::<i32>();
    if a.is_null(i) { "" } else { a.value(i) }
}

pub fn f64_at(a: &ArrayRef, i: usize) -> Option<f64> {
    let a = a.as_primitive::<Float64Type>();
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

pub fn i64_at(a: &ArrayRef, i: usize) -> Option<i64> {
    let a = a.as_primitive::<Int64Type>();
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

/// Add `value` to the operator's counter `name` (shown by `EXPLAIN ANALYZE`).
pub fn add_count(metrics: &ExecutionPlanMetricsSet, name: impl Into<std::borrow::Cow<'static, str>>, value: u64) {
    MetricBuilder::new(metrics).global_counter(name).add(value as usize);
}

/// Counters of the rows a scan of scored pairs skipped (`skipped_null_score`,
/// `skipped_non_finite_score`).
pub fn count_skipped(metrics: &ExecutionPlanMetricsSet, skipped: &Skipped) {
    add_count(metrics, "skipped_null_score", skipped.null_score);
    add_count(metrics, "skipped_non_finite_score", skipped.non_finite_score);
}

/// Statistics of a selection operator's output: nothing but an inexact upper bound on
/// its rows, known from its parameters when planning. With it DataFusion builds the
/// join that brings back each pair's full row on the (small) subset, so the pool
/// streams through instead of being hash-repartitioned.
pub fn row_bound_statistics(schema: &SchemaRef, bound: Option<u64>) -> Arc<Statistics> {
    let mut stats = Statistics::new_unknown(schema);
    if let Some(n) = bound {
        stats.num_rows = Precision::Inexact(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Arc::new(stats)
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

/// Read the strata table (`stratum`, `pairs`, `first_seen`) into a [`Profile`]: the
/// one reader of it, for the operators and for `gdo select`. A NULL count or
/// `first_seen` is an error (`func` names the reader in it).
pub async fn read_profile(func: &str, plan: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>) -> Result<Profile> {
    let mut batches = Vec::new();
    let mut stream = execute_stream(plan, ctx)?;
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    profile_of(func, &batches)
}

/// [`read_profile`] over batches already collected.
pub fn profile_of(func: &str, batches: &[RecordBatch]) -> Result<Profile> {
    let mut rows = Vec::new();
    for batch in batches {
        let (s, n, f) = (strings(batch, "stratum")?, i64s(batch, "pairs")?, i64s(batch, "first_seen")?);
        for i in 0..batch.num_rows() {
            let (Some(pairs), Some(first)) = (i64_at(&n, i), i64_at(&f, i)) else {
                return exec_err!("{func}: strata table has a NULL count or first_seen");
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

/// One pass over the scored pairs: hand each to `visit`.
/// Without a profile (`uni_sample`), every pair gets stratum 0.
pub async fn scan_pairs(
    func: &str,
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
                            "{func}: pair {} has stratum {key:?}, which the strata table lacks",
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
