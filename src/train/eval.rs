//! Accuracy on a held-out benchmark split, by ranking candidate answers.
//!
//! Rule: the candidates of a split are its distinct answers (normalised: trimmed,
//! lower-cased), the `max_candidates` most frequent, ties by text. For each question
//! the model scores every candidate by its answer-only mean token loss given the
//! question and frames; the lowest loss is the prediction (ties: the first candidate).
//! A question whose answer is not among the candidates counts as wrong. At most
//! `max_questions` questions per split, the first ones in table order.

use std::collections::BTreeMap;

use image::RgbImage;

use crate::error::Result;
use crate::train::batcher::Row;
use crate::train::trainee::Trainee;

/// A split prepared once: rows, their frames (decoded and resized) and candidates.
pub struct PreparedSplit {
    pub name: String,
    pub rows: Vec<Row>,
    pub frames: Vec<Vec<RgbImage>>,
    pub candidates: Vec<String>,
}

fn norm(a: &str) -> String {
    a.trim().to_lowercase()
}

pub fn candidates(rows: &[Row], max_candidates: usize) -> Vec<String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        *counts.entry(norm(&r.answer)).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter().take(max_candidates).map(|(a, _)| a).collect()
}

/// (accuracy, questions evaluated) of the model on a prepared split.
pub fn accuracy(model: &dyn Trainee, split: &PreparedSplit) -> Result<(f64, u64)> {
    if split.rows.is_empty() || split.candidates.is_empty() {
        return Ok((0.0, 0));
    }
    let mut correct = 0u64;
    let questions: Vec<(&str, &[RgbImage])> =
        split.rows.iter().zip(&split.frames).map(|(r, f)| (r.question.as_str(), f.as_slice())).collect();
    let all = model.candidate_losses_many(&questions, &split.candidates)?;
    for (row, losses) in split.rows.iter().zip(all) {
        let mut best = 0;
        for (i, l) in losses.iter().enumerate() {
            if *l < losses[best] {
                best = i;
            }
        }
        if split.candidates[best] == norm(&row.answer) {
            correct += 1;
        }
    }
    let n = split.rows.len() as u64;
    Ok((correct as f64 / n as f64, n))
}
