//! `tiny-vlm`: a small vision-language model that trains from scratch in minutes on a
//! CPU; [`TinyVlmScorer`] makes a trained one a proxy [`crate::models::Scorer`].

pub mod inputs;
pub mod model;
pub mod scorer;
pub mod tokenizer;

pub use model::{Holdout, MODEL_TYPE, TinyVlm, TinyVlmConfig};
pub use scorer::TinyVlmScorer;
pub use tokenizer::TextTokenizer;
