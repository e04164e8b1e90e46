//! Quantized matrix products on the CPU with AVX2 kernels, for the block types of the embedded
//! default model (SmolLM2-135M: Q4_1 layers, a Q8_0 embedding/output head): Q4_1 x Q8_1 and
//! Q8_0 x Q8_0, one weight row at a time as the GGUF stores them. Candle has only a scalar Q4_1
//! dot product, and its Q8_0 one converts each f16 scale in a call. (Q4_K, the 7B models'
//! type, is repacked for its kernel: [`super::q4k_x8`].)
//!
//! Numbers follow ggml: activations are quantized per block of 32 (`d = amax / 127`, f16; for
//! `q8_1` also `s = d * sum(q)`). A Q4_1 block's dot product is
//! `d_w * d_x * sum(q_w * q_x) + m_w * s_x` with the weight nibbles unsigned (low nibbles hold
//! elements 0..15, high nibbles 16..31); a Q8_0 block's is `d_w * d_x * sum(q_w * q_x)`.

use half::f16;

/// Elements per block.
const QK: usize = 32;
/// Bytes per Q4_1 block: `d` (f16), `m` (f16), 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Bytes per Q8_0 block: `d` (f16), 32 signed bytes.
const Q8_0_BYTES: usize = 34;

/// The weight block types with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ggml's `q4_1`.
    Q4_1,
    /// ggml's `q8_0`.
    Q8_0,
}

impl Kind {
    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => Q4_1_BYTES,
            Kind::Q8_0 => Q8_0_BYTES,
        }
    }
}

/// One activation block, its scales already rounded to f16 as ggml stores them.
#[derive(Clone, Copy)]
struct Q8_1 {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

fn quantize_row(x: &[f32]) -> Vec<Q8_1> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: `has_avx2` says the CPU has AVX2, FMA and F16C.
        return x
            .chunks_exact(QK)
            .map(|b| unsafe { quantize_block_avx2(b) })
            .collect();
    }
    quantize_row_scalar(x)
}

/// [`quantize_row`] without SIMD.
fn quantize_row_scalar(x: &[f32]) -> Vec<Q8_1> {
    x.chunks_exact(QK)
        .map(|b| {
            let amax = b.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; QK];
            let mut sum = 0i32;
            for (q, &v) in qs.iter_mut().zip(b) {
                *q = (v * id).round() as i8;
                sum += *q as i32;
            }
            let d_h = f16::from_f32(d);
            let s = f16::from_f32(f16::from_f32(sum as f32).to_f32() * d_h.to_f32());
            Q8_1 {
                d: d_h.to_f32(),
                s: s.to_f32(),
                qs,
            }
        })
        .collect()
}

/// One block as [`quantize_row`]'s scalar loop makes it, bit for bit (the same maximum, the
/// same products, rounding half away from zero, NaN to 0), eight values at a time: the
/// scalar `round` is a library call per value, which cost about a third of a small
/// product's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_block_avx2(b: &[f32]) -> Q8_1 {
    use std::arch::x86_64::*;
    let v: [__m256; 4] = std::array::from_fn(|j| _mm256_loadu_ps(b[8 * j..].as_ptr()));
    let sign_bit = _mm256_set1_ps(-0.0);
    // max(a, b) keeps `a` when `b` is NaN, as f32::max ignores a NaN.
    let mut amax = _mm256_setzero_ps();
    for vj in v {
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, vj));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), amax);
    let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let half = _mm256_set1_ps(0.5);
    let mut qs = [0i8; QK];
    let mut sum = _mm256_setzero_si256();
    for (j, vj) in v.into_iter().enumerate() {
        let p = _mm256_mul_ps(vj, id);
        // Round half away from zero: the truncation plus one step away from zero where the
        // (exact) fraction is at least a half.
        let t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        let frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(p, t));
        let step = _mm256_or_ps(_mm256_set1_ps(1.0), _mm256_and_ps(sign_bit, p));
        let r = _mm256_add_ps(
            t,
            _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), step),
        );
        let q = _mm256_cvttps_epi32(r);
        let q = _mm256_and_si256(q, _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_ORD_Q)));
        sum = _mm256_add_epi32(sum, q);
        let mut ints = [0i32; 8];
        _mm256_storeu_si256(ints.as_mut_ptr() as *mut __m256i, q);
        for (o, i) in qs[8 * j..8 * j + 8].iter_mut().zip(ints) {
            *o = i as i8;
        }
    }
    let mut ints = [0i32; 8];
    _mm256_storeu_si256(ints.as_mut_ptr() as *mut __m256i, sum);
    let sum: i32 = ints.iter().sum();
    let d_h = f16::from_f32(d);
    let s = f16::from_f32(f16::from_f32(sum as f32).to_f32() * d_h.to_f32());
    Q8_1 {
        d: d_h.to_f32(),
        s: s.to_f32(),
        qs,
    }
}

fn scales(block: &[u8]) -> (f32, f32) {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
    (d, m)
}

fn dot_scalar(row: &[u8], x: &[Q8_1]) -> f32 {
    let mut sum = 0f32;
    for (b, y) in row.chunks_exact(Q4_1_BYTES).zip(x) {
        let (d, m) = scales(b);
        let mut si = 0i32;
        for j in 0..QK / 2 {
            let q = b[4 + j];
            si += (q & 0x0F) as i32 * y.qs[j] as i32 + (q >> 4) as i32 * y.qs[j + QK / 2] as i32;
        }
        sum += si as f32 * d * y.d + m * y.s;
    }
    sum
}

fn dot_scalar_q8_0(row: &[u8], x: &[Q8_1]) -> f32 {
    let mut sum = 0f32;
    for (b, y) in row.chunks_exact(Q8_0_BYTES).zip(x) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let si: i32 = b[2..]
            .iter()
            .zip(&y.qs)
            .map(|(&w, &a)| w as i8 as i32 * a as i32)
            .sum();
        sum += si as f32 * d * y.d;
    }
    sum
}

/// Activation rows that the AVX2 kernels take at once.
const ROWS: usize = 4;

/// One Q4_1 weight row against `R` activation rows: each weight block is unpacked once and used
/// `R` times. Every row goes through the same instructions in the same order whatever `R`, so
/// its result is bit for bit the one-row result (a row's numbers never depend on the batch it
/// decodes in).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2<const R: usize>(row: &[u8], x: [&[Q8_1]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); R];
    let mut offsets = [0f32; R];
    let low = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    for (i, b) in row.chunks_exact(Q4_1_BYTES).enumerate() {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(
            b.as_ptr() as *const i32
        )));
        let d = _mm_cvtss_f32(dm);
        let m = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1));
        let packed = _mm_loadu_si128(b.as_ptr().add(4) as *const __m128i);
        let lo = _mm_and_si128(packed, low);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
        let w = _mm256_set_m128i(hi, lo);
        // The product of the two scales in every lane (the bits of the scalar `d * y.d`),
        // the activation scale broadcast straight from memory.
        let dv = _mm256_set1_ps(d);
        for r in 0..R {
            let y = &x[r][i];
            let a = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            // u8 x i8 -> pairs of i16 (at most 2 * 15 * 127: no saturation), pairs -> i32.
            let s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones);
            let scale = _mm256_mul_ps(dv, _mm256_broadcast_ss(&y.d));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), scale, acc[r]);
            offsets[r] += m * y.s;
        }
    }
    std::array::from_fn(|r| hsum(acc[r]) + offsets[r])
}

/// One Q8_0 weight row against `R` activation rows (as [`dot_avx2`]: the same instructions per
/// row whatever `R`, so the same bits). Signed x signed goes through maddubs as |w| (unsigned)
/// times `a` with `w`'s sign. The f16 scales are converted eight blocks at a time: converted
/// one by one, the compiler loaded each into the accumulator's register (only its lane 0
/// matters to `vcvtph2ps`), which chained every block to the previous block's sum.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2_q8_0<const R: usize>(row: &[u8], x: [&[Q8_1]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); R];
    let ones = _mm256_set1_epi16(1);
    for (g, group) in row.chunks(8 * Q8_0_BYTES).enumerate() {
        let mut h = [0i16; 8];
        for (hj, b) in h.iter_mut().zip(group.chunks_exact(Q8_0_BYTES)) {
            *hj = i16::from_le_bytes([b[0], b[1]]);
        }
        let mut ds = [0f32; 8];
        _mm256_storeu_ps(
            ds.as_mut_ptr(),
            _mm256_cvtph_ps(_mm_set_epi16(
                h[7], h[6], h[5], h[4], h[3], h[2], h[1], h[0],
            )),
        );
        for (j, b) in group.chunks_exact(Q8_0_BYTES).enumerate() {
            let w = _mm256_loadu_si256(b.as_ptr().add(2) as *const __m256i);
            let w_abs = _mm256_sign_epi8(w, w);
            let dv = _mm256_set1_ps(ds[j]);
            for r in 0..R {
                let y = &x[r][8 * g + j];
                let a = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
                let p16 = _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(a, w));
                let s32 = _mm256_madd_epi16(p16, ones);
                let scale = _mm256_mul_ps(dv, _mm256_broadcast_ss(&y.d));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), scale, acc[r]);
            }
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}

/// The sum of the eight lanes, in a fixed order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum(acc: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    _mm_cvtss_f32(h)
}

/// Whether the AVX2 kernel can run here.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// An AVX2 kernel: one weight row against `R` activation rows.
type Kernel<const R: usize> = unsafe fn(&[u8], [&[Q8_1]; R]) -> [f32; R];

/// A block type's kernels: the AVX2 ones (four rows at once, one row) where the CPU has them,
/// and the scalar one.
struct Kernels {
    simd: Option<(Kernel<ROWS>, Kernel<1>)>,
    scalar: fn(&[u8], &[Q8_1]) -> f32,
}

/// [`Kernels`] of an AVX2 kernel generic over its row count, and a scalar kernel.
macro_rules! kernels {
    ($simd:ident, $scalar:ident) => {{
        #[cfg(target_arch = "x86_64")]
        let simd = has_avx2().then_some(($simd::<ROWS> as Kernel<ROWS>, $simd::<1> as Kernel<1>));
        #[cfg(not(target_arch = "x86_64"))]
        let simd = None;
        Kernels {
            simd,
            scalar: $scalar,
        }
    }};
}

/// `x [m, k] @ W^T` for `W [n, k]` stored as `kind` blocks (`data`, `n * k / block` blocks), as
/// `[n, m]`: each weight row's results for every activation row. `None` if the sizes do not fit.
pub fn matmul_t(
    kind: Kind,
    data: &[u8],
    n: usize,
    k: usize,
    xs: &[f32],
    m: usize,
) -> Option<Vec<f32>> {
    let row_bytes = k / QK * kind.block_bytes();
    if !k.is_multiple_of(QK) || data.len() != n * row_bytes || xs.len() != m * k {
        return None;
    }
    let xq: Vec<Vec<Q8_1>> = xs.chunks_exact(k).map(quantize_row).collect();
    let kernels = match kind {
        Kind::Q4_1 => kernels!(dot_avx2, dot_scalar),
        Kind::Q8_0 => kernels!(dot_avx2_q8_0, dot_scalar_q8_0),
    };
    Some(row_products(data, n, row_bytes, &xq, kernels))
}

/// Every weight row of `data` (`n` rows of `row_bytes`) against every quantized activation row
/// of `xq`, as `[n, m]`: four activation rows at a time through the AVX2 kernel, the rest one by
/// one (the same instructions per row either way), or all through the scalar kernel.
fn row_products(
    data: &[u8],
    n: usize,
    row_bytes: usize,
    xq: &[Vec<Q8_1>],
    kernels: Kernels,
) -> Vec<f32> {
    let m = xq.len();
    let mut out_t = vec![0f32; n * m];
    super::team::for_row_chunks(&mut out_t, m, data, row_bytes, |o, w| {
        for (orow, wrow) in o.chunks_mut(m).zip(w.chunks_exact(row_bytes)) {
            let Some((four, one)) = kernels.simd else {
                for (v, x) in orow.iter_mut().zip(xq) {
                    *v = (kernels.scalar)(wrow, x);
                }
                continue;
            };
            for (v, x) in orow.chunks_exact_mut(ROWS).zip(xq.chunks_exact(ROWS)) {
                let x = [&x[0][..], &x[1][..], &x[2][..], &x[3][..]];
                // SAFETY: `simd` is set only where the CPU has AVX2, FMA and F16C; every
                // activation row has as many blocks as the weight row (matmul_t's size checks).
                v.copy_from_slice(&unsafe { four(wrow, x) });
            }
            for (v, x) in orow.iter_mut().zip(xq).skip(m - m % ROWS) {
                // SAFETY: as above.
                *v = unsafe { one(wrow, [&x[..]]) }[0];
            }
        }
    });
    out_t
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::{BlockQ4_1, BlockQ8_0, BlockQ8_1, GgmlType};

    #[test]
    fn q8_0_equals_candles_dot_product() {
        let dev = Device::Cpu;
        let (n, k) = (10, 128);
        let w = Tensor::randn(0f32, 0.1, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let data = q.data().unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, (2, k), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ours = matmul_t(Kind::Q8_0, &data, n, k, &x, 2).unwrap();
        // SAFETY: the storage is n * k / 32 Q8_0 blocks (checked by matmul_t's length test).
        let blocks: &[BlockQ8_0] =
            unsafe { std::slice::from_raw_parts(data.as_ptr() as *const BlockQ8_0, n * k / QK) };
        for r in 0..2 {
            let mut xq = vec![BlockQ8_0::zeros(); k / QK];
            BlockQ8_0::from_float(&x[r * k..(r + 1) * k], &mut xq);
            for j in 0..n {
                let want = BlockQ8_0::vec_dot(k, &blocks[j * k / QK..(j + 1) * k / QK], &xq);
                let got = ours[j * 2 + r];
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{r},{j}: {got} vs {want}"
                );
            }
        }
    }
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// Rows computed four at a time give the bits of each row computed alone.
    #[test]
    fn a_row_gives_the_same_bits_in_any_batch() {
        let dev = Device::Cpu;
        let (n, k, m) = (12, 160, 7);
        let w = Tensor::randn(0f32, 0.1, (n, k), &dev).unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (kind, ty) in [(Kind::Q4_1, GgmlDType::Q4_1), (Kind::Q8_0, GgmlDType::Q8_0)] {
            let data = QTensor::quantize(&w, ty)
                .unwrap()
                .data()
                .unwrap()
                .into_owned();
            let all = matmul_t(kind, &data, n, k, &x, m).unwrap();
            for r in 0..m {
                let alone = matmul_t(kind, &data, n, k, &x[r * k..(r + 1) * k], 1).unwrap();
                for j in 0..n {
                    assert_eq!(
                        all[j * m + r].to_bits(),
                        alone[j].to_bits(),
                        "{kind:?} {r},{j}"
                    );
                }
            }
        }
    }

    /// The AVX2 activation quantizer gives the scalar one's bits, ties, zeros and NaN included.
    #[test]
    fn quantized_activations_equal_the_scalar_ones() {
        if !has_avx2() {
            return;
        }
        let mut rng = crate::rng::Rng::new(3);
        let mut x: Vec<f32> = (0..QK * 64)
            .map(|_| (rng.next_u64() % 20001) as f32 / 100.0 - 100.0)
            .collect();
        // Exact ties after scaling (127 * j / 254 = j / 2), a zero block, a NaN.
        for (j, v) in x[..QK].iter_mut().enumerate() {
            *v = if j == 0 { 254.0 } else { j as f32 };
        }
        x[QK..2 * QK].fill(0.0);
        x[2 * QK + 5] = f32::NAN;
        for b in x.chunks_exact(QK) {
            // SAFETY: has_avx2 was checked above.
            let fast = unsafe { quantize_block_avx2(b) };
            let slow = &quantize_row_scalar(b)[0];
            assert_eq!(fast.qs, slow.qs, "{b:?}");
            assert_eq!(fast.d.to_bits(), slow.d.to_bits());
            assert_eq!(fast.s.to_bits(), slow.s.to_bits());
        }
    }

    #[test]
    fn equals_ggml_numbers_as_candle_computes_them() {
        let dev = Device::Cpu;
        let (n, k) = (24, 96);
        let w = Tensor::randn(0f32, 0.1, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let data = q.data().unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, (3, k), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ours = matmul_t(Kind::Q4_1, &data, n, k, &x, 3).unwrap();
        // candle's scalar reference on the same blocks.
        // SAFETY: the storage is n * k / 32 Q4_1 blocks (checked by matmul_t's length test).
        let blocks: &[BlockQ4_1] =
            unsafe { std::slice::from_raw_parts(data.as_ptr() as *const BlockQ4_1, n * k / QK) };
        for r in 0..3 {
            let mut xq = vec![BlockQ8_1::zeros(); k / QK];
            BlockQ8_1::from_float(&x[r * k..(r + 1) * k], &mut xq);
            for j in 0..n {
                let want = BlockQ4_1::vec_dot(k, &blocks[j * k / QK..(j + 1) * k / QK], &xq);
                let got = ours[j * 3 + r];
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{r},{j}: {got} vs {want}"
                );
                assert!(
                    (dot_scalar(
                        &data[j * k / QK * 20..(j + 1) * k / QK * 20],
                        &quantize_row(&x[r * k..(r + 1) * k])
                    ) - want)
                        .abs()
                        <= 1e-4 * want.abs().max(1.0)
                );
            }
        }
    }
}
