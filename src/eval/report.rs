//! `metrics.json` and a Markdown table with the paper's numbers beside ours.
//!
//! Paper numbers (InstructMol, arXiv 2311.16208, Tables 1-4) as listed in REFERENCE.md; NaN
//! marks a column the paper does not report.

use serde_json::{json, Map, Value as Json};

use super::{Task, TaskMetrics, Value};

/// One column of a task's table: our metric name, header, and scale for display.
struct Column {
    metric: &'static str,
    header: &'static str,
    /// Multiplier for display (ROC-AUC is shown in percent, as in the paper).
    scale: f64,
}

const fn col(metric: &'static str, header: &'static str) -> Column {
    Column {
        metric,
        header,
        scale: 1.0,
    }
}

/// The table layout and the paper's rows for `task`.
fn layout(task: Task) -> (Vec<Column>, Vec<(&'static str, Vec<f64>)>) {
    let auc = |metric, header| Column {
        metric,
        header,
        scale: 100.0,
    };
    match task {
        Task::Chebi20 => (
            vec![
                col("bleu2", "BLEU-2"),
                col("bleu4", "BLEU-4"),
                col("rouge1", "ROUGE-1"),
                col("rouge2", "ROUGE-2"),
                col("rougeL", "ROUGE-L"),
                col("meteor", "METEOR"),
            ],
            vec![
                (
                    "InstructMol-G (paper)",
                    vec![0.466, 0.365, 0.547, 0.365, 0.479, 0.491],
                ),
                (
                    "InstructMol-GS (paper)",
                    vec![0.475, 0.371, 0.566, 0.394, 0.502, 0.509],
                ),
                (
                    "MolT5-base (paper)",
                    vec![0.540, 0.457, 0.634, 0.485, 0.568, 0.569],
                ),
                (
                    "MolCA (paper)",
                    vec![0.620, 0.531, 0.681, 0.537, 0.618, 0.651],
                ),
            ],
        ),
        Task::Bace | Task::Bbbp | Task::Hiv => {
            let (g, gs, unimol) = match task {
                Task::Bace => (84.3, 82.1, 85.7),
                Task::Bbbp => (68.6, 72.4, 72.9),
                _ => (74.0, 68.9, 80.8),
            };
            (
                vec![
                    auc("roc_auc_prob", "ROC-AUC (prob)"),
                    auc("roc_auc_hard", "ROC-AUC (hard)"),
                ],
                // the paper's ROC-AUC comes from the reference's hard-label scoring
                vec![
                    ("InstructMol-G (paper)", vec![f64::NAN, g]),
                    ("InstructMol-GS (paper)", vec![f64::NAN, gs]),
                    ("Uni-Mol (paper)", vec![f64::NAN, unimol]),
                ],
            )
        }
        Task::Qm9 => (
            vec![
                col("mae_homo", "HOMO"),
                col("mae_lumo", "LUMO"),
                col("mae_gap", "gap"),
                col("mae_average", "avg"),
            ],
            vec![
                (
                    "InstructMol-G (paper)",
                    vec![0.0060, 0.0070, 0.0082, 0.0070],
                ),
                (
                    "InstructMol-GS (paper)",
                    vec![0.0048, 0.0050, 0.0061, 0.0050],
                ),
            ],
        ),
        // Not a benchmark: no columns of the paper's.
        Task::PubchemPairs => (Vec::new(), Vec::new()),
        Task::Forward | Task::Retrosynthesis | Task::Reagent => {
            let paper = match task {
                Task::Forward => vec![0.536, 0.967, 10.851, 0.776, 0.878, 0.741, 1.000],
                Task::Retrosynthesis => vec![0.407, 0.941, 13.967, 0.753, 0.852, 0.714, 1.000],
                _ => vec![0.129, 0.610, 19.664, 0.444, 0.539, 0.400, 1.000],
            };
            (
                vec![
                    col("exact", "Exact"),
                    col("bleu", "BLEU"),
                    col("levenshtein", "Levenshtein"),
                    col("rdk_fts", "RDK FTS"),
                    col("maccs_fts", "MACCS FTS"),
                    col("morgan_fts", "Morgan FTS"),
                    col("validity", "Validity"),
                ],
                vec![("InstructMol-GS (paper)", paper)],
            )
        }
    }
}

fn json_value(v: &Value) -> Json {
    match v {
        Value::Number(x) => json!(x),
        Value::Count(n) => json!(n),
        Value::Undefined(_) => Json::Null,
        Value::Pending => json!("pending"),
    }
}

/// The `metrics.json` document: task, rows, metrics (null when undefined, "pending" when not
/// computed yet), reasons for undefined values, and notes.
pub fn metrics_json(m: &TaskMetrics) -> Json {
    let mut metrics = Map::new();
    let mut undefined = Map::new();
    for metric in &m.metrics {
        metrics.insert(metric.name.to_string(), json_value(&metric.value));
        if let Value::Undefined(why) = &metric.value {
            undefined.insert(metric.name.to_string(), json!(why));
        }
    }
    json!({
        "task": m.task.name(),
        "rows": m.rows,
        "metrics": metrics,
        "undefined": undefined,
        "notes": m.notes,
    })
}

fn cell(v: Option<&Value>, scale: f64) -> String {
    match v {
        Some(Value::Number(x)) if scale != 1.0 => format!("{:.1}", x * scale),
        Some(Value::Number(x)) if x.abs() >= 1.0 => format!("{x:.3}"),
        Some(Value::Number(x)) => format!("{x:.4}"),
        Some(Value::Count(n)) => n.to_string(),
        Some(Value::Undefined(_)) | None => "n/a".into(),
        Some(Value::Pending) => "pending".into(),
    }
}

/// A Markdown section: our row (labelled `label`) and the paper's rows, then the notes.
pub fn markdown(m: &TaskMetrics, label: &str) -> String {
    let (columns, paper) = layout(m.task);
    let mut out = format!("### {} ({} rows)\n\n| model |", m.task.name(), m.rows);
    for c in &columns {
        out.push_str(&format!(" {} |", c.header));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push_str(&format!("\n| **{label}** |"));
    for c in &columns {
        out.push_str(&format!(" {} |", cell(m.get(c.metric), c.scale)));
    }
    for (name, values) in &paper {
        out.push_str(&format!("\n| {name} |"));
        for (c, v) in columns.iter().zip(values) {
            let shown = if v.is_nan() {
                "–".to_string()
            } else if c.scale != 1.0 {
                format!("{v:.1}")
            } else {
                cell(Some(&Value::Number(*v)), 1.0)
            };
            out.push_str(&format!(" {shown} |"));
        }
    }
    out.push_str("\n\n");
    for note in &m.notes {
        out.push_str(&format!("- {note}\n"));
    }
    out
}
