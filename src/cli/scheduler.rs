//! `gdo scheduler`: the scheduler of a gdo cluster.

use crate::cluster::scheduler::{SchedulerOptions, serve};
use crate::error::{GdoError, Result};

/// Start the scheduler of a gdo cluster (Apache DataFusion Ballista). Executors
/// (`gdo executor`) join it; clients run `gdo sql|describe|select --cluster
/// df://HOST:PORT`; with --flight-sql, any Arrow Flight SQL client (ADBC, JDBC, DBeaver)
/// can query on the same port.
///
/// Examples:
///   gdo scheduler                                   (127.0.0.1:50050)
///   gdo scheduler --bind-host 0.0.0.0 --external-host node1 --flight-sql
///   gdo scheduler --flight-sql --table pool=s3://bucket/work/pool
///
/// Object-store credentials come from this process's environment (AWS_*, ...), never
/// from clients; each executor reads its own.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    pub bind_host: String,
    /// Port for executors, clients, Flight SQL and the REST API (/api/...).
    #[arg(long, short = 'p', default_value_t = 50050, value_name = "PORT")]
    pub bind_port: u16,
    /// The name executors and clients reach this machine by [default: --bind-host, or
    /// 127.0.0.1 when that is 0.0.0.0].
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
    /// Serve Arrow Flight SQL (grpc://HOST:PORT) with gdo's functions.
    #[arg(long)]
    pub flight_sql: bool,
    /// A table every Flight SQL session has: NAME=PATH (a gdo table, Parquet folder or
    /// file; its version when the scheduler starts). Tables can also be named by path in
    /// the SQL: FROM 'work/pool'.
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// Seconds without a heartbeat after which an executor counts as lost and its
    /// tasks are run again elsewhere.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub executor_timeout: u64,
    /// Executors poll for tasks instead of having them pushed; the executors must be
    /// started with --pull-staged too.
    #[arg(long)]
    pub pull_staged: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let tables = args.tables.iter().map(|spec| table_spec(spec)).collect::<Result<Vec<_>>>()?;
    let external_host = args.external_host.clone().unwrap_or_else(|| default_external(&args.bind_host));
    let listener = tokio::net::TcpListener::bind((args.bind_host.as_str(), args.bind_port))
        .await
        .map_err(|e| GdoError::io(format!("{}:{}", args.bind_host, args.bind_port), e))?;
    eprintln!(
        "gdo scheduler on {}:{} (clients: --cluster df://{external_host}:{}{})",
        args.bind_host,
        args.bind_port,
        args.bind_port,
        if args.flight_sql {
            format!("; Flight SQL: grpc://{external_host}:{}", args.bind_port)
        } else {
            String::new()
        }
    );
    let opts = SchedulerOptions {
        external_host,
        flight_sql: args.flight_sql,
        pull_staged: args.pull_staged,
        tables,
        executor_timeout_seconds: args.executor_timeout,
    };
    serve(listener, opts).await
}

/// `NAME=PATH`.
pub(crate) fn table_spec(spec: &str) -> Result<(String, String)> {
    spec.split_once('=')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .map(|(n, p)| (n.to_owned(), p.to_owned()))
        .ok_or_else(|| GdoError::Usage(format!("--table expects NAME=PATH, got '{spec}'")))
}

/// The address others reach a process bound to `bind_host` at.
pub(crate) fn default_external(bind_host: &str) -> String {
    if bind_host == "0.0.0.0" || bind_host == "::" { "127.0.0.1".to_owned() } else { bind_host.to_owned() }
}
