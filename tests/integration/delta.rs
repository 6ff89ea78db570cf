//! Delta Lake tables under faults and concurrency: two writers, a reader during
//! rewrites, changed files, a re-ingested pool under a resumed describe, versions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use gdo::store::Location;
use gdo::table::{AsOf, TableWriter};

use crate::common::{gdo, image_row, run_ok, write_lines};
use crate::s3::{BUCKET, S3Server};

/// `n` image rows with ids `{prefix}{i}`.
fn pool_input(dir: &Path, prefix: &str, n: usize) -> PathBuf {
    let path = dir.join(format!("{prefix}.jsonl"));
    let rows: Vec<String> = (0..n)
        .map(|i| image_row(&format!("{prefix}{i}"), &format!("What is shown in {prefix} {i}?"), "a box"))
        .collect();
    write_lines(&path, &rows.iter().map(String::as_str).collect::<Vec<_>>());
    path
}

fn ingest(input: &Path, out: &Path) -> Command {
    let mut cmd = gdo();
    cmd.args(["ingest", "--rows-per-file", "500", "--onevision"]).arg(input).arg("--out").arg(out);
    cmd
}

fn count(out: &Output) -> Option<u64> {
    String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok())
}

fn sql_count(table: &str) -> Output {
    gdo().args(["sql", "--format", "csv", "--pool", table, "SELECT count(*) AS n FROM pool"]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn two_writers_into_one_table_leave_a_valid_table() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pool_input(dir.path(), "a", 3000), pool_input(dir.path(), "b", 2000));
    let table = dir.path().join("pool");
    run_ok(&mut ingest(&a, &table));
    let mut conflicts = 0;
    for round in 0..4 {
        let spawn = |input: &Path| ingest(input, &table).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (first, second) = (spawn(&a), spawn(&b));
        let (oa, ob) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
        let mut winners = Vec::new();
        for (o, rows) in [(&oa, 3000), (&ob, 2000)] {
            if o.status.success() {
                winners.push(rows);
            } else {
                assert!(text(o).contains("another writer committed version"), "round {round}: {}", text(o));
                conflicts += 1;
            }
        }
        assert!(!winners.is_empty(), "round {round}: one writer wins");
        let q = sql_count(table.to_str().unwrap());
        assert!(q.status.success(), "round {round}: {}", text(&q));
        let n = count(&q).unwrap();
        assert!(winners.contains(&n), "round {round}: {n} rows, winners wrote {winners:?}");
        run_ok(gdo().arg("verify").arg(&table));
    }
    // Started together, the two runs read the same version; only one can commit after it.
    assert!(conflicts >= 1, "no round produced a conflict");
}

fn one_column() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]))
}

async fn writer_with_rows(root: &Location, rows: i64) -> TableWriter {
    let mut w = TableWriter::open(root.clone(), "test").await.unwrap();
    let mut part = w.open_part(None, one_column()).unwrap();
    let batch = RecordBatch::try_new(one_column(), vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap();
    part.write(&batch).await.unwrap();
    w.add_part(None, part.finish().await.unwrap());
    w
}

/// Two writers that read one version: the first commit wins, the second fails naming
/// the version it lost to, and its file is gone.
async fn second_commit_loses(root: Location) {
    writer_with_rows(&root, 10).await.commit(serde_json::json!({})).await.unwrap();
    let first = writer_with_rows(&root, 100).await;
    let second = writer_with_rows(&root, 50).await;
    let loser_run = second.run_id().to_owned();
    assert_eq!(first.commit(serde_json::json!({})).await.unwrap().version, 1);
    let err = second.commit(serde_json::json!({})).await.unwrap_err().to_string();
    assert!(err.contains("another writer committed version 1"), "{err}");
    let snap = gdo::table::open(&root, &AsOf::Latest).await.unwrap().unwrap();
    assert_eq!((snap.version, snap.rows), (1, Some(100)));
    let loser_files = root.child(&format!("data/{loser_run}"));
    let left: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(loser_files.store.list(Some(&loser_files.path))).await.unwrap();
    assert!(left.is_empty(), "the losing run's files are removed: {left:?}");
    gdo::table::verify(&root, &AsOf::Latest).await.unwrap();
    // The version before is still readable.
    let old = gdo::table::open(&root, &AsOf::Version(0)).await.unwrap().unwrap();
    assert_eq!(old.rows, Some(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_commit_conflicts_locally() {
    let dir = tempfile::tempdir().unwrap();
    second_commit_loses(Location::parse(dir.path().join("t").to_str().unwrap()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_commit_conflicts_on_s3() {
    let server = S3Server::start();
    let root = Location {
        url: url::Url::parse(&format!("s3://{BUCKET}/tables/t")).unwrap(),
        store: Arc::new(server.store()),
        path: object_store::path::Path::from("tables/t"),
    };
    second_commit_loses(root).await;
}

#[test]
fn a_reader_during_rewrites_never_gets_a_wrong_count() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pool_input(dir.path(), "a", 1500), pool_input(dir.path(), "b", 1000));
    let table = dir.path().join("pool");
    run_ok(&mut ingest(&a, &table));
    let writer = {
        let table = table.clone();
        std::thread::spawn(move || {
            for i in 0..30 {
                run_ok(&mut ingest(if i % 2 == 0 { &b } else { &a }, &table));
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let q = sql_count(table.to_str().unwrap());
        assert!(q.status.success(), "read {reads} failed: {}", text(&q));
        let n = count(&q).unwrap();
        assert!(n == 1500 || n == 1000, "read {reads} counted {n}");
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads >= 5, "only {reads} reads overlapped the rewrites");
    let h = run_ok(gdo().args(["history", "--json"]).arg(&table));
    let versions: serde_json::Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 31);
}

/// The first data file of the newest version.
fn first_part(table: &Path) -> PathBuf {
    let rec = crate::common::last_commit(table);
    table.join(rec["files"][0]["path"].as_str().unwrap())
}

#[test]
fn verify_names_a_flipped_byte_and_a_swapped_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pool_input(dir.path(), "a", 1200), pool_input(dir.path(), "b", 700));
    let (table, other) = (dir.path().join("pool"), dir.path().join("other"));
    run_ok(&mut ingest(&a, &table));
    run_ok(&mut ingest(&b, &other));
    let o = run_ok(gdo().arg("verify").arg(&table));
    let files = crate::common::data_sums(&table).len() + 1; // and the rejects file
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{files} match their recorded sha256")),
        "{}",
        text(&o)
    );

    // Two bytes flipped inside the data pages: same size, other bytes.
    let part = first_part(&table);
    let original = std::fs::read(&part).unwrap();
    let mut flipped = original.clone();
    let mid = flipped.len() / 3;
    flipped[mid] ^= 0xFF;
    flipped[mid + 1] ^= 0x0F;
    std::fs::write(&part, &flipped).unwrap();
    let o = gdo().arg("verify").arg(&table).output().unwrap();
    assert!(!o.status.success());
    let err = text(&o);
    assert!(err.contains(part.to_str().unwrap()) && err.contains("sha256"), "{err}");

    // Swapped for another valid Parquet file: verify and every reader name it.
    std::fs::copy(first_part(&other), &part).unwrap();
    let o = gdo().arg("verify").arg(&table).output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains(part.to_str().unwrap()), "{}", text(&o));
    let q = sql_count(table.to_str().unwrap());
    assert!(!q.status.success(), "a reader must not count a swapped file's rows: {}", text(&q));
    assert!(text(&q).contains(part.to_str().unwrap()) && text(&q).contains("changed after commit"), "{}", text(&q));

    std::fs::write(&part, &original).unwrap();
    run_ok(gdo().arg("verify").arg(&table));
}

#[test]
fn versions_history_and_time_travel() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pool_input(dir.path(), "a", 600), pool_input(dir.path(), "b", 400));
    let table = dir.path().join("pool");
    run_ok(&mut ingest(&a, &table));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = run_ok(&mut ingest(&b, &table));
    assert!(text(&o).contains("version 1"), "ingest names the version it wrote: {}", text(&o));
    let t0 = format!("{}@{between}", table.display());
    assert_eq!(count(&sql_count(&t0)), Some(600), "the version current at {between}");
    let t = table.to_str().unwrap();
    assert_eq!(
        count(&run_ok(gdo().args(["sql", "--format", "csv", "--pool", t, "SELECT count(*) FROM pool"]))),
        Some(400)
    );
    let v0 = format!("{t}@v0");
    assert_eq!(count(&sql_count(&v0)), Some(600));
    let rejects = run_ok(gdo().args(["sql", "--format", "csv", "--pool", &v0, "SELECT count(*) FROM pool_rejects"]));
    assert_eq!(count(&rejects), Some(0));
    let o = run_ok(gdo().arg("history").arg(&table));
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(said.lines().count(), 3, "{said}");
    assert!(said.contains("b.jsonl") && said.contains("a.jsonl") && said.contains("WRITE"), "{said}");
    let missing = gdo().args(["sql", "--pool", &format!("{t}@v7"), "SELECT 1"]).output().unwrap();
    assert!(!missing.status.success());

    // A folder of tables is not a table: reading it would mix them and their versions.
    let other = dir.path().join("tables");
    run_ok(&mut ingest(&a, &other.join("first")));
    run_ok(&mut ingest(&b, &other.join("second")));
    let o = gdo().args(["sql", "--table"]).arg(format!("t={}", other.display())).arg("SELECT 1").output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("holds tables (first, second)"), "{}", text(&o));

    // A command never replaces a table of another kind.
    let o = gdo().args(["describe", "--cheap-only", "--pool", t, "--out", t]).output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("holds a pool table"), "{}", text(&o));
    assert_eq!(count(&sql_count(t)), Some(400), "the pool is untouched");
}

#[cfg(feature = "fault-injection")]
#[test]
fn describe_starts_fresh_on_a_reingested_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pool_input(dir.path(), "a", 400), pool_input(dir.path(), "b", 400));
    let (pool, out) = (dir.path().join("pool"), dir.path().join("descriptors"));
    // The synthetic rows name no real frames: every row fails, which --max-error-ratio 1
    // accepts.
    let describe = |extra: &[&str]| {
        let mut cmd = gdo();
        cmd.args(["describe", "--cheap-only", "--max-error-ratio", "1", "--chunk-size", "100", "--pool"])
            .arg(&pool)
            .arg("--out")
            .arg(&out);
        run_ok(cmd.args(extra))
    };
    run_ok(&mut ingest(&a, &pool));
    describe(&["--stop-after-chunks", "2"]);
    // Same path, same row count, other pairs.
    run_ok(&mut ingest(&b, &pool));
    let o = describe(&[]);
    assert!(text(&o).contains("starting afresh"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 chunks, 0 resumed"), "{}", text(&o));
    let q = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--pool"])
            .arg(&pool)
            .arg("--table")
            .arg(format!("d={}", out.display()))
            .arg("SELECT count(*) FROM d JOIN pool USING (qa_uid)"),
    );
    assert_eq!(count(&q), Some(400), "every described pair is in the pool");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("describe_report.json")).unwrap()).unwrap();
    assert_eq!(report["pool"]["version"], 1, "the report names the pool version read");
}
