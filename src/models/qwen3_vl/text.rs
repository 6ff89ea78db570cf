//! The Qwen3-VL decoder: a Qwen3 transformer (GQA attention with per-head q/k RMSNorm,
//! SwiGLU MLP) with interleaved multimodal rotary positions and DeepStack injection of
//! visual features after the first layers. No state lives in the model: key/value caching
//! for generation goes through a [`KvCache`] that the caller owns.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Activation, Embedding, Linear, VarBuilder, embedding, linear_b, linear_no_bias};

use super::config::TextConfig;
use super::nn::{Mode, Norm, rope, softmax_last};

/// Queries attended to at once (bounds the score matrix of long prompts).
const QUERY_BLOCK: usize = 512;

/// Position of one token on the (time, height, width) axes. Text tokens have three equal
/// coordinates; image tokens share the time coordinate and spread over height and width.
pub type Position = [i64; 3];

/// Keys and values of the positions seen so far, per layer, for incremental decoding.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map(|(k, _)| k.dim(2).unwrap_or(0)).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A cache holding the given batch rows (`rows` are u32 indices, repeats allowed): one
    /// prompt prefilled once can seed several sampled continuations.
    pub fn select_rows(&self, rows: &Tensor) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((k.index_select(rows, 0)?, v.index_select(rows, 0)?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    fn slot(&mut self, layer: usize) -> &mut Option<(Tensor, Tensor)> {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        &mut self.layers[layer]
    }
}

/// Interleaved M-RoPE: rotary frequency `j` turns with the height coordinate when
/// `j % 3 == 1` (within the height section), with the width coordinate when `j % 3 == 2`
/// (within the width section), else with time.
#[derive(Debug, Clone)]
pub struct MultimodalRotary {
    inv_freq: Vec<f32>,
    axis: Vec<usize>,
}

impl MultimodalRotary {
    pub fn new(cfg: &TextConfig) -> Self {
        let d = cfg.head_dim;
        let base = cfg.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..d).step_by(2).map(|i| 1.0 / base.powf(i as f32 / d as f32)).collect();
        let section = cfg.mrope_section();
        let axis = (0..inv_freq.len())
            .map(|j| {
                if j % 3 == 1 && j < 3 * section[1] {
                    1
                } else if j % 3 == 2 && j < 3 * section[2] {
                    2
                } else {
                    0
                }
            })
            .collect();
        Self { inv_freq, axis }
    }

    /// `cos`, `sin` of shape `(B, L, head_dim / 2)` in `dtype`.
    pub fn cos_sin(&self, positions: &[Vec<Position>], dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let b = positions.len();
        let l = positions.first().map_or(0, |p| p.len());
        let half = self.inv_freq.len();
        let mut angles = Vec::with_capacity(b * l * half);
        for row in positions {
            if row.len() != l {
                candle_core::bail!("position rows of different lengths ({} and {l})", row.len());
            }
            for p in row {
                angles.extend(self.inv_freq.iter().zip(&self.axis).map(|(f, &a)| p[a] as f32 * f));
            }
        }
        let angles = Tensor::from_vec(angles, (b, l, half), device)?;
        Ok((angles.cos()?.to_dtype(dtype)?, angles.sin()?.to_dtype(dtype)?))
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Mlp {
    fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate: linear_no_bias(h, i, vb.pp("gate_proj"))?,
            up: linear_no_bias(h, i, vb.pp("up_proj"))?,
            down: linear_no_bias(i, h, vb.pp("down_proj"))?,
            act: cfg.hidden_act,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gated = (self.gate.forward(xs)?.apply(&self.act)? * self.up.forward(xs)?)?;
        self.down.forward(&gated)
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Norm,
    k_norm: Norm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    mode: Mode,
}

impl Attention {
    fn new(cfg: &TextConfig, mode: Mode, vb: VarBuilder) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let bias = cfg.attention_bias;
        Ok(Self {
            q: linear_b(h, cfg.num_attention_heads * d, bias, vb.pp("q_proj"))?,
            k: linear_b(h, cfg.num_key_value_heads * d, bias, vb.pp("k_proj"))?,
            v: linear_b(h, cfg.num_key_value_heads * d, bias, vb.pp("v_proj"))?,
            o: linear_b(cfg.num_attention_heads * d, h, bias, vb.pp("o_proj"))?,
            q_norm: Norm::rms(d, cfg.rms_norm_eps, mode, vb.pp("q_norm"))?,
            k_norm: Norm::rms(d, cfg.rms_norm_eps, mode, vb.pp("k_norm"))?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: d,
            mode,
        })
    }

    /// `xs` `(B, L, hidden)`, `bias` `(B, 1, L, past + L)` additive in f32.
    fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        let d = self.head_dim;
        let q = self.q_norm.forward(&self.q.forward(xs)?.reshape((b, l, self.heads, d))?)?.transpose(1, 2)?;
        let k = self.k_norm.forward(&self.k.forward(xs)?.reshape((b, l, self.kv_heads, d))?)?.transpose(1, 2)?;
        let v = self.v.forward(xs)?.reshape((b, l, self.kv_heads, d))?.transpose(1, 2)?.contiguous()?;
        let q = rope(&q.contiguous()?, cos, sin, self.mode)?;
        let mut k = rope(&k.contiguous()?, cos, sin, self.mode)?;
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let k = repeat_kv(&k, self.heads / self.kv_heads)?;
        let v = repeat_kv(&v, self.heads / self.kv_heads)?;
        let scale = 1.0 / (d as f64).sqrt();
        let kt = k.t()?;
        let attend = |q: &Tensor, bias: &Tensor| -> Result<Tensor> {
            let scores = (q.matmul(&kt)? * scale)?.to_dtype(DType::F32)?.broadcast_add(bias)?;
            softmax_last(&scores, v.dtype(), self.mode)?.matmul(&v)
        };
        // Long prompts (many frames) attend in blocks of queries, so the f32 score matrix
        // stays at `QUERY_BLOCK x keys` per head.
        let out = if l <= QUERY_BLOCK {
            attend(&q, bias)?
        } else {
            let mut parts = Vec::with_capacity(l.div_ceil(QUERY_BLOCK));
            for s in (0..l).step_by(QUERY_BLOCK) {
                let n = QUERY_BLOCK.min(l - s);
                parts.push(attend(&q.narrow(2, s, n)?.contiguous()?, &bias.narrow(2, s, n)?)?);
            }
            Tensor::cat(&parts, 2)?
        };
        let out = out.transpose(1, 2)?.reshape((b, l, self.heads * d))?;
        self.o.forward(&out)
    }
}

/// Key/value heads shared by `n` query heads each: `(B, Hkv, L, D)` -> `(B, Hkv * n, L, D)`.
fn repeat_kv(xs: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(xs.clone());
    }
    let (b, h, l, d) = xs.dims4()?;
    xs.unsqueeze(2)?.expand((b, h, n, l, d))?.reshape((b, h * n, l, d))
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    attn: Attention,
    mlp: Mlp,
    input_norm: Norm,
    post_attn_norm: Norm,
}

impl DecoderLayer {
    fn new(cfg: &TextConfig, mode: Mode, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attn: Attention::new(cfg, mode, vb.pp("self_attn"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
            input_norm: Norm::rms(cfg.hidden_size, cfg.rms_norm_eps, mode, vb.pp("input_layernorm"))?,
            post_attn_norm: Norm::rms(cfg.hidden_size, cfg.rms_norm_eps, mode, vb.pp("post_attention_layernorm"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let xs = (xs + self.attn.forward(&self.input_norm.forward(xs)?, cos, sin, bias, cache)?)?;
        &xs + self.mlp.forward(&self.post_attn_norm.forward(&xs)?)?
    }
}

/// Visual features to add after the first decoder layers: `positions` are flat
/// `b * L + l` indices (u32) of the image tokens, `features[i]` is added after layer `i`.
pub struct DeepStack<'a> {
    pub positions: &'a Tensor,
    pub features: &'a [Tensor],
}

/// The decoder with its token embedding and output head.
#[derive(Debug, Clone)]
pub struct TextModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: Norm,
    lm_head: Linear,
    pub rotary: MultimodalRotary,
}

impl TextModel {
    /// `vb` at the checkpoint root (`model.language_model.*`, `lm_head.*`).
    pub fn new(cfg: &TextConfig, tied: bool, mode: Mode, vb: VarBuilder) -> Result<Self> {
        let vb_m = vb.pp("model").pp("language_model");
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, vb_m.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, mode, vb_m.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = Norm::rms(cfg.hidden_size, cfg.rms_norm_eps, mode, vb_m.pp("norm"))?;
        let lm_head = if tied {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            linear_no_bias(cfg.hidden_size, cfg.vocab_size, vb.pp("lm_head"))?
        };
        Ok(Self { embed_tokens, layers, norm, lm_head, rotary: MultimodalRotary::new(cfg) })
    }

    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.embeddings().dtype()
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Final-norm hidden states `(B, L, hidden)` for input embeddings `(B, L, hidden)`.
    pub fn forward(
        &self,
        embeds: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        deepstack: Option<&DeepStack<'_>>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, l, h) = embeds.dims3()?;
        let mut xs = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| c.slot(i));
            xs = layer.forward(&xs, cos, sin, bias, slot)?;
            if let Some(ds) = deepstack
                && let Some(feat) = ds.features.get(i)
            {
                let flat = xs.reshape((b * l, h))?;
                xs = flat.index_add(ds.positions, &feat.to_dtype(flat.dtype())?, 0)?.reshape((b, l, h))?;
            }
        }
        self.norm.forward(&xs)
    }

    /// Logits in the model dtype for hidden states of any leading shape.
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}
