//! The SFT-ready JSONL export of a subset, in the `messages` + `images` / `videos`
//! layout that ms-swift and LLaMA-Factory (`sharegpt` formatting) read: an optional
//! system turn, the question after its media tags, the answer; frames resampled to
//! `target_frames`; the score and its parts under `meta`. [`dataset_info`] is the
//! matching LLaMA-Factory `dataset_info.json` entry.
//!
//! Media paths are written as those trainers open them: local frames as plain paths
//! (absolute, or relative to `--media-base`), never `file://` URIs; object-store URIs
//! as they are (counted, since neither trainer reads them). Every row holds both
//! `images` and `videos`, always lists, and one file holds one form of video (files,
//! or frame lists), so HF `datasets` reads the file with one schema.
//!
//! Rows are serialised straight from the Arrow columns (borrowed strings, no JSON
//! tree per row) in chunks on the rayon pool and uploaded in row order, so the file's
//! bytes do not depend on the thread count. Keys are written in sorted order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericListArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use gdo_udfs::media::video::split_frame_uri;
use object_store::buffered::BufWriter;
use rayon::prelude::*;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::error::{GdoError, Result};
use crate::ops::common::{f64_at, f64s, str_at, strings};
use crate::store::Location;

/// Rows per serialisation chunk: large enough that a chunk outweighs its scheduling,
/// small enough that two cores share a 4.5k-row subset.
const CHUNK_ROWS: usize = 1024;

/// Multipart upload part size: S3's minimum (5 MiB).
const UPLOAD_PART_BYTES: usize = 5 << 20;

/// How a video pair's frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoAs {
    /// One `<image>` tag per frame, the frames in `images` (any image-text model).
    #[default]
    Images,
    /// One `<video>` tag, the video in `videos`: its frame list (`[[f1, f2, ...]]`), or
    /// the source file for pairs ingested from a video file (Qwen-VL's video input).
    Video,
}

/// How the SFT JSONL is written.
#[derive(Debug, Clone)]
pub struct SftOptions {
    /// Frames per pair (uniform resampling of the pair's frames).
    pub target_frames: usize,
    /// Local media paths are written relative to this folder (None: absolute).
    pub media_base: Option<PathBuf>,
    pub video_as: VideoAs,
    /// A system turn opening every conversation.
    pub system: Option<String>,
}

impl Default for SftOptions {
    fn default() -> Self {
        Self { target_frames: 32, media_base: None, video_as: VideoAs::Images, system: None }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SftStats {
    pub rows: usize,
    /// Rows written with a `<video>` tag.
    pub video_rows: usize,
    /// Rows with media in an object store (`s3://...`), which the trainers do not open.
    pub remote_media_rows: usize,
}

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    images: Vec<String>,
    messages: Vec<Message<'a>>,
    meta: Meta<'a>,
    videos: Vec<Video>,
}

/// One entry of `videos`: a file, or a video's frames.
#[derive(Serialize)]
#[serde(untagged)]
enum Video {
    File(String),
    Frames(Vec<String>),
}

#[derive(Serialize)]
struct Message<'a> {
    content: &'a str,
    role: &'static str,
}

/// Field order is the sorted key order of the file format.
#[derive(Serialize)]
struct Meta<'a> {
    base_score: Option<f64>,
    bucket: &'a str,
    metric_quality: Option<f64>,
    n_frames: usize,
    qa_uid: &'a str,
    score: Option<f64>,
    source: &'a str,
    stage: &'a str,
    temporal_category: &'a str,
    vds3: Option<f64>,
    video_uid: &'a str,
}

/// A media URI as a path the trainers open: a local file's path (relative to `base`
/// when given; a file outside it is an error), any other URI as it is.
fn media_path(uri: &str, base: Option<&Path>) -> Result<(String, bool)> {
    let Some(rest) = uri.strip_prefix("file://") else { return Ok((uri.to_owned(), !uri.is_empty())) };
    let path = url::Url::parse(uri).ok().and_then(|u| u.to_file_path().ok()).unwrap_or_else(|| PathBuf::from(rest));
    let written = match base {
        None => path,
        Some(base) => path
            .strip_prefix(base)
            .map_err(|_| {
                GdoError::Usage(format!(
                    "{} is not under --media-base {}; give a folder that holds every frame, or none \
                     (absolute paths)",
                    path.display(),
                    base.display()
                ))
            })?
            .to_path_buf(),
    };
    Ok((written.to_string_lossy().into_owned(), false))
}

/// The columns one batch's rows are written from.
struct Columns {
    uid: ArrayRef,
    vid: ArrayRef,
    question: ArrayRef,
    answer: ArrayRef,
    bucket: ArrayRef,
    source: ArrayRef,
    temporal: ArrayRef,
    stage: ArrayRef,
    score: ArrayRef,
    base: ArrayRef,
    vds3: ArrayRef,
    quality: ArrayRef,
    frames: GenericListArray<i32>,
}

impl Columns {
    fn of(b: &RecordBatch) -> Result<Self> {
        let Some(frames) = b.column_by_name("frames") else {
            return Err(GdoError::Table("subset rows lack the frames column".into()));
        };
        let list_utf8 = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        let frames = cast(frames, &list_utf8)?.as_list::<i32>().clone();
        Ok(Self {
            uid: strings(b, "qa_uid")?,
            vid: strings(b, "video_uid")?,
            question: strings(b, "question")?,
            answer: strings(b, "answer")?,
            bucket: strings(b, "bucket")?,
            source: strings(b, "data_source")?,
            temporal: strings(b, "temporal_category")?,
            stage: strings(b, "stage")?,
            score: f64s(b, "score")?,
            base: f64s(b, "base_score")?,
            vds3: f64s(b, "vds3")?,
            quality: f64s(b, "metric_quality")?,
            frames,
        })
    }

    /// Row `i`'s frame URIs.
    fn frames(&self, i: usize) -> Vec<&str> {
        if self.frames.is_null(i) {
            return Vec::new();
        }
        let (start, end) = (self.frames.value_offsets()[i] as usize, self.frames.value_offsets()[i + 1] as usize);
        let values = self.frames.values().as_string::<i32>();
        (start..end).map(|j| if values.is_null(j) { "" } else { values.value(j) }).collect()
    }

    /// Whether row `i` is written as a video, and whether from its source file.
    fn video_form(&self, i: usize, opts: &SftOptions) -> (bool, bool) {
        let from_file = self.frames(i).first().is_some_and(|f| split_frame_uri(f).is_some());
        let video = from_file || (opts.video_as == VideoAs::Video && str_at(&self.bucket, i) != "image_qa");
        (video, from_file)
    }

    /// Rows `from..to` as JSON lines, and their counts.
    fn write(&self, from: usize, to: usize, opts: &SftOptions) -> Result<(Vec<u8>, SftStats)> {
        let mut out = Vec::with_capacity((to - from) * 1024);
        let mut stats = SftStats::default();
        let mut prompt = String::new();
        let base = opts.media_base.as_deref();
        for i in from..to {
            let all = self.frames(i);
            let kept: Vec<&str> =
                gdo_udfs::method::uniform_indices(all.len(), opts.target_frames).into_iter().map(|k| all[k]).collect();
            let (as_video, from_file) = self.video_form(i, opts);
            let mut remote = false;
            let mut path = |uri: &str| -> Result<String> {
                let (p, r) = media_path(uri, base)?;
                remote |= r;
                Ok(p)
            };
            let (images, videos) = if from_file {
                let file = split_frame_uri(kept[0]).map_or(kept[0], |(v, _)| v);
                (Vec::new(), vec![Video::File(path(file)?)])
            } else if as_video {
                (Vec::new(), vec![Video::Frames(kept.iter().map(|f| path(f)).collect::<Result<_>>()?)])
            } else {
                (kept.iter().map(|f| path(f)).collect::<Result<_>>()?, Vec::new())
            };
            prompt.clear();
            if as_video {
                prompt.push_str("<video>");
            } else {
                for _ in 0..images.len() {
                    prompt.push_str("<image>");
                }
            }
            prompt.push('\n');
            prompt.push_str(str_at(&self.question, i));
            let uid = str_at(&self.uid, i);
            let mut messages = Vec::with_capacity(3);
            if let Some(system) = &opts.system {
                messages.push(Message { content: system, role: "system" });
            }
            messages.push(Message { content: &prompt, role: "user" });
            messages.push(Message { content: str_at(&self.answer, i), role: "assistant" });
            let row = Row {
                id: uid,
                messages,
                images,
                videos,
                meta: Meta {
                    base_score: f64_at(&self.base, i),
                    bucket: str_at(&self.bucket, i),
                    metric_quality: f64_at(&self.quality, i),
                    n_frames: all.len(),
                    qa_uid: uid,
                    score: f64_at(&self.score, i),
                    source: str_at(&self.source, i),
                    stage: str_at(&self.stage, i),
                    temporal_category: str_at(&self.temporal, i),
                    vds3: f64_at(&self.vds3, i),
                    video_uid: str_at(&self.vid, i),
                },
            };
            serde_json::to_writer(&mut out, &row)?;
            out.push(b'\n');
            stats.rows += 1;
            stats.video_rows += usize::from(as_video);
            stats.remote_media_rows += usize::from(remote);
        }
        Ok((out, stats))
    }

    /// One file, one form of video (HF `datasets` before 4.7, which LLaMA-Factory pins,
    /// refuses a column that is a list of files in one row and of frame lists in another).
    fn check_one_video_form(&self, n: usize, opts: &SftOptions) -> Result<()> {
        if opts.video_as != VideoAs::Video {
            return Ok(());
        }
        let (mut files, mut lists) = (None, None);
        for i in 0..n {
            match self.video_form(i, opts) {
                (true, true) => files = files.or(Some(i)),
                (true, false) => lists = lists.or(Some(i)),
                _ => {}
            }
        }
        if let (Some(f), Some(l)) = (files, lists) {
            return Err(GdoError::Usage(format!(
                "--video-as video: the subset holds videos ingested from files ({}) and as frame lists \
                 ({}); one JSONL cannot hold both forms for HF datasets. Use --video-as images \
                 (frames as <image> tags, files as <video>), or export the two kinds apart",
                str_at(&self.uid, f),
                str_at(&self.uid, l)
            )));
        }
        Ok(())
    }
}

/// The LLaMA-Factory `dataset_info.json` entry of an SFT JSONL written by
/// [`write_sft_jsonl`] (sharegpt formatting, OpenAI-style role tags).
pub fn dataset_info(file_name: &str) -> serde_json::Value {
    serde_json::json!({
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": { "messages": "messages", "images": "images", "videos": "videos" },
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system"
        }
    })
}

/// Write the JSON lines of `batch` to `loc` while they are serialised: groups of
/// chunks are serialised side by side on the rayon pool and uploaded in order, so
/// memory holds a few groups and one upload part, not the file. The object appears
/// whole or not at all (one put, or a multipart upload completed at the end and
/// aborted on error).
pub async fn write_sft_jsonl(loc: &Location, batch: RecordBatch, opts: &SftOptions) -> Result<SftStats> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<(Bytes, SftStats)>>>(1);
    let opts = opts.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let n = batch.num_rows();
        let columns = match Columns::of(&batch).and_then(|c| c.check_one_video_form(n, &opts).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let group = CHUNK_ROWS * rayon::current_num_threads();
        for start in (0..n).step_by(group) {
            let end = (start + group).min(n);
            let parts: Result<Vec<(Bytes, SftStats)>> = (start..end)
                .step_by(CHUNK_ROWS)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|from| columns.write(from, (from + CHUNK_ROWS).min(end), &opts).map(|(b, s)| (Bytes::from(b), s)))
                .collect();
            let failed = parts.is_err();
            // A closed channel means the writer gave up; stop serialising.
            if tx.blocking_send(parts).is_err() || failed {
                return;
            }
        }
    });
    // Parts of S3's smallest size, one in flight while the next group is serialised:
    // little of the file is held at any time.
    let mut writer =
        BufWriter::with_capacity(Arc::clone(&loc.store), loc.path.clone(), UPLOAD_PART_BYTES).with_max_concurrency(1);
    let mut outcome: Result<()> = Ok(());
    let mut stats = SftStats::default();
    while let Some(parts) = rx.recv().await {
        let written = async {
            for (part, s) in parts? {
                writer.put(part).await?;
                stats.rows += s.rows;
                stats.video_rows += s.video_rows;
                stats.remote_media_rows += s.remote_media_rows;
            }
            Ok::<_, GdoError>(())
        };
        if let Err(e) = written.await {
            outcome = Err(e);
            break;
        }
    }
    drop(rx);
    if let Err(e) = producer.await {
        outcome = outcome.and(Err(GdoError::Table(format!("{loc}: serialising the JSONL stopped: {e}"))));
    }
    match outcome {
        Ok(()) => {
            writer.shutdown().await.map_err(|e| GdoError::Table(format!("{loc}: {e}")))?;
            Ok(stats)
        }
        Err(e) => {
            // Leave no partial object behind; the first error is the one to report.
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, ListBuilder, StringArray, StringBuilder};
    use datafusion::arrow::datatypes::Schema;
    use serde_json::json;

    use super::*;

    /// `rows` subset rows; row i has i % 40 frames and a question of `q_len` bytes.
    fn subset(rows: usize, q_len: usize) -> RecordBatch {
        let text = |p: &str| Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("{p}{i}")))) as ArrayRef;
        let mut frames = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            for j in 0..i % 40 {
                frames.values().append_value(format!("s3://b/v{i}/{j:04}.jpg"));
            }
            frames.append(true);
        }
        let question =
            Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("{i}\"q\n{}", "x".repeat(q_len)))));
        let nums = |f: fn(usize) -> f64| Arc::new(Float64Array::from_iter_values((0..rows).map(f))) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("qa_uid", text("u")),
            ("video_uid", text("v")),
            ("question", question),
            ("answer", text("a")),
            ("bucket", text("b")),
            ("data_source", text("s")),
            ("temporal_category", text("t")),
            ("stage", text("g")),
            ("score", nums(|i| i as f64 / 3.0)),
            // Non-finite scores are written as null.
            ("base_score", nums(|i| if i % 2 == 0 { f64::NAN } else { -(i as f64) })),
            ("vds3", nums(|i| if i % 3 == 0 { f64::INFINITY } else { 0.1 * i as f64 })),
            ("metric_quality", nums(|i| i as f64 * 1e-7)),
            ("frames", Arc::new(frames.finish())),
        ];
        let schema =
            Schema::new(columns.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>());
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, c)| c).collect()).unwrap()
    }

    fn num(x: f64) -> serde_json::Value {
        if x.is_finite() { json!(x) } else { serde_json::Value::Null }
    }

    /// Row i as a JSON tree: what the export must equal byte for byte (serde_json
    /// writes a tree's keys sorted).
    fn expected_line(i: usize, q_len: usize, target: usize) -> String {
        let all: Vec<String> = (0..i % 40).map(|j| format!("s3://b/v{i}/{j:04}.jpg")).collect();
        let images: Vec<&String> =
            gdo_udfs::method::uniform_indices(all.len(), target).into_iter().map(|k| &all[k]).collect();
        let question = format!("{i}\"q\n{}", "x".repeat(q_len));
        let row = json!({
            "id": format!("u{i}"),
            "messages": [
                {"role": "user", "content": format!("{}\n{question}", "<image>".repeat(images.len()))},
                {"role": "assistant", "content": format!("a{i}")},
            ],
            "images": images,
            "videos": [],
            "meta": {
                "qa_uid": format!("u{i}"), "video_uid": format!("v{i}"), "bucket": format!("b{i}"),
                "source": format!("s{i}"), "n_frames": all.len(), "temporal_category": format!("t{i}"),
                "score": num(i as f64 / 3.0), "base_score": num(if i.is_multiple_of(2) { f64::NAN } else { -(i as f64) }),
                "vds3": num(if i.is_multiple_of(3) { f64::INFINITY } else { 0.1 * i as f64 }),
                "metric_quality": num(i as f64 * 1e-7), "stage": format!("g{i}"),
            },
        });
        serde_json::to_string(&row).unwrap() + "\n"
    }

    async fn export(batch: RecordBatch, target: usize) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(&dir.path().join("out.jsonl").display().to_string()).unwrap();
        let opts = SftOptions { target_frames: target, ..SftOptions::default() };
        let outcome = write_sft_jsonl(&loc, batch, &opts).await.map(|_| ());
        (dir, outcome)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_equal_their_json_tree_with_sorted_keys_and_null_for_non_finite() {
        let (dir, outcome) = export(subset(50, 10), 8).await;
        outcome.unwrap();
        let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        let want: String = (0..50).map(|i| expected_line(i, 10, 8)).collect();
        assert_eq!(text, want);
        assert!(text.contains(r#""base_score":null"#) && text.contains(r#""n_frames":39"#));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_export_streams_in_parts_in_row_order() {
        // ~26 MB: several groups and a multipart upload of 5 MiB parts.
        let (rows, q_len) = (20_000, 1200);
        let (dir, outcome) = export(subset(rows, q_len), 32).await;
        outcome.unwrap();
        let bytes = std::fs::read(dir.path().join("out.jsonl")).unwrap();
        assert!(bytes.len() > 4 * UPLOAD_PART_BYTES, "{} bytes", bytes.len());
        let want: String = (0..rows).map(|i| expected_line(i, q_len, 32)).collect();
        assert!(bytes == want.as_bytes(), "the streamed file differs from the rows serialised one by one");
        // Only the finished object is left (no staged upload parts).
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jsonl")]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_without_frames_are_an_error_and_leave_no_file() {
        let batch = subset(10, 1);
        let batch = batch.project(&(0..batch.num_columns() - 1).collect::<Vec<_>>()).unwrap();
        let (dir, outcome) = export(batch, 32).await;
        assert!(outcome.unwrap_err().to_string().contains("frames"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Rows with the given frames (bucket `image_qa` for one frame, else `short_video`).
    fn rows_with(frames: &[Vec<String>]) -> RecordBatch {
        let full = subset(frames.len(), 1);
        let mut list = ListBuilder::new(StringBuilder::new());
        for f in frames {
            for uri in f {
                list.values().append_value(uri);
            }
            list.append(true);
        }
        let bucket =
            StringArray::from_iter_values(frames.iter().map(|f| if f.len() == 1 { "image_qa" } else { "short_video" }));
        let schema = full.schema();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(full.columns())
            .map(|(f, c)| match f.name().as_str() {
                "frames" => Arc::new(list.finish()) as ArrayRef,
                "bucket" => Arc::new(bucket.clone()) as ArrayRef,
                _ => Arc::clone(c),
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    async fn lines(batch: RecordBatch, opts: &SftOptions) -> Result<(Vec<serde_json::Value>, SftStats)> {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::parse(&dir.path().join("out.jsonl").display().to_string()).unwrap();
        let stats = write_sft_jsonl(&loc, batch, opts).await?;
        let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        Ok((text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), stats))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_frames_are_plain_paths_relative_to_the_media_base_and_videos_take_one_tag() {
        let frames = vec![
            vec!["file:///data/my%20pics/a.jpg".to_owned()],
            (0..4).map(|k| format!("file:///data/clips/c1/{k}.jpg")).collect(),
            (0..3).map(|k| format!("file:///data/raw/clip%231.mp4#frame={}", k * 10)).collect(),
        ];
        let absolute = lines(rows_with(&frames), &SftOptions::default()).await.unwrap().0;
        assert_eq!(absolute[0]["images"], json!(["/data/my pics/a.jpg"]));
        assert_eq!(absolute[0]["videos"], json!([]));
        assert_eq!(absolute[1]["images"].as_array().unwrap().len(), 4);
        assert!(absolute[1]["messages"][0]["content"].as_str().unwrap().starts_with("<image><image><image><image>\n"));
        // A pair ingested from a video file points at the file, whatever the mode.
        assert_eq!(absolute[2]["videos"], json!(["/data/raw/clip#1.mp4"]));
        assert_eq!(absolute[2]["images"], json!([]));
        assert!(absolute[2]["messages"][0]["content"].as_str().unwrap().starts_with("<video>\n"));

        let opts = SftOptions {
            media_base: Some(PathBuf::from("/data")),
            video_as: VideoAs::Video,
            system: Some("You are a careful assistant.".into()),
            ..SftOptions::default()
        };
        // Frame lists and files in one file: refused, naming a row of each.
        let err = lines(rows_with(&frames), &opts).await.unwrap_err().to_string();
        assert!(err.contains("u2") && err.contains("u1") && err.contains("--video-as images"), "{err}");
        let (rows, stats) = lines(rows_with(&frames[..2]), &opts).await.unwrap();
        assert_eq!(rows[0]["images"], json!(["my pics/a.jpg"]));
        assert_eq!(
            rows[1]["videos"],
            json!([["clips/c1/0.jpg", "clips/c1/1.jpg", "clips/c1/2.jpg", "clips/c1/3.jpg"]])
        );
        assert_eq!(rows[1]["messages"][0], json!({"role": "system", "content": "You are a careful assistant."}));
        assert!(rows[1]["messages"][1]["content"].as_str().unwrap().starts_with("<video>\n"));
        assert_eq!((stats.rows, stats.video_rows, stats.remote_media_rows), (2, 1, 0));

        let outside = SftOptions { media_base: Some(PathBuf::from("/elsewhere")), ..SftOptions::default() };
        let err = lines(rows_with(&frames), &outside).await.unwrap_err().to_string();
        assert!(err.contains("/data/my pics/a.jpg is not under --media-base /elsewhere"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_store_media_are_kept_as_uris_and_counted() {
        let (_, stats) = lines(subset(5, 1), &SftOptions::default()).await.unwrap();
        // Row 0 has no frames; rows 1-4 have s3:// frames.
        assert_eq!((stats.rows, stats.remote_media_rows), (5, 4));
    }
}
