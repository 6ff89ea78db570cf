//! Qwen3-VL input preparation: frames resized ("smart resize" to a multiple of patch x
//! merge, pixel budget) and normalised into 3D patches with their grid; the chat template
//! of the method (one image placeholder per frame, then the question, generation prompt
//! on); rotary positions; answer-only loss masking; padded batches.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use image::imageops::FilterType;
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::config::Qwen3VlConfig;
use super::model::ModelInput;
use super::text::Position;
use super::vision::Grid;
use crate::error::{GdoError, Result};

/// Largest aspect ratio a frame may have (as the reference processor).
const MAX_ASPECT: f64 = 200.0;

/// Ids of the chat-template tokens.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub image_pad: u32,
    pub vision_start: u32,
    pub vision_end: u32,
    /// Ends a chat turn.
    pub im_end: u32,
    /// Ends a generated reply: `<|im_end|>` and `<|endoftext|>`.
    pub stop: Vec<u32>,
    /// Fills padding positions (never attended to).
    pub pad: u32,
}

/// One frame as patches: `grid = [t, h, w]`, `data` holds `t*h*w` rows of `C*T*P*P`
/// values in the order the vision tower expects.
#[derive(Debug, Clone, PartialEq)]
pub struct FramePatches {
    pub data: Vec<f32>,
    pub grid: Grid,
}

/// A tokenized sequence with its images and rotary positions. Tokens from
/// `answer_start` on are the answer: only they are loss targets.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub positions: Vec<Position>,
    /// The position the next generated token takes.
    pub next_position: i64,
    pub answer_start: usize,
    pub images: Vec<FramePatches>,
}

/// Where padding goes: right for scoring, left for generation (so every row's last
/// position is its newest token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Left,
    Right,
}

/// `preprocessor_config.json` keys we read (both the Qwen2.5-VL and Qwen3-VL layouts).
#[derive(Debug, Default, Deserialize)]
struct PreprocessorFile {
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    size: Option<SizeLimits>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
}

#[derive(Debug, Default, Deserialize)]
struct SizeLimits {
    shortest_edge: Option<usize>,
    longest_edge: Option<usize>,
}

/// Tokenizer, template and image preprocessing of one checkpoint.
#[derive(Debug, Clone)]
pub struct Processor {
    tokenizer: Tokenizer,
    pub tokens: SpecialTokens,
    patch_size: usize,
    merge_size: usize,
    temporal_patch_size: usize,
    pub min_pixels: usize,
    pub max_pixels: usize,
    mean: [f32; 3],
    std: [f32; 3],
}

impl Processor {
    /// Reads `DIR/tokenizer.json` and, if present, `DIR/preprocessor_config.json`.
    pub fn load(dir: &Path, config: &Qwen3VlConfig) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.exists() {
            return Err(GdoError::NotFound(format!("{}: no tokenizer.json", dir.display())));
        }
        let tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| GdoError::Usage(format!("{}: {e}", tok_path.display())))?;
        let pre_path = dir.join("preprocessor_config.json");
        let pre: PreprocessorFile = if pre_path.exists() {
            let text =
                std::fs::read_to_string(&pre_path).map_err(|e| GdoError::io(pre_path.display().to_string(), e))?;
            serde_json::from_str(&text).map_err(|e| GdoError::Usage(format!("{}: {e}", pre_path.display())))?
        } else {
            PreprocessorFile::default()
        };
        let size = pre.size.unwrap_or_default();
        // Qwen3-VL's defaults: 65,536 to 16,777,216 pixels per image.
        let min_pixels = pre.min_pixels.or(size.shortest_edge).unwrap_or(65_536);
        let max_pixels = pre.max_pixels.or(size.longest_edge).unwrap_or(16_777_216);
        Self::new(tokenizer, config, min_pixels, max_pixels, pre.image_mean, pre.image_std)
            .map_err(|e| GdoError::Usage(format!("{}: {e}", dir.display())))
    }

    fn new(
        tokenizer: Tokenizer,
        config: &Qwen3VlConfig,
        min_pixels: usize,
        max_pixels: usize,
        mean: Option<[f32; 3]>,
        std: Option<[f32; 3]>,
    ) -> std::result::Result<Self, String> {
        let id = |name: &str| tokenizer.token_to_id(name).ok_or_else(|| format!("tokenizer.json has no {name} token"));
        let image_pad = id("<|image_pad|>")?;
        let vision_start = id("<|vision_start|>")?;
        let vision_end = id("<|vision_end|>")?;
        let im_end = id("<|im_end|>")?;
        id("<|im_start|>")?;
        for (name, ours, theirs) in [
            ("image_token_id", image_pad, config.image_token_id),
            ("vision_start_token_id", vision_start, config.vision_start_token_id),
            ("vision_end_token_id", vision_end, config.vision_end_token_id),
        ] {
            if ours != theirs {
                return Err(format!("config.json {name} is {theirs} but tokenizer.json has {ours}"));
            }
        }
        let end_of_text = tokenizer.token_to_id("<|endoftext|>");
        let stop = std::iter::once(im_end).chain(end_of_text).collect();
        let v = &config.vision_config;
        if min_pixels > max_pixels {
            return Err(format!("min_pixels {min_pixels} exceeds max_pixels {max_pixels}"));
        }
        Ok(Self {
            tokenizer,
            tokens: SpecialTokens {
                image_pad,
                vision_start,
                vision_end,
                im_end,
                stop,
                pad: end_of_text.unwrap_or(im_end),
            },
            patch_size: v.patch_size,
            merge_size: v.spatial_merge_size,
            temporal_patch_size: v.temporal_patch_size,
            min_pixels,
            max_pixels,
            mean: mean.unwrap_or([0.5; 3]),
            std: std.unwrap_or([0.5; 3]),
        })
    }

    /// Changes the per-frame pixel budget (frames of long clips are usually scored small).
    pub fn set_pixel_range(&mut self, min_pixels: usize, max_pixels: usize) -> Result<()> {
        if min_pixels > max_pixels || max_pixels == 0 {
            return Err(GdoError::Usage(format!("bad pixel range {min_pixels}..{max_pixels}")));
        }
        self.min_pixels = min_pixels;
        self.max_pixels = max_pixels;
        Ok(())
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Frame -> patches: resized (bicubic) to the smart-resize size, scaled to [0, 1],
    /// normalised with the checkpoint's mean/std, repeated over the temporal patch.
    pub fn frame_patches(&self, frame: &RgbImage) -> Result<FramePatches> {
        let (w, h) = frame.dimensions();
        let factor = self.patch_size * self.merge_size;
        let (rh, rw) = smart_resize(h as usize, w as usize, factor, self.min_pixels, self.max_pixels)?;
        let resized;
        let img = if (rh, rw) == (h as usize, w as usize) {
            frame
        } else {
            resized = image::imageops::resize(frame, rw as u32, rh as u32, FilterType::CatmullRom);
            &resized
        };
        let (p, m, tp) = (self.patch_size, self.merge_size, self.temporal_patch_size);
        let (gh, gw) = (rh / p, rw / p);
        let mut data = Vec::with_capacity(gh * gw * 3 * tp * p * p);
        let raw = img.as_raw();
        for bh in 0..gh / m {
            for bw in 0..gw / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        for c in 0..3 {
                            let (mean, std) = (self.mean[c], self.std[c]);
                            for _ in 0..tp {
                                for y in y0..y0 + p {
                                    let row = (y * rw + x0) * 3 + c;
                                    for x in 0..p {
                                        let v = raw[row + 3 * x] as f32 * (1.0 / 255.0);
                                        data.push((v - mean) / std);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(FramePatches { data, grid: [1, gh, gw] })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| GdoError::Usage(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The user turn with one image per frame, then the question, and the generation
    /// prompt: `<|im_start|>user\n(<|vision_start|><|image_pad|>*n<|vision_end|>)*
    /// {question}<|im_end|>\n<|im_start|>assistant\n` (Qwen3-VL's template, no system turn).
    /// The whole string is tokenized at once, as the reference processor does.
    pub fn prompt(&self, question: &str, images: Vec<FramePatches>) -> Result<Sequence> {
        let merge = self.merge_size * self.merge_size;
        let mut text = String::from("<|im_start|>user\n");
        for img in &images {
            let n = img.grid[0] * img.grid[1] * img.grid[2] / merge;
            text.push_str("<|vision_start|>");
            text.push_str(&"<|image_pad|>".repeat(n));
            text.push_str("<|vision_end|>");
        }
        text.push_str(question);
        text.push_str("<|im_end|>\n<|im_start|>assistant\n");
        let ids = self.encode(&text)?;
        let grids: Vec<Grid> = images.iter().map(|i| i.grid).collect();
        let (positions, next_position) = rope_positions(&ids, self.tokens.image_pad, &grids, self.merge_size)?;
        Ok(Sequence { answer_start: ids.len(), ids, positions, next_position, images })
    }

    /// The prompt followed by the answer's tokens (tokenized on its own, so the boundary
    /// is exact); only the answer tokens are loss targets.
    pub fn scoring_sequence(&self, question: &str, answer: &str, images: Vec<FramePatches>) -> Result<Sequence> {
        let mut seq = self.prompt(question, images)?;
        let answer_ids = self.encode(answer)?;
        for id in answer_ids {
            seq.ids.push(id);
            seq.positions.push([seq.next_position; 3]);
            seq.next_position += 1;
        }
        Ok(seq)
    }

    /// A supervised fine-tuning sequence: [`Self::scoring_sequence`] followed by
    /// `<|im_end|>`, which is a target too, so a trained model learns where its reply
    /// ends (TNC and SC generation stop there).
    pub fn training_sequence(&self, question: &str, answer: &str, images: Vec<FramePatches>) -> Result<Sequence> {
        let mut seq = self.scoring_sequence(question, answer, images)?;
        seq.ids.push(self.tokens.im_end);
        seq.positions.push([seq.next_position; 3]);
        seq.next_position += 1;
        Ok(seq)
    }

    /// A padded batch of sequences on `device`. Returns the input and, per row, the
    /// offset of its first token (non-zero for left-padded rows).
    pub fn collate(&self, seqs: &[&Sequence], padding: Padding, device: &Device) -> Result<(ModelInput, Vec<usize>)> {
        let l = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0);
        let mut input_ids = Vec::with_capacity(seqs.len());
        let mut attention_mask = Vec::with_capacity(seqs.len());
        let mut positions = Vec::with_capacity(seqs.len());
        let mut offsets = Vec::with_capacity(seqs.len());
        let mut pixels: Vec<f32> = Vec::new();
        let mut image_grids = Vec::new();
        for s in seqs {
            let pad = l - s.ids.len();
            let off = if padding == Padding::Left { pad } else { 0 };
            let mut ids = vec![self.tokens.pad; l];
            let mut mask = vec![false; l];
            let mut pos = vec![[1i64; 3]; l];
            ids[off..off + s.ids.len()].copy_from_slice(&s.ids);
            mask[off..off + s.ids.len()].iter_mut().for_each(|m| *m = true);
            pos[off..off + s.ids.len()].copy_from_slice(&s.positions);
            input_ids.push(ids);
            attention_mask.push(mask);
            positions.push(pos);
            offsets.push(off);
            for img in &s.images {
                pixels.extend_from_slice(&img.data);
                image_grids.push(img.grid);
            }
        }
        let pixel_values = if image_grids.is_empty() {
            None
        } else {
            let n: usize = image_grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
            let dim = pixels.len() / n;
            Some(Tensor::from_vec(pixels, (n, dim), device)?)
        };
        let input = ModelInput { input_ids, attention_mask, positions, pixel_values, image_grids, bias_override: None };
        Ok((input, offsets))
    }

    /// Token ids to text, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(|e| GdoError::Usage(format!("tokenizer: {e}")))
    }
}

/// The loss targets of a padded batch: flat `b * L + l` rows of the positions that
/// predict an answer token, the token ids, and the sequence each belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerTargets {
    pub rows: Vec<u32>,
    pub ids: Vec<u32>,
    pub owner: Vec<usize>,
}

/// Answer-only masking: position `j - 1` predicts token `j`, counted when `j` is an
/// answer token; prompt and padding positions never are.
pub fn answer_targets(seqs: &[&Sequence], offsets: &[usize], l: usize) -> AnswerTargets {
    let mut t = AnswerTargets::default();
    for (i, (s, &off)) in seqs.iter().zip(offsets).enumerate() {
        for j in s.answer_start.max(1)..s.ids.len() {
            t.rows.push((i * l + off + j - 1) as u32);
            t.ids.push(s.ids[j]);
            t.owner.push(i);
        }
    }
    t
}

/// The size a frame is resized to: each side rounded (half to even, like Python) to a
/// multiple of `factor`, then scaled to keep the pixel count within the budget.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(GdoError::Usage(format!("frame of size {width}x{height}")));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w) > MAX_ASPECT {
        return Err(GdoError::Usage(format!(
            "frame {width}x{height}: aspect ratio above {MAX_ASPECT} cannot be scored"
        )));
    }
    let mut hb = ((h / f).round_ties_even() * f).max(f);
    let mut wb = ((w / f).round_ties_even() * f).max(f);
    if hb * wb > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        hb = f.max((h / beta / f).floor() * f);
        wb = f.max((w / beta / f).floor() * f);
    } else if hb * wb < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        hb = (h * beta / f).ceil() * f;
        wb = (w * beta / f).ceil() * f;
    }
    Ok((hb as usize, wb as usize))
}

/// Rotary positions of a sequence (Qwen3-VL's rope index): text tokens advance all three
/// axes together; an image's tokens start at the next position and spread over
/// (time, row, column) of its merged grid; the text after it resumes past the largest
/// position used. Returns the positions and the next free position.
pub fn rope_positions(ids: &[u32], image_token: u32, grids: &[Grid], merge: usize) -> Result<(Vec<Position>, i64)> {
    let mut out = Vec::with_capacity(ids.len());
    let mut next = 0i64;
    let mut images = grids.iter();
    let mut i = 0;
    while i < ids.len() {
        if ids[i] != image_token {
            out.push([next; 3]);
            next += 1;
            i += 1;
            continue;
        }
        let g = images.next().ok_or_else(|| GdoError::Usage("more image placeholders than images".into()))?;
        let (t, h, w) = (g[0], g[1] / merge, g[2] / merge);
        let n = t * h * w;
        if i + n > ids.len() || ids[i..i + n].iter().any(|&x| x != image_token) {
            return Err(GdoError::Usage(format!("an image of grid {g:?} needs {n} consecutive placeholders")));
        }
        for ti in 0..t {
            for hi in 0..h {
                for wi in 0..w {
                    out.push([next + ti as i64, next + hi as i64, next + wi as i64]);
                }
            }
        }
        next += t.max(h).max(w) as i64;
        i += n;
    }
    if images.next().is_some() {
        return Err(GdoError::Usage("more images than image placeholders".into()));
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_rounds_and_budgets_like_the_reference() {
        // Round half to even: 28 / 8 = 3.5 -> 4 blocks; 20 / 8 = 2.5 -> 2 blocks.
        assert_eq!(smart_resize(28, 20, 8, 1, 1 << 20).unwrap(), (32, 16));
        // Over budget: scaled down, floored to the factor.
        assert_eq!(smart_resize(1000, 1000, 32, 1, 256 * 256).unwrap(), (256, 256));
        // Under budget: scaled up, ceiled.
        assert_eq!(smart_resize(10, 10, 32, 256 * 256, 1 << 24).unwrap(), (256, 256));
        assert!(smart_resize(1, 300, 8, 1, 1 << 20).unwrap_err().to_string().contains("aspect ratio"));
        assert!(smart_resize(0, 3, 8, 1, 1 << 20).is_err());
    }

    #[test]
    fn rope_positions_spread_images_and_resume_after_them() {
        // text(2) image(1x4x6 patches -> 1x2x3 tokens) text(2)
        let img = 9;
        let ids = [1, 2, img, img, img, img, img, img, 3, 4];
        let (pos, next) = rope_positions(&ids, img, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(&pos[..2], &[[0, 0, 0], [1, 1, 1]]);
        assert_eq!(pos[2], [2, 2, 2]);
        assert_eq!(pos[4], [2, 2, 4]);
        assert_eq!(pos[7], [2, 3, 4]);
        // The image spans 3 positions (its widest axis), so text resumes at 5.
        assert_eq!(&pos[8..], &[[5, 5, 5], [6, 6, 6]]);
        assert_eq!(next, 7);
        assert!(rope_positions(&ids, img, &[], 2).is_err());
        assert!(rope_positions(&ids, img, &[[1, 4, 6], [1, 2, 2]], 2).is_err());
    }
}
