//! `gdo sql`: formats, shipped queries, gdo functions, other tables, errors.

use std::path::Path;

use crate::common::{gdo, image_row, run_ok, video_row, write_lines};

fn small_pool(dir: &Path) -> std::path::PathBuf {
    let ov = dir.join("ov.jsonl");
    let video = dir.join("video.jsonl");
    write_lines(
        &ov,
        &[
            &image_row("a", "What colour is it?", "red"),
            &image_row("b", "Which shape? Choices: A. circle B. square", "A"),
            "{oops",
        ],
    );
    let vids: Vec<String> = (0..10)
        .map(|i| {
            video_row(&format!("v{i}"), "clipX", &format!("What happens first in scene {i}?"), "a car turns left", 12)
        })
        .collect();
    write_lines(&video, &vids.iter().map(String::as_str).collect::<Vec<_>>());
    let out = dir.join("pool");
    run_ok(gdo().args(["ingest", "--onevision"]).arg(&ov).arg("--video").arg(&video).arg("--out").arg(&out));
    out
}

fn sql(pool: &Path, args: &[&str]) -> String {
    let o = run_ok(gdo().arg("sql").arg("--pool").arg(pool).args(args));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn formats_and_functions() {
    let dir = tempfile::tempdir().unwrap();
    let pool = small_pool(dir.path());
    let q = "SELECT qa_uid, question_form, tnc_regex(question) AS tnc, token_count(answer) AS a, source_group(data_source) AS g \
             FROM pool WHERE qa_uid IN ('ov::b::t0', 'vv::v3::t0') ORDER BY qa_uid";
    let table = sql(&pool, &[q]);
    assert!(table.lines().any(|l| l.contains("| ov::b::t0 ") && l.contains("| MCQ ")), "{table}");
    assert!(table.lines().next().unwrap().starts_with('+'), "aligned table: {table}");
    let csv = sql(&pool, &["--format", "csv", q]);
    assert_eq!(csv, "qa_uid,question_form,tnc,a,g\nov::b::t0,MCQ,0.0,1,ai2d\nvv::v3::t0,Open,1.0,4,0_30_s_academic\n");
    let json = sql(&pool, &["--format", "json", q]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["qa_uid"], "ov::b::t0");
    assert_eq!(first["tnc"], 0.0);

    // Parquet out, as a gdo table folder and as one file; both readable again.
    let folder = dir.path().join("res");
    run_ok(gdo().args(["sql", "--format", "parquet", "--out"]).arg(&folder).arg("--pool").arg(&pool).arg(q));
    let file = dir.path().join("res.parquet");
    run_ok(gdo().args(["sql", "--format", "parquet", "--out"]).arg(&file).arg("--pool").arg(&pool).arg(q));
    let back = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--table"])
            .arg(format!("r={}", folder.display()))
            .arg("--table")
            .arg(format!("f={}", file.display()))
            .arg("SELECT (SELECT count(*) FROM r) AS r, (SELECT count(*) FROM f) AS f"),
    );
    assert_eq!(String::from_utf8_lossy(&back.stdout), "r,f\n2,2\n");
    // CSV to a file
    let csv_out = dir.path().join("out.csv");
    run_ok(gdo().args(["sql", "--format", "csv", "--out"]).arg(&csv_out).arg("--pool").arg(&pool).arg(q));
    assert_eq!(std::fs::read_to_string(&csv_out).unwrap(), csv);

    // A file-name pattern registers the Parquet files it matches (here `res.parquet`;
    // the folder `res` is not a file); one matching anything else is refused.
    let matched = run_ok(
        gdo()
            .args(["sql", "--format", "csv", "--table"])
            .arg(format!("p={}/re*.parquet", dir.path().display()))
            .arg("SELECT count(*) AS n FROM p"),
    );
    assert_eq!(String::from_utf8_lossy(&matched.stdout), "n\n2\n");
    let o =
        gdo().args(["sql", "--table"]).arg(format!("p={}/*s*", dir.path().display())).arg("SELECT 1").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("out.csv") && err.contains("not a .parquet file"), "{err}");
}

#[test]
fn shipped_audit_queries_run() {
    let dir = tempfile::tempdir().unwrap();
    let pool = small_pool(dir.path());
    let list = String::from_utf8(run_ok(gdo().args(["sql", "--list-queries"])).stdout).unwrap();
    for q in gdo::queries::AUDIT {
        assert!(list.contains(q.name), "{list}");
        let out = sql(&pool, &["--format", "csv", "--query", q.name]);
        assert!(out.lines().count() >= 2, "{}: {out}", q.name);
    }
    let per_video = sql(&pool, &["--format", "csv", "--query", "pairs_per_video"]);
    assert_eq!(per_video, "pairs_per_video,videos,over_cap,example_video_uid\n10,1,true,clipX\n");
    let rejects = sql(&pool, &["--format", "csv", "--query", "rejects"]);
    assert!(rejects.contains("invalid_json,1,3,"), "{rejects}");
    // --file runs the same text from disk
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/audit/pairs_per_video.sql");
    let from_file = sql(&pool, &["--format", "csv", "--file", path.to_str().unwrap()]);
    assert_eq!(from_file, per_video);
}

/// docs/sql-functions.md is the generated reference, and every function and operator
/// in it has its own sqllogictest file.
#[test]
fn sql_reference_page_is_current_and_every_function_has_an_slt_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let markdown =
        String::from_utf8(run_ok(gdo().args(["sql", "--help-functions", "--format", "markdown"])).stdout).unwrap();
    let page = std::fs::read_to_string(root.join("docs/sql-functions.md")).unwrap();
    assert!(
        page == markdown,
        "docs/sql-functions.md is stale: regenerate it with\n  cargo run -- sql --help-functions --format markdown > docs/sql-functions.md"
    );
    let names: Vec<&str> = markdown.lines().filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`')).collect();
    assert!(names.len() >= 14 && names.contains(&"goal_select") && names.contains(&"uni_sample"), "{names:?}");
    let missing: Vec<&&str> = names.iter().filter(|n| !root.join(format!("tests/sql/{n}.slt")).exists()).collect();
    assert!(missing.is_empty(), "no tests/sql/NAME.slt for {missing:?}");
}

#[test]
fn function_reference_and_errors() {
    let help = String::from_utf8(run_ok(gdo().args(["sql", "--help-functions"])).stdout).unwrap();
    for f in [
        "tnc_regex(question)",
        "source_group(data_source)",
        "token_count(text)",
        "gdo_norm(text)",
        "gdo_fold(key, folds)",
    ] {
        assert!(help.contains(f), "{help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = small_pool(dir.path());
    let o = gdo().arg("sql").arg("--pool").arg(&pool).arg("SELEC nonsense").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error:") && err.to_lowercase().contains("sql"), "{err}");
    let o = gdo().arg("sql").arg("--pool").arg(&pool).arg("SELECT * FROM nope").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
    let o = gdo().args(["sql", "--table", "x", "SELECT 1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("NAME=PATH"));
    let o = gdo().args(["sql", "--format", "csv", "SELECT gdo_fold('clip052', 7) AS f"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "f\n1\n", "pinned fold of a key");
    let o = gdo().args(["sql", "SELECT gdo_fold('a', 0)"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("folds must be an integer of at least 1"));
    let o = gdo().args(["sql", "--query", "nope"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--list-queries"));
}

/// `54.2 [50.1, 58.3]` (and ` ±2.1` over several seeds), as the report prints a stat.
fn stat_cell(s: &serde_json::Value) -> String {
    let p = |k: &str| format!("{:.1}", 100.0 * s[k].as_f64().unwrap());
    let mut out = format!("{} [{}, {}]", p("accuracy"), p("lo"), p("hi"));
    if !s["sd"].is_null() {
        out.push_str(&format!(" ±{}", p("sd")));
    }
    out
}

fn paper_name(name: &str) -> &str {
    match name {
        "minloss" => "MinLoss",
        "diverse" => "Diverse",
        "temp" => "Temp",
        "temp_plus" => "Temp+",
        "uni_10x" => "Uni-10x",
        other => other,
    }
}

/// The Markdown table rows (cells trimmed) under the first heading that starts with `title`.
fn md_rows(report: &str, title: &str) -> Vec<Vec<String>> {
    let at = report.find(title).unwrap_or_else(|| panic!("no '{title}' in {report}"));
    report[at..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

#[test]
fn demo_quick_report_matches_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = run_ok(gdo().arg("demo").arg("--quick").arg("--out").arg(&out));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("[9/9] write the report") && stdout.contains("report: "), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("demo_summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seeds"], serde_json::json!([7]));
    for (split, n) in summary["data"]["bench_questions"].as_array().unwrap().iter().map(|v| (&v[0], &v[1])) {
        assert_eq!(n, 100, "{split}");
    }
    // The conclusion is the summary's, sentence for sentence.
    let sentences = summary["conclusion"]["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 3, "{sentences:?}");
    for s in sentences {
        assert!(report.contains(&format!("- {}", s.as_str().unwrap())), "{s} not in the report");
    }
    // Chance and the base model.
    let levels = md_rows(&report, "### Chance and the base model");
    assert_eq!(levels.len(), 4);
    for (row, (chance, base)) in levels
        .iter()
        .zip(summary["chance"].as_array().unwrap().iter().zip(summary["base_accuracy"].as_array().unwrap()))
    {
        assert_eq!(row[0], chance[0].as_str().unwrap());
        assert_eq!(row[1], format!("{:.1}", 100.0 * chance[1].as_f64().unwrap()));
        assert_eq!(row[2], format!("{:.1}", 100.0 * base[1].as_f64().unwrap()));
    }
    // Both pools: every number of both tables equals the summary's.
    let pools = summary["pools"].as_array().unwrap();
    assert_eq!(pools.iter().map(|p| p["pool"].as_str().unwrap()).collect::<Vec<_>>(), ["pool", "clean"]);
    for p in pools {
        let label = p["label"].as_str().unwrap();
        let t = &p["tables"];
        let rows = md_rows(&report, &format!("### Table 1 ({label})"));
        let per_split = t["per_split"].as_array().unwrap();
        assert_eq!(rows.len(), per_split.len());
        for (row, r) in rows.iter().zip(per_split) {
            let best =
                format!("{} ({})", stat_cell(&r["best_goal_stat"]), paper_name(r["best_goal"].as_str().unwrap()));
            let to_match = r["samples_to_match"].as_u64().map_or("never".to_owned(), |s| s.to_string());
            let expected = [
                r["split"].as_str().unwrap().to_owned(),
                stat_cell(&r["uni"]),
                best,
                format!("{:+.1}", 100.0 * r["delta"].as_f64().unwrap()),
                to_match,
                r["uni_samples"].to_string(),
            ];
            assert_eq!(row[..6], expected, "{label}");
        }
        let rows = md_rows(&report, &format!("### Table 2 ({label})"));
        let per_goal = t["per_goal"].as_array().unwrap();
        assert_eq!(rows.len(), 5, "{label}: the four goals and Uni-10x");
        for (row, g) in rows.iter().zip(per_goal) {
            let mut expected = vec![
                paper_name(g["name"].as_str().unwrap()).to_owned(),
                g["subset_size"].to_string(),
                g["samples_seen"].to_string(),
            ];
            expected.extend(g["stats"].as_array().unwrap().iter().map(stat_cell));
            assert_eq!(row, &expected, "{label}");
            assert_eq!(row.len(), 7, "run, size, samples, 3 splits and the average");
        }
        // Each subset's make-up adds up to its size.
        let rows = md_rows(&report, &format!("### What each subset holds ({label}"));
        for (row, c) in rows.iter().zip(p["composition"].as_array().unwrap()) {
            assert_eq!(row[1], c["size"].to_string());
            let shares: f64 = row[2..].iter().map(|x| x.parse::<f64>().unwrap()).sum();
            assert!((shares - 100.0).abs() < 0.5, "{row:?}");
        }
    }
    // The main pool has every low-value kind, the clean pool none.
    let kinds = md_rows(&report, "### The pools, by kind of pair");
    let low = ["near_duplicate", "text_answer", "motionless_video", "wrong_answer"];
    for row in kinds.iter().filter(|r| low.contains(&r[0].as_str())) {
        assert!(row[1].parse::<u64>().unwrap() > 0 && row[3] == "0", "{row:?}");
    }
    assert!(
        report.contains("## Side table: the paper's results") && report.contains("| Temp+ | 53.3k | 63.65 (+1.38)")
    );
    let png = image::open(out.join("frontier.png")).expect("frontier.png decodes");
    assert!(png.width() > 1000 && png.height() >= 600, "two rows of panels");
    let svg = std::fs::read_to_string(out.join("frontier.svg")).unwrap();
    for run in ["MinLoss (", "Diverse (", "Temp (", "Temp+ (", "Uni-10x ("] {
        assert!(svg.contains(run), "{run} missing from the plot legend");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("frontier.svg") && html.contains("Table 2 (clean pool)"));
}

#[test]
fn query_files_may_only_query_and_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let pool = small_pool(dir.path());
    let stolen = dir.path().join("stolen.csv");
    for body in [
        format!("COPY (SELECT * FROM pool) TO '{}' STORED AS CSV", stolen.display()),
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/hostname'".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
    ] {
        let file = dir.path().join("q.sql");
        std::fs::write(&file, format!("CREATE VIEW v AS SELECT * FROM pool;\n{body};\nSELECT count(*) FROM v;"))
            .unwrap();
        let o = gdo().arg("sql").arg("--pool").arg(&pool).arg("--file").arg(&file).output().unwrap();
        assert!(!o.status.success(), "{body}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not allowed in a query file") && err.contains("q.sql"), "{err}");
    }
    assert!(!stolen.exists(), "the refused COPY wrote nothing");
    // A goal file is a query file too.
    let goal = dir.path().join("evil.sql");
    std::fs::write(&goal, format!("COPY (SELECT 1) TO '{}' STORED AS CSV;", stolen.display())).unwrap();
    let metrics = dir.path().join("m.jsonl");
    let m = run_ok(
        gdo()
            .args(["sql", "--format", "json", "--pool"])
            .arg(&pool)
            .arg("SELECT qa_uid, 0.5 AS vds, 1.0 AS ppl, 0.2 AS amm FROM pool"),
    );
    std::fs::write(&metrics, &m.stdout).unwrap();
    let o = gdo()
        .args(["select", "--count", "2", "--pool"])
        .arg(&pool)
        .arg("--metrics")
        .arg(&metrics)
        .arg("--goal")
        .arg(&goal)
        .arg("--out")
        .arg(dir.path().join("subsets"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("goal evil: COPY ... TO (writes files) is not allowed"), "{err}");
    assert!(!stolen.exists());
    // On the command line the user's own SQL may write (their explicit request).
    run_ok(
        gdo()
            .arg("sql")
            .arg("--pool")
            .arg(&pool)
            .arg(format!("COPY (SELECT qa_uid FROM pool) TO '{}' STORED AS CSV", stolen.display())),
    );
    assert!(stolen.exists());

    // A memory limit fails a query that needs more, clearly.
    let o = gdo()
        .args(["sql", "--memory-limit", "64KiB", "--pool"])
        .arg(&pool)
        .arg("SELECT a.qa_uid, b.qa_uid FROM pool a CROSS JOIN pool b CROSS JOIN (SELECT * FROM generate_series(1, 2000)) g ORDER BY 1, 2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.to_lowercase().contains("resources exhausted"), "{err}");
    let o = gdo().args(["sql", "--memory-limit", "lots", "SELECT 1"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected a size"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bare_non_finite_metric_values_keep_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.jsonl");
    write_lines(
        &m,
        &[
            r#"{"qa_uid": "a", "vds": 0.5, "loss_video": 1.0}"#,
            r#"{"qa_uid": "b", "vds": -Infinity, "loss_video": 1.0}"#,
            r#"{"qa_uid": "c", "vds": Infinity, "loss_video": NaN, "note": "NaN -Infinity"}"#,
        ],
    );
    let o =
        run_ok(gdo().args(["sql", "--format", "csv", "--metrics"]).arg(&m).arg(
            "SELECT qa_uid, vds IS NULL AS vds_null, loss_video IS NULL AS loss_null FROM metrics ORDER BY qa_uid",
        ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "qa_uid,vds_null,loss_null\na,false,false\nb,true,false\nc,true,true"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 rows kept") && err.contains(r#""vds": 2"#) && !err.contains("invalid_json"), "{err}");
}
