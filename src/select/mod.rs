//! Goal selection (method spec section 4): the scoring SQL, the `goal_select` and
//! `uni_sample` operators, metrics loading and the `gdo select` job.

pub mod common;
pub mod exclude;
pub mod goal;
pub mod goal_select;
pub mod metrics;
pub mod params;
pub mod run;
pub mod sft_jsonl;
pub mod uni_sample;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;

/// The scoring views (spec 4.1, 4.2, 4.5), run in sessions that have `pool` and `metrics`.
pub const SCORE_SQL: &str = include_str!("../../queries/select/score.sql");

/// The query planner of gdo sessions: DataFusion's, plus gdo's operators.
#[derive(Debug, Default)]
pub struct GdoQueryPlanner;

/// Every extension planner gdo has (one place, so a Ballista scheduler can reuse it).
pub fn extension_planners() -> Vec<Arc<dyn ExtensionPlanner + Send + Sync>> {
    vec![Arc::new(goal_select::GoalSelectPlanner), Arc::new(uni_sample::UniSamplePlanner)]
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

/// Register the selection table functions with a session.
pub fn register_table_functions(ctx: &SessionContext) {
    ctx.register_udtf("goal_select", Arc::new(goal_select::GoalSelectFunction));
    ctx.register_udtf("uni_sample", Arc::new(uni_sample::UniSampleFunction));
}
