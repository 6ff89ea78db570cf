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
    order: Vec<String>,
    rows: HashMap<String, Row>,
    report: MetricsReport,
}

impl Collector {
    fn push(&mut self, uid: String, row: Row) {
        self.report.rows_read += 1;
        if self.rows.insert(uid.clone(), row).is_some() {
            self.report.duplicates += 1;
        } else {
            self.order.push(uid);
        }
    }
    fn bad(&mut self, reason: &str) {
        *self.report.bad_rows.entry(reason.to_string()).or_insert(0) += 1;
    }
    fn value(&mut self, field: &str, v: Option<&Value>) -> Option<f64> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Some(x),
                _ => {
                    *self.report.non_finite.entry(field.to_string()).or_insert(0) += 1;
                    None
                }
            },
            Some(_) => {
                // "NaN"/"Infinity" strings (Python's json.dumps writes bare NaN, which is
                // not JSON and lands in bad_rows) or any other non-number.
                *self.report.non_finite.entry(field.to_string()).or_insert(0) += 1;
                None
            }
        }
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
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Ok(v) = parse_line(line) else {
            c.bad("invalid_json");
            continue;
        };
        let Value::Object(obj) = v else {
            c.bad("not_object");
            continue;
        };
        let uid = match obj.get("qa_uid").or_else(|| obj.get("id")) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                c.bad("no_qa_uid");
                continue;
            }
        };
        let fields = match obj.get("data_quality_metrics") {
            Some(Value::Object(m)) => m,
            _ => &obj,
        };
        let mut row: Row = [None; 5];
        for (i, f) in METRIC_FIELDS.iter().enumerate() {
            row[i] = c.value(f, fields.get(*f));
        }
        c.push(uid, row);
    }
    Ok(())
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
    let batches = ctx.sql(&format!("SELECT qa_uid, {} FROM m", cols.join(", "))).await?.collect().await?;
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
    let mut c = Collector { order: Vec::new(), rows: HashMap::new(), report: MetricsReport::default() };
    for path in paths {
        c.report.sources.push(path.clone());
        if is_jsonl(path) {
            load_jsonl(&mut c, path).await?;
        } else {
            load_table(&mut c, path).await?;
        }
    }
    c.report.loaded = c.order.len() as u64;
    let uids = StringArray::from_iter_values(c.order.iter());
    let mut columns: Vec<datafusion::arrow::array::ArrayRef> = vec![Arc::new(uids)];
    for j in 0..METRIC_FIELDS.len() {
        columns.push(Arc::new(c.order.iter().map(|u| c.rows[u][j]).collect::<Float64Array>()));
    }
    let batch = RecordBatch::try_new(Arc::clone(&METRICS_SCHEMA), columns)?;
    let table = MemTable::try_new(Arc::clone(&METRICS_SCHEMA), vec![vec![batch]])?;
    ctx.register_table("metrics", Arc::new(table))?;
    Ok(c.report)
}
