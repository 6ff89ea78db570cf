//! Bad input: counted rejects in `pool_rejects`, or a clear one-line error.

use std::io::Write;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use crate::common::{gdo, has_table, image_row, run_ok, video_row, write_lines};

#[test]
fn every_bad_line_is_counted_and_kept_in_the_rejects_table() {
    let dir = tempfile::tempdir().unwrap();
    let ov = dir.path().join("ov.jsonl");
    let good1 = image_row("img1", "What colour is the square?", "red");
    let good2 = image_row("img2", "How many circles are there?", "three");
    let lines = [
        good1.as_str(),
        r#"{"id": "broken", "images": ["#, // invalid_json
        "",                                // blank
        r#"["not", "an", "object"]"#,      // not_object
        r#"{"id":"e","images":[],"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#, // no_images
        r#"{"id":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#, // no_images
        r#"{"id":"t","images":["a.jpg"],"messages":"oops"}"#,                                          // bad_field_type
        r#"{"id":"n","images":["a.jpg"],"messages":[{"role":"user","content":"only a question"}]}"#,   // no_qa_pair
        good2.as_str(),
    ];
    write_lines(&ov, &lines);
    // one line of invalid UTF-8
    std::fs::OpenOptions::new().append(true).open(&ov).unwrap().write_all(b"{\"id\": \"\xff\xfe\"}\n").unwrap();

    let out = dir.path().join("pool");
    let o = run_ok(gdo().args(["ingest", "--max-reject-ratio", "0.9", "--onevision"]).arg(&ov).arg("--out").arg(&out));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("ingested 2 pairs"), "{stdout}");
    assert!(stdout.contains("rejected 7 line(s)"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("ingest_report.json")).unwrap()).unwrap();
    let by_reason = &report["rejected_by_reason"];
    assert_eq!(by_reason["invalid_json"], 1);
    assert_eq!(by_reason["not_object"], 1);
    assert_eq!(by_reason["no_images"], 2);
    assert_eq!(by_reason["bad_field_type"], 1);
    assert_eq!(by_reason["no_qa_pair"], 1);
    assert_eq!(by_reason["invalid_utf8"], 1);
    assert_eq!(report["blank_lines"], 1);
    assert_eq!(report["lines"], 10);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let rejects = rt.block_on(async {
        let ctx = gdo::session::new_context();
        gdo::session::register_table(&ctx, "pool", &out.display().to_string()).await.unwrap();
        let r = gdo::sql::run_statements(
            &ctx,
            "SELECT source_line, reason, raw_prefix FROM pool_rejects ORDER BY source_line",
        )
        .await
        .unwrap();
        r.into_iter().last().unwrap().batches
    });
    let mut seen = Vec::new();
    for b in &rejects {
        let line = b.column(0).as_primitive::<Int64Type>();
        let reason =
            datafusion::arrow::compute::cast(b.column(1), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        for i in 0..b.num_rows() {
            seen.push((line.value(i), reason.as_string::<i32>().value(i).to_owned()));
        }
    }
    let want: Vec<(i64, String)> = [
        (2, "invalid_json"),
        (4, "not_object"),
        (5, "no_images"),
        (6, "no_images"),
        (7, "bad_field_type"),
        (8, "no_qa_pair"),
        (10, "invalid_utf8"),
    ]
    .iter()
    .map(|(l, r)| (*l, (*r).to_owned()))
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn too_many_rejects_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ov = dir.path().join("ov.jsonl");
    let good = image_row("ok", "q?", "a");
    write_lines(&ov, &[&good, "{bad", "{bad", "{bad"]);
    let out = dir.path().join("pool");
    let o = gdo().args(["ingest", "--onevision"]).arg(&ov).arg("--out").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 of 4 lines rejected (75.00%), above --max-reject-ratio 0.5"), "{err}");
    assert!(err.contains("invalid_json 3"), "{err}");
    assert!(!has_table(&out), "no table after a refused ingest");
    // and an explicit ratio accepts it
    run_ok(gdo().args(["ingest", "--max-reject-ratio", "0.8", "--onevision"]).arg(&ov).arg("--out").arg(&out));
    assert!(has_table(&out));
}

#[test]
fn missing_input_is_one_line_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let o = gdo().args(["ingest", "--video"]).arg(&missing).arg("--out").arg(dir.path().join("pool")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not found") && err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn gzip_input_and_corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let v = video_row("v1", "clip1", "What happens after the ball drops?", "it bounces", 40);
    let gz = dir.path().join("video.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(format!("{v}\n").as_bytes()).unwrap();
    enc.finish().unwrap();
    let out = dir.path().join("pool");
    let o = run_ok(gdo().args(["ingest", "--video"]).arg(&gz).arg("--out").arg(&out));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ingested 1 pairs"));

    // a gzip file cut in half: a clear error naming the file, and no table
    let bytes = std::fs::read(&gz).unwrap();
    let cut = dir.path().join("cut.jsonl.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out2 = dir.path().join("pool2");
    let o = gdo().args(["ingest", "--video"]).arg(&cut).arg("--out").arg(&out2).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.jsonl.gz"), "{err}");
    assert!(!has_table(&out2));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = gdo().args(["ingest", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to ingest"));
    let o = gdo().args(["sql", "--pool"]).arg(dir.path().join("absent")).arg("SELECT 1").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no table"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_overlong_line_is_a_counted_reject() {
    let dir = tempfile::tempdir().unwrap();
    let ov = dir.path().join("ov.jsonl");
    let good = image_row("ok", "What is it?", "a box");
    // A 3 MB JSON array on one line, as a runaway export writes.
    let huge = format!("[{}]", vec!["1"; 1_500_000].join(","));
    write_lines(&ov, &[&good, &huge, &good.replace("\"ok\"", "\"ok2\"")]);
    let out = dir.path().join("pool");
    let o =
        run_ok(gdo().args(["ingest", "--max-line-bytes", "1000000", "--onevision"]).arg(&ov).arg("--out").arg(&out));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("ingested 2 pairs") && said.contains("line_too_long 1"), "{said}");
    let q = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--pool"])
            .arg(&out)
            .arg("SELECT source_line, reason, length(raw_prefix) <= 256 AS short FROM pool_rejects"),
    );
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "source_line,reason,short\n2,line_too_long,true");
}

/// A folder's `.json` files are read as JSON lines; a JSON array there (as LLaVA's own
/// `.json` files are) stops ingest with what it is, not a flood of rejects.
#[test]
fn a_json_array_file_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let row = image_row("ok", "What is it?", "a box");
    std::fs::write(raw.join("llava.json"), format!("[\n{row},\n{row}\n]\n")).unwrap();
    let o = gdo().args(["ingest", "--onevision"]).arg(&raw).arg("--out").arg(dir.path().join("pool")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("llava.json is a JSON array, not JSON lines") && err.contains("jq -c"), "{err}");
    // As JSON lines under the same name it ingests.
    std::fs::write(raw.join("llava.json"), format!("{row}\n")).unwrap();
    let o = run_ok(gdo().args(["ingest", "--onevision"]).arg(&raw).arg("--out").arg(dir.path().join("pool")));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ingested 1 pairs"));
}
