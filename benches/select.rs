//! `cargo bench --bench select` (release build): the reference-style flow (ingest, then
//! select one preset) on a generated pool, and `--all-goals` against four single-goal
//! runs, all measured in this run. Each `gdo` step runs as its own process so its peak
//! memory is its own (`report.json`'s `peak_rss_mib`).
//!
//! Every `gdo select` runs with its defaults, so it writes what a user gets: both
//! subsets as Parquet and as SFT JSONL, and the report (the reference writes the 1x
//! JSONL and the Uni-10x ids).
//!
//! The baseline, measured in the same run on the same files: the GDO reference
//! implementation's subset builder (Python), started through its
//! `run_reference_select.sh POOL_DIR PRESET OUT_DIR` wrapper in the folder that
//! `GDO_BASELINE` names. Without it the bench measures gdo alone and says so; ratios
//! are only ever printed against a baseline timed in this run.
//!
//! Environment: `GDO_BENCH_PAIRS` (default 250000), `GDO_BENCH_RUNS` (default 3),
//! `GDO_BASELINE` (folder of the reference wrapper; unset: no baseline).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};

const MIB: f64 = 1024.0 * 1024.0;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn gdo(args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_gdo")).args(args).output().expect("gdo runs");
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "gdo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    secs
}

/// The reference wrapper's folder, from `GDO_BASELINE`; says how to set it when unset.
fn baseline() -> Option<std::path::PathBuf> {
    match std::env::var_os("GDO_BASELINE").map(std::path::PathBuf::from) {
        Some(dir) if dir.join("run_reference_select.sh").exists() => Some(dir),
        Some(dir) => panic!("GDO_BASELINE={}: no run_reference_select.sh there", dir.display()),
        None => {
            println!(
                "no baseline: set GDO_BASELINE to the folder holding the reference's \
                 run_reference_select.sh to time it in this run"
            );
            None
        }
    }
}

/// Seconds the reference's subset builder takes for `preset` on `pool` (JSONL in).
fn reference(base: &Path, pool: &Path, preset: &str, out: &Path) -> f64 {
    let t = Instant::now();
    let status = Command::new("bash")
        .arg(base.join("run_reference_select.sh"))
        .args([pool, Path::new(preset), out])
        .status()
        .expect("reference runs");
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "reference {preset} failed: see {}", out.join("log.txt").display());
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak(report: &Path) -> f64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(report).expect("report")).expect("json");
    v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
}

/// Metrics for ~97% of the pool's pairs, seeded (the reference fixture's coverage).
fn write_metrics(pool: &Path, out: &Path) -> usize {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let batches = rt.block_on(async {
        let ctx = gdo::session::new_context();
        gdo::session::register_table(&ctx, "pool", &pool.display().to_string()).await.expect("pool");
        ctx.sql("SELECT qa_uid FROM pool").await.expect("sql").collect().await.expect("collect")
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("metrics file"));
    let mut n = 0;
    for b in &batches {
        let uids = gdo::ops::common::strings(b, "qa_uid").expect("qa_uid");
        for i in 0..b.num_rows() {
            if rng.random::<f64>() < 0.03 {
                continue;
            }
            let lv: f64 = rng.random_range(0.2..3.0);
            let lb: f64 = lv + rng.random_range(-0.5..1.0);
            let fd: f64 = rng.random_range(0.0..0.1);
            let q: f64 = rng.random_range(0.0..1.0);
            writeln!(
                w,
                r#"{{"qa_uid":"{}","loss_video":{lv},"loss_blind":{lb},"frame_diversity":{fd},"vds":{},"quality_score":{q},"ppl":{}}}"#,
                gdo::ops::common::str_at(&uids, i),
                lb - lv,
                lv.exp()
            )
            .expect("write");
            n += 1;
        }
    }
    n
}

fn main() {
    let pairs = env_usize("GDO_BENCH_PAIRS", 250_000);
    let runs = env_usize("GDO_BENCH_RUNS", 3).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input");
    gdo_samples::generate_synthetic_pool(&input, pairs, 42).expect("generate pool");
    let (ov, video) = (input.join("onevision.jsonl"), input.join("video.jsonl"));
    let pool = dir.path().join("pool");
    let (ov, video, pool_s) = (ov.display().to_string(), video.display().to_string(), pool.display().to_string());
    let ingest_secs =
        median((0..runs).map(|_| gdo(&["ingest", "--onevision", &ov, "--video", &video, "--out", &pool_s])).collect());
    let metrics = dir.path().join("metrics.jsonl");
    let with_metrics = write_metrics(&pool, &metrics);
    let m = metrics.display().to_string();
    println!("pool: {pairs} pairs generated, {with_metrics} with metrics; {runs} run(s) per measurement, median shown");
    println!("gdo ingest: {ingest_secs:.3} s ({:.0} pairs/s)", pairs as f64 / ingest_secs);

    let one = dir.path().join("one");
    let one_s = one.display().to_string();
    let select_args = |goal: &'static str, out: &str| -> Vec<String> {
        ["select", "--pool", &pool_s, "--metrics", &m, "--goal", goal, "--out", out]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| gdo(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let select_secs = median((0..runs).map(|_| run(select_args("temp_plus", &one_s))).collect());
    let select_peak = peak(&one.join("report.json"));
    let flow = ingest_secs + select_secs;
    println!(
        "gdo select temp_plus: {select_secs:.3} s ({:.0} pairs/s), peak RSS {select_peak:.0} MiB ({:.0} MB)",
        pairs as f64 / select_secs,
        select_peak * MIB / 1e6
    );
    println!("reference-style flow (ingest + select temp_plus): {flow:.3} s ({:.0} pairs/s)", pairs as f64 / flow);
    let baseline = baseline();
    if let Some(base) = &baseline {
        // The reference reads the pool folder's onevision.jsonl, video.jsonl, metrics.jsonl.
        std::fs::copy(&metrics, input.join("metrics.jsonl")).expect("metrics beside the pool");
        let out = dir.path().join("reference");
        let secs = median((0..runs).map(|_| reference(base, &input, "temp_plus", &out)).collect());
        println!(
            "reference temp_plus (JSONL in, subsets out): {secs:.3} s -> gdo ingest + select is {:.1}x faster",
            secs / flow
        );
    }

    let four: f64 = ["minloss", "diverse", "temp", "temp_plus"]
        .iter()
        .map(|g| median((0..runs).map(|_| run(select_args(g, &one_s))).collect()))
        .sum();
    let all = dir.path().join("all").display().to_string();
    let all_secs = median(
        (0..runs).map(|_| gdo(&["select", "--pool", &pool_s, "--metrics", &m, "--all-goals", "--out", &all])).collect(),
    );
    println!("four single-goal gdo runs: {four:.3} s; --all-goals: {all_secs:.3} s ({:.2}x)", four / all_secs);
    if let Some(base) = &baseline {
        let out = dir.path().join("reference");
        let ref_four: f64 =
            ["minloss", "diverse", "temp", "temp_plus"].iter().map(|g| reference(base, &input, g, &out)).sum();
        println!(
            "four reference runs (one each): {ref_four:.3} s -> gdo ingest + --all-goals is {:.1}x faster",
            ref_four / (ingest_secs + all_secs)
        );
    }
}
