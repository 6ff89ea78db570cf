//! Reports of a goal-vs-uniform training comparison: the paper's two tables
//! ([`tables`]), rendered as Markdown and HTML, and the frontier plot ([`frontier`]).
//!
//! Input is what the trainer's evaluations produced: for each run (one per goal subset
//! plus Uni-10x), the accuracy on each benchmark split at each checkpoint, with the
//! number of training samples seen so far.

pub mod frontier;
pub mod tables;

use serde::Serialize;

pub use frontier::plot_frontier;
pub use tables::{ComparisonTables, GoalRow, SplitRow, compute_tables, render_html, render_markdown};

/// One evaluation of one checkpoint on one benchmark split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPoint {
    pub samples_seen: u64,
    pub split: String,
    pub accuracy: f64,
    /// Questions in the split.
    pub n: usize,
}

/// One training run: a goal's 1x subset or the uniform baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCurve {
    /// `minloss`, `diverse`, `temp`, `temp_plus`, ... or [`UNIFORM_RUN`].
    pub name: String,
    /// Pairs in the subset the run trained on.
    pub subset_size: usize,
    /// Every evaluation, in training order.
    pub points: Vec<EvalPoint>,
}

/// The name of the uniform baseline run.
pub const UNIFORM_RUN: &str = "uni_10x";

/// The name of the pseudo-split holding the mean accuracy over all splits.
pub const AVERAGE_SPLIT: &str = "average";

impl RunCurve {
    /// The splits this run was evaluated on, in first-seen order.
    pub fn splits(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.points {
            if !out.contains(&p.split) {
                out.push(p.split.clone());
            }
        }
        out
    }

    /// (samples_seen, accuracy) on one split, in training order; for [`AVERAGE_SPLIT`]
    /// the mean over splits at each checkpoint evaluated on all of them.
    pub fn curve(&self, split: &str) -> Vec<(u64, f64)> {
        if split != AVERAGE_SPLIT {
            return self.points.iter().filter(|p| p.split == split).map(|p| (p.samples_seen, p.accuracy)).collect();
        }
        let splits = self.splits();
        let mut at: Vec<u64> = self.points.iter().map(|p| p.samples_seen).collect();
        at.dedup();
        at.into_iter()
            .filter_map(|s| {
                let accs: Vec<f64> = splits
                    .iter()
                    .filter_map(|sp| self.points.iter().find(|p| p.samples_seen == s && &p.split == sp))
                    .map(|p| p.accuracy)
                    .collect();
                (accs.len() == splits.len() && !accs.is_empty())
                    .then(|| (s, accs.iter().sum::<f64>() / accs.len() as f64))
            })
            .collect()
    }

    /// Accuracy at the last checkpoint on a split.
    pub fn final_accuracy(&self, split: &str) -> Option<f64> {
        self.curve(split).last().map(|&(_, a)| a)
    }

    /// Samples seen at the last checkpoint.
    pub fn total_samples(&self) -> u64 {
        self.points.iter().map(|p| p.samples_seen).max().unwrap_or(0)
    }
}
