//! Log-probabilities of generated tokens, as OpenAI's and vLLM's APIs report them: the
//! log-softmax of the model's raw logits at that step (before penalties, temperature and
//! top-p), for the chosen token and the `k` most likely ones.

use serde::Serialize;

/// The log-probabilities of one generation step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprobs {
    /// The chosen token.
    pub id: u32,
    /// Its log-probability (`-inf` when its logit was `-inf`).
    pub logprob: f32,
    /// The `k` most likely tokens with their log-probabilities, most likely first (equal
    /// logits: lower id first).
    pub top: Vec<(u32, f32)>,
}

/// Log-probabilities at one step from one row of raw logits: `chosen`'s and the `top_k` most
/// likely tokens'. `None` when the row has no finite logit or `chosen` lies outside it.
/// Non-finite logits count as probability 0 (a NaN is never among the top tokens).
pub fn token_logprobs(logits: &[f32], chosen: u32, top_k: usize) -> Option<TokenLogprobs> {
    let max = logits
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let max = f64::from(max);
    let sum: f64 = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| (f64::from(v) - max).exp())
        .sum();
    let log_z = max + sum.ln();
    let logprob = |v: f32| -> f32 {
        if v.is_finite() {
            (f64::from(v) - log_z) as f32
        } else {
            f32::NEG_INFINITY
        }
    };
    let chosen_logit = *logits.get(chosen as usize)?;
    let mut top: Vec<u32> = Vec::new();
    if top_k > 0 {
        top = (0..logits.len() as u32)
            .filter(|&i| logits[i as usize].is_finite())
            .collect();
        let order = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        if top_k < top.len() {
            top.select_nth_unstable_by(top_k - 1, order);
            top.truncate(top_k);
        }
        top.sort_unstable_by(order);
    }
    Some(TokenLogprobs {
        id: chosen,
        logprob: logprob(chosen_logit),
        top: top
            .into_iter()
            .map(|i| (i, logprob(logits[i as usize])))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_of_the_raw_logits() {
        // Probabilities 0.5, 0.25, 0.125, 0.125 (shifted by 7: the softmax does not move).
        let logits: Vec<f32> = [0.5f64, 0.25, 0.125, 0.125]
            .iter()
            .map(|p| (p.ln() + 7.0) as f32)
            .collect();
        let lp = token_logprobs(&logits, 2, 3).unwrap();
        assert_eq!(lp.id, 2);
        assert!((lp.logprob - 0.125f32.ln()).abs() < 1e-5, "{lp:?}");
        let ids: Vec<u32> = lp.top.iter().map(|t| t.0).collect();
        // Ids 2 and 3 tie: the lower id comes first.
        assert_eq!(ids, [0, 1, 2]);
        for ((_, got), want) in lp.top.iter().zip([0.5f32, 0.25, 0.125]) {
            assert!((got - want.ln()).abs() < 1e-5, "{lp:?}");
        }
        let total: f32 = token_logprobs(&logits, 0, 10)
            .unwrap()
            .top
            .iter()
            .map(|t| t.1.exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(token_logprobs(&logits, 0, 0).unwrap().top.is_empty());
    }

    #[test]
    fn non_finite_logits_have_no_probability() {
        let logits = [f32::NEG_INFINITY, 0.0, f32::NAN, 0.0];
        let lp = token_logprobs(&logits, 0, 4).unwrap();
        assert_eq!(lp.logprob, f32::NEG_INFINITY);
        assert_eq!(lp.top.len(), 2);
        assert!((lp.top[0].1 - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(token_logprobs(&logits, 4, 1), None);
        assert_eq!(token_logprobs(&[f32::NEG_INFINITY], 0, 1), None);
        assert_eq!(token_logprobs(&[], 0, 1), None);
    }
}
