//! A small seeded random-number generator (SplitMix64) for everything that must be
//! reproducible from a seed: weight initialisation, LoRA dropout masks, data shuffling.
//! candle's CPU device cannot be seeded, so its random tensors are not used for these.

use candle_core::{Device, Result, Tensor};

/// SplitMix64: tiny, fast, and every 64-bit seed gives an independent-looking stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for a sub-stream, e.g. `Rng::derive(seed, &[step, micro_batch])`: the same
    /// (seed, path) always gives the same stream, different paths give unrelated streams.
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut r = Rng::new(seed);
        for &p in path {
            let x = r.next_u64() ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93);
            r = Rng::new(x);
            r.next_u64();
        }
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias worth mentioning for n << 2^64.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// An f32 tensor uniform in [lo, hi).
    pub fn uniform(
        &mut self,
        lo: f64,
        hi: f64,
        shape: &[usize],
        device: &Device,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| (lo + (hi - lo) * self.next_f64()) as f32)
            .collect();
        Tensor::from_vec(data, shape, device)
    }

    /// An f32 tensor of independent normal values (Box-Muller).
    pub fn normal(
        &mut self,
        mean: f64,
        std: f64,
        shape: &[usize],
        device: &Device,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let mut data = Vec::with_capacity(n);
        while data.len() < n {
            let u1 = self.next_f64().max(f64::MIN_POSITIVE);
            let u2 = self.next_f64();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * u2;
            data.push((mean + std * r * t.cos()) as f32);
            if data.len() < n {
                data.push((mean + std * r * t.sin()) as f32);
            }
        }
        Tensor::from_vec(data, shape, device)
    }

    /// An inverted-dropout mask: each entry is `1/(1-p)` with probability `1-p`, else 0.
    pub fn dropout_mask(&mut self, p: f64, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let keep = (1.0 / (1.0 - p)) as f32;
        let data: Vec<f32> = (0..n)
            .map(|_| if self.next_f64() < p { 0.0 } else { keep })
            .collect();
        Tensor::from_vec(data, shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[1, 2]);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[1, 2]);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::derive(7, &[2, 1]);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(1);
        let u = r
            .uniform(-1.0, 3.0, &[20000], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = u.iter().sum::<f32>() / u.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!(u.iter().all(|&x| (-1.0..3.0).contains(&x)));
        let n = r
            .normal(0.0, 2.0, &[20000], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let var = n.iter().map(|x| x * x).sum::<f32>() / n.len() as f32;
        assert!((var - 4.0).abs() < 0.2, "{var}");
        let m = r
            .dropout_mask(0.25, &[20000], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let zeros = m.iter().filter(|&&x| x == 0.0).count() as f64 / m.len() as f64;
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        let mut v: Vec<usize> = (0..10).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
