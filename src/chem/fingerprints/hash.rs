//! The hash functions and random-number generator RDKit's fingerprints are defined with.
//!
//! RDKit hashes with its own copy of `boost::hash` whose result type is 32 bits
//! (`gboost::hash_combine`), and spreads RDKit-fingerprint features over extra bits with a
//! small Mersenne twister (state size 4) seeded by the feature's hash.

/// `gboost::hash_combine(seed, v)` for an integer `v` (whose hash is its 32-bit value).
#[inline]
pub fn hash_combine(seed: &mut u32, v: u32) {
    *seed ^= v
        .wrapping_add(0x9e37_79b9)
        .wrapping_add(*seed << 6)
        .wrapping_add(*seed >> 2);
}

/// `gboost::hash_range` over 32-bit integers (seed 0), e.g. the hash of a `std::vector<uint32_t>`.
#[inline]
pub fn hash_range(values: &[u32]) -> u32 {
    let mut seed = 0u32;
    for &v in values {
        hash_combine(&mut seed, v);
    }
    seed
}

/// The hash of a `std::pair<int32, uint32>` (`gboost::hash_value(pair)`).
#[inline]
pub fn hash_pair(first: i32, second: u32) -> u32 {
    let mut seed = 0u32;
    hash_combine(&mut seed, first as u32);
    hash_combine(&mut seed, second);
    seed
}

/// State size of RDKit's fingerprint twister.
const N: usize = 4;
/// Twist offset.
const M: usize = 2;
/// Twist matrix.
const A: u32 = 0x9908_b0df;

/// The Mersenne twister RDKit's fingerprint generators use for their extra bits per feature:
/// `boost::random::mersenne_twister<uint32_t, 32, 4, 2, 31, 0x9908b0df, 11, 7, 0x9d2c5680, 15,
/// 0xefc60000, 18>`.
#[derive(Debug, Clone)]
pub struct SmallTwister {
    x: [u32; N],
    i: usize,
}

impl SmallTwister {
    /// A generator seeded like boost's `seed(value)`.
    pub fn new(seed: u32) -> Self {
        let mut x = [0u32; N];
        x[0] = seed;
        for i in 1..N {
            x[i] = 1_812_433_253u32
                .wrapping_mul(x[i - 1] ^ (x[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        SmallTwister { x, i: N }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for j in 0..N {
            let next = self.x[(j + 1) % N];
            let y = (self.x[j] & UPPER) | (next & LOWER);
            self.x[j] = self.x[(j + M) % N] ^ (y >> 1) ^ ((next & 1) * A);
        }
        self.i = 0;
    }

    /// The next raw 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.i >= N {
            self.twist();
        }
        let mut z = self.x[self.i];
        self.i += 1;
        z ^= z >> 11;
        z ^= (z << 7) & 0x9d2c_5680;
        z ^= (z << 15) & 0xefc6_0000;
        z ^= z >> 18;
        z
    }

    /// The next draw of `boost::uniform_int<>(0, INT_MAX)` from this generator (the raw output's
    /// top 31 bits: boost divides the 2^32 range into buckets of two).
    pub fn next_int31(&mut self) -> u32 {
        self.next_u32() >> 1
    }
}
