//! Atomic tables: a killed ingest leaves no half table, a rerun yields the same one, and
//! `gdo vacuum` removes what the killed run left.
// Some of these tests drive fault injection (a cargo feature); without it their helpers go unused.
#![cfg_attr(not(feature = "fault-injection"), allow(unused_imports, dead_code))]

use std::path::Path;

use crate::common::{data_sums as manifest_sums, gdo, has_table, image_row, run_ok, video_row, write_lines};

fn write_inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ov = dir.join("ov.jsonl");
    let video = dir.join("video.jsonl");
    let img: Vec<String> =
        (0..3000).map(|i| image_row(&format!("i{i}"), &format!("What is shown in picture {i}?"), "a shape")).collect();
    let vid: Vec<String> = (0..3000)
        .map(|i| {
            video_row(
                &format!("v{i}"),
                &format!("clip{}", i / 4),
                &format!("What happens after step {i}?"),
                "it moves",
                5 + i % 50,
            )
        })
        .collect();
    write_lines(&ov, &img.iter().map(String::as_str).collect::<Vec<_>>());
    write_lines(&video, &vid.iter().map(String::as_str).collect::<Vec<_>>());
    (ov, video)
}

fn ingest_cmd(ov: &Path, video: &Path, out: &Path) -> std::process::Command {
    let mut cmd = gdo();
    cmd.args(["ingest", "--rows-per-file", "1000", "--chunk-lines", "500", "--onevision"])
        .arg(ov)
        .arg("--video")
        .arg(video)
        .arg("--out")
        .arg(out);
    cmd
}

#[cfg(feature = "fault-injection")]
#[test]
fn killed_ingest_leaves_no_table_and_rerun_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (ov, video) = write_inputs(dir.path());

    let clean = dir.path().join("clean");
    run_ok(&mut ingest_cmd(&ov, &video, &clean));
    let want = manifest_sums(&clean);
    assert_eq!(want.len(), 6, "6000 pairs in files of 1000");

    let out = dir.path().join("pool");
    let o = ingest_cmd(&ov, &video, &out).args(["--fail-after-parts", "3"]).output().unwrap();
    assert!(!o.status.success(), "the process was aborted");
    assert!(!has_table(&out), "no commit after a crash");
    let parts = walk_parquet(&out);
    assert!(parts >= 3, "the crash happened mid-run ({parts} files written)");
    // readers refuse the half-written folder
    let q = gdo().args(["sql", "--pool"]).arg(&out).arg("SELECT count(*) FROM pool").output().unwrap();
    assert!(!q.status.success());
    assert!(String::from_utf8_lossy(&q.stderr).contains("did not commit"), "{}", String::from_utf8_lossy(&q.stderr));

    run_ok(&mut ingest_cmd(&ov, &video, &out));
    assert_eq!(manifest_sums(&out), want, "rerun after a crash gives the same table");
    assert_eq!(walk_parquet(&out), 7 + parts, "the crashed run's files stay until vacuum");
    // Within the retention period vacuum keeps them (a run may still be writing them).
    let o = run_ok(gdo().arg("vacuum").arg(&out));
    assert!(String::from_utf8_lossy(&o.stderr).contains("deleted 0 files"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_ok(gdo().arg("vacuum").arg(&out).args(["--retain", "0s"]));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains(&format!("deleted {parts} files")), "{said}");
    assert_eq!(walk_parquet(&out), 7, "6 pool files + 1 rejects file left");
    let q = run_ok(gdo().args(["sql", "--format", "csv", "--pool"]).arg(&out).arg("SELECT count(*) AS n FROM pool"));
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "n\n6000");
    run_ok(gdo().arg("verify").arg(&out));
}

#[cfg(feature = "fault-injection")]
#[test]
fn crash_during_replace_keeps_the_old_table() {
    let dir = tempfile::tempdir().unwrap();
    let (ov, video) = write_inputs(dir.path());
    let out = dir.path().join("pool");
    run_ok(&mut ingest_cmd(&ov, &video, &out));
    let before = manifest_sums(&out);

    // Re-ingest different content into the same folder and crash half-way.
    let small = dir.path().join("small.jsonl");
    let rows: Vec<String> = (0..2500).map(|i| image_row(&format!("s{i}"), "q?", "a")).collect();
    write_lines(&small, &rows.iter().map(String::as_str).collect::<Vec<_>>());
    let o = gdo()
        .args(["ingest", "--rows-per-file", "1000", "--chunk-lines", "500", "--fail-after-parts", "1", "--onevision"])
        .arg(&small)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(manifest_sums(&out), before, "the old table is untouched");
    let q = run_ok(gdo().args(["sql", "--format", "csv", "--pool"]).arg(&out).arg("SELECT count(*) AS n FROM pool"));
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "n\n6000");
}

fn walk_parquet(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            n += walk_parquet(&p);
        } else if p.extension().is_some_and(|e| e == "parquet") {
            n += 1;
        }
    }
    n
}
