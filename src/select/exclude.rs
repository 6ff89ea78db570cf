//! The exclusion guard (method §5.9): pairs whose normalised question, or question and
//! answer, appear in given JSONL files (e.g. benchmark questions) are removed from the
//! pool before profiling and selection, for decontamination.
//!
//! Exclusion rows may be `{"question": ..., "answer": ...}` objects or LLaVA rows with
//! `messages` (every question-answer pair of the row counts). Keys: sha1 of the
//! normalised question, and sha1 of question + tab + answer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::error::{GdoError, Result};
use crate::io::jsonl;
use crate::ops::common::{str_at, strings};
use crate::store::Location;
use gdo_udfs::method::{norm, norm_user_text};

/// Which keys exclude a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExcludeMode {
    /// The normalised question alone.
    Question,
    /// Question and answer together.
    Qa,
    /// Either.
    Both,
}

/// What the guard loaded and removed.
#[derive(Debug, Clone, Serialize)]
pub struct ExclusionReport {
    pub mode: ExcludeMode,
    pub paths: Vec<String>,
    pub rows_seen: u64,
    pub rows_bad: u64,
    pub q_hashes: usize,
    pub qa_hashes: usize,
    pub excluded: u64,
    pub excluded_by: HashMap<String, u64>,
}

fn sha1_hex(parts: &[&str]) -> String {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

/// The (question, answer) pairs of one exclusion row, normalised like the pool's.
fn pairs_of(obj: &serde_json::Map<String, Value>) -> Option<Vec<(String, String)>> {
    if let Some(q) = text(obj.get("question")) {
        return Some(vec![(norm_user_text(q).into_owned(), norm(text(obj.get("answer")).unwrap_or("")))]);
    }
    let messages = obj.get("messages")?.as_array()?;
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for m in messages {
        let role = text(m.get("role")).or_else(|| text(m.get("from"))).unwrap_or("");
        let content = text(m.get("content")).or_else(|| text(m.get("value"))).unwrap_or("");
        match role {
            "user" | "human" => pending = Some(norm_user_text(content).into_owned()),
            "assistant" | "gpt" => {
                if let Some(q) = pending.take() {
                    out.push((q, norm(content)));
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// Load the exclusion files, remove matching pairs from `pool` (the original table stays
/// reachable as `pool_all`; the removed qa_uids are `gdo_excluded`).
pub async fn apply_exclusions(ctx: &SessionContext, paths: &[String], mode: ExcludeMode) -> Result<ExclusionReport> {
    let mut q_hashes = HashSet::new();
    let mut qa_hashes = HashSet::new();
    let (mut rows_seen, mut rows_bad) = (0u64, 0u64);
    for path in paths {
        let loc = Location::parse(path)?;
        let lines = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>> {
            let mut lines = jsonl::Lines::open(&loc)?;
            let mut out = Vec::new();
            while let Some((_, line)) = lines.next_line()? {
                out.push(line.to_vec());
            }
            Ok(out)
        })
        .await
        .map_err(|e| GdoError::Table(format!("{path}: reader stopped: {e}")))??;
        for line in &lines {
            rows_seen += 1;
            let pairs = match jsonl::parse_value(line) {
                Ok(Value::Object(obj)) => pairs_of(&obj),
                _ => None,
            };
            let Some(pairs) = pairs else {
                rows_bad += 1;
                continue;
            };
            for (q, a) in pairs {
                q_hashes.insert(sha1_hex(&[&q]));
                qa_hashes.insert(sha1_hex(&[&q, "\t", &a]));
            }
        }
    }
    let batches = ctx.sql("SELECT qa_uid, question, answer FROM pool").await?.collect().await?;
    let mut excluded = Vec::new();
    let mut by: HashMap<String, u64> = HashMap::new();
    for b in &batches {
        let (u, q, a) = (strings(b, "qa_uid")?, strings(b, "question")?, strings(b, "answer")?);
        for i in 0..b.num_rows() {
            let (question, answer) = (str_at(&q, i), str_at(&a, i));
            let by_q = mode != ExcludeMode::Qa && q_hashes.contains(&sha1_hex(&[question]));
            let by_qa =
                !by_q && mode != ExcludeMode::Question && qa_hashes.contains(&sha1_hex(&[question, "\t", answer]));
            if by_q || by_qa {
                *by.entry(if by_q { "question" } else { "qa" }.to_string()).or_insert(0) += 1;
                excluded.push(str_at(&u, i).to_string());
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![Field::new("qa_uid", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(excluded.clone()))])?;
    ctx.register_table("gdo_excluded", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    let original = ctx.deregister_table("pool")?.ok_or_else(|| GdoError::Usage("no pool table registered".into()))?;
    ctx.register_table("pool_all", original)?;
    ctx.sql("CREATE VIEW pool AS SELECT p.* FROM pool_all p LEFT ANTI JOIN gdo_excluded x ON p.qa_uid = x.qa_uid")
        .await?
        .collect()
        .await?;
    Ok(ExclusionReport {
        mode,
        paths: paths.to_vec(),
        rows_seen,
        rows_bad,
        q_hashes: q_hashes.len(),
        qa_hashes: qa_hashes.len(),
        excluded: excluded.len() as u64,
        excluded_by: by,
    })
}
