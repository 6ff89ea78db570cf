//! `gdo describe`: one descriptor row per pair of the pool (method §3), in
//! resumable chunks.
//!
//! The cheap part is SQL (`queries/describe/cheap.sql`, gdo's descriptor functions);
//! the model part goes through a [`Scorer`] in batches. Each chunk of rows (in
//! pool_index order, this shard's rows only) is written as one complete Parquet file
//! under `<out>/_describe_chunks/` in one atomic put, so a killed run loses at most the
//! chunk in progress; rerun with the same arguments, it skips the finished chunks.
//! When every chunk is there, the chunks are copied into the table at `<out>` and
//! committed, then the chunk folder is removed. If the arguments or the pool (its table
//! id and version, or its files) differ from the unfinished run's, that run's chunks are
//! discarded and the job starts afresh (said on stderr and in the report).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{GdoError, Result};
use crate::models::{ScoreItem, Scorer, Scorers};
use crate::schema::DESCRIPTOR_SCHEMA;
use crate::session::{new_context, register_table};
use crate::store::Location;
use crate::table::{TableWriter, writer_properties};

const CHEAP_SQL: &str = include_str!("../../queries/describe/cheap.sql");
const CHUNK_DIR: &str = "_describe_chunks";
const ARGS_FILE: &str = "args.json";
/// Columns of the SQL result that are inputs, not output.
const INPUT_COLUMNS: usize = 3;

/// TNC mode (method §3, item 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TncMode {
    Regex,
    Llm,
}

/// What `gdo describe` computes, and where.
#[derive(Clone)]
pub struct DescribeOptions {
    pub pool: String,
    pub out: String,
    /// Media, text and TNC-regex only; model columns NULL, self_consistency -1.
    pub cheap_only: bool,
    /// The scorer(s) for the model descriptors (None: cheap only): one model, or the
    /// models of a cross-fit, each scoring the fold it did not train on.
    pub scorer: Option<Scorers>,
    /// Names the scorer(s) in the resume fingerprint (e.g. their folders).
    pub scorer_id: Option<String>,
    pub tnc: TncMode,
    /// Sampled answers per pair for SC; 0 = not computed (-1).
    pub sc_samples: usize,
    /// Shard `i` of `n`: pool row i goes to shard i mod n.
    pub shard: (u64, u64),
    /// Pairs per scorer call.
    pub batch_size: usize,
    /// Rows per resumable chunk.
    pub chunk_size: usize,
    pub seed: u64,
    pub progress: bool,
    /// Fault injection (tests): stop (without committing) after this many new chunks.
    #[cfg(feature = "fault-injection")]
    pub stop_after_chunks: Option<usize>,
    /// Where AMM and frame diversity run (`gdo.motion_device`): `cpu` (the tuned
    /// kernel), `cuda[:N]` (the candle path on that GPU), `candle-cpu`.
    pub motion_device: String,
    /// Fail, committing nothing, when more than this share of the rows have an error
    /// (frames missing or undecodable, the model failing): a wrong media folder should
    /// stop the pipeline here, not yield descriptors of nothing.
    pub max_error_ratio: f64,
    /// Compute on this cluster (`df://HOST:PORT`); None: in this process.
    pub cluster: Option<String>,
    /// Chunks computed at once on a cluster.
    pub cluster_jobs: usize,
}

impl Default for DescribeOptions {
    fn default() -> Self {
        Self {
            pool: String::new(),
            out: String::new(),
            cheap_only: true,
            scorer: None,
            scorer_id: None,
            tnc: TncMode::Regex,
            sc_samples: 0,
            shard: (0, 1),
            batch_size: 8,
            chunk_size: 256,
            seed: 42,
            progress: false,
            #[cfg(feature = "fault-injection")]
            stop_after_chunks: None,
            motion_device: "cpu".into(),
            max_error_ratio: 0.5,
            cluster: None,
            cluster_jobs: 8,
        }
    }
}

/// `describe_report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DescribeReport {
    pub out: String,
    /// The descriptors table's version this run committed.
    pub version: Option<u64>,
    /// The pool read: its path, version and table id.
    pub pool: serde_json::Value,
    /// False when stopped early (test hook); rerun to finish.
    pub complete: bool,
    pub rows: u64,
    pub chunks: usize,
    pub chunks_resumed: usize,
    pub chunks_computed: usize,
    /// Why an earlier unfinished run's chunks were discarded, if they were.
    pub fresh_start_reason: Option<String>,
    pub rows_with_error: u64,
    /// Rows per error kind (`frame_missing`, `frame_undecodable`, `model`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    pub scorer: Option<String>,
    pub shard: String,
    pub seconds: f64,
}

/// What a resumed run must share with the unfinished one: the arguments, and the exact
/// pool content read (`pool`: the table's id and version, or the Parquet files' names and
/// sizes), so chunks computed on a pool since rewritten at the same path are not reused.
fn fingerprint(opts: &DescribeOptions, pool: &serde_json::Value, pool_rows: usize) -> serde_json::Value {
    serde_json::json!({
        "pool": pool,
        "pool_rows": pool_rows,
        "cheap_only": opts.cheap_only || opts.scorer.is_none(),
        "scorer": opts.scorer_id,
        "tnc": opts.tnc,
        "sc_samples": opts.sc_samples,
        "shard": [opts.shard.0, opts.shard.1],
        "chunk_size": opts.chunk_size,
        "seed": opts.seed,
    })
}

/// Error kinds counted in reports, as the error column names them.
const ERROR_KINDS: [&str; 5] = ["frame_bad_uri", "frame_missing", "frame_io", "frame_undecodable", "model"];

/// Rows with an error in `batch` (its last column): counted per kind into `by_kind`,
/// the first one kept in `example`.
fn count_errors(batch: &RecordBatch, by_kind: &mut BTreeMap<String, u64>, example: &mut Option<String>) -> u64 {
    let errors = batch.column(batch.num_columns() - 1).as_string::<i32>();
    let mut n = 0;
    for e in errors.iter().flatten() {
        n += 1;
        example.get_or_insert_with(|| e.chars().take(300).collect());
        for kind in ERROR_KINDS {
            if e.contains(kind) {
                *by_kind.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
    n
}

/// The error of a run with more failed rows than `--max-error-ratio` allows.
fn too_many_errors(
    errors: u64,
    rows: u64,
    by_kind: &BTreeMap<String, u64>,
    example: Option<&str>,
    max: f64,
    so_far: bool,
) -> GdoError {
    let kinds = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    let what = if so_far { "already " } else { "" };
    GdoError::Table(format!(
        "{errors} of the {rows} rows {what}could not be described ({kinds}): more than --max-error-ratio {max}; \
         nothing was written. First error: {}. Check that the pool's frame paths exist (`gdo ingest \
         --media-root`), or raise --max-error-ratio",
        example.unwrap_or("none recorded")
    ))
}

fn bar(enabled: bool, len: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("describe {bar:30} {pos}/{len} rows [{elapsed} < {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Run the descriptor job; see the module docs.
pub async fn run_describe(opts: &DescribeOptions) -> Result<DescribeReport> {
    let started = Instant::now();
    let (shard, shards) = opts.shard;
    if shards == 0 || shard >= shards {
        return Err(GdoError::Usage(format!("--shard {shard}/{shards}: need 0 <= I < N")));
    }
    if opts.chunk_size == 0 || opts.batch_size == 0 {
        return Err(GdoError::Usage("--batch-size and the chunk size must be at least 1".into()));
    }
    let ctx = match &opts.cluster {
        Some(url) if opts.scorer.is_some() && !opts.cheap_only => {
            return Err(GdoError::Usage(format!(
                "--cluster {url} computes the cheap descriptors; run the model descriptors with --shard I/N \
                 on each GPU machine and merge the outputs"
            )));
        }
        Some(url) => crate::cluster::connect(url).await?,
        None => new_context(),
    };
    if !opts.motion_device.is_empty() {
        // A session setting, so the SQL functions see it (in this process or on an executor).
        ctx.state_ref().write().config_mut().options_mut().set("gdo.motion_device", &opts.motion_device)?;
    }
    let pool = register_table(&ctx, "pool", &opts.pool).await?;
    let out = Location::parse(&opts.out)?;
    // Opened first: a wrong kind of table at --out (say, the pool) fails before any work.
    let mut table = TableWriter::open(out.clone(), "descriptors").await?;
    table.read_input("pool", pool.read.clone());
    let chunks_dir = out.child(CHUNK_DIR);

    // This shard's rows in pool order, cut into chunks of pool_index ranges.
    let ids = crate::sql::run_statements(
        &ctx,
        &format!("SELECT pool_index FROM pool WHERE pool_index % {shards} = {shard} ORDER BY pool_index"),
    )
    .await?
    .pop()
    .map(|r| r.batches)
    .unwrap_or_default();
    let mut index: Vec<i64> = Vec::new();
    for b in &ids {
        let col = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)?;
        index.extend(col.as_primitive::<datafusion::arrow::datatypes::Int64Type>().iter().flatten());
    }
    let ranges: Vec<(i64, i64)> = index.chunks(opts.chunk_size).map(|c| (c[0], c[c.len() - 1])).collect();

    let mut report = DescribeReport {
        out: out.to_string(),
        chunks: ranges.len(),
        scorer: opts.scorer.as_ref().filter(|_| !opts.cheap_only).map(Scorers::describe),
        shard: format!("{shard}/{shards}"),
        ..DescribeReport::default()
    };

    // Resume only a run with the same arguments.
    let fp = fingerprint(opts, &pool.read, index.len());
    let args_loc = chunks_dir.child(ARGS_FILE);
    if args_loc.exists().await? {
        let old: serde_json::Value = serde_json::from_slice(&args_loc.read_all().await?).unwrap_or_default();
        if old != fp {
            let reason = format!("the pool or the arguments differ from the unfinished run's ({old} vs {fp})");
            eprintln!("gdo describe: {reason}; discarding its chunks and starting afresh");
            report.fresh_start_reason = Some(reason);
            crate::table::delete_under(&chunks_dir).await?;
        }
    }
    args_loc.write_all(serde_json::to_vec_pretty(&fp)?).await?;

    if !(0.0..=1.0).contains(&opts.max_error_ratio) {
        return Err(GdoError::Usage(format!("--max-error-ratio {}: give a share from 0 to 1", opts.max_error_ratio)));
    }
    let bar = bar(opts.progress, index.len() as u64);
    let mut computed = 0usize;
    // Errors in the chunks this run computed: once they alone pass the limit, the run
    // fails without describing the rest.
    let (mut errors_seen, mut example, mut kinds_seen) = (0u64, None, BTreeMap::new());
    let allowed = (opts.max_error_ratio * index.len() as f64).floor() as u64;
    let mut pending = Vec::new();
    for (k, &(lo, hi)) in ranges.iter().enumerate() {
        let rows_in_chunk = index.len().min((k + 1) * opts.chunk_size) - k * opts.chunk_size;
        if chunks_dir.child(&format!("chunk-{k:06}.parquet")).exists().await? {
            report.chunks_resumed += 1;
            bar.inc(rows_in_chunk as u64);
            continue;
        }
        pending.push((k, lo, hi, rows_in_chunk));
    }
    // Locally one chunk at a time (its query uses every core); on a cluster several
    // chunks are jobs at once, so every executor has work.
    let in_flight = if opts.cluster.is_some() { opts.cluster_jobs.max(1) } else { 1 };
    let session = &ctx;
    let mut chunks = futures::stream::iter(pending)
        .map(|(k, lo, hi, rows_in_chunk)| async move {
            let sql = CHEAP_SQL
                .replace("{lo}", &lo.to_string())
                .replace("{hi}", &hi.to_string())
                .replace("{shards}", &shards.to_string())
                .replace("{shard}", &shard.to_string());
            let batches = crate::sql::run_statements(session, &sql).await?.pop().map(|r| r.batches).unwrap_or_default();
            Ok::<_, GdoError>((k, rows_in_chunk, batches))
        })
        .buffered(in_flight);
    while let Some(next) = chunks.next().await {
        #[cfg(feature = "fault-injection")]
        if opts.stop_after_chunks.is_some_and(|n| computed >= n) {
            bar.finish_and_clear();
            report.chunks_computed = computed;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        let (k, rows_in_chunk, batches) = next?;
        let chunk_loc = chunks_dir.child(&format!("chunk-{k:06}.parquet"));
        let Some(first) = batches.first() else { continue };
        let batch = concat_batches(&first.schema(), &batches)?;
        let batch = match (&opts.scorer, opts.cheap_only) {
            (Some(scorers), false) => score_chunk(&ctx, scorers, opts, batch).await?,
            _ => batch,
        };
        let batch = finish_chunk(batch)?;
        errors_seen += count_errors(&batch, &mut kinds_seen, &mut example);
        if errors_seen > allowed {
            bar.finish_and_clear();
            drop(chunks);
            let _ = table.abort().await;
            crate::table::delete_under(&chunks_dir).await?;
            return Err(too_many_errors(
                errors_seen,
                index.len() as u64,
                &kinds_seen,
                example.as_deref(),
                opts.max_error_ratio,
                true,
            ));
        }
        let mut bytes = Vec::new();
        let mut w = ArrowWriter::try_new(&mut bytes, Arc::clone(&DESCRIPTOR_SCHEMA), Some(writer_properties()))?;
        w.write(&batch)?;
        w.close()?;
        chunk_loc.write_all(bytes).await?;
        computed += 1;
        bar.inc(rows_in_chunk as u64);
    }
    drop(chunks);
    bar.finish_and_clear();
    report.chunks_computed = computed;

    // Every chunk is there: copy them, in order, into the table and commit.
    let mut part = table.open_part(None, Arc::clone(&DESCRIPTOR_SCHEMA))?;
    let mut example = None;
    for k in 0..ranges.len() {
        let bytes = chunks_dir.child(&format!("chunk-{k:06}.parquet")).read_all().await?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            // Re-labelled with the contract's schema so chunks left by older builds
            // (qa_uid then declared nullable) still join the table.
            let batch = batch?;
            let batch = RecordBatch::try_new(Arc::clone(&DESCRIPTOR_SCHEMA), batch.columns().to_vec())?;
            report.rows_with_error += count_errors(&batch, &mut report.errors_by_kind, &mut example);
            report.rows += batch.num_rows() as u64;
            part.write(&batch).await?;
        }
    }
    table.add_part(None, part.finish().await?);
    if report.rows_with_error > allowed {
        let _ = table.abort().await;
        crate::table::delete_under(&chunks_dir).await?;
        return Err(too_many_errors(
            report.rows_with_error,
            report.rows,
            &report.errors_by_kind,
            example.as_deref(),
            opts.max_error_ratio,
            false,
        ));
    }
    report.complete = true;
    report.seconds = started.elapsed().as_secs_f64();
    report.pool = pool.read;
    let json = serde_json::to_value(&report)?;
    let committed = table.commit(json).await?;
    report.version = Some(committed.version);
    out.child("describe_report.json").write_all(serde_json::to_vec_pretty(&report)?).await?;
    crate::table::delete_under(&chunks_dir).await?;
    Ok(report)
}

/// Drop the input columns and store non-finite numbers as NULL.
fn finish_chunk(batch: RecordBatch) -> Result<RecordBatch> {
    let n = DESCRIPTOR_SCHEMA.fields().len();
    let columns: Vec<ArrayRef> = batch.columns()[..n]
        .iter()
        .zip(DESCRIPTOR_SCHEMA.fields())
        .map(|(c, f)| {
            let c = datafusion::arrow::compute::cast(c, f.data_type())?;
            Ok(match f.data_type() {
                DataType::Float64 => Arc::new(
                    c.as_primitive::<Float64Type>()
                        .iter()
                        .map(|v| v.filter(|x| x.is_finite()))
                        .collect::<Float64Array>(),
                ) as ArrayRef,
                _ => c,
            })
        })
        .collect::<Result<_>>()?;
    debug_assert_eq!(batch.num_columns(), n + INPUT_COLUMNS);
    Ok(RecordBatch::try_new(Arc::clone(&DESCRIPTOR_SCHEMA), columns)?)
}

/// Column index in the cheap SQL's result.
fn col(name: &str) -> usize {
    match name {
        "question" => DESCRIPTOR_SCHEMA.fields().len(),
        "answer" => DESCRIPTOR_SCHEMA.fields().len() + 1,
        "frames" => DESCRIPTOR_SCHEMA.fields().len() + 2,
        other => DESCRIPTOR_SCHEMA.index_of(other).unwrap_or(usize::MAX),
    }
}

/// Mean pairwise Jaccard similarity of the answers' token sets (two empty sets: 1.0).
pub fn self_consistency(answers: &[String]) -> f64 {
    let sets: Vec<std::collections::BTreeSet<String>> =
        answers.iter().map(|a| gdo_udfs::method::tokens(a).into_iter().collect()).collect();
    let (mut sum, mut pairs) = (0.0, 0usize);
    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            let inter = sets[i].intersection(&sets[j]).count();
            let union = sets[i].union(&sets[j]).count();
            sum += if union == 0 { 1.0 } else { inter as f64 / union as f64 };
            pairs += 1;
        }
    }
    if pairs == 0 { -1.0 } else { sum / pairs as f64 }
}

/// Fill the model columns of one chunk through the scorer (a cross-fit: each row through
/// the model of its fold), in batches. A row whose frames cannot be read, or whose
/// batch fails, keeps NULL model columns and says why in `error`; the cheap columns
/// stay.
async fn score_chunk(
    ctx: &datafusion::prelude::SessionContext,
    scorers: &Scorers,
    opts: &DescribeOptions,
    batch: RecordBatch,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    // Parquet strings may come back as Utf8View; read both through Utf8.
    let utf8 = |name: &str| -> Result<datafusion::arrow::array::StringArray> {
        let c = datafusion::arrow::compute::cast(batch.column(col(name)), &DataType::Utf8)?;
        Ok(c.as_string::<i32>().clone())
    };
    let (q, a, vid) = (utf8("question")?, utf8("answer")?, utf8("video_uid")?);
    let frames_col = batch.column(col("frames")).clone();
    let lists = gdo_udfs::media_descriptors::frames_lists(&frames_col, "describe")?;
    let fetcher = gdo_udfs::media::FrameFetcher::new(Arc::clone(&ctx.runtime_env().object_store_registry));
    // The scorer sees the same up-to-8 uniformly resampled frames as motion.
    let fetch_started = Instant::now();
    let chosen: Vec<Vec<String>> = lists
        .iter()
        .map(|l| match l {
            Some(f) => gdo_udfs::method::uniform_indices(f.len(), gdo_udfs::motion::FLOW_FRAMES)
                .into_iter()
                .map(|i| f[i].clone())
                .collect(),
            None => Vec::new(),
        })
        .collect();
    // One concurrent fetch for the whole chunk: per row, remote stores would pay a
    // round trip per pair.
    let fetched = fetcher.fetch_rows(&chosen).await;
    let images: Vec<Option<Vec<image::RgbImage>>> = chosen
        .iter()
        .zip(fetched)
        .map(|(uris, got)| {
            let decoded: std::result::Result<Vec<_>, _> =
                uris.iter().zip(got).map(|(u, b)| b.and_then(|b| gdo_udfs::media::decode_rgb(u, &b))).collect();
            decoded.ok()
        })
        .collect();
    let mut out: Vec<[Option<f64>; 4]> = vec![[None; 4]; n];
    let mut tnc: Vec<Option<f64>> = vec![None; n];
    let mut sc: Vec<f64> = vec![-1.0; n];
    let mut model_err: Vec<Option<String>> = vec![None; n];
    // Readable rows, grouped by the model that scores them (kept in row order).
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); scorers.folds()];
    for i in (0..n).filter(|&i| images[i].is_some()) {
        groups[scorers.index_for((!vid.is_null(i)).then(|| vid.value(i)))].push(i);
    }
    for i in (0..n).filter(|i| images[*i].is_none()) {
        model_err[i] = Some("model: skipped, frames unreadable".into());
    }
    let fetch_secs = fetch_started.elapsed().as_secs_f64();
    let (mut loss_secs, mut tnc_secs, mut sc_secs) = (0f64, 0f64, 0f64);
    // The scorer is synchronous and CPU/GPU bound; the job is a long batch job, so it
    // runs on this task between fetches.
    let batches = groups.iter().enumerate().flat_map(|(m, g)| g.chunks(opts.batch_size).map(move |rows| (m, rows)));
    for (m, rows) in batches {
        let scorer: &dyn Scorer = scorers.model(m);
        let t = Instant::now();
        let items: Vec<ScoreItem<'_>> = rows
            .iter()
            .map(|&i| ScoreItem {
                question: q.value(i),
                answer: a.value(i),
                frames: images[i].as_deref().unwrap_or(&[]),
            })
            .collect();
        match scorer.answer_losses(&items) {
            Ok(losses) => {
                for (&i, l) in rows.iter().zip(losses) {
                    out[i] = [
                        Some(l.loss_video),
                        Some(l.loss_blind),
                        Some(l.loss_blind - l.loss_video),
                        Some(l.loss_video.clamp(-30.0, 30.0).exp()),
                    ];
                }
            }
            Err(e) => rows.iter().for_each(|&i| model_err[i] = Some(format!("model: {e}"))),
        }
        loss_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        if opts.tnc == TncMode::Llm {
            let qs: Vec<&str> = items.iter().map(|it| it.question).collect();
            match scorer.tnc_llm(&qs) {
                Ok(v) => rows.iter().zip(v).for_each(|(&i, t)| tnc[i] = Some(t)),
                Err(e) => rows.iter().for_each(|&i| model_err[i] = Some(format!("model: tnc_llm: {e}"))),
            }
        }
        tnc_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        if opts.sc_samples > 0 {
            match scorer.sample_answers(&items, opts.sc_samples, opts.seed) {
                Ok(v) => rows.iter().zip(v).for_each(|(&i, s)| sc[i] = self_consistency(&s)),
                Err(e) => rows.iter().for_each(|&i| model_err[i] = Some(format!("model: sample_answers: {e}"))),
            }
        }
        sc_secs += t.elapsed().as_secs_f64();
    }
    tracing::info!(
        "scored {n} rows: frames {fetch_secs:.2} s, answer losses {loss_secs:.2} s, tnc {tnc_secs:.2} s, \
         sc {sc_secs:.2} s"
    );
    let mut columns = batch.columns().to_vec();
    for (j, name) in ["loss_video", "loss_blind", "vds", "ppl"].iter().enumerate() {
        columns[col(name)] = Arc::new(out.iter().map(|r| r[j]).collect::<Float64Array>());
    }
    let regex_tnc = batch.column(col("tnc_score")).as_primitive::<Float64Type>().clone();
    // A failed llm TNC keeps the regex value (spec).
    columns[col("tnc_score")] = Arc::new(
        (0..n).map(|i| tnc[i].or((!regex_tnc.is_null(i)).then(|| regex_tnc.value(i)))).collect::<Float64Array>(),
    );
    columns[col("self_consistency")] = Arc::new(Float64Array::from(sc));
    let media_err = utf8("error")?;
    columns[col("error")] = Arc::new(
        (0..n)
            .map(|i| {
                let m = (!media_err.is_null(i)).then(|| media_err.value(i).to_owned());
                match (m, model_err[i].take()) {
                    (Some(m), Some(e)) => Some(format!("{m}; {e}")),
                    (m, e) => m.or(e),
                }
            })
            .collect::<StringArray>(),
    );
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_consistency_is_mean_pairwise_jaccard() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(self_consistency(&s(&["a b", "a b", "a b"])), 1.0);
        // {a,b} vs {b,c}: 1/3; vs {a,b}: 1; {b,c} vs {a,b}: 1/3 -> mean 5/9.
        assert!((self_consistency(&s(&["a b", "b c", "A, b"])) - 5.0 / 9.0).abs() < 1e-15);
        assert_eq!(self_consistency(&s(&["", ""])), 1.0);
        assert_eq!(self_consistency(&s(&["x"])), -1.0);
    }
}
