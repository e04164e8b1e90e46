//! ROUGE-1/2/L F-measure with rouge-score's defaults (no stemmer).
//!
//! rouge-score's tokenizer lowercases, turns every character outside `[a-z0-9]` into a space
//! and keeps the non-empty runs; ROUGE-N counts clipped n-gram overlap, ROUGE-L the longest
//! common subsequence; F = 2PR / (P + R), 0 when both are 0.

use super::bleu::ngram_counts;

/// The three F-measures of one prediction against its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeScores {
    /// ROUGE-1 F-measure.
    pub rouge1: f64,
    /// ROUGE-2 F-measure.
    pub rouge2: f64,
    /// ROUGE-L F-measure.
    pub rouge_l: f64,
}

/// rouge-score's default tokenizer (`tokenize.tokenize(text, None)`).
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            current.push(c);
        } else if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn rouge_n(target: &[String], prediction: &[String], n: usize) -> f64 {
    let t = ngram_counts(target, n);
    let p = ngram_counts(prediction, n);
    let overlap: usize = t
        .iter()
        .map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let t_total: usize = t.values().sum();
    let p_total: usize = p.values().sum();
    let precision = overlap as f64 / p_total.max(1) as f64;
    let recall = overlap as f64 / t_total.max(1) as f64;
    fmeasure(precision, recall)
}

fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn rouge_l(target: &[String], prediction: &[String]) -> f64 {
    if target.is_empty() || prediction.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(target, prediction) as f64;
    fmeasure(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// `RougeScorer(["rouge1", "rouge2", "rougeL"]).score(target, prediction)` F-measures.
pub fn score(target: &str, prediction: &str) -> RougeScores {
    let t = tokenize(target);
    let p = tokenize(prediction);
    RougeScores {
        rouge1: rouge_n(&t, &p, 1),
        rouge2: rouge_n(&t, &p, 2),
        rouge_l: rouge_l(&t, &p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keeps_lowercase_alphanumeric_runs() {
        assert_eq!(
            tokenize("The 2-Oxo ACID, naïve!"),
            ["the", "2", "oxo", "acid", "na", "ve"]
        );
    }

    #[test]
    fn hand_computed_scores() {
        // target "a b c d", prediction "a c b": unigram overlap 3 -> P 1, R 3/4;
        // bigrams {ab, bc, cd} vs {ac, cb}: none; LCS 2 -> P 2/3, R 1/2.
        let s = score("a b c d", "a c b");
        assert!((s.rouge1 - 2.0 * 0.75 / 1.75).abs() < 1e-12);
        assert_eq!(s.rouge2, 0.0);
        let (p, r) = (2.0 / 3.0, 0.5);
        assert!((s.rouge_l - 2.0 * p * r / (p + r)).abs() < 1e-12);
        assert_eq!(score("", "a").rouge_l, 0.0);
    }
}
