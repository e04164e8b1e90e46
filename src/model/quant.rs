//! Frozen weight matrices, dense or quantized (GGML block types, as GGUF files store them).
//!
//! A quantized matrix stays quantized: `x @ W^T` runs through candle's quantized matmul (the
//! activations are quantized to the matching 8-bit dot-product type per block, as llama.cpp
//! does), embedding rows are dequantized one looked-up row at a time. Gradients never reach a
//! frozen weight; the gradient of the input (`g @ W`, needed to train LoRA adapters on top,
//! QLoRA-style) dequantizes the one matrix it needs for that product and frees it.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::ops::q4k_x8::PackedQ4K;

use super::{ModelError, Result};

/// The quantization types `--quantize` and `instructmol quantize` accept, by their llama.cpp names.
pub const QUANT_TYPES: [(&str, GgmlDType); 9] = [
    ("q8_0", GgmlDType::Q8_0),
    ("q4_0", GgmlDType::Q4_0),
    ("q4_1", GgmlDType::Q4_1),
    ("q5_0", GgmlDType::Q5_0),
    ("q5_1", GgmlDType::Q5_1),
    ("q2_k", GgmlDType::Q2K),
    ("q3_k", GgmlDType::Q3K),
    ("q4_k", GgmlDType::Q4K),
    ("q5_k", GgmlDType::Q5K),
];

/// Parses a quantization type name (`q8_0`, `q4_k`, ...; `q6_k` too).
pub fn parse_quant_type(name: &str) -> Result<GgmlDType> {
    let lower = name.to_ascii_lowercase();
    if lower == "q6_k" {
        return Ok(GgmlDType::Q6K);
    }
    QUANT_TYPES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = QUANT_TYPES.iter().map(|(n, _)| *n).collect();
            ModelError::Config(format!(
                "unknown quantization type `{name}` (expected one of {}, q6_k)",
                names.join(", ")
            ))
        })
}

/// How the decoder's matrices are stored once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantMode {
    /// As the file stores them: a GGUF's quantized tensors stay quantized (on the CPU), a
    /// Hugging Face checkpoint is dense.
    #[default]
    AsStored,
    /// Everything dense in the compute dtype (a GGUF is dequantized).
    Dense,
    /// Dense matrices quantized to this type at load; a GGUF's quantized tensors stay as stored.
    To(GgmlDType),
}

impl QuantMode {
    /// The mode a `--quantize` option asks for (absent: [`QuantMode::AsStored`]).
    pub fn from_option(value: Option<&str>) -> Result<Self> {
        value.map_or(Ok(Self::AsStored), str::parse)
    }
}

impl std::str::FromStr for QuantMode {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "dense" => Ok(Self::Dense),
            "as-stored" => Ok(Self::AsStored),
            other => Ok(Self::To(parse_quant_type(other)?)),
        }
    }
}

/// Whether a GGML type is a block-quantized one (not f32/f16/bf16).
pub fn is_block_quantized(t: GgmlDType) -> bool {
    !matches!(t, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// A frozen `[out, in]` weight matrix.
#[derive(Debug, Clone)]
pub enum Frozen {
    /// A dense tensor in the model's compute dtype.
    Dense(Tensor),
    /// GGML blocks, kept as stored.
    Quant(Arc<QTensor>),
    /// Q4_K blocks on the CPU, the same bytes in the eight-row layout of the fast kernel
    /// ([`PackedQ4K`]).
    PackedQ4K(Arc<PackedQ4K>),
}

impl Frozen {
    /// A quantized matrix as it is best kept: a Q4_K matrix on a CPU with the packed kernels is
    /// packed (the file's bytes permuted; the tensor is dropped), anything else stays as is.
    pub fn from_qtensor(q: QTensor) -> Result<Self> {
        if q.dtype() == GgmlDType::Q4K && q.device().is_cpu() && PackedQ4K::available() {
            let (n, k) = q.shape().dims2()?;
            if let Some(p) = PackedQ4K::pack(&q.data()?, n, k) {
                return Ok(Self::PackedQ4K(Arc::new(p)));
            }
        }
        Ok(Self::Quant(Arc::new(q)))
    }

    /// The GGML blocks of a quantized matrix, as stored in a file (a packed one is unpacked).
    pub fn qtensor(&self) -> candle_core::Result<Option<Arc<QTensor>>> {
        Ok(match self {
            Self::Dense(_) => None,
            Self::Quant(q) => Some(q.clone()),
            Self::PackedQ4K(p) => Some(Arc::new(p.to_qtensor()?)),
        })
    }

    /// Quantizes `w [out, in]` to `ty`; rows must be a whole number of blocks.
    pub fn quantize(w: &Tensor, ty: GgmlDType, key: &str) -> Result<Self> {
        let (_, inp) = w.dims2()?;
        if !inp.is_multiple_of(ty.block_size()) {
            return Err(ModelError::Config(format!(
                "`{key}` rows have {inp} values, not a multiple of {ty:?}'s block of {}: choose \
                 q8_0/q4_0 (blocks of 32) or leave this model unquantized",
                ty.block_size()
            )));
        }
        Self::from_qtensor(QTensor::quantize(w, ty)?)
    }

    /// `(out, in)`.
    pub fn dims2(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Self::Dense(w) => w.dims2()?,
            Self::Quant(q) => q.shape().dims2()?,
            Self::PackedQ4K(p) => p.dims(),
        })
    }

    /// The quantization type, for a quantized matrix.
    pub fn quant_type(&self) -> Option<GgmlDType> {
        match self {
            Self::Dense(_) => None,
            Self::Quant(q) => Some(q.dtype()),
            Self::PackedQ4K(_) => Some(GgmlDType::Q4K),
        }
    }

    /// `x2 [rows, in] -> [rows, out]` (`x2 @ W^T`), in `x2`'s dtype; no gradient bookkeeping.
    pub fn forward(&self, x2: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(w) => super::ops::matmul_t(x2, w),
            Self::Quant(q) => {
                let dtype = x2.dtype();
                let x = x2.to_dtype(DType::F32)?;
                let y = match q.device() {
                    candle_core::Device::Cpu => match cpu_matmul_t(q, &x)? {
                        Some(y) => y,
                        None => QMatMul::QTensor(q.clone()).forward(&x)?,
                    },
                    _ => QMatMul::QTensor(q.clone()).forward(&x)?,
                };
                y.to_dtype(dtype)
            }
            Self::PackedQ4K(p) => {
                let (n, k) = p.dims();
                let x = x2.to_dtype(DType::F32)?;
                cpu_product(&x, n, k, |xs, m| Ok(p.matmul_t(xs, m)))?
                    .ok_or_else(|| {
                        candle_core::Error::Msg("packed Q4_K matmul: no kernel on this CPU".into())
                    })?
                    .to_dtype(x2.dtype())
            }
        }
    }

    /// The gradient of the input of [`Self::forward`]: `g [rows, out] -> [rows, in]` (`g @ W`).
    /// A quantized matrix is dequantized for this product only.
    pub fn grad_input(&self, g: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(w) => g.matmul(w),
            Self::Quant(q) => {
                let w = q.dequantize(&q.device())?;
                g.to_dtype(DType::F32)?.matmul(&w)?.to_dtype(g.dtype())
            }
            Self::PackedQ4K(p) => {
                let w = p.to_qtensor()?.dequantize(g.device())?;
                g.to_dtype(DType::F32)?.matmul(&w)?.to_dtype(g.dtype())
            }
        }
    }

    /// The matrix as a dense tensor of `dtype`.
    pub fn to_dense(&self, dtype: DType) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(w) => w.to_dtype(dtype),
            Self::Quant(q) => q.dequantize(&q.device())?.to_dtype(dtype),
            Self::PackedQ4K(p) => p.to_qtensor()?.dequantize(&Device::Cpu)?.to_dtype(dtype),
        }
    }

    /// Rows `ids` (an embedding lookup) as `[n, in]` in `dtype`; a quantized table is
    /// dequantized row by row, never whole.
    pub fn rows(&self, ids: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(w) => w.index_select(ids, 0)?.to_dtype(dtype),
            Self::Quant(q) => q.embedding(ids)?.to_dtype(dtype),
            Self::PackedQ4K(p) => {
                let rows: Vec<usize> = ids
                    .flatten_all()?
                    .to_dtype(DType::U32)?
                    .to_vec1::<u32>()?
                    .into_iter()
                    .map(|r| r as usize)
                    .collect();
                let w = p.rows_qtensor(&rows)?.dequantize(&Device::Cpu)?;
                w.reshape(
                    ids.dims()
                        .iter()
                        .copied()
                        .chain([w.dim(1)?])
                        .collect::<Vec<_>>(),
                )?
                .to_dtype(dtype)
            }
        }
    }
}

/// `x [m, k] @ W^T` for a quantized `W [n, k]` on the CPU, straight from the GGML blocks as
/// stored: activations quantized once per row to the block type's dot-product type, then one
/// dot product per (weight row, activation row), weight rows split across the threads of
/// [`super::ops::team`] (each row read once for all `m` activation rows). Unlike candle's own
/// quantized matmul it never builds a repacked copy of the weights, so a quantized model takes
/// its file's size in memory (a 7B Q4_K: 4.1 GB peak instead of 9.4, and decodes 1.8x faster
/// here), and it quantizes q8_0 activations per 32 values as llama.cpp does (candle's repacked
/// q8_0 kernel quantizes them per 256, which doubled the KL divergence from f32). `None` for
/// block types without a kernel here.
fn cpu_matmul_t(q: &QTensor, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
    use super::ops::qdot;
    use candle_core::quantized::k_quants::{
        BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1,
        BlockQ6K, BlockQ8_0,
    };
    let (n, k) = q.shape().dims2()?;
    let data = q.data()?;
    cpu_product(x, n, k, |xs, m| {
        Ok(Some(match q.dtype() {
            GgmlDType::Q4_0 => blocks_matmul_t::<BlockQ4_0>(&data, n, k, xs, m)?,
            GgmlDType::Q4_1 => match qdot::matmul_t(qdot::Kind::Q4_1, &data, n, k, xs, m) {
                Some(out) => out,
                None => blocks_matmul_t::<BlockQ4_1>(&data, n, k, xs, m)?,
            },
            GgmlDType::Q8_0 => match qdot::matmul_t(qdot::Kind::Q8_0, &data, n, k, xs, m) {
                Some(out) => out,
                None => blocks_matmul_t::<BlockQ8_0>(&data, n, k, xs, m)?,
            },
            GgmlDType::Q5_0 => blocks_matmul_t::<BlockQ5_0>(&data, n, k, xs, m)?,
            GgmlDType::Q5_1 => blocks_matmul_t::<BlockQ5_1>(&data, n, k, xs, m)?,
            GgmlDType::Q2K => blocks_matmul_t::<BlockQ2K>(&data, n, k, xs, m)?,
            GgmlDType::Q3K => blocks_matmul_t::<BlockQ3K>(&data, n, k, xs, m)?,
            GgmlDType::Q4K => blocks_matmul_t::<BlockQ4K>(&data, n, k, xs, m)?,
            GgmlDType::Q5K => blocks_matmul_t::<BlockQ5K>(&data, n, k, xs, m)?,
            GgmlDType::Q6K => blocks_matmul_t::<BlockQ6K>(&data, n, k, xs, m)?,
            _ => return Ok(None),
        }))
    })
}

/// `x [m, k] @ W^T` for a `[n, k]` weight on the CPU through `product(xs, m)`, which returns
/// `[n, m]` (each weight row's results for every activation row) or `None` when it has no
/// kernel: the f32 input's values in, the `[m, n]` tensor out.
fn cpu_product(
    x: &Tensor,
    n: usize,
    k: usize,
    product: impl FnOnce(&[f32], usize) -> candle_core::Result<Option<Vec<f32>>>,
) -> candle_core::Result<Option<Tensor>> {
    let (m, xk) = x.dims2()?;
    if xk != k {
        candle_core::bail!("quantized matmul: input width {xk}, weight [{n}, {k}]");
    }
    let xs = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let Some(out) = product(&xs, m)? else {
        return Ok(None);
    };
    Ok(Some(Tensor::from_vec(
        rows_to_outputs(out, n, m),
        (m, n),
        &candle_core::Device::Cpu,
    )?))
}

/// The kernel of [`cpu_matmul_t`] for one block type; `data` holds `n` rows of `k / BLCK_SIZE`
/// blocks. Returns `[n, m]`: each weight row's results for every activation row.
fn blocks_matmul_t<T>(
    data: &[u8],
    n: usize,
    k: usize,
    xs: &[f32],
    m: usize,
) -> candle_core::Result<Vec<f32>>
where
    T: candle_core::quantized::k_quants::GgmlType + Sync,
    T::VecDotType: Sync + Send,
{
    use candle_core::quantized::k_quants::GgmlType;
    if !k.is_multiple_of(T::BLCK_SIZE) || !k.is_multiple_of(T::VecDotType::BLCK_SIZE) {
        candle_core::bail!(
            "quantized matmul: width {k} is not whole blocks of {:?}",
            T::DTYPE
        );
    }
    let per_row = k / T::BLCK_SIZE;
    let size = std::mem::size_of::<T>();
    if data.len() != n * per_row * size
        || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        candle_core::bail!(
            "quantized matmul: {} bytes do not hold {n} rows of {:?}",
            data.len(),
            T::DTYPE
        );
    }
    // SAFETY: the bytes are the tensor's own storage of `n * per_row` blocks of `T` (checked
    // length and alignment above), plain data with no invalid bit patterns.
    let w: &[T] = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const T, n * per_row) };
    let kq = k / T::VecDotType::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); m * kq];
    for r in 0..m {
        T::VecDotType::from_float(&xs[r * k..(r + 1) * k], &mut xq[r * kq..(r + 1) * kq]);
    }
    let mut out_t = vec![0f32; n * m];
    super::ops::team::for_row_chunks(&mut out_t, m, w, per_row, |o, w| {
        for (orow, wr) in o.chunks_mut(m).zip(w.chunks_exact(per_row)) {
            for (r, v) in orow.iter_mut().enumerate() {
                *v = T::vec_dot(k, wr, &xq[r * kq..(r + 1) * kq]);
            }
        }
    });
    Ok(out_t)
}

/// `[n, m]` (one weight row's results for every activation row) -> `[m, n]` row-major.
fn rows_to_outputs(out_t: Vec<f32>, n: usize, m: usize) -> Vec<f32> {
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for (row, vals) in out_t.chunks(m).enumerate() {
        for (r, &v) in vals.iter().enumerate() {
            out[r * n + row] = v;
        }
    }
    out
}

/// A quantized tensor with its rows reordered: row `i` of the result is row `order[i]` of `q`.
/// Quantization blocks run along rows, so this moves whole rows of bytes (how llama.cpp's q/k
/// row permutation is undone without dequantizing).
pub fn permute_rows(q: &QTensor, order: &[usize]) -> candle_core::Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    if order.len() != rows || !cols.is_multiple_of(q.dtype().block_size()) {
        candle_core::bail!(
            "cannot permute the rows of a {rows}x{cols} {:?} tensor",
            q.dtype()
        );
    }
    let data = q.data()?;
    let row_bytes = data.len() / rows.max(1);
    let mut out = Vec::with_capacity(data.len());
    for &r in order {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    let storage = QStorage::from_data(std::borrow::Cow::Owned(out), &q.device(), q.dtype())?;
    QTensor::new(storage, (rows, cols))
}

/// The row order that undoes llama.cpp's q/k permutation for `n_head` heads of `rows / n_head`
/// rows (interleaved rope pairs -> rotate-half halves): the inverse of the permutation that
/// llama.cpp's converter applies.
pub fn unpermute_order(rows: usize, n_head: usize) -> Option<Vec<usize>> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) {
        return None;
    }
    let half = rows / n_head / 2;
    // Stored (llama.cpp) row of head h, pair j, element e is h*2*half + 2*j + e; the HF row is
    // h*2*half + e*half + j.
    let mut order = vec![0; rows];
    for h in 0..n_head {
        for e in 0..2 {
            for j in 0..half {
                order[h * 2 * half + e * half + j] = h * 2 * half + 2 * j + e;
            }
        }
    }
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn quantized_forward_and_input_gradient_follow_the_dense_matrix() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (64, 256), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 256), &dev).unwrap();
        let g = Tensor::randn(0f32, 1.0, (3, 64), &dev).unwrap();
        let dense = Frozen::Dense(w.clone());
        let q = Frozen::quantize(&w, GgmlDType::Q8_0, "w").unwrap();
        let rel = |a: &Tensor, b: &Tensor| {
            let d = (a - b)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let n = b
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            (d / n).sqrt()
        };
        let (y, yq) = (dense.forward(&x).unwrap(), q.forward(&x).unwrap());
        assert!(rel(&yq, &y) < 0.01, "{}", rel(&yq, &y));
        let (gx, gxq) = (dense.grad_input(&g).unwrap(), q.grad_input(&g).unwrap());
        assert!(rel(&gxq, &gx) < 0.01, "{}", rel(&gxq, &gx));
        assert!(Frozen::quantize(
            &Tensor::zeros((4, 48), DType::F32, &dev).unwrap(),
            GgmlDType::Q4K,
            "x"
        )
        .is_err());
    }

    /// A Q4_K matrix on a CPU with the packed kernels is kept packed, and every use of it
    /// agrees with the same blocks kept as stored: products (candle's numbers, within float
    /// rounding), input gradients, dense copies and looked-up rows (the same bits), and the
    /// blocks written back out (the same bytes).
    #[test]
    fn a_packed_q4k_matrix_behaves_as_its_blocks() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (20, 512), &dev).unwrap();
        let packed = Frozen::quantize(&w, GgmlDType::Q4K, "w").unwrap();
        if !PackedQ4K::available() {
            assert!(matches!(packed, Frozen::Quant(_)));
            return;
        }
        assert!(matches!(packed, Frozen::PackedQ4K(_)));
        assert_eq!(packed.dims2().unwrap(), (20, 512));
        assert_eq!(packed.quant_type(), Some(GgmlDType::Q4K));
        let stored = QTensor::quantize(&w, GgmlDType::Q4K).unwrap();
        let bytes = stored.data().unwrap().into_owned();
        let plain = Frozen::Quant(Arc::new(stored));
        let back = packed.qtensor().unwrap().unwrap();
        assert_eq!(back.data().unwrap().as_ref(), &bytes[..]);
        let x = Tensor::randn(0f32, 1.0, (5, 512), &dev).unwrap();
        let (y, want) = (packed.forward(&x).unwrap(), plain.forward(&x).unwrap());
        assert_eq!(y.dims(), &[5, 20]);
        let diff = (&y - &want).unwrap().abs().unwrap().max_all().unwrap();
        let scale = want.abs().unwrap().max_all().unwrap();
        assert!(
            diff.to_scalar::<f32>().unwrap() <= 1e-4 * scale.to_scalar::<f32>().unwrap().max(1.0)
        );
        let same = |a: Tensor, b: Tensor| {
            let (a, b): (Vec<f32>, Vec<f32>) = (
                a.flatten_all().unwrap().to_vec1().unwrap(),
                b.flatten_all().unwrap().to_vec1().unwrap(),
            );
            assert_eq!(a, b);
        };
        let g = Tensor::randn(0f32, 1.0, (3, 20), &dev).unwrap();
        same(
            packed.grad_input(&g).unwrap(),
            plain.grad_input(&g).unwrap(),
        );
        same(
            packed.to_dense(DType::F32).unwrap(),
            plain.to_dense(DType::F32).unwrap(),
        );
        let ids = Tensor::new(&[[19u32, 0, 7], [3, 3, 8]], &dev).unwrap();
        let rows = packed.rows(&ids, DType::F32).unwrap();
        assert_eq!(rows.dims(), &[2, 3, 512]);
        same(rows, plain.rows(&ids, DType::F32).unwrap());
        let out_of_range = Tensor::new(&[20u32], &dev).unwrap();
        assert!(packed.rows(&out_of_range, DType::F32).is_err());
    }

    #[test]
    fn row_permutation_moves_whole_quantized_rows() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (8, 32), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let order = unpermute_order(8, 2).unwrap();
        assert_eq!(order, vec![0, 2, 1, 3, 4, 6, 5, 7]);
        let p = permute_rows(&q, &order).unwrap().dequantize(&dev).unwrap();
        let d = q.dequantize(&dev).unwrap();
        for (i, &r) in order.iter().enumerate() {
            let a: Vec<f32> = p.get(i).unwrap().to_vec1().unwrap();
            let b: Vec<f32> = d.get(r).unwrap().to_vec1().unwrap();
            assert_eq!(a, b);
        }
    }
}
