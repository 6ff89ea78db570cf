//! The pool's Parquet is read by an outside client (pyarrow) with the same rows and schema.

use std::process::Command;

use crate::common::{ingest_reference_pool, query};

#[tokio::test(flavor = "multi_thread")]
async fn pyarrow_reads_the_pool() {
    let python = std::env::var("GDO_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_pyarrow = Command::new(&python).args(["-c", "import pyarrow"]).status().is_ok_and(|s| s.success());
    if !has_pyarrow {
        assert!(
            std::env::var_os("GDO_REQUIRE_PYARROW").is_none(),
            "pyarrow is required (GDO_REQUIRE_PYARROW is set) but {python} cannot import it"
        );
        eprintln!("SKIPPED pyarrow_reads_the_pool: {python} has no pyarrow (scripts/test.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let script = r#"
import json, sys, pyarrow.parquet as pq, pyarrow as pa
root = sys.argv[1]
m = json.load(open(root + "/_gdo_table.json"))
t = pa.concat_tables([pq.read_table(root + "/" + f["path"]) for f in m["files"]])
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
