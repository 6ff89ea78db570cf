//! Running SQL text (one or more statements) and writing results as an aligned table,
//! CSV, JSON lines or Parquet.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::error::{GdoError, Result};
use crate::store::Location;
use crate::table::TableWriter;

/// Output formats of `gdo sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// Newline-delimited JSON objects, one per row.
    Json,
    /// A Markdown table.
    Markdown,
    /// Parquet (needs --out).
    Parquet,
}

impl Format {
    /// The format an output path asks for by its extension: `.parquet` a Parquet file,
    /// `.csv`, `.json`/`.jsonl`/`.ndjson`, `.md`, `.txt` text; any other path (a folder)
    /// a gdo table.
    pub fn for_path(path: &str) -> Format {
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => Format::Csv,
            Some("json" | "jsonl" | "ndjson") => Format::Json,
            Some("md") => Format::Markdown,
            Some("txt") => Format::Table,
            _ => Format::Parquet,
        }
    }
}

/// The result of one statement.
pub struct StatementResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl StatementResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Run every statement of `sql` in order and collect each result.
pub async fn run_statements(ctx: &SessionContext, sql: &str) -> Result<Vec<StatementResult>> {
    run_statements_from(ctx, sql, None).await
}

/// Refuse what a query file may not do: write files (`COPY ... TO`), read files the
/// command was not given (`CREATE EXTERNAL TABLE`), or change tables (DML, DDL other
/// than the session's own views). Queries, `CREATE VIEW`, `SET` and `EXPLAIN` pass.
/// `source` names the file in the error.
pub fn check_query_only(plan: &LogicalPlan, source: &str) -> Result<()> {
    use datafusion::logical_expr::DdlStatement;
    let refused = match plan {
        LogicalPlan::Copy(_) => Some("COPY ... TO (writes files)"),
        LogicalPlan::Dml(_) => Some("INSERT/UPDATE/DELETE (changes tables)"),
        LogicalPlan::Ddl(DdlStatement::CreateView(_)) => None,
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(_)) => Some("CREATE EXTERNAL TABLE (reads other files)"),
        LogicalPlan::Ddl(_) => Some("DDL other than CREATE VIEW"),
        _ => None,
    };
    match refused {
        Some(what) => Err(GdoError::Usage(format!(
            "{source}: {what} is not allowed in a query file; query files may only run queries, \
             CREATE VIEW, SET and EXPLAIN (give such SQL on the command line instead)"
        ))),
        None => Ok(()),
    }
}

/// [`run_statements`]; with a `source`, every statement is first checked with
/// [`check_query_only`].
pub async fn run_statements_from(
    ctx: &SessionContext,
    sql: &str,
    source: Option<&str>,
) -> Result<Vec<StatementResult>> {
    let statements = DFParser::parse_sql(sql)?;
    if statements.is_empty() {
        return Err(GdoError::Usage("no SQL statement given".into()));
    }
    let mut results = Vec::new();
    for statement in statements {
        let state = ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        if let Some(source) = source {
            check_query_only(&plan, source)?;
        }
        let df = ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        results.push(StatementResult { schema, batches });
    }
    Ok(results)
}

/// [`render`] of at most `max_rows` rows (0: all) for the aligned and Markdown tables,
/// with a line saying how many were left out; CSV and JSON always in full (they are
/// data for other programs, not a view).
pub fn render_limited(result: &StatementResult, format: Format, max_rows: usize) -> Result<Vec<u8>> {
    let total = result.num_rows();
    if max_rows == 0 || total <= max_rows || !matches!(format, Format::Table | Format::Markdown) {
        return render(result, format);
    }
    let mut kept = Vec::new();
    let mut left = max_rows;
    for b in &result.batches {
        if left == 0 {
            break;
        }
        let take = left.min(b.num_rows());
        kept.push(b.slice(0, take));
        left -= take;
    }
    let head = StatementResult { schema: Arc::clone(&result.schema), batches: kept };
    let mut out = render(&head, format)?;
    out.extend_from_slice(format!("({max_rows} of {total} rows shown; --max-rows 0 shows all)\n").as_bytes());
    Ok(out)
}

/// Nested columns (lists, structs, maps) of `batch` as JSON text, for CSV, which holds
/// only flat values.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !f.data_type().is_nested() {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(c));
            continue;
        }
        // One JSON object per row, `{"v": ...}` (null values left out).
        let one = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", f.data_type().clone(), true)])),
            vec![Arc::clone(c)],
        )?;
        let mut lines = Vec::new();
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut lines);
        w.write(&one)?;
        w.finish()?;
        let texts = lines
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l)?;
                Ok(v.get("v").filter(|v| !v.is_null()).map(|v| v.to_string()))
            })
            .collect::<Result<Vec<Option<String>>>>()?;
        fields.push(Field::new(f.name(), datafusion::arrow::datatypes::DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(texts)));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// Render a result in a text format.
pub fn render(result: &StatementResult, format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Table => {
            let text = if result.batches.is_empty() {
                pretty_format_batches(&[RecordBatch::new_empty(Arc::clone(&result.schema))])?
            } else {
                pretty_format_batches(&result.batches)?
            };
            out.extend_from_slice(text.to_string().as_bytes());
            out.push(b'\n');
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if result.batches.is_empty() {
                w.write(&nested_as_json(&RecordBatch::new_empty(Arc::clone(&result.schema)))?)?;
            }
            for b in &result.batches {
                w.write(&nested_as_json(b)?)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Markdown => out.extend_from_slice(markdown_table(result)?.as_bytes()),
        Format::Parquet => {
            return Err(GdoError::Usage("--format parquet writes a file: give --out PATH".into()));
        }
    }
    Ok(out)
}

/// Every value of `batches` as Arrow displays it, row by row; NULL as `NULL`.
pub fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        rows.extend((0..batch.num_rows()).map(|row| formatters.iter().map(|f| f.value(row).to_string()).collect()));
    }
    Ok(rows)
}

/// A result as a Markdown (GitHub) table; `|` in values is escaped, newlines become spaces.
fn markdown_table(result: &StatementResult) -> Result<String> {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let names: Vec<String> = result.schema.fields().iter().map(|f| cell(f.name())).collect();
    let mut out = format!("| {} |\n|{}\n", names.join(" | "), " --- |".repeat(names.len()));
    for row in text_rows(&result.batches)? {
        let values: Vec<String> = row.iter().map(|v| cell(v)).collect();
        out.push_str(&format!("| {} |\n", values.join(" | ")));
    }
    Ok(out)
}

/// Write a result to `out`: Parquet as a table (Delta Lake; or one `.parquet` file),
/// the text formats as one file. Every write is atomic.
///
/// `inputs` (name -> what was read, as [`crate::session::Registered::read`]) goes into
/// the table's commit.
pub async fn write_result(
    result: &StatementResult,
    format: Format,
    out: &str,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let loc = Location::parse(out)?;
    if format != Format::Parquet {
        return loc.write_all(render(result, format)?).await;
    }
    if out.ends_with(".parquet") {
        let store = Arc::clone(&loc.store);
        let sink = object_store::buffered::BufWriter::new(store, loc.path.clone());
        let mut w = datafusion::parquet::arrow::AsyncArrowWriter::try_new(
            sink,
            Arc::clone(&result.schema),
            Some(crate::table::writer_properties()),
        )?;
        for b in &result.batches {
            w.write(b).await?;
        }
        w.close().await?;
        return Ok(());
    }
    let mut table = TableWriter::open(loc, "sql_result").await?;
    for (name, read) in inputs {
        table.read_input(name, read.clone());
    }
    let mut part = table.open_part(None, Arc::clone(&result.schema))?;
    for b in &result.batches {
        part.write(b).await?;
    }
    table.add_part(None, part.finish().await?);
    table.commit(serde_json::json!({ "rows": result.num_rows() })).await?;
    Ok(())
}
