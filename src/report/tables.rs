//! The paper's two tables for a set of runs.
//!
//! Table 1, per benchmark split: Uni-10x's final accuracy, the best goal's final
//! accuracy and the delta, the samples at which that goal's curve first reaches
//! Uni-10x's final accuracy, and the reduction factor (Uni-10x's samples divided by
//! those samples). Table 2, per run: subset size and final accuracy per split.
//! "Final" is the last checkpoint's evaluation. Every number comes from the curves;
//! a goal that never matches the baseline shows "never", not a guess.

use std::fmt::Write as _;

use serde::Serialize;

use super::{AVERAGE_SPLIT, RunCurve, Stat, UNIFORM_RUN, display_name};
use crate::error::{GdoError, Result};

/// Table 1 row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitRow {
    pub split: String,
    pub uni: Option<Stat>,
    pub best_goal_stat: Option<Stat>,
    pub uni_accuracy: f64,
    pub uni_samples: u64,
    pub best_goal: String,
    pub best_goal_accuracy: f64,
    pub delta: f64,
    /// Samples at which the best goal first reached `uni_accuracy` (None: never).
    pub samples_to_match: Option<u64>,
    /// `uni_samples / samples_to_match`.
    pub reduction: Option<f64>,
}

/// Table 2 row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoalRow {
    pub name: String,
    pub subset_size: usize,
    pub samples_seen: u64,
    /// Final accuracy per split, in [`ComparisonTables::splits`] order, then the average.
    pub accuracy: Vec<f64>,
    /// The same with intervals and spread.
    pub stats: Vec<Option<Stat>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonTables {
    /// Benchmark splits, then [`AVERAGE_SPLIT`].
    pub splits: Vec<String>,
    pub per_split: Vec<SplitRow>,
    pub per_goal: Vec<GoalRow>,
}

/// Compute both tables. Needs the [`UNIFORM_RUN`] and at least one goal run, all
/// evaluated on the same splits.
pub fn compute_tables(runs: &[RunCurve]) -> Result<ComparisonTables> {
    let uni = runs
        .iter()
        .find(|r| r.name == UNIFORM_RUN)
        .ok_or_else(|| GdoError::Usage(format!("report: no '{UNIFORM_RUN}' run among the runs")))?;
    let goals: Vec<&RunCurve> = runs.iter().filter(|r| r.name != UNIFORM_RUN).collect();
    if goals.is_empty() {
        return Err(GdoError::Usage("report: no goal run to compare with the baseline".into()));
    }
    let mut splits = uni.splits();
    if splits.is_empty() {
        return Err(GdoError::Usage(format!("report: the '{UNIFORM_RUN}' run has no evaluations")));
    }
    for g in &goals {
        let mut theirs = g.splits();
        theirs.sort();
        let mut ours = splits.clone();
        ours.sort();
        if theirs != ours {
            return Err(GdoError::Usage(format!(
                "report: run '{}' was evaluated on {:?}, the baseline on {:?}",
                g.name, theirs, ours
            )));
        }
    }
    splits.push(AVERAGE_SPLIT.to_owned());

    let mut per_split = Vec::new();
    for split in &splits {
        let uni_accuracy = uni.final_accuracy(split).unwrap_or(f64::NAN);
        let uni_samples = uni.total_samples();
        // Best final accuracy; ties go to the earlier goal in the given order.
        let mut best: Option<(&RunCurve, f64)> = None;
        for g in &goals {
            let acc = g.final_accuracy(split).unwrap_or(f64::NAN);
            if best.is_none_or(|(_, b)| acc > b) {
                best = Some((g, acc));
            }
        }
        let (best_run, best_acc) = best.expect("goals is not empty");
        let samples_to_match =
            best_run.curve(split).into_iter().find(|&(_, a)| a >= uni_accuracy - 1e-12).map(|(s, _)| s);
        let reduction = samples_to_match.filter(|&s| s > 0).map(|s| uni_samples as f64 / s as f64);
        per_split.push(SplitRow {
            split: split.clone(),
            uni: uni.final_stat(split),
            best_goal_stat: best_run.final_stat(split),
            uni_accuracy,
            uni_samples,
            best_goal: best_run.name.clone(),
            best_goal_accuracy: best_acc,
            delta: best_acc - uni_accuracy,
            samples_to_match,
            reduction,
        });
    }

    let per_goal = goals
        .iter()
        .copied()
        .chain(std::iter::once(uni))
        .map(|r| GoalRow {
            name: r.name.clone(),
            subset_size: r.subset_size,
            samples_seen: r.total_samples(),
            accuracy: splits.iter().map(|s| r.final_accuracy(s).unwrap_or(f64::NAN)).collect(),
            stats: splits.iter().map(|s| r.final_stat(s)).collect(),
        })
        .collect();
    Ok(ComparisonTables { splits, per_split, per_goal })
}

/// A percentage with one decimal (what every table cell shows).
pub fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.1}", 100.0 * x) } else { "n/a".into() }
}

fn signed_pct(x: f64) -> String {
    if x.is_finite() { format!("{:+.1}", 100.0 * x) } else { "n/a".into() }
}

/// `54.2 [50.1, 58.3]`, and ` ±2.1` (seed spread) over several seeds.
pub fn stat_cell(s: Option<&Stat>) -> String {
    match s {
        None => "n/a".into(),
        Some(s) => {
            let mut out = format!("{} [{}, {}]", pct(s.accuracy), pct(s.lo), pct(s.hi));
            if let Some(sd) = s.sd {
                out.push_str(&format!(" ±{}", pct(sd)));
            }
            out
        }
    }
}

fn samples(s: Option<u64>) -> String {
    s.map_or_else(|| "never".into(), |s| s.to_string())
}

fn factor(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}x"))
}

impl ComparisonTables {
    fn table1_rows(&self) -> Vec<Vec<String>> {
        self.per_split
            .iter()
            .map(|r| {
                vec![
                    r.split.clone(),
                    stat_cell(r.uni.as_ref()),
                    format!("{} ({})", stat_cell(r.best_goal_stat.as_ref()), display_name(&r.best_goal)),
                    signed_pct(r.delta),
                    samples(r.samples_to_match),
                    r.uni_samples.to_string(),
                    factor(r.reduction),
                ]
            })
            .collect()
    }

    fn table2_rows(&self) -> Vec<Vec<String>> {
        self.per_goal
            .iter()
            .map(|g| {
                let mut row =
                    vec![display_name(&g.name).to_owned(), g.subset_size.to_string(), g.samples_seen.to_string()];
                row.extend(g.stats.iter().map(|s| stat_cell(s.as_ref())));
                row
            })
            .collect()
    }

    fn table1_header() -> Vec<String> {
        [
            "benchmark",
            "Uni-10x acc %",
            "best goal acc %",
            "delta (pts)",
            "goal samples to match",
            "Uni-10x samples",
            "reduction",
        ]
        .map(String::from)
        .to_vec()
    }

    fn table2_header(&self) -> Vec<String> {
        let mut h: Vec<String> = ["run", "subset size", "samples seen"].map(String::from).to_vec();
        h.extend(self.splits.iter().map(|s| format!("{s} acc %")));
        h
    }
}

/// A Markdown table.
pub fn md_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
}

/// The two tables as Markdown, their titles naming `label` (e.g. the pool).
pub fn render_markdown(t: &ComparisonTables, label: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Table 1 ({label}): best goal vs Uni-10x, per benchmark\n");
    md_table(&mut out, &ComparisonTables::table1_header(), &t.table1_rows());
    let _ = writeln!(out, "\n### Table 2 ({label}): every run, final accuracy per benchmark\n");
    md_table(&mut out, &t.table2_header(), &t.table2_rows());
    out
}

/// Escape text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An HTML table (cells escaped).
pub fn html_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = write!(out, "<table>\n<tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", html_escape(h));
    }
    let _ = writeln!(out, "</tr>");
    for r in rows {
        let _ = write!(out, "<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", html_escape(c));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table>");
}

/// The two tables as HTML sections, their titles naming `label`.
pub fn render_html_tables(t: &ComparisonTables, label: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "<h3>Table 1 ({}): best goal vs Uni-10x, per benchmark</h3>", html_escape(label));
    html_table(&mut out, &ComparisonTables::table1_header(), &t.table1_rows());
    let _ = writeln!(out, "<h3>Table 2 ({}): every run, final accuracy per benchmark</h3>", html_escape(label));
    html_table(&mut out, &t.table2_header(), &t.table2_rows());
    out
}

/// A standalone HTML page: a title and `body_html` (already HTML).
pub fn render_html(title: &str, body_html: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;max-width:80em;margin:2em auto}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>\n<h1>{t}</h1>\n{body_html}\n</body></html>\n",
        t = html_escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::EvalPoint;

    fn run(name: &str, size: usize, pts: &[(u64, &str, f64)]) -> RunCurve {
        RunCurve {
            name: name.into(),
            subset_size: size,
            points: pts.iter().map(|&(s, sp, a)| EvalPoint::single(s, sp, a, 10)).collect(),
        }
    }

    #[test]
    fn tables_from_curves() {
        let uni = run("uni_10x", 100, &[(50, "img", 0.3), (50, "vid", 0.2), (100, "img", 0.5), (100, "vid", 0.4)]);
        let a = run("minloss", 10, &[(5, "img", 0.2), (5, "vid", 0.5), (10, "img", 0.6), (10, "vid", 0.3)]);
        let b = run("temp", 10, &[(5, "img", 0.55), (5, "vid", 0.1), (10, "img", 0.6), (10, "vid", 0.2)]);
        let t = compute_tables(&[a, b, uni]).unwrap();
        assert_eq!(t.splits, ["img", "vid", "average"]);
        let img = &t.per_split[0];
        // Tie at 0.6: the earlier goal wins; minloss reaches 0.5 only at 10 samples.
        assert_eq!((img.best_goal.as_str(), img.samples_to_match, img.reduction), ("minloss", Some(10), Some(10.0)));
        assert!((img.delta - 0.1).abs() < 1e-12);
        let vid = &t.per_split[1];
        assert_eq!((vid.best_goal.as_str(), vid.samples_to_match), ("minloss", Some(5)));
        assert!((vid.best_goal_accuracy - 0.3).abs() < 1e-12 && (vid.delta + 0.1).abs() < 1e-12);
        let avg = &t.per_split[2];
        // Averages: uni 0.45 final; minloss 0.35 then 0.45 -> matches at 10; temp 0.325, 0.4.
        assert_eq!((avg.best_goal.as_str(), avg.samples_to_match), ("minloss", Some(10)));
        assert_eq!(t.per_goal.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["minloss", "temp", "uni_10x"]);
        let md = render_markdown(&t, "main pool");
        // Cells: accuracy and its 95% Wilson interval over the 10 questions.
        assert!(
            md.contains("| img | 50.0 [23.7, 76.3] | 60.0 [31.3, 83.2] (MinLoss) | +10.0 | 10 | 100 | 10.0x |"),
            "{md}"
        );
        assert!(
            md.contains("| Uni-10x | 100 | 100 | 50.0 [23.7, 76.3] | 40.0 [16.8, 68.7] | 45.0 [25.8, 65.8] |"),
            "{md}"
        );
        let html = render_html("t", &render_html_tables(&t, "main pool"));
        assert!(html.contains("<td>60.0 [31.3, 83.2] (MinLoss)</td>") && html.contains("Table 1 (main pool)"));
    }

    #[test]
    fn never_matching_and_missing_baseline() {
        let uni = run("uni_10x", 100, &[(100, "img", 0.9)]);
        let a = run("diverse", 10, &[(10, "img", 0.5)]);
        let t = compute_tables(&[uni.clone(), a.clone()]).unwrap();
        assert_eq!((t.per_split[0].samples_to_match, t.per_split[0].reduction), (None, None));
        assert!(render_markdown(&t, "x").contains("| never |"));
        assert!(compute_tables(&[a]).unwrap_err().to_string().contains("no 'uni_10x' run"));
        let other = run("temp", 10, &[(10, "vid", 0.5)]);
        assert!(compute_tables(&[uni, other]).unwrap_err().to_string().contains("was evaluated on"));
    }
}
