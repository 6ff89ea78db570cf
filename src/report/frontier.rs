//! The frontier plot: accuracy against training samples seen, one line per run (each
//! goal's 1x subset and Uni-10x), one panel per benchmark split plus their average.
//! Written as PNG and SVG with plotters.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{AVERAGE_SPLIT, RunCurve, UNIFORM_RUN};
use crate::error::{GdoError, Result};

const PANEL_W: u32 = 420;
const PANEL_H: u32 = 340;

/// DejaVu Sans (its licence is in `assets/`), so PNG text needs no system fonts.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

fn register_font() {
    REGISTER_FONT.call_once(|| {
        // Only fails for a corrupt font file, which include_bytes! rules out at build time.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn run_color(i: usize, name: &str) -> RGBColor {
    if name == UNIFORM_RUN {
        return RGBColor(0, 0, 0);
    }
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    PALETTE[i % PALETTE.len()]
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[RunCurve], splits: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| GdoError::Usage(format!("plot: {e}"));
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, splits.len()));
    let x_max = runs.iter().map(RunCurve::total_samples).max().unwrap_or(1).max(1);
    for (panel, split) in panels.iter().zip(splits) {
        let title = if split == AVERAGE_SPLIT { "average over benchmarks".to_owned() } else { split.clone() };
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..x_max as f64 * 1.02, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("samples seen")
            .y_desc("accuracy")
            .x_labels(5)
            .y_labels(6)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (i, run) in runs.iter().enumerate() {
            let color = run_color(i, &run.name);
            let pts: Vec<(f64, f64)> = run.curve(split).into_iter().map(|(s, a)| (s as f64, a)).collect();
            let width = if run.name == UNIFORM_RUN { 3 } else { 2 };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                .map_err(err)?
                .label(format!("{} ({} pairs)", run.name, run.subset_size))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width)));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Draw the frontier of `runs` (evaluated on `splits`; the average panel is added) to
/// `png` and `svg`.
pub fn plot_frontier(runs: &[RunCurve], splits: &[String], png: &Path, svg: &Path) -> Result<()> {
    register_font();
    let mut panels: Vec<String> = splits.iter().filter(|s| s.as_str() != AVERAGE_SPLIT).cloned().collect();
    panels.push(AVERAGE_SPLIT.to_owned());
    let size = (PANEL_W * panels.len() as u32, PANEL_H);
    {
        let root = SVGBackend::new(svg, size).into_drawing_area();
        draw(root, runs, &panels)?;
    }
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(root, runs, &panels)?;
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
                    ["img", "vid"].map(|sp| EvalPoint {
                        samples_seen: (i as u64 + 1) * size as u64 / accs.len() as u64,
                        split: sp.into(),
                        accuracy: a,
                        n: 10,
                    })
                })
                .collect(),
        };
        let runs = vec![mk("minloss", 40, &[0.2, 0.5]), mk("uni_10x", 400, &[0.1, 0.3, 0.4, 0.45])];
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("f.png"), dir.path().join("f.svg"));
        plot_frontier(&runs, &["img".into(), "vid".into()], &png, &svg).unwrap();
        let img = image::open(&png).unwrap().into_rgb8();
        assert_eq!((img.width(), img.height()), (3 * PANEL_W, PANEL_H));
        // Something other than the white background was drawn, in the line colours too.
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("minloss (40 pairs)") && text.contains("uni_10x (400 pairs)"));
        assert!(text.contains("average over benchmarks"));
    }
}
