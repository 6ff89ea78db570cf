//! The gdo scheduler: Ballista's scheduler with gdo's sessions and codecs, and
//! optionally an Arrow Flight SQL endpoint on the same port.

use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::catalog::TableProvider;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use super::codec::{GdoLogicalCodec, GdoPhysicalCodec};
use super::{cluster_config, server_state};
use crate::error::{GdoError, Result};
use crate::session::LazyStoreRegistry;

/// How a scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The host name or address executors and clients reach this scheduler at.
    pub external_host: String,
    /// Serve Arrow Flight SQL on the scheduler's port.
    pub flight_sql: bool,
    /// Executors poll for tasks (true) or the scheduler pushes them (false, Ballista's
    /// default); executors must use the same policy.
    pub pull_staged: bool,
    /// Tables every Flight SQL session has: (name, path), read when the scheduler starts.
    pub tables: Vec<(String, String)>,
    /// An executor silent this long is taken as lost and its tasks run elsewhere
    /// (executors send a heartbeat every 5 s).
    pub executor_timeout_seconds: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            external_host: "127.0.0.1".into(),
            flight_sql: false,
            pull_staged: false,
            tables: Vec::new(),
            executor_timeout_seconds: 20,
        }
    }
}

/// Run a scheduler on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, opts: SchedulerOptions) -> Result<()> {
    let addr = listener.local_addr().map_err(|e| GdoError::io("scheduler socket", e))?;
    let stores = Arc::new(LazyStoreRegistry::default());
    let tables = open_tables(&opts.tables, &stores).await?;
    let builder_stores = Arc::clone(&stores);
    let config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        external_host: opts.external_host.clone(),
        scheduling_policy: if opts.pull_staged {
            TaskSchedulingPolicy::PullStaged
        } else {
            TaskSchedulingPolicy::PushStaged
        },
        override_config_producer: Some(Arc::new(cluster_config)),
        // A fresh session per job, from the settings the job carries.
        override_session_builder: Some(Arc::new(move |config| {
            let state = server_state(config, Arc::clone(&builder_stores))?;
            let ctx = datafusion::prelude::SessionContext::new_with_state(state);
            for (name, table) in &tables {
                ctx.register_table(name.as_str(), Arc::clone(table))?;
            }
            Ok(ctx.state())
        })),
        override_logical_codec: Some(Arc::new(GdoLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(GdoPhysicalCodec::default())),
        flight_sql: opts.flight_sql,
        executor_timeout_seconds: opts.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: 5,
        no_executors_grace_period_seconds: opts.executor_timeout_seconds,
        ..Default::default()
    };
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(cluster_error)?;
    let server = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config).await.map_err(cluster_error)?;
    start_grpc_service_with_listener(listener, server).await.map_err(cluster_error)
}

/// The tables named at start, read once (their version at start is what sessions see).
async fn open_tables(
    tables: &[(String, String)],
    stores: &Arc<LazyStoreRegistry>,
) -> Result<Vec<(String, Arc<dyn TableProvider>)>> {
    let ctx = super::with_stores(stores);
    let mut out = Vec::new();
    for (name, path) in tables {
        let registered = crate::session::register_table(&ctx, name, path).await?;
        for side in &registered.names {
            out.push((side.clone(), ctx.table_provider(side.as_str()).await?));
        }
    }
    Ok(out)
}

pub(crate) fn cluster_error(e: ballista_core::error::BallistaError) -> GdoError {
    GdoError::Cluster(e.to_string())
}
