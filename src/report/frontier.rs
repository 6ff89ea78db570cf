//! The frontier plot: accuracy against training samples seen (log axis), one line per
//! run (each goal's 1x subset and Uni-10x), one panel per benchmark split plus their
//! average, one row of panels per pool; the base model's accuracy and chance as dashed
//! lines; the legend in its own column. Written as PNG and SVG with plotters.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{AVERAGE_SPLIT, RunCurve, UNIFORM_RUN, display_name};
use crate::error::{GdoError, Result};

const PANEL_W: u32 = 400;
const PANEL_H: u32 = 330;
/// The legend's column, right of the panels (outside every plot area).
const LEGEND_W: u32 = 230;

/// DejaVu Sans (its licence is in `assets/`), so PNG text needs no system fonts.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

fn register_font() {
    REGISTER_FONT.call_once(|| {
        // Only fails for a corrupt font file, which include_bytes! rules out at build time.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const GREY: RGBColor = RGBColor(120, 120, 120);

fn run_color(i: usize, name: &str) -> RGBColor {
    if name == UNIFORM_RUN { RGBColor(0, 0, 0) } else { PALETTE[i % PALETTE.len()] }
}

/// One row of panels: the runs on one pool, and the accuracy the runs start from.
#[derive(Debug, Clone)]
pub struct FrontierRow {
    pub title: String,
    pub runs: Vec<RunCurve>,
    /// Accuracy before any fine-tuning, per split (and [`AVERAGE_SPLIT`]); drawn dashed.
    pub base: Vec<(String, f64)>,
}

/// Ticks at 1, 2, 5 times powers of ten between `lo` and `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 1.0;
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = m * decade;
            if t >= lo && t <= hi {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Integer tick labels on a log axis: 100, 200, 500, 1000, ...
fn log_label(x: &f64) -> String {
    format!("{}", x.round() as u64)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[FrontierRow],
    splits: &[String],
    chance: &[(String, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| GdoError::Usage(format!("plot: {e}"));
    root.fill(&WHITE).map_err(err)?;
    let (plots, legend) = root.split_horizontally(PANEL_W * splits.len() as u32);
    let x_min = rows
        .iter()
        .flat_map(|r| r.runs.iter().flat_map(|c| c.points.iter().map(|p| p.samples_seen)))
        .filter(|&s| s > 0)
        .min()
        .unwrap_or(1);
    let x_max = rows.iter().flat_map(|r| r.runs.iter().map(RunCurve::total_samples)).max().unwrap_or(10).max(x_min + 1);
    // Log axis from just under the first checkpoint to just over the last.
    let (lo, hi) = (x_min as f64 / 1.3, x_max as f64 * 1.3);
    let value = |list: &[(String, f64)], split: &str| list.iter().find(|(s, _)| s == split).map(|p| p.1);
    for (row, row_area) in rows.iter().zip(plots.split_evenly((rows.len(), 1))) {
        for (panel, split) in row_area.split_evenly((1, splits.len())).iter().zip(splits) {
            let name = if split == AVERAGE_SPLIT { "average" } else { split.as_str() };
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{}: {name}", row.title), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(38)
                .y_label_area_size(40)
                .build_cartesian_2d((lo..hi).log_scale().with_key_points(ticks(lo, hi)), 0f64..100f64)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("samples seen (log)")
                .y_desc("accuracy %")
                .x_label_formatter(&log_label)
                .x_max_light_lines(1)
                .y_max_light_lines(1)
                .y_label_formatter(&|y| format!("{}", y.round() as i64))
                .y_labels(11)
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(err)?;
            if let Some(c) = value(chance, split) {
                let line = vec![(lo, 100.0 * c), (hi, 100.0 * c)];
                chart.draw_series(DashedLineSeries::new(line, 2, 4, GREY.stroke_width(1))).map_err(err)?;
            }
            if let Some(b) = value(&row.base, split) {
                let line = vec![(lo, 100.0 * b), (hi, 100.0 * b)];
                chart.draw_series(DashedLineSeries::new(line, 8, 5, GREY.stroke_width(2))).map_err(err)?;
            }
            for (i, run) in row.runs.iter().enumerate() {
                let color = run_color(i, &run.name);
                let pts: Vec<(f64, f64)> =
                    run.curve(split).into_iter().filter(|&(s, _)| s > 0).map(|(s, a)| (s as f64, 100.0 * a)).collect();
                let width = if run.name == UNIFORM_RUN { 3 } else { 2 };
                chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(width))).map_err(err)?;
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
            }
        }
    }
    // The legend, outside the data: every run of the first row (all rows share names).
    let style = ("sans-serif", 13).into_font();
    let mut y = 40;
    legend.draw(&Text::new("runs (mean over seeds)", (10, y - 22), style.clone())).map_err(err)?;
    if let Some(row) = rows.first() {
        for (i, run) in row.runs.iter().enumerate() {
            let color = run_color(i, &run.name);
            let width = if run.name == UNIFORM_RUN { 3 } else { 2 };
            legend.draw(&PathElement::new(vec![(10, y), (38, y)], color.stroke_width(width))).map_err(err)?;
            let label = format!("{} ({} pairs)", display_name(&run.name), run.subset_size);
            legend.draw(&Text::new(label, (46, y - 7), style.clone())).map_err(err)?;
            y += 22;
        }
    }
    legend
        .draw(&PathElement::new(vec![(10, y), (16, y), (20, y), (26, y), (30, y), (36, y)], GREY.stroke_width(2)))
        .map_err(err)?;
    legend.draw(&Text::new("base model (0 samples)", (46, y - 7), style.clone())).map_err(err)?;
    y += 22;
    legend.draw(&PathElement::new(vec![(10, y), (12, y)], GREY.stroke_width(1))).map_err(err)?;
    legend.draw(&PathElement::new(vec![(16, y), (18, y)], GREY.stroke_width(1))).map_err(err)?;
    legend.draw(&PathElement::new(vec![(22, y), (24, y)], GREY.stroke_width(1))).map_err(err)?;
    legend.draw(&Text::new("chance (1 / answers)", (46, y - 7), style)).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Draw the frontier, one row of panels per [`FrontierRow`] and one panel per split of
/// `splits` plus the average, to `png` and `svg`. `chance` gives each split's chance
/// accuracy (and the average's).
pub fn plot_frontier(
    rows: &[FrontierRow],
    splits: &[String],
    chance: &[(String, f64)],
    png: &Path,
    svg: &Path,
) -> Result<()> {
    register_font();
    let mut panels: Vec<String> = splits.iter().filter(|s| s.as_str() != AVERAGE_SPLIT).cloned().collect();
    panels.push(AVERAGE_SPLIT.to_owned());
    let size = (PANEL_W * panels.len() as u32 + LEGEND_W, PANEL_H * rows.len().max(1) as u32);
    {
        let root = SVGBackend::new(svg, size).into_drawing_area();
        draw(root, rows, &panels, chance)?;
    }
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(root, rows, &panels, chance)?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf)
        .ok_or_else(|| GdoError::Usage("plot: bitmap buffer has the wrong size".into()))?;
    img.save(png).map_err(|e| GdoError::Usage(format!("plot: writing {}: {e}", png.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::EvalPoint;

    #[test]
    fn writes_png_and_svg_with_every_run() {
        let mk = |name: &str, size, accs: &[f64]| RunCurve {
            name: name.into(),
            subset_size: size,
            points: accs
                .iter()
                .enumerate()
                .flat_map(|(i, &a)| {
                    ["img", "vid"]
                        .map(|sp| EvalPoint::single((i as u64 + 1) * size as u64 / accs.len() as u64, sp, a, 10))
                })
                .collect(),
        };
        let runs = vec![mk("minloss", 40, &[0.2, 0.5]), mk("uni_10x", 400, &[0.1, 0.3, 0.4, 0.45])];
        let row = FrontierRow { title: "main pool".into(), runs, base: vec![("img".into(), 0.15)] };
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        let chance = vec![("img".to_owned(), 0.25)];
        plot_frontier(&[row.clone(), row], &["img".into(), "vid".into()], &chance, &png, &svg).unwrap();
        let img = image::open(&png).unwrap().into_rgb8();
        assert_eq!((img.width(), img.height()), (3 * PANEL_W + LEGEND_W, 2 * PANEL_H));
        // Something other than the white background was drawn, in the line colours too.
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("MinLoss (40 pairs)") && text.contains("Uni-10x (400 pairs)"));
        assert!(text.contains("main pool: average") && text.contains("base model"));
    }
}
