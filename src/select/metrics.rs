//! Loading merged descriptor rows ("legacy metrics", spec 4.2) as the `metrics` table:
//! from a gdo table / Parquet (`gdo merge` output) or the reference's JSONL layout
//! (plain or .gz; fields nested under `data_quality_metrics` or at the top level;
//! keyed by `qa_uid`, else `id`).
//!
//! Rules, all counted in [`MetricsReport`]: a later duplicate of a qa_uid wins;
//! a line that is not a JSON object or has no key is skipped; a value that is not a
//! finite number is stored as NULL (absent), never as NaN.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::common::{f64_at, f64s, str_at, strings};
use crate::error::{GdoError, Result};
use crate::session::register_table;
use crate::store::Location;

/// The metric columns selection reads, in order.
pub const METRIC_FIELDS: [&str; 5] = ["loss_video", "loss_blind", "frame_diversity", "vds", "quality_score"];

pub static METRICS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![Field::new("qa_uid", DataType::Utf8, false)];
    fields.extend(METRIC_FIELDS.iter().map(|f| Field::new(*f, DataType::Float64, true)));
    Arc::new(Schema::new(fields))
});

/// What loading found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MetricsReport {
    pub sources: Vec<String>,
    pub rows_read: u64,
    /// Distinct qa_uids kept.
    pub loaded: u64,
    pub duplicates: u64,
    pub bad_rows: HashMap<String, u64>,
    /// Values that were present but not finite numbers (NaN, inf, strings), per field.
    pub non_finite: HashMap<String, u64>,
}

type Row = [Option<f64>; 5];

struct Collector {
    /// Rows in first-seen order of their qa_uid; a later duplicate overwrites in place.
    rows: Vec<(String, Row)>,
    index: HashMap<String, usize>,
    report: MetricsReport,
}

impl Collector {
    fn push(&mut self, uid: String, row: Row) {
        self.report.rows_read += 1;
        match self.index.get(&uid) {
            Some(&i) => {
                self.rows[i].1 = row;
                self.report.duplicates += 1;
            }
            None => {
                self.index.insert(uid.clone(), self.rows.len());
                self.rows.push((uid, row));
            }
        }
    }
    fn bad(&mut self, reason: &str) {
        *self.report.bad_rows.entry(reason.to_string()).or_insert(0) += 1;
    }
}

fn is_jsonl(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.ends_with(".jsonl") || p.ends_with(".jsonl.gz") || p.ends_with(".json") || p.ends_with(".json.gz")
}

/// Python's json writes NaN/Infinity bare; accept them as non-finite markers.
fn parse_line(line: &str) -> std::result::Result<Value, serde_json::Error> {
    match serde_json::from_str(line) {
        Ok(v) => Ok(v),
        Err(e) => {
            if line.contains("NaN") || line.contains("Infinity") {
                let fixed = line
                    .replace("-Infinity", "\"-Infinity\"")
                    .replace("Infinity", "\"Infinity\"")
                    .replace("NaN", "\"NaN\"");
                serde_json::from_str(&fixed).map_err(|_| e)
            } else {
                Err(e)
            }
        }
    }
}

async fn load_jsonl(c: &mut Collector, path: &str) -> Result<()> {
    let loc = Location::parse(path)?;
    let raw = loc.read_all().await?;
    let text = if path.to_ascii_lowercase().ends_with(".gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(raw.as_ref())
            .read_to_string(&mut s)
            .map_err(|e| GdoError::Table(format!("{path}: cannot decompress: {e}")))?;
        s
    } else {
        String::from_utf8(raw.to_vec()).map_err(|_| GdoError::Table(format!("{path}: not UTF-8 text")))?
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    // Parse in parallel, keep input order (later duplicates must win).
    let parsed: Vec<Vec<Parsed>> =
        lines.par_chunks(4096).map(|chunk| chunk.iter().map(|l| parse_metric_line(l)).collect()).collect();
    for p in parsed.into_iter().flatten() {
        match p {
            Parsed::Row(uid, row, non_finite) => {
                for f in non_finite {
                    *c.report.non_finite.entry(f.to_string()).or_insert(0) += 1;
                }
                c.push(uid, row);
            }
            Parsed::Bad(reason) => c.bad(reason),
        }
    }
    Ok(())
}

enum Parsed {
    Row(String, Row, Vec<&'static str>),
    Bad(&'static str),
}

/// The common shape, parsed without building a JSON tree; anything else (string
/// values, bare NaN, numeric ids) takes the general path.
#[derive(serde::Deserialize)]
struct TypedLine<'a> {
    #[serde(borrow)]
    qa_uid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    data_quality_metrics: Option<TypedMetrics>,
    loss_video: Option<f64>,
    loss_blind: Option<f64>,
    frame_diversity: Option<f64>,
    vds: Option<f64>,
    quality_score: Option<f64>,
}

#[derive(serde::Deserialize)]
struct TypedMetrics {
    loss_video: Option<f64>,
    loss_blind: Option<f64>,
    frame_diversity: Option<f64>,
    vds: Option<f64>,
    quality_score: Option<f64>,
}

fn parse_metric_line(line: &str) -> Parsed {
    if let Ok(t) = serde_json::from_str::<TypedLine>(line) {
        let uid = t.qa_uid.filter(|u| !u.is_empty()).or(t.id.filter(|u| !u.is_empty()));
        let Some(uid) = uid else { return Parsed::Bad("no_qa_uid") };
        let row = match t.data_quality_metrics {
            Some(m) => [m.loss_video, m.loss_blind, m.frame_diversity, m.vds, m.quality_score],
            None => [t.loss_video, t.loss_blind, t.frame_diversity, t.vds, t.quality_score],
        };
        return Parsed::Row(uid.into_owned(), row, Vec::new());
    }
    let Ok(v) = parse_line(line) else { return Parsed::Bad("invalid_json") };
    let Value::Object(obj) = v else { return Parsed::Bad("not_object") };
    let uid = match obj.get("qa_uid").or_else(|| obj.get("id")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Parsed::Bad("no_qa_uid"),
    };
    let fields = match obj.get("data_quality_metrics") {
        Some(Value::Object(m)) => m,
        _ => &obj,
    };
    let mut row: Row = [None; 5];
    let mut non_finite = Vec::new();
    for (i, f) in METRIC_FIELDS.iter().enumerate() {
        row[i] = match fields.get(*f) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => n.as_f64(),
            Some(_) => {
                // NaN/Infinity (Python writes them bare) or any other non-number.
                non_finite.push(*f);
                None
            }
        };
    }
    Parsed::Row(uid, row, non_finite)
}

async fn load_table(c: &mut Collector, path: &str) -> Result<()> {
    let ctx = crate::session::new_context();
    register_table(&ctx, "m", path).await?;
    let schema = ctx.table("m").await?.schema().clone();
    let has = |f: &str| schema.fields().iter().any(|x| x.name() == f);
    if !has("qa_uid") {
        return Err(GdoError::Table(format!("{path}: the metrics table has no qa_uid column")));
    }
    let cols: Vec<String> = METRIC_FIELDS
        .iter()
        .map(|f| {
            if has(f) {
                format!("CAST(\"{f}\" AS DOUBLE) AS \"{f}\"")
            } else {
                format!("CAST(NULL AS DOUBLE) AS \"{f}\"")
            }
        })
        .collect();
    // In table order: a later duplicate wins the same way every run, and the metrics
    // table has one row order (its statistics are sums).
    let df = crate::session::in_table_order(ctx.sql(&format!("SELECT qa_uid, {} FROM m", cols.join(", "))).await?);
    let batches = df.collect().await?;
    for batch in batches {
        let uid = strings(&batch, "qa_uid")?;
        let vals: Vec<_> = METRIC_FIELDS.iter().map(|f| f64s(&batch, f)).collect::<datafusion::common::Result<_>>()?;
        for i in 0..batch.num_rows() {
            let key = str_at(&uid, i);
            if key.is_empty() {
                c.bad("no_qa_uid");
                continue;
            }
            let mut row: Row = [None; 5];
            for (j, f) in METRIC_FIELDS.iter().enumerate() {
                row[j] = match f64_at(&vals[j], i) {
                    Some(x) if x.is_finite() => Some(x),
                    Some(_) => {
                        *c.report.non_finite.entry(f.to_string()).or_insert(0) += 1;
                        None
                    }
                    None => None,
                };
            }
            c.push(key.to_string(), row);
        }
    }
    Ok(())
}

/// Load every source (in order; later duplicates win) and register the result as
/// `metrics` in `ctx`.
pub async fn load_metrics(ctx: &SessionContext, paths: &[String]) -> Result<MetricsReport> {
    let mut c = Collector { rows: Vec::new(), index: HashMap::new(), report: MetricsReport::default() };
    for path in paths {
        c.report.sources.push(path.clone());
        if is_jsonl(path) {
            load_jsonl(&mut c, path).await?;
        } else {
            load_table(&mut c, path).await?;
        }
    }
    c.report.loaded = c.rows.len() as u64;
    drop(std::mem::take(&mut c.index));
    let uids = StringArray::from_iter_values(c.rows.iter().map(|r| r.0.as_str()));
    let mut columns: Vec<datafusion::arrow::array::ArrayRef> = vec![Arc::new(uids)];
    for j in 0..METRIC_FIELDS.len() {
        columns.push(Arc::new(c.rows.iter().map(|r| r.1[j]).collect::<Float64Array>()));
    }
    let batch = RecordBatch::try_new(Arc::clone(&METRICS_SCHEMA), columns)?;
    let table = MemTable::try_new(Arc::clone(&METRICS_SCHEMA), vec![vec![batch]])?;
    ctx.register_table("metrics", Arc::new(table))?;
    Ok(c.report)
}
