//! What `tiny-vlm` reads: pairs encoded as token ids and masks, frames resampled and
//! resized to its input size, and both stacked into a batch.

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::error::Result;
use crate::models::tiny_vlm::model::TinyVlmConfig;
use crate::models::tiny_vlm::tokenizer::{BOS, EOS, PAD, SEP, TextTokenizer};

/// Indices of at most `max` of `n` frames, uniformly resampled, in time order.
pub fn resample_indices(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| ((2 * i + 1) * n) / (2 * max)).collect()
}

/// Which frames of a pair a model sees: at most `max_frames`, uniformly resampled, and
/// the square side they are resized to (`None`: as decoded, for a model whose own
/// processor resizes, like Qwen3-VL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrep {
    pub max_frames: usize,
    pub size: Option<u32>,
}

impl From<&TinyVlmConfig> for FramePrep {
    fn from(cfg: &TinyVlmConfig) -> Self {
        Self { max_frames: cfg.max_frames, size: Some(cfg.image_size as u32) }
    }
}

/// Resize a decoded frame to the model's input size.
pub fn prepare_frame(img: &RgbImage, cfg: &TinyVlmConfig) -> RgbImage {
    resize_square(img, cfg.image_size as u32)
}

pub fn resize_square(img: &RgbImage, s: u32) -> RgbImage {
    if img.width() == s && img.height() == s {
        img.clone()
    } else {
        image::imageops::resize(img, s, s, image::imageops::FilterType::Triangle)
    }
}

/// Token ids, next-token targets, loss mask and text mask of one pair, each of length
/// `max_text`. The question is truncated first so the answer keeps its tokens.
pub fn encode_pair(tok: &TextTokenizer, cfg: &TinyVlmConfig, question: &str, answer: &str) -> Result<EncodedText> {
    let t = cfg.max_text;
    let mut a = tok.encode(answer)?;
    a.truncate(t / 3);
    let mut q = tok.encode(question)?;
    q.truncate(t - a.len() - 3);
    let mut ids = vec![BOS];
    ids.extend(&q);
    ids.push(SEP);
    let answer_start = ids.len();
    ids.extend(&a);
    ids.push(EOS);
    let n = ids.len();
    let mut enc = EncodedText {
        tokens: vec![PAD; t],
        targets: vec![PAD; t],
        loss_mask: vec![0.0; t],
        text_mask: vec![0.0; t],
        prompt_len: answer_start,
    };
    for i in 0..n {
        enc.tokens[i] = ids[i];
        enc.text_mask[i] = 1.0;
        if i + 1 < n {
            enc.targets[i] = ids[i + 1];
            // Position i predicts token i+1: answer tokens and EOS count.
            if i + 1 >= answer_start {
                enc.loss_mask[i] = 1.0;
            }
        }
    }
    Ok(enc)
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncodedText {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    pub loss_mask: Vec<f32>,
    pub text_mask: Vec<f32>,
    /// Tokens before the first answer token (`[BOS] question [SEP]`).
    pub prompt_len: usize,
}

/// Model inputs for a batch.
#[derive(Debug)]
pub struct Batch {
    /// `[B, F, 3, S, S]`
    pub frames: Tensor,
    /// `[B, F]`, 1 where a frame is present.
    pub frame_mask: Tensor,
    /// `[B, T]` u32
    pub tokens: Tensor,
    /// `[B, T]` u32
    pub targets: Tensor,
    /// `[B, T]`
    pub loss_mask: Tensor,
    /// `[B, T]`
    pub text_mask: Tensor,
}

impl Batch {
    /// The batch with its text cut to the longest row. Positions past it are padding that
    /// no loss counts and, under the causal mask, no earlier position sees, so the losses
    /// are the same up to rounding, and a batch of short pairs costs a fraction of
    /// `max_text`. Rounding then depends on the batch's longest row, so only training
    /// cuts: a scored pair's loss must not depend on the pairs batched with it.
    pub fn trimmed(self) -> Result<Batch> {
        let mask: Vec<Vec<f32>> = self.text_mask.to_vec2()?;
        let used = mask.iter().map(|r| r.iter().rposition(|&m| m > 0.0).map_or(0, |i| i + 1)).max().unwrap_or(0);
        let t = self.tokens.dim(1)?;
        let keep = used.clamp(1, t);
        if keep == t {
            return Ok(self);
        }
        let cut = |x: Tensor| x.narrow(1, 0, keep)?.contiguous();
        Ok(Batch {
            frames: self.frames,
            frame_mask: self.frame_mask,
            tokens: cut(self.tokens)?,
            targets: cut(self.targets)?,
            loss_mask: cut(self.loss_mask)?,
            text_mask: cut(self.text_mask)?,
        })
    }
}

/// Stack encoded pairs and their (already resized) frames; `blind[i]` drops row i's frames.
pub fn build_batch(
    texts: &[EncodedText],
    frames: &[&[RgbImage]],
    blind: &[bool],
    cfg: &TinyVlmConfig,
    device: &Device,
) -> Result<Batch> {
    let (b, f, s, t) = (texts.len(), cfg.max_frames, cfg.image_size, cfg.max_text);
    let mut pix = vec![0f32; b * f * 3 * s * s];
    let mut fmask = vec![0f32; b * f];
    for (i, imgs) in frames.iter().enumerate() {
        if blind[i] {
            continue;
        }
        for (slot, img) in imgs.iter().take(f).enumerate() {
            fmask[i * f + slot] = 1.0;
            let base = (i * f + slot) * 3 * s * s;
            for (x, y, p) in img.enumerate_pixels() {
                if x as usize >= s || y as usize >= s {
                    continue;
                }
                for c in 0..3 {
                    pix[base + c * s * s + y as usize * s + x as usize] = p[c] as f32 / 255.0 - 0.5;
                }
            }
        }
    }
    let cat_u32 =
        |get: fn(&EncodedText) -> &Vec<u32>| texts.iter().flat_map(|e| get(e).iter().copied()).collect::<Vec<u32>>();
    let cat_f32 =
        |get: fn(&EncodedText) -> &Vec<f32>| texts.iter().flat_map(|e| get(e).iter().copied()).collect::<Vec<f32>>();
    Ok(Batch {
        frames: Tensor::from_vec(pix, (b, f, 3, s, s), device)?,
        frame_mask: Tensor::from_vec(fmask, (b, f), device)?,
        tokens: Tensor::from_vec(cat_u32(|e| &e.tokens), (b, t), device)?,
        targets: Tensor::from_vec(cat_u32(|e| &e.targets), (b, t), device)?,
        loss_mask: Tensor::from_vec(cat_f32(|e| &e.loss_mask), (b, t), device)?,
        text_mask: Tensor::from_vec(cat_f32(|e| &e.text_mask), (b, t), device)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_is_uniform_and_keeps_short_videos() {
        assert_eq!(resample_indices(3, 8), vec![0, 1, 2]);
        assert_eq!(resample_indices(16, 4), vec![2, 6, 10, 14]);
        assert_eq!(resample_indices(32, 8), vec![2, 6, 10, 14, 18, 22, 26, 30]);
    }

    #[test]
    fn loss_mask_covers_answer_and_eos_only() {
        let tok = TextTokenizer::build(["what is it", "a cat"], 50).unwrap();
        let cfg = TinyVlmConfig { vocab_size: tok.vocab_size(), ..TinyVlmConfig::default() };
        let e = encode_pair(&tok, &cfg, "what is it", "a cat").unwrap();
        // [BOS] what is it [SEP] a cat [EOS]
        assert_eq!(e.prompt_len, 5);
        assert_eq!(
            &e.tokens[..8],
            &[
                BOS,
                tok.token_id("what").unwrap(),
                tok.token_id("is").unwrap(),
                tok.token_id("it").unwrap(),
                SEP,
                tok.token_id("a").unwrap(),
                tok.token_id("cat").unwrap(),
                EOS
            ]
        );
        let masked: Vec<usize> = (0..cfg.max_text).filter(|&i| e.loss_mask[i] > 0.0).collect();
        assert_eq!(masked, vec![4, 5, 6]);
        assert_eq!(e.targets[4], tok.token_id("a").unwrap());
        assert_eq!(e.targets[6], EOS);
        assert_eq!(e.text_mask.iter().sum::<f32>(), 8.0);
    }
}
