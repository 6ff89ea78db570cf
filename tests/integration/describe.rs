//! `gdo describe` end to end on the sample pool: cheap descriptors, merge reads them,
//! and a run stopped mid-way then rerun equals an uninterrupted run byte for byte.
// Some of these tests drive fault injection (a cargo feature); without it their helpers go unused.
#![cfg_attr(not(feature = "fault-injection"), allow(unused_imports, dead_code))]

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use crate::common::{data_sums, gdo, has_table, ingest_sample_pool, query, run_ok};

fn describe(pool: &Path, out: &Path, extra: &[&str]) -> String {
    let mut cmd = gdo();
    cmd.args(["describe", "--cheap-only", "--chunk-size", "128", "--pool"]).arg(pool).arg("--out").arg(out).args(extra);
    String::from_utf8_lossy(&run_ok(&mut cmd).stdout).to_string()
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread")]
async fn describe_cheap_only_then_merge_and_resume_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_sample_pool(&pool).await;

    // Uninterrupted run.
    let full = dir.path().join("full");
    let p = pool.clone();
    let f = full.clone();
    let said = tokio::task::spawn_blocking(move || describe(&p, &f, &[])).await.unwrap();
    println!("{said}");
    assert!(said.contains("described 900 rows"), "{said}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(full.join("describe_report.json")).unwrap()).unwrap();
    assert_eq!(report["rows"], 900);
    assert!(!full.join("_describe_chunks").exists(), "chunks removed after commit");

    // Descriptor values: one row per pair, media on video rows, model columns NULL, SC -1.
    let b = query(
        &full,
        "SELECT count(*) AS n, count(DISTINCT qa_uid) AS u, \
         sum(CASE WHEN bucket = 'short_video' AND amm > 0 THEN 1 ELSE 0 END) AS moving, \
         sum(CASE WHEN loss_video IS NULL AND vds IS NULL AND self_consistency = -1 THEN 1 ELSE 0 END) AS cheap, \
         sum(CASE WHEN array_length(text_feat) = 16 AND array_length(vis_feat) = 6 THEN 1 ELSE 0 END) AS feats \
         FROM pool",
    )
    .await;
    let v = |i: usize| b[0].column(i).as_primitive::<Int64Type>().value(0);
    assert_eq!((v(0), v(1), v(3), v(4)), (900, 900, 900, 900));
    assert!(v(2) > 100, "video pairs with motion: {}", v(2));

    // gdo merge reads it unchanged.
    let merged = dir.path().join("merged");
    let mut cmd = gdo();
    cmd.args(["merge", "--cluster-k", "8", "--descriptors"]).arg(&full).arg("--out").arg(&merged);
    let said = String::from_utf8_lossy(&run_ok(&mut cmd).stdout).to_string();
    assert!(said.contains("merged 900 rows"), "{said}");

    // Stopped after 2 chunks (as if killed), rerun with the same arguments: resumes.
    let resumed = dir.path().join("resumed");
    let (p, r) = (pool.clone(), resumed.clone());
    let said = tokio::task::spawn_blocking(move || describe(&p, &r, &["--stop-after-chunks", "2"])).await.unwrap();
    assert!(said.contains("stopped after 2 new chunk(s) of 8"), "{said}");
    assert!(!has_table(&resumed), "nothing committed yet");
    let (p, r) = (pool.clone(), resumed.clone());
    let said = tokio::task::spawn_blocking(move || describe(&p, &r, &[])).await.unwrap();
    assert!(said.contains("described 900 rows") && said.contains("8 chunks, 2 resumed"), "{said}");
    assert_eq!(data_sums(&resumed), data_sums(&full), "resumed run equals the uninterrupted one");

    // Changed arguments after a stop: a fresh start, said on stderr.
    let (p, r) = (pool.clone(), resumed.clone());
    tokio::task::spawn_blocking(move || describe(&p, &r, &["--stop-after-chunks", "1"])).await.unwrap();
    let mut cmd = gdo();
    cmd.args(["describe", "--cheap-only", "--chunk-size", "300", "--pool"]).arg(&pool).arg("--out").arg(&resumed);
    let o = run_ok(&mut cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("starting afresh"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 chunks, 0 resumed"));
}

/// The first `n` rows of the sample `video.jsonl` whose frames are clip folders.
fn clip_rows(n: usize) -> Vec<String> {
    std::fs::read_to_string(crate::common::samples().join("video.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""images":["frames/clip"#))
        .take(n)
        .map(str::to_owned)
        .collect()
}

/// Ingest video JSONL rows (frames relative to the sample folder) as the pool `dir/name`.
fn ingest_video_rows(dir: &Path, name: &str, rows: &[&str]) -> std::path::PathBuf {
    let jsonl = dir.join(format!("{name}.jsonl"));
    std::fs::write(&jsonl, rows.join("\n")).unwrap();
    let out = dir.join(name);
    run_ok(
        gdo()
            .arg("ingest")
            .arg("--video")
            .arg(&jsonl)
            .arg("--media-root")
            .arg(crate::common::samples())
            .arg("--out")
            .arg(&out),
    );
    out
}

/// The newest checkpoint folder of a `gdo train` run (named by `checkpoints/LATEST`).
fn latest_checkpoint(run: &Path) -> std::path::PathBuf {
    let dir = run.join("checkpoints");
    dir.join(std::fs::read_to_string(dir.join("LATEST")).unwrap().trim())
}

/// With a model scorer, a pair whose frames are all missing gets an error and null model
/// columns, and the pairs after it in the same chunk are scored on their own frames: each
/// equals its score from a pool without the broken pair.
#[test]
fn scorer_skips_a_pair_with_unreadable_frames_and_keeps_the_others_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let lines = clip_rows(6);
    let broken = lines[2].replace("frames/clip", "frames/gone_clip");
    let with: Vec<&str> = lines.iter().enumerate().map(|(i, l)| if i == 2 { broken.as_str() } else { l }).collect();
    let without: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| l.as_str()).collect();
    let (pool_with, pool_without) =
        (ingest_video_rows(dir.path(), "with", &with), ingest_video_rows(dir.path(), "without", &without));

    let run = dir.path().join("run");
    run_ok(
        gdo()
            .args(["train", "--quiet", "--sql", "SELECT * FROM pool", "--pool"])
            .arg(&pool_without)
            .arg("--out")
            .arg(&run),
    );
    let ckpt = latest_checkpoint(&run);
    let scores = |pool: &Path, name: &str| {
        let out = dir.path().join(name);
        let mut cmd = gdo();
        cmd.args(["describe", "--sc-samples", "0", "--scorer"])
            .arg(&ckpt)
            .arg("--pool")
            .arg(pool)
            .arg("--out")
            .arg(&out);
        run_ok(&mut cmd);
        out
    };
    let (d_with, d_without) = (scores(&pool_with, "d_with"), scores(&pool_without, "d_without"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let read = |d: &Path| {
        let b = rt.block_on(query(
            d,
            "SELECT qa_uid, loss_video, loss_blind, coalesce(error, '') AS error FROM pool ORDER BY qa_uid",
        ));
        let mut rows = Vec::new();
        for b in b {
            let uid =
                datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
            let err =
                datafusion::arrow::compute::cast(b.column(3), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
            let (lv, lb) = (
                b.column(1).as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
                b.column(2).as_primitive::<datafusion::arrow::datatypes::Float64Type>(),
            );
            for i in 0..b.num_rows() {
                let v = |a: &datafusion::arrow::array::PrimitiveArray<datafusion::arrow::datatypes::Float64Type>| {
                    (!datafusion::arrow::array::Array::is_null(a, i)).then(|| a.value(i))
                };
                rows.push((
                    uid.as_string::<i32>().value(i).to_owned(),
                    v(lv),
                    v(lb),
                    err.as_string::<i32>().value(i).to_owned(),
                ));
            }
        }
        rows
    };
    let (a, b) = (read(&d_with), read(&d_without));
    // The broken row's pairs (one per QA turn) lose their model scores, and only they.
    let bad: Vec<_> = a.iter().filter(|r| r.1.is_none()).collect();
    assert!(!bad.is_empty() && a.len() == b.len() + bad.len(), "{a:?}");
    assert!(bad.iter().all(|r| r.3.contains("frames unreadable") && r.2.is_none()), "{bad:?}");
    let good: Vec<_> = a.iter().filter(|r| r.1.is_some()).collect();
    assert_eq!(good.len(), b.len());
    for (x, y) in good.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        let (xv, yv) = (x.1.unwrap(), y.1.unwrap());
        assert!((xv - yv).abs() < 1e-5 && (x.2.unwrap() - y.2.unwrap()).abs() < 1e-5, "{x:?} vs {y:?}");
    }
}

/// Cross-fitting: `gdo train --holdout-fold I/2` trains without the pairs of fold I
/// (`gdo_fold(video_uid, 2) = I`, the SQL function), and `gdo describe` given both
/// models scores each pair with the one that held its fold out: every row equals that
/// model's own single-scorer run. Mismatched model sets are clear errors.
#[test]
fn describe_cross_fits_each_pair_with_the_model_that_held_out_its_fold() {
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    let dir = tempfile::tempdir().unwrap();
    let lines = clip_rows(24);
    let pool = ingest_video_rows(dir.path(), "pool", &lines.iter().map(String::as_str).collect::<Vec<_>>());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count = |sql: &str| -> i64 { rt.block_on(query(&pool, sql))[0].column(0).as_primitive::<Int64Type>().value(0) };
    let in_fold = |f: i64| count(&format!("SELECT count(*) FROM pool WHERE gdo_fold(video_uid, 2) = {f}"));
    let (n0, n1) = (in_fold(0), in_fold(1));
    assert!(n0 > 0 && n1 > 0, "both folds hold pairs: {n0} + {n1}");
    assert_eq!(n0 + n1, count("SELECT count(*) FROM pool"));

    let train = |name: &str, holdout: Option<&str>| {
        let run = dir.path().join(name);
        let mut cmd = gdo();
        cmd.args(["train", "--quiet", "--table"]).arg(&pool).arg("--out").arg(&run);
        if let Some(h) = holdout {
            cmd.args(["--holdout-fold", h]);
        }
        let out = String::from_utf8_lossy(&run_ok(&mut cmd).stdout).to_string();
        (latest_checkpoint(&run), out)
    };
    let (a, out_a) = train("a", Some("0/2"));
    let (b, out_b) = train("b", Some("1/2"));
    // One epoch: a model sees exactly the pairs outside its held-out fold.
    assert!(out_a.contains(&format!("trained {n1} samples")), "{out_a}");
    assert!(out_b.contains(&format!("trained {n0} samples")), "{out_b}");

    let describe = |name: &str, scorers: &[&Path]| {
        let out = dir.path().join(name);
        let mut cmd = gdo();
        cmd.args(["describe", "--sc-samples", "0", "--tnc", "regex", "--pool"]).arg(&pool).arg("--out").arg(&out);
        for s in scorers {
            cmd.arg("--scorer").arg(s);
        }
        run_ok(&mut cmd);
        let mut rows = std::collections::BTreeMap::new();
        for b in rt.block_on(query(&out, "SELECT qa_uid, gdo_fold(video_uid, 2), loss_video, loss_blind FROM pool")) {
            let uid = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let fold = b.column(1).as_primitive::<Int64Type>();
            let (lv, lb) = (b.column(2).as_primitive::<Float64Type>(), b.column(3).as_primitive::<Float64Type>());
            for i in 0..b.num_rows() {
                rows.insert(uid.as_string::<i32>().value(i).to_owned(), (fold.value(i), lv.value(i), lb.value(i)));
            }
        }
        rows
    };
    // Given in either order, the same routing.
    let cross = describe("cross", &[&b, &a]);
    let (only_a, only_b) = (describe("only_a", &[&a]), describe("only_b", &[&b]));
    assert_eq!(cross.len() as i64, n0 + n1);
    let mut differ = 0;
    for (uid, &(fold, lv, lb)) in &cross {
        let own = if fold == 0 { only_a[uid] } else { only_b[uid] };
        assert_eq!((fold, lv, lb), own, "{uid}: fold {fold} is scored by the model that held it out");
        let other = if fold == 0 { only_b[uid] } else { only_a[uid] };
        differ += usize::from(other.1 != lv);
    }
    assert!(differ > 0, "the two models disagree somewhere, so the routing is visible");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cross/describe_report.json")).unwrap()).unwrap();
    assert_eq!(report["scorer"], "tiny-vlm cross-fitted over 2 folds of video_uid");

    // A model set that does not cover each fold once is refused before any work.
    let (whole, _) = train("whole", None);
    for (scorers, msg) in [
        (vec![&a, &a], "a second model holding out fold 0/2"),
        (vec![&a, &whole], "was trained on every fold"),
        (vec![&a, &b, &b], "holds out fold 0/2 but 3 scorers were given"),
    ] {
        let mut cmd = gdo();
        cmd.args(["describe", "--pool"]).arg(&pool).arg("--out").arg(dir.path().join("bad"));
        for s in scorers {
            cmd.arg("--scorer").arg(s);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(msg), "{msg}: {err}");
    }
    let out =
        gdo().args(["train", "--table"]).arg(&pool).args(["--out", "x", "--holdout-fold", "2/2"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("expected I/K"));
}
