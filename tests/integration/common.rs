//! Shared helpers: the gdo binary, the reference fixtures, running SQL on a table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::arrow::record_batch::RecordBatch;
use gdo::pool::{IngestOptions, IngestReport, ingest};
use gdo::session::{new_context, register_table};
use gdo::sql::run_statements;

/// The `gdo` binary built for this test run.
pub fn gdo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gdo"));
    cmd.env_remove("GDO_LOG");
    cmd
}

/// Run a command, failing the test with its output if it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("gdo runs");
    assert!(
        out.status.success(),
        "command failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `tests/data/reference`: the reference implementation's outputs (see its README).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference")
}

/// Ingest the reference pool (6,000 image rows, 3,000 video rows) into `out`.
pub async fn ingest_reference_pool(out: &Path) -> IngestReport {
    let pool = fixtures().join("gdo-reference/pool");
    gdo::stage::Ingest::new(out.display().to_string())
        .with_onevision([pool.join("onevision.jsonl.gz").display().to_string()])
        .with_video([pool.join("video.jsonl.gz").display().to_string()])
        .await
        .expect("reference pool ingests")
}

/// The committed sample data (`data-samples/`).
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples")
}

/// Ingest the committed sample pool (900 pairs) into `out`.
pub async fn ingest_sample_pool(out: &Path) -> IngestReport {
    let opts = IngestOptions {
        onevision: vec![samples().join("onevision.jsonl").display().to_string()],
        video: vec![samples().join("video.jsonl").display().to_string()],
        out: out.display().to_string(),
        ..IngestOptions::default()
    };
    ingest(&opts).await.expect("sample pool ingests")
}

/// Ingest the sample pool into `dir/pool` and open a session with it registered as `pool`.
pub async fn sample_pool_session(dir: &Path) -> datafusion::prelude::SessionContext {
    let pool = dir.join("pool");
    ingest_sample_pool(&pool).await;
    let ctx = new_context();
    register_table(&ctx, "pool", &pool.display().to_string()).await.expect("sample pool registers");
    ctx
}

/// Run SQL over the table at `pool` (registered as `pool`); the last statement's batches.
pub async fn query(pool: &Path, sql: &str) -> Vec<RecordBatch> {
    let ctx = new_context();
    register_table(&ctx, "pool", &pool.display().to_string()).await.expect("pool registers");
    let mut results = run_statements(&ctx, sql).await.expect("query runs");
    results.pop().expect("one result").batches
}

/// Write JSONL lines to a file.
pub fn write_lines(path: &Path, lines: &[&str]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write test input");
}

/// A small valid video row.
pub fn video_row(id: &str, video: &str, question: &str, answer: &str, frames: usize) -> String {
    let frames: Vec<String> = (0..frames).map(|i| format!("\"frames/{video}/{i:03}.jpg\"")).collect();
    format!(
        r#"{{"id":"{id}","video_id":"{video}","images":[{}],"messages":[{{"role":"user","content":"<video>\n{question}"}},{{"role":"assistant","content":"{answer}"}}],"data_source":"0_30_s_academic_v0_1"}}"#,
        frames.join(",")
    )
}

/// A small valid image row.
pub fn image_row(id: &str, question: &str, answer: &str) -> String {
    format!(
        r#"{{"id":"{id}","images":["images/{id}.jpg"],"messages":[{{"from":"human","value":"<image>\n{question}"}},{{"from":"gpt","value":"{answer}"}}],"data_source":"ai2d(cauldron,llava_format)"}}"#
    )
}

/// The `gdo` record of the newest commit of the Delta table at `table`
/// (`commitInfo.gdo`: kind, files with sha256 and rows, inputs, report).
pub fn last_commit(table: &Path) -> serde_json::Value {
    let log = table.join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    let text = std::fs::read_to_string(commits.last().expect("at least one commit")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("commitInfo").and_then(|c| c.get("gdo")).cloned())
        .expect("a gdo commit record")
}

/// The sha256 of the data files of the table's newest version, in part order.
pub fn data_sums(table: &Path) -> Vec<String> {
    last_commit(table)["files"].as_array().unwrap().iter().map(|f| f["sha256"].as_str().unwrap().to_owned()).collect()
}

/// Is there a committed table at `dir`?
pub fn has_table(dir: &Path) -> bool {
    dir.join("_delta_log").join("00000000000000000000.json").exists()
}

/// The test's Python, or None (a skip) when it lacks `modules` and nothing requires them.
pub fn python_with(modules: &str) -> Option<String> {
    let python = std::env::var("GDO_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python).args(["-c", &format!("import {modules}")]).status().is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("GDO_REQUIRE_PYARROW").is_none(),
        "{modules} required (GDO_REQUIRE_PYARROW is set) but {python} cannot import them"
    );
    eprintln!("SKIPPED: {python} lacks {modules} (scripts/test.sh installs them)");
    None
}

/// The sample pool, its cheap descriptors and their merged metrics (k = 8), as tables
/// `d/pool`, `d/descriptors`, `d/merged`.
pub async fn sample_metrics(d: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pool = d.join("pool");
    ingest_sample_pool(&pool).await;
    let descriptors = d.join("descriptors");
    run_ok(gdo().args(["describe", "--cheap-only", "--pool"]).arg(&pool).arg("--out").arg(&descriptors));
    let merged = d.join("merged");
    run_ok(gdo().args(["merge", "--cluster-k", "8", "--descriptors"]).arg(&descriptors).arg("--out").arg(&merged));
    (pool, descriptors, merged)
}
