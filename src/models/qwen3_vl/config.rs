//! `config.json` of a Qwen3-VL checkpoint, in the layout the released checkpoints (and
//! candle-transformers' `qwen3_vl`) use: `text_config`, `vision_config`, the special token
//! ids, `"model_type": "qwen3_vl"`.

use std::path::Path;

use candle_nn::Activation;
use serde::Deserialize;

use crate::error::{GdoError, Result};

/// The whole checkpoint configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3VlConfig {
    #[serde(default)]
    pub model_type: String,
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    pub image_token_id: u32,
    #[serde(default = "default_video_token_id")]
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    /// Some checkpoints state tying at the top level only.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

/// The language model (a Qwen3 decoder with multimodal rotary positions).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    #[serde(default = "default_text_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: bool,
    /// `rope_scaling` (transformers <= 4.57) or `rope_parameters` (later): the M-RoPE split.
    #[serde(default, alias = "rope_parameters")]
    pub rope_scaling: Option<RopeScaling>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct RopeScaling {
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
    #[serde(default)]
    pub mrope_interleaved: Option<bool>,
}

/// The vision tower (a ViT over 3D patches, a 2x2 patch merger, DeepStack mergers).
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub out_hidden_size: usize,
    #[serde(default = "default_vision_act")]
    pub hidden_act: Activation,
    pub intermediate_size: usize,
    pub num_heads: usize,
    #[serde(default = "default_in_channels", alias = "in_chans")]
    pub in_channels: usize,
    pub patch_size: usize,
    #[serde(default = "default_merge")]
    pub spatial_merge_size: usize,
    #[serde(default = "default_temporal_patch")]
    pub temporal_patch_size: usize,
    pub num_position_embeddings: usize,
    #[serde(default)]
    pub deepstack_visual_indexes: Vec<usize>,
    /// gdo's own key, absent from released checkpoints: the patch mergers' activation.
    /// transformers uses exact GELU (`nn.GELU()`); candle-transformers 0.11 uses the tanh
    /// approximation, so the parity test sets `gelu_pytorch_tanh` here.
    #[serde(default = "default_merger_act")]
    pub merger_hidden_act: Activation,
}

fn default_video_token_id() -> u32 {
    151656
}
fn default_text_act() -> Activation {
    Activation::Silu
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    5_000_000.0
}
fn default_max_positions() -> usize {
    262_144
}
fn default_vision_act() -> Activation {
    Activation::GeluPytorchTanh
}
fn default_in_channels() -> usize {
    3
}
fn default_merge() -> usize {
    2
}
fn default_temporal_patch() -> usize {
    2
}
fn default_merger_act() -> Activation {
    Activation::Gelu
}

impl TextConfig {
    /// The interleaved M-RoPE split of the `head_dim / 2` rotary frequencies over the
    /// (time, height, width) position axes; Qwen3-VL's default is `[24, 20, 20]`.
    pub fn mrope_section(&self) -> Vec<usize> {
        self.rope_scaling.as_ref().and_then(|r| r.mrope_section.clone()).unwrap_or_else(|| vec![24, 20, 20])
    }
}

impl Qwen3VlConfig {
    /// Whether `lm_head` shares the token embedding matrix.
    pub fn tied_embeddings(&self) -> bool {
        self.text_config.tie_word_embeddings.or(self.tie_word_embeddings).unwrap_or(false)
    }

    /// Read and check `DIR/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                GdoError::NotFound(format!(
                    "{}: no config.json; a Qwen3-VL scorer folder holds config.json, tokenizer.json and \
                     *.safetensors (e.g. a download of Qwen/Qwen3-VL-8B-Instruct)",
                    dir.display()
                ))
            } else {
                GdoError::io(path.display().to_string(), e)
            }
        })?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| GdoError::Usage(format!("{}: not a Qwen3-VL config: {e}", path.display())))?;
        cfg.validate().map_err(|why| GdoError::Usage(format!("{}: {why}", path.display())))?;
        Ok(cfg)
    }

    /// The checks whose failure would otherwise surface as an obscure shape error.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.model_type != "qwen3_vl" {
            return Err(format!("model_type is \"{}\", expected \"qwen3_vl\"", self.model_type));
        }
        let t = &self.text_config;
        let v = &self.vision_config;
        if t.num_key_value_heads == 0 || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !t.head_dim.is_multiple_of(2) {
            return Err(format!("text head_dim {} is odd", t.head_dim));
        }
        let section = t.mrope_section();
        if section.len() != 3 || section.iter().sum::<usize>() != t.head_dim / 2 {
            return Err(format!(
                "mrope_section {section:?} must have 3 parts summing to head_dim/2 = {}",
                t.head_dim / 2
            ));
        }
        if v.num_heads == 0
            || !v.hidden_size.is_multiple_of(v.num_heads)
            || !(v.hidden_size / v.num_heads).is_multiple_of(4)
        {
            return Err(format!(
                "vision hidden_size {} must split into num_heads {} heads of a size divisible by 4",
                v.hidden_size, v.num_heads
            ));
        }
        if v.out_hidden_size != t.hidden_size {
            return Err(format!(
                "vision out_hidden_size {} differs from text hidden_size {}",
                v.out_hidden_size, t.hidden_size
            ));
        }
        let side = (v.num_position_embeddings as f64).sqrt().round() as usize;
        if side * side != v.num_position_embeddings || side == 0 {
            return Err(format!("num_position_embeddings {} is not a square", v.num_position_embeddings));
        }
        if let Some(bad) = v.deepstack_visual_indexes.iter().find(|&&i| i >= v.depth) {
            return Err(format!("deepstack_visual_indexes holds {bad}, beyond the vision depth {}", v.depth));
        }
        if v.deepstack_visual_indexes.len() > t.num_hidden_layers {
            return Err(format!(
                "{} DeepStack levels but only {} text layers",
                v.deepstack_visual_indexes.len(),
                t.num_hidden_layers
            ));
        }
        if v.spatial_merge_size == 0 || v.temporal_patch_size == 0 || v.patch_size == 0 {
            return Err("patch_size, spatial_merge_size and temporal_patch_size must be positive".into());
        }
        let vocab = t.vocab_size as u32;
        for (name, id) in [
            ("image_token_id", self.image_token_id),
            ("vision_start_token_id", self.vision_start_token_id),
            ("vision_end_token_id", self.vision_end_token_id),
        ] {
            if id >= vocab {
                return Err(format!("{name} {id} is outside the vocabulary of {vocab}"));
            }
        }
        Ok(())
    }
}
