//! Choosing the next token from logits: greedy, temperature and nucleus (top-p) sampling with a
//! seeded random generator, so a run with the same seed gives the same text.

use crate::rng::Rng;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 (or below) is greedy decoding (the argmax).
    pub temperature: f64,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches
    /// `top_p`; 1.0 keeps all.
    pub top_p: f64,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplingConfig,
    rng: Rng,
}

impl Sampler {
    /// A sampler with the given settings.
    pub fn new(cfg: SamplingConfig) -> Self {
        Self {
            cfg,
            rng: Rng::new(cfg.seed),
        }
    }

    /// Whether this sampler decodes greedily.
    pub fn is_greedy(&self) -> bool {
        self.cfg.temperature <= 0.0
    }

    /// Picks a token id from one row of logits. Returns `None` for an empty row or one without
    /// any finite logit.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        if self.is_greedy() {
            return argmax(logits);
        }
        let max = logits
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return None;
        }
        let t = self.cfg.temperature;
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (i as u32, ((f64::from(v) - f64::from(max)) / t).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        if self.cfg.top_p < 1.0 {
            probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let want = self.cfg.top_p.max(0.0) * total;
            let mut acc = 0.0;
            let mut keep = 0;
            for p in &probs {
                acc += p.1;
                keep += 1;
                if acc >= want {
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let kept: f64 = probs.iter().map(|p| p.1).sum();
        let mut r = self.rng.next_f64() * kept;
        for &(id, p) in &probs {
            if r < p {
                return Some(id);
            }
            r -= p;
        }
        probs.last().map(|p| p.0)
    }
}

/// Index of the largest finite value (the first one on ties, as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplingConfig::default());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0]), Some(1));
        assert_eq!(s.sample(&[]), None);
    }

    #[test]
    fn same_seed_same_draws_and_frequencies_follow_softmax() {
        let cfg = SamplingConfig {
            temperature: 1.0,
            top_p: 1.0,
            seed: 7,
        };
        let logits = [0.0f32, (2.0f32).ln(), f32::NEG_INFINITY];
        let draw = |cfg| {
            let mut s = Sampler::new(cfg);
            (0..3000)
                .map(|_| s.sample(&logits).unwrap_or(99))
                .collect::<Vec<_>>()
        };
        let a = draw(cfg);
        assert_eq!(a, draw(cfg));
        assert!(a.iter().all(|&i| i < 2), "a -inf logit was drawn");
        let ones = a.iter().filter(|&&i| i == 1).count() as f64 / a.len() as f64;
        assert!((ones - 2.0 / 3.0).abs() < 0.03, "frequency {ones}");
        let other = draw(SamplingConfig { seed: 8, ..cfg });
        assert_ne!(a, other);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Probabilities 0.6, 0.3, 0.1: top_p 0.8 keeps ids 0 and 1 only.
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let mut s = Sampler::new(SamplingConfig {
            temperature: 1.0,
            top_p: 0.8,
            seed: 1,
        });
        let draws: Vec<u32> = (0..2000).filter_map(|_| s.sample(&logits)).collect();
        assert!(draws.iter().all(|&i| i < 2));
        let zeros = draws.iter().filter(|&&i| i == 0).count() as f64 / draws.len() as f64;
        assert!((zeros - 2.0 / 3.0).abs() < 0.04, "frequency {zeros}");
    }
}
