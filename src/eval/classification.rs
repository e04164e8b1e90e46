//! MoleculeNet yes/no tasks (BACE, BBBP, HIV): answer parsing and ROC-AUC.
//!
//! Answers are parsed as the reference's `convert_label_to_int`: the whole answer, trimmed
//! and lowercased, must be `yes`/`true`/`active` (1) or `no`/`false`/`inactive` (0); anything
//! else ("Yes.", "yes, it can") is invalid (-1). The reference's ROC-AUC scores these hard
//! labels with invalid answers as -1 (ranked below "no"); when every row has `prob_yes`, the
//! ROC-AUC of that probability is given too. ROC-AUC counts ties as half (scikit-learn's
//! `roc_auc_score`).

use super::{EvalError, Metric, Prediction, Task, TaskMetrics};

/// The reference's answer parsing: `Some(true)` yes, `Some(false)` no, `None` invalid.
pub fn parse_answer(answer: &str) -> Option<bool> {
    match answer.trim().to_lowercase().as_str() {
        "yes" | "true" | "active" => Some(true),
        "no" | "false" | "inactive" => Some(false),
        _ => None,
    }
}

/// Area under the ROC curve of `scores` for binary `labels` (ties count one half);
/// `None` when only one class is present.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = labels.iter().filter(|&&l| l).count() as u128;
    let negatives = labels.len() as u128 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // twice the Mann-Whitney U: 2 * (negatives below) + (negatives tied), per positive
    let (mut twice_u, mut neg_below) = (0u128, 0u128);
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        let (mut pos, mut neg) = (0u128, 0u128);
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            if pairs[j].1 {
                pos += 1;
            } else {
                neg += 1;
            }
            j += 1;
        }
        twice_u += pos * (2 * neg_below + neg);
        neg_below += neg;
        i = j;
    }
    Some(twice_u as f64 / (2 * positives * negatives) as f64)
}

/// Scores yes/no predictions; `reference` must parse as yes or no.
pub fn score(task: Task, rows: &[Prediction]) -> Result<TaskMetrics, EvalError> {
    let mut labels = Vec::with_capacity(rows.len());
    let mut hard = Vec::with_capacity(rows.len());
    let mut probs = Vec::with_capacity(rows.len());
    let (mut invalid, mut correct) = (0usize, 0usize);
    let with_prob = rows.iter().filter(|r| r.prob_yes.is_some()).count();
    for row in rows {
        let label = parse_answer(&row.reference).ok_or_else(|| {
            row.error(format!(
                "reference \"{}\" is not a yes/no label (yes/true/active or no/false/inactive)",
                row.reference
            ))
        })?;
        let answer = parse_answer(&row.prediction);
        match answer {
            None => invalid += 1,
            Some(a) if a == label => correct += 1,
            Some(_) => {}
        }
        labels.push(label);
        hard.push(match answer {
            Some(true) => 1.0,
            Some(false) => 0.0,
            None => -1.0,
        });
        if with_prob > 0 {
            let p = row.prob_yes.ok_or_else(|| {
                row.error(format!(
                    "no prob_yes while {with_prob} other rows have one: give it on every row or on none"
                ))
            })?;
            probs.push(p);
        }
    }
    let one_class = "only one class among the references";
    let auc = |scores: &[f64], name| match roc_auc(&labels, scores) {
        Some(v) => Metric::number(name, v),
        None => Metric::undefined(name, one_class),
    };
    let mut metrics = Vec::new();
    if with_prob > 0 {
        metrics.push(auc(&probs, "roc_auc_prob"));
    } else {
        metrics.push(Metric::undefined(
            "roc_auc_prob",
            "no prob_yes in the predictions",
        ));
    }
    metrics.push(auc(&hard, "roc_auc_hard"));
    metrics.push(Metric::number(
        "accuracy",
        correct as f64 / rows.len() as f64,
    ));
    metrics.push(Metric::count("invalid", invalid));
    metrics.push(Metric::count("total", rows.len()));
    Ok(TaskMetrics {
        task,
        rows: rows.len(),
        metrics,
        notes: vec![
            "roc_auc_hard: the reference's ROC-AUC of parsed answers (yes 1, no 0, invalid -1)"
                .into(),
            "roc_auc_prob: ROC-AUC of the probability of \"Yes\" (prob_yes)".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_is_whole_answer() {
        assert_eq!(parse_answer(" YES\n"), Some(true));
        assert_eq!(parse_answer("Inactive"), Some(false));
        assert_eq!(parse_answer("Yes."), None);
        assert_eq!(parse_answer("yes it is"), None);
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // positives at 0.8 and 0.5, negatives at 0.5 and 0.1: pairs (0.8>0.5, 0.8>0.1,
        // 0.5=0.5 half, 0.5>0.1) = 3.5 / 4
        let auc = roc_auc(&[true, true, false, false], &[0.8, 0.5, 0.5, 0.1]);
        assert_eq!(auc, Some(0.875));
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
    }
}
