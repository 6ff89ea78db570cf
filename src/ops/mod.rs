//! gdo's custom DataFusion operators and what plans them: the `goal_select` and
//! `uni_sample` table functions (logical node, planner, exec, stream: one file each),
//! the method's selection logic they run ([`goal`], free of DataFusion), their
//! parameters ([`params`]) and shared plumbing ([`common`]). `session.rs` registers
//! them; `select` runs them.

pub mod common;
pub mod goal;
pub mod goal_select;
pub mod params;
pub mod shipped_goal;
pub mod uni_sample;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{DocSection, Documentation, LogicalPlan};
use datafusion::optimizer::{Optimizer, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;

/// The query planner of gdo sessions: DataFusion's, plus gdo's operators.
#[derive(Debug, Default)]
pub struct GdoQueryPlanner;

/// Every extension planner gdo has (one place, so a Ballista scheduler can reuse it).
pub fn extension_planners() -> Vec<Arc<dyn ExtensionPlanner + Send + Sync>> {
    vec![
        Arc::new(goal_select::GoalSelectPlanner),
        Arc::new(uni_sample::UniSamplePlanner),
        Arc::new(shipped_goal::ShippedGoalPlanner),
    ]
}

#[async_trait]
impl QueryPlanner for GdoQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(extension_planners())
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

/// DataFusion's logical optimizer rules with gdo's first: [`shipped_goal::ShippedGoalRule`]
/// must see the goal query as the SQL planner built it.
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn OptimizerRule + Send + Sync>> = vec![Arc::new(shipped_goal::ShippedGoalRule)];
    rules.extend(Optimizer::new().rules);
    rules
}

/// The doc section of the selection operators (`gdo sql --help-functions`).
pub const DOC_SECTION_OPERATORS: DocSection = DocSection {
    include: true,
    label: "GDO operators",
    description: Some("Table functions that plan gdo's custom operators: goal selection and the uniform baseline"),
};

/// The documentation of every table function [`register_table_functions`] registers,
/// by name.
pub fn table_function_docs() -> Vec<(&'static str, &'static Documentation)> {
    vec![("goal_select", &goal_select::DOCUMENTATION), ("uni_sample", &uni_sample::DOCUMENTATION)]
}

/// Register the selection table functions with a session.
pub fn register_table_functions(ctx: &SessionContext) {
    ctx.register_udtf("goal_select", Arc::new(goal_select::GoalSelectFunction));
    ctx.register_udtf("uni_sample", Arc::new(uni_sample::UniSampleFunction));
}
