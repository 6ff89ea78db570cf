//! The word-level tokenizer of `tiny-vlm`, built with the `tokenizers` crate from the
//! training table's questions and answers (lower-cased, split like `Whitespace`:
//! `\w+|[^\w\s]+`) and saved as a standard `tokenizer.json`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{GdoError, Result};

/// Special token ids; they are never produced from text, only inserted by the batcher.
pub const PAD: u32 = 0;
pub const UNK: u32 = 1;
pub const BOS: u32 = 2;
pub const EOS: u32 = 3;
pub const SEP: u32 = 4;
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]"];
/// Words the proxy scorer's TNC prompt needs in its vocabulary.
const RESERVED: [&str; 2] = ["temporal", "static"];

/// A word-level tokenizer (wraps `tokenizers::Tokenizer`).
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    json: String,
}

fn tok_err(what: &str, e: impl std::fmt::Display) -> GdoError {
    GdoError::Usage(format!("tokenizer: {what}: {e}"))
}

impl TextTokenizer {
    /// Build deterministically: words by count (descending), ties by the word, at most
    /// `max_vocab` entries including the special tokens.
    pub fn build<'a>(texts: impl IntoIterator<Item = &'a str>, max_vocab: usize) -> Result<Self> {
        let split = regex::Regex::new(r"\w+|[^\w\s]+").map_err(|e| tok_err("regex", e))?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for text in texts {
            for m in split.find_iter(&text.to_lowercase()) {
                *counts.entry(m.as_str().to_owned()).or_default() += 1;
            }
        }
        for w in RESERVED {
            counts.entry(w.to_owned()).or_insert(u64::MAX);
        }
        let mut words: Vec<(String, u64)> = counts.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut vocab = serde_json::Map::new();
        for (i, s) in SPECIALS.iter().enumerate() {
            vocab.insert((*s).to_owned(), serde_json::json!(i));
        }
        for (w, _) in words.into_iter().take(max_vocab.saturating_sub(SPECIALS.len())) {
            let id = vocab.len();
            vocab.insert(w, serde_json::json!(id));
        }
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        Self::from_json(serde_json::to_string_pretty(&json)?)
    }

    fn from_json(json: String) -> Result<Self> {
        let inner: tokenizers::Tokenizer = json.parse().map_err(|e| tok_err("invalid tokenizer.json", e))?;
        Ok(Self { inner, json })
    }

    /// Load a `tokenizer.json` written by [`TextTokenizer::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|e| GdoError::io(path.display().to_string(), e))?;
        let tok = Self::from_json(json)?;
        for (i, s) in SPECIALS.iter().enumerate() {
            if tok.inner.token_to_id(s) != Some(i as u32) {
                return Err(tok_err(
                    &path.display().to_string(),
                    format!("not a gdo tiny-vlm tokenizer ({s} is not id {i})"),
                ));
            }
        }
        Ok(tok)
    }

    /// Write `tokenizer.json` (atomically: temp file then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.json.as_bytes())
    }

    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, word: &str) -> Option<u32> {
        self.inner.token_to_id(word)
    }

    /// Word ids of `text` (no special tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped, words joined by spaces.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let words: Vec<u32> = ids.iter().copied().filter(|&i| i as usize >= SPECIALS.len()).collect();
        self.inner.decode(&words, true).map_err(|e| tok_err("decode", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_deterministically_and_round_trips() {
        let texts = ["What colour is the ball?", "The ball is red.", "red"];
        let a = TextTokenizer::build(texts, 100).unwrap();
        let b = TextTokenizer::build(texts, 100).unwrap();
        assert_eq!(a.json(), b.json());
        let ids = a.encode("the RED ball").unwrap();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|&i| i != UNK));
        assert_eq!(a.decode(&ids).unwrap(), "the red ball");
        assert_eq!(a.encode("zebra").unwrap(), vec![UNK]);
        // "red" (2) and "ball"/"the"/"is" (2,1,1): red first by count, then by word.
        assert!(a.token_id("red").unwrap() < a.token_id("what").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        a.save(&p).unwrap();
        assert_eq!(TextTokenizer::load(&p).unwrap().encode("the red ball").unwrap(), ids);
    }
}
