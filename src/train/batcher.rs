//! Rows of a DataFusion stream (qa_uid, question, answer, frames) -> tensors.
//!
//! The row text is read from the stream; frames are fetched per batch, concurrently,
//! through the session's object stores ([`gdo_udfs::media::FrameFetcher`]) and decoded
//! with [`gdo_udfs::media::decode_rgb`], so no intermediate files are written. Up to
//! `max_frames` frames are chosen by uniform resampling (slot i takes frame
//! `floor((i + 0.5) * n / F)`), resized to `image_size`², scaled to [-0.5, 0.5].
//! Text: `[BOS] question [SEP] answer [EOS]`, padded to `max_text`; the loss mask
//! covers the answer tokens and EOS only. Unreadable frames are skipped and counted.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use gdo_udfs::media::{FrameFetcher, decode_rgb};
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::models::tiny_vlm::inputs::{FramePrep, resample_indices, resize_square};

pub const REQUIRED_COLUMNS: [&str; 4] = ["qa_uid", "question", "answer", "frames"];

/// One training pair as read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub qa_uid: String,
    pub question: String,
    pub answer: String,
    pub frames: Vec<String>,
}

/// Read every row's text and frame URIs from `stream` (frames are fetched later).
pub async fn read_rows(mut stream: SendableRecordBatchStream) -> Result<Vec<Row>> {
    let schema = stream.schema();
    let missing: Vec<&str> = REQUIRED_COLUMNS.iter().copied().filter(|c| schema.field_with_name(c).is_err()).collect();
    if !missing.is_empty() {
        return Err(GdoError::Usage(format!(
            "the training table lacks column(s) {}: it needs {} (a pool or subset table)",
            missing.join(", "),
            REQUIRED_COLUMNS.join(", ")
        )));
    }
    let mut rows = Vec::new();
    let list_type = DataType::List(std::sync::Arc::new(Field::new_list_field(DataType::Utf8, true)));
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let text = |name: &str| -> Result<std::sync::Arc<dyn Array>> {
            Ok(cast(batch.column_by_name(name).expect("checked above"), &DataType::Utf8)?)
        };
        let (uid, q, a) = (text("qa_uid")?, text("question")?, text("answer")?);
        let frames = cast(batch.column_by_name("frames").expect("checked above"), &list_type)?;
        let (uid, q, a, frames) =
            (uid.as_string::<i32>(), q.as_string::<i32>(), a.as_string::<i32>(), frames.as_list::<i32>());
        for i in 0..batch.num_rows() {
            let uris = if frames.is_null(i) {
                Vec::new()
            } else {
                let v = frames.value(i);
                let v = v.as_string::<i32>();
                (0..v.len()).filter(|&j| v.is_valid(j)).map(|j| v.value(j).to_owned()).collect()
            };
            rows.push(Row {
                qa_uid: uid.value(i).to_owned(),
                question: if q.is_null(i) { String::new() } else { q.value(i).to_owned() },
                answer: if a.is_null(i) { String::new() } else { a.value(i).to_owned() },
                frames: uris,
            });
        }
    }
    Ok(rows)
}

/// Fetch, decode and (per `prep`) resize the resampled frames of each row. Failures are
/// skipped and counted in `skips` by kind.
pub async fn fetch_frames(
    fetcher: &FrameFetcher,
    rows: &[&Row],
    prep: impl Into<FramePrep>,
    skips: &mut BTreeMap<String, u64>,
) -> Vec<Vec<RgbImage>> {
    fetch_rows(fetcher, rows, prep.into())
        .await
        .into_iter()
        .map(|f| {
            count_skips(skips, &f.skipped);
            f.frames
        })
        .collect()
}

/// One row's prepared frames and the kinds of the frames that had to be skipped.
struct RowFrames {
    frames: Vec<RgbImage>,
    skipped: Vec<&'static str>,
}

fn count_skips(skips: &mut BTreeMap<String, u64>, kinds: &[&'static str]) {
    for k in kinds {
        *skips.entry((*k).to_owned()).or_default() += 1;
    }
}

async fn fetch_rows(fetcher: &FrameFetcher, rows: &[&Row], prep: FramePrep) -> Vec<RowFrames> {
    let chosen: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| resample_indices(r.frames.len(), prep.max_frames).into_iter().map(|i| r.frames[i].as_str()).collect())
        .collect();
    let fetched = fetcher.fetch_rows(&chosen).await;
    chosen
        .iter()
        .zip(fetched)
        .map(|(uris, got)| {
            let mut out = RowFrames { frames: Vec::new(), skipped: Vec::new() };
            for (got, uri) in got.into_iter().zip(uris) {
                match got.and_then(|bytes| decode_rgb(uri, &bytes)) {
                    Ok(img) => out.frames.push(match prep.size {
                        Some(s) => resize_square(&img, s),
                        None => img,
                    }),
                    Err(e) => {
                        tracing::warn!("skipping frame: {e}");
                        out.skipped.push(e.kind.as_str());
                    }
                }
            }
            out
        })
        .collect()
}

/// Prepared frames of a training table's rows, kept across epochs so that each row's
/// frames are fetched, decoded and resized once rather than once per epoch (at 32x32, a
/// 900-pair pool takes about 20 MiB). Rows beyond `budget_bytes` are fetched every time.
/// A cached row's skipped frames are counted again on every use, so the skip counts equal
/// those of an uncached run (and of a resumed one, which starts with an empty cache).
pub struct FrameCache {
    prep: FramePrep,
    rows: std::collections::HashMap<usize, RowFrames>,
    bytes: usize,
    budget_bytes: usize,
}

impl FrameCache {
    pub fn new(prep: FramePrep, budget_bytes: usize) -> Self {
        Self { prep, rows: std::collections::HashMap::new(), bytes: 0, budget_bytes }
    }

    /// Frames of `rows[i]` for each `i` in `which`, in that order.
    pub async fn frames(
        &mut self,
        fetcher: &FrameFetcher,
        rows: &[Row],
        which: &[usize],
        skips: &mut BTreeMap<String, u64>,
    ) -> Vec<Vec<RgbImage>> {
        let mut missing: Vec<usize> = which.iter().copied().filter(|i| !self.rows.contains_key(i)).collect();
        missing.sort_unstable();
        missing.dedup();
        let refs: Vec<&Row> = missing.iter().map(|&i| &rows[i]).collect();
        let mut uncached = std::collections::HashMap::new();
        for (i, f) in missing.into_iter().zip(fetch_rows(fetcher, &refs, self.prep).await) {
            let size: usize = f.frames.iter().map(|img| img.as_raw().len()).sum();
            if self.bytes + size <= self.budget_bytes {
                self.bytes += size;
                self.rows.insert(i, f);
            } else {
                uncached.insert(i, f);
            }
        }
        which
            .iter()
            .map(|i| {
                let f = self.rows.get(i).or_else(|| uncached.get(i)).expect("fetched above");
                count_skips(skips, &f.skipped);
                f.frames.clone()
            })
            .collect()
    }
}
