//! `gdo describe`: the descriptor table of a pool (method §3), resumable.

use std::path::Path;
use std::sync::Arc;

use std::io::IsTerminal;

use crate::describe::TncMode;
use crate::error::{GdoError, Result};
use crate::models::{Scorers, load_scorer};
use crate::stage::Describe;

/// Compute one descriptor row per pair: media (amm, frame_diversity, vis_feat), text
/// features, TNC, lengths, and with a scorer the model descriptors (loss_video,
/// loss_blind, vds, ppl, LLM TNC, self-consistency). Killed and rerun with the same
/// arguments, it resumes from the last finished chunk; with different arguments it
/// discards the unfinished run and starts afresh.
///
/// Examples:
///   gdo describe --pool pool/ --out descriptors/ --cheap-only
///   gdo describe --pool pool/ --out descriptors/ --scorer models/Qwen3-VL-2B-Instruct --device cuda
///   gdo describe --pool pool/ --out descriptors/ --scorer runs/proxy0 --scorer runs/proxy1
///     (cross-fitted proxy: models trained with --holdout-fold 0/2 and 1/2; each pair is
///     scored by the one that did not train on it)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The pool table (from `gdo ingest`).
    #[arg(long, value_name = "DIR")]
    pub pool: String,
    /// Output descriptor table folder (local or s3://, gs://, az://).
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// Media, text and keyword TNC only: model columns NULL, self_consistency -1.
    #[arg(long)]
    pub cheap_only: bool,
    /// A scorer model folder (config.json with model_type, tokenizer, safetensors), or a
    /// `gdo train` output folder (its newest checkpoint).
    /// Repeat it with the K tiny-vlm models of a cross-fit (`gdo train --holdout-fold
    /// I/K`, one per fold) to score each pair with the model that never saw it.
    #[arg(long, value_name = "PATH")]
    pub scorer: Vec<String>,
    /// TNC mode; default llm with a scorer, regex without.
    #[arg(long, value_enum)]
    pub tnc: Option<TncMode>,
    /// Sampled answers per pair for self-consistency; default 5 with a scorer; 0 = not computed (-1).
    #[arg(long)]
    pub sc_samples: Option<usize>,
    /// cpu, cuda or cuda:N: the scorer's device, and with cuda the motion descriptors
    /// also run there (on the GPU; on cpu they use the tuned CPU kernel).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Shard I/N: pool row i goes to shard i mod N.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    pub shard: String,
    /// Pairs per scorer call.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Rows per resumable chunk.
    #[arg(long, default_value_t = 256)]
    pub chunk_size: usize,
    /// Seed of the sampled answers.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fail, writing nothing, when more than this share of the rows cannot be described
    /// (frames missing or undecodable, the scorer failing); 1 accepts any.
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub max_error_ratio: f64,
    /// Compute the cheap descriptors on a gdo cluster (`gdo scheduler`); the pool and
    /// its frames must be readable by the executors (shared storage or an object store).
    #[arg(long, env = crate::cluster::CLUSTER_ENV, value_name = "df://HOST:PORT")]
    pub cluster: Option<String>,
    /// Chunks computed at once on a cluster (each is one job over its row groups).
    #[arg(long, default_value_t = 8, value_name = "N", requires = "cluster")]
    pub cluster_jobs: usize,
    /// Fault injection (tests): stop after computing this many chunks (as if killed).
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true)]
    pub stop_after_chunks: Option<usize>,
}

fn parse_shard(s: &str) -> Result<(u64, u64)> {
    let bad = || GdoError::Usage(format!("--shard {s}: expected I/N with 0 <= I < N"));
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

pub async fn run(args: Args) -> Result<()> {
    let shard = parse_shard(&args.shard)?;
    // Checked up front: a device this build or machine lacks is a usage error, also
    // for a cheap-only run (its motion would run there).
    let device = crate::device::select(&args.device)?;
    let scorer = if args.scorer.is_empty() || args.cheap_only {
        None
    } else {
        let mut models = Vec::new();
        for path in &args.scorer {
            models.push(Arc::from(load_scorer(Path::new(path), &device)?));
        }
        // One model scores every row; several are the folds of a cross-fit.
        Some(if models.len() == 1 { Scorers::one(models.remove(0)) } else { Scorers::cross_fit(models, &args.scorer)? })
    };
    let has_scorer = scorer.is_some();
    let tnc = args.tnc.unwrap_or(if has_scorer { TncMode::Llm } else { TncMode::Regex });
    if tnc == TncMode::Llm && !has_scorer {
        return Err(GdoError::Usage("--tnc llm needs --scorer (and no --cheap-only)".into()));
    }
    let mut describe = Describe::new(args.pool, args.out)
        .with_cheap_only(!has_scorer)
        .with_tnc(tnc)
        .with_sc_samples(if has_scorer { args.sc_samples.unwrap_or(5) } else { 0 })
        .with_shard(shard.0, shard.1)
        .with_batch_size(args.batch_size)
        .with_chunk_size(args.chunk_size)
        .with_max_error_ratio(args.max_error_ratio)
        .on_cluster(args.cluster, args.cluster_jobs)
        .with_seed(args.seed)
        .with_progress(std::io::stderr().is_terminal())
        .with_motion_device(if device.is_cuda() { args.device.trim().to_owned() } else { "cpu".into() });
    if let Some(scorer) = scorer {
        describe = describe.with_scorer(scorer, args.scorer.join(","));
    }
    #[cfg(feature = "fault-injection")]
    let describe = describe.with_stop_after_chunks(args.stop_after_chunks);
    let r = describe.await?;
    if !r.complete {
        println!("stopped after {} new chunk(s) of {}; rerun to finish", r.chunks_computed, r.chunks);
        return Ok(());
    }
    let errors: Vec<String> = r.errors_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "described {} rows into {} version {} ({} chunks, {} resumed; {} row(s) with errors{}) in {:.2}s",
        r.rows,
        r.out,
        r.version.unwrap_or_default(),
        r.chunks,
        r.chunks_resumed,
        r.rows_with_error,
        if errors.is_empty() { String::new() } else { format!(": {}", errors.join(", ")) },
        r.seconds
    );
    Ok(())
}
