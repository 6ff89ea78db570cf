//! gdo's tables read by outside clients: Python's `deltalake` (delta-rs) and Polars get
//! exactly the rows `gdo sql` counts, for every kind of table gdo writes (pool, rejects,
//! descriptors, merged metrics, a SQL result, the two subsets, training metrics);
//! pyarrow reads the pool's data files with the pool's schema; `gdo export` writes
//! plain files.

use std::path::Path;
use std::process::Command;

use crate::common::{gdo, ingest_reference_pool, python_with, query, run_ok, sample_metrics};

#[tokio::test(flavor = "multi_thread")]
async fn pyarrow_reads_the_pool() {
    let Some(python) = python_with("pyarrow, deltalake") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let script = r#"
import json, sys, deltalake, pyarrow.parquet as pq, pyarrow as pa
root = sys.argv[1]
files = deltalake.DeltaTable(root).file_uris()
t = pa.concat_tables([pq.read_table(f) for f in sorted(files)])
print(json.dumps({"rows": t.num_rows, "schema": [[f.name, str(f.type)] for f in t.schema],
                  "first": t.column("qa_uid")[0].as_py(), "last": t.column("qa_uid")[t.num_rows - 1].as_py()}))
"#;
    let out = Command::new(&python).arg("-c").arg(script).arg(&pool).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["rows"], 18_358);
    let names: Vec<String> =
        got["schema"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap().to_owned()).collect();
    let ours: Vec<String> = gdo::pool::POOL_SCHEMA.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ours);
    let types: Vec<&str> = got["schema"].as_array().unwrap().iter().map(|f| f[1].as_str().unwrap()).collect();
    assert_eq!(types[0], "int64");
    assert_eq!(types[1], "string");
    assert!(types[7].starts_with("list<"), "{}", types[7]);
    let batches = query(&pool, "SELECT qa_uid FROM pool ORDER BY pool_index LIMIT 1").await;
    let first =
        datafusion::arrow::compute::cast(batches[0].column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
    use datafusion::arrow::array::AsArray;
    assert_eq!(got["first"].as_str().unwrap(), first.as_string::<i32>().value(0));
    assert!(got["last"].as_str().unwrap().starts_with("vv::"));
}

/// Rows of `table` as `gdo sql` counts them.
fn gdo_count(table: &Path) -> u64 {
    let o = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--table"])
            .arg(format!("t={}", table.display()))
            .arg("SELECT count(*) AS n FROM t"),
    );
    String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deltalake_and_polars_read_every_kind_of_table() {
    let Some(python) = python_with("deltalake, polars") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pool, descriptors, merged) = sample_metrics(d).await;
    let result = d.join("result");
    run_ok(
        gdo()
            .args(["sql", "--pool"])
            .arg(&pool)
            .args(["--format", "parquet", "--out"])
            .arg(&result)
            .arg("SELECT bucket, count(*) AS n FROM pool GROUP BY bucket ORDER BY bucket"),
    );
    let subsets = d.join("subsets");
    run_ok(
        gdo()
            .args(["select", "--goal", "temp_plus", "--count", "40", "--pool"])
            .arg(&pool)
            .arg("--metrics")
            .arg(&merged)
            .arg("--out")
            .arg(&subsets),
    );
    let run = d.join("run");
    run_ok(gdo().arg("train").arg("--table").arg(subsets.join("gdo_1x")).args(["--epochs", "1", "--out"]).arg(&run));
    let tables = [
        pool.clone(),
        pool.join("_rejects"),
        descriptors,
        merged,
        result,
        subsets.join("gdo_1x"),
        subsets.join("uni_10x"),
        run.join("metrics"),
    ];
    let script = r#"
import json, sys, deltalake, polars as pl
out = {}
for root in sys.argv[1:]:
    dt = deltalake.DeltaTable(root)
    out[root] = {"deltalake": dt.to_pyarrow_table().num_rows, "polars": pl.read_delta(root).height,
                 "kind": dt.metadata().configuration.get("gdo.kind")}
print(json.dumps(out))
"#;
    let out = Command::new(&python).arg("-c").arg(script).args(&tables).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds = ["pool", "pool_rejects", "descriptors", "merged", "sql_result", "subset", "subset", "training_metrics"];
    for (table, kind) in tables.iter().zip(kinds) {
        let want = gdo_count(table);
        let g = &got[table.to_str().unwrap()];
        assert_eq!(g["deltalake"], want, "{}: {g}", table.display());
        assert_eq!(g["polars"], want, "{}: {g}", table.display());
        assert_eq!(g["kind"], kind, "{}: {g}", table.display());
    }
    assert_eq!(gdo_count(&tables[0]), 900);
    assert_eq!(gdo_count(&tables[5]), 40);
    // Commits name what their run read: the subsets the pool version, the training
    // metrics the subset version.
    let subset = crate::common::last_commit(&tables[5]);
    assert_eq!(subset["inputs"]["pool"]["version"], 0, "{subset}");
    let metrics = crate::common::last_commit(&tables[7]);
    assert_eq!(metrics["inputs"]["train_input"]["version"], 0, "{metrics}");
    assert!(metrics["inputs"]["train_input"]["path"].as_str().unwrap().ends_with("gdo_1x"), "{metrics}");

    // `gdo export`: plain files for readers without Delta support, rows in table order.
    let parquet = d.join("export-parquet");
    let o = run_ok(gdo().arg("export").arg(format!("{}@v0", pool.display())).arg("--out").arg(&parquet));
    assert!(String::from_utf8_lossy(&o.stdout).contains("exported 900 rows"), "{}", String::from_utf8_lossy(&o.stdout));
    let script = r#"
import sys, glob, pyarrow.parquet as pq, pyarrow as pa
t = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(sys.argv[1] + "/*.parquet"))])
idx = t.column("pool_index").to_pylist()
print(t.num_rows, idx == sorted(idx))
"#;
    let o = Command::new(&python).arg("-c").arg(script).arg(&parquet).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "900 True", "{}", String::from_utf8_lossy(&o.stderr));
    let jsonl = d.join("export-jsonl");
    run_ok(gdo().arg("export").arg(&pool).args(["--format", "jsonl", "--out"]).arg(&jsonl));
    let lines: usize = std::fs::read_dir(&jsonl)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 900);
    let o = gdo().arg("export").arg(&pool).arg("--out").arg(&tables[3]).output().unwrap();
    assert!(!o.status.success(), "export never writes into a table");
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds a table"), "{}", String::from_utf8_lossy(&o.stderr));
}
