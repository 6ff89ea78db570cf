//! gdo on an Apache DataFusion Ballista cluster: a scheduler ([`scheduler`]), executors
//! ([`executor`]) and clients ([`connect`]) that all carry gdo's SQL functions, table
//! functions and operators ([`codec`] ships the operators between them).
//!
//! Every process builds its sessions here, from [`cluster_config`] and
//! [`server_state`], so a query plans and runs the same way on the scheduler, on each
//! executor and in a local session. Object-store credentials are never part of a
//! plan or a setting: each process reads them from its own environment
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as the rest of gdo does), through one store
//! registry per process that the media functions share.

pub mod codec;
pub mod executor;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED;
use ballista_core::extension::SessionConfigExt;
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{GdoError, Result};
use crate::session::{LazyStoreRegistry, gdo_config, with_gdo_functions};
use codec::{GdoLogicalCodec, GdoPhysicalCodec};

/// The environment variable `--cluster` falls back to.
pub const CLUSTER_ENV: &str = "GDO_CLUSTER";

/// The session settings of every cluster process: Ballista's (its restricted
/// DataFusion settings included: sort-merge joins, no round-robin repartition), then
/// gdo's, with gdo's codecs.
pub fn cluster_config() -> SessionConfig {
    gdo_config(SessionConfig::new_with_ballista())
        // Ballista's static planner. With adaptive planning, Ballista 55 returned wrong
        // rows for UNION ALL (a one-row branch repeated once per partition, the other
        // branch lost: seen on the shipped audit `temporal_share`), and its Flight SQL
        // answered with the schema of an intermediate stage, which clients reject.
        .set_bool(BALLISTA_ADAPTIVE_PLANNER_ENABLED, false)
        .with_ballista_logical_extension_codec(Arc::new(GdoLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(GdoPhysicalCodec::default()))
}

/// A scheduler's or executor's session for `config` (the settings a job carries):
/// gdo's planner, optimizer rules and functions over the process's object stores.
pub fn server_state(config: SessionConfig, stores: Arc<LazyStoreRegistry>) -> datafusion::common::Result<SessionState> {
    let runtime = RuntimeEnvBuilder::new().with_object_store_registry(stores).build_arc()?;
    let rules = ballista_core::optimizer::with_ballista_optimizer_rules(&crate::ops::optimizer_rules());
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(crate::ops::GdoQueryPlanner))
        .with_optimizer_rules(rules)
        .build();
    Ok(with_gdo_functions(state).state())
}

/// A local session over `stores` (for reading tables when a process starts).
pub(crate) fn with_stores(stores: &Arc<LazyStoreRegistry>) -> SessionContext {
    let state = server_state(gdo_config(SessionConfig::new()), Arc::clone(stores))
        .expect("a runtime environment with default settings builds");
    SessionContext::new_with_state(state)
}

/// `host:port` of a `df://HOST:PORT` scheduler address.
pub fn scheduler_address(url: &str) -> Result<(String, u16)> {
    let usage = || GdoError::Usage(format!("--cluster {url}: expected df://HOST:PORT, e.g. df://127.0.0.1:50050"));
    let rest = url.strip_prefix("df://").ok_or_else(usage)?;
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').ok_or_else(usage)?;
    let port = port.parse().map_err(|_| usage())?;
    if host.is_empty() {
        return Err(usage());
    }
    Ok((host.to_owned(), port))
}

/// A session whose queries run on the cluster whose scheduler is at `url`
/// (`df://HOST:PORT`), with every gdo function. Tables are registered in it as in a
/// local session; the executors must be able to read their paths (shared storage,
/// or an object store).
pub async fn connect(url: &str) -> Result<SessionContext> {
    let (host, port) = scheduler_address(url)?;
    // Ballista connects on the first query; a scheduler that is not there should be
    // named now, not as a gRPC transport error later.
    match tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(GdoError::Usage(format!(
                "no gdo scheduler at {url} ({e}); start one with `gdo scheduler --bind-port {port}`"
            )));
        }
        Err(_) => return Err(GdoError::Usage(format!("no answer from a gdo scheduler at {url} within 10 s"))),
    }
    let runtime =
        RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(LazyStoreRegistry::default())).build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(cluster_config())
        .with_runtime_env(runtime)
        .with_default_features()
        .with_optimizer_rules(crate::ops::optimizer_rules())
        .build();
    // Ballista replaces the session's functions when it takes the session over, so
    // gdo's are registered after.
    let ctx = SessionContext::remote_with_state(url, state).await?;
    Ok(with_gdo_functions(ctx.state()))
}
