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

use candle_core::{Device, Tensor};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use gdo_udfs::media::{FrameFetcher, decode_rgb};
use image::RgbImage;

use crate::error::{GdoError, Result};
use crate::train::tiny_vlm::TinyVlmConfig;
use crate::train::tokenizer::{BOS, EOS, PAD, SEP, TextTokenizer};

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

/// Indices of at most `max` of `n` frames, uniformly resampled, in time order.
pub fn resample_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| ((2 * i + 1) * n) / (2 * max)).collect()
}

/// Which frames of a pair a model sees: at most `max_frames`, uniformly resampled, and
/// the square side they are resized to (`None`: as decoded, for a model whose own
/// processor resizes, like Qwen3-VL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrep {
    pub max_frames: usize,
    pub size: Option<u32>,
}

impl From<&TinyVlmConfig> for FramePrep {
    fn from(cfg: &TinyVlmConfig) -> Self {
        Self { max_frames: cfg.max_frames, size: Some(cfg.image_size as u32) }
    }
}

/// Resize a decoded frame to the model's input size.
pub fn prepare_frame(img: &RgbImage, cfg: &TinyVlmConfig) -> RgbImage {
    resize_square(img, cfg.image_size as u32)
}

fn resize_square(img: &RgbImage, s: u32) -> RgbImage {
    if img.width() == s && img.height() == s {
        img.clone()
    } else {
        image::imageops::resize(img, s, s, image::imageops::FilterType::Triangle)
    }
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

/// Token ids, next-token targets, loss mask and text mask of one pair, each of length
/// `max_text`. The question is truncated first so the answer keeps its tokens.
pub fn encode_pair(tok: &TextTokenizer, cfg: &TinyVlmConfig, question: &str, answer: &str) -> Result<EncodedText> {
    let t = cfg.max_text;
    let mut a = tok.encode(answer)?;
    a.truncate(t / 3);
    let mut q = tok.encode(question)?;
    q.truncate(t - a.len() - 3);
    let mut ids = vec![BOS];
    ids.extend(&q);
    ids.push(SEP);
    let answer_start = ids.len();
    ids.extend(&a);
    ids.push(EOS);
    let n = ids.len();
    let mut enc = EncodedText {
        tokens: vec![PAD; t],
        targets: vec![PAD; t],
        loss_mask: vec![0.0; t],
        text_mask: vec![0.0; t],
        prompt_len: answer_start,
    };
    for i in 0..n {
        enc.tokens[i] = ids[i];
        enc.text_mask[i] = 1.0;
        if i + 1 < n {
            enc.targets[i] = ids[i + 1];
            // Position i predicts token i+1: answer tokens and EOS count.
            if i + 1 >= answer_start {
                enc.loss_mask[i] = 1.0;
            }
        }
    }
    Ok(enc)
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncodedText {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    pub loss_mask: Vec<f32>,
    pub text_mask: Vec<f32>,
    /// Tokens before the first answer token (`[BOS] question [SEP]`).
    pub prompt_len: usize,
}

/// Model inputs for a batch.
#[derive(Debug)]
pub struct Batch {
    /// `[B, F, 3, S, S]`
    pub frames: Tensor,
    /// `[B, F]`, 1 where a frame is present.
    pub frame_mask: Tensor,
    /// `[B, T]` u32
    pub tokens: Tensor,
    /// `[B, T]` u32
    pub targets: Tensor,
    /// `[B, T]`
    pub loss_mask: Tensor,
    /// `[B, T]`
    pub text_mask: Tensor,
}

/// Stack encoded pairs and their (already resized) frames; `blind[i]` drops row i's frames.
pub fn build_batch(
    texts: &[EncodedText],
    frames: &[&[RgbImage]],
    blind: &[bool],
    cfg: &TinyVlmConfig,
    device: &Device,
) -> Result<Batch> {
    let (b, f, s, t) = (texts.len(), cfg.max_frames, cfg.image_size, cfg.max_text);
    let mut pix = vec![0f32; b * f * 3 * s * s];
    let mut fmask = vec![0f32; b * f];
    for (i, imgs) in frames.iter().enumerate() {
        if blind[i] {
            continue;
        }
        for (slot, img) in imgs.iter().take(f).enumerate() {
            fmask[i * f + slot] = 1.0;
            let base = (i * f + slot) * 3 * s * s;
            for (x, y, p) in img.enumerate_pixels() {
                if x as usize >= s || y as usize >= s {
                    continue;
                }
                for c in 0..3 {
                    pix[base + c * s * s + y as usize * s + x as usize] = p[c] as f32 / 255.0 - 0.5;
                }
            }
        }
    }
    let cat_u32 =
        |get: fn(&EncodedText) -> &Vec<u32>| texts.iter().flat_map(|e| get(e).iter().copied()).collect::<Vec<u32>>();
    let cat_f32 =
        |get: fn(&EncodedText) -> &Vec<f32>| texts.iter().flat_map(|e| get(e).iter().copied()).collect::<Vec<f32>>();
    Ok(Batch {
        frames: Tensor::from_vec(pix, (b, f, 3, s, s), device)?,
        frame_mask: Tensor::from_vec(fmask, (b, f), device)?,
        tokens: Tensor::from_vec(cat_u32(|e| &e.tokens), (b, t), device)?,
        targets: Tensor::from_vec(cat_u32(|e| &e.targets), (b, t), device)?,
        loss_mask: Tensor::from_vec(cat_f32(|e| &e.loss_mask), (b, t), device)?,
        text_mask: Tensor::from_vec(cat_f32(|e| &e.text_mask), (b, t), device)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_is_uniform_and_keeps_short_videos() {
        assert_eq!(resample_indices(3, 8), vec![0, 1, 2]);
        assert_eq!(resample_indices(16, 4), vec![2, 6, 10, 14]);
        assert_eq!(resample_indices(32, 8), vec![2, 6, 10, 14, 18, 22, 26, 30]);
    }

    #[test]
    fn loss_mask_covers_answer_and_eos_only() {
        let tok = TextTokenizer::build(["what is it", "a cat"], 50).unwrap();
        let cfg = TinyVlmConfig { vocab_size: tok.vocab_size(), ..TinyVlmConfig::default() };
        let e = encode_pair(&tok, &cfg, "what is it", "a cat").unwrap();
        // [BOS] what is it [SEP] a cat [EOS]
        assert_eq!(e.prompt_len, 5);
        assert_eq!(
            &e.tokens[..8],
            &[
                BOS,
                tok.token_id("what").unwrap(),
                tok.token_id("is").unwrap(),
                tok.token_id("it").unwrap(),
                SEP,
                tok.token_id("a").unwrap(),
                tok.token_id("cat").unwrap(),
                EOS
            ]
        );
        let masked: Vec<usize> = (0..cfg.max_text).filter(|&i| e.loss_mask[i] > 0.0).collect();
        assert_eq!(masked, vec![4, 5, 6]);
        assert_eq!(e.targets[4], tok.token_id("a").unwrap());
        assert_eq!(e.targets[6], EOS);
        assert_eq!(e.text_mask.iter().sum::<f32>(), 8.0);
    }
}
