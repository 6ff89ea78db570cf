//! Loading merged descriptor rows ("legacy metrics", method §5.2) as the `metrics` table:
//! from a gdo table / Parquet (`gdo merge` output) or the reference's JSONL layout
//! (plain or .gz; fields nested under `data_quality_metrics` or at the top level;
//! keyed by `qa_uid`, else `id`).
//!
//! Rules, all counted in [`MetricsReport`]: a later duplicate of a qa_uid wins;
//! a line that is not a JSON object or has no key is skipped; a value that is not a
//! finite number is stored as NULL (absent), never as NaN.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use crate::error::{GdoError, Result};
use crate::io::jsonl;
use crate::ops::common::{f64_at, f64s, str_at, strings};
use crate::schema::{METRIC_FIELDS, METRICS_SCHEMA};
use crate::session::register_table;
use crate::store::Location;

/// What loading found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MetricsReport {
    pub sources: Vec<String>,
    /// The tables read (path, version and table id; files for plain Parquet).
    pub tables_read: Vec<serde_json::Value>,
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
    /// Rows as read, duplicates included; [`Collector::dedup`] settles them.
    rows: Vec<(String, Row)>,
    report: MetricsReport,
}

impl Collector {
    fn push(&mut self, uid: String, row: Row) {
        self.report.rows_read += 1;
        self.rows.push((uid, row));
    }
    fn bad(&mut self, reason: &str) {
        *self.report.bad_rows.entry(reason.to_string()).or_insert(0) += 1;
    }
    /// One row per qa_uid, at its first position, with the values of its last
    /// occurrence (a later duplicate wins). Done once at the end, over borrowed keys:
    /// cheaper than a key copy and a lookup per row while reading.
    fn dedup(&mut self) {
        let mut first: datafusion::common::HashMap<&str, usize> =
            datafusion::common::HashMap::with_capacity(self.rows.len());
        let mut later: Vec<(usize, usize)> = Vec::new();
        for (i, (uid, _)) in self.rows.iter().enumerate() {
            match first.entry(uid.as_str()) {
                datafusion::common::hash_map::Entry::Occupied(e) => later.push((*e.get(), i)),
                datafusion::common::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        drop(first);
        if later.is_empty() {
            return;
        }
        self.report.duplicates += later.len() as u64;
        let mut keep = vec![true; self.rows.len()];
        // In reading order, so the last occurrence is the one left standing.
        for &(at, dup) in &later {
            self.rows[at].1 = self.rows[dup].1;
            keep[dup] = false;
        }
        let mut i = 0;
        self.rows.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
}

async fn load_jsonl(c: &mut Collector, path: &str) -> Result<()> {
    let loc = Location::parse(path)?;
    let what = path.to_owned();
    let text = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut bytes = Vec::new();
        jsonl::open(&loc, |_| {})?
            .read_to_end(&mut bytes)
            .map_err(|e| GdoError::Table(format!("{what}: cannot read: {e}")))?;
        String::from_utf8(bytes).map_err(|_| GdoError::Table(format!("{what}: not UTF-8 text")))
    })
    .await
    .map_err(|e| GdoError::Table(format!("{path}: reader stopped: {e}")))??;
    // Parse in parallel; the collected rows keep input order (later duplicates win).
    let parsed: Vec<Parsed> = text.par_lines().filter(|l| !l.trim().is_empty()).map(parse_metric_line).collect();
    for p in parsed {
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
    let Ok(v) = jsonl::parse_value(line.as_bytes()) else { return Parsed::Bad("invalid_json") };
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
    let read = register_table(&ctx, "m", path).await?;
    c.report.tables_read.push(read.read);
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
    let mut c = Collector { rows: Vec::new(), report: MetricsReport::default() };
    for path in paths {
        c.report.sources.push(path.clone());
        if jsonl::is_jsonl_name(path) {
            load_jsonl(&mut c, path).await?;
        } else {
            load_table(&mut c, path).await?;
        }
    }
    c.dedup();
    c.report.loaded = c.rows.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_first_position_and_the_last_values() {
        let mut c = Collector { rows: Vec::new(), report: MetricsReport::default() };
        let row = |x: f64| [Some(x), None, None, None, None];
        for (uid, x) in [("a", 1.0), ("b", 2.0), ("a", 3.0), ("c", 4.0), ("a", 5.0), ("b", 6.0)] {
            c.push(uid.to_string(), row(x));
        }
        c.dedup();
        let got: Vec<(&str, Option<f64>)> = c.rows.iter().map(|(u, r)| (u.as_str(), r[0])).collect();
        assert_eq!(got, vec![("a", Some(5.0)), ("b", Some(6.0)), ("c", Some(4.0))]);
        assert_eq!((c.report.rows_read, c.report.duplicates), (6, 3));
    }
}
