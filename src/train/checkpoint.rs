//! Checkpoints: `out/checkpoints/step-NNNNNNNN/` holding `model.safetensors`,
//! `optimizer.safetensors`, `state.json`, `config.json` (model type and
//! hyper-parameters) and `tokenizer.json`; `out/checkpoints/LATEST` names the newest.
//! Each folder is written under a temporary name and renamed, and LATEST is replaced
//! by rename, so a kill leaves either the old or the new checkpoint, never half of one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{GdoError, Result};
use crate::io::write_atomic;
use crate::models::weights::checkpoints_dir;
use crate::train::EvalRecord;

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
    pub metrics: Vec<crate::train::MetricRow>,
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
