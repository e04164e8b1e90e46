//! Scoring model answers on the paper's benchmarks with the reference implementations'
//! metric definitions (InstructMol `llava/eval`, MolT5's evaluation, nltk, rouge-score,
//! scikit-learn).
//!
//! Input is a list of [`Prediction`]s (a predictions JSONL file, or rows a generating run
//! produces); [`score`] turns them into [`TaskMetrics`] for one [`Task`], and [`report`]
//! writes `metrics.json` and a Markdown table with the paper's rows beside ours.

pub mod bleu;
pub mod classification;
pub mod meteor;
pub mod porter;
pub mod reactions;
pub mod regression;
pub mod report;
pub mod rouge;
pub mod text;
pub mod wordnet;
pub mod wordpiece;

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

pub use text::TextResources;
pub use wordnet::{WordNet, WordNetError};
pub use wordpiece::{TextTokenizer, WordPieceError};

/// The task list is the data layer's: every benchmark task can be evaluated, stage-1 caption
/// pairs cannot ([`parse_task`]).
pub use crate::data::prepare::Task;

/// The benchmark tasks, in the paper's order.
pub const TASKS: [Task; 8] = [
    Task::Chebi20,
    Task::Bace,
    Task::Bbbp,
    Task::Hiv,
    Task::Qm9,
    Task::Forward,
    Task::Retrosynthesis,
    Task::Reagent,
];

/// A benchmark task from its command-line name (case-insensitive).
pub fn parse_task(s: &str) -> Result<Task, EvalError> {
    TASKS
        .into_iter()
        .find(|t| t.name() == s.to_ascii_lowercase())
        .ok_or_else(|| EvalError::UnknownTask(s.to_string()))
}

/// Everything that can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The task name is not one of ours.
    #[error("unknown task '{0}': expected one of chebi20, bace, bbbp, hiv, qm9, retrosynthesis, forward, reagent")]
    UnknownTask(String),
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A predictions line is not usable.
    #[error("{source_name}, line {line}: {message}")]
    Line {
        /// File name (or "<stdin>").
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// A row's content cannot be scored (e.g. its reference is not a label, number or molecule).
    #[error("row {id} (line {line} of the predictions): {message}")]
    Row {
        /// 1-based line in the predictions file (0 for rows built in memory).
        line: usize,
        /// The row's id.
        id: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The predictions file has no rows.
    #[error("{0}: no predictions (the file has no non-empty line)")]
    Empty(String),
    /// The WordNet files could not be loaded.
    #[error(transparent)]
    WordNet(#[from] WordNetError),
    /// The WordPiece tokenizer failed.
    #[error(transparent)]
    WordPiece(#[from] WordPieceError),
}

/// One model answer with its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Row identifier (`id`; numbers are kept as their JSON text).
    pub id: String,
    /// The model's answer.
    pub prediction: String,
    /// The ground truth (`reference`; numbers are kept as their JSON text).
    pub reference: String,
    /// Probability of "Yes" (classification tasks, optional).
    pub prob_yes: Option<f64>,
    /// QM9 property of the row: `homo`, `lumo` or `gap` (optional).
    pub property: Option<String>,
    /// Where the row came from (1-based line; 0 for rows built in memory).
    pub line: usize,
}

impl Prediction {
    /// An error about this row.
    pub fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError::Row {
            line: self.line,
            id: self.id.clone(),
            message: message.into(),
        }
    }

    /// A row built in memory (e.g. by a generating run).
    pub fn new(
        id: impl Into<String>,
        prediction: impl Into<String>,
        reference: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            prediction: prediction.into(),
            reference: reference.into(),
            prob_yes: None,
            property: None,
            line: 0,
        }
    }
}

fn text_field(obj: &serde_json::Map<String, Json>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(Json::Number(n)) => Ok(n.to_string()),
        Some(Json::Bool(b)) => Ok(b.to_string()),
        Some(Json::Null) | None => Err(format!(
            "missing field \"{key}\" (every line needs \"id\", \"prediction\" and \"reference\")"
        )),
        Some(other) => Err(format!("field \"{key}\" must be a string, not {other}")),
    }
}

fn parse_line(text: &str, line: usize) -> Result<Prediction, String> {
    let value: Json = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let Json::Object(obj) = value else {
        return Err("expected a JSON object {\"id\", \"prediction\", \"reference\"}".into());
    };
    let prob_yes = match obj.get("prob_yes") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => match n.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => Some(p),
            _ => return Err(format!("prob_yes {n} is not a probability in [0, 1]")),
        },
        Some(other) => return Err(format!("prob_yes must be a number, not {other}")),
    };
    let property = match obj.get("property") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("property must be a string, not {other}")),
    };
    Ok(Prediction {
        id: text_field(&obj, "id")?,
        prediction: text_field(&obj, "prediction")?,
        reference: text_field(&obj, "reference")?,
        prob_yes,
        property,
        line,
    })
}

/// Parses predictions JSONL text (`source_name` names it in errors). Empty lines are skipped;
/// any other line must be an object with a unique `id`, `prediction` and `reference` (strings;
/// numbers are accepted and kept as their JSON text) and may have `prob_yes` (in [0, 1]) and
/// `property`.
pub fn parse_predictions(text: &str, source_name: &str) -> Result<Vec<Prediction>, EvalError> {
    let mut rows = Vec::new();
    let mut first_line_of: std::collections::HashMap<String, usize> = Default::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::Line {
            source_name: source_name.to_string(),
            line: i + 1,
            message,
        };
        let row = parse_line(line, i + 1).map_err(bad)?;
        if let Some(first) = first_line_of.insert(row.id.clone(), i + 1) {
            return Err(bad(format!(
                "id \"{}\" was already given on line {first}: each example must be scored once",
                row.id
            )));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(EvalError::Empty(source_name.to_string()));
    }
    Ok(rows)
}

/// Reads a predictions JSONL file (see [`parse_predictions`]).
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|error| EvalError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_predictions(&text, &path.display().to_string())
}

/// A metric value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A score.
    Number(f64),
    /// A count of rows.
    Count(usize),
    /// Not defined on these rows, with the reason (e.g. ROC-AUC with one class only).
    Undefined(String),
    /// Not computed yet (fingerprint similarities, issue 6).
    Pending,
}

/// One named metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name as written in metrics.json (e.g. `bleu4`, `roc_auc_prob`).
    pub name: &'static str,
    /// Its value.
    pub value: Value,
}

impl Metric {
    /// A score.
    pub fn number(name: &'static str, v: f64) -> Self {
        Self {
            name,
            value: Value::Number(v),
        }
    }

    /// A count.
    pub fn count(name: &'static str, n: usize) -> Self {
        Self {
            name,
            value: Value::Count(n),
        }
    }

    /// An undefined value with its reason.
    pub fn undefined(name: &'static str, why: impl Into<String>) -> Self {
        Self {
            name,
            value: Value::Undefined(why.into()),
        }
    }
}

/// The metrics of one task on one predictions set.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMetrics {
    /// The task.
    pub task: Task,
    /// Number of rows scored.
    pub rows: usize,
    /// Metrics in display order.
    pub metrics: Vec<Metric>,
    /// How the numbers differ from the reference's, where they do.
    pub notes: Vec<String>,
}

impl TaskMetrics {
    /// The value of metric `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| &m.value)
    }

    /// The value of metric `name` as a number (counts included).
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Number(v) => Some(*v),
            Value::Count(n) => Some(*n as f64),
            Value::Undefined(_) | Value::Pending => None,
        }
    }
}

/// Scores `rows` for `task`. ChEBI-20 needs `text` (tokenizer and WordNet); the other tasks
/// ignore it.
pub fn score(
    task: Task,
    rows: &[Prediction],
    text: Option<&TextResources>,
) -> Result<TaskMetrics, EvalError> {
    match task {
        Task::Chebi20 => {
            let owned;
            let res = match text {
                Some(r) => r,
                None => {
                    owned = TextResources::new(TextTokenizer::scibert()?, None);
                    &owned
                }
            };
            text::score(rows, res)
        }
        Task::Bace | Task::Bbbp | Task::Hiv => classification::score(task, rows),
        Task::Qm9 => regression::score(rows),
        Task::Retrosynthesis | Task::Forward | Task::Reagent => reactions::score(task, rows),
        Task::PubchemPairs => Err(EvalError::UnknownTask(task.name().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_round_trip() {
        for t in TASKS {
            assert_eq!(parse_task(t.name()).ok(), Some(t));
        }
        let err = parse_task("chebi").expect_err("unknown");
        assert!(err.to_string().contains("unknown task 'chebi'"));
        // Stage-1 pairs are data, not a benchmark.
        assert!(parse_task("pubchem-pairs").is_err());
    }

    #[test]
    fn bad_lines_name_their_line() {
        let text = "{\"id\":1,\"prediction\":\"a\",\"reference\":\"b\"}\n\n{\"id\":2,\"prediction\":\"a\"}\n";
        let err = parse_predictions(text, "p.jsonl").expect_err("missing field");
        assert!(
            err.to_string()
                .starts_with("p.jsonl, line 3: missing field \"reference\""),
            "{err}"
        );
        let twice = "{\"id\":7,\"prediction\":\"a\",\"reference\":\"b\"}\n".repeat(2);
        let err = parse_predictions(&twice, "p.jsonl").expect_err("duplicate id");
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("line 1"),
            "{err}"
        );
        for p in ["1.5", "-0.1"] {
            let row = format!(
                "{{\"id\":1,\"prediction\":\"Yes\",\"reference\":\"Yes\",\"prob_yes\":{p}}}"
            );
            let err = parse_predictions(&row, "p.jsonl").expect_err("not a probability");
            assert!(err.to_string().contains("[0, 1]"), "{err}");
        }
        let err = parse_predictions("{oops", "p.jsonl").expect_err("bad json");
        assert!(err.to_string().contains("line 1: bad JSON"), "{err}");
        assert!(matches!(
            parse_predictions("\n\n", "p"),
            Err(EvalError::Empty(_))
        ));
        let rows =
            parse_predictions(text.lines().next().unwrap_or_default(), "p").expect("one row");
        assert_eq!(rows[0].id, "1");
    }
}
