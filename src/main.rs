//! The `gdo` command line: parsing and dispatch only; the library does the work.

use clap::{Parser, Subcommand};
use gdo::cli;

#[derive(Debug, Parser)]
#[command(name = "gdo", version, about = "Goal-driven data optimization for multimodal instruction tuning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Ingest(cli::ingest::Args),
    Describe(cli::describe::Args),
    Merge(cli::merge::Args),
    Sql(cli::sql::Args),
    Select(cli::select::Args),
    Demo(cli::demo::Args),
    GenSamples(cli::gen_samples::Args),
    Train(cli::train::Args),
    History(cli::history::Args),
    Verify(cli::verify::Args),
    Vacuum(cli::vacuum::Args),
    Export(cli::export::Args),
    Scheduler(cli::scheduler::Args),
    Executor(cli::executor::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GDO_LOG")
                // delta-rs logs a lost commit as an error; gdo's own error says it, and why.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,deltalake_core=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Before any worker thread exists: threads then share the heap's freed memory.
    gdo::memory::share_heap_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Ingest(a) => cli::ingest::run(a).await?,
            Command::Describe(a) => cli::describe::run(a).await?,
            Command::Merge(a) => cli::merge::run(a).await?,
            Command::Sql(a) => cli::sql::run(a).await?,
            Command::Select(a) => cli::select::run(a).await?,
            Command::Demo(a) => cli::demo::run(a).await?,
            Command::GenSamples(a) => cli::gen_samples::run(a).await?,
            Command::Train(a) => cli::train::run(a).await?,
            Command::History(a) => cli::history::run(a).await?,
            Command::Verify(a) => cli::verify::run(a).await?,
            Command::Vacuum(a) => cli::vacuum::run(a).await?,
            Command::Export(a) => cli::export::run(a).await?,
            Command::Scheduler(a) => cli::scheduler::run(a).await?,
            Command::Executor(a) => cli::executor::run(a).await?,
        }
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
