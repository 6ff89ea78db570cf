//! The one place a compute device is chosen from its name: `cpu` (default), `cuda`
//! (GPU 0) or `cuda:N`. The CLI's `--device` and the `gdo.motion_device` setting both
//! go through [`select`]; their callers add which flag or setting was wrong.

use candle_core::Device;

/// The device a name stands for, or why not (a phrase the caller prefixes).
pub fn select(spec: &str) -> Result<Device, String> {
    match spec.trim() {
        "" | "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| format!("'{n}' is not a GPU number"))?,
            };
            if !cfg!(feature = "cuda") {
                return Err("this gdo was built without the `cuda` feature (cargo build --features cuda)".into());
            }
            Device::new_cuda(ordinal).map_err(|e| e.to_string())
        }
        other => Err(format!("unknown device '{other}' (use cpu, cuda or cuda:N)")),
    }
}
