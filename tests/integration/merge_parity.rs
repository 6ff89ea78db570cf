//! `gdo merge` against the reference's merge output (`merge-reference` fixture):
//! robust statistics, SC fallback and quality score with the reference's cluster
//! scores, our k-means, the CLI end to end, and bad input.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use gdo::merge::{
    DescriptorRow, DescriptorStream, MergeOptions, MergeReport, StatsAccumulator, merge, resolve_inputs, score_row,
};
use serde_json::Value;

use datafusion::arrow::record_batch::RecordBatch;
use gdo::session::{new_context, register_table};
use gdo::sql::run_statements;

use crate::common::{data_sums, fixtures, gdo, run_ok};

fn reference() -> PathBuf {
    fixtures().join("merge-reference")
}

fn read_gz_lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The reference's merged rows by qa_uid.
fn reference_merged() -> HashMap<String, Value> {
    read_gz_lines(&reference().join("merged.jsonl.gz"))
        .into_iter()
        .map(|v| (v["qa_uid"].as_str().unwrap().to_owned(), v["data_quality_metrics"].clone()))
        .collect()
}

async fn fixture_rows() -> Vec<DescriptorRow> {
    let inputs = resolve_inputs(&[reference().display().to_string()]).await.unwrap();
    assert_eq!(inputs.len(), 2, "both shards found");
    let mut stream = DescriptorStream::new(&inputs, 1000);
    let mut rows = Vec::new();
    while let Some(chunk) = stream.next_chunk().await.unwrap() {
        assert_eq!(chunk.counts.bad_rows, 0);
        rows.extend(chunk.rows);
    }
    rows
}

fn rel_err(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { (a - b).abs() / b.abs().max(1e-300) }
}

#[tokio::test(flavor = "multi_thread")]
async fn robust_stats_sc_fallback_and_quality_match_the_reference() {
    let rows = fixture_rows().await;
    assert_eq!(rows.len(), 3000);
    let mut acc = StatsAccumulator::new(42);
    rows.iter().for_each(|r| acc.push(r));
    let stats = acc.finish();
    let report: Value = serde_json::from_slice(&std::fs::read(reference().join("merge_report.json")).unwrap()).unwrap();
    let ours = [
        ("vds", stats.vds),
        ("ppl", stats.ppl),
        ("amm", stats.amm),
        ("frame_div", stats.frame_div),
        ("self_consistency", stats.self_consistency),
    ];
    let mut max_rel = 0.0f64;
    for (key, r) in ours {
        for (what, v) in [("center", r.center), ("scale", r.scale)] {
            let want = report[format!("{key}_{what}")].as_f64().unwrap();
            let e = rel_err(v, want);
            assert!(e <= 1e-6, "{key}_{what}: ours {v}, reference {want}");
            max_rel = max_rel.max(e);
        }
    }
    println!("robust centres/scales: max relative error {max_rel:e}");

    // With the reference's cluster_score per row, SC and quality_score are the method's.
    let merged = reference_merged();
    let (mut max_q, mut max_sc, mut fallbacks) = (0.0f64, 0.0f64, 0);
    for row in &rows {
        let want = &merged[&row.qa_uid];
        let rep = want["cluster_score"].as_f64().unwrap();
        // Any distance with exp(-d) = rep: score_row takes the distance.
        let s = score_row(&stats, row, 0, -rep.ln());
        assert!((s.cluster_score - rep).abs() < 1e-15);
        let dq = (s.quality_score - want["quality_score"].as_f64().unwrap()).abs();
        let dsc = (s.self_consistency - want["self_consistency"].as_f64().unwrap()).abs();
        assert!(dq <= 1e-8 && dsc <= 1e-8, "{}: quality off by {dq:e}, SC off by {dsc:e}", row.qa_uid);
        max_q = max_q.max(dq);
        max_sc = max_sc.max(dsc);
        fallbacks += usize::from(row.self_consistency < 0.0);
    }
    // About 30% of the fixture's rows have SC = -1: the fallback is exercised.
    assert!(fallbacks > 800, "{fallbacks}");
    println!(
        "quality_score: max abs error {max_q:e}; SC after fallback: max abs error {max_sc:e} ({fallbacks} fallbacks)"
    );
}

async fn run_merge(descriptors: &Path, out: &Path, seed: u64) -> MergeReport {
    let opts = MergeOptions {
        descriptors: vec![descriptors.display().to_string()],
        out: out.display().to_string(),
        cluster_k: 64,
        seed,
        ..MergeOptions::default()
    };
    merge(&opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kmeans_is_deterministic_and_as_tight_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let ra = run_merge(&reference(), &a, 42).await;
    let rb = run_merge(&reference(), &b, 42).await;
    run_merge(&reference(), &c, 7).await;
    assert_eq!((ra.rows_written, ra.cluster_k, ra.rows_fit), (3000, 64, 3000));
    assert_eq!(data_sums(&a), data_sums(&b), "same seed, same bytes");
    assert_ne!(data_sums(&a), data_sums(&c), "the seed is used");
    assert_eq!(ra.kmeans_mean_dist, rb.kmeans_mean_dist);

    let merged = reference_merged();
    let ref_mean = merged.values().map(|v| v["cluster_dist"].as_f64().unwrap()).sum::<f64>() / merged.len() as f64;
    println!("k-means (k=64, seed 42) mean distance: ours {:.6}, reference {ref_mean:.6}", ra.kmeans_mean_dist);
    assert!(ra.kmeans_mean_dist <= 1.1 * ref_mean, "ours {} vs reference {ref_mean}", ra.kmeans_mean_dist);

    // The table agrees with its report and with the definitions of score and hardness.
    let batches = query_table(
        &a,
        "SELECT count(*) AS n, count(DISTINCT qa_uid) AS u, count(DISTINCT cluster_id) AS k, \
         avg(cluster_dist) AS mean_dist, max(abs(cluster_score - exp(-cluster_dist))) AS e1, \
         max(abs(cluster_hardness + cluster_score - 1)) AS e2, min(self_consistency) AS sc_min, \
         sum(CASE WHEN loss_video IS NULL THEN 1 ELSE 0 END) AS failed FROM t",
    )
    .await;
    let row = first_row_json(&batches);
    assert_eq!((row["n"].as_i64(), row["u"].as_i64(), row["k"].as_i64()), (Some(3000), Some(3000), Some(64)));
    assert!((row["mean_dist"].as_f64().unwrap() - ra.kmeans_mean_dist).abs() < 1e-9);
    assert!(row["e1"].as_f64().unwrap() < 1e-15 && row["e2"].as_f64().unwrap() < 1e-15, "{row}");
    assert!(row["sc_min"].as_f64().unwrap() >= 0.0, "no SC left negative: {row}");
    // The fixture's failed rows (about 2%) keep null losses.
    assert!((30..100).contains(&row["failed"].as_i64().unwrap()), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_descriptors_merge_like_the_jsonl_shards() {
    let dir = tempfile::tempdir().unwrap();
    let rows = fixture_rows().await;
    // The descriptor contract, as `gdo describe` writes it, in a plain Parquet file.
    let batch = gdo::merge::input::descriptor_batch(&rows).unwrap();
    let file = dir.path().join("descriptors.parquet");
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), batch.schema(), None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let (from_parquet, from_jsonl) = (dir.path().join("p"), dir.path().join("j"));
    run_merge(&file, &from_parquet, 42).await;
    run_merge(&reference(), &from_jsonl, 42).await;
    assert_eq!(data_sums(&from_parquet), data_sums(&from_jsonl));
}

#[test]
fn cli_end_to_end_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let o = run_ok(
        gdo().arg("merge").arg("--descriptors").arg(reference()).arg("--out").arg(&out).args(["--cluster-k", "64"]),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("merged 3000 rows from 2 input(s)") && stdout.contains("k=64"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("merge_report.json")).unwrap()).unwrap();
    assert_eq!(report["rows_written"], 3000);
    let o = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--table"])
            .arg(format!("m={}", out.display()))
            .arg("SELECT count(*) AS n, min(quality_score) > 0 AS pos, max(quality_score) < 1 AS lt1 FROM m"),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n,pos,lt1\n3000,true,true\n");
    // A file-name pattern takes the shards it matches: here rank 0's 1,500 rows.
    let pattern = format!("{}/sixd_metrics_rank*0.jsonl.gz", reference().display());
    let o = run_ok(
        gdo().args(["merge", "--descriptors", &pattern, "--cluster-k", "8", "--out"]).arg(dir.path().join("r0")),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("merged 1500 rows from 1 input(s)"), "{stdout}");

    // A missing file: one clear line naming it, nothing written.
    let missing = dir.path().join("nope.jsonl.gz");
    let o =
        gdo().arg("merge").arg("--descriptors").arg(&missing).arg("--out").arg(dir.path().join("x")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error: not found") && err.contains("nope.jsonl.gz"), "{err}");
    assert!(!dir.path().join("x").exists());
    // A folder without descriptors.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o =
        gdo().arg("merge").arg("--descriptors").arg(&empty).arg("--out").arg(dir.path().join("x")).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("no JSONL shards"), "{}", String::from_utf8_lossy(&o.stderr));

    // Garbage, a row without qa_uid, a blank line and a duplicate: counted, not fatal;
    // the later duplicate wins.
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(reference().join("sixd_metrics_rank0000.jsonl.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<String> = text.lines().take(20).map(str::to_owned).collect();
    let mut dup: Value = serde_json::from_str(&lines[0]).unwrap();
    dup["data_quality_metrics"]["vds"] = Value::from(9.5);
    lines.push("{garbage".into());
    lines.push(r#"{"data_quality_metrics":{"vds":1.0}}"#.into());
    lines.push(String::new());
    lines.push(dup.to_string());
    let input = dir.path().join("sixd_metrics_rank0000.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("bad");
    let o = run_ok(
        gdo()
            .arg("merge")
            .arg("--descriptors")
            .arg(dir.path().join("sixd_metrics_rank0000.jsonl"))
            .arg("--out")
            .arg(&out)
            .args(["--cluster-k", "4"]),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("2 bad row(s) skipped (invalid_json 1, missing_qa_uid 1)")
            && stdout.contains("1 duplicate qa_uid"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("merge_report.json")).unwrap()).unwrap();
    assert_eq!((report["rows_scanned"].as_u64(), report["rows_written"].as_u64()), (Some(23), Some(20)));
    assert_eq!(
        (report["duplicate_qa_uids"].as_u64(), report["blank_lines"].as_u64(), report["passes"].as_u64()),
        (Some(1), Some(1), Some(3))
    );
    let o = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--table"])
            .arg(format!("m={}", out.display()))
            .arg("SELECT vds FROM m WHERE qa_uid = 'ov::row0::t0'"),
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "vds\n9.5\n");
    // Nothing but garbage is an error, not an empty table.
    std::fs::write(&input, "{garbage\n[1]\n").unwrap();
    let o =
        gdo().arg("merge").arg("--descriptors").arg(&input).arg("--out").arg(dir.path().join("y")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no valid descriptor rows") && err.contains("invalid_json 1, not_an_object 1"), "{err}");
}

/// Run SQL over the table at `table` (registered as `t`); the last statement's batches.
pub async fn query_table(table: &Path, sql: &str) -> Vec<RecordBatch> {
    let ctx = new_context();
    register_table(&ctx, "t", &table.display().to_string()).await.expect("table registers");
    let mut results = run_statements(&ctx, sql).await.expect("query runs");
    results.pop().expect("one result").batches
}

/// The first row of a result as a JSON object.
pub fn first_row_json(batches: &[RecordBatch]) -> serde_json::Value {
    let mut out = Vec::new();
    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
    w.write_batches(&batches.iter().collect::<Vec<_>>()).expect("rows to json");
    w.finish().expect("json");
    let text = String::from_utf8(out).expect("utf8");
    serde_json::from_str(text.lines().next().expect("one row")).expect("json row")
}
