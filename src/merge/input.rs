//! Descriptor rows in: a gdo descriptor table (or any Parquet with the descriptor
//! columns), or the reference's JSONL shards (`sixd_metrics_rank*.jsonl[.gz]`, fields
//! in the nested `data_quality_metrics` object if present, else at the top level).
//!
//! Reading is streaming: [`DescriptorStream`] hands out chunks of rows, so a merge can
//! read its inputs more than once without holding them. Bad rows (invalid JSON, no
//! qa_uid, a field of the wrong type, a feature list of the wrong length) are counted
//! by reason, never fatal. Null or non-finite descriptors read as 0, except SC, where
//! they read as "not computed" (-1) like a negative SC.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::plan_err;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::{GdoError, Result};
use crate::io::jsonl;
use crate::schema::{DESCRIPTOR_FIELDS, DESCRIPTOR_SCHEMA};
use crate::session::{new_context, register_table};
use crate::store::{Location, expand_input, is_pattern};
use crate::table::AsOf;

pub const TEXT_FEAT_DIM: usize = 16;
pub const VIS_FEAT_DIM: usize = 6;
/// text_feat (16) + vis_feat (6) + [tnc, amm, frame_diversity, ppl, vds].
pub const FEATURE_DIM: usize = TEXT_FEAT_DIM + VIS_FEAT_DIM + 5;
/// File name prefix of the reference's per-rank shards.
pub const SHARD_PREFIX: &str = "sixd_metrics_rank";

/// One descriptor row as the merge uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorRow {
    pub qa_uid: String,
    pub video_uid: String,
    /// Kept as given (None when null or non-finite): the merged table passes them on.
    pub loss_video: Option<f64>,
    pub loss_blind: Option<f64>,
    pub vds: f64,
    pub ppl: f64,
    pub amm: f64,
    pub frame_diversity: f64,
    pub tnc_score: f64,
    /// Negative (-1) when not computed.
    pub self_consistency: f64,
    pub text_feat: [f64; TEXT_FEAT_DIM],
    pub vis_feat: [f64; VIS_FEAT_DIM],
}

impl DescriptorRow {
    /// The 27 clustering features.
    pub fn features(&self) -> [f64; FEATURE_DIM] {
        let mut f = [0.0; FEATURE_DIM];
        f[..TEXT_FEAT_DIM].copy_from_slice(&self.text_feat);
        f[TEXT_FEAT_DIM..TEXT_FEAT_DIM + VIS_FEAT_DIM].copy_from_slice(&self.vis_feat);
        let tail = [self.tnc_score, self.amm, self.frame_diversity, self.ppl, self.vds];
        f[TEXT_FEAT_DIM + VIS_FEAT_DIM..].copy_from_slice(&tail);
        f
    }
}

/// Why a row was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRow {
    InvalidJson,
    NotAnObject,
    MissingQaUid,
    BadFieldType,
    BadFeatureLength,
    /// None of the descriptor fields: not a descriptor row (e.g. a training-data row).
    NoDescriptorFields,
}

impl BadRow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::MissingQaUid => "missing_qa_uid",
            Self::BadFieldType => "bad_field_type",
            Self::BadFeatureLength => "bad_feature_length",
            Self::NoDescriptorFields => "no_descriptor_fields",
        }
    }
}

/// Counts of a read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadCounts {
    /// Rows read, good and bad (blank lines excluded).
    pub rows_scanned: u64,
    pub blank_lines: u64,
    pub bad_rows: u64,
    pub bad_rows_by_reason: BTreeMap<String, u64>,
}

impl ReadCounts {
    fn bad(&mut self, why: BadRow) {
        self.rows_scanned += 1;
        self.bad_rows += 1;
        *self.bad_rows_by_reason.entry(why.as_str().to_owned()).or_default() += 1;
    }

    pub fn add(&mut self, other: &ReadCounts) {
        self.rows_scanned += other.rows_scanned;
        self.blank_lines += other.blank_lines;
        self.bad_rows += other.bad_rows;
        for (k, v) in &other.bad_rows_by_reason {
            *self.bad_rows_by_reason.entry(k.clone()).or_default() += v;
        }
    }
}

/// A chunk of good rows and the counts of the lines it came from.
#[derive(Debug, Default)]
pub struct RowChunk {
    pub rows: Vec<DescriptorRow>,
    pub counts: ReadCounts,
}

impl RowChunk {
    fn push(&mut self, row: std::result::Result<DescriptorRow, BadRow>) {
        match row {
            Ok(r) => {
                self.counts.rows_scanned += 1;
                self.rows.push(r);
            }
            Err(why) => self.counts.bad(why),
        }
    }
}

// ---------------------------------------------------------------------------------
// JSONL

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// A number field: Ok(None) when absent, null or non-finite.
fn number(obj: &Map<String, Value>, key: &str) -> std::result::Result<Option<f64>, BadRow> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => jsonl::number(v).map(finite).ok_or(BadRow::BadFieldType),
    }
}

/// A feature list of length N: zeros when absent or null; null/non-finite items read 0.
fn features<const N: usize>(obj: &Map<String, Value>, key: &str) -> std::result::Result<[f64; N], BadRow> {
    let mut out = [0.0; N];
    match obj.get(key) {
        None | Some(Value::Null) => Ok(out),
        Some(Value::Array(items)) => {
            if items.len() != N {
                return Err(BadRow::BadFeatureLength);
            }
            for (o, item) in out.iter_mut().zip(items) {
                *o = match item {
                    Value::Null => 0.0,
                    v => finite(jsonl::number(v).ok_or(BadRow::BadFieldType)?).unwrap_or(0.0),
                };
            }
            Ok(out)
        }
        Some(_) => Err(BadRow::BadFieldType),
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse one JSONL line (not blank) into a descriptor row.
pub fn parse_json_line(line: &[u8]) -> std::result::Result<DescriptorRow, BadRow> {
    let value = jsonl::parse_value(line).map_err(|_| BadRow::InvalidJson)?;
    let Value::Object(top) = value else {
        return Err(BadRow::NotAnObject);
    };
    let m = match top.get("data_quality_metrics") {
        Some(Value::Object(inner)) => inner,
        _ => &top,
    };
    if !DESCRIPTOR_FIELDS.iter().any(|k| m.contains_key(*k)) {
        return Err(BadRow::NoDescriptorFields);
    }
    let qa_uid =
        text(&top, "qa_uid").or_else(|| text(&top, "id")).filter(|s| !s.is_empty()).ok_or(BadRow::MissingQaUid)?;
    let video_uid = text(&top, "video_uid").or_else(|| text(m, "video_uid")).unwrap_or_default();
    Ok(DescriptorRow {
        qa_uid,
        video_uid,
        loss_video: number(m, "loss_video")?,
        loss_blind: number(m, "loss_blind")?,
        vds: number(m, "vds")?.unwrap_or(0.0),
        ppl: number(m, "ppl")?.unwrap_or(0.0),
        amm: number(m, "amm")?.unwrap_or(0.0),
        frame_diversity: number(m, "frame_diversity")?.unwrap_or(0.0),
        tnc_score: number(m, "tnc_score")?.unwrap_or(0.0),
        self_consistency: number(m, "self_consistency")?.unwrap_or(-1.0),
        text_feat: features(m, "text_feat")?,
        vis_feat: features(m, "vis_feat")?,
    })
}

/// Stream a JSONL file as row chunks of `chunk_rows` rows into `tx`.
fn read_jsonl(loc: Location, chunk_rows: usize, tx: mpsc::Sender<Result<RowChunk>>) {
    let send_err = |e: GdoError| {
        let e = match e {
            GdoError::NotFound(_) => GdoError::NotFound(format!("descriptor file {loc}")),
            other => other,
        };
        let _ = tx.blocking_send(Err(e));
    };
    let mut lines = match jsonl::Lines::open(&loc) {
        Ok(lines) => lines,
        Err(e) => return send_err(e),
    };
    // Lines are gathered per chunk and parsed on the rayon pool (in order), so parsing
    // is not bound to the one thread that decompresses.
    let mut data: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut blank_before = 0u64;
    let parse = |data: &[u8], ends: &[usize], blank: u64| -> RowChunk {
        let parsed: Vec<_> = (0..ends.len())
            .into_par_iter()
            .map(|i| parse_json_line(&data[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]))
            .collect();
        let mut chunk = RowChunk { rows: Vec::with_capacity(parsed.len()), counts: ReadCounts::default() };
        chunk.counts.blank_lines = blank;
        parsed.into_iter().for_each(|r| chunk.push(r));
        chunk
    };
    loop {
        match lines.next_line() {
            Ok(Some((_, line))) => {
                data.extend_from_slice(line);
                ends.push(data.len());
            }
            Ok(None) => break,
            Err(e) => return send_err(e),
        }
        if ends.len() >= chunk_rows {
            let chunk = parse(&data, &ends, lines.blank - blank_before);
            blank_before = lines.blank;
            data.clear();
            ends.clear();
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // the consumer stopped
            }
        }
    }
    let _ = tx.blocking_send(Ok(parse(&data, &ends, lines.blank - blank_before)));
}

// ---------------------------------------------------------------------------------
// Parquet / gdo tables

/// Rows as a batch of the descriptor contract (bucket, counts and error left null);
/// for tests and tools that produce descriptor tables.
pub fn descriptor_batch(rows: &[DescriptorRow]) -> Result<RecordBatch> {
    use datafusion::arrow::array::{Float64Builder, ListBuilder};
    let f = |get: fn(&DescriptorRow) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(get).collect::<Float64Array>())
    };
    let list = |get: fn(&DescriptorRow) -> &[f64]| -> ArrayRef {
        let mut b = ListBuilder::new(Float64Builder::new())
            .with_field(Arc::new(Field::new_list_field(DataType::Float64, true)));
        for r in rows {
            b.values().append_slice(get(r));
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let nulls_i32: ArrayRef = Arc::new(Int32Array::new_null(rows.len()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| Some(r.qa_uid.as_str())).collect::<StringArray>()),
        Arc::new(rows.iter().map(|r| Some(r.video_uid.as_str())).collect::<StringArray>()),
        Arc::new(StringArray::new_null(rows.len())),
        f(|r| r.loss_video),
        f(|r| r.loss_blind),
        f(|r| Some(r.vds)),
        f(|r| Some(r.ppl)),
        f(|r| Some(r.amm)),
        f(|r| Some(r.frame_diversity)),
        f(|r| Some(r.tnc_score)),
        f(|r| Some(r.self_consistency)),
        list(|r| &r.text_feat),
        list(|r| &r.vis_feat),
        Arc::clone(&nulls_i32),
        Arc::clone(&nulls_i32),
        nulls_i32,
        Arc::new(StringArray::new_null(rows.len())),
    ];
    Ok(RecordBatch::try_new(Arc::clone(&DESCRIPTOR_SCHEMA), columns)?)
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> datafusion::error::Result<ArrayRef> {
    match batch.column_by_name(name) {
        Some(c) => Ok(cast(c, to)?),
        None => plan_err!(
            "descriptor table has no column '{name}' (needed: qa_uid, {}; got: {})",
            DESCRIPTOR_FIELDS.join(", "),
            batch.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Convert one batch of a descriptor table into rows.
pub fn batch_to_rows(batch: &RecordBatch) -> datafusion::error::Result<RowChunk> {
    let list_type = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    let uid = column(batch, "qa_uid", &DataType::Utf8)?;
    let uid = uid.as_string::<i32>();
    let video = match batch.column_by_name("video_uid") {
        Some(_) => Some(column(batch, "video_uid", &DataType::Utf8)?),
        None => None,
    };
    let video = video.as_ref().map(|v| v.as_string::<i32>());
    let nums: Vec<ArrayRef> =
        ["loss_video", "loss_blind", "vds", "ppl", "amm", "frame_diversity", "tnc_score", "self_consistency"]
            .iter()
            .map(|n| column(batch, n, &DataType::Float64))
            .collect::<datafusion::error::Result<_>>()?;
    let nums: Vec<&Float64Array> = nums.iter().map(|a| a.as_primitive::<Float64Type>()).collect();
    let text_feat = column(batch, "text_feat", &list_type)?;
    let vis_feat = column(batch, "vis_feat", &list_type)?;
    let (text_feat, vis_feat) = (text_feat.as_list::<i32>(), vis_feat.as_list::<i32>());
    let get = |a: &Float64Array, i: usize| if a.is_null(i) { None } else { finite(a.value(i)) };
    fn feats<const N: usize>(
        l: &datafusion::arrow::array::ListArray,
        i: usize,
    ) -> std::result::Result<[f64; N], BadRow> {
        let mut out = [0.0; N];
        if l.is_null(i) {
            return Ok(out);
        }
        let v = l.value(i);
        let v = v.as_primitive::<Float64Type>();
        if v.len() != N {
            return Err(BadRow::BadFeatureLength);
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = if v.is_null(j) { 0.0 } else { finite(v.value(j)).unwrap_or(0.0) };
        }
        Ok(out)
    }
    let mut chunk = RowChunk { rows: Vec::with_capacity(batch.num_rows()), counts: ReadCounts::default() };
    for i in 0..batch.num_rows() {
        let row = (|| {
            if uid.is_null(i) || uid.value(i).is_empty() {
                return Err(BadRow::MissingQaUid);
            }
            Ok(DescriptorRow {
                qa_uid: uid.value(i).to_owned(),
                video_uid: video.filter(|v| !v.is_null(i)).map(|v| v.value(i).to_owned()).unwrap_or_default(),
                loss_video: get(nums[0], i),
                loss_blind: get(nums[1], i),
                vds: get(nums[2], i).unwrap_or(0.0),
                ppl: get(nums[3], i).unwrap_or(0.0),
                amm: get(nums[4], i).unwrap_or(0.0),
                frame_diversity: get(nums[5], i).unwrap_or(0.0),
                tnc_score: get(nums[6], i).unwrap_or(0.0),
                self_consistency: get(nums[7], i).unwrap_or(-1.0),
                text_feat: feats(text_feat, i)?,
                vis_feat: feats(vis_feat, i)?,
            })
        })();
        chunk.push(row);
    }
    Ok(chunk)
}

// ---------------------------------------------------------------------------------
// Inputs and the stream over them

/// One resolved input.
#[derive(Debug, Clone)]
pub enum Input {
    /// A JSONL file (plain or gzip).
    Jsonl(Location),
    /// A gdo table folder, a Parquet folder or a Parquet file.
    Table(String),
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jsonl(l) => write!(f, "{l}"),
            Self::Table(p) => write!(f, "{p}"),
        }
    }
}

/// Resolve `--descriptors` paths: JSONL files, Parquet files, gdo tables or Parquet
/// folders, folders of JSONL shards (`sixd_metrics_rank*`, else any `*.jsonl[.gz]`,
/// in name order), or a file-name pattern (each file it matches, in name order: Parquet
/// by its `.parquet` name, anything else read as JSONL). A path that holds none of these
/// is an error naming it.
pub async fn resolve_inputs(paths: &[String]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for p in paths {
        if is_pattern(p) {
            // `shards/sixd_metrics_rank[0-3].jsonl`: each file it matches, by its name.
            for (name, loc, _) in expand_input(p, "descriptor file", |_| true).await?.files {
                inputs.push(if name.ends_with(".parquet") { Input::Table(name) } else { Input::Jsonl(loc) });
            }
            continue;
        }
        let loc = Location::parse(p)?;
        if p.ends_with(".parquet") {
            if !loc.exists().await? {
                return Err(GdoError::NotFound(format!("descriptor file {p}")));
            }
            inputs.push(Input::Table(p.clone()));
            continue;
        }
        if jsonl::is_jsonl_name(p) {
            loc.size().await.map_err(|e| match e {
                GdoError::NotFound(_) => GdoError::NotFound(format!("descriptor file {p}")),
                other => other,
            })?;
            inputs.push(Input::Jsonl(loc));
            continue;
        }
        if let Some(snap) = crate::table::open(&loc, &AsOf::Latest).await? {
            // Pinned: every pass reads this version, even if the table is rewritten meanwhile.
            inputs.push(Input::Table(format!("{p}@v{}", snap.version)));
            continue;
        }
        let listing = loc.store.list_with_delimiter(Some(&loc.path)).await?;
        let mut names: Vec<String> =
            listing.objects.iter().filter_map(|o| o.location.filename().map(str::to_owned)).collect();
        names.sort();
        let has_data_dir = listing.common_prefixes.iter().any(|c| c.filename() == Some(crate::table::DATA_DIR));
        if names.iter().any(|n| n.ends_with(".parquet")) || has_data_dir {
            inputs.push(Input::Table(p.clone()));
            continue;
        }
        let jsonl: Vec<&String> = names.iter().filter(|n| jsonl::is_jsonl_name(n)).collect();
        let shards: Vec<&String> = jsonl.iter().copied().filter(|n| n.starts_with(SHARD_PREFIX)).collect();
        let chosen = if shards.is_empty() { jsonl } else { shards };
        if chosen.is_empty() {
            return Err(GdoError::NotFound(format!(
                "descriptors at {p}: no table, no Parquet files and no JSONL shards \
                 ({SHARD_PREFIX}*.jsonl[.gz]) there"
            )));
        }
        inputs.extend(chosen.into_iter().map(|n| Input::Jsonl(loc.child(n))));
    }
    Ok(inputs)
}

enum Open {
    Jsonl { rx: mpsc::Receiver<Result<RowChunk>>, reader: tokio::task::JoinHandle<()> },
    Table { stream: SendableRecordBatchStream, _ctx: SessionContext },
}

/// Chunks of rows from the inputs, in order. Each new stream reads the inputs afresh.
pub struct DescriptorStream {
    pending: VecDeque<Input>,
    open: Option<Open>,
    chunk_rows: usize,
}

impl DescriptorStream {
    pub fn new(inputs: &[Input], chunk_rows: usize) -> Self {
        Self { pending: inputs.iter().cloned().collect(), open: None, chunk_rows: chunk_rows.max(1) }
    }

    async fn start(&self, input: Input) -> Result<Open> {
        match input {
            Input::Jsonl(loc) => {
                let (tx, rx) = mpsc::channel(2);
                let chunk_rows = self.chunk_rows;
                let reader = tokio::task::spawn_blocking(move || read_jsonl(loc, chunk_rows, tx));
                Ok(Open::Jsonl { rx, reader })
            }
            Input::Table(path) => {
                let ctx = new_context();
                register_table(&ctx, "descriptors", &path).await?;
                // In table order: streaming k-means and "later duplicate wins" see the
                // rows in one order on every run.
                let stream = crate::session::in_table_order(ctx.table("descriptors").await?).execute_stream().await?;
                Ok(Open::Table { stream, _ctx: ctx })
            }
        }
    }

    /// The next chunk, or None after the last input.
    pub async fn next_chunk(&mut self) -> Result<Option<RowChunk>> {
        loop {
            let Some(open) = self.open.as_mut() else {
                match self.pending.pop_front() {
                    None => return Ok(None),
                    Some(input) => {
                        self.open = Some(self.start(input).await?);
                        continue;
                    }
                }
            };
            match open {
                Open::Jsonl { rx, .. } => {
                    if let Some(chunk) = rx.recv().await {
                        return chunk.map(Some);
                    }
                    if let Some(Open::Jsonl { reader, .. }) = self.open.take() {
                        reader.await.map_err(|e| GdoError::Table(format!("descriptor reader failed: {e}")))?;
                    }
                }
                Open::Table { stream, .. } => match stream.try_next().await? {
                    Some(batch) => return Ok(Some(batch_to_rows(&batch)?)),
                    None => self.open = None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_top_level_fields() {
        let nested = br#"{"qa_uid":"a","video_uid":"v","data_quality_metrics":{"loss_video":null,"vds":0.5,"ppl":NaN,"self_consistency":null,"text_feat":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"vis_feat":[1,2,3,4,5,null]}}"#;
        let r = parse_json_line(nested).unwrap();
        assert_eq!((r.qa_uid.as_str(), r.video_uid.as_str()), ("a", "v"));
        assert_eq!((r.loss_video, r.vds, r.ppl, r.self_consistency), (None, 0.5, 0.0, -1.0));
        assert_eq!(r.features()[15], 16.0);
        assert_eq!(r.features()[21], 0.0);
        assert_eq!(r.features()[26], 0.5);
        let top = br#"{"id":"b","amm":2.0,"tnc_score":1,"self_consistency":0.25}"#;
        let r = parse_json_line(top).unwrap();
        assert_eq!((r.qa_uid.as_str(), r.amm, r.tnc_score, r.self_consistency), ("b", 2.0, 1.0, 0.25));
        assert_eq!(r.text_feat, [0.0; 16]);
    }

    #[test]
    fn bad_rows_have_reasons() {
        assert_eq!(parse_json_line(b"{oops"), Err(BadRow::InvalidJson));
        assert_eq!(parse_json_line(b"[1,2]"), Err(BadRow::NotAnObject));
        assert_eq!(parse_json_line(br#"{"vds":1}"#), Err(BadRow::MissingQaUid));
        assert_eq!(parse_json_line(br#"{"qa_uid":"a","vds":"high"}"#), Err(BadRow::BadFieldType));
        assert_eq!(parse_json_line(br#"{"qa_uid":"a","vis_feat":[1,2]}"#), Err(BadRow::BadFeatureLength));
    }

    #[test]
    fn batch_round_trip() {
        let line = br#"{"qa_uid":"a","video_uid":"v","loss_video":1.5,"vds":0.5,"self_consistency":0.3,"vis_feat":[1,2,3,4,5,6]}"#;
        let row = parse_json_line(line).unwrap();
        let batch = descriptor_batch(std::slice::from_ref(&row)).unwrap();
        let back = batch_to_rows(&batch).unwrap();
        assert_eq!(back.rows, vec![row]);
        let no_uid = batch.project(&[1, 2]).unwrap();
        let err = batch_to_rows(&no_uid).unwrap_err().to_string();
        assert!(err.contains("no column 'qa_uid'"), "{err}");
    }
}
