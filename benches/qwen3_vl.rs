//! `cargo bench --profile dev --bench qwen3_vl`: the Qwen3-VL scorer's answer losses
//! (`loss_video` + `loss_blind`) in padded batches against one pair at a time (the
//! reference's way), both measured in this run on the same random-weight model.
//!
//! `GDO_BENCH_MODEL=small` (default: decoder width 256, 4 layers; vision width 128, 4
//! blocks, 16 px patches, DeepStack; runs in seconds) or `2b` (Qwen3-VL-2B's shapes:
//! 28 decoder layers of width 2048, a 24-block vision tower of width 1024, the full
//! 151,936-token vocabulary; about 2.1 billion random weights, 8.5 GB of f32
//! safetensors written to a temporary folder). Frames are 224x224 (49 tokens each).
//!
//! `GDO_BENCH_DEVICE=cuda[:N]` (a `--features cuda` build) runs the scorer on that GPU
//! in bf16 (what `gdo describe --device cuda` uses) and also: the same model in f32 on
//! the GPU against f32 on the CPU over the first `GDO_BENCH_CPU_PAIRS` pairs (the
//! GPU path's correctness check: the largest loss difference), and the CPU's batched
//! throughput on those pairs, for the GPU/CPU ratio.
//! Other settings: `GDO_BENCH_PAIRS` (default 32), `GDO_BENCH_FRAMES` (default 4),
//! `GDO_BENCH_BATCH` (default 8), `GDO_BENCH_RUNS` (default 3), `GDO_BENCH_CPU_PAIRS`
//! (default 8).

use std::time::Instant;

use candle_core::{DType, Device};
use gdo::models::qwen3_vl::{Qwen3VlScorer, tiny};
use gdo::models::{AnswerLosses, ScoreItem, Scorer};
use image::RgbImage;
use serde_json::{Value, json};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Config patches over the tiny test model (`tiny::tiny_config`).
fn model_patch(name: &str) -> Value {
    match name {
        "small" => json!({
            "text_config": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
                            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 32,
                            "rope_scaling": {"mrope_section": [6, 5, 5]}},
            "vision_config": {"depth": 4, "hidden_size": 128, "intermediate_size": 512, "num_heads": 4,
                              "patch_size": 16, "num_position_embeddings": 256, "out_hidden_size": 256,
                              "deepstack_visual_indexes": [0, 1, 2]}
        }),
        // Qwen3-VL-2B-Instruct's published shapes; the tokenizer stays the tiny one (its
        // ids are a subset of the vocabulary).
        "2b" => json!({
            "text_config": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
                            "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
                            "head_dim": 128, "rope_theta": 5000000.0,
                            "rope_scaling": {"mrope_section": [24, 20, 20]}},
            "vision_config": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
                              "patch_size": 16, "num_position_embeddings": 2304, "out_hidden_size": 2048,
                              "deepstack_visual_indexes": [5, 11, 17]}
        }),
        other => panic!("GDO_BENCH_MODEL={other}: use small or 2b"),
    }
}

/// Median seconds of `runs` passes over `items` in batches of `batch` (after one
/// untimed warm-up batch), and the losses of the last pass.
fn time_batches(
    scorer: &Qwen3VlScorer,
    items: &[ScoreItem<'_>],
    batch: usize,
    runs: usize,
) -> (f64, Vec<AnswerLosses>) {
    scorer.answer_losses(&items[..batch.min(items.len())]).expect("warm-up");
    let mut times = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        losses = items.chunks(batch).flat_map(|c| scorer.answer_losses(c).expect("batch")).collect();
        times.push(t.elapsed().as_secs_f64());
    }
    (median(times), losses)
}

fn worst_difference(a: &[AnswerLosses], b: &[AnswerLosses]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.loss_video - y.loss_video).abs().max((x.loss_blind - y.loss_blind).abs()))
        .fold(0f64, f64::max)
}

fn main() {
    let pairs = env_usize("GDO_BENCH_PAIRS", 32);
    let n_frames = env_usize("GDO_BENCH_FRAMES", 4);
    let batch = env_usize("GDO_BENCH_BATCH", 8).max(1);
    let runs = env_usize("GDO_BENCH_RUNS", 3).max(1);
    let model = std::env::var("GDO_BENCH_MODEL").unwrap_or_else(|_| "small".into());
    let device_name = std::env::var("GDO_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = gdo::device::select(&device_name).unwrap_or_else(|e| panic!("GDO_BENCH_DEVICE: {e}"));

    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    tiny::write_tiny_checkpoint(dir.path(), 42, Some(&model_patch(&model))).expect("checkpoint");
    println!(
        "qwen3_vl scorer bench, model '{model}': random-weight checkpoint written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let load = |device: &Device, dtype: DType| {
        let t = Instant::now();
        let mut scorer = Qwen3VlScorer::load_with_dtype(dir.path(), device, dtype).expect("load");
        scorer.set_pixel_range(64, 224 * 224).expect("pixel range");
        println!("  loaded on {device:?} as {dtype:?} in {:.1} s", t.elapsed().as_secs_f64());
        scorer
    };

    let frames: Vec<Vec<RgbImage>> = (0..pairs as u32)
        .map(|i| {
            (0..n_frames as u32)
                .map(|f| {
                    RgbImage::from_fn(224, 224, |x, y| {
                        let v = x.wrapping_mul(31 + i) ^ y.wrapping_mul(17 + f);
                        image::Rgb([(v % 256) as u8, ((v >> 3) % 256) as u8, ((x + y + f * 9) % 256) as u8])
                    })
                })
                .collect()
        })
        .collect();
    let texts: Vec<(String, String)> = (0..pairs)
        .map(|i| {
            (
                format!(
                    "What happens to object {i} between the first and the last frame?{}",
                    " Explain.".repeat(i % 4)
                ),
                format!("It moves {} and then stops.", ["left", "right", "up", "down"][i % 4]).repeat(1 + i % 3),
            )
        })
        .collect();
    let items: Vec<ScoreItem<'_>> =
        texts.iter().zip(&frames).map(|((q, a), f)| ScoreItem { question: q, answer: a, frames: f }).collect();

    if device.is_cuda() {
        gpu_main(&items, &device, &device_name, batch, runs, &load);
        return;
    }
    let scorer = load(&Device::Cpu, DType::F32);
    let (tb, batched_losses) = time_batches(&scorer, &items, batch, runs);
    let mut single = Vec::new();
    let mut singles = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        singles = items.iter().flat_map(|it| scorer.answer_losses(std::slice::from_ref(it)).expect("single")).collect();
        single.push(t.elapsed().as_secs_f64());
    }
    let ts = median(single);
    let worst = worst_difference(&batched_losses, &singles);
    println!(
        "qwen3_vl scorer, CPU, {pairs} pairs x {n_frames} frames of 224x224, medians of {runs} runs \
         (rayon threads: {})",
        rayon::current_num_threads()
    );
    println!("  batches of {batch}: {tb:.3} s ({:.2} pairs/s)", pairs as f64 / tb);
    println!("  one pair at a time: {ts:.3} s ({:.2} pairs/s)", pairs as f64 / ts);
    println!("  batched / single speed: {:.2}x; max |loss difference| {worst:.1e}", ts / tb);
}

/// The GPU run: bf16 throughput (batched and one pair at a time), f32 GPU against f32
/// CPU losses on the first pairs, and the CPU's batched throughput on those pairs.
fn gpu_main(
    items: &[ScoreItem<'_>],
    device: &Device,
    name: &str,
    batch: usize,
    runs: usize,
    load: &dyn Fn(&Device, DType) -> Qwen3VlScorer,
) {
    let cpu_pairs = env_usize("GDO_BENCH_CPU_PAIRS", 8).clamp(1, items.len());
    let n = items.len();
    let bf16 = load(device, DType::BF16);
    let (tb, bf16_losses) = time_batches(&bf16, items, batch, runs);
    let t = Instant::now();
    let singles: Vec<_> =
        items.iter().flat_map(|it| bf16.answer_losses(std::slice::from_ref(it)).expect("single")).collect();
    let ts = t.elapsed().as_secs_f64();
    println!("  {name} bf16, batches of {batch}: {tb:.3} s for {n} pairs ({:.2} pairs/s)", n as f64 / tb);
    println!("  {name} bf16, one pair at a time: {ts:.3} s ({:.2} pairs/s)", n as f64 / ts);
    println!("  {name} bf16 batched vs single: max |loss difference| {:.2e}", worst_difference(&bf16_losses, &singles));
    drop(bf16);

    let gpu32 = load(device, DType::F32);
    let (tg, gpu32_losses) = time_batches(&gpu32, &items[..cpu_pairs], batch, 1);
    drop(gpu32);
    let cpu = load(&Device::Cpu, DType::F32);
    let (tc, cpu_losses) = time_batches(&cpu, &items[..cpu_pairs], batch, 1);
    println!(
        "  {name} f32: {tg:.3} s for {cpu_pairs} pairs; CPU f32: {tc:.3} s (rayon threads: {})",
        rayon::current_num_threads()
    );
    println!(
        "  {name} f32 vs CPU f32 on {cpu_pairs} pairs: max |loss difference| {:.2e}; {name} bf16 vs CPU f32: {:.2e}",
        worst_difference(&gpu32_losses, &cpu_losses),
        worst_difference(&bf16_losses[..cpu_pairs], &cpu_losses)
    );
    println!("  throughput {name} bf16 / CPU f32 (batched): {:.1}x", (n as f64 / tb) / (cpu_pairs as f64 / tc));
}
