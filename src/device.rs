//! The CLI's device choice: `cpu` (default) or `cuda[:N]` (needs the `cuda` cargo
//! feature). Every model, scorer and trainer takes the device from here; the names are
//! parsed in `gdo_udfs::device`, which the `gdo.motion_device` setting uses too.

use candle_core::Device;

use crate::error::{GdoError, Result};

/// Parse a `--device` value: `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn select(spec: &str) -> Result<Device> {
    gdo_udfs::device::select(spec).map_err(|why| GdoError::Usage(format!("--device {spec}: {why}")))
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
