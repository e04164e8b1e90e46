//! Choosing the next token from logits: penalties for repeated tokens, then greedy, temperature
//! and nucleus (top-p) sampling with a seeded random generator, so a run with the same seed
//! gives the same text.
//!
//! A [`Sampler`] belongs to one sequence (one row of a batch): it knows the token ids of its
//! prompt's text and counts the ids it has picked, which is all the penalties need. A caller
//! (the decode loop here, or a server driving its own steps) only calls [`Sampler::sample`]
//! with each new row of logits.
//!
//! The penalties, applied in this order before temperature and top-p (and in greedy mode too):
//! - `repetition_penalty` (CTRL, as Hugging Face's `RepetitionPenaltyLogitsProcessor`): the
//!   logit of every id seen in the prompt's text or in the generated ids is divided by the
//!   penalty when positive and multiplied by it when negative, once per id; 1 is off.
//! - `frequency_penalty` and `presence_penalty` (OpenAI, as vLLM applies them): over the
//!   generated ids only, `logit -= frequency_penalty * count`, then
//!   `logit -= presence_penalty` for every id generated at least once; 0 is off.

use std::collections::BTreeMap;

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
    /// CTRL repetition penalty over the prompt's text ids and the generated ids (> 0; 1 = off).
    pub repetition_penalty: f64,
    /// Subtracted from a logit once per time its id was generated ([-2, 2]; 0 = off).
    pub frequency_penalty: f64,
    /// Subtracted from the logit of every id generated at least once ([-2, 2]; 0 = off).
    pub presence_penalty: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
        }
    }
}

/// A sampling setting outside its range (`name` is the field of [`SamplingConfig`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be {range}, got {value}")]
pub struct BadSetting {
    /// The field, e.g. `repetition_penalty`.
    pub name: &'static str,
    /// The allowed values, in words.
    pub range: &'static str,
    /// The value given.
    pub value: f64,
}

impl SamplingConfig {
    /// Checks every setting against its range: temperature >= 0, top_p in (0, 1],
    /// repetition_penalty > 0, frequency_penalty and presence_penalty in [-2, 2] (OpenAI's).
    pub fn check(&self) -> Result<(), BadSetting> {
        let bad = |name, range, value| Err(BadSetting { name, range, value });
        let t = self.temperature;
        if !(t >= 0.0 && t.is_finite()) {
            return bad("temperature", ">= 0 (0 = greedy)", t);
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return bad("top_p", "in (0, 1]", p);
        }
        let r = self.repetition_penalty;
        if !(r > 0.0 && r.is_finite()) {
            return bad("repetition_penalty", "> 0 (1 = off)", r);
        }
        for (name, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(name, "in [-2, 2] (0 = off)", v);
            }
        }
        Ok(())
    }

    /// Whether any penalty is on.
    fn penalizes(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
    }
}

/// A seeded sampler for one sequence, with the state its penalties need.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplingConfig,
    rng: Rng,
    /// Distinct ids of the prompt's text, sorted.
    prompt_ids: Vec<u32>,
    /// How often each id was picked.
    counts: BTreeMap<u32, u32>,
}

impl Sampler {
    /// A sampler with the given settings and no prompt ids (the repetition penalty then counts
    /// only generated ids).
    pub fn new(cfg: SamplingConfig) -> Self {
        Self::with_prompt_ids(cfg, &[])
    }

    /// A sampler for a sequence whose prompt text has the token ids `prompt_ids` (in any order,
    /// repeats allowed): the repetition penalty counts them as seen.
    pub fn with_prompt_ids(cfg: SamplingConfig, prompt_ids: &[u32]) -> Self {
        let mut ids = prompt_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Self {
            cfg,
            rng: Rng::new(cfg.seed),
            prompt_ids: ids,
            counts: BTreeMap::new(),
        }
    }

    /// Whether this sampler decodes greedily.
    pub fn is_greedy(&self) -> bool {
        self.cfg.temperature <= 0.0
    }

    /// Applies the penalties to one row of logits, in place, as [`Sampler::sample`] does before
    /// choosing (ids outside the row are ignored).
    pub fn apply_penalties(&self, logits: &mut [f32]) {
        let rep = self.cfg.repetition_penalty as f32;
        if self.cfg.repetition_penalty != 1.0 {
            let generated_only = self
                .counts
                .keys()
                .filter(|id| self.prompt_ids.binary_search(id).is_err());
            for &id in self.prompt_ids.iter().chain(generated_only) {
                if let Some(v) = logits.get_mut(id as usize) {
                    *v = if *v < 0.0 { *v * rep } else { *v / rep };
                }
            }
        }
        let frequency = self.cfg.frequency_penalty as f32;
        let presence = self.cfg.presence_penalty as f32;
        if frequency != 0.0 || presence != 0.0 {
            for (&id, &n) in &self.counts {
                if let Some(v) = logits.get_mut(id as usize) {
                    *v -= frequency * n as f32;
                    *v -= presence;
                }
            }
        }
    }

    /// Picks a token id from one row of the model's logits (penalties first, then the
    /// temperature and top-p choice) and records it for the penalties of later steps. Returns
    /// `None` for an empty row or one without any finite logit.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let id = if self.cfg.penalizes() {
            let mut penalized = logits.to_vec();
            self.apply_penalties(&mut penalized);
            self.choose(&penalized)
        } else {
            self.choose(logits)
        }?;
        *self.counts.entry(id).or_default() += 1;
        Some(id)
    }

    /// Greedy, or temperature + top-p, over final logits.
    fn choose(&mut self, logits: &[f32]) -> Option<u32> {
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
            seed: 7,
            ..Default::default()
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
            ..Default::default()
        });
        let draws: Vec<u32> = (0..2000).filter_map(|_| s.sample(&logits)).collect();
        assert!(draws.iter().all(|&i| i < 2));
        let zeros = draws.iter().filter(|&&i| i == 0).count() as f64 / draws.len() as f64;
        assert!((zeros - 2.0 / 3.0).abs() < 0.04, "frequency {zeros}");
    }

    /// The penalized logits, checked against hand-computed values (to f32 rounding).
    fn assert_penalized(s: &Sampler, logits: &[f32], want: &[f32]) {
        let mut got = logits.to_vec();
        s.apply_penalties(&mut got);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{got:?} != {want:?}"
            );
        }
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() {
        let cfg = SamplingConfig {
            repetition_penalty: 2.0,
            ..Default::default()
        };
        // Prompt ids 1 (positive logit), 2 (negative), 5 (outside the row), repeated ids once.
        let mut s = Sampler::with_prompt_ids(cfg, &[2, 1, 2, 5, 1]);
        let logits = [4.0f32, 3.0, -1.5, 0.0, 2.5];
        assert_penalized(&s, &logits, &[4.0, 1.5, -3.0, 0.0, 2.5]);
        // Greedy picks id 0 (4.0); from then on id 0 is seen too, once however often picked.
        assert_eq!(s.sample(&logits), Some(0));
        assert_penalized(&s, &logits, &[2.0, 1.5, -3.0, 0.0, 2.5]);
        assert_eq!(s.sample(&logits), Some(4));
        assert_eq!(s.sample(&logits), Some(0));
        assert_penalized(&s, &logits, &[2.0, 1.5, -3.0, 0.0, 1.25]);
        // Below 1 it rewards repeats: positive multiplied up, negative divided toward 0.
        let s = Sampler::with_prompt_ids(
            SamplingConfig {
                repetition_penalty: 0.5,
                ..Default::default()
            },
            &[1, 2],
        );
        assert_penalized(&s, &logits, &[4.0, 6.0, -0.75, 0.0, 2.5]);
    }

    #[test]
    fn frequency_and_presence_penalties_count_generated_ids_only() {
        let cfg = SamplingConfig {
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..Default::default()
        };
        // Prompt ids do not count for these penalties.
        let mut s = Sampler::with_prompt_ids(cfg, &[0, 1, 2]);
        let logits = [0.0f32, 2.0, 1.9, 1.0];
        assert_penalized(&s, &logits, &logits);
        // Step 1 picks 1; then 1 is down 0.5 + 0.25 = 0.75 -> 1.25 and 2 (1.9) wins.
        assert_eq!(s.sample(&logits), Some(1));
        assert_penalized(&s, &logits, &[0.0, 1.25, 1.9, 1.0]);
        assert_eq!(s.sample(&logits), Some(2));
        assert_penalized(&s, &logits, &[0.0, 1.25, 1.15, 1.0]);
        // 1 (1.25) again: twice picked, 2 * 0.5 + 0.25 = 1.25 below.
        assert_eq!(s.sample(&logits), Some(1));
        assert_penalized(&s, &logits, &[0.0, 0.75, 1.15, 1.0]);
        assert_eq!(s.sample(&logits), Some(2));
        // Negative values reward repeats.
        let mut s = Sampler::new(SamplingConfig {
            presence_penalty: -1.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&[1.0, 1.5]), Some(1));
        assert_eq!(s.sample(&[2.0, 1.5]), Some(1));
    }

    #[test]
    fn penalties_combine_in_order_and_apply_before_temperature() {
        let cfg = SamplingConfig {
            repetition_penalty: 1.25,
            frequency_penalty: 1.0,
            presence_penalty: 0.5,
            ..Default::default()
        };
        let mut s = Sampler::with_prompt_ids(cfg, &[3]);
        let logits = [2.0f32, -1.0, 0.5, 3.0];
        // 3.0 / 1.25 = 2.4 still wins; then id 3 is 3.0 / 1.25 - 1.0 - 0.5 = 0.9.
        assert_eq!(s.sample(&logits), Some(3));
        assert_penalized(&s, &logits, &[2.0, -1.0, 0.5, 0.9]);
        // Before the temperature: frequency 2 moves logit 1 to -1, which at temperature 0.1
        // is -10 against 0 (after the temperature it would be 8 against 0).
        for seed in 0..5 {
            let mut s = Sampler::new(SamplingConfig {
                temperature: 0.1,
                seed,
                frequency_penalty: 2.0,
                ..Default::default()
            });
            let logits = [1.0f32, 0.0];
            assert_eq!((s.sample(&logits), s.sample(&logits)), (Some(0), Some(1)));
        }
        // Before top-p: 3.0 / 1000 falls below 1.0, so the 0.5 nucleus holds id 1 alone (on
        // the raw logits it would hold id 0); once 1 is seen too, id 0 leads again.
        for seed in 0..5 {
            let mut s = Sampler::with_prompt_ids(
                SamplingConfig {
                    temperature: 1.0,
                    top_p: 0.5,
                    seed,
                    repetition_penalty: 1000.0,
                    ..Default::default()
                },
                &[0],
            );
            let draws: Vec<Option<u32>> = (0..4).map(|_| s.sample(&[3.0, 1.0])).collect();
            assert_eq!(draws, [Some(1), Some(0), Some(0), Some(0)]);
        }
    }

    #[test]
    fn defaults_leave_logits_and_draws_unchanged() {
        let logits = [0.3f32, -0.2, 0.9, 0.1];
        let cfg = SamplingConfig {
            temperature: 0.7,
            seed: 11,
            ..Default::default()
        };
        let mut with_ids = Sampler::with_prompt_ids(cfg, &[0, 1, 2, 3]);
        let mut plain = Sampler::new(cfg);
        for _ in 0..200 {
            assert_eq!(with_ids.sample(&logits), plain.sample(&logits));
        }
        assert_penalized(&with_ids, &logits, &logits);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let ok = SamplingConfig::default();
        assert_eq!(ok.check(), Ok(()));
        for (cfg, name) in [
            (
                SamplingConfig {
                    repetition_penalty: 0.0,
                    ..ok
                },
                "repetition_penalty",
            ),
            (
                SamplingConfig {
                    repetition_penalty: f64::NAN,
                    ..ok
                },
                "repetition_penalty",
            ),
            (
                SamplingConfig {
                    frequency_penalty: 2.5,
                    ..ok
                },
                "frequency_penalty",
            ),
            (
                SamplingConfig {
                    presence_penalty: -2.01,
                    ..ok
                },
                "presence_penalty",
            ),
            (
                SamplingConfig {
                    temperature: -1.0,
                    ..ok
                },
                "temperature",
            ),
            (SamplingConfig { top_p: 0.0, ..ok }, "top_p"),
        ] {
            let err = cfg.check().unwrap_err();
            assert_eq!(err.name, name);
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let edge = SamplingConfig {
            frequency_penalty: -2.0,
            presence_penalty: 2.0,
            repetition_penalty: 0.01,
            ..ok
        };
        assert_eq!(edge.check(), Ok(()));
    }
}
