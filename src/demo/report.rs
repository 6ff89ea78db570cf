//! The demo's report: per pool the mean curves over seeds and the paper's two tables,
//! each subset's make-up, the conclusion drawn from those numbers, the paper's own
//! numbers beside them, and the frontier plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DemoRun, DemoSummary};
use crate::error::{GdoError, Result};
use crate::report::{
    AVERAGE_SPLIT, ComparisonTables, FrontierRow, RunCurve, Stat, UNIFORM_RUN, compute_tables, display_name,
    html_escape, html_table, md_table, mean_over_seeds, pct, plot_frontier, render_html, render_html_tables,
    render_markdown,
};
use crate::session::{new_context, register_table};

/// Runs in report order: the paper's goals, then the baseline.
const RUN_ORDER: [&str; 5] = ["minloss", "diverse", "temp", "temp_plus", UNIFORM_RUN];

/// How many pairs of each kind one subset holds.
#[derive(Debug, Clone, Serialize)]
pub struct Composition {
    pub pool: String,
    pub seed: u64,
    pub run: String,
    pub size: u64,
    pub kinds: Vec<(String, u64)>,
}

/// One pool's results over every seed.
#[derive(Debug, Clone, Serialize)]
pub struct PoolResult {
    /// `pool` or `clean`.
    pub pool: String,
    pub label: String,
    /// Each run's curve, the mean over seeds.
    pub curves: Vec<RunCurve>,
    pub tables: ComparisonTables,
    /// Each subset's make-up for the first seed.
    pub composition: Vec<Composition>,
}

/// What the numbers say, in sentences, and the facts they rest on.
#[derive(Debug, Clone, Serialize)]
pub struct Conclusion {
    /// Uni-10x's average on the main pool minus the average chance, in points.
    pub uni_points_above_chance: f64,
    /// At least 20 points above chance: the models learn enough to compare subsets.
    pub learns: bool,
    pub sentences: Vec<String>,
}

/// Count every subset's rows by the generator's kind label (`labels.csv`: id,pool,kind),
/// joined on the pool's `source_id`.
pub async fn composition(labels: &Path, subsets: &[(&str, u64, String, PathBuf)]) -> Result<Vec<Composition>> {
    let ctx = new_context();
    ctx.register_csv("labels", &labels.display().to_string(), datafusion::prelude::CsvReadOptions::new()).await?;
    let mut out = Vec::new();
    for (i, (pool, seed, run, table)) in subsets.iter().enumerate() {
        let name = format!("s{i}");
        register_table(&ctx, &name, &table.display().to_string()).await?;
        let sql = format!(
            "SELECT coalesce(l.kind, 'unlabelled') AS kind, count(*) AS n FROM {name} s \
             LEFT JOIN (SELECT id, kind FROM labels WHERE pool = '{pool}') l ON s.source_id = l.id \
             GROUP BY 1 ORDER BY 1"
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut kinds = Vec::new();
        for b in &batches {
            let k = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8)?;
            let k = datafusion::arrow::array::AsArray::as_string::<i32>(&k);
            let n =
                datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(b.column(1));
            for r in 0..b.num_rows() {
                kinds.push((k.value(r).to_owned(), n.value(r) as u64));
            }
        }
        let size = kinds.iter().map(|k| k.1).sum();
        out.push(Composition { pool: (*pool).to_owned(), seed: *seed, run: run.clone(), size, kinds });
    }
    Ok(out)
}

/// Mean curves and tables per pool.
pub fn pool_results(pools: &[(&str, &str)], runs: &[DemoRun], composition: &[Composition]) -> Result<Vec<PoolResult>> {
    let mut out = Vec::new();
    for &(pool, label) in pools {
        let mut curves = Vec::new();
        for name in RUN_ORDER {
            let mine: Vec<RunCurve> =
                runs.iter().filter(|r| r.pool == pool && r.curve.name == name).map(|r| r.curve.clone()).collect();
            if !mine.is_empty() {
                curves.push(mean_over_seeds(&mine)?);
            }
        }
        let tables = compute_tables(&curves)?;
        let first_seed = runs.iter().filter(|r| r.pool == pool).map(|r| r.seed).min();
        let composition =
            composition.iter().filter(|c| c.pool == pool && Some(c.seed) == first_seed).cloned().collect();
        out.push(PoolResult { pool: pool.to_owned(), label: label.to_owned(), curves, tables, composition });
    }
    Ok(out)
}

fn average(p: &PoolResult, run: &str) -> Option<Stat> {
    p.curves.iter().find(|c| c.name == run).and_then(|c| c.final_stat(AVERAGE_SPLIT))
}

fn low_value_share(c: &Composition) -> f64 {
    let low: u64 =
        c.kinds.iter().filter(|(k, _)| gdo_samples::LOW_VALUE_KINDS.contains(&k.as_str())).map(|k| k.1).sum();
    low as f64 / c.size.max(1) as f64
}

/// `34.9% (95% CI 32.8-37.2, sd 1.1 over 3 seeds)`.
fn in_words(s: &Stat) -> String {
    let spread = s.sd.map_or(String::new(), |sd| format!(", sd {} over {} seeds", pct(sd), s.seeds));
    format!("{}% (95% CI {}-{}{spread})", pct(s.accuracy), pct(s.lo), pct(s.hi))
}

/// One pool's comparison in words: the best goal by average against Uni-10x.
fn compare(p: &PoolResult) -> Option<String> {
    let uni = average(p, UNIFORM_RUN)?;
    let row = p.tables.per_split.iter().find(|r| r.split == AVERAGE_SPLIT)?;
    let best = row.best_goal_stat?;
    let overlap = best.lo <= uni.hi && uni.lo <= best.hi;
    let verdict = if overlap {
        "their 95% intervals overlap: not a clear difference at this size".to_owned()
    } else if best.accuracy > uni.accuracy {
        format!("{} is better, beyond both 95% intervals", display_name(&row.best_goal))
    } else {
        "Uni-10x is better, beyond both 95% intervals".to_owned()
    };
    let reach = match (row.samples_to_match, row.reduction) {
        (Some(s), Some(r)) => format!("it reaches Uni-10x's final average after {s} samples ({r:.1}x fewer)"),
        _ => "it never reaches Uni-10x's final average".to_owned(),
    };
    // Per sample seen: Uni-10x at its first evaluation at or past the goal's last one.
    let goal_samples = p.curves.iter().find(|c| c.name == row.best_goal).map_or(0, RunCurve::total_samples);
    let uni_curve = p.curves.iter().find(|c| c.name == UNIFORM_RUN).map(|c| c.curve(AVERAGE_SPLIT));
    let same_budget =
        uni_curve.and_then(|c| c.into_iter().find(|&(s, _)| s >= goal_samples)).map_or(String::new(), |(s, a)| {
            format!(
                "; at {s} samples, its first evaluation past the goal's {goal_samples}, Uni-10x averaged {}%",
                pct(a)
            )
        });
    Some(format!(
        "On the {}, the best goal by average is {} with {} after {} samples, against Uni-10x's {} after {} samples \
         ({:+.1} points; {verdict}); {reach}{same_budget}.",
        p.label,
        display_name(&row.best_goal),
        in_words(&best),
        goal_samples,
        in_words(&uni),
        row.uni_samples,
        100.0 * row.delta,
    ))
}

/// The conclusion, from the measurements only.
pub fn conclude(results: &[PoolResult], chance: &[(String, f64)]) -> Conclusion {
    let chance_avg = chance.iter().find(|c| c.0 == AVERAGE_SPLIT).map_or(f64::NAN, |c| c.1);
    let main = results.first();
    let uni = main.and_then(|p| average(p, UNIFORM_RUN));
    let above = uni.map_or(f64::NAN, |u| 100.0 * (u.accuracy - chance_avg));
    let learns = above >= 20.0;
    let mut sentences = vec![if learns {
        format!(
            "The models learn: Uni-10x on the main pool averages {:.1}% against an average chance of {:.1}% \
             ({above:+.1} points).",
            uni.map_or(f64::NAN, |u| 100.0 * u.accuracy),
            100.0 * chance_avg
        )
    } else {
        format!(
            "Inconclusive: Uni-10x on the main pool averages {:.1}% against an average chance of {:.1}% \
             ({above:+.1} points, under the 20 points this comparison needs), so the subsets cannot be told apart.",
            uni.map_or(f64::NAN, |u| 100.0 * u.accuracy),
            100.0 * chance_avg
        )
    }];
    sentences.extend(results.iter().filter_map(compare));
    if let (Some(m), Some(c)) = (results.first(), results.get(1)) {
        let delta = |p: &PoolResult| p.tables.per_split.iter().find(|r| r.split == AVERAGE_SPLIT).map(|r| r.delta);
        if let (Some(dm), Some(dc)) = (delta(m), delta(c)) {
            sentences.push(format!(
                "Best goal minus Uni-10x: {:+.1} points on the main pool, {:+.1} on the clean pool: goal-driven \
                 selection gains {} where the pool has low-value pairs.",
                100.0 * dm,
                100.0 * dc,
                if dm > dc { "more" } else { "no more" }
            ));
        }
        let shares: Vec<String> =
            m.composition.iter().map(|c| format!("{} {}%", display_name(&c.run), pct(low_value_share(c)))).collect();
        if !shares.is_empty() {
            sentences.push(format!("Low-value pairs in each main-pool subset: {}.", shares.join(", ")));
        }
    }
    Conclusion { uni_points_above_chance: above, learns, sentences }
}

/// The paper's numbers (Qwen3-VL-8B, one epoch per subset), for comparison only.
const PAPER: [(&str, &str, [f64; 4]); 5] = [
    ("MinLoss", "12.9k", [63.63, 62.30, 45.84, 38.86]),
    ("Diverse", "42.9k", [63.12, 61.33, 46.05, 39.90]),
    ("Temp", "33.3k", [62.05, 62.04, 45.26, 40.28]),
    ("Temp+", "53.3k", [63.65, 62.89, 46.89, 41.06]),
    ("Uni-10x", "512k", [62.27, 61.22, 43.81, 40.22]),
];

fn paper_rows() -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["run (paper)", "subset", "MVBench", "VideoMME", "MLVU", "LVBench"].map(String::from).to_vec();
    let uni = PAPER[4].2;
    let rows =
        PAPER
            .iter()
            .map(|(name, size, acc)| {
                let mut row = vec![(*name).to_owned(), (*size).to_owned()];
                row.extend(acc.iter().zip(uni).map(|(a, u)| {
                    if *name == "Uni-10x" { format!("{a:.2}") } else { format!("{a:.2} ({:+.2})", a - u) }
                }));
                row
            })
            .collect();
    (header, rows)
}

fn composition_rows(p: &PoolResult) -> (Vec<String>, Vec<Vec<String>>) {
    let mut kinds: Vec<String> = Vec::new();
    for c in &p.composition {
        for (k, _) in &c.kinds {
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
        }
    }
    // In the generator's order of kinds.
    kinds.sort_by_key(|k| gdo_samples::POOL_SHARES.iter().position(|s| s.0 == k).unwrap_or(usize::MAX));
    let mut header = vec!["subset".to_owned(), "pairs".to_owned()];
    header.extend(kinds.iter().map(|k| format!("{k} %")));
    let rows = p
        .composition
        .iter()
        .map(|c| {
            let mut row = vec![display_name(&c.run).to_owned(), c.size.to_string()];
            row.extend(kinds.iter().map(|k| {
                let n = c.kinds.iter().find(|x| &x.0 == k).map_or(0, |x| x.1);
                pct(n as f64 / c.size.max(1) as f64)
            }));
            row
        })
        .collect();
    (header, rows)
}

fn shares_rows(s: &DemoSummary) -> (Vec<String>, Vec<Vec<String>>) {
    let header =
        ["kind", "main pool pairs", "main pool %", "clean pool pairs", "clean pool %"].map(String::from).to_vec();
    let total = |v: &[(String, usize)]| v.iter().map(|k| k.1).sum::<usize>().max(1) as f64;
    let (tm, tc) = (total(&s.data.pool_kinds), total(&s.data.clean_kinds));
    let rows = gdo_samples::POOL_SHARES
        .iter()
        .map(|(k, _)| {
            let m = s.data.pool_kinds.iter().find(|x| x.0 == *k).map_or(0, |x| x.1);
            let c = s.data.clean_kinds.iter().find(|x| x.0 == *k).map_or(0, |x| x.1);
            vec![(*k).to_owned(), m.to_string(), pct(m as f64 / tm), c.to_string(), pct(c as f64 / tc)]
        })
        .collect();
    (header, rows)
}

fn setup_text(s: &DemoSummary) -> String {
    let r = &s.recipe;
    let seeds: Vec<String> = s.seeds.iter().map(u64::to_string).collect();
    format!(
        "Base model: tiny-vlm (4x4-pixel patches) pretrained for {} epochs on {} captions of scenes and motionless clips of its own \
         (no direction of motion, no pool question template; final loss {:.3}). It scores both pools (PPL, VDS, SC \
         from {} sampled answers, motion from the frames, TNC by regex) and is the starting point of every \
         fine-tuning run: {} epochs, batch {}, peak lr {}, no blind pairs, the same for every subset, evaluated {} \
         times over a goal's run and {} times over Uni-10x's. 1x subsets have {} pairs, Uni-10x {} pairs; seeds {} (selection and fine-tuning; the data and the base model come \
         from seed {}). Accuracy: the answer ranked first by answer loss among the split's distinct answers; every \
         split has {} questions; intervals are 95% Wilson intervals over every question of every seed; ± is the \
         standard deviation over seeds.{}",
        r.pretrain_epochs,
        s.data.pretrain_pairs,
        s.base_final_loss,
        r.sc_samples,
        r.finetune_epochs,
        r.batch_size,
        r.finetune_lr,
        r.goal_evals,
        r.uni_evals,
        s.count,
        s.pools.first().and_then(|p| p.curves.iter().find(|c| c.name == UNIFORM_RUN)).map_or(0, |c| c.subset_size),
        seeds.join(", "),
        s.seeds.first().copied().unwrap_or(0),
        r.bench_questions,
        if s.quick { " Quick variant: smaller data and one seed; read the numbers as a smoke test." } else { "" }
    )
}

fn levels_rows(s: &DemoSummary) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["benchmark", "chance %", "base model %"].map(String::from).to_vec();
    let rows = s
        .chance
        .iter()
        .map(|(split, c)| {
            let b = s.base_accuracy.iter().find(|x| &x.0 == split).map_or(f64::NAN, |x| x.1);
            vec![split.clone(), pct(*c), pct(b)]
        })
        .collect();
    (header, rows)
}

fn stage_rows(s: &DemoSummary) -> (Vec<String>, Vec<Vec<String>>) {
    let header = ["stage", "seconds"].map(String::from).to_vec();
    let mut rows: Vec<Vec<String>> =
        s.stages.iter().map(|t| vec![t.stage.clone(), format!("{:.1}", t.seconds)]).collect();
    rows.push(vec!["total".into(), format!("{:.1}", s.seconds)]);
    (header, rows)
}

/// Write the plot, `report.md` and `report.html`.
pub fn write(s: &DemoSummary, png: &Path, svg: &Path, md_path: &Path, html_path: &Path) -> Result<()> {
    let rows: Vec<FrontierRow> = s
        .pools
        .iter()
        .map(|p| FrontierRow { title: p.label.clone(), runs: p.curves.clone(), base: s.base_accuracy.clone() })
        .collect();
    let splits: Vec<String> = s.chance.iter().map(|c| c.0.clone()).filter(|c| c != AVERAGE_SPLIT).collect();
    plot_frontier(&rows, &splits, &s.chance, png, svg)?;

    let mut md = String::from("# gdo demo: goal-driven subsets against Uni-10x\n\n");
    let mut html = String::new();
    let _ = writeln!(md, "## Conclusion\n");
    let _ = writeln!(html, "<h2>Conclusion</h2>\n<ul>");
    for line in &s.conclusion.sentences {
        let _ = writeln!(md, "- {line}");
        let _ = writeln!(html, "<li>{}</li>", html_escape(line));
    }
    let _ = writeln!(html, "</ul>");
    let _ = writeln!(md, "\n![frontier](frontier.png)\n");
    let _ = writeln!(html, "<img src=\"frontier.svg\" alt=\"frontier plot\" style=\"max-width:100%\">");

    let setup = setup_text(s);
    let _ = writeln!(md, "## Setup\n\n{setup}\n");
    let _ = writeln!(html, "<h2>Setup</h2>\n<p>{}</p>", html_escape(&setup));
    let (h, r) = shares_rows(s);
    let _ = writeln!(md, "### The pools, by kind of pair\n");
    md_table(&mut md, &h, &r);
    let _ = writeln!(html, "<h3>The pools, by kind of pair</h3>");
    html_table(&mut html, &h, &r);
    let (h, r) = levels_rows(s);
    let _ = writeln!(md, "\n### Chance and the base model\n");
    md_table(&mut md, &h, &r);
    let _ = writeln!(html, "<h3>Chance and the base model</h3>");
    html_table(&mut html, &h, &r);

    for p in &s.pools {
        let _ = writeln!(md, "\n## {}\n", p.label);
        let _ = writeln!(html, "<h2>{}</h2>", html_escape(&p.label));
        md.push_str(&render_markdown(&p.tables, &p.label));
        html.push_str(&render_html_tables(&p.tables, &p.label));
        let (h, r) = composition_rows(p);
        let _ = writeln!(
            md,
            "\n### What each subset holds ({}, seed {})\n",
            p.label,
            s.seeds.first().copied().unwrap_or(0)
        );
        md_table(&mut md, &h, &r);
        let _ = writeln!(html, "<h3>What each subset holds ({})</h3>", html_escape(&p.label));
        html_table(&mut html, &h, &r);
    }

    let (h, r) = paper_rows();
    let note = "The paper's own numbers, for comparison only: Qwen3-VL-8B fine-tuned for one epoch per subset, \
                accuracy % (delta vs Uni-10x); its goals reach Uni-10x's accuracy after 26.6k-35.4k samples. \
                Other models, data and benchmarks than this demo's.";
    let _ = writeln!(md, "\n## Side table: the paper's results\n\n{note}\n");
    md_table(&mut md, &h, &r);
    let _ = writeln!(html, "<h2>Side table: the paper's results</h2>\n<p>{}</p>", html_escape(note));
    html_table(&mut html, &h, &r);

    let (h, r) = stage_rows(s);
    let _ = writeln!(md, "\n## Time\n");
    md_table(&mut md, &h, &r);
    let _ = writeln!(html, "<h2>Time</h2>");
    html_table(&mut html, &h, &r);

    std::fs::write(md_path, md).map_err(|e| GdoError::io(md_path.display().to_string(), e))?;
    let page = render_html("gdo demo: goal-driven subsets against Uni-10x", &html);
    std::fs::write(html_path, page).map_err(|e| GdoError::io(html_path.display().to_string(), e))?;
    Ok(())
}
