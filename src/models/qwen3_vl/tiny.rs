//! A tiny Qwen3-VL checkpoint with seeded random weights, written in the released layout
//! (`config.json`, `preprocessor_config.json`, `tokenizer.json`, `model.safetensors`), so
//! tests and demos exercise the same loading path as a real download.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::config::Qwen3VlConfig;
use super::model::Qwen3VlModel;
use super::nn::Mode;
use crate::error::{GdoError, Result};

/// The chat-template tokens, in id order after the 256 byte tokens.
pub const SPECIAL_TOKENS: [&str; 7] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
];

/// `config.json` of the tiny model: 2 decoder layers (width 32, 4 heads over 2 KV heads,
/// head_dim 16, M-RoPE split [4, 2, 2]), a 2-block vision tower (width 32, patches of
/// 4 px, a 4x4 learned position grid) with DeepStack after blocks 0 and 1.
pub fn tiny_config() -> Value {
    json!({
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "image_token_id": 261,
        "video_token_id": 262,
        "vision_start_token_id": 259,
        "vision_end_token_id": 260,
        "tie_word_embeddings": true,
        "text_config": {
            "model_type": "qwen3_vl_text",
            "vocab_size": 272,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "hidden_act": "silu",
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "rope_scaling": {"mrope_interleaved": true, "mrope_section": [4, 2, 2], "rope_type": "default"},
            "tie_word_embeddings": true,
            "attention_bias": false,
            "bos_token_id": 256,
            "eos_token_id": 258
        },
        "vision_config": {
            "model_type": "qwen3_vl",
            "depth": 2,
            "hidden_size": 32,
            "out_hidden_size": 32,
            "hidden_act": "gelu_pytorch_tanh",
            "intermediate_size": 64,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 4,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0, 1]
        }
    })
}

/// A byte-level BPE tokenizer without merges (every byte one token, ids 0..256) plus the
/// chat-template special tokens (ids 256..263), like Qwen's tokenizer in miniature.
pub fn tiny_tokenizer() -> Result<Tokenizer> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let vocab: Vocab = alphabet.iter().enumerate().map(|(i, c)| (c.to_string(), i as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .build()
        .map_err(|e| GdoError::Usage(format!("tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS.iter().map(|s| AddedToken::from(*s, true)).collect();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Writes the tiny checkpoint into `dir` (created if needed). Same seed, same bytes.
/// `config_patch` is merged into `config.json` (objects merged key by key), to vary sizes.
pub fn write_tiny_checkpoint(dir: &Path, seed: u64, config_patch: Option<&Value>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GdoError::io(dir.display().to_string(), e))?;
    let mut config = tiny_config();
    if let Some(patch) = config_patch {
        merge_json(&mut config, patch);
    }
    let cfg: Qwen3VlConfig = serde_json::from_value(config.clone())?;
    cfg.validate().map_err(GdoError::Usage)?;

    // Build the model once over a recorder to learn every tensor name and shape from the
    // module itself, then fill each in name order from one seeded stream.
    let shapes = Mutex::new(BTreeMap::new());
    let vb = VarBuilder::from_backend(Box::new(ShapeRecorder(&shapes)), DType::F32, Device::Cpu);
    Qwen3VlModel::new(&cfg, Mode::Inference, vb)?;
    let shapes = shapes.into_inner().map_err(|_| GdoError::Usage("poisoned shape recorder".into()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    for (name, shape) in &shapes {
        let dims = shape.dims().to_vec();
        let n = shape.elem_count();
        let is_norm = dims.len() == 1 && name.ends_with("weight") && name.contains("norm");
        let values: Vec<f32> = if is_norm {
            (0..n).map(|_| 1.0 + rng.random_range(-0.1..0.1f32)).collect()
        } else if name.ends_with("bias") {
            (0..n).map(|_| rng.random_range(-0.05..0.05f32)).collect()
        } else if name.contains("embed") {
            (0..n).map(|_| rng.random_range(-1.0..1.0f32)).collect()
        } else {
            let fan_in: usize = dims[1..].iter().product::<usize>().max(1);
            let a = (3.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        };
        tensors.insert(name.clone(), Tensor::from_vec(values, dims, &Device::Cpu)?);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;

    let write = |file: &str, value: &Value| -> Result<()> {
        let path = dir.join(file);
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(&path, text).map_err(|e| GdoError::io(path.display().to_string(), e))
    };
    write("config.json", &config)?;
    write(
        "preprocessor_config.json",
        &json!({
            "patch_size": cfg.vision_config.patch_size,
            "temporal_patch_size": cfg.vision_config.temporal_patch_size,
            "merge_size": cfg.vision_config.spatial_merge_size,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "size": {"shortest_edge": 64, "longest_edge": 1024}
        }),
    )?;
    let tok = tiny_tokenizer()?;
    tok.save(dir.join("tokenizer.json"), false).map_err(|e| GdoError::Usage(format!("tiny tokenizer: {e}")))?;
    Ok(())
}

/// A `VarBuilder` backend that records the name and shape of every tensor a module asks
/// for and hands out zeros: the values come from the seeded stream afterwards, so
/// initialising them here would be wasted (for a 2B-sized model, most of the time).
struct ShapeRecorder<'a>(&'a Mutex<BTreeMap<String, Shape>>);

impl SimpleBackend for ShapeRecorder<'_> {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut seen = self.0.lock().map_err(|_| candle_core::Error::Msg("poisoned shape recorder".into()))?;
        if let Some(earlier) = seen.get(name)
            && earlier != &s
        {
            candle_core::bail!("{name} asked for as {s:?} and earlier as {earlier:?}");
        }
        seen.insert(name.to_owned(), s.clone());
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: the shape recorder has no tensor to give without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.lock().is_ok_and(|seen| seen.contains_key(name))
    }
}

fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_json(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_recorder_records_names_once_and_rejects_a_second_shape() {
        let shapes = Mutex::new(BTreeMap::new());
        let vb = VarBuilder::from_backend(Box::new(ShapeRecorder(&shapes)), DType::F32, Device::Cpu);
        assert!(!vb.contains_tensor("a.weight"));
        let a = vb.pp("a").get((2, 3), "weight").unwrap();
        assert_eq!(a.dims(), &[2, 3]);
        assert!(vb.contains_tensor("a.weight"));
        // Asked for again with the same shape (tied weights): one entry.
        vb.pp("a").get((2, 3), "weight").unwrap();
        let err = vb.pp("a").get((3, 2), "weight").unwrap_err().to_string();
        assert!(err.contains("a.weight asked for as"), "{err}");
        assert!(vb.get_unchecked("b").is_err());
        drop(vb);
        let shapes = shapes.into_inner().unwrap();
        assert_eq!(shapes.len(), 1);
        assert_eq!(shapes["a.weight"].dims(), &[2, 3]);
    }
}
