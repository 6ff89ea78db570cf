//! The DataFusion session every gdo command and test uses: gdo's functions registered,
//! object stores registered for the locations of the tables, tables named.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use object_store::ObjectStore;
use url::Url;

use crate::error::{GdoError, Result};
use crate::store::{Location, expand_input, is_pattern, store_for, store_key};
use crate::table::{AsOf, Snapshot};

/// A fresh session: information schema on, every gdo function, table function and
/// operator registered (the one place; the CLI, tests and benchmarks all use it).
pub fn new_context() -> SessionContext {
    build_context(None)
}

/// A memory bound for a session's queries, parsed from `8GiB`, `512MiB`, `2G`, `1000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub usize);

impl std::str::FromStr for MemoryLimit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("'{s}': expected a size such as 8GiB, 512MiB or 2G"))?;
        let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" | "kib" => 1024.0,
            "m" | "mb" | "mib" => 1024.0 * 1024.0,
            "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" | "tib" => 1024.0f64.powi(4),
            other => return Err(format!("'{s}': unknown unit '{other}' (use KiB, MiB, GiB or TiB)")),
        };
        let bytes = n * scale;
        if bytes.is_nan() || bytes < 1.0 {
            return Err(format!("'{s}': the limit must be positive"));
        }
        Ok(MemoryLimit(bytes as usize))
    }
}

/// [`new_context`] whose queries may hold at most `memory_limit` bytes (DataFusion's
/// memory pool: sorts and aggregations spill or fail with resources exhausted).
pub fn new_context_limited(memory_limit: Option<usize>) -> SessionContext {
    build_context(memory_limit)
}

fn build_context(memory_limit: Option<usize>) -> SessionContext {
    let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(LazyStoreRegistry::default()));
    if let Some(bytes) = memory_limit {
        runtime = runtime.with_memory_limit(bytes, 1.0);
    }
    let runtime = runtime.build_arc().expect("a runtime environment with default settings builds");
    let state = SessionStateBuilder::new()
        .with_config(gdo_config(SessionConfig::new()))
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(crate::ops::GdoQueryPlanner))
        .with_optimizer_rules(crate::ops::optimizer_rules())
        .build();
    with_gdo_functions(state)
}

/// gdo's settings on `config`: the information schema, plain strings from Parquet, the
/// hash-join thresholds, and the `gdo.*` settings. Local sessions and every process of
/// a cluster (scheduler, executors, client) start from it.
pub fn gdo_config(config: SessionConfig) -> SessionConfig {
    let mut config = config.with_information_schema(true);
    // Plain Utf8 strings from Parquet: with view strings, a hash join over millions of
    // pairs (scoring joins pool to metrics) spent its time re-measuring shared buffers.
    config.options_mut().execution.parquet.schema_force_view_types = false;
    // Build a hash join's table in one piece when one side is known to be small (a
    // goal subset, the Uni-10x sample, kept lookup tables up to about a million
    // rows): the other side, often the whole pool, then streams through unmoved
    // instead of being hash-repartitioned (a copy of every row it reads).
    config.options_mut().optimizer.hash_join_single_partition_threshold = 64 << 20;
    config.options_mut().optimizer.hash_join_single_partition_threshold_rows = 1 << 20;
    if config.options().extensions.get::<gdo_udfs::GdoOptions>().is_none() {
        config = config.with_option_extension(gdo_udfs::GdoOptions::default());
    }
    config
}

/// `state` with gdo's functions and table functions registered and DataFusion's
/// leaf-expression pushdown off, as a context. The function instances hold the
/// state's object-store registry (frames are fetched through it).
pub fn with_gdo_functions(state: datafusion::execution::SessionState) -> SessionContext {
    let ctx = SessionContext::new_with_state(state);
    // DataFusion 55's leaf-expression pushdown moves `m['amm']` below the projection
    // that computes `m`, inlining `media_descriptors(frames)` once per field: each frame
    // was then fetched, decoded and run through optical flow once per field. gdo's
    // tables have no struct columns for it to prune, so it is off (decode once).
    for rule in REMOVED_OPTIMIZER_RULES {
        ctx.remove_optimizer_rule(rule);
    }
    gdo_udfs::register_all(&ctx);
    crate::ops::register_table_functions(&ctx);
    ctx
}

/// Whether `ctx` runs its queries on a cluster (a session from
/// `gdo::cluster::connect`).
pub fn is_remote(ctx: &SessionContext) -> bool {
    ctx.state().config().options().extensions.get::<ballista_core::config::BallistaConfig>().is_some()
}

/// DataFusion optimizer rules gdo sessions run without (see [`with_gdo_functions`]).
pub const REMOVED_OPTIMIZER_RULES: &[&str] = &["extract_leaf_expressions", "push_down_leaf_projections"];

/// The session's object stores: those registered explicitly, plus any `s3://`, `gs://`
/// or `az://` bucket resolved on first use with [`crate::store::store_for`] and kept
/// per bucket, so frames in any bucket can be read without registering it first.
/// Owned by one session (no process-global cache).
#[derive(Debug, Default)]
pub struct LazyStoreRegistry {
    inner: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LazyStoreRegistry {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(missing) => match url.scheme() {
                "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" => {
                    let store =
                        store_for(url).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                    // Two threads may race here; the later registration wins and both stores work.
                    self.inner.register_store(&store_key(url), Arc::clone(&store));
                    Ok(store)
                }
                _ => Err(missing),
            },
        }
    }
}

/// Create gdo's scoring views (`gdo_scored`, `gdo_strata`, `gdo_metric_vds3`, ...) when
/// the session has both `pool` and `metrics`. Returns whether it did.
pub async fn create_score_views(ctx: &SessionContext) -> Result<bool> {
    create_score_views_keeping(ctx, &[]).await
}

/// [`create_score_views`], replacing each view named in `keep` by its rows as soon as
/// it is created, so the views created after it (and every later query) read the
/// rows instead of recomputing them. Kept tables also carry exact statistics, which
/// lets DataFusion build its hash joins on the small side (the strata and source
/// lookups) instead of hash-repartitioning the whole pool.
pub async fn create_score_views_keeping(ctx: &SessionContext, keep: &[&str]) -> Result<bool> {
    if !ctx.table_exist("pool")? || !ctx.table_exist("metrics")? {
        return Ok(false);
    }
    let statements = DFParser::parse_sql(crate::queries::SCORE_SQL)?;
    for statement in statements {
        let plan = ctx.state().statement_to_plan(statement).await?;
        let view = match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateView(v)) => Some(v.name.table().to_owned()),
            _ => None,
        };
        ctx.execute_logical_plan(plan).await?.collect().await?;
        let started = std::time::Instant::now();
        match view.as_deref() {
            // The views created after this one read the pinned statistics.
            Some("gdo_metric_stats") => materialise_in_one_partition(ctx, "gdo_metric_stats").await?,
            Some(name) if keep.contains(&name) => materialise(ctx, name).await?,
            _ => continue,
        }
        tracing::debug!(view = view.as_deref(), secs = started.elapsed().as_secs_f64(), "scoring view kept as rows");
    }
    Ok(true)
}

/// Replace view `name` by its rows. The row order may vary between runs; every
/// reader of gdo's kept views (joins, the goal operators) is order-insensitive.
async fn materialise(ctx: &SessionContext, name: &str) -> Result<()> {
    let df = ctx.table(name).await?;
    // The scoring joins are written build side first (see score.sql).
    let df = if name == "gdo_scored" { as_written(df) } else { df };
    replace_with_rows(ctx, name, df).await
}

/// Replace view `name` by its rows, computed in a single partition. DataFusion merges
/// the per-partition states of a float aggregate (mean, variance) in arrival order, so
/// over several partitions the last bits of the metric statistics, and so of every
/// score, changed from run to run (seen on a 10M-pair pool: 1.6000006424271862 vs
/// ...864). One partition gives one summation order: same inputs, same bytes.
async fn materialise_in_one_partition(ctx: &SessionContext, name: &str) -> Result<()> {
    replace_with_rows(ctx, name, in_table_order(ctx.table(name).await?)).await
}

/// Register the rows of `df` as table `name` (in memory, with exact statistics).
async fn replace_with_rows(ctx: &SessionContext, name: &str, df: DataFrame) -> Result<()> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    Ok(())
}

/// `df` planned with its joins in the order the SQL writes them (the left side of each
/// hash join is the one built). Join statistics guess wrong after a join (an inner join
/// with a 23-row lookup is estimated at 23 rows), so left to itself DataFusion built the
/// scoring join's hash table from the whole pool (75 MB, one thread) instead of from
/// the metrics.
pub fn as_written(df: DataFrame) -> DataFrame {
    planned_with(df, |o| o.optimizer.join_reordering = false)
}

/// `df` planned with its hash joins built in one piece from their left side however
/// large it is: for joins whose left side is a known subset of the pool (the rows to
/// fetch), so the pool streams through instead of being hash-repartitioned, every
/// column of every row copied once more.
pub fn left_built(df: DataFrame) -> DataFrame {
    planned_with(df, |o| {
        o.optimizer.join_reordering = false;
        o.optimizer.hash_join_single_partition_threshold = usize::MAX;
        o.optimizer.hash_join_single_partition_threshold_rows = usize::MAX;
    })
}

/// `df` planned with session options changed by `change` (for this plan only).
fn planned_with(df: DataFrame, change: impl FnOnce(&mut datafusion::config::ConfigOptions)) -> DataFrame {
    let (state, plan) = df.into_parts();
    let mut config = state.config().clone();
    change(config.options_mut());
    // Share the catalog: building with this flag on would register a fresh, empty
    // default catalog over the shared one.
    config.options_mut().catalog.create_default_catalog_and_schema = false;
    DataFrame::new(SessionStateBuilder::new_from_existing(state).with_config(config).build(), plan)
}

/// `df` planned in a single partition, so its rows stream in table order (files in
/// path order, so a run's parts in part order; rows in file order) on every run. For
/// the readers whose result depends on row order: duplicates where the later one wins,
/// streaming k-means, the trainer's seeded shuffle, float sums.
pub fn in_table_order(df: DataFrame) -> DataFrame {
    planned_with(df, |o| o.execution.target_partitions = 1)
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
    /// Rows per the table's log (None for plain Parquet).
    pub rows: Option<u64>,
    /// The Delta version read (None for plain Parquet).
    pub version: Option<u64>,
    /// What was read, for reports and resume checks: `{"path", "version", "id"}` for a
    /// table, `{"path", "files": [[name, bytes], ...]}` for plain Parquet.
    pub read: serde_json::Value,
}

async fn listing_table(ctx: &SessionContext, urls: Vec<ListingTableUrl>) -> Result<Arc<ListingTable>> {
    // The format takes the session's Parquet options (a bare `ParquetFormat::default()`
    // would read strings as Utf8View whatever the session says).
    let format = ParquetFormat::default().with_options(ctx.state().default_table_options().parquet);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config =
        ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).infer_schema(&ctx.state()).await?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// The files of a committed version as a table, after checking each is there with the
/// size its commit records (a file replaced or truncated after commit is an error naming
/// it, not other rows; `gdo verify` also checks the bytes).
async fn snapshot_table(ctx: &SessionContext, snap: &Snapshot) -> Result<Arc<ListingTable>> {
    if snap.files.is_empty() {
        return Err(GdoError::Table(format!("{}: version {} has no data files", snap.root, snap.version)));
    }
    let checks = snap.files.iter().map(|(path, size)| async move {
        let loc = snap.root.child(path);
        let found = loc.size().await.map_err(|e| match e {
            GdoError::NotFound(_) => GdoError::Table(format!(
                "{loc}: missing, though version {} of {} lists it (removed by hand, or vacuumed \
                 while this version was read)",
                snap.version, snap.root
            )),
            e => e,
        })?;
        if found != *size {
            return Err(GdoError::Table(format!(
                "{loc}: {found} bytes where version {} records {size}: the file was changed after \
                 commit (`gdo verify {}` checks every file)",
                snap.version, snap.root
            )));
        }
        Ok(ListingTableUrl::parse(loc.url.as_str())?)
    });
    let urls = futures::future::try_join_all(checks).await?;
    listing_table(ctx, urls).await
}

/// Register the table at `path` as `name`: a Delta table (gdo's tables; `PATH@vN` or
/// `PATH@<RFC 3339 time>` reads an earlier version), a folder of Parquet files, one
/// Parquet file or a file pattern; local or in an object store. A gdo table's side
/// tables are registered as `<name><side>` (e.g. `pool_rejects`), at the version that
/// goes with the version read.
pub async fn register_table(ctx: &SessionContext, name: &str, path: &str) -> Result<Registered> {
    let (path, at) = AsOf::split(path);
    let loc = Location::parse(path)?;
    register_store(ctx, &loc);
    let plain = |files: Vec<(String, u64)>| serde_json::json!({ "path": loc.to_string(), "files": files });
    if (is_pattern(path) || path.ends_with(".parquet")) && at != AsOf::Latest {
        return Err(GdoError::Usage(format!("{path}: versions (@v..) apply to tables, not Parquet files")));
    }
    if is_pattern(path) {
        // `exports/part-*.parquet`: the files it matches, as one table.
        let found = expand_input(path, "Parquet file", |_| true).await?;
        if let Some((other, _, _)) = found.files.iter().find(|(n, _, _)| !n.ends_with(".parquet")) {
            return Err(GdoError::Usage(format!(
                "{path}: the pattern also matches {other}, which is not a .parquet file; narrow the pattern"
            )));
        }
        let urls =
            found.files.iter().map(|(_, l, _)| Ok(ListingTableUrl::parse(l.url.as_str())?)).collect::<Result<_>>()?;
        ctx.register_table(name, listing_table(ctx, urls).await?)?;
        let files = found.files.iter().map(|(n, _, size)| (n.clone(), *size)).collect();
        return Ok(Registered { names: vec![name.to_owned()], rows: None, version: None, read: plain(files) });
    }
    if path.ends_with(".parquet") && loc.exists().await? {
        let table = listing_table(ctx, vec![ListingTableUrl::parse(loc.url.as_str())?]).await?;
        ctx.register_table(name, table)?;
        let files = vec![(loc.to_string(), loc.size().await?)];
        return Ok(Registered { names: vec![name.to_owned()], rows: None, version: None, read: plain(files) });
    }
    if let Some(snap) = crate::table::open(&loc, &at).await? {
        ctx.register_table(name, snapshot_table(ctx, &snap).await?)?;
        let mut names = vec![name.to_owned()];
        for (side, version) in &snap.side_tables {
            let side_loc = loc.child(side);
            let Some(side_snap) = crate::table::open(&side_loc, &AsOf::Version(*version)).await? else { continue };
            if side_snap.files.is_empty() {
                continue;
            }
            let side_name = format!("{name}{side}");
            ctx.register_table(side_name.as_str(), snapshot_table(ctx, &side_snap).await?)?;
            names.push(side_name);
        }
        let read = serde_json::json!({ "path": loc.to_string(), "version": snap.version, "id": snap.identity() });
        return Ok(Registered { names, rows: snap.rows, version: Some(snap.version), read });
    }
    if at != AsOf::Latest {
        return Err(GdoError::NotFound(format!("{loc} (no table there to read a version of)")));
    }
    let data = loc.child(crate::table::DATA_DIR);
    if futures::TryStreamExt::try_next(&mut data.store.list(Some(&data.path))).await?.is_some() {
        return Err(GdoError::Table(format!(
            "{loc} holds data files of a gdo run that did not commit, and no table: readers never \
             take uncommitted files. Rerun the command that writes it."
        )));
    }
    // Parquet files written by another tool.
    let mut files = Vec::new();
    let mut tables = std::collections::BTreeSet::new();
    let mut listing = loc.store.list(Some(&loc.path));
    while let Some(meta) = futures::TryStreamExt::try_next(&mut listing).await? {
        let key = meta.location.as_ref();
        let rel = key.strip_prefix(&format!("{}/", loc.path)).unwrap_or(key);
        if let Some((table, _)) = rel.split_once(&format!("/{}/", crate::table::LOG_DIR)) {
            // Side tables (`pool/_rejects`) go with their table.
            if !table.split('/').any(|part| part.starts_with('_')) {
                tables.insert(table.to_owned());
            }
        } else if key.ends_with(".parquet") {
            files.push((meta.location.to_string(), meta.size));
        }
    }
    if !tables.is_empty() {
        // Reading every Parquet file below would mix the tables and all their versions
        // (e.g. a `gdo select` folder: gdo_1x and uni_10x).
        let names: Vec<String> = tables.into_iter().collect();
        return Err(GdoError::Usage(format!(
            "{loc} is not a table but holds tables ({}); name one, e.g. {}",
            names.join(", "),
            loc.child(&names[0])
        )));
    }
    if files.is_empty() {
        return Err(GdoError::NotFound(format!("{loc} (no table and no Parquet files there)")));
    }
    files.sort();
    let table = listing_table(ctx, vec![ListingTableUrl::parse(loc.dir_url().as_str())?]).await?;
    ctx.register_table(name, table)?;
    Ok(Registered { names: vec![name.to_owned()], rows: None, version: None, read: plain(files) })
}

/// Let queries name tables by path, as DataFusion's and DuckDB's shells do:
/// `SELECT * FROM 'runs/metrics.parquet'`, `FROM 'work/pool'` (a gdo table, read at its
/// committed version), `FROM 'work/pool@v3'`, `FROM 's3://bucket/export/*.parquet'`.
/// A path is a quoted name with `/`, `.` or `@` in it, or a local file or folder of
/// that name, that no registered table has; it is read as [`register_table`] reads it. Only for SQL the user types: query files
/// read only the tables their command names (see [`crate::sql::check_query_only`]).
pub fn with_path_tables(ctx: SessionContext) -> SessionContext {
    use datafusion::catalog::DynamicFileCatalog;
    let factory = Arc::new(PathTables::default());
    let list = DynamicFileCatalog::new(Arc::clone(ctx.state().catalog_list()), Arc::clone(&factory) as _);
    ctx.register_catalog_list(Arc::new(list));
    let _ = factory.state.set(ctx.state_weak_ref());
    ctx
}

/// Tables named by path (see [`with_path_tables`]). Holds its session weakly, so the
/// session and its catalog do not keep each other alive.
#[derive(Debug, Default)]
struct PathTables {
    state: std::sync::OnceLock<std::sync::Weak<parking_lot::RwLock<datafusion::execution::SessionState>>>,
    opened: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl datafusion::catalog::UrlTableFactory for PathTables {
    async fn try_new(
        &self,
        name: &str,
    ) -> datafusion::common::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        // A bare name (`FROM 'pool'`) is a path only where a local file or folder has it;
        // otherwise the planner's own "table not found" stands.
        if !name.contains(['/', '.', '@']) && !std::path::Path::new(name).exists() {
            return Ok(None);
        }
        let Some(state) = self.state.get().and_then(std::sync::Weak::upgrade) else { return Ok(None) };
        let ctx = SessionContext::new_with_state(state.read().clone());
        // The copy shares the session's catalog: the table goes in under a name of its
        // own, and out again once its provider is taken.
        let n = self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = format!("__gdo_path_table_{n}");
        let registered =
            register_table(&ctx, &tmp, name).await.map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()));
        let provider = match &registered {
            Ok(_) => ctx.table_provider(tmp.as_str()).await.map(Some),
            Err(_) => Ok(None),
        };
        for side in registered.iter().flat_map(|r| &r.names) {
            let _ = ctx.deregister_table(side.as_str());
        }
        registered?;
        provider
    }
}
