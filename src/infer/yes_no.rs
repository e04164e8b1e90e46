//! The probability of "Yes" for yes/no questions (BACE, BBBP, HIV), read from the logits of
//! the first answer token: `p(Yes) / (p(Yes) + p(No))` under the softmax at that position.
//!
//! "Yes" and "No" may be spelled by several tokens of a vocabulary (`Yes` and ` Yes`); the
//! probabilities of the variants are summed. A variant counts when the tokenizer spells it
//! with one token. When a word has no one-token spelling, the first token of its plain
//! spelling stands for it (e.g. `Y` of `Y`+`es`), provided it differs from the other word's.

use super::{InferError, Result};
use crate::model::ModelTokenizer;

/// The token ids that start a "Yes" and a "No" answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YesNoIds {
    /// Ids of "Yes" (and its leading-space variant, when the vocabulary has it).
    pub yes: Vec<u32>,
    /// Ids of "No" (and its leading-space variant, when the vocabulary has it).
    pub no: Vec<u32>,
}

/// Ids of a word: its one-token spellings (plain and leading space), or else the first token
/// of the plain spelling.
fn word_ids(tokenizer: &ModelTokenizer, word: &str) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for spelling in [word.to_string(), format!(" {word}")] {
        if let [id] = tokenizer.encode(&spelling, false)?[..] {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        let first = tokenizer.encode(word, false)?.first().copied();
        ids.extend(first);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

impl YesNoIds {
    /// The ids of "Yes" and "No" in `tokenizer`'s vocabulary. Fails when either word has no
    /// token or both start with the same token.
    pub fn from_tokenizer(tokenizer: &ModelTokenizer) -> Result<Self> {
        let yes = word_ids(tokenizer, "Yes")?;
        let no = word_ids(tokenizer, "No")?;
        if yes.is_empty() || no.is_empty() || yes.iter().any(|id| no.contains(id)) {
            return Err(InferError::Input(format!(
                "the tokenizer cannot tell \"Yes\" from \"No\" by their first token (Yes -> {yes:?}, No -> {no:?}); \
                 prob_yes is not available for this model"
            )));
        }
        Ok(Self { yes, no })
    }

    /// `p(Yes) / (p(Yes) + p(No))` from one row of logits (the softmax's normaliser cancels).
    pub fn prob_yes(&self, logits: &[f32]) -> Result<f64> {
        let pick = |ids: &[u32]| -> Result<Vec<f64>> {
            ids.iter()
                .map(|&id| {
                    logits
                        .get(id as usize)
                        .map(|&v| f64::from(v))
                        .ok_or_else(|| {
                            InferError::Input(format!(
                                "token id {id} is outside the logits ({} entries)",
                                logits.len()
                            ))
                        })
                })
                .collect()
        };
        let (yes, no) = (pick(&self.yes)?, pick(&self.no)?);
        let max = yes
            .iter()
            .chain(&no)
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return Err(InferError::Input(
                "the logits of \"Yes\" and \"No\" are not finite".to_string(),
            ));
        }
        let sum = |v: &[f64]| v.iter().map(|x| (x - max).exp()).sum::<f64>();
        let (py, pn) = (sum(&yes), sum(&no));
        Ok(py / (py + pn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prob_yes_sums_variants_and_ignores_other_tokens() {
        let ids = YesNoIds {
            yes: vec![1, 3],
            no: vec![2],
        };
        // p ∝ e^0, e^ln2, e^ln3, e^ln4, e^10 for ids 0..5: yes = 2 + 4, no = 3.
        let logits = [0.0f32, 2f32.ln(), 3f32.ln(), 4f32.ln(), 10.0];
        let p = ids.prob_yes(&logits).unwrap_or(f64::NAN);
        assert!((p - 6.0 / 9.0).abs() < 1e-6, "{p}");
        assert!(ids.prob_yes(&[0.0, 1.0]).is_err());
    }
}
