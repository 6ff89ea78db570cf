//! Model weights in `VarMap`s: seeded initialisation, reading and checking
//! `model.safetensors`, and the layout of a `gdo train` output folder
//! (`checkpoints/LATEST` names the newest checkpoint), which loads as a model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{GdoError, Result};

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
