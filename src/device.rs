//! The one place a compute device is chosen: `cpu` (default) or `cuda[:N]` (needs the
//! `cuda` cargo feature). Every model, scorer and trainer takes the device from here.

use candle_core::Device;

use crate::error::{GdoError, Result};

/// Parse a `--device` value: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn select(spec: &str) -> Result<Device> {
    let bad = |why: String| GdoError::Usage(format!("--device {spec}: {why}"));
    match spec.trim() {
        "" | "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| bad(format!("'{n}' is not a GPU number")))?,
            };
            if !cfg!(feature = "cuda") {
                return Err(bad("this gdo was built without the `cuda` feature (cargo build --features cuda)".into()));
            }
            Device::new_cuda(ordinal).map_err(|e| bad(e.to_string()))
        }
        other => Err(bad(format!("unknown device '{other}' (use cpu, cuda or cuda:N)"))),
    }
}

/// The dtype models run in on a device: bf16 on GPU, f32 on CPU (spec: the reference
/// scorer runs bf16 on GPU).
pub fn model_dtype(device: &Device) -> candle_core::DType {
    if device.is_cuda() { candle_core::DType::BF16 } else { candle_core::DType::F32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_unknown_or_unavailable() {
        assert!(matches!(select("cpu").unwrap(), Device::Cpu));
        assert!(select("tpu").unwrap_err().to_string().contains("unknown device 'tpu'"));
        assert!(select("cuda:x").unwrap_err().to_string().contains("not a GPU number"));
        if !cfg!(feature = "cuda") {
            assert!(select("cuda").unwrap_err().to_string().contains("without the `cuda` feature"));
        }
    }
}
