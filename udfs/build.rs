//! With the `cuda` feature, compiles the motion kernels (`src/motion/farneback.cu`) to
//! PTX with nvcc; the driver JIT-compiles that PTX for the GPU it runs on. Without the
//! feature it does nothing, so CPU builds need no CUDA toolkit.
//!
//! nvcc: `$CUDA_ROOT/bin/nvcc`, `$CUDA_PATH/bin/nvcc`, or `nvcc` on the PATH. Target:
//! `compute_$CUDA_COMPUTE_CAP` (as candle's kernels read it), else compute_70, whose
//! PTX every newer GPU accepts. The PTX must not be newer than the driver that loads it,
//! so build with an nvcc no newer than the driver's CUDA version.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/motion/farneback.cu");
    for var in ["CUDA_ROOT", "CUDA_PATH", "CUDA_COMPUTE_CAP"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = ["CUDA_ROOT", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| PathBuf::from(root).join("bin/nvcc"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").ok().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "70".into());
    let cap = cap.trim().trim_start_matches("sm_").replace('.', "");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("farneback.ptx");
    // --fmad=false: no fused multiply-adds, so each value sees the CPU kernel's roundings.
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "--fmad=false", &format!("-arch=compute_{cap}"), "-o"])
        .arg(&out)
        .arg("src/motion/farneback.cu")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed ({s}) compiling src/motion/farneback.cu", nvcc.display()),
        Err(e) => panic!(
            "the `cuda` feature needs nvcc to compile src/motion/farneback.cu; running {} failed: {e} \
             (set CUDA_ROOT to a CUDA toolkit)",
            nvcc.display()
        ),
    }
}
