//! Fused CPU kernels (f32, contiguous) of the differentiable ops in [`super`]: each forward and
//! each backward is one pass over its rows, split over the rayon pool, with a single output
//! allocation. candle's composite ops need one allocation and one single-threaded pass per
//! elementary step; on a LoRA training step that was most of the time outside matmuls.
//!
//! The forward ops are candle custom ops whose `bwd` calls the matching gradient kernel, so
//! they sit in the autograd graph like any other op. Frozen inputs (norm gains, attention
//! biases) get no gradient.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

type Result<T> = candle_core::Result<T>;

/// Elements handled per rayon task (keeps tiny rows from being scheduled one by one).
const TASK_ELEMS: usize = 1 << 14;

/// Rows per rayon task for rows of `width` elements.
fn rows_per_task(width: usize) -> usize {
    (TASK_ELEMS / width.max(1)).max(1)
}

/// Fills `out` row by row in parallel: `f(row, out_row, input_rows)` for rows of `width`
/// elements (the last row may be shorter, for elementwise ops split into blocks).
fn par_rows<const N: usize>(
    out: &mut [f32],
    width: usize,
    ins: [&[f32]; N],
    f: impl Fn(usize, &mut [f32], [&[f32]; N]) + Sync,
) {
    let rows = rows_per_task(width);
    out.par_chunks_mut(rows * width)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (k, row) in chunk.chunks_mut(width).enumerate() {
                let r = task * rows + k;
                let at = r * width;
                f(r, row, ins.map(|x| &x[at..at + row.len()]));
            }
        });
}

/// The f32 data of a contiguous CPU tensor.
fn data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        return Err(candle_core::Error::Msg(format!(
            "{op}: the CPU kernel takes f32, got {:?}",
            candle_core::backend::BackendStorage::dtype(s)
        )));
    };
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    Ok(&v[a..b])
}

/// Width of the last dimension (1 for a scalar).
fn width(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1)
}

fn check_same(op: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(candle_core::Error::Msg(format!(
            "{op}: shapes {:?} and {:?} differ",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}

/// `1 / sqrt(mean(x^2) + eps)` of one row.
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f32 = x.iter().map(|v| v * v).sum();
    1.0 / (ss / x.len() as f32 + eps).sqrt()
}

/// RMSNorm with a frozen gain: `apply_op2(x, w)`, `x [.., d]`, `w [d]`.
pub(super) struct RmsNorm {
    pub eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, "rms-norm")?;
        let w = data(s2, l2, "rms-norm")?;
        let d = width(l1);
        if w.len() != d {
            return Err(candle_core::Error::Msg(format!(
                "rms-norm: gain of {} for rows of {d}",
                w.len()
            )));
        }
        let mut y = vec![0f32; x.len()];
        par_rows(&mut y, d, [x], |_, yr, [xr]| {
            let r = inv_rms(xr, self.eps);
            for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
                *o = v * r * g;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx =
            x.detach()
                .apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormGrad { eps: self.eps })?;
        Ok((Some(gx), None))
    }
}

/// Input gradient of [`RmsNorm`]: `(x, w, g) -> r*g*w - x * r^3 * <g*w, x> / d`.
struct RmsNormGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-grad-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_same("rms-norm-grad", l1, l3)?;
        let x = data(s1, l1, "rms-norm-grad")?;
        let w = data(s2, l2, "rms-norm-grad")?;
        let g = data(s3, l3, "rms-norm-grad")?;
        let d = width(l1);
        let mut gx = vec![0f32; x.len()];
        par_rows(&mut gx, d, [x, g], |_, or, [xr, gr]| {
            let r = inv_rms(xr, self.eps);
            let dot: f32 = gr.iter().zip(w).zip(xr).map(|((g, w), x)| g * w * x).sum();
            let c = r * r * r * dot / d as f32;
            for (((o, &gv), &wv), &xv) in or.iter_mut().zip(gr).zip(w).zip(xr) {
                *o = r * gv * wv - xv * c;
            }
        });
        Ok((CpuStorage::F32(gx), l1.shape().clone()))
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// SwiGLU gate `silu(gate) * up`: `apply_op2(gate, up)`.
pub(super) struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_same("silu-mul", l1, l2)?;
        let a = data(s1, l1, "silu-mul")?;
        let b = data(s2, l2, "silu-mul")?;
        let mut y = vec![0f32; a.len()];
        par_rows(&mut y, TASK_ELEMS, [a, b], |_, yr, [ar, br]| {
            for ((o, &g), &u) in yr.iter_mut().zip(ar).zip(br) {
                *o = g * sigmoid(g) * u;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both =
            gate.detach()
                .apply_op3_no_bwd(&up.detach(), &grad.contiguous()?, &SiluMulGrad)?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// Gradients of [`SiluMul`], stacked `[2, ..]`: `g * up * silu'(gate)` and `g * silu(gate)`.
struct SiluMulGrad;

impl CustomOp3 for SiluMulGrad {
    fn name(&self) -> &'static str {
        "silu-mul-grad-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_same("silu-mul-grad", l1, l2)?;
        check_same("silu-mul-grad", l1, l3)?;
        let a = data(s1, l1, "silu-mul-grad")?;
        let b = data(s2, l2, "silu-mul-grad")?;
        let g = data(s3, l3, "silu-mul-grad")?;
        let n = a.len();
        let mut out = vec![0f32; 2 * n];
        let (ga, gb) = out.split_at_mut(n);
        ga.par_chunks_mut(TASK_ELEMS)
            .zip(gb.par_chunks_mut(TASK_ELEMS))
            .zip(
                a.par_chunks(TASK_ELEMS)
                    .zip(b.par_chunks(TASK_ELEMS))
                    .zip(g.par_chunks(TASK_ELEMS)),
            )
            .for_each(|((gac, gbc), ((ac, bc), gc))| {
                for i in 0..ac.len() {
                    let s = sigmoid(ac[i]);
                    let silu = ac[i] * s;
                    // silu'(x) = s + silu * (1 - s)
                    gac[i] = gc[i] * bc[i] * (s + silu * (1.0 - s));
                    gbc[i] = gc[i] * silu;
                }
            });
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// `softmax(scale * x + bias)` over the last dimension of `x [b, h, s, keys]`, with an optional
/// additive `bias [1 or b, 1, s, keys]` (no gradient): `apply_op1(x)` or `apply_op2(x, bias)`.
pub(super) struct MaskedSoftmax {
    pub scale: f32,
}

impl MaskedSoftmax {
    fn run(&self, x: &[f32], l: &Layout, bias: Option<(&[f32], &Layout)>) -> Result<CpuStorage> {
        let keys = width(l);
        let mut y = vec![0f32; x.len()];
        // (bias data, heads, queries, one bias block per batch row?)
        let bias = match bias {
            None => None,
            Some((bv, bl)) => {
                let (xd, bd) = (l.dims(), bl.dims());
                let ok = xd.len() == 4
                    && bd.len() == 4
                    && (bd[0] == 1 || bd[0] == xd[0])
                    && bd[1] == 1
                    && bd[2] == xd[2]
                    && bd[3] == xd[3];
                if !ok {
                    return Err(candle_core::Error::Msg(format!(
                        "masked-softmax: bias {bd:?} does not broadcast to scores {xd:?}"
                    )));
                }
                Some((bv, xd[1], xd[2], bd[0] > 1))
            }
        };
        // The bias row of score row `r`.
        let bias_row = |r: usize| {
            bias.map(|(bv, h, s, per_row)| {
                let bi = if per_row { r / (h * s) } else { 0 };
                let start = (bi * s + r % s) * keys;
                &bv[start..start + keys]
            })
        };
        par_rows(&mut y, keys, [x], |r, yr, [xr]| {
            let b = bias_row(r);
            for (j, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                *o = v * self.scale + b.map_or(0.0, |b| b[j]);
            }
            softmax_in_place(yr);
        });
        Ok(CpuStorage::F32(y))
    }

    fn grad(&self, y: &Tensor, grad: &Tensor) -> Result<Tensor> {
        softmax_grad(y, &grad.contiguous()?, self.scale)
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l, "masked-softmax")?;
        Ok((self.run(x, l, None)?, l.shape().clone()))
    }

    fn bwd(&self, _: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.grad(res, grad)?))
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(s1, l1, "masked-softmax")?;
        let b = data(s2, l2, "masked-softmax")?;
        Ok((self.run(x, l1, Some((b, l2)))?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.grad(res, grad)?), None))
    }
}

/// Softmax input gradient from the output `y` and output gradient `g` (contiguous f32 of the
/// same shape): `scale * y * (g - <y, g>)` row by row.
pub(super) fn softmax_grad(y: &Tensor, g: &Tensor, scale: f32) -> Result<Tensor> {
    y.apply_op2_no_bwd(g, &SoftmaxGrad { scale })
}

/// Input gradient of [`MaskedSoftmax`] from its output: `(y, g) -> scale * y * (g - <y, g>)`.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-grad-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check_same("softmax-grad", l1, l2)?;
        let y = data(s1, l1, "softmax-grad")?;
        let g = data(s2, l2, "softmax-grad")?;
        let keys = width(l1);
        let mut gx = vec![0f32; y.len()];
        par_rows(&mut gx, keys, [y, g], |_, or, [yr, gr]| {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, &yv), &gv) in or.iter_mut().zip(yr).zip(gr) {
                *o = self.scale * yv * (gv - dot);
            }
        });
        Ok((CpuStorage::F32(gx), l1.shape().clone()))
    }
}

/// `(max, sum(exp(z - max)))` of one row.
fn row_stats(z: &[f32]) -> (f32, f32) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = z.iter().map(|&x| (x - m).exp()).sum();
    (m, s)
}

/// Mean cross-entropy of `logits [n, V]` against per-row targets (negative = ignored),
/// weighted by `weight` (`1 / n_supervised`): the loss in one pass, no log-softmax copy.
pub(super) struct CrossEntropy {
    pub targets: std::sync::Arc<Vec<i64>>,
    pub weight: f32,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let z = data(s, l, "cross-entropy")?;
        let v = width(l);
        let loss: f64 = z
            .par_chunks(v)
            .zip(self.targets.par_iter())
            .filter(|(_, &t)| t >= 0)
            .map(|(row, &t)| {
                let (m, s) = row_stats(row);
                (m + s.ln() - row[t as usize]) as f64
            })
            .sum();
        Ok((
            CpuStorage::F32(vec![(loss * self.weight as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(&self, arg: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        let op = CrossEntropyGrad {
            targets: self.targets.clone(),
            weight: self.weight * g,
        };
        Ok(Some(arg.detach().apply_op1_no_bwd(&op)?))
    }
}

/// Gradient of [`CrossEntropy`]: `(softmax(z) - onehot(t)) * weight` per supervised row.
struct CrossEntropyGrad {
    targets: std::sync::Arc<Vec<i64>>,
    weight: f32,
}

impl CustomOp1 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad-cpu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let z = data(s, l, "cross-entropy-grad")?;
        let v = width(l);
        let mut out = vec![0f32; z.len()];
        let w = self.weight;
        out.par_chunks_mut(v)
            .zip(z.par_chunks(v))
            .zip(self.targets.par_iter())
            .filter(|(_, &t)| t >= 0)
            .for_each(|((dst, row), &t)| {
                let (m, s) = row_stats(row);
                let scale = w / s;
                for (d, &x) in dst.iter_mut().zip(row) {
                    *d = (x - m).exp() * scale;
                }
                dst[t as usize] -= w;
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Batched f32 matmul `[.., m, k] @ [.., k, n] -> [.., m, n]` (same leading dims), the batch
/// elements spread over the rayon pool, each one single-threaded gemm. candle runs a batched
/// matmul one element after another, each split over the threads: for attention's many small
/// products (a head's 128 x 64 by 64 x 128) that was slower on two threads than on one.
/// Either operand may be a transposed view (any row/column strides).
pub(super) struct BatchedMatmul;

/// Row stride, column stride and per-batch offsets of one operand.
fn batch_layout(l: &Layout) -> Result<(isize, isize, Vec<usize>)> {
    let dims = l.dims();
    let st = l.stride();
    let r = dims.len();
    if r < 2 {
        return Err(candle_core::Error::Msg("batched matmul: rank < 2".into()));
    }
    let lead = &dims[..r - 2];
    let count: usize = lead.iter().product();
    let mut offsets = Vec::with_capacity(count);
    let mut idx = vec![0usize; lead.len()];
    for _ in 0..count {
        offsets.push(l.start_offset() + idx.iter().zip(st).map(|(i, s)| i * s).sum::<usize>());
        for d in (0..lead.len()).rev() {
            idx[d] += 1;
            if idx[d] < lead[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok((st[r - 2] as isize, st[r - 1] as isize, offsets))
}

impl CustomOp2 for BatchedMatmul {
    fn name(&self) -> &'static str {
        "batched-matmul-cpu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
            return Err(candle_core::Error::Msg(
                "batched matmul: the CPU kernel takes f32".into(),
            ));
        };
        let (da, db) = (l1.dims(), l2.dims());
        let r = da.len();
        if r != db.len() || r < 2 || da[..r - 2] != db[..r - 2] || da[r - 1] != db[r - 2] {
            return Err(candle_core::Error::Msg(format!(
                "batched matmul: shapes {da:?} and {db:?} do not fit"
            )));
        }
        let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
        let (a_rs, a_cs, a_off) = batch_layout(l1)?;
        let (b_rs, b_cs, b_off) = batch_layout(l2)?;
        let mut out = vec![0f32; a_off.len() * m * n];
        if m * n > 0 {
            out.par_chunks_mut(m * n)
                .zip(a_off.par_iter().zip(b_off.par_iter()))
                .for_each(|(c, (&ao, &bo))| {
                    // SAFETY: the layouts describe valid m x k and k x n matrices inside `a`
                    // and `b` starting at these offsets (candle checked them when it built
                    // the views); `c` is an exclusive m x n row-major block.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            c.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a[ao..].as_ptr(),
                            a_cs,
                            a_rs,
                            b[bo..].as_ptr(),
                            b_cs,
                            b_rs,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        )
                    }
                });
        }
        let mut shape = da.to_vec();
        shape[r - 1] = n;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

/// Most activation rows [`matmul_t_rows`] takes: decode steps (one row per request). Larger
/// products (prompts, training) go to the blocked matmul.
pub const ROW_PRODUCT_MAX_ROWS: usize = 32;

/// The dot product of `a` and `b` summed in one fixed order (eight lanes, then the lanes and
/// the tail left to right): the same inputs give the same bits whatever the batch around them.
fn dot_fixed(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    reduce_lanes(&acc, ar, br)
}

/// The fixed final sum of [`dot_fixed`] and [`dots_fma`]: lanes pairwise, then the tail.
fn reduce_lanes(acc: &[f32; 8], ar: &[f32], br: &[f32]) -> f32 {
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// Whether [`dots_fma`] can run here.
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i] = w . xs[i]` for every row `i` of `xs` (rows of `w.len()`): [`dots_fma`] where the
/// CPU has it, else [`dot_fixed`].
fn dots(fma: bool, w: &[f32], xs: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` says the CPU has AVX2 and FMA.
        unsafe { dots_fma(w, xs, out) };
        return;
    }
    let _ = fma;
    for (o, x) in out.iter_mut().zip(xs.chunks_exact(w.len().max(1))) {
        *o = dot_fixed(w, x);
    }
}

/// `out[i] = w . xs[i]` for every row `i` of `xs` (rows of `w.len()`), with AVX2 FMA in eight
/// lanes and the fixed final sum of [`reduce_lanes`]; eight rows share each load of `w` (eight
/// independent sums keep the FMA units busy). Every output goes through the same instructions
/// whatever the number of rows.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`has_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_fma(w: &[f32], xs: &[f32], out: &mut [f32]) {
    const G: usize = 8;
    let k = w.len();
    let mut outs = out.chunks_exact_mut(G);
    let mut rows = xs.chunks_exact(G * k);
    for (o, x) in outs.by_ref().zip(rows.by_ref()) {
        let x: [&[f32]; G] = std::array::from_fn(|g| &x[g * k..(g + 1) * k]);
        o.copy_from_slice(&dots_group(w, x));
    }
    for (o, x) in outs
        .into_remainder()
        .iter_mut()
        .zip(rows.remainder().chunks_exact(k))
    {
        *o = dots_group(w, [x])[0];
    }
}

/// `w . x[g]` for `R` rows at once (see [`dots_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dots_group<const R: usize>(w: &[f32], x: [&[f32]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let k8 = w.len() / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); R];
    for c in (0..k8).step_by(8) {
        let wv = _mm256_loadu_ps(w.as_ptr().add(c));
        for (a, xr) in acc.iter_mut().zip(&x) {
            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr.as_ptr().add(c)), *a);
        }
    }
    std::array::from_fn(|g| {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[g]);
        reduce_lanes(&lanes, &w[k8..], &x[g][k8..])
    })
}

/// `x [m, k] @ W^T` for a contiguous f32 `W [n, k]`, each output one fixed-order dot product
/// ([`dots_fma`], or [`dot_fixed`] without AVX2/FMA): a row's
/// result does not depend on the other rows of `x` (continuous batching gives the same
/// answers as decoding alone) and W is read once for all rows. `None` when the tensors are not
/// contiguous f32 on the CPU or `m` is over [`ROW_PRODUCT_MAX_ROWS`].
pub fn matmul_t_rows(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (m, k) = x.dims2()?;
    let (n, wk) = w.dims2()?;
    if m > ROW_PRODUCT_MAX_ROWS
        || wk != k
        || x.dtype() != candle_core::DType::F32
        || w.dtype() != candle_core::DType::F32
        || !x.device().is_cpu()
    {
        return Ok(None);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let ws: &[f32] = match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) => &v[start..end],
        _ => return Ok(None),
    };
    let mut out_t = vec![0f32; n * m];
    let fma = has_fma();
    super::team::for_row_chunks(&mut out_t, m, ws, k, |o, wrows| {
        if m == 1 {
            // One activation row: it takes the weight rows eight at a time (independent sums
            // instead of one chain per weight row); the same bits, as every product is
            // symmetric in its operands.
            dots(fma, &xs, wrows, o);
            return;
        }
        for (orow, wrow) in o.chunks_mut(m).zip(wrows.chunks_exact(k)) {
            dots(fma, wrow, &xs, orow);
        }
    });
    drop(storage);
    let out = Tensor::from_vec(out_t, (n, m), x.device())?;
    Ok(Some(out.t()?.contiguous()?))
}

/// Multiply-adds below which [`step_attention`] stays on the calling thread.
const STEP_ATTENTION_PARALLEL_MIN: usize = 1 << 16;

/// One decoding step's attention in f32 on the CPU: queries `q [b, nh, 1, hd]`, keys and
/// values `[b, nkv, t, hd]` (views of the KV cache: the last two dimensions contiguous), no
/// mask; returns `[b, nh, 1, hd]`. Per (row, query head): the scores are [`dots_fma`]'s
/// fixed-order dot products, the softmax is [`MaskedSoftmax`]'s, and the output sums the
/// value rows in key order, so a row's result does not depend on the batch. `None` when the
/// tensors are not laid out so. (candle's batched matmul took a third of SmolLM2's decode
/// time at 1,500 cached positions: three query rows against a long key matrix.)
pub fn step_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Option<Tensor>> {
    let (b, nh, s, hd) = q.dims4()?;
    let (kb, nkv, t, khd) = k.dims4()?;
    if s != 1
        || kb != b
        || khd != hd
        || v.dims() != k.dims()
        || nkv == 0
        || !nh.is_multiple_of(nkv)
        || !q.device().is_cpu()
    {
        return Ok(None);
    }
    let q = q.contiguous()?;
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    use candle_core::Storage::Cpu;
    let (Cpu(CpuStorage::F32(qd)), Cpu(CpuStorage::F32(kd)), Cpu(CpuStorage::F32(vd))) =
        (&*qs, &*ks, &*vs)
    else {
        return Ok(None);
    };
    // Row-major keys within one (row, head): strides [.., .., hd, 1].
    let rows_contiguous = |l: &Layout| l.stride()[2] == hd && l.stride()[3] == 1;
    if !rows_contiguous(kl) || !rows_contiguous(vl) || kl.stride() != vl.stride() {
        return Ok(None);
    }
    let (qd, ks, vs) = (&qd[ql.start_offset()..], kl.stride(), vl.stride());
    let (k0, v0) = (kl.start_offset(), vl.start_offset());
    let group = nh / nkv;
    let fma = has_fma();
    let mut out = vec![0f32; b * nh * hd];
    let unit = |(i, o): (usize, &mut [f32])| {
        let (r, h) = (i / nh, i % nh);
        let kvh = h / group;
        let ko = k0 + r * ks[0] + kvh * ks[1];
        let vo = v0 + r * vs[0] + kvh * vs[1];
        let (keys, values) = (&kd[ko..ko + t * hd], &vd[vo..vo + t * hd]);
        let mut p = vec![0f32; t];
        dots(fma, &qd[i * hd..(i + 1) * hd], keys, &mut p);
        for v in p.iter_mut() {
            *v *= scale;
        }
        softmax_in_place(&mut p);
        weighted_rows(fma, &p, values, o);
    };
    if b * nh * t * hd < STEP_ATTENTION_PARALLEL_MIN {
        out.chunks_mut(hd).enumerate().for_each(unit);
    } else {
        super::team::for_chunks_mut(&mut out, hd, |i, o| unit((i, o)));
    }
    drop((qs, ks, vs));
    Ok(Some(Tensor::from_vec(out, (b, nh, 1, hd), q.device())?))
}

/// `softmax(x)` in place over scores already scaled (and masked): the maximum subtracted,
/// exponentials summed left to right.
fn softmax_in_place(x: &mut [f32]) {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `out = sum_t p[t] * rows[t]` (rows of `out.len()`), each element summed in key order
/// ([`weighted_rows_fma`] where the CPU has it).
fn weighted_rows(fma: bool, p: &[f32], rows: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` says the CPU has AVX2 and FMA.
        unsafe { weighted_rows_fma(p, rows, out) };
        return;
    }
    let _ = fma;
    let width = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        *o = weighted_column(p, rows, width, c);
    }
}

/// Column `c` of [`weighted_rows`] (rows of `width`): `sum_t p[t] * rows[t][c]` in key order,
/// one FMA at a time.
fn weighted_column(p: &[f32], rows: &[f32], width: usize, c: usize) -> f32 {
    p.iter()
        .zip(rows.chunks_exact(width))
        .fold(0f32, |a, (&pt, row)| pt.mul_add(row[c], a))
}

/// `out = sum_t p[t] * rows[t]` (rows of `out.len()`), each element summed in key order with
/// FMA. Columns go in blocks of up to 64 (eight 8-lane accumulators, independent of each
/// other), each block one pass over the keys.
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`has_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_rows_fma(p: &[f32], rows: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let hd = out.len();
    let h8 = hd / LANES * LANES;
    let mut c0 = 0;
    while c0 < h8 {
        let width = (h8 - c0).min(8 * LANES) / LANES;
        let mut acc = [_mm256_setzero_ps(); 8];
        for (&pt, row) in p.iter().zip(rows.chunks_exact(hd)) {
            let pv = _mm256_set1_ps(pt);
            let src = row.as_ptr().add(c0);
            for (l, a) in acc.iter_mut().enumerate().take(width) {
                *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(src.add(l * LANES)), *a);
            }
        }
        for (l, a) in acc.iter().enumerate().take(width) {
            _mm256_storeu_ps(out.as_mut_ptr().add(c0 + l * LANES), *a);
        }
        c0 += width * LANES;
    }
    for (c, o) in out.iter_mut().enumerate().skip(h8) {
        *o = weighted_column(p, rows, hd, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn row_products_do_not_depend_on_the_other_rows() {
        // k = 581: whole lanes and a tail; n large enough to be split over threads.
        let (n, k) = (300, 581);
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (7, k), &Device::Cpu).unwrap();
        let all = matmul_t_rows(&x, &w).unwrap().unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap();
        let d: f32 = (&all - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_keepdim(1)
            .unwrap()
            .max(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!(d < 1e-3, "differs from matmul by {d}");
        for m in 1..7 {
            let part = matmul_t_rows(&x.narrow(0, 0, m).unwrap(), &w)
                .unwrap()
                .unwrap();
            let a: Vec<Vec<f32>> = part.to_vec2().unwrap();
            let b: Vec<Vec<f32>> = all.narrow(0, 0, m).unwrap().to_vec2().unwrap();
            assert_eq!(a, b, "{m} rows give other bits than 7");
        }
        let big = Tensor::zeros(
            (ROW_PRODUCT_MAX_ROWS + 1, k),
            candle_core::DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        assert!(matmul_t_rows(&big, &w).unwrap().is_none());
    }
}
