//! gdo's SQL functions: GDO's per-pair descriptors and stratification rules as
//! DataFusion UDFs, one file per function.
//!
//! [`register_all`] is the one place every function is registered; the CLI, the tests
//! and the benchmarks all call it, and so can a Ballista executor (no function holds
//! process-global state).

pub mod common;
pub mod device;
pub mod media;
pub mod media_descriptors;
pub mod method;
pub mod motion;
pub mod options;

mod amm;
mod frame_diversity;
mod text_feat;
mod vis_feat;

mod distinct_token_count;
mod gdo_flag;
mod gdo_fold;
mod gdo_norm;
mod source_group;
mod tnc_regex;
mod token_count;

use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use distinct_token_count::DistinctTokenCount;
pub use gdo_flag::GdoFlag;
pub use gdo_fold::{GdoFold, fold_of};
pub use gdo_norm::GdoNorm;
pub use media_descriptors::{MediaDescriptors, MediaField};
pub use options::GdoOptions;
pub use source_group::SourceGroup;
pub use text_feat::TextFeat;
pub use tnc_regex::TncRegex;
pub use token_count::TokenCount;

/// Every scalar function of this crate.
pub fn all_scalar_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(DistinctTokenCount::default())),
        Arc::new(ScalarUDF::from(GdoFlag::default())),
        Arc::new(ScalarUDF::from(GdoFold::default())),
        Arc::new(ScalarUDF::from(GdoNorm::default())),
        Arc::new(ScalarUDF::from(SourceGroup::default())),
        Arc::new(ScalarUDF::from(TextFeat::default())),
        Arc::new(ScalarUDF::from(TncRegex::default())),
        Arc::new(ScalarUDF::from(TokenCount::default())),
    ]
}

/// Register every gdo function, and gdo's `SET gdo.*` settings, with a session.
pub fn register_all(ctx: &SessionContext) {
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        if options.extensions.get::<GdoOptions>().is_none() {
            options.extensions.insert(GdoOptions::default());
        }
    }
    for udf in all_scalar_udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
    // The frame functions fetch through this session's object stores; the projections
    // hold the very `media_descriptors` instance they rewrite to (so its decode count
    // covers them).
    let fetcher = media::FrameFetcher::new(Arc::clone(&ctx.runtime_env().object_store_registry));
    let media = Arc::new(ScalarUDF::from(MediaDescriptors::new(fetcher)));
    ctx.register_udf(media.as_ref().clone());
    ctx.register_udf(ScalarUDF::from(amm::amm_udf(Arc::clone(&media))));
    ctx.register_udf(ScalarUDF::from(frame_diversity::frame_diversity_udf(Arc::clone(&media))));
    ctx.register_udf(ScalarUDF::from(vis_feat::vis_feat_udf(Arc::clone(&media))));
}

/// Frames decoded so far by the session's `media_descriptors` (None if not gdo's).
pub fn media_decode_count(ctx: &SessionContext) -> Option<u64> {
    let udf = ctx.udf("media_descriptors").ok()?;
    (udf.inner().as_ref() as &dyn std::any::Any).downcast_ref::<MediaDescriptors>().map(MediaDescriptors::decode_count)
}
