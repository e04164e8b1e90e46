//! Q4_K weights repacked eight rows at a time for the CPU, and their matrix product with
//! `q8_K` activations.
//!
//! In a GGUF a Q4_K row is a run of 144-byte super-blocks (256 weights: `d`, `dmin`, twelve
//! bytes of 6-bit scales and mins, 128 bytes of nibbles). Taken one row at a time, every block
//! needs its scales unpacked and broadcast before its 256 products, about as much vector work as
//! the products themselves, so a 7B decode step was bound by the CPU's shuffle units rather
//! than by memory. Here the same bytes are permuted at load so that one block column of eight
//! rows lies together: the eight `d`, the eight `dmin`, the scale words of the eight rows side by
//! side (one vector lane per row), then the nibbles four bytes per row at a time. Four
//! activation bytes are broadcast to all eight lanes and multiplied with four nibbles of each
//! row in one instruction, and a sub-block's scale multiplies eight rows at once. The layout
//! holds exactly the file's bytes (rows padded to a multiple of eight with zero blocks); the
//! GGML blocks are recovered byte for byte ([`PackedQ4K::to_qtensor`]).
//!
//! Numbers: per row and block, `d * d_x * sum_j(sc_j * sum(q_w * q_x)) - dmin * d_x *
//! sum_j(m_j * sum_j(q_x))`, integer sums exact, the two float sums accumulated over the row's
//! blocks in order and subtracted at the end. A row's result takes the same instructions
//! whatever the batch and whether the CPU has VNNI (`vpdpbusd`) or not (`vpmaddubsw` with i16
//! partial sums, which cannot overflow here), so it has the same bits everywhere.

use candle_core::quantized::QTensor;

use rayon::prelude::*;

use super::team::for_row_chunks;

/// Elements per k-quant super-block.
const QK_K: usize = 256;
/// Bytes per Q4_K block: `d`, `dmin` (f16), 12 bytes of packed 6-bit scales and mins, 128
/// bytes of nibbles.
const Q4K_BYTES: usize = 144;

/// Rows per packed group.
const GROUP: usize = 8;
/// Bytes of one block column of a group: 8 `d` and 8 `dmin` (f16), three words of packed
/// scales per row (3 x 8 x 4 bytes), 32 chunks of 8 rows x 4 nibble bytes.
const GROUP_BLOCK: usize = GROUP * Q4K_BYTES;
/// Offsets within a group block: the eight `d`, the eight `dmin`, then the 35 four-byte words
/// of each row's block (3 of scales, 32 of nibbles), word `w` of row `r` at `WORDS + 32 w + 4 r`.
const D: usize = 0;
const DMIN: usize = 16;
const WORDS: usize = 32;
/// Where the nibble words start (after the three scale words).
const NIBBLES: usize = WORDS + 3 * 32;

/// A Q4_K matrix `[n, k]` in the eight-row layout (see the module documentation).
#[derive(Debug)]
pub struct PackedQ4K {
    n: usize,
    k: usize,
    /// The packed bytes from `start` on (the first 64-byte aligned address of the buffer, so
    /// that no 32-byte load of the kernel crosses a cache line).
    buffer: Vec<u8>,
    start: usize,
}

impl PackedQ4K {
    /// Whether this CPU runs the packed kernels (AVX2, FMA, F16C).
    pub fn available() -> bool {
        kernels().is_some()
    }

    /// Packs `n` rows of `k` Q4_K weights (GGML blocks as a GGUF stores them). `None` if the
    /// sizes do not fit.
    pub fn pack(data: &[u8], n: usize, k: usize) -> Option<Self> {
        if !k.is_multiple_of(QK_K) || data.len() != n * k / QK_K * Q4K_BYTES {
            return None;
        }
        let nb = k / QK_K;
        let groups = n.div_ceil(GROUP);
        let len = groups * nb * GROUP_BLOCK;
        let mut buffer = vec![0u8; len + 63];
        let start = buffer.as_ptr().align_offset(64).min(63);
        let row_bytes = nb * Q4K_BYTES;
        // Group by group in parallel; a block moves as 2-byte scales and 4-byte words.
        buffer[start..start + len]
            .par_chunks_mut(nb * GROUP_BLOCK)
            .zip(data.par_chunks(GROUP * row_bytes))
            .for_each(|(dst, src)| {
                for (r, row) in src.chunks_exact(row_bytes).enumerate() {
                    for (block, d) in row
                        .chunks_exact(Q4K_BYTES)
                        .zip(dst.chunks_exact_mut(GROUP_BLOCK))
                    {
                        d[D + 2 * r..][..2].copy_from_slice(&block[0..2]);
                        d[DMIN + 2 * r..][..2].copy_from_slice(&block[2..4]);
                        for (w, word) in block[4..].chunks_exact(4).enumerate() {
                            // Words 0-2: the scales; then 32 words of nibbles.
                            let at = WORDS + 32 * w + 4 * r;
                            d[at..at + 4].copy_from_slice(word);
                        }
                    }
                }
            });
        Some(Self {
            n,
            k,
            buffer,
            start,
        })
    }

    /// The packed bytes.
    fn bytes(&self) -> &[u8] {
        let len = self.n.div_ceil(GROUP) * self.k / QK_K * GROUP_BLOCK;
        &self.buffer[self.start..self.start + len]
    }

    /// `(n, k)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// Appends the GGML blocks of row `row`, as the file stored them, to `out`.
    fn row_blocks(&self, row: usize, out: &mut Vec<u8>) {
        let nb = self.k / QK_K;
        let (g, r) = (row / GROUP, row % GROUP);
        for src in
            self.bytes()[g * nb * GROUP_BLOCK..][..nb * GROUP_BLOCK].chunks_exact(GROUP_BLOCK)
        {
            out.extend_from_slice(&src[D + 2 * r..][..2]);
            out.extend_from_slice(&src[DMIN + 2 * r..][..2]);
            for w in 0..(Q4K_BYTES - 4) / 4 {
                out.extend_from_slice(&src[WORDS + 32 * w + 4 * r..][..4]);
            }
        }
    }

    /// Rows `rows` as a Q4_K tensor `[rows.len(), k]` (the file's bytes).
    pub fn rows_qtensor(&self, rows: &[usize]) -> candle_core::Result<QTensor> {
        let mut data = Vec::with_capacity(rows.len() * self.k / QK_K * Q4K_BYTES);
        for &row in rows {
            if row >= self.n {
                candle_core::bail!("row {row} of a Q4_K matrix with {} rows", self.n);
            }
            self.row_blocks(row, &mut data);
        }
        qtensor_from_bytes(&data, rows.len(), self.k)
    }

    /// The whole matrix as a Q4_K tensor (the file's bytes).
    pub fn to_qtensor(&self) -> candle_core::Result<QTensor> {
        self.rows_qtensor(&(0..self.n).collect::<Vec<_>>())
    }

    /// `x [m, k] @ W^T` as `[n, m]`: each weight row's results for every activation row.
    /// `None` if `xs` is not `m` rows of `k` or the CPU lacks the kernels.
    pub fn matmul_t(&self, xs: &[f32], m: usize) -> Option<Vec<f32>> {
        let (four, one) = kernels()?;
        if xs.len() != m * self.k {
            return None;
        }
        let xq: Vec<Vec<Q8K>> = xs.chunks_exact(self.k).map(quantize_row_q8k).collect();
        let group_bytes = self.k / QK_K * GROUP_BLOCK;
        let mut out_t = vec![0f32; self.n.div_ceil(GROUP) * GROUP * m];
        for_row_chunks(&mut out_t, GROUP * m, self.bytes(), group_bytes, |o, w| {
            for (og, wg) in o.chunks_mut(GROUP * m).zip(w.chunks_exact(group_bytes)) {
                let mut put = |r0: usize, res: &[[f32; GROUP]]| {
                    for (dr, vals) in res.iter().enumerate() {
                        for (row, &v) in vals.iter().enumerate() {
                            og[row * m + r0 + dr] = v;
                        }
                    }
                };
                for (c, x) in xq.chunks_exact(ROWS).enumerate() {
                    let x = [&x[0][..], &x[1][..], &x[2][..], &x[3][..]];
                    // SAFETY: `kernels` returns these only where the CPU has their features;
                    // every activation row has `k / 256` blocks, as many as the group has.
                    put(ROWS * c, &unsafe { four(wg, x) });
                }
                for (r, x) in xq.iter().enumerate().skip(m - m % ROWS) {
                    // SAFETY: as above.
                    put(r, &unsafe { one(wg, [&x[..]]) });
                }
            }
        });
        out_t.truncate(self.n * m);
        Some(out_t)
    }
}

/// A Q4_K tensor `[n, k]` from GGML block bytes.
fn qtensor_from_bytes(data: &[u8], n: usize, k: usize) -> candle_core::Result<QTensor> {
    use candle_core::quantized::k_quants::BlockQ4K;
    let blocks: Vec<BlockQ4K> = data
        .chunks_exact(Q4K_BYTES)
        .map(|b| {
            // SAFETY: BlockQ4K is 144 bytes of plain data (f16, f16, [u8; 12], [u8; 128]) with
            // no invalid bit patterns; read_unaligned takes the bytes as they lie.
            unsafe { std::ptr::read_unaligned(b.as_ptr() as *const BlockQ4K) }
        })
        .collect();
    let storage = candle_core::quantized::QStorage::Cpu(Box::new(blocks));
    QTensor::new(storage, (n, k))
}

/// One activation super-block as ggml's `q8_K`: `x = d * q`, with the sums of the quants of
/// each sub-block of 32 (what a weight sub-block's min multiplies) in the pairs (0, 2), (1, 3),
/// (4, 6), (5, 7) that the kernel multiplies with pairs of mins.
#[derive(Clone, Copy)]
struct Q8K {
    d: f32,
    qs: [i8; QK_K],
    sum_pairs: [i16; QK_K / 32],
}

/// A row as `q8_K` blocks, as ggml (and candle) quantize it: the value of largest magnitude
/// (the first of them) maps to -127, values round half away from zero.
fn quantize_row_q8k(x: &[f32]) -> Vec<Q8K> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return x
            .chunks_exact(QK_K)
            .map(|b| unsafe { quantize_block_avx2(b) })
            .collect();
    }
    x.chunks_exact(QK_K).map(quantize_block).collect()
}

/// [`quantize_row_q8k`] for one block of 256 values.
fn quantize_block(b: &[f32]) -> Q8K {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in b {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let mut y = Q8K::ZERO;
    if amax == 0.0 {
        return y;
    }
    let iscale = -127.0 / max;
    for (q, &v) in y.qs.iter_mut().zip(b) {
        // `(iscale * v).round()` (half away from zero) without a libm call: |x| <= 127 here,
        // so the truncation fits i32 and `x - t` is exact; NaN gives 0.
        let x = iscale * v;
        let t = x as i32;
        let frac = x - t as f32;
        let r = t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32;
        *q = r.clamp(-128, 127) as i8;
    }
    let mut sums = [0i16; QK_K / 32];
    for (s, q) in sums.iter_mut().zip(y.qs.chunks_exact(32)) {
        *s = q.iter().map(|&v| v as i16).sum();
    }
    y.set_sum_pairs(sums);
    y.d = 1.0 / iscale;
    y
}

impl Q8K {
    /// An all-zero block (what a block of zeros quantizes to).
    const ZERO: Q8K = Q8K {
        d: 0.0,
        qs: [0; QK_K],
        sum_pairs: [0; QK_K / 32],
    };

    /// Stores the sub-block sums in the kernel's pair order.
    fn set_sum_pairs(&mut self, sums: [i16; QK_K / 32]) {
        for (t, p) in self.sum_pairs.chunks_exact_mut(2).enumerate() {
            let j = 4 * (t / 2) + t % 2;
            p.copy_from_slice(&[sums[j], sums[j + 2]]);
        }
    }
}

/// [`quantize_block`] eight values at a time: the same steps, so the same bytes (test).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(b: &[f32]) -> Q8K {
    use std::arch::x86_64::*;
    assert_eq!(b.len(), QK_K);
    let p = b.as_ptr();
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    // Largest magnitude (NaN skipped: `max_ps` returns its second operand then).
    let mut m = _mm256_setzero_ps();
    for c in 0..QK_K / 8 {
        m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(p.add(8 * c)), abs_mask), m);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
    let mut y = Q8K::ZERO;
    if amax == 0.0 {
        return y;
    }
    // The first value of that magnitude, sign kept.
    let target = _mm256_set1_ps(amax);
    let mut max = amax;
    for c in 0..QK_K / 8 {
        let v = _mm256_loadu_ps(p.add(8 * c));
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(
            _mm256_and_ps(v, abs_mask),
            target,
        ));
        if hit != 0 {
            max = b[8 * c + hit.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = -127.0 / max;
    let scale = _mm256_set1_ps(iscale);
    let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
    let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut sums = [0i16; QK_K / 32];
    let out = y.qs.as_mut_ptr();
    for (s, sum) in sums.iter_mut().enumerate() {
        let mut r = [_mm256_setzero_si256(); 4];
        for (j, r) in r.iter_mut().enumerate() {
            let x = _mm256_mul_ps(_mm256_loadu_ps(p.add(32 * s + 8 * j)), scale);
            // NaN -> 0, as `NaN as i32` is.
            let x = _mm256_and_ps(x, _mm256_cmp_ps::<_CMP_ORD_Q>(x, x));
            let t = _mm256_cvttps_epi32(x);
            let frac = _mm256_sub_ps(x, _mm256_cvtepi32_ps(t));
            // Comparison masks are -1 where true.
            let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half));
            let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, neg_half));
            let v = _mm256_add_epi32(_mm256_sub_epi32(t, up), down);
            *r = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        }
        let total = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
        let mut t = [0i32; 8];
        _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, total);
        *sum = t.iter().sum::<i32>() as i16;
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(r[0], r[1]),
            _mm256_packs_epi32(r[2], r[3]),
        );
        _mm256_storeu_si256(
            out.add(32 * s) as *mut __m256i,
            _mm256_permutevar8x32_epi32(bytes, order),
        );
    }
    y.set_sum_pairs(sums);
    y.d = 1.0 / iscale;
    y
}

/// Activation rows the kernels take at once.
const ROWS: usize = 4;

/// A packed kernel: one group of eight weight rows against `R` activation rows.
type Kernel<const R: usize> = unsafe fn(&[u8], [&[Q8K]; R]) -> [[f32; GROUP]; R];

/// The kernels for this CPU (four rows, one row): VNNI where it has AVX-512 VNNI with 256-bit
/// forms, else AVX2; `None` without AVX2, FMA and F16C.
fn kernels() -> Option<(Kernel<ROWS>, Kernel<1>)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma") && has!("f16c")) {
            return None;
        }
        if has!("avx512vnni") && has!("avx512vl") && has!("avx512f") {
            return Some((group_dot_vnni::<ROWS>, group_dot_vnni::<1>));
        }
        Some((group_dot_avx2::<ROWS>, group_dot_avx2::<1>))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_dot_avx2<const R: usize>(g: &[u8], x: [&[Q8K]; R]) -> [[f32; GROUP]; R] {
    group_dot::<R, false>(g, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn group_dot_vnni<const R: usize>(g: &[u8], x: [&[Q8K]; R]) -> [[f32; GROUP]; R] {
    group_dot::<R, true>(g, x)
}

/// Eight weight rows (one group, all its block columns) against `R` activation rows.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn group_dot<const R: usize, const VNNI: bool>(
    g: &[u8],
    x: [&[Q8K]; R],
) -> [[f32; GROUP]; R] {
    use std::arch::x86_64::*;
    let low = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let six = _mm256_set1_epi32(0x3F3F_3F3F);
    let four = _mm256_set1_epi32(0x0F0F_0F0F);
    let top = _mm256_set1_epi32(0x3030_3030);
    let byte = _mm256_set1_epi32(0xFF);
    let even = _mm256_set1_epi32(0x00FF_00FF);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_min = [_mm256_setzero_ps(); R];
    for (i, b) in g.chunks_exact(GROUP_BLOCK).enumerate() {
        let p = b.as_ptr();
        let d = _mm256_cvtph_ps(_mm_loadu_si128(p.add(D) as *const __m128i));
        let dmin = _mm256_cvtph_ps(_mm_loadu_si128(p.add(DMIN) as *const __m128i));
        let word = |w: usize| _mm256_loadu_si256(p.add(WORDS + 32 * w) as *const __m256i);
        let (w0, w1, w2) = (word(0), word(1), word(2));
        // Per row (lane): scales 0-3 and 4-7, mins 0-3 and 4-7, one byte each.
        let s_lo = _mm256_and_si256(w0, six);
        let s_hi = _mm256_or_si256(
            _mm256_and_si256(w2, four),
            _mm256_and_si256(_mm256_srli_epi32(w0, 2), top),
        );
        let m_lo = _mm256_and_si256(w1, six);
        let m_hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi32(w2, 4), four),
            _mm256_and_si256(_mm256_srli_epi32(w1, 2), top),
        );
        let scales = [
            _mm256_and_si256(s_lo, byte),
            _mm256_and_si256(_mm256_srli_epi32(s_lo, 8), byte),
            _mm256_and_si256(_mm256_srli_epi32(s_lo, 16), byte),
            _mm256_srli_epi32(s_lo, 24),
            _mm256_and_si256(s_hi, byte),
            _mm256_and_si256(_mm256_srli_epi32(s_hi, 8), byte),
            _mm256_and_si256(_mm256_srli_epi32(s_hi, 16), byte),
            _mm256_srli_epi32(s_hi, 24),
        ];
        // Mins as i16 pairs (0, 2), (1, 3), (4, 6), (5, 7), against the activation's sub-block
        // sums in the same pairs.
        let min_pairs = [
            _mm256_and_si256(m_lo, even),
            _mm256_and_si256(_mm256_srli_epi32(m_lo, 8), even),
            _mm256_and_si256(m_hi, even),
            _mm256_and_si256(_mm256_srli_epi32(m_hi, 8), even),
        ];
        for r in 0..R {
            let y = &x[r][i];
            let sums = y.sum_pairs.as_ptr() as *const i32;
            let mut m32 = _mm256_setzero_si256();
            for (t, mp) in min_pairs.iter().enumerate() {
                let s = _mm256_set1_epi32(std::ptr::read_unaligned(sums.add(t)));
                m32 = _mm256_add_epi32(m32, _mm256_madd_epi16(*mp, s));
            }
            let dm = _mm256_mul_ps(dmin, _mm256_set1_ps(y.d));
            acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m32), dm, acc_min[r]);
        }
        let qs = p.add(NIBBLES);
        let mut sumi = [_mm256_setzero_si256(); R];
        for c in 0..4 {
            // Sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles), eight rows in the lanes.
            let mut lo_acc = [_mm256_setzero_si256(); R];
            let mut hi_acc = [_mm256_setzero_si256(); R];
            for q in 0..8 {
                let v = _mm256_loadu_si256(qs.add((8 * c + q) * 32) as *const __m256i);
                let lo = _mm256_and_si256(v, low);
                // VNNI sums in i32, so it takes the high nibbles in place (16 times their
                // value) and divides the exact sums by 16 once per sub-block.
                let hi = if VNNI {
                    _mm256_andnot_si256(low, v)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), low)
                };
                for r in 0..R {
                    let a = x[r][i].qs.as_ptr().add(64 * c + 4 * q) as *const i32;
                    let a_lo = _mm256_set1_epi32(std::ptr::read_unaligned(a));
                    let a_hi = _mm256_set1_epi32(std::ptr::read_unaligned(a.add(8)));
                    if VNNI {
                        lo_acc[r] = _mm256_dpbusd_epi32(lo_acc[r], lo, a_lo);
                        hi_acc[r] = _mm256_dpbusd_epi32(hi_acc[r], hi, a_hi);
                    } else {
                        // Pairs of nibble x i8 (at most 2 * 15 * 128), eight of them summed:
                        // at most 30,720, inside i16.
                        lo_acc[r] = _mm256_add_epi16(lo_acc[r], _mm256_maddubs_epi16(lo, a_lo));
                        hi_acc[r] = _mm256_add_epi16(hi_acc[r], _mm256_maddubs_epi16(hi, a_hi));
                    }
                }
            }
            for r in 0..R {
                let (l, h) = if VNNI {
                    (lo_acc[r], _mm256_srai_epi32(hi_acc[r], 4))
                } else {
                    (
                        _mm256_madd_epi16(lo_acc[r], ones),
                        _mm256_madd_epi16(hi_acc[r], ones),
                    )
                };
                let s = _mm256_add_epi32(
                    _mm256_mullo_epi32(l, scales[2 * c]),
                    _mm256_mullo_epi32(h, scales[2 * c + 1]),
                );
                sumi[r] = _mm256_add_epi32(sumi[r], s);
            }
        }
        for r in 0..R {
            let dd = _mm256_mul_ps(d, _mm256_set1_ps(x[r][i].d));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi[r]), dd, acc[r]);
        }
    }
    std::array::from_fn(|r| {
        let mut out = [0f32; GROUP];
        _mm256_storeu_ps(out.as_mut_ptr(), _mm256_sub_ps(acc[r], acc_min[r]));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8K, GgmlType};
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Tensor};

    fn q4k(n: usize, k: usize, seed: u64) -> QTensor {
        let w = Tensor::randn(0f32, 0.1, (n, k), &Device::Cpu)
            .unwrap()
            .affine(1.0, seed as f64 * 1e-3)
            .unwrap();
        QTensor::quantize(&w, GgmlDType::Q4K).unwrap()
    }

    /// The activation quantizer's rounding is `f32::round` (half away from zero), ties included.
    #[test]
    fn activation_rounding_is_half_away_from_zero() {
        let mut x: Vec<f32> = (0..2 * QK_K).map(|i| i as f32 * 0.37 - 90.0).collect();
        // -127 / max = -1: the values themselves are rounded, ties at +-x.5 included.
        x[0] = -127.0;
        for (i, v) in [2.5f32, -2.5, 0.5, -0.5, 126.5, -126.49, 1.4999, f32::NAN]
            .into_iter()
            .enumerate()
        {
            x[1 + i] = v;
        }
        for (b, y) in x.chunks_exact(QK_K).zip(quantize_row_q8k(&x)) {
            let max = b
                .iter()
                .fold(0f32, |m, &v| if m.abs() < v.abs() { v } else { m });
            let iscale = -127.0 / max;
            for (&v, &q) in b.iter().zip(&y.qs) {
                let want = (iscale * v).round().clamp(-128.0, 127.0) as i8;
                assert_eq!(q, want, "{v}");
            }
        }
    }

    /// The AVX2 activation quantizer gives the scalar one's bytes, ties, NaN, zero blocks and
    /// a largest magnitude present with both signs included.
    #[test]
    fn avx2_quantizer_equals_the_scalar_one() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut x: Vec<f32> = Tensor::randn(0f32, 3.0, 6 * QK_K, &Device::Cpu)
                .unwrap()
                .to_vec1()
                .unwrap();
            x[QK_K..2 * QK_K].fill(0.0);
            x[2 * QK_K + 5] = f32::NAN;
            x[2 * QK_K + 9] = 40.0;
            x[2 * QK_K + 200] = -40.0;
            x[3 * QK_K + 3] = -40.0;
            x[3 * QK_K + 100] = 40.0;
            for (i, v) in x[4 * QK_K..5 * QK_K].iter_mut().enumerate() {
                // -127 / max = -1: ties at every half.
                *v = if i == 0 {
                    -127.0
                } else {
                    (i as f32 - 128.0) / 2.0
                };
            }
            for b in x.chunks_exact(QK_K) {
                // SAFETY: checked just above that the CPU has AVX2.
                let (a, s) = (unsafe { quantize_block_avx2(b) }, quantize_block(b));
                assert_eq!(a.qs, s.qs);
                assert_eq!(a.sum_pairs, s.sum_pairs);
                assert_eq!(a.d.to_bits(), s.d.to_bits());
            }
        }
    }

    /// Packing permutes the bytes: unpacking gives the file's blocks back, row by row.
    #[test]
    fn packing_keeps_the_blocks() {
        let (n, k) = (13, 512);
        let q = q4k(n, k, 1);
        let data = q.data().unwrap().into_owned();
        let p = PackedQ4K::pack(&data, n, k).unwrap();
        assert_eq!(p.bytes().len(), 2 * 2 * GROUP_BLOCK);
        assert_eq!(p.bytes().as_ptr() as usize % 64, 0);
        assert_eq!(p.to_qtensor().unwrap().data().unwrap().as_ref(), &data[..]);
        let some = p.rows_qtensor(&[12, 0, 7]).unwrap();
        let row = |r: usize| &data[r * 2 * Q4K_BYTES..(r + 1) * 2 * Q4K_BYTES];
        assert_eq!(
            some.data().unwrap().as_ref(),
            &[row(12), row(0), row(7)].concat()[..]
        );
        assert!(p.rows_qtensor(&[13]).is_err());
        assert!(PackedQ4K::pack(&data[1..], n, k).is_none());
    }

    /// The packed product equals candle's row-by-row one (GGML's numbers)
    /// within float rounding, with the same bits for a row alone as in any batch, and the same
    /// bits with and without VNNI.
    #[test]
    fn packed_product_equals_the_row_product_in_any_batch() {
        if !PackedQ4K::available() {
            return;
        }
        let (n, k, m) = (21, 768, 7);
        let q = q4k(n, k, 2);
        let data = q.data().unwrap().into_owned();
        let p = PackedQ4K::pack(&data, n, k).unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let all = p.matmul_t(&x, m).unwrap();
        // SAFETY: the storage is n * k / 256 Q4_K blocks (the quantizer's own output).
        let blocks: &[BlockQ4K] =
            unsafe { std::slice::from_raw_parts(data.as_ptr() as *const BlockQ4K, n * k / QK_K) };
        for r in 0..m {
            let mut xq = vec![BlockQ8K::zeros(); k / QK_K];
            BlockQ8K::from_float(&x[r * k..(r + 1) * k], &mut xq);
            for j in 0..n {
                let want = BlockQ4K::vec_dot(k, &blocks[j * k / QK_K..(j + 1) * k / QK_K], &xq);
                let got = all[j * m + r];
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{r},{j}: {got} vs {want}"
                );
            }
        }
        for r in 0..m {
            let alone = p.matmul_t(&x[r * k..(r + 1) * k], 1).unwrap();
            for j in 0..n {
                assert_eq!(all[j * m + r].to_bits(), alone[j].to_bits(), "{r},{j}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            let xq: Vec<Vec<Q8K>> = x.chunks_exact(k).map(quantize_row_q8k).collect();
            let group = &p.bytes()[..k / QK_K * GROUP_BLOCK];
            // SAFETY: available() said the CPU has AVX2, FMA and F16C.
            let plain = unsafe { group_dot_avx2::<1>(group, [&xq[3][..]]) };
            let has_vnni = std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl");
            if has_vnni {
                // SAFETY: checked just above.
                let vnni = unsafe { group_dot_vnni::<1>(group, [&xq[3][..]]) };
                assert_eq!(plain[0].map(f32::to_bits), vnni[0].map(f32::to_bits));
            }
            for row in 0..GROUP {
                assert_eq!(plain[0][row].to_bits(), all[row * m + 3].to_bits());
            }
        }
    }
}
