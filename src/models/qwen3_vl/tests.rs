//! Tests on a tiny random Qwen3-VL written to disk in the released layout and loaded
//! through the same path as a real checkpoint (CPU, f32).

use std::path::Path;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use candle_transformers::models::qwen3_vl as ct;
use image::RgbImage;

use super::nn::Mode;
use super::processor::answer_targets;
use super::scorer::{argmax, sample_top_p, tnc_from_reply};
use super::*;
use crate::models::scorer::{ScoreItem, Scorer};

const CPU: Device = Device::Cpu;

fn checkpoint(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_tiny_checkpoint(dir.path(), seed, None).unwrap();
    dir
}

/// A deterministic textured frame.
fn frame(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(37).wrapping_add(y.wrapping_mul(91)).wrapping_add(seed.wrapping_mul(53));
        image::Rgb([(v % 251) as u8, ((v / 3) % 241) as u8, (v.wrapping_mul(7) % 239) as u8])
    })
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

fn mmap(dir: &Path) -> VarBuilder<'static> {
    #[allow(unsafe_code)]
    unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &CPU).unwrap()
    }
}

/// candle-transformers' model on the same files.
fn candle_transformers_model(dir: &Path) -> ct::Qwen3VLModel {
    let cfg: ct::Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    ct::Qwen3VLModel::new(&cfg, mmap(dir)).unwrap()
}

#[test]
fn text_logits_equal_candle_transformers_at_every_position() {
    let dir = checkpoint(7);
    let ours = Qwen3VlModel::load(dir.path(), DType::F32, &CPU).unwrap();
    let proc = Processor::load(dir.path(), &ours.config).unwrap();
    let seq = proc.scoring_sequence("What colour is the ball?", "It is red.", vec![]).unwrap();
    let (input, _) = proc.collate(&[&seq], Padding::Right, &CPU).unwrap();
    let logits = ours.forward(&input).unwrap().i(0).unwrap();
    assert_eq!(logits.dims(), &[seq.ids.len(), 272]);
    // Theirs is causal only when fed one token at a time (its cache gives the past), so
    // each of its steps is compared with our logits at that position.
    let theirs = candle_transformers_model(dir.path());
    let mut worst = 0f32;
    for (i, &id) in seq.ids.iter().enumerate() {
        let ids = Tensor::new(&[[id]], &CPU).unwrap();
        let last = theirs.forward(&ids, None, None, None, None, vec![1], vec![vec![]], vec![vec![]], &[i]).unwrap();
        worst = worst.max(max_abs_diff(&last.i(0).unwrap(), &logits.i(i).unwrap()));
    }
    eprintln!("text parity: max |ours - candle-transformers| = {worst:e} over {} positions", seq.ids.len());
    assert!(worst < 1e-4, "max |ours - candle-transformers| = {worst}");
    assert!(max_abs(&logits) > 0.1, "logits should not be trivially small");
}

#[test]
fn image_logits_equal_candle_transformers_at_the_last_position() {
    let dir = checkpoint(11);
    // Switch ours to candle-transformers' simplifications: tanh GELU in the mergers, 1D
    // positions, no causal mask in the prefill (see the module docs).
    let mut cfg = Qwen3VlConfig::load(dir.path()).unwrap();
    cfg.vision_config.merger_hidden_act = candle_nn::Activation::GeluPytorchTanh;
    let ours = Qwen3VlModel::new(&cfg, Mode::Inference, mmap(dir.path())).unwrap();
    let proc = Processor::load(dir.path(), &cfg).unwrap();
    // Two equal frames (one attention run), a small one, a different size again.
    let frames = [frame(24, 16, 1), frame(24, 16, 2), frame(8, 8, 3), frame(16, 16, 4)];
    let images: Vec<FramePatches> = frames.iter().map(|f| proc.frame_patches(f).unwrap()).collect();
    assert_eq!(images.iter().map(|i| i.grid).collect::<Vec<_>>(), vec![[1, 4, 6], [1, 4, 6], [1, 2, 2], [1, 4, 4]]);
    let seq = proc.prompt("Which way does the ball move?", images).unwrap();
    let l = seq.ids.len();
    let (mut input, _) = proc.collate(&[&seq], Padding::Right, &CPU).unwrap();
    input.positions = vec![(0..l as i64).map(|i| [i; 3]).collect()];
    input.bias_override = Some(Tensor::zeros((1, 1, l, l), DType::F32, &CPU).unwrap());
    let ours_last = ours.forward(&input).unwrap().i((0, l - 1)).unwrap();

    let pad = proc.tokens.image_pad;
    let mut spans = Vec::new();
    let mut j = 0;
    while j < l {
        if seq.ids[j] == pad {
            let start = j;
            while j < l && seq.ids[j] == pad {
                j += 1;
            }
            spans.push((start, j));
        } else {
            j += 1;
        }
    }
    assert_eq!(spans.len(), 4);
    let grid: Vec<u32> = seq.images.iter().flat_map(|i| i.grid.map(|x| x as u32)).collect();
    let grid = Tensor::from_vec(grid, (4, 3), &CPU).unwrap();
    let ids = Tensor::new(seq.ids.as_slice(), &CPU).unwrap().unsqueeze(0).unwrap();
    let pixels = input.pixel_values.clone().unwrap();
    let theirs = candle_transformers_model(dir.path());
    let their_last = theirs
        .forward(&ids, Some(pixels.clone()), None, Some(grid), None, vec![l], vec![spans], vec![vec![]], &[0])
        .unwrap()
        .i(0)
        .unwrap();
    let d = max_abs_diff(&ours_last, &their_last);
    eprintln!("image parity: max |ours - candle-transformers| = {d:e} ({l} tokens, 4 frames)");
    assert!(d < 1e-4, "max |ours - candle-transformers| = {d}");

    // Not vacuous: other pixels move the logits.
    input.pixel_values = Some(pixels.affine(0.5, 0.1).unwrap());
    let moved = ours.forward(&input).unwrap().i((0, l - 1)).unwrap();
    assert!(max_abs_diff(&moved, &ours_last) > 1e-3);
}

#[test]
fn shapes_of_a_padded_batch_and_the_vision_tower() {
    let dir = checkpoint(3);
    let model = Qwen3VlModel::load(dir.path(), DType::F32, &CPU).unwrap();
    let proc = Processor::load(dir.path(), &model.config).unwrap();
    let a = proc.scoring_sequence("q one", "answer one", vec![proc.frame_patches(&frame(24, 16, 1)).unwrap()]).unwrap();
    let b = proc.scoring_sequence("a longer question, with no frames", "x", vec![]).unwrap();
    assert_eq!(a.ids.iter().filter(|&&t| t == proc.tokens.image_pad).count(), 6);
    let (input, offsets) = proc.collate(&[&a, &b], Padding::Right, &CPU).unwrap();
    assert_eq!(offsets, vec![0, 0]);
    let l = a.ids.len().max(b.ids.len());
    assert_eq!(model.forward(&input).unwrap().dims(), &[2, l, 272]);
    let pixels = input.pixel_values.as_ref().unwrap();
    assert_eq!(pixels.dims(), &[24, 3 * 2 * 4 * 4]);
    let (merged, deepstack) = model.vision.forward(pixels, &input.image_grids).unwrap();
    assert_eq!(merged.dims(), &[6, 32]);
    assert_eq!(deepstack.len(), 2);
    assert!(deepstack.iter().all(|d| d.dims() == [6, 32]));
    // Left padding puts the shorter row's tokens at the end.
    let (_, offsets) = proc.collate(&[&a, &b], Padding::Left, &CPU).unwrap();
    assert_eq!(offsets, vec![l - a.ids.len(), l - b.ids.len()]);
}

#[test]
fn loss_counts_answer_tokens_only() {
    let dir = checkpoint(5);
    let scorer = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let (proc, model) = (scorer.processor(), scorer.model());
    let frames = vec![proc.frame_patches(&frame(24, 16, 9)).unwrap()];
    let seq = proc.scoring_sequence("What is shown?", "a cat on a mat", frames.clone()).unwrap();
    let loss = scorer.sequence_losses(std::slice::from_ref(&seq)).unwrap()[0];

    // By hand from the logits at every position.
    let (input, _) = proc.collate(&[&seq], Padding::Right, &CPU).unwrap();
    let logits = model.forward(&input).unwrap().i(0).unwrap();
    let logp: Vec<Vec<f32>> = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap().to_vec2().unwrap();
    let mean_from = |start: usize| {
        let n = seq.ids.len() - start;
        (start..seq.ids.len()).map(|j| -(logp[j - 1][seq.ids[j] as usize] as f64)).sum::<f64>() / n as f64
    };
    assert!((loss - mean_from(seq.answer_start)).abs() < 1e-5, "{loss} vs {}", mean_from(seq.answer_start));
    assert!((loss - mean_from(1)).abs() > 1e-3, "prompt tokens must not count");

    // The loss mask decides: one prompt token more changes the loss, as computed by hand.
    let mut wider = seq.clone();
    wider.answer_start -= 1;
    let wider_loss = scorer.sequence_losses(&[wider.clone()]).unwrap()[0];
    assert!((wider_loss - mean_from(wider.answer_start)).abs() < 1e-5);
    assert!((wider_loss - loss).abs() > 1e-6);

    // Another question: the same answer tokens are the targets; the loss moves only
    // because the context did.
    let other = proc.scoring_sequence("Describe the picture in detail please", "a cat on a mat", frames).unwrap();
    let t1 = answer_targets(&[&seq], &[0], seq.ids.len());
    let t2 = answer_targets(&[&other], &[0], other.ids.len());
    assert_eq!(t1.ids, t2.ids);
    assert_eq!(t1.ids, proc.tokenizer().encode("a cat on a mat", false).unwrap().get_ids());
    let other_loss = scorer.sequence_losses(&[other]).unwrap()[0];
    assert!((other_loss - loss).abs() > 1e-6);
    // An empty answer has no defined loss.
    let empty = proc.scoring_sequence("What is shown?", "", vec![]).unwrap();
    assert!(scorer.sequence_losses(&[empty]).unwrap()[0].is_nan());
}

#[test]
fn blind_and_sighted_losses_differ() {
    let dir = checkpoint(5);
    let scorer = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let frames = vec![frame(24, 16, 1), frame(24, 16, 2)];
    let items = [
        ScoreItem { question: "Which way does it move?", answer: "to the left", frames: &frames },
        ScoreItem { question: "What is two plus two?", answer: "four", frames: &[] },
    ];
    let out = scorer.answer_losses(&items).unwrap();
    assert!((out[0].loss_video - out[0].loss_blind).abs() > 1e-4, "{:?}", out[0]);
    assert!(out.iter().all(|l| l.loss_video.is_finite() && l.loss_blind.is_finite() && l.loss_video > 0.0));
    // Without frames both passes see the same input (padded to other lengths in the
    // two batches, hence float rounding only).
    assert!((out[1].loss_video - out[1].loss_blind).abs() < 1e-5, "{:?}", out[1]);
}

fn eight_items(frames: &[Vec<RgbImage>]) -> Vec<ScoreItem<'_>> {
    let qa = [
        ("What happens first?", "The door opens."),
        ("Is the ball red?", "yes"),
        ("Describe the motion of the car across the frames in detail.", "It drives left, then stops near the tree."),
        ("Count the birds.", "3"),
        ("Why?", "Because the light turned green and the cars started moving again."),
        ("Which object appears last?", "a blue cube"),
        ("What colour is the sky?", "grey"),
        ("Does the camera pan?", "No, it stays still."),
    ];
    qa.iter().zip(frames).map(|(&(question, answer), f)| ScoreItem { question, answer, frames: f }).collect()
}

fn eight_frame_sets() -> Vec<Vec<RgbImage>> {
    (0..8u32)
        .map(|i| match i % 4 {
            0 => vec![],
            1 => vec![frame(24, 16, i)],
            2 => vec![frame(16, 16, i), frame(16, 16, i + 1), frame(8, 8, i + 2)],
            _ => vec![frame(32, 32, i), frame(24, 16, i + 1)],
        })
        .collect()
}

#[test]
fn a_batch_of_eight_equals_eight_single_calls() {
    let dir = checkpoint(13);
    let scorer = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let frames = eight_frame_sets();
    let items = eight_items(&frames);
    let batch = scorer.answer_losses(&items).unwrap();
    assert_eq!(batch.len(), 8);
    let mut worst = 0f64;
    for (item, b) in items.iter().zip(&batch) {
        let single = scorer.answer_losses(std::slice::from_ref(item)).unwrap()[0];
        worst = worst.max((single.loss_video - b.loss_video).abs()).max((single.loss_blind - b.loss_blind).abs());
    }
    eprintln!("batch of 8 vs 8 singles: max |diff| = {worst:e}");
    assert!(worst < 1e-5, "batch vs single: max |diff| = {worst}");

    // Generation is batch-independent too (left padding, per-item seeds).
    let questions: Vec<&str> = items.iter().map(|i| i.question).collect();
    let tnc = scorer.tnc_llm(&questions).unwrap();
    let samples = scorer.sample_answers(&items, 2, 42).unwrap();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(scorer.tnc_llm(&[item.question]).unwrap()[0], tnc[i]);
        assert_eq!(scorer.sample_answers(std::slice::from_ref(item), 2, 42).unwrap()[0], samples[i]);
    }
    assert!(tnc.iter().all(|v| [0.0, 0.5, 1.0].contains(v)));
}

#[test]
fn sampling_is_seeded_and_checkpoints_are_reproducible() {
    let dir = checkpoint(17);
    let scorer = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let frames = eight_frame_sets();
    let all = eight_items(&frames);
    let items = &all[..3];
    let a = scorer.sample_answers(items, 5, 42).unwrap();
    let b = scorer.sample_answers(items, 5, 42).unwrap();
    let c = scorer.sample_answers(items, 5, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|s| s.len() == 5));
    assert!(a.iter().flatten().any(|s| !s.is_empty()));

    let again = tempfile::tempdir().unwrap();
    tiny::write_tiny_checkpoint(again.path(), 17, None).unwrap();
    let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(bytes(dir.path()), bytes(again.path()));
    tiny::write_tiny_checkpoint(again.path(), 18, None).unwrap();
    assert_ne!(bytes(dir.path()), bytes(again.path()));
}

#[test]
fn cached_generation_equals_full_recomputation() {
    let dir = checkpoint(19);
    let scorer = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let (proc, model) = (scorer.processor(), scorer.model());
    let frames = vec![proc.frame_patches(&frame(24, 16, 5)).unwrap()];
    let prompt = proc.prompt("What moves?", frames).unwrap();
    // Never stop early: pick the best non-stop token.
    let stop = proc.tokens.stop.clone();
    let greedy = |_: usize, logits: &[f32]| {
        let mut l = logits.to_vec();
        stop.iter().for_each(|&s| l[s as usize] = f32::NEG_INFINITY);
        let best = l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0))).unwrap().0;
        Ok(best as u32)
    };
    let out = scorer.generate(std::slice::from_ref(&prompt), 1, 6, greedy).unwrap().remove(0);
    assert_eq!(out.len(), 6);
    // Full forward over prompt + generated tokens: the same greedy choices.
    let mut full = prompt.clone();
    for &t in &out {
        full.ids.push(t);
        full.positions.push([full.next_position; 3]);
        full.next_position += 1;
    }
    let (input, _) = proc.collate(&[&full], Padding::Right, &CPU).unwrap();
    let logits: Vec<Vec<f32>> = model.forward(&input).unwrap().i(0).unwrap().to_vec2().unwrap();
    let n = prompt.ids.len();
    for (k, &t) in out.iter().enumerate() {
        let mut row = logits[n - 1 + k].clone();
        proc.tokens.stop.iter().for_each(|&s| row[s as usize] = f32::NEG_INFINITY);
        let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0))).unwrap().0;
        assert_eq!(best as u32, t, "token {k}");
    }
}

#[test]
fn helpful_errors_for_bad_folders() {
    let err = |dir: &Path| Qwen3VlScorer::load(dir, &CPU).err().expect("load should fail").to_string();
    let empty = tempfile::tempdir().unwrap();
    assert!(err(empty.path()).contains("no config.json"), "{}", err(empty.path()));

    let dir = checkpoint(23);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert!(err(dir.path()).contains("no *.safetensors"), "{}", err(dir.path()));

    let dir = checkpoint(23);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert!(err(dir.path()).contains("no tokenizer.json"), "{}", err(dir.path()));

    // Weights of another size than config.json says.
    let dir = checkpoint(23);
    let path = dir.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["text_config"]["intermediate_size"] = 48.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let msg = err(dir.path());
    assert!(msg.contains("do not match config.json") && msg.contains("mlp"), "{msg}");

    cfg["model_type"] = "llava".into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    assert!(err(dir.path()).contains("expected \"qwen3_vl\""), "{}", err(dir.path()));
}

#[test]
fn reply_rule_and_nucleus_sampling() {
    assert_eq!(tnc_from_reply("Temporal."), 1.0);
    assert_eq!(tnc_from_reply(" static"), 0.0);
    assert_eq!(tnc_from_reply("Maybe"), 0.5);
    assert!(argmax(&[0.0, f32::NAN]).is_err());
    // -inf is a masked token: never chosen, never drawn; all masked is an error.
    assert_eq!(argmax(&[f32::NEG_INFINITY, -3.0, -5.0]).unwrap(), 1);
    assert!(argmax(&[f32::NEG_INFINITY; 2]).is_err());
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    // One token holds > 90% of the mass: top-p 0.9 always picks it.
    let logits = [10.0f32, 0.0, 0.0, 0.0];
    assert!((0..100).all(|_| sample_top_p(&logits, 0.8, 0.9, &mut rng).unwrap() == 0));
    // Two equal tokens: both are drawn, the negligible ones never.
    let logits = [5.0f32, 5.0, -20.0, -20.0];
    let draws: Vec<u32> = (0..200).map(|_| sample_top_p(&logits, 0.8, 0.9, &mut rng).unwrap()).collect();
    assert!(draws.contains(&0) && draws.contains(&1) && draws.iter().all(|&d| d < 2));
}

#[test]
fn one_adamw_step_lowers_the_loss() {
    let dir = checkpoint(29);
    let cfg = Qwen3VlConfig::load(dir.path()).unwrap();
    let mut varmap = VarMap::new();
    let model = Qwen3VlModel::new(&cfg, Mode::Training, VarBuilder::from_varmap(&varmap, DType::F32, &CPU)).unwrap();
    varmap.load(dir.path().join("model.safetensors")).unwrap();
    let proc = Processor::load(dir.path(), &cfg).unwrap();
    let seqs = vec![
        proc.scoring_sequence("Which way?", "left", vec![proc.frame_patches(&frame(24, 16, 1)).unwrap()]).unwrap(),
        proc.scoring_sequence("What is it?", "a small red ball", vec![]).unwrap(),
    ];
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let loss = || {
        let (input, offsets) = proc.collate(&refs, Padding::Right, &CPU).unwrap();
        let hidden = model.forward_hidden(&input, None).unwrap();
        let t = answer_targets(&refs, &offsets, hidden.dim(1).unwrap());
        model.token_nll(&hidden, &t.rows, &t.ids).unwrap().mean_all().unwrap()
    };
    let before = loss();
    // The training-mode forward computes the same numbers as inference mode.
    let inference = Qwen3VlScorer::load(dir.path(), &CPU).unwrap();
    let per_seq = inference.sequence_losses(&seqs).unwrap();
    let counts: Vec<usize> = seqs.iter().map(|s| s.ids.len() - s.answer_start).collect();
    let token_mean =
        per_seq.iter().zip(&counts).map(|(l, &c)| l * c as f64).sum::<f64>() / counts.iter().sum::<usize>() as f64;
    let before_v = before.to_scalar::<f32>().unwrap() as f64;
    assert!((before_v - token_mean).abs() < 1e-4, "{before_v} vs {token_mean}");

    let grads = before.backward().unwrap();
    let patch = varmap.data().lock().unwrap()["model.visual.patch_embed.proj.weight"].clone();
    let g = grads.get(patch.as_tensor()).expect("the vision tower gets gradients");
    assert!(max_abs(g) > 0.0);

    let mut opt =
        candle_nn::AdamW::new(varmap.all_vars(), candle_nn::ParamsAdamW { lr: 1e-2, ..Default::default() }).unwrap();
    opt.backward_step(&before).unwrap();
    let after = loss().to_scalar::<f32>().unwrap() as f64;
    assert!(after < before_v - 1e-3, "loss {before_v} -> {after}");
}

#[test]
fn long_prompts_attend_in_query_blocks_without_changing_logits() {
    let dir = checkpoint(31);
    let model = Qwen3VlModel::load(dir.path(), DType::F32, &CPU).unwrap();
    let proc = Processor::load(dir.path(), &model.config).unwrap();
    let seq = proc.prompt(&"the ball rolls left. ".repeat(32), vec![]).unwrap();
    let n = seq.ids.len();
    assert!(n > 600, "{n} tokens");
    let (input, _) = proc.collate(&[&seq], Padding::Right, &CPU).unwrap();
    let full = model.forward(&input).unwrap().i(0).unwrap();
    // Reference: one block of 512 positions, then one token at a time through the cache.
    let part = |r: std::ops::Range<usize>| ModelInput {
        input_ids: vec![seq.ids[r.clone()].to_vec()],
        attention_mask: vec![vec![true; r.end]],
        positions: vec![seq.positions[r].to_vec()],
        pixel_values: None,
        image_grids: Vec::new(),
        bias_override: None,
    };
    let mut cache = KvCache::new();
    let head = model.text.lm_head(&model.forward_hidden(&part(0..512), Some(&mut cache)).unwrap()).unwrap();
    let mut worst = max_abs_diff(&head.i(0).unwrap(), &full.narrow(0, 0, 512).unwrap());
    for p in 512..n {
        let h = model.forward_hidden(&part(p..p + 1), Some(&mut cache)).unwrap();
        let step = model.text.lm_head(&h).unwrap().i((0, 0)).unwrap();
        worst = worst.max(max_abs_diff(&step, &full.i(p).unwrap()));
    }
    assert_eq!(cache.len(), n);
    assert!(worst < 1e-4, "max |blocked - incremental| = {worst}");
}

#[test]
fn sharded_checkpoints_and_bf16_load_through_the_same_path() {
    let dir = checkpoint(37);
    let frames = vec![frame(24, 16, 1), frame(16, 16, 2)];
    let items = [
        ScoreItem { question: "Which way does it move?", answer: "to the left", frames: &frames },
        ScoreItem { question: "What is two plus two?", answer: "four", frames: &[] },
    ];
    let single = Qwen3VlScorer::load(dir.path(), &CPU).unwrap().answer_losses(&items).unwrap();

    // The same tensors split over two shards, as large checkpoints are published.
    let all = candle_core::safetensors::load(dir.path().join("model.safetensors"), &CPU).unwrap();
    let (a, b): (Vec<_>, Vec<_>) = all.into_iter().partition(|(name, _)| name.contains("visual"));
    let a: std::collections::HashMap<_, _> = a.into_iter().collect();
    let b: std::collections::HashMap<_, _> = b.into_iter().collect();
    candle_core::safetensors::save(&a, dir.path().join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&b, dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let sharded = Qwen3VlScorer::load(dir.path(), &CPU).unwrap().answer_losses(&items).unwrap();
    assert_eq!(single, sharded);

    // bf16 (the GPU dtype) runs end to end and stays near f32.
    let bf16 = Qwen3VlScorer::load_with_dtype(dir.path(), &CPU, DType::BF16).unwrap();
    assert_eq!(bf16.model().dtype(), DType::BF16);
    let low = bf16.answer_losses(&items).unwrap();
    for (x, y) in low.iter().zip(&single) {
        assert!((x.loss_video - y.loss_video).abs() < 0.1 && (x.loss_blind - y.loss_blind).abs() < 0.1, "{x:?} {y:?}");
    }
    assert_eq!(bf16.tnc_llm(&["Does the ball move?"]).unwrap().len(), 1);
    assert_eq!(bf16.sample_answers(&items, 2, 1).unwrap()[0].len(), 2);
}
