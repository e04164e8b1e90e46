//! Reaction tasks (forward, retrosynthesis, reagent): SELFIES answers scored against SELFIES
//! references as InstructMol's `mol_translation_selfies.py` does.
//!
//! SELFIES -> SMILES (our `selfies.decoder`) -> molecule (RDKit `MolFromSmiles` semantics) ->
//! canonical SMILES without stereo. Predictions that fail any step (or decode to nothing)
//! are invalid and dropped, as the reference drops them; the other metrics are over the
//! valid rows:
//! - `exact`: canonical SMILES equality (the reference compares InChI strings; the two agree
//!   except for tautomers and similar cases InChI merges);
//! - `bleu`: corpus BLEU-4 over the characters of the SELFIES strings (nltk `corpus_bleu`);
//! - `levenshtein`: mean edit distance between canonical SMILES (python-Levenshtein). Our
//!   canonical SMILES name the same molecules as RDKit's but are not the same strings, so
//!   this value differs from the reference's;
//! - `validity`: valid rows / all rows. (The reference reports 1 - failures *after* dropping
//!   invalid rows, which is always 1.)
//!
//! The three fingerprint similarity columns come from [`fingerprint_similarities`].

use crate::chem::canon::canonical_from_smiles;
use crate::chem::fingerprints::similarities;
use crate::chem::mol_from_smiles;
use crate::chem::selfies;

use super::bleu::corpus_bleu;
use super::{EvalError, Metric, Prediction, Task, TaskMetrics, Value};

/// Canonical non-isomeric SMILES of a SELFIES string, or `None` when it is not a molecule.
pub fn canonical_of_selfies(text: &str) -> Option<String> {
    let smiles = selfies::decode(text).ok()?;
    if smiles.is_empty() {
        return None;
    }
    canonical_from_smiles(&smiles, false).ok()
}

/// Levenshtein distance between two strings, in Unicode scalar values (unit costs).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// MACCS, RDKit-topological and Morgan (radius 2, counts) Tanimoto similarities between
/// predicted and reference molecules (canonical SMILES pairs of the valid rows), averaged over
/// the pairs as the reference does; computed with [`crate::chem::fingerprints`], which matches
/// RDKit's fingerprints bit for bit.
pub fn fingerprint_similarities(pairs: &[(String, String)]) -> [Metric; 3] {
    let mut sums = [0f64; 3];
    let mut n = 0usize;
    for (p, t) in pairs {
        let (Ok(a), Ok(b)) = (mol_from_smiles(p), mol_from_smiles(t)) else {
            continue;
        };
        let s = similarities(&a, &b);
        sums[0] += s.maccs;
        sums[1] += s.rdk;
        sums[2] += s.morgan;
        n += 1;
    }
    let value = |sum: f64| {
        if n == 0 {
            Value::Undefined("no valid prediction".into())
        } else {
            Value::Number(sum / n as f64)
        }
    };
    [
        Metric {
            name: "maccs_fts",
            value: value(sums[0]),
        },
        Metric {
            name: "rdk_fts",
            value: value(sums[1]),
        },
        Metric {
            name: "morgan_fts",
            value: value(sums[2]),
        },
    ]
}

/// Scores SELFIES predictions. A reference that is not a valid molecule is an error.
pub fn score(task: Task, rows: &[Prediction]) -> Result<TaskMetrics, EvalError> {
    let mut refs_chars = Vec::new();
    let mut hyps_chars = Vec::new();
    let mut pairs = Vec::new();
    for row in rows {
        let truth = canonical_of_selfies(&row.reference).ok_or_else(|| {
            row.error(format!(
                "reference is not a valid molecule in SELFIES: {}",
                row.reference
            ))
        })?;
        let Some(pred) = canonical_of_selfies(&row.prediction) else {
            continue;
        };
        refs_chars.push(row.reference.chars().collect::<Vec<char>>());
        hyps_chars.push(row.prediction.chars().collect::<Vec<char>>());
        pairs.push((pred, truth));
    }
    let valid = pairs.len();
    let mut metrics = Vec::new();
    if valid == 0 {
        for name in ["exact", "bleu", "levenshtein"] {
            metrics.push(Metric::undefined(name, "no valid prediction"));
        }
    } else {
        let exact = pairs.iter().filter(|(p, t)| p == t).count();
        let lev: usize = pairs.iter().map(|(p, t)| levenshtein(p, t)).sum();
        metrics.push(Metric::number("exact", exact as f64 / valid as f64));
        metrics.push(Metric::number(
            "bleu",
            corpus_bleu(&refs_chars, &hyps_chars, &[0.25; 4]),
        ));
        metrics.push(Metric::number("levenshtein", lev as f64 / valid as f64));
    }
    metrics.extend(fingerprint_similarities(&pairs));
    metrics.push(Metric::number("validity", valid as f64 / rows.len() as f64));
    metrics.push(Metric::count("valid", valid));
    metrics.push(Metric::count("total", rows.len()));
    Ok(TaskMetrics {
        task,
        rows: rows.len(),
        metrics,
        notes: vec![
            "invalid predictions are dropped before exact/bleu/levenshtein, as in the reference; validity = valid / total".into(),
            "exact: canonical SMILES equality (the reference uses InChI equality)".into(),
            "levenshtein: over our canonical SMILES, which are not RDKit's strings".into(),
            "maccs_fts / rdk_fts / morgan_fts: mean Tanimoto over the valid pairs (RDKit-identical fingerprints)".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::levenshtein;

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("CCO", "CCO"), 0);
    }
}
