//! Corpus BLEU with nltk `corpus_bleu` semantics (one reference per hypothesis).
//!
//! Modified n-gram precision with counts clipped by the reference, numerators and denominators
//! summed over the corpus (each sentence's denominator at least 1), brevity penalty
//! `exp(1 - r/c)` from the summed lengths, no smoothing: an order with no match contributes
//! `ln(f64::MIN_POSITIVE)` exactly as nltk's `method0` does, and no unigram match gives 0.

use std::collections::HashMap;
use std::hash::Hash;

/// Counts of every n-gram of length `n` in `tokens`.
pub(crate) fn ngram_counts<T: Eq + Hash>(tokens: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts = HashMap::new();
    if n > 0 && tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// Corpus BLEU of `hypotheses` against one reference each, with n-gram `weights`
/// (`[0.5, 0.5]` is BLEU-2, `[0.25; 4]` BLEU-4). Pairs are zipped; extra items are ignored.
pub fn corpus_bleu<T: Eq + Hash>(
    references: &[Vec<T>],
    hypotheses: &[Vec<T>],
    weights: &[f64],
) -> f64 {
    let max_n = weights.len();
    let mut numerators = vec![0u64; max_n];
    let mut denominators = vec![0u64; max_n];
    let (mut hyp_len, mut ref_len) = (0u64, 0u64);
    for (reference, hypothesis) in references.iter().zip(hypotheses) {
        for n in 1..=max_n {
            let hyp_counts = ngram_counts(hypothesis, n);
            let ref_counts = ngram_counts(reference, n);
            let clipped: usize = hyp_counts
                .iter()
                .map(|(gram, &c)| c.min(ref_counts.get(gram).copied().unwrap_or(0)))
                .sum();
            let total: usize = hyp_counts.values().sum();
            numerators[n - 1] += clipped as u64;
            denominators[n - 1] += total.max(1) as u64;
        }
        hyp_len += hypothesis.len() as u64;
        ref_len += reference.len() as u64;
    }
    if max_n == 0 || numerators[0] == 0 {
        return 0.0;
    }
    let brevity = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    let log_sum: f64 = weights
        .iter()
        .zip(numerators.iter().zip(&denominators))
        .map(|(w, (&num, &den))| {
            let p = if num == 0 {
                f64::MIN_POSITIVE
            } else {
                num as f64 / den as f64
            };
            w * p.ln()
        })
        .sum();
    brevity * log_sum.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn identical_corpus_scores_one() {
        let r = vec![words("the cat sat on the mat today")];
        assert!((corpus_bleu(&r, &r, &[0.25; 4]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn clipping_and_brevity() {
        // "the the the the" against "the cat": unigram precision clipped to 1/4, no bigram
        // overlap; hypothesis longer than the reference, so no brevity penalty.
        let r = vec![words("the cat")];
        let h = vec![words("the the the the")];
        let b1 = corpus_bleu(&r, &h, &[1.0]);
        assert!((b1 - 0.25).abs() < 1e-12);
        // a short hypothesis is penalised: exp(1 - 4/2)
        let r = vec![words("a b c d")];
        let h = vec![words("a b")];
        assert!((corpus_bleu(&r, &h, &[1.0]) - (-1.0f64).exp()).abs() < 1e-12);
    }

    #[test]
    fn no_unigram_match_is_zero() {
        let r = vec![words("x y")];
        let h = vec![words("a b")];
        assert_eq!(corpus_bleu(&r, &h, &[0.5, 0.5]), 0.0);
        assert_eq!(corpus_bleu::<&str>(&[], &[], &[0.5, 0.5]), 0.0);
    }
}
