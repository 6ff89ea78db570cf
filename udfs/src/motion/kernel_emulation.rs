//! The CUDA kernels of `farneback.cu`, run on the CPU: compiled as plain C++ (through
//! `tests/cuda_emulation/shim.h`, one thread at a time) by the system's C++ compiler and
//! driven in `cuda_flow.rs`'s launch order by `tests/cuda_emulation/driver.cpp`. Their
//! AMM must equal the tuned kernel's, so the GPU path's arithmetic and indexing are
//! checked on every machine, GPU or not (the launch code itself runs only on a GPU:
//! `scripts/gpu-check.sh`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::farneback::{ExpansionKernel, ITERATIONS, POLY_N, POLY_SIGMA, WINSIZE, border_weights, level_plan};
use super::imgops::{Plane, linear_tab};
use super::{motion_descriptors, shifted_test_frame as shifted};

/// The driver's input: frames, pairs and every host-side table `cuda_flow` uploads.
fn driver_input(clips: &[Vec<Plane<u8>>]) -> String {
    let (w, h) = (clips[0][0].width, clips[0][0].height);
    let frames: Vec<&Plane<u8>> = clips.iter().flatten().collect();
    let mut o = String::new();
    let line = |o: &mut String, items: Vec<String>| {
        o.push_str(&items.join(" "));
        o.push('\n');
    };
    line(&mut o, vec![w.to_string(), h.to_string(), frames.len().to_string(), clips.len().to_string()]);
    line(&mut o, clips.iter().map(|c| c.len().to_string()).collect());
    for f in &frames {
        line(&mut o, f.data.iter().map(|v| v.to_string()).collect());
    }
    let (mut prev, mut next, mut first) = (Vec::new(), Vec::new(), 0);
    for c in clips {
        for t in 1..c.len() {
            prev.push((first + t - 1).to_string());
            next.push((first + t).to_string());
        }
        first += c.len();
    }
    writeln!(o, "{}", prev.len()).unwrap();
    line(&mut o, prev);
    line(&mut o, next);
    writeln!(o, "{POLY_N} {} {ITERATIONS}", WINSIZE / 2).unwrap();
    let k = ExpansionKernel::new(POLY_N, POLY_SIGMA);
    let floats = |v: &[f32]| v.iter().map(|x| format!("{x:e}")).collect::<Vec<_>>();
    line(&mut o, floats(&[k.g.as_slice(), &k.xg, &k.xxg].concat()));
    writeln!(o, "{:e} {:e} {:e} {:e}", k.ig11, k.ig03, k.ig33, k.ig55).unwrap();
    let plan = level_plan(w, h);
    writeln!(o, "{}", plan.len()).unwrap();
    let tabs = |o: &mut String, (sw, sh): (usize, usize), (dw, dh): (usize, usize)| {
        let (xt, yt) = (linear_tab(sw, dw), linear_tab(sh, dh));
        line(o, xt.iter().map(|t| t.0.to_string()).collect());
        line(o, yt.iter().map(|t| t.0.to_string()).collect());
        line(o, xt.iter().map(|t| format!("{:e}", t.1)).collect());
        line(o, yt.iter().map(|t| format!("{:e}", t.1)).collect());
    };
    let mut coarser: Option<(usize, usize)> = None;
    for (lw, lh, blur) in &plan {
        writeln!(o, "{lw} {lh} {}", blur.len()).unwrap();
        line(&mut o, floats(blur));
        tabs(&mut o, (w, h), (*lw, *lh));
        match coarser {
            Some(size) => tabs(&mut o, size, (*lw, *lh)),
            None => o.push_str("\n\n\n\n"),
        }
        line(&mut o, floats(&border_weights(*lw)));
        line(&mut o, floats(&border_weights(*lh)));
        coarser = Some((*lw, *lh));
    }
    o
}

/// Each clip's (AMM, frame diversity) from the emulated kernels.
fn emulated(clips: &[Vec<Plane<u8>>], dir: &Path, name: &str) -> Vec<(f64, f64)> {
    let input = dir.join(format!("{name}.txt"));
    std::fs::write(&input, driver_input(clips)).unwrap();
    let out = Command::new(dir.join("driver")).arg(&input).output().expect("the emulation driver runs");
    assert!(out.status.success(), "driver failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let num = |v: Option<&str>| v.and_then(|v| v.parse().ok()).expect("two numbers per line");
    text.lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            (num(it.next()), num(it.next()))
        })
        .collect()
}

#[test]
fn cuda_kernels_emulated_on_the_cpu_equal_the_tuned_kernel() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("gdo-cuda-emulation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    // -ffp-contract=off: no fused multiply-adds, as nvcc --fmad=false builds the PTX.
    let built = Command::new(&cxx)
        .args(["-std=c++17", "-O2", "-ffp-contract=off", "-o"])
        .arg(dir.join("driver"))
        .arg(here.join("tests/cuda_emulation/driver.cpp"))
        .status()
        .unwrap_or_else(|e| panic!("this test compiles the CUDA kernels as C++ and needs a C++ compiler ({cxx}): {e}"));
    assert!(built.success(), "{cxx} could not compile the kernels");
    // 224x224: the method's size (levels 56, 112, 224), motion large and small, none,
    // and a one-frame clip; 96x64: a non-square frame (x/y mix-ups show) with two levels.
    let s = |sx, sy| shifted(224, 224, sx, sy);
    let square = vec![
        vec![s(0.0, 0.0), s(1.5, 0.0), s(3.0, 0.5), s(4.0, 1.5)],
        vec![s(0.0, 0.0), s(0.0, 0.0)],
        vec![s(2.0, 2.0)],
        vec![s(0.0, 0.0), s(-2.5, 1.0), s(7.5, -6.0)],
    ];
    let r = |sx, sy| shifted(96, 64, sx, sy);
    let oblong = vec![vec![r(0.0, 0.0), r(1.0, -2.0), r(2.5, -1.0)], vec![r(0.0, 0.0), r(-3.0, 0.5)]];
    for (name, clips) in [("square", square), ("oblong", oblong)] {
        let got = emulated(&clips, &dir, name);
        assert_eq!(got.len(), clips.len(), "{name}: one line per clip");
        for (clip, &(amm, div)) in clips.iter().zip(&got) {
            let (want_amm, want_div) = motion_descriptors(clip);
            assert!(
                (amm - want_amm).abs() <= 1e-9 + 1e-6 * want_amm,
                "{name}: emulated kernels' AMM {amm} vs tuned kernel {want_amm}"
            );
            assert_eq!(div, want_div, "{name}: frame diversity is exact on both");
        }
        assert!(got[0].0 > 0.5 && got[0].1 > 0.01, "{name}: a moving clip has motion ({:?})", got[0]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
