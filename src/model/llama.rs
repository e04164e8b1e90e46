//! The LLaMA decoder (Hugging Face's `LlamaForCausalLM`): GQA attention with rotate-half RoPE,
//! RMSNorm, SwiGLU MLP, tied or untied output head; trainable through LoRA adapters
//! ([`super::lora`]) with fast differentiable ops ([`super::ops`]); KV-cached decoding with
//! left-padded batches for generation.
//!
//! Weights are held in one dtype (f32, bf16 or f16) and computed in it; norms, softmax and the
//! loss accumulate in f32. Base weights are frozen: no gradient is ever computed for them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::config::LlamaConfig;
use super::lora::{self, LoraAdapter, LoraConfig, LORA_MODULES};
use super::ops;
use super::quant::{self, Frozen};
use super::{ModelError, Result};
use crate::rng::Rng;

/// Additive mask value of a hidden key (finite, so that a fully hidden row stays a number).
const MASKED: f32 = -1e30;

/// A frozen linear layer (no bias, `[out, in]` weight, dense or quantized) with an optional
/// LoRA adapter (kept unmerged on a quantized weight).
#[derive(Debug, Clone)]
struct Linear {
    w: Frozen,
    lora: Option<LoraAdapter>,
}

impl Linear {
    /// `x [n, in] -> [n, out]`; `dropout` is the RNG of this layer's dropout mask (training).
    fn forward(&self, x: &Tensor, dropout: Option<&mut Rng>) -> Result<Tensor> {
        let Some(l) = &self.lora else {
            return Ok(ops::linear_frozen(x, &self.w)?);
        };
        let mask = match dropout {
            Some(rng) if l.dropout > 0.0 => Some(
                rng.dropout_mask(l.dropout, x.dims(), x.device())?
                    .to_dtype(x.dtype())?,
            ),
            _ => None,
        };
        Ok(ops::lora_linear(
            x,
            &self.w,
            l.a.as_tensor(),
            l.b.as_tensor(),
            l.scale,
            mask.as_ref(),
        )?)
    }
}

/// Label of positions that carry no loss (PyTorch's `ignore_index`): prompt text, graph
/// tokens and padding.
pub const IGNORE_INDEX: i64 = -100;

/// The next-token targets of each row of `labels [b, s]` for `logits [b, s, V]`: position `t`
/// predicts `labels[t + 1]`, the last position nothing ([`IGNORE_INDEX`]).
fn shifted_targets(logits: &Tensor, labels: &Tensor) -> Result<Vec<Vec<i64>>> {
    let (b, s, _) = logits.dims3()?;
    if labels.dims() != [b, s] {
        return Err(ModelError::Config(format!(
            "labels have shape {:?}, logits {:?}",
            labels.dims(),
            logits.dims()
        )));
    }
    // On the host first: a few ids, and no integer cast kernel needed on the device.
    let labels = labels
        .to_device(&Device::Cpu)?
        .to_dtype(DType::I64)?
        .to_vec2::<i64>()?;
    Ok(labels
        .into_iter()
        .map(|row| {
            let mut t = row[1..].to_vec();
            t.push(IGNORE_INDEX);
            t
        })
        .collect())
}

/// One decoder block.
#[derive(Debug, Clone)]
struct Block {
    input_norm: Tensor,
    post_norm: Tensor,
    /// q, k, v, o, gate, up, down (the order of [`LORA_MODULES`]).
    linears: Vec<Linear>,
}

impl Block {
    /// The block on `x [b*s, d]` (layer `layer`): attention and MLP, each on the normalised
    /// input and added back; `past` holds this layer's cached keys/values (updated in place)
    /// when decoding incrementally. Dropout masks are derived from the context's seed and the
    /// layer, so a second run (a checkpointed block's recomputation) draws the same masks.
    fn forward(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &Context,
        past: Option<&mut Option<LayerKv>>,
    ) -> Result<Tensor> {
        let h = ops::rms_norm(x, &self.input_norm, ctx.eps)?;
        let x = (x + self.attention(layer, &h, ctx, past)?)?;
        let h = ops::rms_norm(&x, &self.post_norm, ctx.eps)?;
        Ok((&x + self.mlp(layer, &h, ctx)?)?)
    }

    /// Attention on normalised input `x [b*s, d]`.
    fn attention(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &Context,
        past: Option<&mut Option<LayerKv>>,
    ) -> Result<Tensor> {
        let mut rng = ctx
            .dropout_seed
            .map(|seed| Rng::derive(seed, &[layer as u64, 0]));
        let q = self.linears[0].forward(x, rng.as_mut())?;
        let k = self.linears[1].forward(x, rng.as_mut())?;
        let v = self.linears[2].forward(x, rng.as_mut())?;
        let heads = ctx.heads;
        let (cos, sin, bias) = (&ctx.cos, &ctx.sin, ctx.bias.as_ref());
        let o = match past {
            // Training and scoring: one differentiable node for the whole core (query blocks
            // on long sequences where the model says so).
            None => match ctx.attention_block {
                Some(block) if block < heads.s => {
                    ops::attention_chunked(&q, &k, &v, heads, cos, sin, bias, block)?
                }
                _ => ops::attention(&q, &k, &v, heads, cos, sin, bias)?,
            },
            // Decoding: append the new keys/values to this layer's cache.
            Some(past) => {
                let q = ops::rope(&heads.split(&q, heads.nh)?, cos, sin)?;
                // Detached: with unmerged LoRA adapters (variables) the new keys and values
                // carry a gradient graph, and a cache that kept it would keep every earlier
                // step's graph alive (memory and time growing with each token).
                let k = ops::rope(&heads.split(&k, heads.nkv)?, cos, sin)?.detach();
                let v = heads.split(&v, heads.nkv)?.detach();
                let (k, v) = match past {
                    Some(layer) => {
                        layer.push(&k, &v)?;
                        layer.filled()?
                    }
                    None => {
                        *past = Some(LayerKv::new(k.clone(), v.clone())?);
                        (k, v)
                    }
                };
                match &ctx.row_starts {
                    Some(starts) => attend_rows(&q, &k, &v, bias, heads, starts)?,
                    None => match bias {
                        None if heads.s == 1 => ops::attend_step(&q, &k, &v, heads)?,
                        _ => ops::attend(&q, &k, &v, bias, heads)?.0,
                    },
                }
            }
        };
        self.linears[3].forward(&o, rng.as_mut())
    }

    /// SwiGLU MLP on normalised input `x [b*s, d]`.
    fn mlp(&self, layer: usize, x: &Tensor, ctx: &Context) -> Result<Tensor> {
        let mut rng = ctx
            .dropout_seed
            .map(|seed| Rng::derive(seed, &[layer as u64, 1]));
        let gate = self.linears[4].forward(x, rng.as_mut())?;
        let up = self.linears[5].forward(x, rng.as_mut())?;
        self.linears[6].forward(&ops::silu_mul(&gate, &up)?, rng.as_mut())
    }

    /// The LoRA variables of the block (A and B of every adapter).
    fn lora_vars(&self) -> Vec<Var> {
        self.linears
            .iter()
            .filter_map(|l| l.lora.as_ref())
            .flat_map(|l| [l.a.clone(), l.b.clone()])
            .collect()
    }
}

/// Positional and masking inputs shared by all blocks of one forward pass. Owned (its tensors
/// are shared handles), so that a checkpointed block can run again in the backward pass.
#[derive(Debug, Clone)]
struct Context {
    heads: ops::Heads,
    eps: f64,
    cos: Tensor,
    sin: Tensor,
    /// Additive attention bias `[b or 1, 1, s, keys]` (None: no masking needed).
    bias: Option<Tensor>,
    /// Dropout seed in training mode.
    dropout_seed: Option<u64>,
    /// Decoding a batch with padding: per row, where its real keys start when they are the
    /// contiguous end of the cache (`None`: scattered, use the bias). Each row then attends
    /// over its own keys alone, so its result does not depend on the other rows.
    row_starts: Option<Vec<Option<usize>>>,
    /// Training attention in blocks of this many query positions ([`ops::attention_chunked`]).
    attention_block: Option<usize>,
}

/// Positions a layer's key/value buffers grow by: a decoding step writes its keys in place,
/// and the cache is copied once every this many steps (copying it at every step, as
/// concatenation did, took 6% of SmolLM2's decode time at 500 positions).
const KV_GROWTH: usize = 256;

/// One layer's cached keys and values: `[b, kv_heads, capacity, head_dim]` buffers whose
/// first `len` positions are filled.
#[derive(Debug)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl LayerKv {
    /// A layer cache holding exactly `k`, `v` `[b, kv_heads, t, head_dim]`.
    fn new(k: Tensor, v: Tensor) -> Result<Self> {
        let len = k.dim(2)?;
        Ok(Self {
            k: k.contiguous()?,
            v: v.contiguous()?,
            len,
        })
    }

    /// The filled positions, `[b, kv_heads, len, head_dim]` views of the buffers.
    fn filled(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(2, 0, self.len)?,
            self.v.narrow(2, 0, self.len)?,
        ))
    }

    /// Appends `k`, `v` `[b, kv_heads, s, head_dim]` (contiguous) after the filled positions,
    /// in place when they fit, else into buffers grown to the next multiple of [`KV_GROWTH`].
    fn push(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let s = k.dim(2)?;
        if self.len + s > self.k.dim(2)? {
            let cap = (self.len + s).next_multiple_of(KV_GROWTH);
            let (fk, fv) = self.filled()?;
            let grow = |t: &Tensor| -> Result<Tensor> {
                let (b, h, _, d) = t.dims4()?;
                let buf = Tensor::zeros((b, h, cap, d), t.dtype(), t.device())?;
                buf.slice_set(&t.contiguous()?, 2, 0)?;
                Ok(buf)
            };
            self.k = grow(&fk)?;
            self.v = grow(&fv)?;
        }
        self.k.slice_set(k, 2, self.len)?;
        self.v.slice_set(v, 2, self.len)?;
        self.len += s;
        Ok(())
    }
}

/// Per-layer keys and values of the tokens seen so far, for incremental decoding. Not `Clone`:
/// two caches sharing buffers would write their next positions over each other's.
#[derive(Debug)]
pub struct KvCache {
    /// Per layer, `[b, kv_heads, t, head_dim]` (None before the first step).
    kv: Vec<Option<LayerKv>>,
    /// Per row: which cached positions are real tokens (false = padding).
    real: Vec<Vec<bool>>,
    /// Per row: the position id of the next real token.
    next_pos: Vec<usize>,
}

impl KvCache {
    /// An empty cache for `batch` rows of a model with `layers` blocks.
    pub fn new(layers: usize, batch: usize) -> Self {
        Self {
            kv: std::iter::repeat_with(|| None).take(layers).collect(),
            real: vec![Vec::new(); batch],
            next_pos: vec![0; batch],
        }
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.real.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.real.len()
    }

    /// Adds the rows of `other` (a cache of the same model) after this cache's rows, for
    /// continuous batching: a request prefilled on its own joins a running batch. The shorter
    /// side is left-padded with hidden positions, so every row keeps its own positions and
    /// sees only its own tokens.
    pub fn append_rows(&mut self, other: KvCache) -> Result<()> {
        if other.kv.len() != self.kv.len() {
            return Err(ModelError::Config(format!(
                "cannot join KV caches of {} and {} layers",
                self.kv.len(),
                other.kv.len()
            )));
        }
        if self.batch() == 0 {
            *self = other;
            return Ok(());
        }
        if other.batch() == 0 {
            return Ok(());
        }
        let (mine, theirs) = (self.len(), other.len());
        let width = mine.max(theirs);
        for (slot, theirs_kv) in self.kv.iter_mut().zip(other.kv) {
            *slot = match (slot.take(), theirs_kv) {
                (Some(mine), Some(theirs)) => {
                    let ((k, v), (ok, ov)) = (mine.filled()?, theirs.filled()?);
                    Some(LayerKv::new(
                        Tensor::cat(&[&pad_left(&k, width)?, &pad_left(&ok, width)?], 0)?,
                        Tensor::cat(&[&pad_left(&v, width)?, &pad_left(&ov, width)?], 0)?,
                    )?)
                }
                (None, None) => None,
                _ => {
                    return Err(ModelError::Config(
                        "cannot join a prefilled KV cache with an empty one".into(),
                    ))
                }
            };
        }
        for row in &mut self.real {
            row.splice(0..0, std::iter::repeat_n(false, width - mine));
        }
        let mut theirs_real = other.real;
        for row in &mut theirs_real {
            row.splice(0..0, std::iter::repeat_n(false, width - theirs));
        }
        self.real.extend(theirs_real);
        self.next_pos.extend(other.next_pos);
        Ok(())
    }

    /// Keeps only the rows whose `keep` entry is true (finished requests leave the batch), then
    /// drops leading positions that no remaining row uses.
    pub fn retain_rows(&mut self, keep: &[bool]) -> Result<()> {
        if keep.len() != self.batch() {
            return Err(ModelError::Config(format!(
                "{} row flags for a KV cache of {} rows",
                keep.len(),
                self.batch()
            )));
        }
        let idx: Vec<u32> = (0..keep.len() as u32)
            .filter(|&r| keep[r as usize])
            .collect();
        let mut keep_it = keep.iter();
        self.real
            .retain(|_| keep_it.next().copied().unwrap_or(false));
        let mut keep_it = keep.iter();
        self.next_pos
            .retain(|_| keep_it.next().copied().unwrap_or(false));
        // Leading columns that are padding in every remaining row.
        let unused = (0..self.len())
            .take_while(|&c| self.real.iter().all(|row| !row[c]))
            .count();
        let unused = if idx.is_empty() { 0 } else { unused };
        for slot in &mut self.kv {
            if let Some(layer) = slot.take() {
                if idx.is_empty() {
                    continue;
                }
                let (k, v) = layer.filled()?;
                let ids = Tensor::new(idx.as_slice(), k.device())?;
                let t = k.dim(2)?;
                let keep = |x: Tensor| -> Result<Tensor> {
                    Ok(x.narrow(2, unused, t - unused)?
                        .contiguous()?
                        .index_select(&ids, 0)?)
                };
                let (k, v) = (keep(k)?, keep(v)?);
                *slot = Some(LayerKv::new(k, v)?);
            }
        }
        for row in &mut self.real {
            row.drain(..unused);
        }
        Ok(())
    }
}

/// One decoding step's attention row by row (`q [b, nh, 1, hd]`, cached `k`, `v [b, nkv, t,
/// hd]`): a row whose real keys are the contiguous end of the cache (`starts[r]`) attends over
/// exactly those, as it would alone; other rows use their row of `bias`. Returns `[b, nh*hd]`.
fn attend_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    heads: ops::Heads,
    starts: &[Option<usize>],
) -> Result<Tensor> {
    let t = k.dim(2)?;
    let one = ops::Heads { b: 1, ..heads };
    let mut outs = Vec::with_capacity(starts.len());
    for (r, start) in starts.iter().enumerate() {
        let qr = q.narrow(0, r, 1)?.contiguous()?;
        let (kr, vr) = (k.narrow(0, r, 1)?, v.narrow(0, r, 1)?);
        let o = match (start, bias) {
            (Some(a), _) => {
                let (kr, vr) = (kr.narrow(2, *a, t - a)?, vr.narrow(2, *a, t - a)?);
                ops::attend_step(&qr, &kr, &vr, one)?
            }
            (None, Some(bias)) => {
                let br = if bias.dim(0)? == starts.len() {
                    bias.narrow(0, r, 1)?
                } else {
                    bias.clone()
                };
                ops::attend(&qr, &kr.contiguous()?, &vr.contiguous()?, Some(&br), one)?.0
            }
            (None, None) => ops::attend(&qr, &kr.contiguous()?, &vr.contiguous()?, None, one)?.0,
        };
        outs.push(o);
    }
    Ok(Tensor::cat(&outs, 0)?)
}

/// `t [b, h, len, d]` left-padded with zeros to `width` positions.
fn pad_left(t: &Tensor, width: usize) -> Result<Tensor> {
    let (b, h, len, d) = t.dims4()?;
    if len >= width {
        return Ok(t.clone());
    }
    let zeros = Tensor::zeros((b, h, width - len, d), t.dtype(), t.device())?;
    Ok(Tensor::cat(&[&zeros, t], 2)?)
}

/// The LLaMA decoder with optional LoRA adapters.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    dtype: DType,
    device: Device,
    embed_tokens: Frozen,
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: Frozen,
    lora: Option<LoraConfig>,
    /// Gradient checkpointing per block (training forward passes).
    checkpointing: bool,
    /// Training attention over blocks of this many query positions (None: all at once).
    attention_block: Option<usize>,
}

/// Query positions per block of the training attention on a GPU ([`Llama::set_attention_block`]):
/// 512 rows of scores per head and block instead of the whole sequence's.
pub const GPU_ATTENTION_BLOCK: usize = 512;

/// Where [`Llama::from_parts`] takes its tensors from.
struct Sources<'a> {
    dense: &'a mut HashMap<String, Tensor>,
    quantized: &'a mut HashMap<String, QTensor>,
    quantize: Option<GgmlDType>,
    dtype: DType,
    device: &'a Device,
}

impl Sources<'_> {
    fn shape_err(key: &str, shape: &[usize], found: &[usize]) -> ModelError {
        ModelError::Shape {
            key: key.to_string(),
            expected: shape.to_vec(),
            found: found.to_vec(),
        }
    }

    /// A dense tensor in the compute dtype (dequantized if it came quantized).
    fn dense(&mut self, key: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match (self.dense.remove(key), self.quantized.remove(key)) {
            (_, Some(q)) => q.dequantize(&Device::Cpu)?,
            (Some(t), None) => t,
            (None, None) => return Err(ModelError::MissingKey(key.to_string())),
        };
        if t.dims() != shape {
            return Err(Self::shape_err(key, shape, t.dims()));
        }
        Ok(t.to_device(self.device)?
            .to_dtype(self.dtype)?
            .contiguous()?)
    }

    /// A matrix: quantized as stored, quantized now (`quantize`), or dense.
    fn frozen(&mut self, key: &str, [out, inp]: [usize; 2]) -> Result<Frozen> {
        if let Some(q) = self.quantized.get(key) {
            if q.shape().dims() != [out, inp] {
                return Err(Self::shape_err(key, &[out, inp], q.shape().dims()));
            }
            if quant::is_block_quantized(q.dtype()) {
                let q = self
                    .quantized
                    .remove(key)
                    .ok_or_else(|| ModelError::MissingKey(key.into()))?;
                return Frozen::from_qtensor(q);
            }
        }
        let w = self.dense(key, &[out, inp])?;
        let Some(ty) = self.quantize else {
            return Ok(Frozen::Dense(w));
        };
        for t in [ty, GgmlDType::Q8_0] {
            if inp.is_multiple_of(t.block_size()) {
                return Frozen::quantize(&w, t, key);
            }
        }
        Ok(Frozen::Dense(w))
    }
}

/// `[out, in]` shape of each of the seven linear layers of a block.
fn linear_shapes(cfg: &LlamaConfig) -> [(usize, usize); 7] {
    let d = cfg.hidden_size;
    let hd = cfg.head_dim();
    let q = cfg.num_attention_heads * hd;
    let kv = cfg.kv_heads() * hd;
    let f = cfg.intermediate_size;
    [(q, d), (kv, d), (kv, d), (d, q), (f, d), (f, d), (d, f)]
}

impl Llama {
    /// Builds the decoder from Hugging Face-named tensors (`model.embed_tokens.weight`,
    /// `model.layers.{i}.self_attn.q_proj.weight`, ..., `model.norm.weight`, `lm_head.weight`
    /// unless `tie_word_embeddings`). Tensors are converted to `dtype` on `device`; extra
    /// tensors (e.g. `rotary_emb.inv_freq`) are ignored.
    pub fn from_weights(
        cfg: &LlamaConfig,
        weights: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::from_parts(cfg, weights, HashMap::new(), None, dtype, device)
    }

    /// As [`Self::from_weights`], with quantized weights: `quantized` holds tensors kept in
    /// their GGML block type (from a GGUF file; they take precedence over `dense`), and
    /// `quantize` quantizes the dense matrices (the seven linear layers of each block, the
    /// embedding table and the output head) as they are taken, one at a time. A matrix whose
    /// rows are not whole blocks of that type falls back to q8_0 (blocks of 32), as llama.cpp
    /// does, or stays dense. Quantized matrices stay on the CPU; norms are dense in `dtype`.
    pub fn from_parts(
        cfg: &LlamaConfig,
        mut weights: HashMap<String, Tensor>,
        mut quantized: HashMap<String, QTensor>,
        quantize: Option<GgmlDType>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(ModelError::Config(format!(
                "unsupported compute dtype {dtype:?} (f32, bf16 or f16)"
            )));
        }
        if !device.is_cpu() && (quantize.is_some() || !quantized.is_empty()) {
            return Err(ModelError::Config(
                "quantized weights run on the CPU here: use --device cpu, or load dense weights \
                 (--quantize none) for the GPU"
                    .into(),
            ));
        }
        let mut src = Sources {
            dense: &mut weights,
            quantized: &mut quantized,
            quantize,
            dtype,
            device,
        };
        let d = cfg.hidden_size;
        let embed_tokens = src.frozen("model.embed_tokens.weight", [cfg.vocab_size, d])?;
        let shapes = linear_shapes(cfg);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut linears = Vec::with_capacity(7);
            for (m, (out, inp)) in LORA_MODULES.iter().zip(shapes) {
                let key = format!("{p}.{}.{m}.weight", lora::module_parent(m));
                let w = src.frozen(&key, [out, inp])?;
                linears.push(Linear { w, lora: None });
            }
            let input_norm = src.dense(&format!("{p}.input_layernorm.weight"), &[d])?;
            let post_norm = src.dense(&format!("{p}.post_attention_layernorm.weight"), &[d])?;
            layers.push(Block {
                input_norm,
                post_norm,
                linears,
            });
        }
        let norm = src.dense("model.norm.weight", &[d])?;
        let lm_head = if cfg.tie_word_embeddings {
            embed_tokens.clone()
        } else {
            src.frozen("lm_head.weight", [cfg.vocab_size, d])?
        };
        Ok(Self {
            cfg: cfg.clone(),
            dtype,
            device: device.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            lora: None,
            checkpointing: false,
            attention_block: (!device.is_cpu()).then_some(GPU_ATTENTION_BLOCK),
        })
    }

    /// Every base tensor under its Hugging Face name (adapters excluded): matrices as stored,
    /// norms dense; the output head only when untied.
    pub fn named_tensors(&self) -> Vec<(String, Frozen)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.clone(),
        )];
        for (i, b) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            for (m, lin) in LORA_MODULES.iter().zip(&b.linears) {
                let key = format!("{p}.{}.{m}.weight", lora::module_parent(m));
                out.push((key, lin.w.clone()));
            }
            out.push((
                format!("{p}.input_layernorm.weight"),
                Frozen::Dense(b.input_norm.clone()),
            ));
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                Frozen::Dense(b.post_norm.clone()),
            ));
        }
        out.push((
            "model.norm.weight".to_string(),
            Frozen::Dense(self.norm.clone()),
        ));
        if !self.cfg.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), self.lm_head.clone()));
        }
        out
    }

    /// How the decoder's matrices are stored: `(GGML type name or the dense dtype, count)`.
    pub fn weight_types(&self) -> Vec<(String, usize)> {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        let mats = self
            .layers
            .iter()
            .flat_map(|b| b.linears.iter().map(|l| &l.w))
            .chain([&self.embed_tokens, &self.lm_head]);
        for w in mats {
            let name = match w.quant_type() {
                Some(t) => format!("{t:?}"),
                None => format!("{:?}", self.dtype),
            };
            *counts.entry(name).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// A randomly initialised decoder (weights normal with std 0.02, norms ones), reproducible
    /// from `seed` and the same on every device: the values are drawn on the host by
    /// [`Rng`], one matrix at a time, and each is converted to `dtype` and moved to `device`
    /// as soon as it is drawn (the host never holds more than one f32 matrix). For tests,
    /// benchmarks and CPU-vs-device comparisons.
    pub fn random(cfg: &LlamaConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut rng = Rng::new(seed);
        Self::random_with(cfg, dtype, device, |shape| {
            Ok(rng
                .normal(0.0, 0.02, shape, &Device::Cpu)?
                .to_device(device)?
                .to_dtype(dtype)?)
        })
    }

    /// As [`Self::random`], with the values drawn by a GPU's own generator (cuRAND, seeded
    /// with `seed`): each matrix is made in f32 on the device and converted to `dtype` there,
    /// so a 7B-shaped model appears in seconds and never exists on the host. The values
    /// differ from [`Self::random`]'s (use that where two devices must hold the same weights).
    /// On the CPU (whose generator candle cannot seed) this is [`Self::random`].
    pub fn random_on_device(
        cfg: &LlamaConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if device.is_cpu() {
            return Self::random(cfg, seed, dtype, device);
        }
        device.set_seed(seed)?;
        Self::random_with(cfg, dtype, device, |shape| {
            Ok(Tensor::randn(0f32, 0.02, shape, device)?.to_dtype(dtype)?)
        })
    }

    /// A decoder whose matrices come from `normal` (called in a fixed order: embeddings, each
    /// block's seven linear layers, the output head when untied) and whose norms are ones.
    fn random_with(
        cfg: &LlamaConfig,
        dtype: DType,
        device: &Device,
        mut normal: impl FnMut(&[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.hidden_size;
        let mut w = HashMap::new();
        w.insert(
            "model.embed_tokens.weight".to_string(),
            normal(&[cfg.vocab_size, d])?,
        );
        let ones = Tensor::ones(d, dtype, device)?;
        for i in 0..cfg.num_hidden_layers {
            for (m, (r, c)) in LORA_MODULES.iter().zip(linear_shapes(cfg)) {
                let key = format!("model.layers.{i}.{}.{m}.weight", lora::module_parent(m));
                w.insert(key, normal(&[r, c])?);
            }
            w.insert(
                format!("model.layers.{i}.input_layernorm.weight"),
                ones.clone(),
            );
            w.insert(
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                ones.clone(),
            );
        }
        w.insert("model.norm.weight".to_string(), ones);
        if !cfg.tie_word_embeddings {
            w.insert("lm_head.weight".to_string(), normal(&[cfg.vocab_size, d])?);
        }
        Self::from_weights(cfg, w, dtype, device)
    }

    /// The hyperparameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Gradient checkpointing per decoder block in forward passes without a KV cache (training
    /// and scoring): a block keeps only its input for the backward pass, which runs the block
    /// again (same dropout masks) to get its gradients. Same loss and gradients, activation
    /// memory of one block instead of all of them, one more forward pass of compute.
    pub fn set_gradient_checkpointing(&mut self, on: bool) {
        self.checkpointing = on;
    }

    /// Training and scoring attention over blocks of `block` query positions (None: the whole
    /// sequence at once): the probabilities are recomputed in the backward pass instead of
    /// kept, so attention memory grows linearly with the sequence, not with its square (same
    /// results; [`ops::attention_chunked`]). The default is [`GPU_ATTENTION_BLOCK`] on a GPU
    /// and None on the CPU, whose fused kernels are faster on the short sequences it trains.
    pub fn set_attention_block(&mut self, block: Option<usize>) {
        self.attention_block = block.filter(|&b| b > 0);
    }

    /// The LoRA configuration of the attached adapters, if any.
    pub fn lora_config(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// Token embeddings: `ids [b, s]` (u32) -> `[b, s, d]` in the model dtype.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let ids = ids.to_dtype(DType::U32)?;
        if ids.elem_count() > 0 {
            let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
            if max >= self.cfg.vocab_size {
                return Err(ModelError::Config(format!(
                    "token id {max} is outside the vocabulary ({} ids)",
                    self.cfg.vocab_size
                )));
            }
        }
        let e = self.embed_tokens.rows(&ids.flatten_all()?, self.dtype)?;
        Ok(e.reshape((b, s, self.cfg.hidden_size))?)
    }

    /// RoPE tables `[n, head_dim/2]` for the given positions (f32 maths as transformers).
    fn rope_tables(
        &self,
        positions: &[usize],
        batch_shape: Option<(usize, usize)>,
    ) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let half = hd / 2;
        let theta = self.cfg.rope_theta as f32;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &inv {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let shape: Vec<usize> = match batch_shape {
            Some((b, s)) => vec![b, s, half],
            None => vec![positions.len(), half],
        };
        let cos = Tensor::from_vec(cos, shape.clone(), &self.device)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_vec(sin, shape, &self.device)?.to_dtype(self.dtype)?;
        Ok((cos, sin))
    }

    /// Runs all blocks and the final norm on `x [b*s, d]`. With gradient checkpointing (and no
    /// cache), each block is one [`ops::checkpoint`] node: only its input is kept for the
    /// backward pass, which runs the block again.
    fn blocks(
        &self,
        mut x: Tensor,
        ctx: &Context,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        for (i, block) in self.layers.iter().enumerate() {
            let past = cache.as_deref_mut().map(|c| &mut c.kv[i]);
            x = match past {
                None if self.checkpointing => {
                    let (b, c) = (block.clone(), ctx.clone());
                    let run: ops::Segment = std::sync::Arc::new(move |x: &Tensor| {
                        b.forward(i, x, &c, None).map_err(candle_core::Error::wrap)
                    });
                    ops::checkpoint(&x, &block.lora_vars(), run)?
                }
                past => block.forward(i, &x, ctx, past)?,
            };
        }
        Ok(ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?)
    }

    /// Head layout of a forward pass over `b` rows of `s` new positions.
    fn heads(&self, b: usize, s: usize) -> ops::Heads {
        ops::Heads {
            b,
            s,
            nh: self.cfg.num_attention_heads,
            nkv: self.cfg.kv_heads(),
            hd: self.cfg.head_dim(),
        }
    }

    fn check_embeds(&self, embeds: &Tensor) -> Result<(usize, usize)> {
        let (b, s, d) = embeds.dims3()?;
        if d != self.cfg.hidden_size {
            return Err(ModelError::Config(format!(
                "input embeddings are {d} wide, the model expects {}",
                self.cfg.hidden_size
            )));
        }
        if b == 0 || s == 0 {
            return Err(ModelError::Config("empty input batch".into()));
        }
        Ok((b, s))
    }

    /// Training/scoring forward pass: `embeds [b, s, d]` -> final hidden states `[b, s, d]`
    /// (after the last norm). `attention_mask [b, s]` marks real tokens with 1 and right padding
    /// with 0. With `train`, LoRA dropout is applied with masks derived from `dropout_seed`
    /// (the same seed gives the same masks, e.g. after resuming).
    pub fn hidden(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Tensor> {
        let (b, s) = self.check_embeds(embeds)?;
        let positions: Vec<usize> = (0..s).collect();
        let (cos, sin) = self.rope_tables(&positions, None)?;
        let real = match attention_mask {
            Some(m) => {
                if m.dims() != [b, s] {
                    return Err(ModelError::Config(format!(
                        "attention mask has shape {:?}, expected [{b}, {s}]",
                        m.dims()
                    )));
                }
                let m = m.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                let m: Vec<Vec<bool>> = m
                    .into_iter()
                    .map(|r| r.into_iter().map(|v| v > 0.5).collect())
                    .collect();
                Some(m)
            }
            None => None,
        };
        let bias = self.causal_bias(b, s, 0, real.as_deref())?;
        let ctx = Context {
            heads: self.heads(b, s),
            eps: self.cfg.rms_norm_eps,
            cos,
            sin,
            bias,
            dropout_seed: train.then_some(dropout_seed),
            row_starts: None,
            attention_block: self.attention_block,
        };
        let x = embeds
            .to_dtype(self.dtype)?
            .reshape((b * s, self.cfg.hidden_size))?;
        let h = self.blocks(x, &ctx, None)?;
        Ok(h.reshape((b, s, self.cfg.hidden_size))?)
    }

    /// Output head: hidden states `[.., d]` -> logits `[.., vocab]` (model dtype).
    pub fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(ops::linear_frozen(hidden, &self.lm_head)?)
    }

    /// Training/scoring forward pass: `embeds [b, s, d]` -> logits `[b, s, vocab]`; see
    /// [`Self::hidden`] for the mask and dropout arguments.
    pub fn forward(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Tensor> {
        self.lm_head(&self.hidden(embeds, attention_mask, train, dropout_seed)?)
    }

    /// Additive attention bias `[b, 1, s, past + s]` for queries at cache offset `past`:
    /// causal, and hiding keys whose `real` flag is false. None when nothing is hidden.
    fn causal_bias(
        &self,
        b: usize,
        s: usize,
        past: usize,
        real: Option<&[Vec<bool>]>,
    ) -> Result<Option<Tensor>> {
        let keys = past + s;
        let any_pad = real.is_some_and(|r| r.iter().any(|row| row.iter().any(|&x| !x)));
        if s == 1 && !any_pad {
            return Ok(None);
        }
        let rows = if any_pad { b } else { 1 };
        let mut bias = vec![0f32; rows * s * keys];
        for r in 0..rows {
            for i in 0..s {
                for j in 0..keys {
                    let hidden = j > past + i || (any_pad && real.is_some_and(|m| !m[r][j]));
                    if hidden {
                        bias[(r * s + i) * keys + j] = MASKED;
                    }
                }
            }
        }
        Ok(Some(Tensor::from_vec(
            bias,
            (rows, 1, s, keys),
            &self.device,
        )?))
    }

    /// Causal LM loss as transformers' `LlamaForCausalLM`: logits at position `t` predict
    /// `labels[t + 1]`; labels < 0 (e.g. [`IGNORE_INDEX`]) are ignored; mean over supervised tokens.
    /// `logits [b, s, V]`, `labels [b, s]` (i64 or u32). Returns an f32 scalar.
    pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let (b, s, v) = logits.dims3()?;
        let targets: Vec<i64> = shifted_targets(logits, labels)?.concat();
        Ok(ops::cross_entropy(&logits.reshape((b * s, v))?, &targets)?)
    }

    /// Per-row loss: for each row of `logits [b, s, V]`, the summed cross-entropy over its
    /// supervised (shifted) targets and their count, so a batched evaluation can report every
    /// example's own loss. Rows with no supervised target give `(0.0, 0)`.
    pub fn row_losses(logits: &Tensor, labels: &Tensor) -> Result<Vec<(f64, usize)>> {
        let rows = shifted_targets(logits, labels)?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, targets) in rows.iter().enumerate() {
            let n = targets.iter().filter(|&&t| t >= 0).count();
            if n == 0 {
                out.push((0.0, 0));
                continue;
            }
            let mean = ops::cross_entropy(&logits.get(r)?, targets)?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()? as f64;
            out.push((mean * n as f64, n));
        }
        Ok(out)
    }

    /// Incremental forward for generation: appends `embeds [b, s, d]` to `cache` and returns
    /// the logits of the last position of each row, `[b, vocab]` in f32. `attention_mask
    /// [b, s]` (1 real, 0 padding) allows left-padded prompts of different lengths: each row
    /// gets its own positions, and padded keys are hidden, so a row's tokens do not depend
    /// on the other rows.
    pub fn forward_cached(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        super::device::on_cpu_pool(|| self.step(embeds, attention_mask, cache))
    }

    /// [`Self::forward_cached`]'s work, on whichever thread calls it.
    fn step(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, s) = self.check_embeds(embeds)?;
        if cache.batch() != b || cache.kv.len() != self.layers.len() {
            return Err(ModelError::Config(format!(
                "KV cache is for {} rows and {} layers, input has {b} rows (model {} layers)",
                cache.batch(),
                cache.kv.len(),
                self.layers.len()
            )));
        }
        let new_real: Vec<Vec<bool>> = match attention_mask {
            Some(m) => {
                if m.dims() != [b, s] {
                    return Err(ModelError::Config(format!(
                        "attention mask has shape {:?}, expected [{b}, {s}]",
                        m.dims()
                    )));
                }
                let m = m.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                m.into_iter()
                    .map(|r| r.into_iter().map(|v| v > 0.5).collect())
                    .collect()
            }
            None => vec![vec![true; s]; b],
        };
        let past = cache.len();
        let mut positions = Vec::with_capacity(b * s);
        for (r, row) in new_real.iter().enumerate() {
            for &is_real in row {
                if is_real {
                    positions.push(cache.next_pos[r]);
                    cache.next_pos[r] += 1;
                } else {
                    positions.push(0);
                }
            }
            cache.real[r].extend_from_slice(row);
        }
        let (cos, sin) = self.rope_tables(&positions, Some((b, s)))?;
        let bias = self.causal_bias(b, s, past, Some(&cache.real))?;
        let row_starts: Option<Vec<Option<usize>>> = (s == 1 && bias.is_some()).then(|| {
            cache
                .real
                .iter()
                .map(|row| {
                    let start = row.iter().position(|&r| r)?;
                    row[start..].iter().all(|&r| r).then_some(start)
                })
                .collect()
        });
        let ctx = Context {
            heads: self.heads(b, s),
            eps: self.cfg.rms_norm_eps,
            cos,
            sin,
            bias,
            dropout_seed: None,
            row_starts,
            attention_block: None,
        };
        let x = embeds
            .detach()
            .to_dtype(self.dtype)?
            .reshape((b * s, self.cfg.hidden_size))?;
        let h = self.blocks(x, &ctx, Some(cache))?;
        let last = h
            .reshape((b, s, self.cfg.hidden_size))?
            .narrow(1, s - 1, 1)?;
        let logits = self.lm_head(&last.reshape((b, self.cfg.hidden_size))?)?;
        Ok(logits.to_dtype(DType::F32)?.detach())
    }

    /// A new empty KV cache for `batch` rows.
    pub fn new_cache(&self, batch: usize) -> KvCache {
        KvCache::new(self.layers.len(), batch)
    }

    /// Attaches fresh LoRA adapters (A Kaiming-uniform from `seed`, B zeros) to the target
    /// modules of every block, registering A and B in `varmap` under their PEFT names.
    pub fn add_lora(&mut self, cfg: &LoraConfig, varmap: &VarMap, seed: u64) -> Result<()> {
        cfg.validate()?;
        if self.lora.is_some() {
            return Err(ModelError::Config(
                "the model already has LoRA adapters".into(),
            ));
        }
        let mut rng = Rng::new(seed);
        for (i, block) in self.layers.iter_mut().enumerate() {
            for (j, m) in LORA_MODULES.iter().enumerate() {
                if cfg.targets(m) {
                    let lin = &mut block.linears[j];
                    let shape = lin.w.dims2()?;
                    // f32 adapters on any base: bf16 would round small updates away.
                    let place = (DType::F32, &self.device);
                    lin.lora = Some(lora::new_adapter(
                        cfg, i, m, shape, place, varmap, &mut rng,
                    )?);
                }
            }
        }
        self.lora = Some(cfg.clone());
        Ok(())
    }

    /// The LoRA tensors under their PEFT names (current values).
    pub fn lora_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, block) in self.layers.iter().enumerate() {
            for (j, m) in LORA_MODULES.iter().enumerate() {
                if let Some(l) = &block.linears[j].lora {
                    out.insert(lora::peft_tensor_name(i, m, "A"), l.a.as_tensor().clone());
                    out.insert(lora::peft_tensor_name(i, m, "B"), l.b.as_tensor().clone());
                }
            }
        }
        out
    }

    /// The LoRA variables (A and B of every adapter), e.g. for an optimizer.
    pub fn lora_vars(&self) -> Vec<Var> {
        self.layers.iter().flat_map(Block::lora_vars).collect()
    }

    /// Folds the adapters into the base weights (`W += scale * B A`) and drops them: same
    /// outputs, no LoRA cost at inference. Adapters on quantized weights stay unmerged
    /// (`x W^T + s (x A^T) B^T`), so the quantized base is not changed.
    pub fn merge_lora(&mut self) -> Result<()> {
        let mut unmerged = false;
        for block in &mut self.layers {
            for lin in &mut block.linears {
                let Frozen::Dense(w) = &lin.w else {
                    unmerged |= lin.lora.is_some();
                    continue;
                };
                if let Some(l) = lin.lora.take() {
                    // Detached: the adapters are variables, and a merged weight that kept their
                    // gradient graph would also keep every f32 temporary of the merge alive.
                    let ba =
                        l.b.as_tensor()
                            .detach()
                            .to_dtype(DType::F32)?
                            .matmul(&l.a.as_tensor().detach().to_dtype(DType::F32)?)?;
                    let w = (w.to_dtype(DType::F32)? + ba.affine(l.scale, 0.0)?)?;
                    lin.w = Frozen::Dense(w.to_dtype(self.dtype)?.contiguous()?);
                }
            }
        }
        if !unmerged {
            self.lora = None;
        }
        Ok(())
    }

    /// Saves the adapters as a PEFT adapter directory (`adapter_config.json` +
    /// `adapter_model.safetensors`, tensors in f32).
    pub fn save_peft(&self, dir: impl AsRef<Path>, base_model: Option<&str>) -> Result<()> {
        let dir = dir.as_ref();
        let cfg = self.lora.as_ref().ok_or_else(|| ModelError::Write {
            path: dir.to_path_buf(),
            reason: "the model has no LoRA adapters to save".into(),
        })?;
        let tensors = self
            .lora_tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        lora::write_adapter(dir, cfg, base_model, &tensors)
    }

    /// Loads a PEFT adapter directory (as saved by peft or [`Self::save_peft`]) and attaches it,
    /// registering its tensors in `varmap` as trainable variables (so training can resume).
    pub fn load_peft(&mut self, dir: impl AsRef<Path>, varmap: &VarMap) -> Result<()> {
        let dir = dir.as_ref();
        if self.lora.is_some() {
            return Err(ModelError::Config(
                "the model already has LoRA adapters".into(),
            ));
        }
        let (cfg, mut tensors) = lora::read_adapter(dir)?;
        let (_, st_path) = lora::adapter_paths(dir);
        // A mismatch almost always means an adapter trained on another base model.
        let hint = match lora::adapter_base_model(dir) {
            Some(base) => format!(
                "; the adapter was trained on `{base}` (adapter_config.json): load it on that \
                 base model (--model)"
            ),
            None => "; the adapter was trained on another base model: load it on that one".into(),
        };
        let read_err = |reason: String| ModelError::Read {
            path: st_path.clone(),
            reason: format!("{reason}{hint}"),
        };
        let mut adapters = Vec::new();
        for (i, block) in self.layers.iter().enumerate() {
            for (j, m) in LORA_MODULES.iter().enumerate() {
                if !cfg.targets(m) {
                    continue;
                }
                let (out, inp) = block.linears[j].w.dims2()?;
                let mut get = |which: &str, shape: [usize; 2]| -> Result<Tensor> {
                    let key = lora::peft_tensor_name(i, m, which);
                    let t = tensors
                        .remove(&key)
                        .ok_or_else(|| read_err(format!("missing tensor `{key}`")))?;
                    if t.dims() != shape {
                        return Err(read_err(format!(
                            "tensor `{key}` has shape {:?}, the model needs {shape:?}",
                            t.dims()
                        )));
                    }
                    // Adapters are f32 whatever the base's dtype (mixed precision).
                    Ok(t.to_device(&self.device)?
                        .to_dtype(DType::F32)?
                        .contiguous()?)
                };
                let a = get("A", [cfg.r, inp])?;
                let b = get("B", [out, cfg.r])?;
                adapters.push((i, j, a, b));
            }
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(read_err(format!(
                "unexpected tensor `{extra}` (the adapter does not match this model or config)"
            )));
        }
        for (i, j, a, b) in adapters {
            let adapter = lora::register(&cfg, i, LORA_MODULES[j], a, b, varmap)?;
            self.layers[i].linears[j].lora = Some(adapter);
        }
        self.lora = Some(cfg);
        Ok(())
    }
}
