//! Plumbing the selection operators share: resolving table arguments into plans,
//! reading typed columns, and the report handle.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Result, ScalarValue, Statistics, TableReference, exec_err, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use futures::FutureExt;

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

/// Where an operator leaves its run report (budget, constraints, stage counts) for
/// the caller that planned it; EXPLAIN ANALYZE users see the counts as metrics.
pub type ReportHandle = Arc<Mutex<Option<serde_json::Value>>>;

/// The struct literal (`named_struct(...)` after constant folding) as name/value pairs.
pub fn struct_literal_args(expr: &Expr) -> Option<Vec<(String, Expr)>> {
    let Expr::Literal(ScalarValue::Struct(s), _) = expr else {
        return None;
    };
    let mut out = Vec::new();
    for (field, col) in s.fields().iter().zip(s.columns()) {
        let value = ScalarValue::try_from_array(col.as_ref(), 0).ok()?;
        out.push((field.name().clone(), Expr::Literal(value, None)));
    }
    Some(out)
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
