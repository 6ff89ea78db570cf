//! The interactive `gdo sql` shell: line editing and history (rustyline), statements
//! over several lines (run at the `;` that ends them), and a few backslash commands in
//! the manner of psql and DuckDB.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::{GdoError, Result};
use crate::sql::{Format, render_limited, run_statements};

/// What the shell prints and where it keeps its history.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    pub format: Format,
    /// Rows printed per result (0: all).
    pub max_rows: usize,
    /// History file (None: no history kept across runs).
    pub history: Option<PathBuf>,
}

const HELP: &str = "\
Statements end with ';' and may span lines. Tables may be named by path:
  SELECT * FROM 'work/pool' LIMIT 5;        (a gdo table; 'work/pool@v2' for version 2)
  SELECT * FROM 'exports/*.parquet';
Commands:
  \\d          list tables and views
  \\d NAME     columns of a table
  \\q          quit (also Ctrl-D)
  \\?          this help
Functions: SHOW FUNCTIONS; or gdo sql --help-functions";

/// `~/.gdo_history`, where the shell keeps what was typed.
pub fn default_history() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".gdo_history"))
}

/// Whether `buffer` holds a whole statement: it ends with `;` outside quotes and
/// comments.
fn statement_complete(buffer: &str) -> bool {
    let (mut single, mut double, mut last) = (false, false, None);
    let mut chars = buffer.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '-' if !single && !double && chars.peek() == Some(&'-') => {
                // A line comment: skip to its end.
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last = Some(c);
        }
    }
    !single && !double && last == Some(';')
}

/// Run the shell on the terminal until `\q` or end of input.
pub async fn run_shell(ctx: &SessionContext, opts: &ShellOptions) -> Result<()> {
    let mut editor = DefaultEditor::new().map_err(|e| GdoError::Usage(format!("cannot start the shell: {e}")))?;
    if let Some(h) = &opts.history {
        // A first run has no history yet.
        let _ = editor.load_history(h);
    }
    println!("gdo {} SQL shell: statements end with ';', \\? for help, \\q to quit", env!("CARGO_PKG_VERSION"));
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "gdo> " } else { "  -> " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = editor.add_history_entry(trimmed);
                    if !command(ctx, trimmed, opts).await {
                        break;
                    }
                    continue;
                }
                if buffer.is_empty() && trimmed.is_empty() {
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if statement_complete(&buffer) {
                    let sql = std::mem::take(&mut buffer);
                    let _ = editor.add_history_entry(sql.trim());
                    run_and_print(ctx, &sql, opts).await;
                }
            }
            // Ctrl-C drops the statement being typed, as in psql.
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(GdoError::Usage(format!("shell: {e}"))),
        }
    }
    if let Some(h) = &opts.history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

async fn run_and_print(ctx: &SessionContext, sql: &str, opts: &ShellOptions) {
    let started = Instant::now();
    match run_statements(ctx, sql).await {
        Ok(results) => {
            let mut out = std::io::stdout().lock();
            for r in results.iter().filter(|r| !r.schema.fields().is_empty()) {
                match render_limited(r, opts.format, opts.max_rows) {
                    Ok(bytes) => {
                        let _ = out.write_all(&bytes);
                    }
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            let rows: usize = results.last().map_or(0, |r| r.num_rows());
            let _ = writeln!(out, "{rows} row(s) in {:.3} s", started.elapsed().as_secs_f64());
        }
        Err(e) => eprintln!("error: {e}"),
    }
}

/// A backslash command; false to quit.
async fn command(ctx: &SessionContext, line: &str, opts: &ShellOptions) -> bool {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let arg = words.next();
    let sql = match (name, arg) {
        ("\\q", _) => return false,
        ("\\?" | "\\h", _) => {
            println!("{HELP}");
            return true;
        }
        ("\\d", None) => "SELECT table_name, table_type FROM information_schema.tables \
                          WHERE table_schema = 'public' ORDER BY table_name"
            .to_owned(),
        ("\\d", Some(table)) => format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{}' ORDER BY ordinal_position",
            table.replace('\'', "''")
        ),
        _ => {
            eprintln!("error: unknown command {name} (\\? lists them)");
            return true;
        }
    };
    let all_rows = ShellOptions { max_rows: 0, ..opts.clone() };
    run_and_print(ctx, &sql, &all_rows).await;
    true
}

#[cfg(test)]
mod tests {
    use super::statement_complete;

    #[test]
    fn a_statement_ends_at_a_semicolon_outside_quotes_and_comments() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1\n  ;  \n"));
        assert!(!statement_complete("SELECT ';'"));
        assert!(!statement_complete("SELECT 1 -- done;"));
        assert!(statement_complete("SELECT 1 -- first\n;"));
        assert!(!statement_complete("SELECT \"a;"));
        assert!(!statement_complete("SELECT 1"));
    }
}
