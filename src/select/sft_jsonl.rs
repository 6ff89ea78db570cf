//! The SFT-ready JSONL export of a subset (LLaVA / ms-swift `messages` + `images`):
//! one `<image>` per frame before the question, frames resampled to `target_frames`,
//! the score and its parts under `meta`.
//!
//! Rows are serialised straight from the Arrow columns (borrowed strings, no JSON
//! tree per row) in chunks on the rayon pool and uploaded in row order, so the file's
//! bytes do not depend on the thread count. Keys are written in sorted order, as
//! earlier releases (a `serde_json::Value` tree) wrote them.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericListArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use object_store::buffered::BufWriter;
use rayon::prelude::*;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::common::{f64_at, f64s, str_at, strings};
use crate::error::{GdoError, Result};
use crate::store::Location;

/// Rows per serialisation chunk: large enough that a chunk outweighs its scheduling,
/// small enough that two cores share a 4.5k-row subset.
const CHUNK_ROWS: usize = 1024;

/// Multipart upload part size: S3's minimum (5 MiB).
const UPLOAD_PART_BYTES: usize = 5 << 20;

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    images: Vec<&'a str>,
    messages: [Message<'a>; 2],
    meta: Meta<'a>,
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

    /// Rows `from..to` as JSON lines.
    fn write(&self, from: usize, to: usize, target_frames: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity((to - from) * 1024);
        let mut prompt = String::new();
        for i in from..to {
            let all: Vec<&str> = if self.frames.is_null(i) {
                Vec::new()
            } else {
                let (start, end) =
                    (self.frames.value_offsets()[i] as usize, self.frames.value_offsets()[i + 1] as usize);
                let values = self.frames.values().as_string::<i32>();
                (start..end).map(|j| if values.is_null(j) { "" } else { values.value(j) }).collect()
            };
            let images: Vec<&str> =
                gdo_udfs::method::uniform_indices(all.len(), target_frames).into_iter().map(|k| all[k]).collect();
            prompt.clear();
            for _ in 0..images.len() {
                prompt.push_str("<image>");
            }
            prompt.push('\n');
            prompt.push_str(str_at(&self.question, i));
            let uid = str_at(&self.uid, i);
            let row = Row {
                id: uid,
                messages: [
                    Message { content: &prompt, role: "user" },
                    Message { content: str_at(&self.answer, i), role: "assistant" },
                ],
                images,
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
        }
        Ok(out)
    }
}

/// Write the JSON lines of `batch` to `loc` while they are serialised: groups of
/// chunks are serialised side by side on the rayon pool and uploaded in order, so
/// memory holds a few groups and one upload part, not the file. The object appears
/// whole or not at all (one put, or a multipart upload completed at the end and
/// aborted on error).
pub async fn write_sft_jsonl(loc: &Location, batch: RecordBatch, target_frames: usize) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Bytes>>>(1);
    let producer = tokio::task::spawn_blocking(move || {
        let columns = match Columns::of(&batch) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let n = batch.num_rows();
        let group = CHUNK_ROWS * rayon::current_num_threads();
        for start in (0..n).step_by(group) {
            let end = (start + group).min(n);
            let parts: Result<Vec<Bytes>> = (start..end)
                .step_by(CHUNK_ROWS)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|from| columns.write(from, (from + CHUNK_ROWS).min(end), target_frames).map(Bytes::from))
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
    while let Some(parts) = rx.recv().await {
        let written = async {
            for part in parts? {
                writer.put(part).await?;
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
        Ok(()) => Ok(writer.shutdown().await.map_err(|e| GdoError::Table(format!("{loc}: {e}")))?),
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
        let outcome = write_sft_jsonl(&loc, batch, target).await;
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
}
