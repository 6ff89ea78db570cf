//! Motion throughput: clips per second (8 frames each, 224x224 gray) for gdo's kernel
//! (decode + gray + resize + Farneback + frame diversity) against OpenCV's Farneback
//! from Python (`benches/motion_opencv.py`, cv2.imread + calcOpticalFlowFarneback with
//! the method's parameters), same clips, same thread count, in the same run.
//!
//! Run: `cargo bench -p gdo-udfs --bench motion` (release; `--profile dev` for the test
//! profile). `GDO_BENCH_MOTION_DEVICE=cuda` (with `--features cuda`) or `candle-cpu` also
//! times the candle path on that device (on a GPU: gdo's CUDA kernels and the candle
//! tensor program), motion alone and decode + motion pipelined. Threads: `GDO_BENCH_THREADS`
//! (default: all cores). Python: `GDO_BENCH_PYTHON` (default
//! `~/.cache/gdo/venv/bin/python`, then `python3`); without cv2 OpenCV is skipped with
//! a note. A binary carried to another machine (scripts/gpu-check.sh) finds the clips
//! through `GDO_MOTION_REFERENCE` (the motion-reference folder) and the OpenCV script
//! through `GDO_REPO_ROOT`; `GDO_BENCH_CLIP_COPIES=N` times every path over N copies of
//! the clips (larger batches for a GPU).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use gdo_udfs::method::uniform_indices;
use gdo_udfs::motion::{FLOW_FRAMES, motion_descriptors, prepare_gray};
use rayon::prelude::*;

const REPS: usize = 5;

fn clips() -> Vec<Vec<PathBuf>> {
    let dir = std::env::var_os("GDO_MOTION_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/reference/motion-reference"));
    let text = std::fs::read_to_string(dir.join("clips.jsonl")).expect("motion-reference clips.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("clip line");
            let images: Vec<&str> = v["images"].as_array().expect("images").iter().filter_map(|x| x.as_str()).collect();
            uniform_indices(images.len(), FLOW_FRAMES).into_iter().map(|i| dir.join(images[i])).collect()
        })
        .collect()
}

fn gray(p: &Path) -> gdo_udfs::motion::Plane<u8> {
    let bytes = std::fs::read(p).expect("frame file");
    let rgb = image::load_from_memory(&bytes).expect("frame decodes").into_rgb8();
    prepare_gray(rgb.as_raw(), rgb.width() as usize, rgb.height() as usize)
}

fn gdo_clip(paths: &[PathBuf]) -> (f64, f64) {
    let planes: Vec<_> = paths.par_iter().map(|p| gray(p)).collect();
    motion_descriptors(&planes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn python() -> Option<String> {
    let venv = std::env::var("HOME").map(|h| format!("{h}/.cache/gdo/venv/bin/python")).unwrap_or_default();
    // A given GDO_BENCH_PYTHON is the only candidate; it too must import cv2.
    let candidates = match std::env::var("GDO_BENCH_PYTHON") {
        Ok(p) => vec![p],
        Err(_) => vec![venv, "python3".to_owned()],
    };
    candidates
        .into_iter()
        .find(|p| Command::new(p).args(["-c", "import cv2"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success()))
}

fn opencv(clips: &[Vec<PathBuf>], threads: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let Some(py) = python() else {
        println!("note: OpenCV skipped: no Python with cv2 (set GDO_BENCH_PYTHON)");
        return None;
    };
    let script = match std::env::var_os("GDO_REPO_ROOT") {
        Some(root) => PathBuf::from(root).join("udfs/benches/motion_opencv.py"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/motion_opencv.py"),
    };
    let req = serde_json::json!({
        "threads": threads,
        "reps": REPS,
        "clips": clips.iter().map(|c| c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let mut child =
        Command::new(py).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("python starts");
    child.stdin.take().expect("stdin").write_all(req.to_string().as_bytes()).expect("request written");
    let out = child.wait_with_output().expect("python runs");
    if !out.status.success() {
        println!("note: OpenCV run failed; skipped");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python prints JSON");
    let f = |k: &str| v[k].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default();
    Some((f("clips_per_s"), f("amm")))
}

fn main() {
    let threads: usize = std::env::var("GDO_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let copies: usize = std::env::var("GDO_BENCH_CLIP_COPIES").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let base = clips();
    let n = base.len() * copies;
    let clips: Vec<_> = base.into_iter().cycle().take(n).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let mut rates = Vec::new();
    let mut amm = Vec::new();
    for _ in 0..REPS {
        let t0 = Instant::now();
        amm = pool.install(|| clips.par_iter().map(|c| gdo_clip(c).0).collect::<Vec<f64>>());
        rates.push(clips.len() as f64 / t0.elapsed().as_secs_f64());
    }
    let ours = median(rates.clone());
    println!("motion: {} clips x {} frames (224x224), {threads} thread(s), {REPS} reps", clips.len(), clips[0].len());
    println!("gdo kernel (decode + motion): median {ours:.1} clips/s (reps: {rates:.1?})");
    let candle = std::env::var("GDO_BENCH_MOTION_DEVICE").ok().map(|spec| candle_rates(&spec, &clips, &pool, &amm));
    if let Some((cv_rates, cv_amm)) = opencv(&clips, threads) {
        let theirs = median(cv_rates.clone());
        println!(
            "OpenCV Farneback (cv2.imread + calcOpticalFlowFarneback): median {theirs:.1} clips/s (reps: {cv_rates:.1?})"
        );
        let rel: Vec<f64> = amm.iter().zip(&cv_amm).map(|(a, b)| (a - b).abs() / b.abs().max(1e-12)).collect();
        println!("AMM agreement on these clips: median relative difference {:.2e}", median(rel));
        println!("ratio gdo / OpenCV: {:.2}x (target >= 2x)", ours / theirs);
        for run in candle.iter().flatten() {
            let rel: Vec<f64> = run.amm.iter().zip(&cv_amm).map(|(a, b)| (a - b).abs() / b.abs().max(1e-12)).collect();
            println!(
                "candle path, {}: AMM median relative difference to OpenCV {:.2e} (bound 5e-2)",
                run.label,
                median(rel)
            );
            println!(
                "ratio candle path, {} / OpenCV: {:.2}x decode + motion, {:.2}x motion alone",
                run.label,
                run.rate / theirs,
                run.alone / theirs
            );
        }
    }
}

/// The candle motion path on `spec` (`candle-cpu`, `cuda`, `cuda:N`): on a GPU both gdo's
/// CUDA kernels and the candle tensor program (its reference), on the CPU the tensor
/// program. Each is timed three ways: motion alone (frames decoded beforehand), and
/// decode + motion with the decoding of the next batch on the CPU pool overlapping the
/// GPU's work on this one (what a user's throughput is). Returns, per path, its label,
/// its pipelined rate, its motion-alone rate and its AMM values.
fn candle_rates(spec: &str, clips: &[Vec<PathBuf>], pool: &rayon::ThreadPool, tuned: &[f64]) -> Vec<CandleRun> {
    use gdo_udfs::motion::candle_flow::CandleMotion;
    let device = match spec {
        "candle-cpu" => candle_core::Device::Cpu,
        s => gdo_udfs::device::select(s).unwrap_or_else(|why| panic!("GDO_BENCH_MOTION_DEVICE: {why}")),
    };
    let decode = |chunk: &[Vec<PathBuf>]| -> Vec<Vec<gdo_udfs::motion::Plane<u8>>> {
        pool.install(|| chunk.par_iter().map(|c| c.iter().map(|p| gray(p)).collect()).collect())
    };
    let mut decode_rates = Vec::new();
    let mut planes = Vec::new();
    for _ in 0..REPS {
        let t0 = Instant::now();
        planes = decode(clips);
        decode_rates.push(clips.len() as f64 / t0.elapsed().as_secs_f64());
    }
    println!("decode alone (CPU, the pool's threads): median {:.1} clips/s", median(decode_rates));
    // GDO_BENCH_FRAME_BATCHES="256 1024": the kernels at each batch size (frames per
    // device batch; the pipelined run hands over batches of that many frames too).
    let batches: Vec<usize> = std::env::var("GDO_BENCH_FRAME_BATCHES")
        .ok()
        .map(|v| v.split_whitespace().filter_map(|b| b.parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![gdo_udfs::motion::candle_flow::FRAME_BATCH]);
    // GDO_BENCH_GPU_WORKERS="1 2": threads handing batches to the device in the
    // pipelined run (the best is reported as the path's rate).
    let gpu_workers: Vec<usize> = std::env::var("GDO_BENCH_GPU_WORKERS")
        .ok()
        .map(|v| v.split_whitespace().filter_map(|b| b.parse().ok()).filter(|&w| w > 0).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![1]);
    let mut paths = Vec::new();
    if CandleMotion::new(device.clone()).uses_kernels() {
        for &b in &batches {
            paths.push(CandleMotion::new(device.clone()).with_frame_batch(b));
        }
    }
    paths.push(CandleMotion::tensor_ops(device));
    let mut out = Vec::new();
    for motion in paths {
        let label = match motion.uses_kernels() {
            true => format!("{spec} kernels, batches of {} frames", motion.frame_batch()),
            false => format!("{spec} tensor program"),
        };
        let pipe_clips = (motion.frame_batch() / clips[0].len().max(1)).max(1);
        // One untimed warm-up (CUDA modules load on first use).
        let mut amm: Vec<f64> =
            motion.motion_descriptors(&planes).expect("candle motion runs").into_iter().map(|m| m.0).collect();
        let mut alone = Vec::new();
        for _ in 0..REPS {
            let t0 = Instant::now();
            amm = motion.motion_descriptors(&planes).expect("candle motion runs").into_iter().map(|m| m.0).collect();
            alone.push(clips.len() as f64 / t0.elapsed().as_secs_f64());
        }
        let mut batch_drift = 0f64;
        // Pipelined: the pool decodes batch k + 1 while `workers` threads run the motion
        // of the batches before it on the device (their host-side copying overlaps the
        // device's work; a DataFusion query's partitions do the same).
        let mut piped_by_workers = Vec::new();
        // The tensor program is slow; one device thread is enough to show it.
        let workers_list = if motion.uses_kernels() { gpu_workers.clone() } else { vec![1] };
        for &workers in &workers_list {
            let mut piped = Vec::new();
            for _ in 0..REPS {
                let t0 = Instant::now();
                let chunks: Vec<&[Vec<PathBuf>]> = clips.chunks(pipe_clips).collect();
                let (tx, rx) =
                    std::sync::mpsc::sync_channel::<(usize, Vec<Vec<gdo_udfs::motion::Plane<u8>>>)>(workers + 1);
                let rx = std::sync::Mutex::new(rx);
                let results = std::sync::Mutex::new(vec![Vec::new(); chunks.len()]);
                std::thread::scope(|s| {
                    for _ in 0..workers {
                        s.spawn(|| {
                            loop {
                                let next = rx.lock().expect("receiver").recv();
                                let Ok((k, batch)) = next else { break };
                                let v: Vec<f64> = motion
                                    .motion_descriptors(&batch)
                                    .expect("candle motion runs")
                                    .into_iter()
                                    .map(|m| m.0)
                                    .collect();
                                results.lock().expect("results")[k] = v;
                            }
                        });
                    }
                    for (k, chunk) in chunks.iter().enumerate() {
                        tx.send((k, decode(chunk))).expect("motion threads run");
                    }
                    drop(tx);
                });
                let got: Vec<f64> = results.into_inner().expect("results").concat();
                if motion.uses_kernels() {
                    // One thread per value, fixed-order sums: batching cannot change a bit.
                    assert_eq!(got, amm, "{label}: pipelined run gives other values");
                } else {
                    // Not batch-invariant (cuBLAS and gathers pick their order by shape): said.
                    let worst = got.iter().zip(&amm).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
                    batch_drift = batch_drift.max(worst);
                }
                piped.push(clips.len() as f64 / t0.elapsed().as_secs_f64());
            }
            piped_by_workers.push((workers, piped));
        }
        let worst = amm.iter().zip(tuned).map(|(a, b)| (a - b).abs() / b.abs().max(1e-6)).fold(0f64, f64::max);
        let alone_rate = median(alone.clone());
        println!("candle path, {label}: motion alone median {alone_rate:.1} clips/s (reps: {alone:.1?})");
        if batch_drift > 0.0 {
            println!(
                "candle path, {label}: AMM in batches of {pipe_clips} clips vs all at once: up to {batch_drift:.2e} apart"
            );
        }
        let mut rate = 0f64;
        for (workers, piped) in &piped_by_workers {
            let r = median(piped.clone());
            rate = rate.max(r);
            println!(
                "candle path, {label}: decode + motion (pipelined, {workers} device thread(s)) median {r:.1} clips/s \
                 (reps: {piped:.1?})"
            );
        }
        println!("candle path, {label}: worst AMM relative difference to the tuned kernel {worst:.2e}");
        out.push(CandleRun { label, rate, alone: alone_rate, amm });
    }
    out
}

struct CandleRun {
    label: String,
    rate: f64,
    alone: f64,
    amm: Vec<f64>,
}
