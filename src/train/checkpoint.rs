//! Checkpoints: `out/checkpoints/step-NNNNNNNN/` holding `model.safetensors`,
//! `optimizer.safetensors`, `state.json`, `config.json` (model type and
//! hyper-parameters) and `tokenizer.json`; `out/checkpoints/LATEST` names the newest.
//! Each folder is written under a temporary name and renamed, and LATEST is replaced
//! by rename, so a kill leaves either the old or the new checkpoint, never half of one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{GdoError, Result};
use crate::train::EvalRecord;
use crate::train::tiny_vlm::TinyVlmConfig;

/// Training position saved with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    pub step: u64,
    pub samples_seen: u64,
    pub seed: u64,
    pub rows: u64,
    pub last_loss: f64,
    pub evals: Vec<EvalRecord>,
    pub frame_skips: std::collections::BTreeMap<String, u64>,
    pub metrics: Vec<crate::train::train_loop::MetricRow>,
}

/// Write a file atomically (temp file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, bytes).map_err(|e| GdoError::io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| GdoError::io(path.display().to_string(), e))
}

/// Seeded initial weights: N(0, 0.02) for matrices, embeddings and positions, 1 for
/// norm gains, 0 for biases; drawn in name order from one ChaCha8 stream, so the same
/// seed and config give the same weights whatever the data.
pub fn init_weights(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| GdoError::Usage("weights lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let leaf = name.rsplit('.').next().unwrap_or("");
        let parent = name.rsplit('.').nth(1).unwrap_or("");
        let values: Vec<f32> = if leaf == "bias" {
            vec![0.0; n]
        } else if parent.starts_with("ln") {
            vec![1.0; n]
        } else {
            (0..n)
                .map(|_| {
                    // Box-Muller from two uniforms in (0, 1].
                    let u1: f64 = 1.0 - rng.random::<f64>();
                    let u2: f64 = rng.random::<f64>();
                    (0.02 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
                })
                .collect()
        };
        let t = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// Named tensors of all weights.
pub fn weights(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap.data().lock().map_err(|_| GdoError::Usage("weights lock poisoned".into()))?;
    Ok(data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect())
}

/// Load `model.safetensors` into `varmap`, checking every name and shape.
pub fn load_weights(varmap: &VarMap, dir: &Path, device: &Device) -> Result<()> {
    let path = dir.join("model.safetensors");
    let saved = candle_core::safetensors::load(&path, device)
        .map_err(|e| GdoError::Table(format!("{}: cannot read weights: {e}", path.display())))?;
    set_weights(varmap, saved, &path, false)
}

/// Set every variable of `varmap` from `saved` (read from `path`), checking names and
/// shapes; tensors `varmap` has no variable for are an error unless `allow_extra`.
pub fn set_weights(varmap: &VarMap, mut saved: HashMap<String, Tensor>, path: &Path, allow_extra: bool) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| GdoError::Usage("weights lock poisoned".into()))?;
    for (name, var) in data.iter() {
        let t = saved.remove(name).ok_or_else(|| {
            GdoError::Table(format!("{}: no tensor '{name}': a checkpoint of another model shape", path.display()))
        })?;
        if t.dims() != var.dims() {
            return Err(GdoError::Table(format!(
                "{}: '{name}' has shape {:?} but the model needs {:?}: a checkpoint of another model shape",
                path.display(),
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    if allow_extra {
        if !saved.is_empty() {
            let mut names: Vec<&String> = saved.keys().collect();
            names.sort();
            tracing::warn!("{}: {} tensors not used by the model, e.g. {}", path.display(), names.len(), names[0]);
        }
    } else if let Some(extra) = saved.keys().next() {
        return Err(GdoError::Table(format!("{}: unexpected tensor '{extra}': another model shape", path.display())));
    }
    Ok(())
}

/// Read `config.json` of a checkpoint folder.
pub fn read_config(dir: &Path) -> Result<TinyVlmConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| GdoError::io(path.display().to_string(), e))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    match value.get("model_type").and_then(|v| v.as_str()) {
        Some(crate::train::tiny_vlm::MODEL_TYPE) => {}
        other => {
            return Err(GdoError::Usage(format!(
                "{}: model_type {other:?}: only tiny-vlm checkpoints are supported here",
                path.display()
            )));
        }
    }
    let cfg: TinyVlmConfig = serde_json::from_value(value)?;
    cfg.validate().map_err(|e| GdoError::Usage(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

pub fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The newest committed checkpoint folder, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    let p = checkpoints_dir(out).join("LATEST");
    match std::fs::read_to_string(&p) {
        Ok(name) => Ok(Some(checkpoints_dir(out).join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GdoError::io(p.display().to_string(), e)),
    }
}

/// Everything a checkpoint holds.
pub struct CheckpointParts<'a> {
    /// The model's own files (`config.json`, `tokenizer.json`, ...): name, bytes.
    pub files: Vec<(String, Vec<u8>)>,
    pub weights: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
    pub state: &'a TrainState,
}

/// Write a checkpoint for `state.step` atomically and point LATEST at it.
pub fn save(out: &Path, parts: CheckpointParts<'_>) -> Result<PathBuf> {
    let root = checkpoints_dir(out);
    std::fs::create_dir_all(&root).map_err(|e| GdoError::io(root.display().to_string(), e))?;
    let name = format!("step-{:08}", parts.state.step);
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp).map_err(|e| GdoError::io(tmp.display().to_string(), e))?;
    let to_f32 = |m: HashMap<String, Tensor>| -> Result<HashMap<String, Tensor>> {
        m.into_iter().map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?))).collect()
    };
    candle_core::safetensors::save(&to_f32(parts.weights)?, tmp.join("model.safetensors"))?;
    candle_core::safetensors::save(&to_f32(parts.optimizer)?, tmp.join("optimizer.safetensors"))?;
    std::fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(parts.state)?)
        .map_err(|e| GdoError::io(tmp.display().to_string(), e))?;
    for (name, bytes) in &parts.files {
        std::fs::write(tmp.join(name), bytes).map_err(|e| GdoError::io(tmp.display().to_string(), e))?;
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| GdoError::io(final_dir.display().to_string(), e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| GdoError::io(final_dir.display().to_string(), e))?;
    write_atomic(&root.join("LATEST"), name.as_bytes())?;
    Ok(final_dir)
}

/// Read a checkpoint's state and optimizer moments.
pub fn load_state(dir: &Path) -> Result<(TrainState, HashMap<String, Tensor>)> {
    let sp = dir.join("state.json");
    let text = std::fs::read_to_string(&sp).map_err(|e| GdoError::io(sp.display().to_string(), e))?;
    let state: TrainState = serde_json::from_str(&text)?;
    let op = dir.join("optimizer.safetensors");
    let opt = candle_core::safetensors::load(&op, &Device::Cpu)
        .map_err(|e| GdoError::Table(format!("{}: cannot read optimizer state: {e}", op.display())))?;
    Ok((state, opt))
}
