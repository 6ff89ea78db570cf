//! The shipped goal query, recognised in the logical plan: `ShippedGoalRule` (a logical
//! optimizer rule, first in every gdo session) finds
//!
//! ```sql
//! SELECT p.*, g.score, g.base_score, g.vds3, g.metric_quality, g.stage, g.selection_order
//! FROM goal_select(...) g JOIN pool p ON p.pool_index = g.pool_index
//! ORDER BY g.selection_order
//! ```
//!
//! (any aliases, either side of the `=`, whatever the `goal_select` arguments) and marks
//! it with a [`ShippedGoalNode`]: the query's rows are then the pool rows of
//! goal_select's pairs, in selection order, with the operator's columns after them.
//! The node changes nothing in how the query runs (it plans as the query itself); it
//! tells `gdo select` that it may run the selection alone and fetch the full rows in
//! the same pool scan as the Uni-10x rows. Any other query runs as written.
//!
//! File layout: logical node, rule, planner.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchemaRef, Result, internal_err};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, JoinType, LogicalPlan, Operator, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

/// The name of [`ShippedGoalNode`] in plans.
pub const NODE_NAME: &str = "ShippedGoalQuery";

/// The operator columns the shipped goal query appends to the pool's, in order.
const GOAL_COLUMNS: [&str; 6] = ["score", "base_score", "vds3", "metric_quality", "stage", "selection_order"];

// ---------------------------------------------------------------------------------
// Logical node

/// A shipped goal query (`query`, planned and run as it is) and the `goal_select`
/// call inside it (`selection`): inputs 0 and 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct ShippedGoalNode {
    query: LogicalPlan,
    selection: LogicalPlan,
}

impl ShippedGoalNode {
    /// The node marking `query`, whose `goal_select` call is `selection` (a codec
    /// rebuilding the node from its inputs uses this).
    pub fn new(query: LogicalPlan, selection: LogicalPlan) -> Self {
        Self { query, selection }
    }
}

impl UserDefinedLogicalNodeCore for ShippedGoalNode {
    fn name(&self) -> &str {
        NODE_NAME
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.query, &self.selection]
    }
    fn schema(&self) -> &DFSchemaRef {
        self.query.schema()
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{NODE_NAME}: pool rows of the goal_select pairs in selection order")
    }
    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        if inputs.len() != 2 {
            return internal_err!("{NODE_NAME} takes 2 inputs, got {}", inputs.len());
        }
        let selection = inputs.pop().expect("two inputs");
        Ok(Self { query: inputs.pop().expect("two inputs"), selection })
    }
}

/// The `goal_select` call of a plan marked by [`ShippedGoalRule`]: run it alone and the
/// rows are goal_select's own, from which the marked query's rows follow.
pub fn shipped_goal_selection(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        LogicalPlan::Extension(e) if e.node.name() == NODE_NAME => e.node.inputs().get(1).copied(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// Rule

/// Marks the shipped goal query (see the module docs). Handles the plan's root only.
#[derive(Debug, Default)]
pub struct ShippedGoalRule;

impl OptimizerRule for ShippedGoalRule {
    fn name(&self) -> &str {
        "gdo_shipped_goal_query"
    }
    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match goal_call(&plan) {
            Some(selection) => {
                let node = ShippedGoalNode { selection: selection.clone(), query: plan };
                Ok(Transformed::yes(LogicalPlan::Extension(Extension { node: Arc::new(node) })))
            }
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// Below any subquery aliases.
fn unaliased(plan: &LogicalPlan) -> (&LogicalPlan, Option<String>) {
    let mut alias = None;
    let mut p = plan;
    while let LogicalPlan::SubqueryAlias(a) = p {
        alias.get_or_insert_with(|| a.alias.to_string());
        p = a.input.as_ref();
    }
    (p, alias)
}

fn is_column(e: &Expr, relation: &str, name: &str) -> bool {
    matches!(e, Expr::Column(Column { relation: Some(r), name: n, .. }) if r.to_string() == relation && n == name)
}

/// The `goal_select` extension plan of the shipped goal query `plan`, if it is one.
fn goal_call(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    let LogicalPlan::Sort(sort) = plan else { return None };
    let [key] = sort.expr.as_slice() else { return None };
    let LogicalPlan::Projection(projection) = sort.input.as_ref() else { return None };
    let LogicalPlan::Join(join) = projection.input.as_ref() else { return None };
    if sort.fetch.is_some() || !key.asc || join.join_type != JoinType::Inner {
        return None;
    }
    let (goal, g) = unaliased(&join.left);
    let (pool, p) = unaliased(&join.right);
    let (g, p) = (g?, p?);
    let LogicalPlan::Extension(e) = goal else { return None };
    let LogicalPlan::TableScan(scan) = pool else { return None };
    if e.node.name() != super::goal_select::NODE_NAME || scan.table_name.table() != "pool" || !scan.filters.is_empty() {
        return None;
    }
    // ON p.pool_index = g.pool_index, as the SQL planner leaves it (a filter) or as an
    // equi-join key, either way round.
    let keys_match = |a: &Expr, b: &Expr| {
        (is_column(a, &p, "pool_index") && is_column(b, &g, "pool_index"))
            || (is_column(a, &g, "pool_index") && is_column(b, &p, "pool_index"))
    };
    let on_ok = match (&join.on[..], &join.filter) {
        ([], Some(Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }))) => keys_match(left, right),
        ([(l, r)], None) => keys_match(l, r),
        _ => false,
    };
    // p.* then the operator's columns, and ORDER BY g.selection_order.
    let pool_fields = scan.projected_schema.fields();
    let wanted = pool_fields.len() + GOAL_COLUMNS.len();
    let columns_ok = projection.expr.len() == wanted
        && pool_fields.iter().zip(&projection.expr).all(|(f, e)| is_column(e, &p, f.name()))
        && GOAL_COLUMNS.iter().zip(&projection.expr[pool_fields.len()..]).all(|(c, e)| is_column(e, &g, c));
    (on_ok && columns_ok && is_column(&key.expr, &g, "selection_order")).then_some(goal)
}

// ---------------------------------------------------------------------------------
// Planner

/// Plans a [`ShippedGoalNode`] as its query.
#[derive(Debug, Default)]
pub struct ShippedGoalPlanner;

#[async_trait]
impl ExtensionPlanner for ShippedGoalPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session_state: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if node.name() != NODE_NAME {
            return Ok(None);
        }
        Ok(physical_inputs.first().cloned())
    }
}
