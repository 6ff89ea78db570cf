//! `cargo bench --profile dev --bench qwen3_vl`: the Qwen3-VL scorer's answer losses
//! (`loss_video` + `loss_blind`) in padded batches against one pair at a time (the
//! reference's way), both measured in this run on the same random-weight model (CPU).
//!
//! The model is small (decoder width 256, 4 layers; vision width 128, 4 blocks, 16 px
//! patches, DeepStack) so the bench runs in seconds; frames are 224x224 (49 tokens each).
//! Environment: `GDO_BENCH_PAIRS` (default 32), `GDO_BENCH_FRAMES` (default 4),
//! `GDO_BENCH_BATCH` (default 8), `GDO_BENCH_RUNS` (default 3).

use std::time::Instant;

use candle_core::Device;
use gdo::describe::qwen3_vl::{Qwen3VlScorer, tiny};
use gdo::describe::{ScoreItem, Scorer};
use image::RgbImage;
use serde_json::json;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let pairs = env_usize("GDO_BENCH_PAIRS", 32);
    let n_frames = env_usize("GDO_BENCH_FRAMES", 4);
    let batch = env_usize("GDO_BENCH_BATCH", 8).max(1);
    let runs = env_usize("GDO_BENCH_RUNS", 3).max(1);

    let dir = tempfile::tempdir().expect("tempdir");
    let patch = json!({
        "text_config": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
                        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 32,
                        "rope_scaling": {"mrope_section": [6, 5, 5]}},
        "vision_config": {"depth": 4, "hidden_size": 128, "intermediate_size": 512, "num_heads": 4,
                          "patch_size": 16, "num_position_embeddings": 256, "out_hidden_size": 256,
                          "deepstack_visual_indexes": [0, 1, 2]}
    });
    tiny::write_tiny_checkpoint(dir.path(), 42, Some(&patch)).expect("checkpoint");
    let mut scorer = Qwen3VlScorer::load(dir.path(), &Device::Cpu).expect("load");
    scorer.set_pixel_range(64, 224 * 224).expect("pixel range");

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

    // Warm-up (allocations, thread pool).
    scorer.answer_losses(&items[..batch.min(pairs)]).expect("warm-up");
    let mut batched = Vec::new();
    let mut single = Vec::new();
    let mut worst = 0f64;
    for _ in 0..runs {
        let t = Instant::now();
        let b: Vec<_> = items.chunks(batch).flat_map(|c| scorer.answer_losses(c).expect("batch")).collect();
        batched.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s: Vec<_> =
            items.iter().flat_map(|it| scorer.answer_losses(std::slice::from_ref(it)).expect("single")).collect();
        single.push(t.elapsed().as_secs_f64());
        for (x, y) in b.iter().zip(&s) {
            worst = worst.max((x.loss_video - y.loss_video).abs()).max((x.loss_blind - y.loss_blind).abs());
        }
    }
    let (tb, ts) = (median(batched), median(single));
    println!(
        "qwen3_vl scorer, CPU, {pairs} pairs x {n_frames} frames of 224x224, medians of {runs} runs \
         (rayon threads: {})",
        rayon::current_num_threads()
    );
    println!("  batches of {batch}: {tb:.3} s ({:.1} pairs/s)", pairs as f64 / tb);
    println!("  one pair at a time: {ts:.3} s ({:.1} pairs/s)", pairs as f64 / ts);
    println!("  batched / single speed: {:.2}x; max |loss difference| {worst:.1e}", ts / tb);
}
