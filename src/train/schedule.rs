//! Learning-rate schedule: linear warmup then cosine decay to zero, as transformers'
//! `get_cosine_schedule_with_warmup` with `warmup_steps = ceil(warmup_ratio * total_steps)`
//! (how the reference's Trainer derives it). Step `k` (0-based) is the k-th optimizer update;
//! like the reference, the first update runs at the factor for step 0 (zero when warming up).

/// A cosine schedule with warmup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Updates of linear warmup.
    pub warmup_steps: u64,
    /// Total number of updates.
    pub total_steps: u64,
}

impl CosineSchedule {
    /// A schedule over `total_steps` updates with `ceil(warmup_ratio * total_steps)` warmup updates.
    pub fn new(peak: f64, warmup_ratio: f64, total_steps: u64) -> Self {
        let warmup_steps = (warmup_ratio.max(0.0) * total_steps as f64).ceil() as u64;
        Self {
            peak,
            warmup_steps,
            total_steps,
        }
    }

    /// Learning rate of update `step` (0-based).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let progress = (step - self.warmup_steps) as f64
            / (self.total_steps.saturating_sub(self.warmup_steps)).max(1) as f64;
        self.peak * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_as_a_half_cosine() {
        let s = CosineSchedule::new(1e-3, 0.03, 100);
        assert_eq!(s.warmup_steps, 3);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(1) - 1e-3 / 3.0).abs() < 1e-12);
        assert!((s.lr(3) - 1e-3).abs() < 1e-12);
        // Halfway through the decay the factor is 0.5.
        let mid = 3 + (100 - 3) / 2;
        let expected = 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * 48.0 / 97.0).cos());
        assert!((s.lr(mid) - expected).abs() < 1e-12);
        assert!(s.lr(100) < 1e-12);
        let monotone = (3..100).all(|k| s.lr(k + 1) <= s.lr(k));
        assert!(monotone);
    }

    #[test]
    fn no_warmup_starts_at_the_peak() {
        let s = CosineSchedule::new(2e-3, 0.0, 10);
        assert_eq!(s.lr(0), 2e-3);
    }
}
