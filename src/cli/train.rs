//! `gdo train`: train `tiny-vlm`, or fine-tune Qwen3-VL, on a table or SQL query.

use crate::error::{GdoError, Result};
use crate::session::{new_context, register_table};
use crate::stage::Train;
use crate::train::{EvalSplit, TinyVlmConfig, TrainConfig};

/// Train a model on a subset table (or any table / query with qa_uid, question, answer, frames).
///
/// Examples:
///   gdo train --table subsets/temp_plus/gdo_1x --out runs/temp_plus --eval temporal=bench/video_temporal/
///   gdo train --pool pool/ --sql "SELECT * FROM pool WHERE bucket = 'short_video'" --out runs/video
///   gdo train --table subsets/temp_plus/gdo_1x --out runs/temp_plus --resume
///   gdo train --table subsets/temp_plus/gdo_1x --model models/Qwen3-VL-2B-Instruct --device cuda --lr 1e-5 --out runs/qwen
///   gdo train --table pool/ --holdout-fold 0/2 --epochs 16 --out runs/proxy0   (cross-fitted proxy, see describe)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The training table (PATH), or NAME=PATH to register a table for --sql. Repeatable.
    #[arg(long = "table", value_name = "PATH|NAME=PATH")]
    pub tables: Vec<String>,
    /// A pool table folder, registered as `pool`: the training table when neither --sql
    /// nor a training --table is given.
    #[arg(long, value_name = "DIR")]
    pub pool: Option<String>,
    /// SQL whose result is the training table.
    #[arg(long, value_name = "QUERY")]
    pub sql: Option<String>,
    /// `tiny-vlm` (trained from a seeded initialisation), or a checkpoint to fine-tune:
    /// a Qwen3-VL folder (config.json, tokenizer.json, *.safetensors; in f32) or a
    /// tiny-vlm `gdo train` output folder (its newest checkpoint, config and tokenizer).
    #[arg(long, default_value = "tiny-vlm", value_name = "tiny-vlm|DIR")]
    pub model: String,
    /// Output folder: checkpoints/, the metrics table (metrics/), tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// Benchmark split to evaluate at each checkpoint: NAME=PATH (a pool table). Repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub eval: Vec<String>,
    /// Reuse a tokenizer.json (models compared with each other must share one).
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue from the last checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Checkpoint and evaluate every N samples (and at the end).
    #[arg(long, default_value_t = 256)]
    pub checkpoint_every: u64,
    /// Fraction of pairs trained without frames.
    #[arg(long, default_value_t = 0.25)]
    pub blind_fraction: f64,
    /// tiny-vlm width.
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    /// tiny-vlm decoder layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Frames per pair (uniformly resampled).
    #[arg(long, default_value_t = TinyVlmConfig::default().max_frames)]
    pub frames: usize,
    /// tiny-vlm transformer blocks over each frame's patches before pooling.
    #[arg(long, default_value_t = TinyVlmConfig::default().vision_layers)]
    pub vision_layers: usize,
    /// Tokens per frame side: each frame becomes N x N region tokens (1, 2 or 4).
    #[arg(long, default_value_t = TinyVlmConfig::default().frame_grid)]
    pub frame_grid: usize,
    /// tiny-vlm: pixels per side of a frame's patches (frames are 32x32).
    #[arg(long, default_value_t = TinyVlmConfig::default().patch_size)]
    pub patch_size: usize,
    /// Leave fold I of K out of training (rows with gdo_fold(video_uid, K) = I), for a
    /// cross-fitted proxy scorer: train one model per fold, then give all K to
    /// `gdo describe --scorer` so that each pair is scored by a model that never saw it.
    #[arg(long, value_name = "I/K")]
    pub holdout_fold: Option<crate::models::tiny_vlm::Holdout>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Fault injection (tests): stop (as if killed) after this many steps.
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true)]
    pub stop_after_steps: Option<u64>,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn name_path<'a>(flag: &str, spec: &'a str) -> Result<(&'a str, &'a str)> {
    spec.split_once('=')
        .filter(|(n, p)| is_name(n) && !p.is_empty())
        .ok_or_else(|| GdoError::Usage(format!("{flag} expects NAME=PATH, got '{spec}'")))
}

/// `--model`: None for tiny-vlm from scratch, else a Qwen3-VL folder or a tiny-vlm run
/// or checkpoint folder to fine-tune.
fn base_model(spec: &str) -> Result<Option<std::path::PathBuf>> {
    if spec == crate::models::tiny_vlm::model::MODEL_TYPE {
        return Ok(None);
    }
    let dir = std::path::PathBuf::from(spec);
    let model_type = crate::models::load::model_type(&crate::models::load::model_dir(&dir)?)
        .map_err(|e| GdoError::Usage(format!("--model {spec}: neither tiny-vlm nor a model folder ({e})")))?;
    match model_type.as_str() {
        crate::train::qwen3_vl::MODEL_TYPE | crate::models::tiny_vlm::model::MODEL_TYPE => Ok(Some(dir)),
        other => Err(GdoError::Usage(format!(
            "--model {spec}: model_type \"{other}\"; gdo train fine-tunes qwen3_vl and tiny-vlm checkpoints"
        ))),
    }
}

pub async fn run(args: Args) -> Result<()> {
    let base_model = base_model(&args.model)?;
    let ctx = new_context();
    // What the run reads, by name, for its metrics table's commits.
    let mut inputs = serde_json::Map::new();
    if let Some(pool) = &args.pool {
        inputs.insert("pool".into(), register_table(&ctx, "pool", pool).await?.read);
    }
    let mut input_path = None;
    for spec in &args.tables {
        match spec.split_once('=') {
            Some((n, p)) if is_name(n) && !p.is_empty() => {
                inputs.insert(n.to_owned(), register_table(&ctx, n, p).await?.read);
            }
            _ if input_path.is_none() => input_path = Some(spec.clone()),
            _ => return Err(GdoError::Usage("give one training --table PATH (others as NAME=PATH)".into())),
        }
    }
    let input = match (&args.sql, input_path) {
        (Some(_), Some(_)) => return Err(GdoError::Usage("give --sql or a training --table PATH, not both".into())),
        (Some(sql), None) => ctx.sql(sql).await?,
        (None, Some(path)) => {
            inputs.insert("train_input".into(), register_table(&ctx, "train_input", &path).await?.read);
            ctx.table("train_input").await?
        }
        (None, None) if args.pool.is_some() => ctx.table("pool").await?,
        (None, None) => {
            return Err(GdoError::Usage("give the training data: --table PATH, --pool DIR or --sql QUERY".into()));
        }
    };
    let mut evals = Vec::new();
    for spec in &args.eval {
        let (name, path) = name_path("--eval", spec)?;
        let reg = format!("eval_{name}");
        inputs.insert(reg.clone(), register_table(&ctx, &reg, path).await?.read);
        evals.push(EvalSplit { name: name.to_owned(), table: ctx.table(reg.as_str()).await? });
    }
    let cfg = TrainConfig {
        seed: args.seed,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        grad_clip: args.grad_clip,
        checkpoint_every: args.checkpoint_every,
        blind_fraction: args.blind_fraction,
        model: TinyVlmConfig {
            d_model: args.d_model,
            n_layers: args.layers,
            max_frames: args.frames,
            frame_grid: args.frame_grid,
            patch_size: args.patch_size,
            vision_layers: args.vision_layers,
            holdout: args.holdout_fold,
            ..Default::default()
        },
        base_model,
        tokenizer: args.tokenizer.clone(),
        device: crate::device::select(&args.device)?,
        progress: !args.quiet,
        #[cfg(feature = "fault-injection")]
        stop_after_steps: args.stop_after_steps,
        inputs,
        ..TrainConfig::default()
    };
    let mut train = Train::new(ctx, input, args.out.clone()).with_config(cfg).with_resume(args.resume);
    for split in evals {
        train = train.with_eval(split);
    }
    let summary = train.await?;
    if let Some(h) = args.holdout_fold {
        println!("fold {h} of the training table held out (gdo_fold(video_uid, {}) = {})", h.folds, h.fold);
    }
    println!(
        "trained {} samples in {} steps; final train loss {:.4}; checkpoint {}",
        summary.samples_seen,
        summary.steps,
        summary.final_train_loss,
        summary.checkpoint.display()
    );
    for e in summary.evals.iter().filter(|e| e.step == summary.steps) {
        println!("  {}: accuracy {:.3} on {} questions", e.split, e.accuracy, e.n);
    }
    if !summary.frame_skips.is_empty() {
        println!("  unreadable frames skipped: {:?}", summary.frame_skips);
    }
    if summary.stopped_early {
        println!("  stopped early at step {} (resume with --resume)", summary.steps);
    }
    Ok(())
}
