//! `gdo train` and the `tiny-vlm` proxy scorer: stream-to-tensor batching against a
//! batch built by hand, determinism, kill-and-resume, bad input, scorer batching, and
//! what the proxy's VDS says about the sample pool's labelled pairs.
// Some of these tests drive fault injection (a cargo feature); without it their helpers go unused.
#![cfg_attr(not(feature = "fault-injection"), allow(unused_imports, dead_code))]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::Device;
use gdo::models::scorer::{ScoreItem, Scorer};
use gdo::models::tiny_vlm::TinyVlmScorer;
use gdo::models::tiny_vlm::inputs::{FramePrep, build_batch, encode_pair};
use gdo::models::tiny_vlm::tokenizer::{BOS, EOS, PAD, SEP, TextTokenizer};
use gdo::session::new_context;
use gdo::train::batcher::{FrameCache, Row, fetch_frames, read_rows};
use gdo::train::{EvalSplit, TinyVlmConfig, TrainConfig, train};
use gdo_udfs::media::FrameFetcher;

use crate::common::{sample_pool_session, samples};

fn solid(path: &Path, size: u32, rgb: [u8; 3]) -> String {
    image::RgbImage::from_pixel(size, size, image::Rgb(rgb)).save(path).unwrap();
    url::Url::from_file_path(path).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_batches_equal_a_batch_built_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let red = solid(&dir.path().join("red.png"), 32, [255, 0, 0]);
    // 16x16: resized to 32x32 by the batcher; a solid colour stays solid.
    let blue = solid(&dir.path().join("blue.png"), 16, [0, 0, 255]);
    let gone = url::Url::from_file_path(dir.path().join("gone.png")).unwrap().to_string();
    let ctx = new_context();
    let sql = format!(
        "SELECT column1 AS qa_uid, column2 AS question, column3 AS answer, column4 AS frames FROM (VALUES \
         ('a', 'what colour is it', 'red', make_array('{red}', '{blue}')), \
         ('b', 'what colour is it', 'blue', make_array('{blue}')), \
         ('c', 'is it red', 'no', make_array('{gone}', '{red}'))) ORDER BY qa_uid"
    );
    let rows = read_rows(ctx.sql(&sql).await.unwrap().execute_stream().await.unwrap()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.qa_uid.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);

    let tok = TextTokenizer::build(["what colour is it", "red blue no"], 50).unwrap();
    let cfg = TinyVlmConfig { vocab_size: tok.vocab_size(), max_frames: 2, max_text: 10, ..TinyVlmConfig::default() };
    let fetcher = FrameFetcher::new(ctx.runtime_env().object_store_registry.clone());
    let mut skips = BTreeMap::new();
    let refs: Vec<_> = rows.iter().collect();
    let frames = fetch_frames(&fetcher, &refs, &cfg, &mut skips).await;
    assert_eq!(skips, BTreeMap::from([("frame_missing".to_owned(), 1)]), "the missing frame is counted");
    let texts: Vec<_> = rows.iter().map(|r| encode_pair(&tok, &cfg, &r.question, &r.answer).unwrap()).collect();
    let frame_refs: Vec<&[image::RgbImage]> = frames.iter().map(Vec::as_slice).collect();
    // Row b is shown blind.
    let batch = build_batch(&texts, &frame_refs, &[false, true, false], &cfg, &Device::Cpu).unwrap();

    // The same batch by hand.
    let id = |w: &str| tok.token_id(w).unwrap();
    let tokens = [
        [BOS, id("what"), id("colour"), id("is"), id("it"), SEP, id("red"), EOS, PAD, PAD],
        [BOS, id("what"), id("colour"), id("is"), id("it"), SEP, id("blue"), EOS, PAD, PAD],
        [BOS, id("is"), id("it"), id("red"), SEP, id("no"), EOS, PAD, PAD, PAD],
    ];
    assert_eq!(batch.tokens.to_vec2::<u32>().unwrap(), tokens.map(|r| r.to_vec()).to_vec());
    // Position i predicts token i + 1 (EOS predicts padding, which the loss mask drops).
    let mut targets = tokens.map(|r| r.to_vec());
    for t in &mut targets {
        t.remove(0);
        t.push(PAD);
    }
    assert_eq!(batch.targets.to_vec2::<u32>().unwrap(), targets);
    let mask =
        |from: usize, to: usize| (0..10).map(|i| if (from..=to).contains(&i) { 1f32 } else { 0.0 }).collect::<Vec<_>>();
    // Loss on the positions predicting the answer and EOS.
    assert_eq!(batch.loss_mask.to_vec2::<f32>().unwrap(), vec![mask(5, 6), mask(5, 6), mask(4, 5)]);
    assert_eq!(batch.text_mask.to_vec2::<f32>().unwrap(), vec![mask(0, 7), mask(0, 7), mask(0, 6)]);
    // Frames: a = [red, blue]; b blind (nothing); c = [red] (its first frame is missing).
    assert_eq!(batch.frame_mask.to_vec2::<f32>().unwrap(), vec![vec![1.0, 1.0], vec![0.0, 0.0], vec![1.0, 0.0]]);
    let px = batch.frames.dims().to_vec();
    assert_eq!(px, vec![3, 2, 3, 32, 32]);
    let v = batch.frames.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let plane = 32 * 32;
    let channel =
        |b: usize, slot: usize, c: usize| &v[((b * 2 + slot) * 3 + c) * plane..((b * 2 + slot) * 3 + c + 1) * plane];
    let expect = |b: usize, slot: usize, rgb: [f32; 3]| {
        for (c, want) in rgb.iter().enumerate() {
            assert!(channel(b, slot, c).iter().all(|x| x == want), "row {b} slot {slot} channel {c}");
        }
    };
    expect(0, 0, [0.5, -0.5, -0.5]);
    expect(0, 1, [-0.5, -0.5, 0.5]);
    expect(1, 0, [0.0, 0.0, 0.0]);
    expect(1, 1, [0.0, 0.0, 0.0]);
    expect(2, 0, [0.5, -0.5, -0.5]);
    expect(2, 1, [0.0, 0.0, 0.0]);
}

/// The trainer fetches a row's frames once (later epochs read them from memory) and
/// still counts its unreadable frames on every use; without budget, every use fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trainer_fetches_each_rows_frames_once_and_counts_skips_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let green_path = dir.path().join("green.png");
    let gone = url::Url::from_file_path(dir.path().join("gone.png")).unwrap().to_string();
    let cfg = TinyVlmConfig { max_frames: 2, ..TinyVlmConfig::default() };
    let fetcher = FrameFetcher::new(new_context().runtime_env().object_store_registry.clone());
    let missing = |n: u64| BTreeMap::from([("frame_missing".to_owned(), n)]);
    for (budget, cached) in [(1 << 20, true), (0, false)] {
        let green = solid(&green_path, 40, [0, 255, 0]);
        let rows = vec![Row {
            qa_uid: "a".into(),
            question: "what colour is it".into(),
            answer: "green".into(),
            frames: vec![green, gone.clone()],
        }];
        let mut cache = FrameCache::new(FramePrep::from(&cfg), budget);
        let mut skips = BTreeMap::new();
        let first = cache.frames(&fetcher, &rows, &[0], &mut skips).await;
        assert_eq!(first[0].len(), 1, "the missing frame is skipped");
        assert_eq!((first[0][0].width(), first[0][0].get_pixel(3, 3).0), (32, [0, 255, 0]));
        assert_eq!(skips, missing(1));
        std::fs::remove_file(&green_path).unwrap();
        let again = cache.frames(&fetcher, &rows, &[0, 0], &mut skips).await;
        if cached {
            assert_eq!(again, vec![first[0].clone(), first[0].clone()], "served from memory");
            assert_eq!(skips, missing(3), "counted on every use");
        } else {
            assert!(again.iter().all(Vec::is_empty), "fetched again, now both frames are gone");
            assert_eq!(skips, missing(5));
        }
    }
}

fn small() -> TrainConfig {
    TrainConfig { batch_size: 16, checkpoint_every: 64, ..TrainConfig::default() }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).expect("weights")
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trains_deterministically_resumes_bit_identically_and_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = sample_pool_session(tmp.path()).await;
    let input = || async { ctx.sql("SELECT * FROM pool ORDER BY qa_uid LIMIT 160").await.unwrap() };
    let evals = vec![EvalSplit {
        name: "held_out".into(),
        table: ctx.sql("SELECT * FROM pool ORDER BY qa_uid DESC LIMIT 24").await.unwrap(),
    }];
    let out = |n: &str| tmp.path().join(n).display().to_string();

    let a = train(&ctx, input().await, &small(), &evals, &out("a"), false).await.unwrap();
    assert_eq!((a.samples_seen, a.steps), (160, 10));
    assert!(a.final_train_loss.is_finite());
    // Checkpoints every 64 samples (steps 4 and 8) and at the end.
    assert_eq!(a.evals.iter().map(|e| e.step).collect::<Vec<_>>(), vec![4, 8, 10]);
    assert!(a.evals.iter().all(|e| e.n == 24 && (0.0..=1.0).contains(&e.accuracy)), "{:?}", a.evals);
    let b = train(&ctx, input().await, &small(), &evals, &out("b"), false).await.unwrap();
    assert_eq!(weights(&a.checkpoint), weights(&b.checkpoint), "same seed, same data: same weights");
    let other_seed = TrainConfig { seed: 1, ..small() };
    let c = train(&ctx, input().await, &other_seed, &evals, &out("seed1"), false).await.unwrap();
    assert_ne!(weights(&a.checkpoint), weights(&c.checkpoint), "the seed matters");

    // Killed after 6 steps (last checkpoint at step 4), then resumed.
    let stop = TrainConfig { stop_after_steps: Some(6), ..small() };
    let partial = train(&ctx, input().await, &stop, &evals, &out("k"), false).await.unwrap();
    assert!(partial.stopped_early);
    assert_eq!(partial.steps, 6);
    let resumed = train(&ctx, input().await, &small(), &evals, &out("k"), true).await.unwrap();
    assert_eq!(resumed.steps, 10);
    assert_eq!(weights(&a.checkpoint), weights(&resumed.checkpoint), "resume is bit-identical");
    assert_eq!(a.evals, resumed.evals);
    let log = crate::common::query(
        &tmp.path().join("k/metrics"),
        "SELECT count(*) AS n, count(DISTINCT step) AS steps FROM pool",
    )
    .await;
    let log = datafusion::arrow::util::pretty::pretty_format_batches(&log).unwrap().to_string();
    assert!(log.contains("| 3 | 3     |"), "metrics log has one row per checkpoint and split:\n{log}");

    // Bad input: a folder that already holds a run, an empty table, missing columns,
    // resuming a run of another model shape.
    let err = train(&ctx, input().await, &small(), &evals, &out("a"), false).await.unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    let empty = ctx.sql("SELECT * FROM pool WHERE false").await.unwrap();
    let err = train(&ctx, empty, &small(), &evals, &out("e"), false).await.unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let nocol = ctx.sql("SELECT qa_uid, question FROM pool").await.unwrap();
    let err = train(&ctx, nocol, &small(), &evals, &out("f"), false).await.unwrap_err().to_string();
    assert!(err.contains("lacks column(s) answer, frames"), "{err}");
    let wider = TrainConfig { model: TinyVlmConfig { d_model: 32, ..TinyVlmConfig::default() }, ..small() };
    let err = train(&ctx, input().await, &wider, &evals, &out("k"), true).await.unwrap_err().to_string();
    assert!(err.contains("another model shape"), "{err}");

    // The proxy scorer: a batch of 8 equals 8 singles; sampling is seeded.
    let scorer = TinyVlmScorer::load(&a.checkpoint, &Device::Cpu).unwrap();
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    let frames = [img.clone(), img.clone(), img];
    let qs = ["what colour is the disc ?", "which way does it move ?", "how many shapes ?", "is it red ?"];
    let items: Vec<ScoreItem<'_>> = (0..8)
        .map(|i| ScoreItem {
            question: qs[i % 4],
            answer: if i % 2 == 0 { "red" } else { "left" },
            frames: if i < 4 { &frames[..] } else { &frames[..1] },
        })
        .collect();
    let batched = scorer.answer_losses(&items).unwrap();
    for (i, it) in items.iter().enumerate() {
        let single = scorer.answer_losses(std::slice::from_ref(it)).unwrap()[0];
        assert!((single.loss_video - batched[i].loss_video).abs() < 1e-4, "{i}: {single:?} vs {:?}", batched[i]);
        assert!((single.loss_blind - batched[i].loss_blind).abs() < 1e-4, "{i}");
    }
    let s1 = scorer.sample_answers(&items[..2], 2, 7).unwrap();
    assert_eq!(s1, scorer.sample_answers(&items[..2], 2, 7).unwrap());
    // Generation is batched over items and samples; an item's samples do not depend on
    // its batch, and another seed draws others.
    assert_eq!(s1[1..], scorer.sample_answers(&items[1..2], 2, 7).unwrap()[..]);
    let all = scorer.sample_answers(&items, 3, 7).unwrap();
    assert_eq!(all[0][..2], s1[0][..], "sample k of an item does not depend on how many are drawn");
    assert_ne!(all, scorer.sample_answers(&items, 3, 8).unwrap());
    let tnc = scorer.tnc_llm(&qs).unwrap();
    assert_eq!(tnc.len(), 4);
    assert_eq!(tnc[2..], scorer.tnc_llm(&qs[2..]).unwrap()[..]);
}

/// Fine-tuning a tiny-vlm run starts from its weights, config and tokenizer: with a zero
/// learning rate the weights come out unchanged, and `evaluate` of the base gives the
/// accuracy its last checkpoint recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fine_tunes_a_tiny_vlm_run_from_its_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = sample_pool_session(tmp.path()).await;
    let input = || async { ctx.sql("SELECT * FROM pool ORDER BY qa_uid LIMIT 96").await.unwrap() };
    let evals = vec![EvalSplit {
        name: "held_out".into(),
        table: ctx.sql("SELECT * FROM pool ORDER BY qa_uid DESC LIMIT 24").await.unwrap(),
    }];
    let out = |n: &str| tmp.path().join(n).display().to_string();
    let shape = TinyVlmConfig { patch_size: 4, ..TinyVlmConfig::default() };
    let base = train(&ctx, input().await, &TrainConfig { model: shape, ..small() }, &evals, &out("base"), false)
        .await
        .unwrap();
    let from_base =
        |lr: f64| TrainConfig { base_model: Some(tmp.path().join("base")), lr, weight_decay: 0.0, seed: 3, ..small() };
    let frozen = train(&ctx, input().await, &from_base(0.0), &[], &out("frozen"), false).await.unwrap();
    assert_eq!(weights(&base.checkpoint), weights(&frozen.checkpoint), "lr 0: the base's weights, unchanged");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(frozen.checkpoint.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["patch_size"], 4, "the base's shape is kept: {config}");
    let tuned = train(&ctx, input().await, &from_base(1e-3), &[], &out("tuned"), false).await.unwrap();
    assert_ne!(weights(&base.checkpoint), weights(&tuned.checkpoint), "a positive lr moves the weights");
    let with_tok = TrainConfig { tokenizer: Some(out("base/tokenizer.json")), ..from_base(1e-3) };
    let err = train(&ctx, input().await, &with_tok, &[], &out("tok"), false).await.unwrap_err().to_string();
    assert!(err.contains("keeps the base model's tokenizer"), "{err}");
    // The base evaluated as it is: what its last checkpoint recorded.
    let at_start = gdo::train::evaluate(&ctx, &from_base(0.0), &evals).await.unwrap();
    let last = base.evals.last().unwrap();
    assert_eq!((at_start[0].accuracy, at_start[0].n), (last.accuracy, last.n));
    assert_eq!(at_start[0].samples_seen, 0);
}

/// The question kind (`static`, `visual`, `temporal`, `text_only`) of every sample pair,
/// keyed by (source file name, line, turn), from the generator's `gdo_sample` labels.
fn question_kinds() -> HashMap<(String, i64, i32), String> {
    let mut out = HashMap::new();
    for file in ["onevision.jsonl", "video.jsonl"] {
        let text = std::fs::read_to_string(samples().join(file)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let Some(pairs) = v["gdo_sample"]["pairs"].as_array() else { continue };
            for (turn, p) in pairs.iter().enumerate() {
                // The generator's label: `text_only` is the one kind answerable without frames.
                assert_eq!(p["needs_frames"].as_bool(), Some(p["kind"] != "text_only"), "{p}");
                out.insert((file.to_owned(), i as i64 + 1, turn as i32), p["kind"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

/// Generator seeds of the draws the proxy trains on (the committed pool is seed 42).
const PROXY_TRAIN_SEEDS: [u64; 4] = [43, 44, 45, 46];
const PROXY_EPOCHS: usize = 12;

/// What the proxy's VDS (`loss_blind - loss_video`) can tell, when the proxy never
/// trained on the pairs it scores, as the paper's pretrained scorer never saw its pool:
/// it trains on four other draws of the same generator (same question kinds; other
/// clips, colours, directions and numbers), then scores the committed pool.
///
/// What held on every run measured (README, the proxy scorer): image questions that need
/// the picture get a clearly positive VDS (0.058 to 0.091 over three seeds on one
/// machine), 0.067 to 0.125 above text-only questions.
/// What does not hold on every machine, and so is printed, not asserted: text-only
/// questions near zero (-0.005 on one machine; -0.030 and -0.034 on another, where
/// frames the proxy never saw raise the loss of questions that do not need them), and
/// video questions above zero. Trained on the pool itself it memorises, keyed on the
/// frames, answers it cannot compute, and text-only pairs get VDS too (0.121 vs 0.148,
/// README). About 3.5 to 10 minutes (2,640 steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_vds_is_positive_for_image_questions_and_above_text_only_ones() {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    use gdo::pool::{IngestOptions, ingest};
    use gdo_samples::{SampleOptions, generate_sample_pool};
    let tmp = tempfile::tempdir().unwrap();
    let ctx = sample_pool_session(tmp.path()).await;
    let (mut onevision, mut video) = (Vec::new(), Vec::new());
    for seed in PROXY_TRAIN_SEEDS {
        let dir = tmp.path().join(format!("draw{seed}"));
        generate_sample_pool(&dir, &SampleOptions { seed }).unwrap();
        onevision.push(dir.join("onevision.jsonl").display().to_string());
        video.push(dir.join("video.jsonl").display().to_string());
    }
    let train_pool = tmp.path().join("train_pool").display().to_string();
    ingest(&IngestOptions { onevision, video, out: train_pool.clone(), ..IngestOptions::default() }).await.unwrap();
    gdo::session::register_table(&ctx, "train_pool", &train_pool).await.unwrap();
    let shared = ctx
        .sql("SELECT count(*) FROM (SELECT question, answer FROM pool INTERSECT SELECT question, answer FROM train_pool)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0);
    let cfg = TrainConfig { epochs: PROXY_EPOCHS, ..TrainConfig::default() };
    let run = tmp.path().join("scorer");
    let summary = train(&ctx, ctx.table("train_pool").await.unwrap(), &cfg, &[], &run.display().to_string(), false)
        .await
        .unwrap();
    let scorer = TinyVlmScorer::load(&summary.checkpoint, &Device::Cpu).unwrap();

    // Score every pair with its frames decoded the way the trainer sees them.
    let rows = read_rows(
        ctx.sql("SELECT qa_uid, question, answer, frames FROM pool ORDER BY pool_index")
            .await
            .unwrap()
            .execute_stream()
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let keys = ctx.sql("SELECT source_file, source_line, turn FROM pool ORDER BY pool_index").await.unwrap();
    let mut key_rows = Vec::new();
    for b in keys.collect().await.unwrap() {
        let f = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        let (f, l, t) =
            (f.as_string::<i32>(), b.column(1).as_primitive::<Int64Type>(), b.column(2).as_primitive::<Int32Type>());
        for i in 0..b.num_rows() {
            let name = Path::new(f.value(i)).file_name().unwrap().to_string_lossy().into_owned();
            key_rows.push((name, l.value(i), if t.is_null(i) { 0 } else { t.value(i) }));
        }
    }
    let kinds = question_kinds();
    let fetcher = FrameFetcher::new(ctx.runtime_env().object_store_registry.clone());
    let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (chunk, keys) in rows.chunks(32).zip(key_rows.chunks(32)) {
        let refs: Vec<_> = chunk.iter().collect();
        let mut skips = BTreeMap::new();
        let frames = fetch_frames(&fetcher, &refs, &TinyVlmConfig::default(), &mut skips).await;
        let items: Vec<ScoreItem<'_>> = chunk
            .iter()
            .zip(&frames)
            .map(|(r, f)| ScoreItem { question: &r.question, answer: &r.answer, frames: f })
            .collect();
        for (l, key) in scorer.answer_losses(&items).unwrap().into_iter().zip(keys) {
            let kind = kinds.get(key).unwrap_or_else(|| panic!("no label for {key:?}"));
            by_kind.entry(kind.as_str()).or_default().push(l.loss_blind - l.loss_video);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let n = |kind: &str| by_kind.get(kind).map_or(0, Vec::len);
    let m = |kind: &str| mean(&by_kind[kind]);
    let need: Vec<f64> = by_kind.iter().filter(|(k, _)| **k != "text_only").flat_map(|(_, v)| v.clone()).collect();
    let per_kind: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k} {:.4} over {}", mean(v), v.len())).collect();
    println!(
        "proxy VDS (loss_blind - loss_video): {}; all that need frames {:.4} over {}; trained {} steps on {} pairs \
         ({shared} distinct question-answer texts also in the scored pool)",
        per_kind.join(", "),
        mean(&need),
        need.len(),
        summary.steps,
        summary.samples_seen / PROXY_EPOCHS as u64
    );
    assert_eq!(need.len() + n("text_only"), 900);
    assert!(n("static") > 100 && n("text_only") > 100, "{per_kind:?}");
    assert!(m("static") > 0.02, "the picture lowers the answer loss of image questions that need it: {per_kind:?}");
    assert!(
        m("static") > m("text_only") + 0.03,
        "image questions lean on the frames more than text-only ones: {per_kind:?}"
    );
}
