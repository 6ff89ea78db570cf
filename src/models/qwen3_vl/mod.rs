//! gdo's own Qwen3-VL (the paper's scorer family), built from candle-nn parts and
//! loading the released checkpoints' `config.json`, `tokenizer.json` and safetensors names.
//!
//! Why not candle-transformers' `qwen3_vl`: its forward returns the last position's
//! logits only, keeps a key/value cache inside the model with no reset, and keeps its
//! parts private. Answer-only loss needs logits at every answer position over padded
//! batches, so here the forward takes a padded batch (ids, padding mask, rotary positions,
//! per-item images) and returns hidden states or logits at every position; caching for
//! generation is a [`KvCache`] the caller owns.
//!
//! Differences from candle-transformers 0.11 (ours follow transformers' reference):
//! causal masking in the prefill (theirs attends both ways when more than one token is
//! fed), interleaved multimodal rotary positions (theirs uses 1D positions), exact GELU in
//! the patch mergers (theirs the tanh approximation), `lm_head` without bias for untied
//! checkpoints. The parity tests switch ours to their behaviour to compare logits.

pub mod config;
pub mod model;
mod nn;
pub mod processor;
pub mod scorer;
pub mod text;
pub mod tiny;
pub mod vision;

pub use config::Qwen3VlConfig;
pub use model::{ModelInput, Qwen3VlModel};
pub use nn::Mode;
pub use processor::{FramePatches, Padding, Processor, Sequence};
pub use scorer::Qwen3VlScorer;
pub use text::KvCache;

#[cfg(test)]
mod tests;
