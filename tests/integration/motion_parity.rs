//! AMM and frame diversity against OpenCV 5.0's Farneback (`motion-reference/`).

use serde_json::Value;

use crate::common::fixtures;
use gdo_udfs::method::uniform_indices;
use gdo_udfs::motion::candle_flow::CandleMotion;
use gdo_udfs::motion::{FLOW_FRAMES, motion_descriptors, prepare_gray};

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        // Average ranks over ties.
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The reference clips' prepared frames and OpenCV's (AMM, frame diversity).
fn reference_clips() -> Vec<(Vec<gdo_udfs::motion::Plane<u8>>, f64, f64)> {
    let dir = fixtures().join("motion-reference");
    let text = std::fs::read_to_string(dir.join("clips.jsonl")).expect("clips.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let clip: Value = serde_json::from_str(line).unwrap();
            let images: Vec<&str> = clip["images"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let planes = uniform_indices(images.len(), FLOW_FRAMES)
                .iter()
                .map(|&i| {
                    let rgb = image::open(dir.join(images[i])).expect("frame decodes").to_rgb8();
                    let (w, h) = rgb.dimensions();
                    prepare_gray(rgb.as_raw(), w as usize, h as usize)
                })
                .collect();
            (planes, clip["amm"].as_f64().unwrap(), clip["frame_diversity"].as_f64().unwrap())
        })
        .collect()
}

/// The agreement gdo promises with OpenCV: AMM median relative error <= 5%, rank correlation
/// >= 0.98, frame diversity within 1e-3.
fn assert_agrees_with_opencv(path: &str, ours: &[(f64, f64)], clips: &[(Vec<gdo_udfs::motion::Plane<u8>>, f64, f64)]) {
    assert_eq!(ours.len(), 18);
    let ours_amm: Vec<f64> = ours.iter().map(|o| o.0).collect();
    let ref_amm: Vec<f64> = clips.iter().map(|c| c.1).collect();
    let mut rel: Vec<f64> = ours_amm.iter().zip(&ref_amm).map(|(a, r)| (a - r).abs() / r.abs().max(1e-12)).collect();
    let max_fd = ours.iter().zip(clips).map(|(o, c)| (o.1 - c.2).abs()).fold(0f64, f64::max);
    rel.sort_by(f64::total_cmp);
    let median = (rel[8] + rel[9]) / 2.0;
    let spearman = pearson(&ranks(&ours_amm), &ranks(&ref_amm));
    println!(
        "{path}: AMM median relative error {median:.2e} (worst {:.2e}), Spearman {spearman:.4}, max frame-diversity error {max_fd:.2e}",
        rel[17]
    );
    assert!(median <= 0.05, "{path}: AMM median relative error {median}");
    assert!(spearman >= 0.98, "{path}: AMM rank correlation {spearman}");
    assert!(max_fd <= 1e-3, "{path}: frame diversity error {max_fd}");
}

#[test]
fn amm_and_frame_diversity_agree_with_opencv() {
    let clips = reference_clips();
    let ours: Vec<(f64, f64)> = clips.iter().map(|(planes, _, _)| motion_descriptors(planes)).collect();
    assert_agrees_with_opencv("tuned CPU kernel", &ours, &clips);
}

/// The candle path (the one a CUDA device runs; here on the CPU device) meets the same
/// bounds and agrees with the tuned kernel clip by clip.
#[test]
fn candle_motion_agrees_with_opencv_and_the_tuned_kernel() {
    let clips = reference_clips();
    let planes: Vec<_> = clips.iter().map(|c| c.0.clone()).collect();
    let candle = CandleMotion::new(candle_core::Device::Cpu).motion_descriptors(&planes).expect("candle motion runs");
    assert_agrees_with_opencv("candle path", &candle, &clips);
    // f32 throughout against the tuned kernel's f64 sums: about 1e-4 apart.
    let mut worst = 0f64;
    for ((c, _, _), got) in clips.iter().zip(&candle) {
        let tuned = motion_descriptors(c);
        worst = worst.max((got.0 - tuned.0).abs() / tuned.0.max(1e-6));
        assert!((got.0 - tuned.0).abs() <= 1e-6 + 1e-3 * tuned.0, "AMM {} (candle) vs {} (tuned)", got.0, tuned.0);
        assert_eq!(got.1, tuned.1, "frame diversity");
    }
    println!("candle path vs tuned kernel: worst AMM relative difference {worst:.2e}");
}
