//! Merge and quality score (method §4): descriptor rows in, one merged row per
//! qa_uid out, with robust statistics, k-means cluster scores and the quality score.
//!
//! Passes over the inputs (streamed each time, never held):
//! 1. fit: robust-statistics reservoirs and mini-batch k-means, and the qa_uid index;
//! 2. only if a qa_uid occurs more than once: the fit again over the surviving rows;
//! 3. assign and write: nearest centre, SC fallback, quality score, Parquet parts.
//!
//! Duplicate qa_uids: the later row (in input order) wins and the earlier ones are
//! dropped everywhere, statistics included; they are counted in the report.
//! Memory: the k-means init buffer, the centres, the reservoirs (at most 800,000
//! float32 values each) and one qa_uid index entry per distinct row.

pub mod input;
pub mod kmeans;
pub mod quality;
pub mod robust;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{GdoError, Result};
use crate::schema::MERGED_SCHEMA;
use crate::store::Location;
use crate::table::{PartWriter, TableWriter};
pub use input::{DescriptorRow, DescriptorStream, Input, ReadCounts, resolve_inputs};
pub use kmeans::{Centres, MiniBatchKMeans};
pub use quality::{QualityInputs, Robust, RobustStats, quality_score, sc_fallback, self_consistency_or_fallback};
pub use robust::{STATS_SAMPLE_SIZE, StatsAccumulator};

/// Name of the run report written beside the table.
pub const REPORT_FILE: &str = "merge_report.json";

/// What to merge and how.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Descriptor inputs (see [`resolve_inputs`]).
    pub descriptors: Vec<String>,
    /// Output table folder.
    pub out: String,
    /// Requested k; k = min(max(2, cluster_k), rows).
    pub cluster_k: usize,
    pub seed: u64,
    /// Mini-batch size of k-means (and rows per read chunk).
    pub batch_size: usize,
    pub rows_per_file: usize,
    /// Draw a progress spinner (only on a terminal).
    pub progress: bool,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            descriptors: Vec::new(),
            out: String::new(),
            cluster_k: 4096,
            seed: 42,
            batch_size: 8192,
            rows_per_file: 1_000_000,
            progress: false,
        }
    }
}

/// The run report (`merge_report.json`); the statistics use the reference's key names.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub out: String,
    /// The version of the merged table this run committed (None until it has).
    pub version: Option<u64>,
    pub run_id: String,
    pub inputs: Vec<String>,
    pub num_inputs: usize,
    pub rows_scanned: u64,
    pub blank_lines: u64,
    pub bad_rows: u64,
    pub bad_rows_by_reason: BTreeMap<String, u64>,
    pub duplicate_qa_uids: u64,
    pub rows_fit: u64,
    pub rows_written: u64,
    pub cluster_k: usize,
    pub cluster_k_requested: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub stats_sample_size: usize,
    pub vds_center: f64,
    pub vds_scale: f64,
    pub ppl_center: f64,
    pub ppl_scale: f64,
    pub amm_center: f64,
    pub amm_scale: f64,
    pub frame_div_center: f64,
    pub frame_div_scale: f64,
    pub self_consistency_center: f64,
    pub self_consistency_scale: f64,
    /// Rows with a computed SC (>= 0); the others got the fallback.
    pub self_consistency_rows: u64,
    pub sc_fallback_rows: u64,
    /// Mean Euclidean distance of the written rows to their centre.
    pub kmeans_mean_dist: f64,
    pub passes: u32,
    pub data_files: usize,
    pub seconds: f64,
}

/// One merged row's computed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub self_consistency: f64,
    pub cluster_id: usize,
    pub cluster_dist: f64,
    pub cluster_score: f64,
    pub cluster_hardness: f64,
    pub quality_score: f64,
}

/// Score one row given its distance to its centre.
pub fn score_row(stats: &RobustStats, row: &DescriptorRow, cluster_id: usize, cluster_dist: f64) -> Scored {
    let rep = (-cluster_dist).exp();
    let sc = self_consistency_or_fallback(stats, row.self_consistency, row.vds, row.ppl);
    let inputs = QualityInputs {
        vds: row.vds,
        frame_diversity: row.frame_diversity,
        ppl: row.ppl,
        amm: row.amm,
        tnc_score: row.tnc_score,
        self_consistency: sc,
    };
    Scored {
        self_consistency: sc,
        cluster_id,
        cluster_dist,
        cluster_score: rep,
        cluster_hardness: 1.0 - rep,
        quality_score: quality_score(stats, &inputs, rep),
    }
}

fn merged_batch(rows: &[&DescriptorRow], scored: &[Scored]) -> Result<RecordBatch> {
    let f = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| Some(r.qa_uid.as_str())).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(r.video_uid.as_str())).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| r.loss_video).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.loss_blind).collect::<Float64Array>()),
        f(rows.iter().map(|r| r.frame_diversity).collect()),
        f(rows.iter().map(|r| r.vds).collect()),
        f(rows.iter().map(|r| r.ppl).collect()),
        f(rows.iter().map(|r| r.amm).collect()),
        f(rows.iter().map(|r| r.tnc_score).collect()),
        f(scored.iter().map(|s| s.self_consistency).collect()),
        Arc::new(scored.iter().map(|s| s.cluster_id as i32).collect::<Int32Array>()),
        f(scored.iter().map(|s| s.cluster_dist).collect()),
        f(scored.iter().map(|s| s.cluster_score).collect()),
        f(scored.iter().map(|s| s.cluster_hardness).collect()),
        f(scored.iter().map(|s| s.quality_score).collect()),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&MERGED_SCHEMA), columns)?)
}

/// Statistics and centres from one fit pass.
struct Fit {
    stats: StatsAccumulator,
    kmeans: MiniBatchKMeans,
}

impl Fit {
    fn new(opts: &MergeOptions) -> Self {
        Self {
            stats: StatsAccumulator::new(opts.seed),
            kmeans: MiniBatchKMeans::new(opts.cluster_k, opts.batch_size, opts.seed),
        }
    }

    fn push(&mut self, row: &DescriptorRow) {
        self.stats.push(row);
        self.kmeans.push(row.features());
    }
}

/// Which rows survive deduplication: None when every qa_uid is unique.
type Winners = Option<HashMap<Box<str>, u64>>;

fn keep(winners: &Winners, row: &DescriptorRow, index: u64) -> bool {
    winners.as_ref().is_none_or(|w| w.get(row.qa_uid.as_str()) == Some(&index))
}

fn spinner(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} merge {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Merge descriptor rows into the merged table at `opts.out`; returns the report.
pub async fn merge(opts: &MergeOptions) -> Result<MergeReport> {
    let started = Instant::now();
    if opts.descriptors.is_empty() {
        return Err(GdoError::Usage("nothing to merge: give --descriptors".into()));
    }
    if opts.batch_size == 0 {
        return Err(GdoError::Usage("--batch-size must be at least 1".into()));
    }
    let inputs = resolve_inputs(&opts.descriptors).await?;
    let out = Location::parse(&opts.out)?;
    // Opened first: a wrong kind of table at --out fails before any work, and a writer
    // that commits meanwhile makes this run's commit fail instead of being overwritten.
    let mut table = TableWriter::open(out.clone(), "merged").await?;
    let bar = spinner(opts.progress);

    // Pass 1: fit over every good row, and index the qa_uids.
    let mut fit = Fit::new(opts);
    let mut counts = ReadCounts::default();
    let mut index: HashMap<Box<str>, u64> = HashMap::new();
    let mut duplicates = 0u64;
    let mut stream = DescriptorStream::new(&inputs, opts.batch_size);
    while let Some(chunk) = stream.next_chunk().await? {
        counts.add(&chunk.counts);
        for row in &chunk.rows {
            let i = index.len() as u64 + duplicates;
            if index.insert(row.qa_uid.as_str().into(), i).is_some() {
                duplicates += 1;
            }
            fit.push(row);
        }
        bar.set_message(format!("pass 1 (fit): {} rows", counts.rows_scanned));
    }
    if index.is_empty() {
        let reasons: Vec<String> = counts.bad_rows_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let hint = if counts.bad_rows_by_reason.contains_key(input::BadRow::NoDescriptorFields.as_str()) {
            format!(
                ". Rows without any descriptor field ({}) are not descriptors: give the output of \
                 `gdo describe` or the reference's metrics JSONL, not training data",
                crate::schema::DESCRIPTOR_FIELDS.join(", ")
            )
        } else {
            String::new()
        };
        return Err(GdoError::Table(format!(
            "no valid descriptor rows in {} ({} bad row(s){}{}){hint}",
            opts.descriptors.join(", "),
            counts.bad_rows,
            if reasons.is_empty() { "" } else { ": " },
            reasons.join(", ")
        )));
    }
    let mut passes = 1;
    let winners: Winners = if duplicates > 0 { Some(index) } else { None };
    if winners.is_some() {
        // Pass 2: the earlier copies must not weigh in the statistics or the centres.
        passes += 1;
        fit = Fit::new(opts);
        let mut stream = DescriptorStream::new(&inputs, opts.batch_size);
        let mut i = 0u64;
        while let Some(chunk) = stream.next_chunk().await? {
            for row in &chunk.rows {
                if keep(&winners, row, i) {
                    fit.push(row);
                }
                i += 1;
            }
            bar.set_message(format!("pass 2 (refit without duplicates): {i} rows"));
        }
    }
    let rows_fit = fit.kmeans.rows();
    let stats = fit.stats.finish();
    let self_consistency_rows = fit.stats.self_consistency_rows();
    let centres = fit.kmeans.finish().ok_or_else(|| GdoError::Table("no rows to cluster".into()))?;

    // Last pass: assign, score, write.
    passes += 1;
    let written: Result<(u64, f64, u64)> = async {
        let mut part: Option<PartWriter> = None;
        let (mut rows_written, mut dist_sum, mut fallbacks) = (0u64, 0.0f64, 0u64);
        let mut stream = DescriptorStream::new(&inputs, opts.batch_size);
        let mut i = 0u64;
        while let Some(chunk) = stream.next_chunk().await? {
            let mut kept = Vec::with_capacity(chunk.rows.len());
            for row in &chunk.rows {
                if keep(&winners, row, i) {
                    kept.push(row);
                }
                i += 1;
            }
            if kept.is_empty() {
                continue;
            }
            let features: Vec<_> = kept.iter().map(|r| r.features()).collect();
            let assigned = centres.assign_all(&features);
            let scored: Vec<Scored> =
                kept.iter().zip(&assigned).map(|(r, (c, d))| score_row(&stats, r, *c, *d)).collect();
            for (r, s) in kept.iter().zip(&scored) {
                dist_sum += s.cluster_dist;
                fallbacks += u64::from(r.self_consistency < 0.0);
            }
            let batch = merged_batch(&kept, &scored)?;
            if part.is_none() {
                part = Some(table.open_part(None, Arc::clone(&MERGED_SCHEMA))?);
            }
            if let Some(p) = part.as_mut() {
                p.write(&batch).await?;
                if p.rows() >= opts.rows_per_file.max(1) as u64
                    && let Some(done) = part.take()
                {
                    table.add_part(None, done.finish().await?);
                }
            }
            rows_written += kept.len() as u64;
            bar.set_message(format!("pass {passes} (assign and write): {rows_written} rows"));
        }
        match part {
            Some(p) => table.add_part(None, p.finish().await?),
            None if table.rows() == 0 => {
                let p = table.open_part(None, Arc::clone(&MERGED_SCHEMA))?;
                table.add_part(None, p.finish().await?);
            }
            None => {}
        }
        Ok((rows_written, dist_sum, fallbacks))
    }
    .await;
    bar.finish_and_clear();
    let (rows_written, dist_sum, sc_fallback_rows) = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = table.abort().await; // best effort; `gdo vacuum` removes leftovers
            return Err(e);
        }
    };

    let mut report = MergeReport {
        out: out.to_string(),
        version: None,
        run_id: table.run_id().to_owned(),
        inputs: inputs.iter().map(ToString::to_string).collect(),
        num_inputs: inputs.len(),
        rows_scanned: counts.rows_scanned,
        blank_lines: counts.blank_lines,
        bad_rows: counts.bad_rows,
        bad_rows_by_reason: counts.bad_rows_by_reason,
        duplicate_qa_uids: duplicates,
        rows_fit,
        rows_written,
        cluster_k: centres.k(),
        cluster_k_requested: opts.cluster_k,
        seed: opts.seed,
        batch_size: opts.batch_size,
        stats_sample_size: STATS_SAMPLE_SIZE,
        vds_center: stats.vds.center,
        vds_scale: stats.vds.scale,
        ppl_center: stats.ppl.center,
        ppl_scale: stats.ppl.scale,
        amm_center: stats.amm.center,
        amm_scale: stats.amm.scale,
        frame_div_center: stats.frame_div.center,
        frame_div_scale: stats.frame_div.scale,
        self_consistency_center: stats.self_consistency.center,
        self_consistency_scale: stats.self_consistency.scale,
        self_consistency_rows,
        sc_fallback_rows,
        kmeans_mean_dist: if rows_written > 0 { dist_sum / rows_written as f64 } else { 0.0 },
        passes,
        data_files: 0,
        seconds: 0.0,
    };
    report.seconds = started.elapsed().as_secs_f64();
    let committed = table.commit(serde_json::to_value(&report)?).await?;
    report.data_files = committed.files;
    report.version = Some(committed.version);
    // The report beside the table is informational; the commit record holds it too.
    out.child(REPORT_FILE).write_all(serde_json::to_vec_pretty(&report)?).await?;
    Ok(report)
}
