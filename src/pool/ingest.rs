//! `gdo ingest`: JSONL pools (plain or gzip, local or object store) to the pool table.
//!
//! Pipeline per input file: a blocking reader thread streams the object, un-gzips it
//! and cuts it into chunks of lines; each chunk is parsed on the rayon pool; the async
//! writer takes the parsed chunks back in order (a bounded queue of pending results,
//! so memory is bounded by the chunks in flight, not by the input) and streams them
//! into Parquet parts. The table becomes visible only at the final Delta commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
use datafusion::arrow::record_batch::RecordBatch;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::parse::{Chunk, ChunkCounts, FileContext, Layout, ParsedChunk, RejectReason, VideoProbe, parse_chunk};
use crate::error::{GdoError, Result};
use crate::io::jsonl::{CHUNK_BYTES, ChunkCutter, is_jsonl_name};
use crate::schema::{POOL_SCHEMA, REJECTS_SCHEMA};
use crate::store::{Location, expand_input};
use crate::table::{PartWriter, TableWriter};

/// Name of the side table holding rejected lines.
pub const REJECTS_TABLE: &str = "_rejects";
/// Name of the run report written beside the table.
pub const REPORT_FILE: &str = "ingest_report.json";

/// What to ingest and how.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// LLaVA-OneVision (image) JSONL files, ingested first, in order. Each may also be a
    /// folder (its `.jsonl`/`.ndjson`/`.json` files, plain or `.gz`) or a file-name pattern
    /// (`raw/ov_*.jsonl.gz`), expanded in name order; see [`expand_input`].
    pub onevision: Vec<String>,
    /// LLaVA-Video JSONL files (or folders, or patterns), ingested after the image files, in order.
    pub video: Vec<String>,
    /// Output table folder (local or object-store URI).
    pub out: String,
    /// Folder relative frame paths are resolved against; default: each JSONL's folder.
    pub media_root: Option<String>,
    /// Frames kept per video pair (uniform resampling).
    pub target_frames: usize,
    /// Fail (and write nothing) when more than this share of non-blank lines is rejected.
    pub max_reject_ratio: f64,
    /// Rows per Parquet file.
    pub rows_per_file: usize,
    /// Lines per parse chunk (the unit of parallel work).
    pub chunk_lines: usize,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
    /// Fault injection (tests): abort the process, as `kill -9` would, after this many
    /// data files.
    #[cfg(feature = "fault-injection")]
    pub fail_after_parts: Option<usize>,
    /// Longest input line read whole; a longer one is rejected as `line_too_long` (its
    /// first 256 bytes kept), so one runaway line cannot exhaust memory.
    pub max_line_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            onevision: Vec::new(),
            video: Vec::new(),
            out: String::new(),
            media_root: None,
            target_frames: 32,
            max_reject_ratio: 0.5,
            rows_per_file: 1_000_000,
            chunk_lines: 8192,
            progress: false,
            #[cfg(feature = "fault-injection")]
            fail_after_parts: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Default `--max-line-bytes`: 32 MiB, far above any real row (LLaVA rows are a few KiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 32 << 20;

/// Counts of one input file.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub file: String,
    pub layout: Layout,
    pub bytes: u64,
    pub lines: u64,
    pub blank_lines: u64,
    pub rows: u64,
    pub pairs: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Rows shaped like the other layout's (see the warning ingest prints).
    pub other_layout_rows: u64,
}

/// The run report (`ingest_report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub out: String,
    /// The pool table's version this run committed (None until it has).
    pub version: Option<u64>,
    pub run_id: String,
    pub total_pairs: u64,
    pub rows: u64,
    pub lines: u64,
    pub blank_lines: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    pub bucket_counts: BTreeMap<String, u64>,
    pub num_strata: usize,
    pub inputs: Vec<InputReport>,
    /// Entries of input folders that were not read: files without a JSONL name, and
    /// sub-folders (ending in `/`).
    pub ignored_files: Vec<String>,
    pub data_files: usize,
    pub target_frames: usize,
    pub seconds: f64,
    pub pairs_per_second: f64,
}

/// Frame counts of the video files rows name (`video: clip.mp4`), read once per file
/// through the session's stores (local files in place, others copied to a temporary
/// file) and FFmpeg's `ffprobe`. Called from the parse workers (rayon threads), which
/// wait on the runtime for it.
fn video_probe() -> VideoProbe {
    let ctx = crate::session::new_context();
    let fetcher = gdo_udfs::media::FrameFetcher::new(Arc::clone(&ctx.runtime_env().object_store_registry));
    let handle = tokio::runtime::Handle::current();
    let seen: std::sync::Mutex<std::collections::HashMap<String, std::result::Result<usize, String>>> =
        Default::default();
    VideoProbe(Arc::new(move |uri: &str| {
        if let Some(known) = seen.lock().unwrap_or_else(|e| e.into_inner()).get(uri) {
            return known.clone();
        }
        let got = handle.block_on(fetcher.probe_video(uri)).map_err(|e| format!("{} ({})", e.kind.as_str(), e.detail));
        seen.lock().unwrap_or_else(|e| e.into_inner()).insert(uri.to_owned(), got.clone());
        got
    }))
}

fn reasons_map(counts: &[u64; RejectReason::ALL.len()]) -> BTreeMap<String, u64> {
    RejectReason::ALL.iter().zip(counts).filter(|(_, n)| **n > 0).map(|(r, n)| (r.as_str().to_owned(), *n)).collect()
}

fn add_counts(total: &mut ChunkCounts, c: &ChunkCounts) {
    total.lines += c.lines;
    total.blank += c.blank;
    total.rows += c.rows;
    total.pairs += c.pairs;
    total.other_layout += c.other_layout;
    for (t, n) in total.rejected.iter_mut().zip(c.rejected) {
        *t += n;
    }
}

/// Streams parsed chunks into Parquet parts, rotating files every `rows_per_file`.
struct Sink {
    pool_part: Option<PartWriter>,
    rejects_part: Option<PartWriter>,
    next_index: i64,
    rows_per_file: u64,
    parts_done: usize,
    #[cfg(feature = "fault-injection")]
    fail_after_parts: Option<usize>,
    buckets: BTreeMap<String, u64>,
    strata: std::collections::HashSet<String>,
}

impl Sink {
    async fn push(&mut self, table: &mut TableWriter, parsed: ParsedChunk) -> Result<()> {
        let n = parsed.pairs.num_rows();
        if n > 0 {
            self.observe(&parsed.pairs);
            let index: ArrayRef = Arc::new(Int64Array::from_iter_values(self.next_index..self.next_index + n as i64));
            self.next_index += n as i64;
            let mut columns = vec![index];
            columns.extend(parsed.pairs.columns().iter().cloned());
            let batch = RecordBatch::try_new(Arc::clone(&POOL_SCHEMA), columns)?;
            if self.pool_part.is_none() {
                self.pool_part = Some(table.open_part(None, Arc::clone(&POOL_SCHEMA))?);
            }
            let part = self.pool_part.as_mut().expect("opened above");
            part.write(&batch).await?;
            if part.rows() >= self.rows_per_file {
                self.close_pool_part(table).await?;
            }
        }
        if parsed.rejects.num_rows() > 0 {
            if self.rejects_part.is_none() {
                self.rejects_part = Some(table.open_part(Some(REJECTS_TABLE), Arc::clone(&REJECTS_SCHEMA))?);
            }
            let part = self.rejects_part.as_mut().expect("opened above");
            part.write(&parsed.rejects).await?;
            if part.rows() >= self.rows_per_file {
                let entry = self.rejects_part.take().expect("open").finish().await?;
                table.add_part(Some(REJECTS_TABLE), entry);
            }
        }
        Ok(())
    }

    fn observe(&mut self, pairs: &RecordBatch) {
        if let Some(b) = pairs.column_by_name("bucket") {
            for v in b.as_string::<i32>().iter().flatten() {
                // Looked up before inserting: an owned key per pair cost an allocation
                // per pair on the writer's (serial) task.
                match self.buckets.get_mut(v) {
                    Some(n) => *n += 1,
                    None => {
                        self.buckets.insert(v.to_owned(), 1);
                    }
                }
            }
        }
        if let Some(s) = pairs.column_by_name("stratum") {
            for v in s.as_string::<i32>().iter().flatten() {
                if !self.strata.contains(v) {
                    self.strata.insert(v.to_owned());
                }
            }
        }
    }

    async fn close_pool_part(&mut self, table: &mut TableWriter) -> Result<()> {
        if let Some(part) = self.pool_part.take() {
            let entry = part.finish().await?;
            table.add_part(None, entry);
            self.parts_done += 1;
            #[cfg(feature = "fault-injection")]
            if self.fail_after_parts.is_some_and(|n| self.parts_done >= n) {
                // A deliberate crash for the resume tests: no unwinding, no cleanup.
                eprintln!("gdo: aborting after {} data files (--fail-after-parts)", self.parts_done);
                std::process::abort();
            }
        }
        Ok(())
    }

    /// Close the open parts; an empty table still gets one (empty) file so its schema
    /// is always readable.
    async fn finish(mut self, table: &mut TableWriter) -> Result<(BTreeMap<String, u64>, usize)> {
        self.close_pool_part(table).await?;
        if table.rows() == 0 && self.parts_done == 0 {
            let part = table.open_part(None, Arc::clone(&POOL_SCHEMA))?;
            table.add_part(None, part.finish().await?);
        }
        let rejects = match self.rejects_part.take() {
            Some(p) => p,
            None => table.open_part(Some(REJECTS_TABLE), Arc::clone(&REJECTS_SCHEMA))?,
        };
        table.add_part(Some(REJECTS_TABLE), rejects.finish().await?);
        Ok((self.buckets, self.strata.len()))
    }
}

/// Read `loc` (un-gzipping when it starts with the gzip magic), cut it into chunks,
/// hand each to rayon and queue the pending result, in order.
fn read_chunks(
    loc: Location,
    ctx: Arc<FileContext>,
    chunk_lines: usize,
    max_line: usize,
    queue: mpsc::Sender<oneshot::Receiver<ParsedChunk>>,
    bar: ProgressBar,
) -> Result<()> {
    let reader = crate::io::jsonl::open(&loc, move |n| bar.inc(n as u64))?;
    let mut cutter = ChunkCutter::new(reader, CHUNK_BYTES, chunk_lines).with_max_line(max_line);
    let mut next_line = 1u64;
    loop {
        let Some((data, line_ends)) = cutter.next_chunk().map_err(|e| {
            GdoError::io(loc.to_string(), std::io::Error::new(e.kind(), format!("reading from line {next_line}: {e}")))
        })?
        else {
            return Ok(());
        };
        let overlong = cutter.take_overlong();
        let chunk = Chunk { ctx: Arc::clone(&ctx), first_line: next_line, data, line_ends, overlong };
        next_line += chunk.line_ends.len() as u64;
        let (tx, rx) = oneshot::channel();
        rayon::spawn(move || {
            // The receiver only disappears when the writer already failed.
            let _ = tx.send(parse_chunk(&chunk));
        });
        if queue.blocking_send(rx).is_err() {
            return Ok(()); // the writer stopped; its error is reported there
        }
    }
}

fn progress_bar(total: u64, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} ingest [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Ingest the inputs into a pool table; returns the run report.
pub async fn ingest(opts: &IngestOptions) -> Result<IngestReport> {
    let started = Instant::now();
    if opts.onevision.is_empty() && opts.video.is_empty() {
        return Err(GdoError::Usage("nothing to ingest: give --onevision and/or --video files".into()));
    }
    if opts.target_frames == 0 {
        return Err(GdoError::Usage("--target-frames must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&opts.max_reject_ratio) {
        return Err(GdoError::Usage("--max-reject-ratio must be between 0 and 1".into()));
    }
    // Resolve every input first: a missing file is an error before anything is written.
    let mut inputs = Vec::new();
    let named =
        opts.onevision.iter().map(|f| (Layout::Onevision, f)).chain(opts.video.iter().map(|f| (Layout::Video, f)));
    let mut ignored_files = Vec::new();
    for (layout, name) in named {
        let expanded = expand_input(name, "input file", is_jsonl_name).await?;
        inputs.extend(expanded.files.into_iter().map(|(file, loc, bytes)| (layout, file, loc, bytes)));
        ignored_files.extend(expanded.ignored);
    }
    let media_root = opts.media_root.as_deref().map(Location::parse).transpose()?.map(|l| l.dir_url());
    let out = Location::parse(&opts.out)?;

    let total_bytes = inputs.iter().map(|(_, _, _, b)| *b).sum();
    let bar = progress_bar(total_bytes, opts.progress);
    let mut table = TableWriter::open(out.clone(), "pool").await?;
    let mut sink = Sink {
        pool_part: None,
        rejects_part: None,
        next_index: 0,
        rows_per_file: opts.rows_per_file.max(1) as u64,
        parts_done: 0,
        #[cfg(feature = "fault-injection")]
        fail_after_parts: opts.fail_after_parts,
        buckets: BTreeMap::new(),
        strata: Default::default(),
    };
    let mut reports = Vec::new();
    let mut total = ChunkCounts::default();
    let depth = 2 * rayon::current_num_threads() + 2;

    let video_probe = video_probe();
    let result: Result<()> = async {
        for (layout, name, loc, bytes) in &inputs {
            let ctx = Arc::new(FileContext {
                layout: *layout,
                source_file: Arc::from(name.as_str()),
                media_base: media_root.clone().unwrap_or_else(|| loc.parent_dir_url()),
                target_frames: opts.target_frames,
                video_probe: Some(video_probe.clone()),
            });
            let (tx, mut rx) = mpsc::channel(depth);
            let reader = {
                let (loc, ctx, bar) = (loc.clone(), Arc::clone(&ctx), bar.clone());
                let (chunk_lines, max_line) = (opts.chunk_lines.max(1), opts.max_line_bytes);
                tokio::task::spawn_blocking(move || read_chunks(loc, ctx, chunk_lines, max_line, tx, bar))
            };
            let mut file_counts = ChunkCounts::default();
            while let Some(pending) = rx.recv().await {
                let parsed = pending
                    .await
                    .map_err(|_| GdoError::Table(format!("{name}: a parse worker stopped unexpectedly")))?;
                add_counts(&mut file_counts, &parsed.counts);
                sink.push(&mut table, parsed).await?;
                bar.set_message(format!("{} pairs", sink.next_index));
            }
            reader.await.map_err(|e| GdoError::Table(format!("{name}: reader failed: {e}")))??;
            add_counts(&mut total, &file_counts);
            if file_counts.other_layout * 2 > file_counts.rows {
                let (given, looks, flag) = match layout {
                    Layout::Video => ("--video", "one image and no video file (image rows?)", "--onevision"),
                    Layout::Onevision => ("--onevision", "a video file (video rows?)", "--video"),
                };
                eprintln!(
                    "warning: {name} was given as {given}, but {} of its {} rows hold {looks}; \
                     if so, give it with {flag}",
                    file_counts.other_layout, file_counts.rows
                );
            }
            reports.push(InputReport {
                file: name.clone(),
                layout: *layout,
                bytes: *bytes,
                lines: file_counts.lines,
                blank_lines: file_counts.blank,
                rows: file_counts.rows,
                pairs: file_counts.pairs,
                rejected: file_counts.rejected.iter().sum(),
                rejected_by_reason: reasons_map(&file_counts.rejected),
                other_layout_rows: file_counts.other_layout,
            });
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = result {
        // Best effort: the run's files are garbage either way, and `gdo vacuum`
        // removes whatever is left.
        let _ = table.abort().await;
        return Err(e);
    }

    let rejected: u64 = total.rejected.iter().sum();
    let considered = total.lines - total.blank;
    let ratio = if considered == 0 { 0.0 } else { rejected as f64 / considered as f64 };
    if ratio > opts.max_reject_ratio {
        let reasons =
            reasons_map(&total.rejected).iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ");
        let _ = table.abort().await;
        return Err(GdoError::TooManyRejects {
            rejected,
            lines: considered,
            pct: ratio * 100.0,
            max: opts.max_reject_ratio,
            reasons,
        });
    }

    let (bucket_counts, num_strata) = sink.finish(&mut table).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = IngestReport {
        out: out.to_string(),
        version: None,
        run_id: table.run_id().to_owned(),
        total_pairs: total.pairs,
        rows: total.rows,
        lines: total.lines,
        blank_lines: total.blank,
        rejected,
        rejected_by_reason: reasons_map(&total.rejected),
        bucket_counts,
        num_strata,
        inputs: reports,
        ignored_files,
        data_files: 0,
        target_frames: opts.target_frames,
        seconds,
        pairs_per_second: if seconds > 0.0 { total.pairs as f64 / seconds } else { 0.0 },
    };
    let meta = serde_json::to_value(&report)?;
    let committed = table.commit(meta).await?;
    report.data_files = committed.files;
    report.version = Some(committed.version);
    // The report beside the table is informational; the commit record holds it too.
    out.child(REPORT_FILE).write_all(serde_json::to_vec_pretty(&report)?).await?;
    Ok(report)
}
