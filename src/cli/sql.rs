//! `gdo sql`: SQL over pools and any Parquet table, with every gdo function registered.

use std::io::{IsTerminal, Read, Write};

use crate::error::{GdoError, Result};
use crate::queries;
use crate::session::{MemoryLimit, new_context, new_context_limited, register_table, with_path_tables};
use crate::shell::{ShellOptions, default_history, run_shell};
use crate::sql::{Format, render_limited, run_statements_from, write_result};

/// Run SQL over the pool and other tables; with no SQL, an interactive shell (or the SQL
/// piped to stdin).
///
/// Examples:
///   gdo sql --pool pool/                                  (the shell: \d lists tables, \q quits)
///   gdo sql --pool pool/ "SELECT bucket, count(*) FROM pool GROUP BY bucket"
///   gdo sql -c "SELECT * FROM 'work/pool' LIMIT 5"        (tables by path; 'work/pool@v2' for a version)
///   gdo sql --pool pool/ --query composition
///   gdo sql --pool pool/ --metrics merged/ --file queries/goals/temp_plus.sql
///   gdo sql --table d=s3://bucket/descriptors/ --out d.csv "SELECT * FROM d"
///   gdo sql --pool pool/ --out by_source.parquet "SELECT data_source, count(*) FROM pool GROUP BY 1"
///   echo "SELECT 1;" | gdo sql
///
/// --out writes the format its name says: .parquet a Parquet file, .csv, .json/.jsonl,
/// .md, .txt; a folder a gdo table. Printed tables stop at --max-rows rows.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// SQL text: one or more statements separated by ';'.
    #[arg(value_name = "SQL", conflicts_with_all = ["file", "query", "command"])]
    pub sql: Option<String>,
    /// SQL text, as `psql -c` and `datafusion-cli -c` take it.
    #[arg(long, short = 'c', value_name = "SQL", conflicts_with_all = ["file", "query"])]
    pub command: Option<String>,
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
    /// Output format [default: from --out's name, else an aligned table].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Rows printed per result as a table (0: all); CSV and JSON print every row.
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub max_rows: usize,
    /// Bound the memory queries may hold (e.g. 8GiB, 512MiB); a query that needs more
    /// fails with DataFusion's resources-exhausted error instead of growing unbounded.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<MemoryLimit>,
    /// Run the queries on a gdo cluster (`gdo scheduler`). Paths in the SQL and in
    /// --pool/--table must be readable by the executors (shared storage or an object
    /// store).
    #[arg(long, env = crate::cluster::CLUSTER_ENV, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
    /// Write the last statement's result here instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<String>,
    /// List the queries shipped with gdo and exit.
    #[arg(long)]
    pub list_queries: bool,
    /// Print the SQL reference of gdo's functions, operators and settings and exit
    /// (`--format markdown` for the page in docs/sql-functions.md).
    #[arg(long)]
    pub help_functions: bool,
}

/// The reference of gdo's SQL functions, operators and settings, from each one's own
/// `Documentation` as a session registers them: plain text, or Markdown
/// (`docs/sql-functions.md` is that output; a test fails when the page is stale).
pub fn function_reference(markdown: bool) -> String {
    use datafusion::config::ExtensionOptions;
    use datafusion::logical_expr::Documentation;

    let ctx = new_context();
    let state = ctx.state();
    let mut functions: Vec<(&str, &Documentation)> = state
        .scalar_functions()
        .iter()
        .filter_map(|(name, udf)| udf.documentation().map(|doc| (name.as_str(), doc)))
        .filter(|(_, doc)| doc.doc_section.label == gdo_udfs::common::DOC_SECTION_GDO.label)
        .collect();
    functions.sort_by_key(|(name, _)| *name);
    let operators = crate::ops::table_function_docs();
    let settings = gdo_udfs::GdoOptions::default().entries();

    let mut out = String::new();
    if markdown {
        out.push_str(
            "# SQL functions, operators and settings\n\n\
             <!-- Generated by `gdo sql --help-functions --format markdown`; do not edit. -->\n\n\
             Every gdo session registers these: `gdo sql`, the goal files of `gdo select`, and\n\
             `gdo::session::new_context()` in the library. Their behaviour is tested in\n\
             `tests/sql/*.slt`, one file each.\n",
        );
    } else {
        out.push_str("gdo SQL functions, operators and settings\n=========================================\n");
    }
    for (section, docs) in [("functions", functions), ("operators", operators)] {
        let Some((_, first)) = docs.first() else { continue };
        let label = first.doc_section.label;
        let about = first.doc_section.description.unwrap_or_default();
        if markdown {
            out.push_str(&format!("\n## {label}\n\n{about}.\n"));
        } else {
            out.push_str(&format!("\n{label} ({section}): {about}\n"));
        }
        for (name, doc) in docs {
            if markdown {
                out.push_str(&format!(
                    "\n### `{name}`\n\n```sql\n{}\n```\n\n{}\n",
                    doc.syntax_example, doc.description
                ));
                if let Some(args) = &doc.arguments {
                    out.push_str("\n| argument | meaning |\n| --- | --- |\n");
                    for (arg, text) in args {
                        out.push_str(&format!("| `{arg}` | {} |\n", text.replace('|', "\\|")));
                    }
                }
                if let Some(example) = &doc.sql_example {
                    out.push_str(&format!("\nExample:\n\n```sql\n{example}\n```\n"));
                }
            } else {
                out.push_str(&format!("\n{}\n    {}\n", doc.syntax_example, doc.description));
                for (arg, text) in doc.arguments.iter().flatten() {
                    out.push_str(&format!("    {arg}: {text}\n"));
                }
                if let Some(example) = &doc.sql_example {
                    out.push_str(&format!("    example: {}\n", example.replace('\n', "\n             ")));
                }
            }
        }
    }
    if markdown {
        out.push_str(
            "\n## Settings\n\nSession settings, `SET gdo.<name> = <value>` (the CLI's flags set them \
             too).\n\n| setting | default | meaning |\n| --- | --- | --- |\n",
        );
    } else {
        out.push_str("\nSettings (SET gdo.<name> = <value>)\n");
    }
    for entry in settings {
        let default = entry.value.unwrap_or_else(|| "unset".into());
        let key = entry.key.strip_prefix("gdo.").unwrap_or(&entry.key).to_owned();
        let text = entry.description.trim();
        if markdown {
            out.push_str(&format!("| `gdo.{key}` | `{default}` | {} |\n", text.replace('|', "\\|")));
        } else {
            out.push_str(&format!("    gdo.{key} (default {default}): {text}\n"));
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
        print!("{}", function_reference(args.format == Some(Format::Markdown)));
        return Ok(());
    }
    // SQL typed by the user (argument, -c, stdin, the shell) may do anything DataFusion
    // does (COPY ... TO, tables by path); query files and shipped queries may only query
    // the tables the command names (see check_query_only).
    let typed = args.sql.clone().or(args.command.clone());
    let (sql, source) = match (typed, &args.file, &args.query) {
        (Some(s), _, _) => (Some(s), None),
        (None, Some(f), _) => {
            (Some(std::fs::read_to_string(f).map_err(|e| GdoError::io(f.clone(), e))?), Some(f.clone()))
        }
        (None, None, Some(q)) => (
            Some(
                queries::find(q)
                    .ok_or_else(|| GdoError::Usage(format!("no shipped query named '{q}' (see --list-queries)")))?
                    .sql
                    .to_owned(),
            ),
            Some(format!("query {q}")),
        ),
        (None, None, None) if std::io::stdin().is_terminal() => (None, None),
        (None, None, None) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| GdoError::io("stdin", e))?;
            if text.trim().is_empty() {
                return Err(GdoError::Usage("no SQL on stdin (give SQL text, -c, --file or --query)".into()));
            }
            (Some(text), None)
        }
    };
    let ctx = match &args.cluster {
        Some(url) if args.memory_limit.is_some() => {
            return Err(GdoError::Usage(format!(
                "--memory-limit bounds a local session; on a cluster ({url}) give each executor --memory-limit"
            )));
        }
        Some(url) => crate::cluster::connect(url).await?,
        None => new_context_limited(args.memory_limit.map(|m| m.0)),
    };
    let ctx = if source.is_none() { with_path_tables(ctx) } else { ctx };
    // What the SQL may read, by name, for the commit of a table written with --out.
    let mut inputs = serde_json::Map::new();
    if let Some(pool) = &args.pool {
        inputs.insert("pool".into(), register_table(&ctx, "pool", pool).await?.read);
    }
    for spec in &args.tables {
        let (name, path) = spec
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| GdoError::Usage(format!("--table expects NAME=PATH, got '{spec}'")))?;
        inputs.insert(name.to_owned(), register_table(&ctx, name, path).await?.read);
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
    let Some(sql) = sql else {
        if args.out.is_some() {
            return Err(GdoError::Usage("--out needs SQL to run (give SQL text, -c, --file or --query)".into()));
        }
        let opts = ShellOptions {
            format: args.format.unwrap_or(Format::Table),
            max_rows: args.max_rows,
            history: default_history(),
        };
        return run_shell(&ctx, &opts).await;
    };
    let results = run_statements_from(&ctx, &sql, source.as_deref()).await?;
    match &args.out {
        Some(out) => {
            let last = results.last().expect("at least one statement ran");
            let format = args.format.unwrap_or_else(|| Format::for_path(out));
            write_result(last, format, out, &inputs).await?;
            eprintln!("wrote {} row(s) to {out}", last.num_rows());
        }
        None => {
            let format = args.format.unwrap_or(Format::Table);
            let mut stdout = std::io::stdout().lock();
            for r in results.iter().filter(|r| !r.schema.fields().is_empty()) {
                let bytes = render_limited(r, format, args.max_rows)?;
                stdout.write_all(&bytes).map_err(|e| GdoError::io("stdout", e))?;
            }
        }
    }
    Ok(())
}
