//! gdo's SQL-visible behaviour as sqllogictest files: `tests/sql/*.slt`, one file per
//! gdo SQL function and per custom operator (values, NULLs, edge cases, EXPLAIN output
//! and error messages).
//!
//! Every file runs in a fresh gdo session (every function and operator registered, as
//! `gdo sql` has them) holding the committed sample pool as `pool` (ingested once from
//! `data-samples/`), `tests/sql/data/metrics.csv` as `metrics`, and the scoring views
//! built on both (`gdo_scored`, `gdo_strata`, `gdo_metric_vds3`, ...). `${SAMPLES}` in a
//! file stands for the absolute path of `data-samples/` (with `control substitution on`).
//!
//! Run: `cargo test --test sqllogictests [NAME]` (NAME: part of a file name).
//! `GDO_SLT_COMPLETE=1` rewrites the expected results from what gdo returns now; read
//! the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

/// One gdo session, as sqllogictest's database.
struct GdoDb {
    ctx: SessionContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        // The message a user sees: DataFusion's error text, without the backtrace.
        SqlError(e.strip_backtrace())
    }
}

#[async_trait]
impl AsyncDB for GdoDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let df = self.ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
        Ok(DBOutput::Rows { types, rows: rows(&batches)? })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "gdo"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DefaultColumnType::FloatingPoint,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

/// Every value as text: NULL as `NULL`, an empty string as `(empty)` (sqllogictest
/// cannot show an empty cell), anything else as Arrow displays it; a value of several
/// lines continues on rows of its own.
fn rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SqlError> {
    let mut out = Vec::new();
    for mut cells in gdo::sql::text_rows(batches).map_err(|e| SqlError(e.to_string()))? {
        for cell in cells.iter_mut().filter(|c| c.is_empty()) {
            *cell = "(empty)".to_owned();
        }
        // A multi-line value (an EXPLAIN plan) continues on rows of its own, one per
        // line, so expected results can be written as the plan reads.
        let mut rest = Vec::new();
        for cell in &mut cells {
            if let Some((first, more)) = cell.split_once('\n') {
                rest.extend(more.lines().map(|l| vec![l.to_owned()]));
                *cell = first.to_owned();
            }
        }
        out.push(cells);
        out.extend(rest);
    }
    Ok(out)
}

/// The tables every file starts with: the sample pool (ingested once), the committed
/// metrics and the scoring views.
async fn session(pool: &Path, metrics: &Path) -> Result<GdoDb, SqlError> {
    let ctx = gdo::session::new_context();
    gdo::session::register_table(&ctx, "pool", &pool.display().to_string())
        .await
        .map_err(|e| SqlError(e.to_string()))?;
    ctx.register_csv("metrics", metrics.display().to_string(), CsvReadOptions::new()).await?;
    gdo::session::create_score_views(&ctx).await.map_err(|e| SqlError(e.to_string()))?;
    Ok(GdoDb { ctx })
}

fn slt_files(dir: &Path, filter: Option<&str>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/sql exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| filter.is_none_or(|f| p.file_name().is_some_and(|n| n.to_string_lossy().contains(f))))
        .collect();
    files.sort();
    files
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `cargo test` passes libtest flags (`--nocapture`, ...) to every target; a plain
    // word is a file-name filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let complete = std::env::var_os("GDO_SLT_COMPLETE").is_some();
    let files = slt_files(&root.join("tests/sql"), filter.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let temp = tempfile::tempdir().expect("temp dir");
    let pool = temp.path().join("pool");
    let samples = root.join("data-samples");
    rt.block_on(async {
        let opts = gdo::pool::IngestOptions {
            onevision: vec![samples.join("onevision.jsonl").display().to_string()],
            video: vec![samples.join("video.jsonl").display().to_string()],
            out: pool.display().to_string(),
            ..Default::default()
        };
        gdo::pool::ingest(&opts).await.expect("the sample pool ingests");
    });
    let metrics = root.join("tests/sql/data/metrics.csv");

    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file.file_name().expect("file name").to_string_lossy().into_owned();
        let (pool, metrics) = (pool.clone(), metrics.clone());
        let mut runner = Runner::new(move || {
            let (pool, metrics) = (pool.clone(), metrics.clone());
            async move { session(&pool, &metrics).await }
        });
        runner.set_var("SAMPLES".into(), samples.display().to_string());
        let result = rt.block_on(async {
            if complete {
                runner
                    .update_test_file(
                        file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner.run_file_async(file).await.map_err(|e| e.display(true).to_string())
            }
        });
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok     {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAILED {name}\n{e}\n");
            }
        }
    }
    println!("sqllogictests: {passed} passed, {failed} failed");
    if files.is_empty() {
        println!("no .slt file matched");
        return ExitCode::FAILURE;
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
