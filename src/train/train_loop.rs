//! [`train`]: the training loop, its evaluation cadence and the Parquet metrics log.
//!
//! Order and randomness: each epoch visits the rows in a permutation drawn from the
//! seed and the epoch number; whether a pair is shown blind is drawn from the seed, the
//! epoch and its position. A step's inputs therefore depend only on (seed, step), and
//! a resumed run (weights, AdamW moments and step restored from the last checkpoint)
//! performs exactly the updates an uninterrupted run would: bit-identical weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{DataFrame, SessionContext};
use gdo_udfs::media::FrameFetcher;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{GdoError, Result};
use crate::models::tiny_vlm::inputs::FramePrep;
use crate::models::tiny_vlm::model::MODEL_TYPE as TINY_VLM;
use crate::models::tiny_vlm::tokenizer::TextTokenizer;
use crate::models::weights;
use crate::store::Location;
use crate::table::TableWriter;
use crate::train::batcher::{FrameCache, Row, fetch_frames, read_rows};
use crate::train::checkpoint::{self, CheckpointParts, TrainState};
use crate::train::eval::{PreparedSplit, accuracy, candidates};
use crate::train::optimizer::{AdamW, lr_at};
use crate::train::qwen3_vl::{MODEL_TYPE as QWEN3_VL, Qwen3VlTrainee};
use crate::train::trainee::{TinyVlmTrainee, Trainee};
use crate::train::{EvalRecord, EvalSplit, Holdout, MetricRow, TrainConfig, TrainSummary};

/// The run's metrics table, inside its output folder.
pub const METRICS_TABLE: &str = "metrics";

/// Commit `rows` as the next version of the run's metrics table (`<out>/metrics/`): one
/// version per checkpoint, each holding every row so far.
async fn write_metrics(
    out: &Path,
    rows: &[MetricRow],
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    // Signed columns: Delta has no unsigned integers (counts fit in i64).
    let schema = Arc::new(Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        Field::new("samples_seen", DataType::Int64, false),
        Field::new("train_loss", DataType::Float64, false),
        Field::new("lr", DataType::Float64, false),
        Field::new("split", DataType::Utf8, true),
        Field::new("accuracy", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.step as i64))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.samples_seen as i64))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.train_loss))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lr))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.split.as_deref()))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.accuracy))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.n.map(|n| n as i64)))),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), cols)?;
    let root = Location::parse(&out.join(METRICS_TABLE).display().to_string())?;
    let mut table = TableWriter::open(root, "training_metrics").await?;
    for (name, read) in inputs {
        table.read_input(name, read.clone());
    }
    let mut part = table.open_part(None, schema)?;
    part.write(&batch).await?;
    table.add_part(None, part.finish().await?);
    let last = rows.last().map_or(0, |r| r.step);
    table.commit(serde_json::json!({ "rows": rows.len(), "step": last })).await?;
    Ok(())
}

fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000_0000 ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

fn epoch_blind(n: usize, seed: u64, epoch: u64, fraction: f64) -> Vec<bool> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb11d_0000_0000 ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..n).map(|_| rng.random::<f64>() < fraction).collect()
}

async fn prepare_split(
    fetcher: &FrameFetcher,
    split: &EvalSplit,
    cfg: &TrainConfig,
    prep: FramePrep,
    skips: &mut BTreeMap<String, u64>,
) -> Result<PreparedSplit> {
    let mut rows = read_rows(crate::session::in_table_order(split.table.clone()).execute_stream().await?)
        .await
        .map_err(|e| GdoError::Usage(format!("--eval {}: {e}", split.name)))?;
    let cands = candidates(&rows, cfg.eval_max_candidates);
    rows.truncate(cfg.eval_max_questions);
    let refs: Vec<&Row> = rows.iter().collect();
    let mut split_skips = BTreeMap::new();
    let frames = fetch_frames(fetcher, &refs, prep, &mut split_skips).await;
    for (k, v) in split_skips {
        *skips.entry(format!("eval:{k}")).or_default() += v;
    }
    Ok(PreparedSplit { name: split.name.clone(), rows, frames, candidates: cands })
}

/// The model to train: the checkpoint `cfg.base_model` (Qwen3-VL or tiny-vlm), else
/// `tiny-vlm` from its seeded initialisation with a tokenizer from the resumed
/// checkpoint, `cfg.tokenizer`, or built from the training rows (and saved under `out`).
fn trainee(cfg: &TrainConfig, rows: &[Row], out: &Path, latest: Option<&Path>) -> Result<Box<dyn Trainee>> {
    // A base folder is a Qwen3-VL checkpoint or a tiny-vlm `gdo train` output (its newest
    // checkpoint), fine-tuned from its weights with a fresh optimizer.
    let base = match &cfg.base_model {
        None => None,
        Some(dir) => {
            let dir = crate::models::load::model_dir(dir)?;
            let kind = crate::models::load::model_type(&dir)
                .map_err(|e| GdoError::Usage(format!("--model {}: {e}", dir.display())))?;
            Some((dir, kind))
        }
    };
    let wanted = match &base {
        Some((_, kind)) if kind == TINY_VLM => TINY_VLM,
        Some(_) => QWEN3_VL,
        None => TINY_VLM,
    };
    if let Some(dir) = latest {
        let saved = crate::models::load::model_type(dir)
            .map_err(|e| GdoError::Usage(format!("--resume: {}: {e}", dir.display())))?;
        if saved != wanted {
            return Err(GdoError::Usage(format!(
                "--resume: {} holds a {saved} checkpoint but this run trains {wanted}: another model",
                dir.display()
            )));
        }
    }
    match &base {
        Some((dir, kind)) if kind == TINY_VLM => {
            if cfg.tokenizer.is_some() {
                return Err(GdoError::Usage(format!(
                    "--tokenizer: fine-tuning {} keeps the base model's tokenizer",
                    dir.display()
                )));
            }
            let tok = TextTokenizer::load(&dir.join("tokenizer.json"))?;
            let mcfg = crate::models::tiny_vlm::model::read_config(dir)?;
            let model = TinyVlmTrainee::new(&mcfg, tok, cfg.seed, &cfg.device)?;
            // A resumed run loads its own checkpoint over these weights.
            weights::load_weights(model.varmap(), dir, &cfg.device)?;
            return Ok(Box::new(model));
        }
        Some((dir, _)) => return Ok(Box::new(Qwen3VlTrainee::load(dir, cfg.model.max_frames, &cfg.device)?)),
        None => {}
    }
    let tok = match (latest, &cfg.tokenizer) {
        (Some(dir), _) => TextTokenizer::load(&dir.join("tokenizer.json"))?,
        (None, Some(path)) => TextTokenizer::load(Path::new(path))?,
        (None, None) => {
            let tok = TextTokenizer::build(
                rows.iter().flat_map(|r| [r.question.as_str(), r.answer.as_str()]),
                cfg.max_vocab,
            )?;
            tok.save(&out.join("tokenizer.json"))?;
            tok
        }
    };
    let mut mcfg = cfg.model.clone();
    mcfg.vocab_size = tok.vocab_size();
    Ok(Box::new(TinyVlmTrainee::new(&mcfg, tok, cfg.seed, &cfg.device)?))
}

/// `input` without the rows of fold `h` (by `gdo_fold(video_uid, folds)`; a NULL
/// video_uid hashes as ''), so every pair of one clip or image is on one side.
fn without_fold(input: DataFrame, h: Holdout) -> Result<DataFrame> {
    if input.schema().index_of_column_by_name(None, "video_uid").is_none() {
        return Err(GdoError::Usage(format!(
            "--holdout-fold {h}: the training table has no video_uid column to assign folds by"
        )));
    }
    let keep = input.parse_sql_expr(&format!("gdo_fold(coalesce(video_uid, ''), {}) <> {}", h.folds, h.fold))?;
    Ok(input.filter(keep)?)
}

/// Prepared training frames kept in memory across epochs (see [`FrameCache`]).
const FRAME_CACHE_BYTES: usize = 1 << 30;

/// Train a model (`tiny-vlm`, or Qwen3-VL from `cfg.base_model`) on the pairs of `input`
/// (columns qa_uid, question, answer, frames), writing checkpoints, the `metrics` table
/// (and tiny-vlm's `tokenizer.json`) under `out_dir` (a local folder). With `resume`,
/// continue from the last checkpoint there.
pub async fn train(
    ctx: &SessionContext,
    input: DataFrame,
    cfg: &TrainConfig,
    evals: &[EvalSplit],
    out_dir: &str,
    resume: bool,
) -> Result<TrainSummary> {
    if cfg.batch_size == 0 || cfg.epochs == 0 || cfg.checkpoint_every == 0 {
        return Err(GdoError::Usage("batch size, epochs and --checkpoint-every must be positive".into()));
    }
    let out = PathBuf::from(out_dir);
    std::fs::create_dir_all(&out).map_err(|e| GdoError::io(out_dir, e))?;
    let input = match cfg.model.holdout {
        None => input,
        Some(_) if cfg.base_model.is_some() => {
            return Err(GdoError::Usage(
                "--holdout-fold trains tiny-vlm proxies from scratch for cross-fitted scoring; it does not apply to --model"
                    .into(),
            ));
        }
        Some(h) => without_fold(input, h)?,
    };
    // In table order, so the seeded shuffle starts from the same order every run.
    let rows = read_rows(crate::session::in_table_order(input).execute_stream().await?).await?;
    if rows.is_empty() {
        return Err(GdoError::Usage(match cfg.model.holdout {
            Some(h) => format!("the training table minus fold {h} is empty: nothing to train on"),
            None => "the training table is empty: nothing to train on".into(),
        }));
    }
    if !resume && weights::latest(&out)?.is_some() {
        return Err(GdoError::Usage(format!(
            "{out_dir} already holds a training run: pass --resume to continue it, or choose another folder"
        )));
    }
    let latest = if resume {
        Some(weights::latest(&out)?.ok_or_else(|| {
            GdoError::Usage(format!("--resume: no checkpoint under {}", weights::checkpoints_dir(&out).display()))
        })?)
    } else {
        None
    };
    let model = trainee(cfg, &rows, &out, latest.as_deref())?;
    let mut opt = AdamW::new(model.named_vars()?, cfg.weight_decay)?;
    let mut state = TrainState {
        step: 0,
        samples_seen: 0,
        seed: cfg.seed,
        rows: rows.len() as u64,
        last_loss: f64::NAN,
        evals: Vec::new(),
        frame_skips: BTreeMap::new(),
        metrics: Vec::new(),
    };
    if let Some(dir) = &latest {
        model.check_resume(dir)?;
        weights::load_weights(model.varmap(), dir, &cfg.device)?;
        let (saved_state, moments) = checkpoint::load_state(dir)?;
        if saved_state.seed != cfg.seed || saved_state.rows != rows.len() as u64 {
            return Err(GdoError::Usage(format!(
                "--resume: {} was trained with seed {} on {} rows; this run has seed {} and {} rows",
                dir.display(),
                saved_state.seed,
                saved_state.rows,
                cfg.seed,
                rows.len()
            )));
        }
        opt.load_state(moments, saved_state.step)?;
        state = saved_state;
    }

    let fetcher = FrameFetcher::new(ctx.runtime_env().object_store_registry.clone());
    let prep = model.frame_prep();
    let mut eval_skips = BTreeMap::new();
    let mut splits = Vec::new();
    for s in evals {
        splits.push(prepare_split(&fetcher, s, cfg, prep, &mut eval_skips).await?);
    }

    let n = rows.len();
    let bs = cfg.batch_size;
    let steps_per_epoch = n.div_ceil(bs) as u64;
    let total = steps_per_epoch * cfg.epochs as u64;
    let pb =
        if cfg.progress { indicatif::ProgressBar::new(total * bs as u64) } else { indicatif::ProgressBar::hidden() };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} samples {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_position(state.samples_seen);
    let started = Instant::now();
    let start_samples = state.samples_seen;
    let mut window = (0f64, 0u64);
    let mut order_cache: Option<(u64, Vec<usize>, Vec<bool>)> = None;
    let mut last_dir = latest.clone();
    let mut next_ckpt = (state.samples_seen / cfg.checkpoint_every + 1) * cfg.checkpoint_every;
    #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
    let mut stopped_early = false;
    let mut frame_cache = FrameCache::new(prep, FRAME_CACHE_BYTES);
    while state.step < total {
        let epoch = state.step / steps_per_epoch;
        let bi = (state.step % steps_per_epoch) as usize;
        if order_cache.as_ref().map(|c| c.0) != Some(epoch) {
            order_cache =
                Some((epoch, epoch_order(n, cfg.seed, epoch), epoch_blind(n, cfg.seed, epoch, cfg.blind_fraction)));
        }
        let (_, order, blind_all) = order_cache.as_ref().expect("set above");
        let positions = bi * bs..((bi + 1) * bs).min(n);
        let which: Vec<usize> = positions.clone().map(|p| order[p]).collect();
        let batch_rows: Vec<&Row> = which.iter().map(|&i| &rows[i]).collect();
        let blind: Vec<bool> = positions.map(|p| blind_all[p]).collect();
        let frames = frame_cache.frames(&fetcher, &rows, &which, &mut state.frame_skips).await;
        let loss = model.batch_loss(&batch_rows, &frames, &blind)?;
        let loss_value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        if !loss_value.is_finite() {
            return Err(GdoError::Candle(candle_core::Error::Msg(format!(
                "training loss became {loss_value} at step {}; stopped without updating. The last good checkpoint is {}",
                state.step + 1,
                last_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "none (no checkpoint yet)".into())
            ))));
        }
        let lr = lr_at(state.step, total, cfg.warmup, cfg.lr);
        let grads = loss.backward()?;
        opt.step(&grads, lr, cfg.grad_clip)?;
        state.step += 1;
        state.samples_seen += batch_rows.len() as u64;
        window.0 += loss_value;
        window.1 += 1;
        let rate = (state.samples_seen - start_samples) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        pb.set_position(state.samples_seen);
        pb.set_message(format!("loss {loss_value:.4}  {rate:.1} samples/s"));

        if state.samples_seen >= next_ckpt || state.step == total {
            next_ckpt = (state.samples_seen / cfg.checkpoint_every + 1) * cfg.checkpoint_every;
            let train_loss = window.0 / window.1.max(1) as f64;
            window = (0.0, 0);
            state.last_loss = train_loss;
            if splits.is_empty() {
                state.metrics.push(MetricRow {
                    step: state.step,
                    samples_seen: state.samples_seen,
                    train_loss,
                    lr,
                    split: None,
                    accuracy: None,
                    n: None,
                });
            }
            for s in &splits {
                let (acc, count) = accuracy(model.as_ref(), s)?;
                let rec = EvalRecord {
                    step: state.step,
                    samples_seen: state.samples_seen,
                    split: s.name.clone(),
                    accuracy: acc,
                    n: count,
                };
                state.metrics.push(MetricRow {
                    step: state.step,
                    samples_seen: state.samples_seen,
                    train_loss,
                    lr,
                    split: Some(s.name.clone()),
                    accuracy: Some(acc),
                    n: Some(count),
                });
                state.evals.push(rec);
            }
            let dir = checkpoint::save(
                &out,
                CheckpointParts {
                    files: model.checkpoint_files()?,
                    weights: weights::weights(model.varmap())?,
                    optimizer: opt.state_tensors(),
                    state: &state,
                },
            )?;
            write_metrics(&out, &state.metrics, &cfg.inputs).await?;
            last_dir = Some(dir);
        }
        #[cfg(feature = "fault-injection")]
        if cfg.stop_after_steps == Some(state.step) && state.step < total {
            stopped_early = true;
            break;
        }
    }
    pb.finish_and_clear();
    let mut frame_skips = state.frame_skips.clone();
    frame_skips.extend(eval_skips);
    Ok(TrainSummary {
        samples_seen: state.samples_seen,
        steps: state.step,
        final_train_loss: state.last_loss,
        evals: state.evals,
        frame_skips,
        checkpoint: last_dir.unwrap_or_else(|| weights::checkpoints_dir(&out)),
        stopped_early,
    })
}

/// Accuracy of the checkpoint `cfg.base_model` on each split, untrained further (the
/// starting point of a fine-tuning run), under the same evaluation rule and limits as
/// [`train`]'s checkpoints; records have step and samples_seen 0.
pub async fn evaluate(ctx: &SessionContext, cfg: &TrainConfig, evals: &[EvalSplit]) -> Result<Vec<EvalRecord>> {
    if cfg.base_model.is_none() {
        return Err(GdoError::Usage("evaluate: no checkpoint given (base_model)".into()));
    }
    let model = trainee(cfg, &[], Path::new("."), None)?;
    let fetcher = FrameFetcher::new(ctx.runtime_env().object_store_registry.clone());
    let mut skips = BTreeMap::new();
    let mut out = Vec::new();
    for s in evals {
        let split = prepare_split(&fetcher, s, cfg, model.frame_prep(), &mut skips).await?;
        let (accuracy, n) = accuracy(model.as_ref(), &split)?;
        out.push(EvalRecord { step: 0, samples_seen: 0, split: s.name.clone(), accuracy, n });
    }
    Ok(out)
}
