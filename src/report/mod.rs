//! Reports of a goal-vs-uniform training comparison: the paper's two tables
//! ([`tables`]), rendered as Markdown and HTML, and the frontier plot ([`frontier`]).
//!
//! Input is what the trainer's evaluations produced: for each run (one per goal subset
//! plus Uni-10x), the accuracy on each benchmark split at each checkpoint, with the
//! number of training samples seen so far.

pub mod frontier;
pub mod tables;

use serde::Serialize;

pub use frontier::{FrontierRow, plot_frontier};
pub use tables::{
    ComparisonTables, GoalRow, SplitRow, compute_tables, html_escape, html_table, md_table, pct, render_html,
    render_html_tables, render_markdown, stat_cell,
};

/// One evaluation of one checkpoint on one benchmark split; over several seeds, the
/// mean of their accuracies (each seed's run evaluated at the same samples seen).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPoint {
    pub samples_seen: u64,
    pub split: String,
    /// Accuracy, the mean of `per_seed`.
    pub accuracy: f64,
    /// Questions in the split (per seed).
    pub n: usize,
    /// Each seed's accuracy, in seed order (one entry for a single run).
    pub per_seed: Vec<f64>,
}

impl EvalPoint {
    /// One run's evaluation.
    pub fn single(samples_seen: u64, split: impl Into<String>, accuracy: f64, n: usize) -> Self {
        Self { samples_seen, split: split.into(), accuracy, n, per_seed: vec![accuracy] }
    }
}

/// One training run: a goal's 1x subset or the uniform baseline (or their mean over
/// seeds, see [`mean_over_seeds`]).
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

/// The paper's name of a run: MinLoss, Diverse, Temp, Temp+, Uni-10x (others as given).
pub fn display_name(name: &str) -> &str {
    match name {
        "minloss" => "MinLoss",
        "diverse" => "Diverse",
        "temp" => "Temp",
        "temp_plus" => "Temp+",
        UNIFORM_RUN => "Uni-10x",
        other => other,
    }
}

/// A final accuracy with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// Mean accuracy over seeds.
    pub accuracy: f64,
    /// 95% Wilson score interval of the accuracy, over every question of every seed.
    pub lo: f64,
    pub hi: f64,
    /// Sample standard deviation over seeds (None with one seed).
    pub sd: Option<f64>,
    pub seeds: usize,
    /// Questions answered, all seeds together.
    pub questions: usize,
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
pub fn wilson(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let z = 1.959_963_984_540_054_f64;
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn stat(per_seed: &[f64], questions_per_seed: usize) -> Stat {
    let seeds = per_seed.len().max(1);
    let accuracy = per_seed.iter().sum::<f64>() / seeds as f64;
    let questions = questions_per_seed * seeds;
    let (lo, hi) = wilson(accuracy * questions as f64, questions as f64);
    let sd = (per_seed.len() > 1).then(|| {
        let var = per_seed.iter().map(|a| (a - accuracy).powi(2)).sum::<f64>() / (per_seed.len() - 1) as f64;
        var.sqrt()
    });
    Stat { accuracy, lo, hi, sd, seeds: per_seed.len(), questions }
}

/// The mean of one run's curves over seeds, checkpoint by checkpoint: every run must
/// have the same number of checkpoints on the same splits, in order (a seed's subset may
/// differ in size; samples seen and subset size are then the rounded means), else an
/// error.
pub fn mean_over_seeds(runs: &[RunCurve]) -> crate::error::Result<RunCurve> {
    let first = runs.first().ok_or_else(|| crate::error::GdoError::Usage("report: no run to average".into()))?;
    let mut points = first.points.clone();
    let n = runs.len() as u64;
    let mean = |v: u64| (v + n / 2) / n;
    let mut samples: Vec<u64> = points.iter().map(|p| p.samples_seen).collect();
    for r in &runs[1..] {
        let same = r.points.len() == points.len() && r.points.iter().zip(&points).all(|(a, b)| a.split == b.split);
        if !same || r.name != first.name {
            return Err(crate::error::GdoError::Usage(format!(
                "report: the runs of '{}' over seeds were not evaluated at the same checkpoints",
                first.name
            )));
        }
        for ((p, q), s) in points.iter_mut().zip(&r.points).zip(samples.iter_mut()) {
            p.per_seed.extend(q.per_seed.iter().copied());
            *s += q.samples_seen;
        }
    }
    for (p, s) in points.iter_mut().zip(samples) {
        p.accuracy = p.per_seed.iter().sum::<f64>() / p.per_seed.len().max(1) as f64;
        p.samples_seen = mean(s);
    }
    let size = runs.iter().map(|r| r.subset_size as u64).sum::<u64>();
    Ok(RunCurve { name: first.name.clone(), subset_size: mean(size) as usize, points })
}

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

    /// The last checkpoint's accuracy on a split (or [`AVERAGE_SPLIT`]: per seed, the
    /// mean over splits) with its interval and spread.
    pub fn final_stat(&self, split: &str) -> Option<Stat> {
        let last = self.total_samples();
        let at: Vec<&EvalPoint> = self.points.iter().filter(|p| p.samples_seen == last).collect();
        if split != AVERAGE_SPLIT {
            return at.iter().find(|p| p.split == split).map(|p| stat(&p.per_seed, p.n));
        }
        let splits = self.splits();
        let chosen: Vec<&&EvalPoint> = at.iter().filter(|p| splits.contains(&p.split)).collect();
        if chosen.len() != splits.len() || chosen.is_empty() {
            return None;
        }
        let seeds = chosen[0].per_seed.len();
        let per_seed: Vec<f64> = (0..seeds)
            .map(|i| {
                chosen.iter().map(|p| p.per_seed.get(i).copied().unwrap_or(f64::NAN)).sum::<f64>() / chosen.len() as f64
            })
            .collect();
        // Equal-sized splits: the mean over splits is the pooled accuracy, so its interval
        // counts every question of every split.
        Some(stat(&per_seed, chosen.iter().map(|p| p.n).sum()))
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
