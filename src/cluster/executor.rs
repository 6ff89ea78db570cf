//! The gdo executor: Ballista's executor with every gdo function in its registry and
//! gdo's codecs, reading object stores with the credentials of its own environment.

use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

use super::codec::{GdoLogicalCodec, GdoPhysicalCodec};
use super::scheduler::cluster_error;
use super::{cluster_config, server_state};
use crate::error::{GdoError, Result};
use crate::session::LazyStoreRegistry;

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address the executor's ports bind to.
    pub bind_host: String,
    /// The host name or address the scheduler and other executors reach it at.
    pub external_host: String,
    /// The Arrow Flight port (shuffle data and results are fetched from it).
    pub flight_port: u16,
    /// The gRPC port (the scheduler pushes tasks to it).
    pub grpc_port: u16,
    /// Tasks run at once (0: one per core).
    pub task_slots: usize,
    /// Shuffle files and spills; a temporary folder when unset.
    pub work_dir: Option<String>,
    /// Poll for tasks instead of receiving them; must match the scheduler.
    pub pull_staged: bool,
    /// The memory all tasks together may hold, in bytes (None: Ballista's default share
    /// of the machine's memory).
    pub memory_pool_size: Option<u64>,
    /// Seconds to keep retrying the first connection to the scheduler.
    pub connect_timeout_seconds: u16,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            scheduler_host: "127.0.0.1".into(),
            scheduler_port: 50050,
            bind_host: "127.0.0.1".into(),
            external_host: "127.0.0.1".into(),
            flight_port: 50051,
            grpc_port: 50052,
            task_slots: 0,
            work_dir: None,
            pull_staged: false,
            memory_pool_size: None,
            connect_timeout_seconds: 30,
        }
    }
}

/// Run an executor until the process ends (or it is told to stop).
pub async fn serve(opts: ExecutorOptions) -> Result<()> {
    if opts.flight_port == opts.grpc_port {
        return Err(GdoError::Usage(format!(
            "the executor's Flight and gRPC ports must differ (both {})",
            opts.flight_port
        )));
    }
    // One store registry per process: the tasks' runtime and the media functions'
    // frame fetcher read through it.
    let stores = Arc::new(LazyStoreRegistry::default());
    let registry = BallistaFunctionRegistry::from(&server_state(cluster_config(), Arc::clone(&stores))?);
    let spill_dir = opts.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: opts.bind_host.clone(),
        external_host: Some(opts.external_host.clone()),
        port: opts.flight_port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        scheduler_connect_timeout_seconds: opts.connect_timeout_seconds,
        vcores: opts.task_slots,
        task_scheduling_policy: if opts.pull_staged {
            TaskSchedulingPolicy::PullStaged
        } else {
            TaskSchedulingPolicy::PushStaged
        },
        work_dir: opts.work_dir.clone(),
        memory_pool_size: opts.memory_pool_size,
        // Ballista's executors heartbeat once a minute by default; a killed executor's
        // tasks are then rescheduled only after the scheduler's timeout. Every 5 s
        // keeps that short.
        executor_heartbeat_interval_seconds: 5,
        override_function_registry: Some(Arc::new(registry)),
        override_config_producer: Some(Arc::new(cluster_config)),
        override_runtime_producer: Some(Arc::new(move |_| {
            let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
            if let Some(dir) = &spill_dir {
                runtime = runtime.with_temp_file_path(dir);
            }
            runtime.build_arc()
        })),
        override_logical_codec: Some(Arc::new(GdoLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(GdoPhysicalCodec::default())),
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(cluster_error)
}
