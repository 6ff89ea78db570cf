//! The Qwen3-VL vision tower: 3D patches -> ViT blocks (2D rotary positions, attention
//! within each frame) -> a 2x2 patch merger into the decoder's width, plus DeepStack
//! mergers that hand features of intermediate blocks to the first decoder layers.
//! Weight names follow the released checkpoints (`model.visual.*`).

use candle_core::{DType, IndexOp, Module, Result, Tensor};
use candle_nn::{Activation, Linear, VarBuilder, linear};

use super::config::VisionConfig;
use super::nn::{Mode, Norm, rotate_half, softmax_last};

/// One frame's patch grid: `[t, h, w]` in patches (`t` temporal patches).
pub type Grid = [usize; 3];

/// Projects a flattened `(C, T, P, P)` patch to the tower width. The checkpoint stores a
/// Conv3d whose kernel equals its stride, which on one patch is exactly this linear map.
#[derive(Debug, Clone)]
struct PatchEmbed {
    proj: Linear,
}

impl PatchEmbed {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("proj");
        let (c, t, p) = (cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size);
        let w = vb.get((cfg.hidden_size, c, t, p, p), "weight")?.reshape((cfg.hidden_size, c * t * p * p))?;
        let b = vb.get(cfg.hidden_size, "bias")?;
        Ok(Self { proj: Linear::new(w, Some(b)) })
    }

    fn forward(&self, patches: &Tensor) -> Result<Tensor> {
        self.proj.forward(patches)
    }
}

#[derive(Debug, Clone)]
struct VisionMlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl VisionMlp {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(cfg.hidden_size, cfg.intermediate_size, vb.pp("linear_fc1"))?,
            fc2: linear(cfg.intermediate_size, cfg.hidden_size, vb.pp("linear_fc2"))?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(xs)?.apply(&self.act)?)
    }
}

/// At most this many frames share one batched attention call (bounds the score tensor).
const MAX_RUN_FRAMES: usize = 16;

/// Frames of equal token count that follow each other are attended to as one batch.
#[derive(Debug, Clone, Copy)]
struct FrameRun {
    start: usize,
    frames: usize,
    len: usize,
}

#[derive(Debug, Clone)]
struct VisionAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    head_dim: usize,
    mode: Mode,
}

impl VisionAttention {
    fn new(cfg: &VisionConfig, mode: Mode, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.hidden_size;
        Ok(Self {
            qkv: linear(dim, 3 * dim, vb.pp("qkv"))?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            num_heads: cfg.num_heads,
            head_dim: dim / cfg.num_heads,
            mode,
        })
    }

    /// `xs` `(S, dim)`; `cos`/`sin` `(S, 1, head_dim)` in f32; attention never crosses a frame.
    fn forward(&self, xs: &Tensor, runs: &[FrameRun], cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (s, dim) = xs.dims2()?;
        let qkv = self.qkv.forward(xs)?.reshape((s, 3, self.num_heads, self.head_dim))?;
        // Rotary positions and scores in f32, as the reference implementation does.
        let q = qkv.i((.., 0))?.to_dtype(DType::F32)?;
        let k = qkv.i((.., 1))?.to_dtype(DType::F32)?;
        let v = qkv.i((.., 2))?.to_dtype(DType::F32)?;
        let q = (q.broadcast_mul(cos)? + rotate_half(&q)?.broadcast_mul(sin)?)?;
        let k = (k.broadcast_mul(cos)? + rotate_half(&k)?.broadcast_mul(sin)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut outs = Vec::with_capacity(runs.len());
        for run in runs {
            let n = run.frames * run.len;
            // (frames, heads, len, head_dim)
            let split = |t: &Tensor| -> Result<Tensor> {
                t.narrow(0, run.start, n)?
                    .reshape((run.frames, run.len, self.num_heads, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (qr, kr, vr) = (split(&q)?, split(&k)?, split(&v)?);
            let scores = (qr.matmul(&kr.t()?)? * scale)?;
            let probs = softmax_last(&scores, DType::F32, self.mode)?;
            let out = probs.matmul(&vr)?.transpose(1, 2)?.reshape((n, dim))?;
            outs.push(out);
        }
        let out = Tensor::cat(&outs, 0)?.to_dtype(xs.dtype())?;
        self.proj.forward(&out)
    }
}

#[derive(Debug, Clone)]
struct VisionBlock {
    norm1: Norm,
    norm2: Norm,
    attn: VisionAttention,
    mlp: VisionMlp,
}

impl VisionBlock {
    fn new(cfg: &VisionConfig, mode: Mode, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: Norm::layer(cfg.hidden_size, 1e-6, mode, vb.pp("norm1"))?,
            norm2: Norm::layer(cfg.hidden_size, 1e-6, mode, vb.pp("norm2"))?,
            attn: VisionAttention::new(cfg, mode, vb.pp("attn"))?,
            mlp: VisionMlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, runs: &[FrameRun], cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.norm1.forward(xs)?, runs, cos, sin)?)?;
        &xs + self.mlp.forward(&self.norm2.forward(&xs)?)?
    }
}

/// Concatenates each 2x2 block of neighbouring patch features (they are adjacent in the
/// patch order) and projects them to the decoder width. The DeepStack mergers normalise
/// after the concatenation, the final merger before it.
#[derive(Debug, Clone)]
struct PatchMerger {
    norm: Norm,
    norm_after_shuffle: bool,
    merged: usize,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl PatchMerger {
    fn new(cfg: &VisionConfig, norm_after_shuffle: bool, mode: Mode, vb: VarBuilder) -> Result<Self> {
        let merged = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_dim = if norm_after_shuffle { merged } else { cfg.hidden_size };
        Ok(Self {
            norm: Norm::layer(norm_dim, 1e-6, mode, vb.pp("norm"))?,
            norm_after_shuffle,
            merged,
            fc1: linear(merged, merged, vb.pp("linear_fc1"))?,
            fc2: linear(merged, cfg.out_hidden_size, vb.pp("linear_fc2"))?,
            act: cfg.merger_hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (s, dim) = xs.dims2()?;
        let groups = s * dim / self.merged;
        let xs = if self.norm_after_shuffle {
            self.norm.forward(&xs.reshape((groups, self.merged))?)?
        } else {
            self.norm.forward(xs)?.reshape((groups, self.merged))?
        };
        self.fc2.forward(&self.fc1.forward(&xs)?.apply(&self.act)?)
    }
}

/// The vision tower.
#[derive(Debug, Clone)]
pub struct VisionModel {
    patch_embed: PatchEmbed,
    pos_embed: Tensor,
    blocks: Vec<VisionBlock>,
    merger: PatchMerger,
    /// `(block index, merger)` in block order.
    deepstack: Vec<(usize, PatchMerger)>,
    merge: usize,
    grid_side: usize,
    head_dim: usize,
    patch_dim: usize,
}

impl VisionModel {
    pub fn new(cfg: &VisionConfig, mode: Mode, vb: VarBuilder) -> Result<Self> {
        let pos_embed = vb.pp("pos_embed").get((cfg.num_position_embeddings, cfg.hidden_size), "weight")?;
        let blocks = (0..cfg.depth)
            .map(|i| VisionBlock::new(cfg, mode, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let mut deepstack = cfg
            .deepstack_visual_indexes
            .iter()
            .enumerate()
            .map(|(i, &layer)| {
                Ok((layer, PatchMerger::new(cfg, true, mode, vb.pp(format!("deepstack_merger_list.{i}")))?))
            })
            .collect::<Result<Vec<_>>>()?;
        deepstack.sort_by_key(|(layer, _)| *layer);
        Ok(Self {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            pos_embed,
            blocks,
            merger: PatchMerger::new(cfg, false, mode, vb.pp("merger"))?,
            deepstack,
            merge: cfg.spatial_merge_size,
            grid_side: (cfg.num_position_embeddings as f64).sqrt().round() as usize,
            head_dim: cfg.hidden_size / cfg.num_heads,
            patch_dim: cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size,
        })
    }

    /// `patches` `(N, C*T*P*P)` for the frames of `grids` in order; returns the merged
    /// tokens `(N / merge^2, out_hidden)` and one DeepStack feature tensor of the same
    /// shape per DeepStack level.
    pub fn forward(&self, patches: &Tensor, grids: &[Grid]) -> Result<(Tensor, Vec<Tensor>)> {
        let (n, dim) = patches.dims2()?;
        let expected: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        if n != expected || dim != self.patch_dim {
            candle_core::bail!(
                "vision input is {n}x{dim}, the grids {grids:?} need {expected}x{} patches",
                self.patch_dim
            );
        }
        if let Some(g) = grids.iter().find(|g| g[1] % self.merge != 0 || g[2] % self.merge != 0 || g[0] == 0) {
            candle_core::bail!("grid {g:?} is not a multiple of the merge size {}", self.merge);
        }
        let dtype = self.pos_embed.dtype();
        let mut xs = self.patch_embed.forward(&patches.to_dtype(dtype)?)?;
        xs = (xs + self.position_embeddings(grids)?)?;
        let (cos, sin) = self.rotary(grids)?;
        let runs = frame_runs(grids);
        let mut features = Vec::with_capacity(self.deepstack.len());
        for (i, block) in self.blocks.iter().enumerate() {
            xs = block.forward(&xs, &runs, &cos, &sin)?;
            for (_, merger) in self.deepstack.iter().filter(|(layer, _)| *layer == i) {
                features.push(merger.forward(&xs)?);
            }
        }
        Ok((self.merger.forward(&xs)?, features))
    }

    /// Learned absolute positions on a `grid_side` square, bilinearly resampled to each
    /// frame's grid and listed in the merger's 2x2 block order.
    fn position_embeddings(&self, grids: &[Grid]) -> Result<Tensor> {
        let side = self.grid_side;
        let total: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let mut idx: Vec<Vec<_>> = (0..4).map(|_| Vec::with_capacity(total)).collect();
        let mut wts: Vec<Vec<_>> = (0..4).map(|_| Vec::with_capacity(total)).collect();
        let m = self.merge;
        for &[t, h, w] in grids {
            let hs = linspace((side - 1) as f32, h);
            let ws = linspace((side - 1) as f32, w);
            let corner = |v: f32| {
                let lo = v as usize;
                (lo, (lo + 1).min(side - 1), v - lo as f32)
            };
            for _ in 0..t {
                for bh in 0..h / m {
                    for bw in 0..w / m {
                        for mh in 0..m {
                            for mw in 0..m {
                                let (r0, r1, dr) = corner(hs[bh * m + mh]);
                                let (c0, c1, dc) = corner(ws[bw * m + mw]);
                                let cells = [(r0, c0), (r0, c1), (r1, c0), (r1, c1)];
                                let weights = [(1.0 - dr) * (1.0 - dc), (1.0 - dr) * dc, dr * (1.0 - dc), dr * dc];
                                for k in 0..4 {
                                    idx[k].push((cells[k].0 * side + cells[k].1) as u32);
                                    wts[k].push(weights[k]);
                                }
                            }
                        }
                    }
                }
            }
        }
        let device = self.pos_embed.device();
        let dtype = self.pos_embed.dtype();
        let idx = Tensor::from_vec(idx.concat(), 4 * total, device)?;
        let wts = Tensor::from_vec(wts.concat(), (4, total, 1), device)?.to_dtype(dtype)?;
        let hidden = self.pos_embed.dim(1)?;
        let corners = self.pos_embed.index_select(&idx, 0)?.reshape((4, total, hidden))?;
        let weighted = corners.broadcast_mul(&wts)?;
        let mut sum = weighted.i(0)?;
        for k in 1..4 {
            sum = (sum + weighted.i(k)?)?;
        }
        Ok(sum)
    }

    /// 2D rotary angles: half the rotary frequencies follow the patch row, half the column.
    /// Returns `cos`, `sin` `(N, 1, head_dim)` in f32.
    fn rotary(&self, grids: &[Grid]) -> Result<(Tensor, Tensor)> {
        let rot_dim = self.head_dim / 2;
        let inv_freq: Vec<f32> =
            (0..rot_dim).step_by(2).map(|i| 1.0 / 10000f32.powf(i as f32 / rot_dim as f32)).collect();
        let m = self.merge;
        let mut angles = Vec::new();
        for &[t, h, w] in grids {
            for _ in 0..t {
                for bh in 0..h / m {
                    for bw in 0..w / m {
                        for mh in 0..m {
                            for mw in 0..m {
                                let (r, c) = ((bh * m + mh) as f32, (bw * m + mw) as f32);
                                let half: Vec<f32> =
                                    inv_freq.iter().map(|f| r * f).chain(inv_freq.iter().map(|f| c * f)).collect();
                                angles.extend_from_slice(&half);
                                angles.extend_from_slice(&half);
                            }
                        }
                    }
                }
            }
        }
        let n = angles.len() / self.head_dim;
        let angles = Tensor::from_vec(angles, (n, 1, self.head_dim), self.pos_embed.device())?;
        Ok((angles.cos()?, angles.sin()?))
    }
}

/// `torch.linspace(0, end, steps)` in f32, including its two-sided evaluation (the second
/// half counts back from `end`), so interpolation weights match the reference bit for bit.
fn linspace(end: f32, steps: usize) -> Vec<f32> {
    if steps <= 1 {
        return vec![0.0; steps];
    }
    let step = end / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps).map(|i| if i < half { i as f32 * step } else { end - step * (steps - 1 - i) as f32 }).collect()
}

/// Groups consecutive frames with the same number of patches.
fn frame_runs(grids: &[Grid]) -> Vec<FrameRun> {
    let mut runs: Vec<FrameRun> = Vec::new();
    let mut start = 0;
    for &[t, h, w] in grids {
        let len = h * w;
        for _ in 0..t {
            match runs.last_mut() {
                Some(r) if r.len == len && r.frames < MAX_RUN_FRAMES => r.frames += 1,
                _ => runs.push(FrameRun { start, frames: 1, len }),
            }
            start += len;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_torch_endpoints_and_runs_group_frames() {
        assert_eq!(linspace(47.0, 1), vec![0.0]);
        let v = linspace(47.0, 5);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[4], 47.0);
        assert!((v[2] - 23.5).abs() < 1e-6);
        let runs = frame_runs(&[[1, 4, 6], [1, 4, 6], [1, 2, 2], [2, 2, 2]]);
        let got: Vec<_> = runs.iter().map(|r| (r.start, r.frames, r.len)).collect();
        assert_eq!(got, vec![(0, 2, 24), (48, 3, 4)]);
    }
}
