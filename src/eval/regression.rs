//! QM9 HOMO/LUMO/gap: mean absolute error per property and on average.
//!
//! Answers are read like Python's `float()` (surrounding whitespace, signs, exponents,
//! `_` between digits; `nan`/`inf` parse but are counted invalid, since scikit-learn's MAE
//! rejects them). The reference's `property_metrics.py` calls `float(pred)` and stops at the
//! first answer that is not a number; here such answers are counted as `invalid` and left
//! out of the MAE. Non-ASCII digits, which Python also accepts, are invalid here.
//!
//! The property of a row comes from its `property` field (`homo`, `lumo`, `gap`); rows
//! without it count only in `mae_all`. `mae_average` is the mean of the per-property MAEs
//! present (the paper's "avg" when all three are).

use super::{EvalError, Metric, Prediction, Task, TaskMetrics};

/// Python `float(text)` for finite values; `None` for anything else.
pub fn parse_float(text: &str) -> Option<f64> {
    let s = text.trim();
    let chars: Vec<char> = s.chars().collect();
    if !chars.iter().all(|c| c.is_ascii()) {
        return None;
    }
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let before = i > 0 && chars[i - 1].is_ascii_digit();
            let after = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        }
    }
    let cleaned: String = chars.into_iter().filter(|&c| c != '_').collect();
    let v: f64 = cleaned.parse().ok()?;
    v.is_finite().then_some(v)
}

const PROPERTIES: [&str; 3] = ["homo", "lumo", "gap"];

fn mae(pairs: &[(f64, f64)]) -> f64 {
    pairs.iter().map(|(t, p)| (p - t).abs()).sum::<f64>() / pairs.len() as f64
}

/// Scores numeric answers against numeric references.
pub fn score(rows: &[Prediction]) -> Result<TaskMetrics, EvalError> {
    let mut groups: Vec<Vec<(f64, f64)>> = vec![Vec::new(); PROPERTIES.len()];
    let mut all = Vec::new();
    let mut invalid = 0;
    for row in rows {
        let truth = parse_float(&row.reference).ok_or_else(|| {
            row.error(format!(
                "reference \"{}\" is not a finite number",
                row.reference
            ))
        })?;
        let group = match &row.property {
            None => None,
            Some(p) => Some(
                PROPERTIES
                    .iter()
                    .position(|q| q.eq_ignore_ascii_case(p.trim()))
                    .ok_or_else(|| {
                        row.error(format!(
                            "property \"{p}\" of id {} is not homo, lumo or gap",
                            row.id
                        ))
                    })?,
            ),
        };
        let Some(pred) = parse_float(&row.prediction) else {
            invalid += 1;
            continue;
        };
        if let Some(g) = group {
            groups[g].push((truth, pred));
        }
        all.push((truth, pred));
    }
    let mut metrics = Vec::new();
    let mut per_property = Vec::new();
    for (name, pairs) in ["mae_homo", "mae_lumo", "mae_gap"].into_iter().zip(&groups) {
        if pairs.is_empty() {
            metrics.push(Metric::undefined(name, "no valid rows with this property"));
        } else {
            let v = mae(pairs);
            per_property.push(v);
            metrics.push(Metric::number(name, v));
        }
    }
    if per_property.is_empty() {
        metrics.push(Metric::undefined(
            "mae_average",
            "no rows with a property field",
        ));
    } else {
        metrics.push(Metric::number(
            "mae_average",
            per_property.iter().sum::<f64>() / per_property.len() as f64,
        ));
    }
    if all.is_empty() {
        metrics.push(Metric::undefined("mae_all", "no valid answers"));
    } else {
        metrics.push(Metric::number("mae_all", mae(&all)));
    }
    metrics.push(Metric::count("invalid", invalid));
    metrics.push(Metric::count("total", rows.len()));
    Ok(TaskMetrics {
        task: Task::Qm9,
        rows: rows.len(),
        metrics,
        notes: vec![
            "answers that are not finite numbers are counted as invalid and left out of the MAE (the reference's float() would stop)".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::parse_float;

    #[test]
    fn python_float_forms() {
        assert_eq!(parse_float(" -0.25\n"), Some(-0.25));
        assert_eq!(parse_float("1_0.5"), Some(10.5));
        assert_eq!(parse_float("+.5e-1"), Some(0.05));
        assert_eq!(parse_float("5."), Some(5.0));
        for bad in [
            "", "nan", "inf", "1_", "_1", "1__0", "0x10", "1,5", "−0.2", "e-3",
        ] {
            assert_eq!(parse_float(bad), None, "{bad}");
        }
    }
}
