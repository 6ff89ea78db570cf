//! gdo's SQL functions: GDO's per-pair descriptors and stratification rules as
//! DataFusion UDFs, one file per function.
//!
//! [`register_all`] is the one place every function is registered; the CLI, the tests
//! and the benchmarks all call it, and so can a Ballista executor (no function holds
//! process-global state).

pub mod common;
pub mod method;
pub mod motion;

mod gdo_norm;
mod source_group;
mod tnc_regex;
mod token_count;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use gdo_norm::GdoNorm;
pub use source_group::SourceGroup;
pub use tnc_regex::TncRegex;
pub use token_count::TokenCount;

/// Every scalar function of this crate.
pub fn all_scalar_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(GdoNorm::default())),
        Arc::new(ScalarUDF::from(SourceGroup::default())),
        Arc::new(ScalarUDF::from(TncRegex::default())),
        Arc::new(ScalarUDF::from(TokenCount::default())),
    ]
}

/// Register every gdo function with a session.
pub fn register_all(ctx: &SessionContext) {
    for udf in all_scalar_udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
}
