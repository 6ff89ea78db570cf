//! `gdo sql`: SQL over pools and any Parquet table, with every gdo function registered.

use std::io::Write;

use crate::error::{GdoError, Result};
use crate::queries;
use crate::session::{new_context, register_table};
use crate::sql::{Format, render, run_statements, write_result};

/// Run SQL over the pool and other tables.
///
/// Examples:
///   gdo sql --pool pool/ "SELECT bucket, count(*) FROM pool GROUP BY bucket"
///   gdo sql --pool pool/ --query composition
///   gdo sql --pool pool/ --metrics merged/ --file queries/goals/temp_plus.sql
///   gdo sql --table d=s3://bucket/descriptors/ --format csv --out d.csv "SELECT * FROM d"
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SQL text: one or more statements separated by ';'.
    #[arg(value_name = "SQL", conflicts_with_all = ["file", "query"])]
    pub sql: Option<String>,
    /// Read the SQL from this file.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "query")]
    pub file: Option<String>,
    /// Run a query shipped with gdo (see --list-queries), e.g. `composition`.
    #[arg(long, short = 'q', value_name = "NAME")]
    pub query: Option<String>,
    /// A pool table folder, registered as `pool` (and its rejects as `pool_rejects`).
    #[arg(long, value_name = "DIR")]
    pub pool: Option<String>,
    /// Merged descriptors (gdo merge table, Parquet, or the reference's JSONL), loaded as
    /// `metrics`; with --pool this also creates the scoring views (`gdo_scored`, ...)
    /// that the goal files in queries/goals/ read.
    /// (Repeat the flag for several sources.)
    #[arg(long, value_name = "PATH")]
    pub metrics: Vec<String>,
    /// Register another table: NAME=PATH (gdo table folder, Parquet folder or file, or a
    /// file-name pattern such as 'exports/part-*.parquet'; local or URI).
    #[arg(long = "table", value_name = "NAME=PATH")]
    pub tables: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the last statement's result here instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<String>,
    /// List the queries shipped with gdo and exit.
    #[arg(long)]
    pub list_queries: bool,
    /// Print the SQL reference of gdo's functions and exit.
    #[arg(long)]
    pub help_functions: bool,
}

fn function_help() -> String {
    let mut out = String::from("gdo SQL functions\n=================\n");
    for udf in gdo_udfs::all_scalar_udfs() {
        let Some(doc) = udf.documentation() else { continue };
        out.push_str(&format!("\n{}\n    {}\n", doc.syntax_example, doc.description));
        for (name, text) in doc.arguments.iter().flatten() {
            out.push_str(&format!("    {name}: {text}\n"));
        }
        if let Some(example) = &doc.sql_example {
            out.push_str(&format!("    example: {example}\n"));
        }
    }
    out
}

pub async fn run(args: Args) -> Result<()> {
    if args.list_queries {
        for q in queries::all() {
            println!("{:<28} {}", q.name, q.summary().split(". ").next().unwrap_or_default());
        }
        return Ok(());
    }
    if args.help_functions {
        print!("{}", function_help());
        return Ok(());
    }
    let sql = match (&args.sql, &args.file, &args.query) {
        (Some(s), _, _) => s.clone(),
        (None, Some(f), _) => std::fs::read_to_string(f).map_err(|e| GdoError::io(f.clone(), e))?,
        (None, None, Some(q)) => queries::find(q)
            .ok_or_else(|| GdoError::Usage(format!("no shipped query named '{q}' (see --list-queries)")))?
            .sql
            .to_owned(),
        (None, None, None) => {
            return Err(GdoError::Usage("give SQL text, --file FILE or --query NAME".into()));
        }
    };
    let ctx = new_context();
    if let Some(pool) = &args.pool {
        register_table(&ctx, "pool", pool).await?;
    }
    for spec in &args.tables {
        let (name, path) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| GdoError::Usage(format!("--table expects NAME=PATH, got '{spec}'")))?;
        register_table(&ctx, name, path).await?;
    }
    if !args.metrics.is_empty() {
        let report = crate::select::metrics::load_metrics(&ctx, &args.metrics).await?;
        if report.duplicates > 0 || !report.bad_rows.is_empty() || !report.non_finite.is_empty() {
            eprintln!(
                "metrics: {} rows kept; {} duplicate(s) (later wins), bad rows {:?}, non-finite values {:?}",
                report.loaded, report.duplicates, report.bad_rows, report.non_finite
            );
        }
    }
    crate::session::create_score_views(&ctx).await?;
    let results = run_statements(&ctx, &sql).await?;
    match &args.out {
        Some(out) => {
            let last = results.last().expect("at least one statement ran");
            write_result(last, args.format, out).await?;
            eprintln!("wrote {} row(s) to {out}", last.num_rows());
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            for r in results.iter().filter(|r| !r.schema.fields().is_empty()) {
                let bytes = render(r, args.format)?;
                stdout.write_all(&bytes).map_err(|e| GdoError::io("stdout", e))?;
            }
        }
    }
    Ok(())
}
