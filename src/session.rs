//! The DataFusion session every gdo command and test uses: gdo's functions registered,
//! object stores registered for the locations of the tables, tables named.

use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{GdoError, Result};
use crate::store::{Location, store_key};
use crate::table::{TableFolder, inspect_folder};

/// A fresh session: information schema on, every gdo function, table function and
/// operator registered (the one place; the CLI, tests and benchmarks all use it).
pub fn new_context() -> SessionContext {
    let mut config = SessionConfig::new().with_information_schema(true);
    // Plain Utf8 strings from Parquet: with view strings, a hash join over millions of
    // pairs (scoring joins pool to metrics) spent its time re-measuring shared buffers.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_query_planner(Arc::new(crate::select::GdoQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    gdo_udfs::register_all(&ctx);
    crate::select::register_table_functions(&ctx);
    ctx
}

/// Create gdo's scoring views (`gdo_scored`, `gdo_strata`, `gdo_metric_vds3`, ...) when
/// the session has both `pool` and `metrics`. Returns whether it did.
pub async fn create_score_views(ctx: &SessionContext) -> Result<bool> {
    if !ctx.table_exist("pool")? || !ctx.table_exist("metrics")? {
        return Ok(false);
    }
    crate::sql::run_statements(ctx, crate::select::SCORE_SQL).await?;
    Ok(true)
}

/// Make the store of `loc` known to the session (idempotent).
pub fn register_store(ctx: &SessionContext, loc: &Location) {
    ctx.register_object_store(&store_key(&loc.url), Arc::clone(&loc.store));
}

/// What [`register_table`] registered.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Table names, the main one first (side tables: `<name>_rejects`, ...).
    pub names: Vec<String>,
    /// Rows per the manifest (None for plain Parquet).
    pub rows: Option<u64>,
}

async fn listing_table(ctx: &SessionContext, urls: Vec<ListingTableUrl>) -> Result<Arc<ListingTable>> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}

fn file_urls(root: &Location, files: &[crate::table::FileEntry]) -> Result<Vec<ListingTableUrl>> {
    files
        .iter()
        .map(|f| Ok(ListingTableUrl::parse(root.child(&f.path).url.as_str())?))
        .collect()
}

/// Register the table at `path` (a gdo table folder, a folder of Parquet files, or one
/// Parquet file; local or object store) as `name`. A gdo table's side tables are
/// registered as `<name><side>` (e.g. `pool_rejects`).
pub async fn register_table(ctx: &SessionContext, name: &str, path: &str) -> Result<Registered> {
    let loc = Location::parse(path)?;
    register_store(ctx, &loc);
    if path.ends_with(".parquet") && loc.exists().await? {
        let table = listing_table(ctx, vec![ListingTableUrl::parse(loc.url.as_str())?]).await?;
        ctx.register_table(name, table)?;
        return Ok(Registered { names: vec![name.to_owned()], rows: None });
    }
    match inspect_folder(&loc).await? {
        TableFolder::Gdo(manifest) => {
            if manifest.main.files.is_empty() {
                return Err(GdoError::Table(format!("{loc}: the manifest lists no files")));
            }
            let table = listing_table(ctx, file_urls(&loc, &manifest.main.files)?).await?;
            ctx.register_table(name, table)?;
            let mut names = vec![name.to_owned()];
            for (side, set) in &manifest.side_tables {
                if set.files.is_empty() {
                    continue;
                }
                let side_name = format!("{name}{side}");
                let table = listing_table(ctx, file_urls(&loc, &set.files)?).await?;
                ctx.register_table(side_name.as_str(), table)?;
                names.push(side_name);
            }
            Ok(Registered { names, rows: Some(manifest.main.rows) })
        }
        TableFolder::Plain => {
            let table = listing_table(ctx, vec![ListingTableUrl::parse(loc.dir_url().as_str())?]).await?;
            ctx.register_table(name, table)?;
            Ok(Registered { names: vec![name.to_owned()], rows: None })
        }
    }
}
