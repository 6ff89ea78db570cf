//! `gdo executor`: an executor of a gdo cluster.

use crate::cluster::executor::{ExecutorOptions, serve};
use crate::cluster::scheduler_address;
use crate::error::Result;
use crate::session::MemoryLimit;

/// Start an executor of a gdo cluster: it joins the scheduler and runs tasks with every
/// gdo function and operator.
///
/// Examples:
///   gdo executor                                    (scheduler at 127.0.0.1:50050)
///   gdo executor --scheduler df://node1:50050 --bind-host 0.0.0.0 --external-host node2
///   gdo executor -p 50061 --grpc-port 50062 --task-slots 4 --work-dir /scratch/gdo
///
/// Two executors on one machine need different ports (-p, --grpc-port).
/// Object-store credentials come from this process's environment (AWS_*, ...).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The scheduler to join.
    #[arg(long, default_value = "df://127.0.0.1:50050", value_name = "df://HOST:PORT")]
    pub scheduler: String,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    pub bind_host: String,
    /// The name the scheduler and other executors reach this machine by [default:
    /// --bind-host, or 127.0.0.1 when that is 0.0.0.0].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
    /// Arrow Flight port: shuffle data and results are fetched from it.
    #[arg(long, short = 'p', default_value_t = 50051, value_name = "PORT")]
    pub port: u16,
    /// gRPC port: the scheduler hands tasks to it.
    #[arg(long, default_value_t = 50052, value_name = "PORT")]
    pub grpc_port: u16,
    /// Tasks run at once [default: one per core].
    #[arg(long, short = 'c', default_value_t = 0, value_name = "N")]
    pub task_slots: usize,
    /// Folder for shuffle files and spills [default: a temporary folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,
    /// The memory all running tasks may hold together (e.g. 8GiB); sorts and
    /// aggregations spill beyond it [default: Ballista's share of the machine's memory].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<MemoryLimit>,
    /// Poll the scheduler for tasks; use when the scheduler runs with --pull-staged.
    #[arg(long)]
    pub pull_staged: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let (scheduler_host, scheduler_port) = scheduler_address(&args.scheduler)?;
    let external_host =
        args.external_host.clone().unwrap_or_else(|| super::scheduler::default_external(&args.bind_host));
    eprintln!("gdo executor on {external_host}:{} (gRPC {}), joining {}", args.port, args.grpc_port, args.scheduler);
    let opts = ExecutorOptions {
        scheduler_host,
        scheduler_port,
        bind_host: args.bind_host,
        external_host,
        flight_port: args.port,
        grpc_port: args.grpc_port,
        task_slots: args.task_slots,
        work_dir: args.work_dir,
        pull_staged: args.pull_staged,
        memory_pool_size: args.memory_limit.map(|m| m.0 as u64),
        connect_timeout_seconds: 30,
    };
    serve(opts).await
}
