//! Load a scorer model folder by its `config.json` `model_type`.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{GdoError, Result};
use crate::models::Scorer;

/// The model types [`load_scorer`] knows.
pub const KNOWN_MODEL_TYPES: &[&str] = &["qwen3_vl", "tiny-vlm"];

/// `model_type` of the model folder `dir` (its `config.json`; empty when absent). The
/// error says why `config.json` could not be read, for the caller to prefix.
pub fn model_type(dir: &Path) -> std::result::Result<String, String> {
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| format!("cannot read config.json: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", config.display()))?;
    Ok(json.get("model_type").and_then(|v| v.as_str()).unwrap_or("").to_owned())
}

/// The model folder `path` names: itself when it holds `config.json`, else (a `gdo
/// train` output folder) its newest checkpoint, else itself.
pub fn model_dir(path: &Path) -> Result<PathBuf> {
    if path.join("config.json").exists() {
        return Ok(path.to_path_buf());
    }
    Ok(crate::models::weights::latest(path)?.unwrap_or_else(|| path.to_path_buf()))
}

/// Load the scorer in `path` onto `device`: a model folder (with `config.json`), or a
/// `gdo train` output folder, which stands for its newest checkpoint.
pub fn load_scorer(path: &Path, device: &Device) -> Result<Box<dyn Scorer>> {
    let path = &model_dir(path)?;
    let model_type = model_type(path).map_err(|e| GdoError::Usage(format!("--scorer {}: {e}", path.display())))?;
    match model_type.as_str() {
        "qwen3_vl" => Ok(Box::new(crate::models::qwen3_vl::Qwen3VlScorer::load(path, device)?)),
        // A `gdo train` checkpoint: the proxy scorer for machines without a large model.
        "tiny-vlm" => Ok(Box::new(crate::models::tiny_vlm::TinyVlmScorer::load(path, device)?)),
        other => Err(GdoError::Usage(format!(
            "--scorer {}: unknown model_type \"{other}\" in config.json (known: {})",
            path.display(),
            KNOWN_MODEL_TYPES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_type_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
        let err = load_scorer(dir.path(), &Device::Cpu).err().expect("unknown type fails").to_string();
        assert!(err.contains("unknown model_type \"llama\"") && err.contains("qwen3_vl"), "{err}");
        let err = load_scorer(&dir.path().join("absent"), &Device::Cpu).err().expect("missing fails").to_string();
        assert!(err.contains("cannot read config.json"), "{err}");
    }
}
