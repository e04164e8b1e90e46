//! Differentiable building blocks of the LLaMA decoder that are also fast.
//!
//! candle's fast kernels (`softmax_last_dim`, `rms_norm`, `rope`) carry no gradient, and its
//! matmul backward also differentiates frozen weights. Every op here runs candle's fast kernel
//! on *detached* inputs and then ties the result back into the autograd graph through a
//! [`CustomGrad`] node: a custom op whose forward pass is a copy of the already computed output
//! and whose backward pass is the hand-derived gradient of the input(s) only. The ops therefore
//! work on every backend candle supports (the copy is a plain storage clone), and frozen
//! weights never receive a gradient.
//!
//! On the CPU with f32 tensors the norm, gate, softmax and loss use the fused kernels of
//! [`cpu`] instead (forward and backward in one parallel pass each, no copy).

mod checkpoint;
mod cpu;
pub(crate) use cpu::matmul_t_rows;
pub mod q4k_x8;
pub mod qdot;
pub mod team;

pub use checkpoint::{checkpoint, Segment};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

use super::quant::Frozen;

type Result<T> = candle_core::Result<T>;

/// Backward function of a [`GradNode`]: `(inputs, output, grad_output) -> one optional gradient
/// per input` (inputs and output detached).
type Backward =
    Box<dyn Fn(&[Tensor], &Tensor, &Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;
/// Backward function of a one-input node: `(input, output, grad_output) -> grad_input`.
type Bwd1 = Box<dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor> + Send + Sync>;
/// Backward function of a two-input node: `(a, b, output, grad_output) -> (grad_a, grad_b)`.
type Bwd2 =
    Box<dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<(Tensor, Tensor)> + Send + Sync>;

/// Copies a storage region described by a contiguous layout.
fn copy_cpu(s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
    let (o1, o2) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("custom-grad: output must be contiguous".into()))?;
    let storage = match s {
        CpuStorage::F32(v) => CpuStorage::F32(v[o1..o2].to_vec()),
        CpuStorage::F64(v) => CpuStorage::F64(v[o1..o2].to_vec()),
        CpuStorage::BF16(v) => CpuStorage::BF16(v[o1..o2].to_vec()),
        CpuStorage::F16(v) => CpuStorage::F16(v[o1..o2].to_vec()),
        other => {
            return Err(candle_core::Error::Msg(format!(
                "custom-grad: unsupported dtype {:?}",
                other.dtype()
            )))
        }
    };
    Ok((storage, l.shape().clone()))
}

/// A gradient node: ties an output computed from detached inputs back to up to three
/// inputs. Its forward pass moves the stored output into the node's result (a copy: candle
/// wants fresh storage; the stored tensor is dropped then, so the graph does not keep the
/// output twice), so it runs on every backend; its backward pass is the hand-derived gradient.
struct GradNode {
    name: &'static str,
    /// The output until the forward pass has copied it.
    out: std::sync::Mutex<Option<Tensor>>,
    bwd: Backward,
}

impl GradNode {
    /// The stored output, taken (the forward pass runs once).
    fn take_out(&self) -> Result<Tensor> {
        self.out
            .lock()
            .ok()
            .and_then(|mut o| o.take())
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: the forward pass ran twice", self.name))
            })
    }

    fn copy_out(&self) -> Result<(CpuStorage, Shape)> {
        let out = self.take_out()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cpu(s) => copy_cpu(s, layout),
            _ => Err(candle_core::Error::Msg(format!(
                "{}: the output is not on the CPU",
                self.name
            ))),
        }
    }

    #[cfg(feature = "cuda")]
    fn copy_out_cuda(&self) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = self.take_out()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cuda(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
            _ => Err(candle_core::Error::Msg(format!(
                "{}: the output is not on the GPU",
                self.name
            ))),
        }
    }

    fn grads(
        &self,
        inputs: &[&Tensor],
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let inputs: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
        let mut g = (self.bwd)(&inputs, &res.detach(), grad)?;
        g.resize(inputs.len(), None);
        Ok(g)
    }
}

impl CustomOp1 for GradNode {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        self.copy_out()
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.copy_out_cuda()
    }

    fn bwd(&self, a: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.grads(&[a], res, grad)?.swap_remove(0))
    }
}

/// The two- and three-input nodes differ only in arity: one macro writes both impls.
macro_rules! grad_node_op {
    ($op:ident, $(($x:ident, $layout:ident)),+) => {
        impl $op for GradNode {
            fn name(&self) -> &'static str {
                self.name
            }

            fn cpu_fwd(&self, $($x: &CpuStorage, $layout: &Layout),+) -> Result<(CpuStorage, Shape)> {
                self.copy_out()
            }

            #[cfg(feature = "cuda")]
            fn cuda_fwd(
                &self,
                $($x: &candle_core::CudaStorage, $layout: &Layout),+
            ) -> Result<(candle_core::CudaStorage, Shape)> {
                self.copy_out_cuda()
            }

            fn bwd(
                &self,
                $($x: &Tensor,)+
                res: &Tensor,
                grad: &Tensor,
            ) -> Result<($(grad_node_op!(@grad $x)),+)> {
                let mut g = self.grads(&[$($x),+], res, grad)?.into_iter();
                Ok(($(grad_node_op!(@next g $x)),+))
            }
        }
    };
    (@grad $x:ident) => { Option<Tensor> };
    (@next $g:ident $x:ident) => { $g.next().flatten() };
}

grad_node_op!(CustomOp2, (_a, _la), (_b, _lb));
grad_node_op!(CustomOp3, (_a, _la), (_b, _lb), (_c, _lc));

/// Ties `output` (computed from the detached `inputs`, one to three of them) back to them
/// with the given backward. When no input tracks a gradient the output is returned as is.
fn grad_node(
    inputs: &[&Tensor],
    output: Tensor,
    name: &'static str,
    bwd: Backward,
) -> Result<Tensor> {
    if !inputs.iter().any(|t| t.track_op()) {
        return Ok(output);
    }
    let node = GradNode {
        name,
        out: std::sync::Mutex::new(Some(output.detach().contiguous()?)),
        bwd,
    };
    match inputs {
        [a] => a.apply_op1(node),
        [a, b] => a.apply_op2(b, node),
        [a, b, c] => a.apply_op3(b, c, node),
        _ => Err(candle_core::Error::Msg(format!(
            "{name}: a gradient node takes one to three inputs, not {}",
            inputs.len()
        ))),
    }
}

/// [`grad_node`] for one input.
fn with_grad(input: &Tensor, output: Tensor, name: &'static str, bwd: Bwd1) -> Result<Tensor> {
    grad_node(
        &[input],
        output,
        name,
        Box::new(move |x, y, g| Ok(vec![Some(bwd(&x[0], y, g)?)])),
    )
}

/// [`grad_node`] for two inputs, both differentiable.
fn with_grad2(
    a: &Tensor,
    b: &Tensor,
    output: Tensor,
    name: &'static str,
    bwd: Bwd2,
) -> Result<Tensor> {
    grad_node(
        &[a, b],
        output,
        name,
        Box::new(move |x, y, g| {
            let (ga, gb) = bwd(&x[0], &x[1], y, g)?;
            Ok(vec![Some(ga), Some(gb)])
        }),
    )
}

/// Whether all tensors are f32 on the CPU (the fused kernels of [`cpu`] apply).
fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// `x @ w^T` for a frozen weight `w [out, in]` (dense or quantized) and `x [.., in]`: the
/// backward pass computes the gradient of `x` only (one matmul), never the weight's.
pub fn linear_frozen(x: &Tensor, w: &Frozen) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims
        .last()
        .ok_or_else(|| candle_core::Error::Msg("linear: scalar input".into()))?;
    let rows = x.elem_count() / inp.max(1);
    let (out, w_in) = w
        .dims2()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    if w_in != inp {
        return Err(candle_core::Error::Msg(format!(
            "linear: input width {inp} does not match weight [{out}, {w_in}]"
        )));
    }
    let x2 = x.reshape((rows, inp))?;
    let y = w.forward(&x2.detach())?;
    let w_for_bwd = w.clone();
    let y = with_grad(
        &x2,
        y,
        "linear-frozen",
        Box::new(move |_, _, g| w_for_bwd.grad_input(g)),
    )?;
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = out;
    }
    y.reshape(out_dims)
}

/// `x [m, k] @ w^T` for `w [n, k]`: decode-sized products on the CPU with a fixed summation
/// order per output ([`matmul_t_rows`]: a row's result does not depend on the batch), the
/// rest with candle's matmul.
pub(crate) fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    match matmul_t_rows(x, w)? {
        Some(y) => Ok(y),
        None => x.matmul(&w.t()?),
    }
}

/// A frozen linear layer with a LoRA adapter, as one gradient node:
/// `x @ w^T + scale * ((x * mask) @ a^T) @ b^T` for `x [.., in]`, a frozen `w [out, in]`,
/// `a [r, in]`, `b [out, r]` and an optional dropout mask shaped like `x` (already scaled by
/// `1 / (1 - p)`). The backward pass gives `x`, `a` and `b` their gradients in five matmuls
/// and never differentiates `w` or the mask.
///
/// Mixed precision: the base product runs in `x`'s dtype (the model's: f32, bf16 or f16); the
/// adapter path runs in the adapters' dtype (f32 for training, as PEFT keeps LoRA weights) and
/// is added back in `x`'s dtype; `a` and `b` get their gradients in their own dtype.
pub fn lora_linear(
    x: &Tensor,
    w: &Frozen,
    a: &Tensor,
    b: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let in_dims = x.dims().to_vec();
    let inp = *in_dims
        .last()
        .ok_or_else(|| candle_core::Error::Msg("lora-linear: scalar input".into()))?;
    let rows = x.elem_count() / inp.max(1);
    let (out, w_in) = w
        .dims2()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let (r, a_in) = a.dims2()?;
    if w_in != inp || a_in != inp || b.dims2()? != (out, r) {
        return Err(candle_core::Error::Msg(format!(
            "lora-linear: input width {inp}, weight [{out}, {w_in}], lora A {:?}, lora B {:?} do not fit",
            a.dims(),
            b.dims()
        )));
    }
    let (xdt, adt) = (x.dtype(), a.dtype());
    let xd = x.detach().reshape((rows, inp))?;
    let mask = mask
        .map(|m| m.detach().reshape((rows, inp))?.to_dtype(adt))
        .transpose()?;
    let xa = xd.to_dtype(adt)?;
    let xm = match &mask {
        Some(m) => (&xa * m)?,
        None => xa,
    };
    let hs = matmul_t(&xm, &a.detach())?.affine(scale, 0.0)?;
    let lora = matmul_t(&hs, &b.detach())?.to_dtype(xdt)?;
    let y = (w.forward(&xd)? + lora)?;
    let mut out_dims = in_dims.clone();
    if let Some(last) = out_dims.last_mut() {
        *last = out;
    }
    let y = y.reshape(out_dims)?;
    let needs = [x.track_op(), a.track_op(), b.track_op()];
    let w = w.clone();
    grad_node(
        &[x, a, b],
        y,
        "lora-linear",
        Box::new(move |ins, _, g| {
            let g = g.reshape((rows, out))?;
            let ga_dt = g.to_dtype(adt)?;
            let gb = match needs[2] {
                true => Some(ga_dt.t()?.matmul(&hs)?),
                false => None,
            };
            let ts = match needs[0] || needs[1] {
                true => Some(ga_dt.matmul(&ins[2])?.affine(scale, 0.0)?),
                false => None,
            };
            let ga = match (&ts, needs[1]) {
                (Some(ts), true) => Some(ts.t()?.matmul(&xm)?),
                _ => None,
            };
            let gx = match (&ts, needs[0]) {
                (Some(ts), true) => {
                    let mut l = ts.matmul(&ins[1])?;
                    if let Some(m) = &mask {
                        l = (l * m)?;
                    }
                    Some((w.grad_input(&g)? + l.to_dtype(xdt)?)?.reshape(in_dims.clone())?)
                }
                _ => None,
            };
            Ok(vec![gx, ga, gb])
        }),
    )
}

/// Head layout of one attention call: batch, sequence, query heads, key/value heads, head width.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Batch rows.
    pub b: usize,
    /// New positions per row.
    pub s: usize,
    /// Query heads.
    pub nh: usize,
    /// Key/value heads (grouped-query attention when fewer than `nh`).
    pub nkv: usize,
    /// Width of one head.
    pub hd: usize,
}

impl Heads {
    /// `[b*s, n*hd]` -> `[b, n, s, hd]` (contiguous).
    pub fn split(&self, t: &Tensor, n: usize) -> Result<Tensor> {
        t.reshape((self.b, self.s, n, self.hd))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `[b, n, s, hd]` -> `[b*s, n*hd]`.
    fn merge(&self, t: &Tensor, n: usize) -> Result<Tensor> {
        t.transpose(1, 2)?
            .contiguous()?
            .reshape((self.b * self.s, n * self.hd))
    }

    fn scale(&self) -> f64 {
        1.0 / (self.hd as f64).sqrt()
    }
}

/// Multiply-adds per batch element below which [`bmm`] leaves the work to candle: waking the
/// thread pool for a decoding step's tiny products (3 query rows per head) cost more than it
/// saved (decode 29 vs 31 tok/s on SmolLM2).
const BMM_MIN_ITEM: usize = 1 << 18;

/// Batched matmul without gradient: on the CPU in f32 each batch element is one
/// single-threaded gemm, spread over the threads ([`cpu::BatchedMatmul`]); small products and
/// other devices use candle's matmul.
fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[a, b]) && a.rank() >= 3 {
        let (m, k) = (a.dim(D::Minus2)?, a.dim(D::Minus1)?);
        if m * k * b.dim(D::Minus1)? >= BMM_MIN_ITEM {
            return a.apply_op2_no_bwd(b, &cpu::BatchedMatmul);
        }
    }
    a.matmul(b)
}

/// Scaled dot-product attention of rotated heads `qh [b, nh, s, hd]` over `kh`, `vh`
/// `[b, nkv, keys, hd]` with an additive `bias [1|b, 1, s, keys]`: returns the merged output
/// `[b*s, nh*hd]` and the probabilities `[b, nkv, (nh/nkv)*s, keys]`. Query heads sharing a
/// key/value head are stacked along the rows, so k/v are never repeated. Use it on tensors
/// that need no gradient (decoding); [`attention`] is the differentiable version.
pub fn attend(
    qh: &Tensor,
    kh: &Tensor,
    vh: &Tensor,
    bias: Option<&Tensor>,
    h: Heads,
) -> Result<(Tensor, Tensor)> {
    let keys = kh.dim(2)?;
    let rows = (h.nh / h.nkv) * h.s;
    let q = qh.reshape((h.b, h.nkv, rows, h.hd))?;
    let scores = bmm(&q, &kh.t()?)?.reshape((h.b, h.nh, h.s, keys))?;
    let p = masked_softmax(&scores, bias, h.scale())?.reshape((h.b, h.nkv, rows, keys))?;
    let o = bmm(&p, vh)?.reshape((h.b, h.nh, h.s, h.hd))?;
    Ok((h.merge(&o, h.nh)?, p))
}

/// One decoding step's attention without a mask: rotated queries `qh [b, nh, 1, hd]` over
/// cached `kh`, `vh` `[b, nkv, keys, hd]` -> `[b, nh*hd]`; in f32 on the CPU straight from the
/// cache's buffers ([`cpu::step_attention`]), elsewhere as [`attend`].
pub fn attend_step(qh: &Tensor, kh: &Tensor, vh: &Tensor, h: Heads) -> Result<Tensor> {
    if cpu_f32(&[qh, kh, vh]) {
        if let Some(o) = cpu::step_attention(qh, kh, vh, h.scale() as f32)? {
            return h.merge(&o, h.nh);
        }
    }
    Ok(attend(qh, kh, vh, None, h)?.0)
}

/// Causal self-attention for training, as one gradient node: projected `q [b*s, nh*hd]`,
/// `k`, `v [b*s, nkv*hd]` -> `[b*s, nh*hd]`, with RoPE (`cos`/`sin` as in [`rope`]) and the
/// additive `bias` of [`attend`]. The backward pass is written out (softmax, both matmuls,
/// the inverse rotation), so the whole core is one node instead of a dozen.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: Heads,
    cos: &Tensor,
    sin: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let qh = rope(&h.split(&q.detach(), h.nh)?, cos, sin)?;
    let kh = rope(&h.split(&k.detach(), h.nkv)?, cos, sin)?;
    let vh = h.split(&v.detach(), h.nkv)?;
    let (o, p) = attend(&qh, &kh, &vh, bias, h)?;
    let cos = cos.clone();
    let neg_sin = sin.neg()?;
    grad_node(
        &[q, k, v],
        o,
        "attention",
        Box::new(move |_, _, go| {
            let rows = (h.nh / h.nkv) * h.s;
            let go = h.split(go, h.nh)?.reshape((h.b, h.nkv, rows, h.hd))?;
            let gp = bmm(&go, &vh.t()?)?;
            let gv = bmm(&p.t()?, &go)?;
            let gs = softmax_grad(&p, &gp, h.scale())?;
            let gq = bmm(&gs, &kh)?.reshape((h.b, h.nh, h.s, h.hd))?;
            let gk = bmm(&gs.t()?, &qh.reshape((h.b, h.nkv, rows, h.hd))?)?;
            // RoPE is a rotation: its adjoint rotates by the opposite angle.
            let unrope = |t: &Tensor| candle_nn::rotary_emb::rope(&t.contiguous()?, &cos, &neg_sin);
            Ok(vec![
                Some(h.merge(&unrope(&gq)?, h.nh)?),
                Some(h.merge(&unrope(&gk)?, h.nkv)?),
                Some(h.merge(&gv, h.nkv)?),
            ])
        }),
    )
}

/// [`attention`] computed `block` query positions at a time, keeping no probabilities for the
/// backward pass: memory grows linearly with the sequence instead of with its square.
///
/// The forward pass runs [`attend`] on each block of queries (over all keys, with the block's
/// rows of `bias`) and keeps only the rotated `q`, `k` and `v`. The backward pass recomputes
/// each block's probabilities from them (one more `q k^T` per block, as flash attention does)
/// and accumulates the key and value gradients block by block. At most one block's scores
/// (`[b, nh, block, keys]`) exist at a time, against the whole `[b, nh, s, keys]` of
/// [`attention`], which also keeps them for the backward pass. Same results as [`attention`]
/// (the same kernels on the same rows; sums over blocks in another order).
#[allow(clippy::too_many_arguments)]
pub fn attention_chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    h: Heads,
    cos: &Tensor,
    sin: &Tensor,
    bias: Option<&Tensor>,
    block: usize,
) -> Result<Tensor> {
    let block = block.max(1);
    if block >= h.s {
        return attention(q, k, v, h, cos, sin, bias);
    }
    let qh = rope(&h.split(&q.detach(), h.nh)?, cos, sin)?;
    let kh = rope(&h.split(&k.detach(), h.nkv)?, cos, sin)?;
    let vh = h.split(&v.detach(), h.nkv)?;
    let bias = bias.cloned();
    // Query block `[start, start + len)`: its rows of q (`[b, nh, len, hd]`), of the bias, and
    // its head layout.
    let blocks: Vec<(usize, usize)> = (0..h.s)
        .step_by(block)
        .map(|start| (start, block.min(h.s - start)))
        .collect();
    let block_inputs = move |qh: &Tensor,
                             bias: Option<&Tensor>,
                             (start, len): (usize, usize)|
          -> Result<(Tensor, Option<Tensor>, Heads)> {
        let qb = qh.narrow(2, start, len)?.contiguous()?;
        let bb = bias.map(|b| b.narrow(2, start, len)).transpose()?;
        Ok((qb, bb, Heads { s: len, ..h }))
    };
    let mut outs = Vec::with_capacity(blocks.len());
    for &blk in &blocks {
        let (qb, bb, hb) = block_inputs(&qh, bias.as_ref(), blk)?;
        let (o, _) = attend(&qb, &kh, &vh, bb.as_ref(), hb)?;
        outs.push(o.reshape((h.b, blk.1, h.nh * h.hd))?);
    }
    let o = Tensor::cat(&outs, 1)?.reshape((h.b * h.s, h.nh * h.hd))?;
    drop(outs);
    let cos = cos.clone();
    let neg_sin = sin.neg()?;
    grad_node(
        &[q, k, v],
        o,
        "attention-chunked",
        Box::new(move |_, _, go| {
            let go = h.split(go, h.nh)?;
            let mut gk = kh.zeros_like()?;
            let mut gv = vh.zeros_like()?;
            let mut gqs = Vec::with_capacity(blocks.len());
            for &blk in &blocks {
                let (qb, bb, hb) = block_inputs(&qh, bias.as_ref(), blk)?;
                let (_, p) = attend(&qb, &kh, &vh, bb.as_ref(), hb)?;
                let rows = (h.nh / h.nkv) * blk.1;
                let gob = go
                    .narrow(2, blk.0, blk.1)?
                    .contiguous()?
                    .reshape((h.b, h.nkv, rows, h.hd))?;
                let gp = bmm(&gob, &vh.t()?)?;
                gv = (gv + bmm(&p.t()?, &gob)?)?;
                let gs = softmax_grad(&p, &gp, h.scale())?;
                gqs.push(bmm(&gs, &kh)?.reshape((h.b, h.nh, blk.1, h.hd))?);
                let qr = qb.reshape((h.b, h.nkv, rows, h.hd))?;
                gk = (gk + bmm(&gs.t()?, &qr)?)?;
            }
            let gq = Tensor::cat(&gqs, 2)?;
            // RoPE is a rotation: its adjoint rotates by the opposite angle.
            let unrope = |t: &Tensor| candle_nn::rotary_emb::rope(&t.contiguous()?, &cos, &neg_sin);
            Ok(vec![
                Some(h.merge(&unrope(&gq)?, h.nh)?),
                Some(h.merge(&unrope(&gk)?, h.nkv)?),
                Some(h.merge(&gv, h.nkv)?),
            ])
        }),
    )
}

/// Input gradient of a softmax from its output `y` and the output gradient `g`:
/// `scale * y * (g - <y, g>)` over the last dimension.
fn softmax_grad(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    if cpu_f32(&[y, g]) && y.dims() == g.dims() {
        return cpu::softmax_grad(&y.contiguous()?, &g.contiguous()?, scale as f32);
    }
    let dtype = y.dtype();
    let y32 = y.to_dtype(DType::F32)?;
    let g32 = g.to_dtype(DType::F32)?;
    let dot = (&y32 * &g32)?.sum_keepdim(D::Minus1)?;
    (y32 * g32.broadcast_sub(&dot)?)?
        .affine(scale, 0.0)?
        .to_dtype(dtype)
}

/// RMSNorm over the last dimension with a frozen gain `w`: `x / sqrt(mean(x^2) + eps) * w`.
/// Statistics are accumulated in f32 whatever the input dtype.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if cpu_f32(&[x, w]) {
        let op = cpu::RmsNorm { eps: eps as f32 };
        return x.contiguous()?.apply_op2(&w.contiguous()?, op);
    }
    rms_norm_generic(x, w, eps)
}

/// [`rms_norm`] from candle's kernel and tensor ops (any device and dtype).
fn rms_norm_generic(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let y = candle_nn::ops::rms_norm(&x.detach().contiguous()?, w, eps as f32)?;
    let w = w.clone();
    with_grad(
        x,
        y,
        "rms-norm",
        Box::new(move |x, _, g| {
            let dtype = x.dtype();
            let x = x.to_dtype(DType::F32)?;
            let g = g.to_dtype(DType::F32)?;
            let w = w.to_dtype(DType::F32)?;
            let d = x.dim(D::Minus1)? as f64;
            let r = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
            let gw = g.broadcast_mul(&w)?;
            let dot = (&gw * &x)?.sum_keepdim(D::Minus1)?;
            // d/dx: r * g*w - x * r^3 * <g*w, x> / d
            let coef = (r.powf(3.0)? * dot)?.affine(1.0 / d, 0.0)?;
            let gx = (gw.broadcast_mul(&r)? - x.broadcast_mul(&coef)?)?;
            gx.to_dtype(dtype)
        }),
    )
}

/// `softmax(scale * x + bias)` over the last dimension, computed in f32; `bias` (additive mask,
/// broadcast to `x`) gets no gradient. Returns the input dtype.
pub fn masked_softmax(x: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let op = cpu::MaskedSoftmax {
        scale: scale as f32,
    };
    match bias {
        None if cpu_f32(&[x]) => return x.contiguous()?.apply_op1(op),
        Some(b) if cpu_f32(&[x, b]) && bias_fits(x.dims(), b.dims()) => {
            return x.contiguous()?.apply_op2(&b.contiguous()?, op)
        }
        _ => {}
    }
    masked_softmax_generic(x, bias, scale)
}

/// Whether `bias` has the `[1 or b, 1, s, keys]` shape the CPU kernel takes for scores `x`.
fn bias_fits(x: &[usize], bias: &[usize]) -> bool {
    x.len() == 4
        && bias.len() == 4
        && (bias[0] == 1 || bias[0] == x[0])
        && bias[1] == 1
        && bias[2..] == x[2..]
}

/// [`masked_softmax`] from candle's kernel and tensor ops (any device and dtype).
fn masked_softmax_generic(x: &Tensor, bias: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let mut z = x.detach().to_dtype(DType::F32)?.affine(scale, 0.0)?;
    if let Some(bias) = bias {
        z = z.broadcast_add(&bias.to_dtype(DType::F32)?)?;
    }
    let y = candle_nn::ops::softmax_last_dim(&z)?.to_dtype(dtype)?;
    with_grad(
        x,
        y,
        "masked-softmax",
        Box::new(move |_, y, g| softmax_grad(y, g, scale)),
    )
}

/// Rotary position embedding in Hugging Face's rotate-half layout on `x [b, h, t, d]`, with
/// `cos`/`sin` of shape `[t, d/2]` or per row `[b, t, d/2]` (same dtype as `x`).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let y = candle_nn::rotary_emb::rope(&x.detach().contiguous()?, cos, sin)?;
    let cos = cos.clone();
    let neg_sin = sin.neg()?;
    // The rotation is orthogonal: its adjoint is the rotation by the opposite angle.
    with_grad(
        x,
        y,
        "rope",
        Box::new(move |_, _, g| candle_nn::rotary_emb::rope(&g.contiguous()?, &cos, &neg_sin)),
    )
}

/// SwiGLU gate: `silu(gate) * up`, differentiable in both inputs.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if cpu_f32(&[gate, up]) && gate.dims() == up.dims() {
        return gate
            .contiguous()?
            .apply_op2(&up.contiguous()?, cpu::SiluMul);
    }
    silu_mul_generic(gate, up)
}

/// [`silu_mul`] from candle's tensor ops (any device and dtype).
fn silu_mul_generic(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let y = (gate.detach().silu()? * up.detach())?;
    with_grad2(
        gate,
        up,
        y,
        "silu-mul",
        Box::new(|gate, up, _, g| {
            let s = candle_nn::ops::sigmoid(gate)?;
            let silu = (gate * &s)?;
            let g_up = (g * &silu)?;
            // silu'(x) = s * (1 + x * (1 - s)) = s + silu * (1 - s)
            let dsilu = (&s + (silu * (1.0 - &s)?)?)?;
            let g_gate = ((g * up)? * dsilu)?;
            Ok((g_gate, g_up))
        }),
    )
}

/// Mean token cross-entropy of `logits [n, V]` against `targets` (`n` entries, negative =
/// ignored, e.g. -100), accumulated in f32. Returns a scalar f32 tensor; the backward pass
/// produces `(softmax - onehot) / n_supervised` in one go, without a log-softmax copy.
/// With no supervised target the loss is 0 (and so is its gradient).
pub fn cross_entropy(logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if targets.len() != n {
        return Err(candle_core::Error::Msg(format!(
            "cross_entropy: {n} rows of logits but {} targets",
            targets.len()
        )));
    }
    if let Some(&bad) = targets.iter().find(|&&t| t >= v as i64) {
        return Err(candle_core::Error::Msg(format!(
            "cross_entropy: target {bad} is outside the vocabulary of {v}"
        )));
    }
    let supervised = targets.iter().filter(|&&t| t >= 0).count();
    let weight = if supervised == 0 {
        0.0
    } else {
        1.0 / supervised as f64
    };
    if logits.device().is_cpu() {
        let z = logits.to_dtype(DType::F32)?.contiguous()?;
        let op = cpu::CrossEntropy {
            targets: std::sync::Arc::new(targets.to_vec()),
            weight: weight as f32,
        };
        return z.apply_op1(op);
    }
    cross_entropy_tensor_ops(logits, targets, weight)
}

/// Device-agnostic cross-entropy from candle tensor ops (the non-CPU path).
fn cross_entropy_tensor_ops(logits: &Tensor, targets: &[i64], weight: f64) -> Result<Tensor> {
    let n = targets.len();
    let device = logits.device();
    let idx: Vec<u32> = targets.iter().map(|&t| t.max(0) as u32).collect();
    let mask: Vec<f32> = targets
        .iter()
        .map(|&t| if t >= 0 { weight as f32 } else { 0.0 })
        .collect();
    let idx = Tensor::from_vec(idx, (n, 1), device)?;
    let mask = Tensor::from_vec(mask, (n, 1), device)?;
    let z = logits.detach().to_dtype(DType::F32)?;
    let lse = z.log_sum_exp(D::Minus1)?.unsqueeze(1)?;
    let picked = z.gather(&idx, 1)?;
    let loss = ((lse - picked)? * &mask)?.sum_all()?;
    let dtype = logits.dtype();
    with_grad(
        logits,
        loss,
        "cross-entropy",
        Box::new(move |z, _, g| {
            let z = z.to_dtype(DType::F32)?;
            let p = candle_nn::ops::softmax_last_dim(&z)?;
            let minus_one = Tensor::full(-1f32, (idx.dim(0)?, 1), z.device())?;
            let d = p.scatter_add(&idx, &minus_one, 1)?;
            let w = mask.broadcast_mul(&g.to_dtype(DType::F32)?)?;
            d.broadcast_mul(&w)?.to_dtype(dtype)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        crate::rng::Rng::new(seed)
            .uniform(-1.0, 1.0, shape, &Device::Cpu)
            .unwrap()
    }

    pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Compares a fast op with its composite reference: outputs and input gradients of
    /// `sum(op(x) * r)` for a random `r`.
    fn check(
        xs: &[Tensor],
        fast: impl Fn(&[Tensor]) -> Result<Tensor>,
        slow: impl Fn(&[Tensor]) -> Result<Tensor>,
    ) {
        let vars: Vec<Var> = xs.iter().map(|x| Var::from_tensor(x).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let yf = fast(&ts).unwrap();
        let ys = slow(&ts).unwrap();
        assert_eq!(yf.dims(), ys.dims());
        assert!(
            max_diff(&yf, &ys) < 1e-5,
            "forward differs: {}",
            max_diff(&yf, &ys)
        );
        let r = rand(yf.dims(), 99);
        let gf = (yf * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (ys * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, t) in ts.iter().enumerate() {
            let a = gf.get(t).expect("fast op gave no gradient");
            let b = gs.get(t).expect("reference gave no gradient");
            let d = max_diff(a, b);
            assert!(d < 1e-5, "gradient of input {i} differs by {d}");
        }
    }

    #[test]
    fn rms_norm_matches_composite() {
        let w = (rand(&[16], 2) + 1.0).unwrap();
        let slow = |x: &[Tensor]| {
            let r = (x[0].sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?;
            x[0].broadcast_div(&r)?.broadcast_mul(&w)
        };
        check(&[rand(&[3, 5, 16], 1)], |x| rms_norm(&x[0], &w, 1e-5), slow);
        check(
            &[rand(&[3, 5, 16], 1)],
            |x| rms_norm_generic(&x[0], &w, 1e-5),
            slow,
        );
    }

    #[test]
    fn masked_softmax_matches_composite() {
        let mut bias = vec![0f32; 2 * 4 * 6];
        for (i, b) in bias.iter_mut().enumerate() {
            if i % 5 == 3 {
                *b = -1e30;
            }
        }
        let bias = Tensor::from_vec(bias, (2, 1, 4, 6), &Device::Cpu).unwrap();
        let slow = |x: &[Tensor], bias: &Tensor| {
            candle_nn::ops::softmax(&(x[0].affine(0.5, 0.0)?.broadcast_add(bias))?, D::Minus1)
        };
        let x = rand(&[2, 3, 4, 6], 3);
        check(
            std::slice::from_ref(&x),
            |x| masked_softmax(&x[0], Some(&bias), 0.5),
            |x| slow(x, &bias),
        );
        check(
            std::slice::from_ref(&x),
            |x| masked_softmax_generic(&x[0], Some(&bias), 0.5),
            |x| slow(x, &bias),
        );
        // One bias row for the whole batch, and no bias.
        let shared = bias.narrow(0, 1, 1).unwrap();
        check(
            std::slice::from_ref(&x),
            |x| masked_softmax(&x[0], Some(&shared), 0.5),
            |x| slow(x, &shared),
        );
        let zero = shared.zeros_like().unwrap();
        check(
            &[x],
            |x| masked_softmax(&x[0], None, 0.5),
            |x| slow(x, &zero),
        );
    }

    #[test]
    fn rope_matches_composite() {
        let cos = rand(&[5, 4], 4);
        let sin = rand(&[5, 4], 5);
        check(
            &[rand(&[2, 3, 5, 8], 6)],
            |x| rope(&x[0], &cos, &sin),
            |x| candle_nn::rotary_emb::rope_slow(&x[0], &cos, &sin),
        );
        let cos = rand(&[2, 5, 4], 7);
        let sin = rand(&[2, 5, 4], 8);
        check(
            &[rand(&[2, 3, 5, 8], 9)],
            |x| rope(&x[0], &cos, &sin),
            |x| {
                // rotate-half by hand with per-row tables
                let cs = Tensor::cat(&[&cos, &cos], D::Minus1)?.unsqueeze(1)?;
                let sn = Tensor::cat(&[&sin, &sin], D::Minus1)?.unsqueeze(1)?;
                let x1 = x[0].narrow(D::Minus1, 0, 4)?;
                let x2 = x[0].narrow(D::Minus1, 4, 4)?;
                let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                x[0].broadcast_mul(&cs)? + rot.broadcast_mul(&sn)?
            },
        );
    }

    #[test]
    fn silu_mul_matches_composite() {
        let xs = [rand(&[4, 7], 10), rand(&[4, 7], 11)];
        check(&xs, |x| silu_mul(&x[0], &x[1]), |x| x[0].silu()? * &x[1]);
        check(
            &xs,
            |x| silu_mul_generic(&x[0], &x[1]),
            |x| x[0].silu()? * &x[1],
        );
    }

    #[test]
    fn linear_frozen_matches_matmul_and_skips_the_weight() {
        let w = rand(&[5, 6], 12);
        check(
            &[rand(&[2, 3, 6], 13)],
            |x| linear_frozen(&x[0], &Frozen::Dense(w.clone())),
            |x| x[0].broadcast_matmul(&w.t()?),
        );
        let wv = Var::from_tensor(&w).unwrap();
        let x = Var::from_tensor(&rand(&[3, 6], 14)).unwrap();
        let y = linear_frozen(x.as_tensor(), &Frozen::Dense(wv.as_tensor().clone())).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some());
        assert!(
            g.get(wv.as_tensor()).is_none(),
            "frozen weight got a gradient"
        );
    }

    #[test]
    fn lora_linear_matches_composite() {
        let w = rand(&[5, 6], 20);
        let mask = (rand(&[2, 3, 6], 21)
            .ge(-0.6)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            * 1.25)
            .unwrap();
        let composite = |x: &[Tensor], mask: Option<&Tensor>| {
            let xm = match mask {
                Some(m) => (&x[0] * m)?,
                None => x[0].clone(),
            };
            let base = x[0].broadcast_matmul(&w.t()?)?;
            let h = xm.broadcast_matmul(&x[1].t()?)?.affine(0.5, 0.0)?;
            base + h.broadcast_matmul(&x[2].t()?)?
        };
        let xs = [rand(&[2, 3, 6], 22), rand(&[4, 6], 23), rand(&[5, 4], 24)];
        for m in [None, Some(&mask)] {
            check(
                &xs,
                |x| lora_linear(&x[0], &Frozen::Dense(w.clone()), &x[1], &x[2], 0.5, m),
                |x| composite(x, m),
            );
        }
        // A frozen adapter and input: no gradient work, no node.
        let y = lora_linear(&xs[0], &Frozen::Dense(w), &xs[1], &xs[2], 0.5, None).unwrap();
        assert!(!y.track_op());
    }

    #[test]
    fn batched_matmul_matches_candle_on_views() {
        let a = rand(&[2, 3, 5, 4], 40);
        let b = rand(&[2, 3, 4, 6], 41);
        let bt = rand(&[2, 3, 6, 4], 42);
        let at = rand(&[2, 3, 4, 5], 43);
        for (x, y) in [
            (a.clone(), b.clone()),
            (a.clone(), bt.t().unwrap()),
            (at.t().unwrap(), b.clone()),
            (at.t().unwrap(), bt.t().unwrap()),
            // A narrowed (offset, non-contiguous) batch.
            (a.narrow(1, 1, 2).unwrap(), b.narrow(1, 0, 2).unwrap()),
        ] {
            let ours = x.apply_op2_no_bwd(&y, &cpu::BatchedMatmul).unwrap();
            let want = x
                .contiguous()
                .unwrap()
                .matmul(&y.contiguous().unwrap())
                .unwrap();
            assert_eq!(ours.dims(), want.dims());
            assert!(max_diff(&ours, &want) < 1e-5);
        }
        assert!(a.apply_op2_no_bwd(&a, &cpu::BatchedMatmul).is_err());
    }

    #[test]
    fn attention_matches_composite() {
        // Grouped-query: 4 query heads over 2 key/value heads, width 4; one padded key.
        let h = Heads {
            b: 2,
            s: 3,
            nh: 4,
            nkv: 2,
            hd: 4,
        };
        let cos = rand(&[3, 2], 30);
        let sin = rand(&[3, 2], 31);
        let mut bias = vec![0f32; 2 * 3 * 3];
        for b in 0..2 {
            for i in 0..3 {
                for j in 0..3 {
                    if j > i || (b == 1 && j == 2) {
                        bias[(b * 3 + i) * 3 + j] = -1e30;
                    }
                }
            }
        }
        let bias = Tensor::from_vec(bias, (2, 1, 3, 3), &Device::Cpu).unwrap();
        let composite = |x: &[Tensor]| {
            let split = |t: &Tensor, n: usize| t.reshape((2, 3, n, 4))?.transpose(1, 2);
            let q = candle_nn::rotary_emb::rope_slow(&split(&x[0], 4)?.contiguous()?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_slow(&split(&x[1], 2)?.contiguous()?, &cos, &sin)?;
            let v = split(&x[2], 2)?;
            // Repeat each key/value head for its two query heads.
            let rep = |t: &Tensor| -> Result<Tensor> {
                let parts: Vec<Tensor> = (0..4)
                    .map(|i| t.narrow(1, i / 2, 1))
                    .collect::<Result<_>>()?;
                Tensor::cat(&parts, 1)?.contiguous()
            };
            let scores = (q.contiguous()?.matmul(&rep(&k)?.t()?)? * 0.5)?.broadcast_add(&bias)?;
            let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
            p.matmul(&rep(&v)?)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((6, 16))
        };
        let xs = [rand(&[6, 16], 32), rand(&[6, 8], 33), rand(&[6, 8], 34)];
        check(
            &xs,
            |x| attention(&x[0], &x[1], &x[2], h, &cos, &sin, Some(&bias)),
            composite,
        );
    }

    #[test]
    fn chunked_attention_matches_attention() {
        // Grouped-query (6 query heads over 2 key/value heads), 7 positions, causal with
        // padding in the second row; blocks that divide the sequence and blocks that do not.
        let (b, s, nh, nkv, hd) = (2, 7, 6, 2, 4);
        let h = Heads { b, s, nh, nkv, hd };
        let cos = rand(&[s, hd / 2], 40);
        let sin = rand(&[s, hd / 2], 41);
        let mut bias = vec![0f32; b * s * s];
        for r in 0..b {
            for i in 0..s {
                for j in 0..s {
                    if j > i || (r == 1 && j >= 5) {
                        bias[(r * s + i) * s + j] = -1e30;
                    }
                }
            }
        }
        let bias = Tensor::from_vec(bias, (b, 1, s, s), &Device::Cpu).unwrap();
        let xs = [
            rand(&[b * s, nh * hd], 42),
            rand(&[b * s, nkv * hd], 43),
            rand(&[b * s, nkv * hd], 44),
        ];
        for block in [1, 2, 3, 7, 16] {
            for bias in [Some(&bias), None] {
                check(
                    &xs,
                    |x| attention_chunked(&x[0], &x[1], &x[2], h, &cos, &sin, bias, block),
                    |x| attention(&x[0], &x[1], &x[2], h, &cos, &sin, bias),
                );
            }
        }
    }

    /// A decoding step's attention read straight from the cache's buffers (views with room
    /// after the filled positions, grouped query heads) equals the batched-matmul attention,
    /// and each row's result is bit for bit the same alone as in a batch.
    #[test]
    fn step_attention_matches_batched_attention() {
        let h = Heads {
            b: 3,
            s: 1,
            nh: 6,
            nkv: 2,
            hd: 20,
        };
        let keys = 37;
        let q = rand(&[h.b, h.nh, 1, h.hd], 31);
        // Buffers of 50 positions of which the first 37 are filled, as in the KV cache.
        let kbuf = rand(&[h.b, h.nkv, 50, h.hd], 32);
        let vbuf = rand(&[h.b, h.nkv, 50, h.hd], 33);
        let (k, v) = (
            kbuf.narrow(2, 0, keys).unwrap(),
            vbuf.narrow(2, 0, keys).unwrap(),
        );
        // The views go to the CPU kernel, not to the fallback.
        assert!(cpu::step_attention(&q, &k, &v, 0.5).unwrap().is_some());
        let fast = attend_step(&q, &k, &v, h).unwrap();
        let slow = attend(
            &q,
            &k.contiguous().unwrap(),
            &v.contiguous().unwrap(),
            None,
            h,
        )
        .unwrap()
        .0;
        assert_eq!(fast.dims(), slow.dims());
        let d = max_diff(&fast, &slow);
        assert!(d < 1e-5, "{d}");
        let one = Heads { b: 1, ..h };
        for r in 0..h.b {
            let alone = attend_step(
                &q.narrow(0, r, 1).unwrap(),
                &k.narrow(0, r, 1).unwrap(),
                &v.narrow(0, r, 1).unwrap(),
                one,
            )
            .unwrap();
            let in_batch = fast.narrow(0, r, 1).unwrap();
            let (a, b): (Vec<f32>, Vec<f32>) = (
                alone.flatten_all().unwrap().to_vec1().unwrap(),
                in_batch.flatten_all().unwrap().to_vec1().unwrap(),
            );
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn cross_entropy_matches_composite() {
        let targets = [3i64, -100, 0, 6, -100];
        let idx: Vec<u32> = vec![3, 0, 6];
        let rows: Vec<u32> = vec![0, 2, 3];
        check(
            &[(rand(&[5, 7], 15) * 4.0).unwrap()],
            |x| cross_entropy(&x[0], &targets),
            |x| {
                let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
                let kept = x[0].index_select(&rows, 0)?;
                let t = Tensor::new(idx.as_slice(), &Device::Cpu)?;
                candle_nn::loss::cross_entropy(&kept, &t)
            },
        );
        check(
            &[(rand(&[5, 7], 17) * 4.0).unwrap()],
            |x| cross_entropy_tensor_ops(&x[0], &targets, 1.0 / 3.0),
            |x| cross_entropy(&x[0], &targets),
        );
        let none = Var::from_tensor(&rand(&[2, 7], 16)).unwrap();
        let l = cross_entropy(none.as_tensor(), &[-100, -100]).unwrap();
        assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0);
        let err = cross_entropy(none.as_tensor(), &[7, 0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
