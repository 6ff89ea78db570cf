//! `cargo bench --bench ingest`: ingest throughput on a generated pool, against a
//! pure-Python profile pass over the same files measured in the same run.
//!
//! A second baseline, when `GDO_BASELINE` names a folder holding `duckdb_ingest.py`
//! (DuckDB converting the same JSONL to zstd Parquet with `read_json_auto`, 2 threads,
//! no pair extraction) and `GDO_PYTHON` can import duckdb: timed in the same run.
//!
//! Environment: `GDO_BENCH_PAIRS` (default 250000), `GDO_BENCH_RUNS` (default 5),
//! `GDO_PYTHON` (default python3), `GDO_BASELINE`. Prints one line per measurement and
//! the ratios.

use std::process::Command;
use std::time::Instant;

use gdo::pool::{IngestOptions, ingest};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // The heap settings `gdo ingest` runs with (src/main.rs, src/cli/ingest.rs).
    gdo::memory::share_heap_arenas();
    gdo::memory::keep_freed_heap();
    // `cargo bench` passes --bench; nothing else to parse.
    let pairs = env_usize("GDO_BENCH_PAIRS", 250_000);
    let runs = env_usize("GDO_BENCH_RUNS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input");
    let summary = gdo_samples::generate_synthetic_pool(&input, pairs, 42).expect("generate pool");
    let ov = input.join("onevision.jsonl");
    let video = input.join("video.jsonl");
    let bytes =
        std::fs::metadata(&ov).map(|m| m.len()).unwrap_or(0) + std::fs::metadata(&video).map(|m| m.len()).unwrap_or(0);
    println!(
        "input: {} image rows + {} video rows, {:.1} MB of JSONL, {} threads",
        summary.image_rows,
        summary.video_rows,
        bytes as f64 / 1e6,
        rayon::current_num_threads()
    );

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut times = Vec::new();
    let mut total_pairs = 0;
    for run in 0..runs {
        let opts = IngestOptions {
            onevision: vec![ov.display().to_string()],
            video: vec![video.display().to_string()],
            out: dir.path().join(format!("pool{run}")).display().to_string(),
            ..IngestOptions::default()
        };
        let t = Instant::now();
        let report = rt.block_on(ingest(&opts)).expect("ingest");
        times.push(t.elapsed().as_secs_f64());
        total_pairs = report.total_pairs;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "gdo ingest (JSONL -> Parquet pool): {total_pairs} pairs, median {median:.3} s over {runs} runs (min {:.3} s), {:.0} pairs/s, peak RSS {:.0} MiB",
        times[0],
        total_pairs as f64 / median,
        gdo::memory::peak_rss_mib().unwrap_or(f64::NAN)
    );

    let python = std::env::var("GDO_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/profile_baseline.py");
    match Command::new(&python).arg(script).arg(&ov).arg(&video).output() {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("baseline prints json");
            let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
            let py_pairs = v["pairs"].as_u64().unwrap_or(0);
            println!(
                "python profile pass (baseline): {py_pairs} pairs, {secs:.3} s, {:.0} pairs/s",
                py_pairs as f64 / secs
            );
            println!(
                "ratio: gdo ingest is {:.1}x the baseline's pair throughput",
                (total_pairs as f64 / median) / (py_pairs as f64 / secs)
            );
            if py_pairs != total_pairs {
                println!("note: pair counts differ (gdo {total_pairs}, baseline {py_pairs})");
            }
        }
        Ok(out) => println!("baseline failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => println!("baseline not run ({python}: {e})"),
    }

    duckdb_baseline(&python, &ov, &video, median, runs);
}

/// DuckDB's JSONL-to-Parquet conversion of the same files (median of `runs`), when
/// `GDO_BASELINE` holds `duckdb_ingest.py`.
fn duckdb_baseline(python: &str, ov: &std::path::Path, video: &std::path::Path, gdo_secs: f64, runs: usize) {
    let Some(script) = std::env::var_os("GDO_BASELINE").map(|d| std::path::PathBuf::from(d).join("duckdb_ingest.py"))
    else {
        println!("duckdb baseline not run: set GDO_BASELINE to the folder holding duckdb_ingest.py");
        return;
    };
    let out = tempfile::tempdir().expect("temp dir");
    let mut times = Vec::new();
    for _ in 0..runs {
        match Command::new(python).arg(&script).arg(ov).arg(video).arg(out.path()).output() {
            Ok(o) if o.status.success() => match String::from_utf8_lossy(&o.stdout).trim().parse::<f64>() {
                Ok(secs) => times.push(secs),
                Err(_) => return println!("duckdb baseline printed no seconds"),
            },
            Ok(o) => return println!("duckdb baseline failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => return println!("duckdb baseline not run ({python}: {e})"),
        }
    }
    times.sort_by(f64::total_cmp);
    let secs = times[times.len() / 2];
    println!(
        "duckdb JSONL -> Parquet (raw rows, no pairs): median {secs:.3} s over {runs} runs -> gdo ingest takes {:.2}x its time",
        gdo_secs / secs
    );
}
