//! AMM and frame diversity against OpenCV 5.0's Farneback (`motion-reference/`).

use serde_json::Value;

use crate::common::fixtures;
use gdo_udfs::method::uniform_indices;
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

#[test]
fn amm_and_frame_diversity_agree_with_opencv() {
    let dir = fixtures().join("motion-reference");
    let text = std::fs::read_to_string(dir.join("clips.jsonl")).expect("clips.jsonl");
    let (mut ours_amm, mut ref_amm, mut rel, mut max_fd) = (vec![], vec![], vec![], 0.0f64);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let clip: Value = serde_json::from_str(line).unwrap();
        let images: Vec<&str> = clip["images"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let chosen = uniform_indices(images.len(), FLOW_FRAMES);
        let planes: Vec<_> = chosen
            .iter()
            .map(|&i| {
                let rgb = image::open(dir.join(images[i])).expect("frame decodes").to_rgb8();
                let (w, h) = rgb.dimensions();
                prepare_gray(rgb.as_raw(), w as usize, h as usize)
            })
            .collect();
        let (amm, fd) = motion_descriptors(&planes);
        let (ra, rf) = (clip["amm"].as_f64().unwrap(), clip["frame_diversity"].as_f64().unwrap());
        ours_amm.push(amm);
        ref_amm.push(ra);
        rel.push((amm - ra).abs() / ra.abs().max(1e-12));
        max_fd = max_fd.max((fd - rf).abs());
    }
    assert_eq!(ours_amm.len(), 18);
    let mut sorted = rel.clone();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[8] + sorted[9]) / 2.0;
    let spearman = pearson(&ranks(&ours_amm), &ranks(&ref_amm));
    println!(
        "AMM median relative error {median:.2e} (worst {:.2e}), Spearman {spearman:.4}, max frame-diversity error {max_fd:.2e}",
        sorted[17]
    );
    assert!(median <= 0.05, "AMM median relative error {median}");
    assert!(spearman >= 0.98, "AMM rank correlation {spearman}");
    assert!(max_fd <= 1e-3, "frame diversity error {max_fd}");
}
