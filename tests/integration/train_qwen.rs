//! `gdo train --model DIR`: fine-tuning gdo's Qwen3-VL module with candle's autograd,
//! on a tiny random Qwen3-VL checkpoint written in the released layout and the sample
//! pool's pairs and frames.
// Some of these tests drive fault injection (a cargo feature); without it their helpers go unused.
#![cfg_attr(not(feature = "fault-injection"), allow(unused_imports, dead_code))]

use std::path::Path;

use candle_core::Device;
use gdo::models::load_scorer;
use gdo::models::qwen3_vl::tiny::write_tiny_checkpoint;
use gdo::models::scorer::ScoreItem;
use gdo::models::tiny_vlm::inputs::FramePrep;
use gdo::train::batcher::{fetch_frames, read_rows};
use gdo::train::{EvalSplit, TinyVlmConfig, TrainConfig, train};
use gdo_udfs::media::FrameFetcher;

use crate::common::{gdo, sample_pool_session};

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).expect("weights")
}

/// Mean answer loss (with frames) of `rows` under the scorer in `dir`.
async fn mean_loss(dir: &Path, rows: &[gdo::train::batcher::Row], frames: &[Vec<image::RgbImage>]) -> f64 {
    let scorer = load_scorer(dir, &Device::Cpu).unwrap();
    assert_eq!(scorer.name(), "qwen3-vl");
    let items: Vec<ScoreItem<'_>> = rows
        .iter()
        .zip(frames)
        .map(|(r, f)| ScoreItem { question: &r.question, answer: &r.answer, frames: f })
        .collect();
    let losses = scorer.answer_losses(&items).unwrap();
    losses.iter().map(|l| l.loss_video).sum::<f64>() / losses.len() as f64
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen3_vl_fine_tunes_lowers_the_loss_and_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_tiny_checkpoint(&base, 5, None).unwrap();
    let ctx = sample_pool_session(tmp.path()).await;
    // Video and image pairs with short answers, so 3 epochs move the loss visibly.
    let sql = "SELECT * FROM pool WHERE length(answer) <= 12 ORDER BY qa_uid LIMIT 48";
    let evals = vec![EvalSplit {
        name: "held_out".into(),
        table: ctx.sql("SELECT * FROM pool ORDER BY qa_uid DESC LIMIT 8").await.unwrap(),
    }];
    let cfg = TrainConfig {
        base_model: Some(base.clone()),
        model: TinyVlmConfig { max_frames: 4, ..TinyVlmConfig::default() },
        epochs: 3,
        batch_size: 8,
        lr: 3e-3,
        warmup: 2,
        checkpoint_every: 48,
        ..TrainConfig::default()
    };
    let out = |n: &str| tmp.path().join(n).display().to_string();

    let a = train(&ctx, ctx.sql(sql).await.unwrap(), &cfg, &evals, &out("a"), false).await.unwrap();
    assert_eq!((a.samples_seen, a.steps), (144, 18));
    assert!(a.final_train_loss.is_finite());
    assert_eq!(a.evals.iter().map(|e| e.step).collect::<Vec<_>>(), vec![6, 12, 18]);
    assert!(a.evals.iter().all(|e| e.n == 8 && (0.0..=1.0).contains(&e.accuracy)), "{:?}", a.evals);
    // The checkpoint is a Qwen3-VL folder: the base's files plus trained weights.
    for f in ["config.json", "tokenizer.json", "preprocessor_config.json", "model.safetensors", "state.json"] {
        assert!(a.checkpoint.join(f).is_file(), "{f} in {}", a.checkpoint.display());
    }
    assert!(!tmp.path().join("a/tokenizer.json").exists(), "tiny-vlm's tokenizer is not built for Qwen3-VL");

    // Training lowered the answer loss of the training pairs, scored with their frames
    // through the describe scorer (inference-mode kernels) from each folder.
    let rows = read_rows(ctx.sql(sql).await.unwrap().execute_stream().await.unwrap()).await.unwrap();
    let refs: Vec<&gdo::train::batcher::Row> = rows.iter().collect();
    let fetcher = FrameFetcher::new(ctx.runtime_env().object_store_registry.clone());
    let mut skips = Default::default();
    let frames = fetch_frames(&fetcher, &refs, FramePrep { max_frames: 4, size: None }, &mut skips).await;
    assert!(skips.is_empty(), "{skips:?}");
    assert!(frames.iter().filter(|f| !f.is_empty()).count() >= 8, "the subset has pairs with frames");
    let before = mean_loss(&base, &rows, &frames).await;
    let after = mean_loss(&a.checkpoint, &rows, &frames).await;
    println!("qwen3-vl fine-tuning: mean answer loss {before:.3} -> {after:.3} over {} pairs", rows.len());
    assert!(after < 0.7 * before, "loss {before} -> {after}");

    // Same seed, same data: same weights. Killed after 8 steps (last checkpoint at 6),
    // then resumed: bit-identical to the uninterrupted run.
    let b = train(&ctx, ctx.sql(sql).await.unwrap(), &cfg, &evals, &out("b"), false).await.unwrap();
    assert_eq!(weights(&a.checkpoint), weights(&b.checkpoint));
    let stop = TrainConfig { stop_after_steps: Some(8), ..cfg.clone() };
    let partial = train(&ctx, ctx.sql(sql).await.unwrap(), &stop, &evals, &out("k"), false).await.unwrap();
    assert!(partial.stopped_early && partial.steps == 8);
    let resumed = train(&ctx, ctx.sql(sql).await.unwrap(), &cfg, &evals, &out("k"), true).await.unwrap();
    assert_eq!(resumed.steps, 18);
    assert_eq!(weights(&a.checkpoint), weights(&resumed.checkpoint), "resume is bit-identical");
    assert_eq!(a.evals, resumed.evals);

    // Resuming a Qwen3-VL run as tiny-vlm, or from another Qwen3-VL config, is refused.
    let tiny = TrainConfig { base_model: None, ..cfg.clone() };
    let err = train(&ctx, ctx.sql(sql).await.unwrap(), &tiny, &evals, &out("k"), true).await.unwrap_err().to_string();
    assert!(err.contains("holds a qwen3_vl checkpoint but this run trains tiny-vlm"), "{err}");
    let other = tmp.path().join("other");
    write_tiny_checkpoint(&other, 5, Some(&serde_json::json!({"text_config": {"intermediate_size": 48}}))).unwrap();
    let wider = TrainConfig { base_model: Some(other), ..cfg.clone() };
    let err = train(&ctx, ctx.sql(sql).await.unwrap(), &wider, &evals, &out("k"), true).await.unwrap_err().to_string();
    assert!(err.contains("another model"), "{err}");

    // The same through the CLI, and a clear error for a folder that is no model.
    let run = gdo()
        .args(["train", "--pool", &out("pool"), "--sql", sql, "--model", &base.display().to_string()])
        .args(["--frames", "4", "--batch-size", "8", "--lr", "3e-3", "--out", &out("cli"), "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("trained 48 samples in 6 steps"), "{stdout}");
    assert!(tmp.path().join("cli/checkpoints/step-00000006/model.safetensors").is_file());
    let run = gdo()
        .args(["train", "--pool", &out("pool"), "--model", &out("nowhere"), "--out", &out("cli2")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && stderr.contains("neither tiny-vlm nor a model folder"), "{stderr}");
}
