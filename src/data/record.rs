//! The prepared training record (LLaVA-style JSON line) and the reader/writer of JSONL files.
//!
//! One line: `{"id", "smiles", "conversations": [{"from": "human", "value": "<image>\n..."},
//! {"from": "gpt", "value": ...}], "task", "label"?}`. `smiles` is the molecule whose graph
//! replaces `<image>`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DataError;

/// The placeholder for the molecule's graph tokens in a human turn.
pub const IMAGE_TOKEN: &str = "<image>";

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (asks).
    Human,
    /// The assistant (answers; its turns are supervised).
    Gpt,
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Speaker.
    pub from: Role,
    /// Text; the first human turn carries [`IMAGE_TOKEN`].
    pub value: String,
}

impl Turn {
    /// A human turn.
    pub fn human(value: impl Into<String>) -> Self {
        Self {
            from: Role::Human,
            value: value.into(),
        }
    }

    /// An assistant turn.
    pub fn gpt(value: impl Into<String>) -> Self {
        Self {
            from: Role::Gpt,
            value: value.into(),
        }
    }
}

/// One prepared example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Stable id (dataset id or `task-line`).
    pub id: String,
    /// SMILES of the molecule given as a graph.
    pub smiles: String,
    /// Alternating human/gpt turns, human first.
    pub conversations: Vec<Turn>,
    /// Task name (`chebi20`, `bbbp`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Numeric label for evaluation (class 0/1 or a regression target), when the task has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<f64>,
}

/// A line of a JSONL file that could not be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// The usable records of a JSONL file and the lines that were not.
#[derive(Debug, Clone, Default)]
pub struct JsonlContents {
    /// Valid records, in file order.
    pub records: Vec<Record>,
    /// Lines that are not valid records (empty lines are skipped silently).
    pub bad: Vec<BadLine>,
}

/// Checks the shape a trainer relies on: non-empty SMILES, turns alternating human/gpt
/// starting with human, and `<image>` only in the first human turn.
pub fn validate(record: &Record) -> Result<(), String> {
    if record.smiles.trim().is_empty() {
        return Err("empty \"smiles\"".into());
    }
    if record.conversations.len() < 2 {
        return Err("\"conversations\" needs at least a human and a gpt turn".into());
    }
    for (i, turn) in record.conversations.iter().enumerate() {
        let want = if i % 2 == 0 { Role::Human } else { Role::Gpt };
        if turn.from != want {
            return Err(format!(
                "turn {i} is from {:?}, expected {want:?} (turns alternate, human first)",
                turn.from
            ));
        }
        if i > 0 && turn.value.contains(IMAGE_TOKEN) {
            return Err(format!(
                "turn {i} contains {IMAGE_TOKEN}; only the first may"
            ));
        }
    }
    Ok(())
}

/// Reads a prepared JSONL file. Lines that are not valid JSON records, or fail
/// [`validate`], are reported with their line number instead of stopping the read.
pub fn read_jsonl(path: &Path) -> Result<JsonlContents, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut out = JsonlContents::default();
    let mut reader = BufReader::new(file);
    let mut bytes = Vec::new();
    let (mut line_no, mut offset) = (0usize, 0usize);
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let start = offset;
        offset += n;
        let line = match std::str::from_utf8(&bytes) {
            Ok(line) => line,
            Err(e) => {
                out.bad.push(BadLine {
                    line: line_no,
                    message: format!(
                        "not UTF-8 text: invalid byte at file offset {}",
                        start + e.valid_up_to()
                    ),
                });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Record>(line)
            .map_err(|e| format!("not a record: {e}"))
            .and_then(|r| validate(&r).map(|()| r));
        match parsed {
            Ok(r) => out.records.push(r),
            Err(message) => out.bad.push(BadLine {
                line: line_no,
                message,
            }),
        }
    }
    Ok(out)
}

/// Writes records as JSON lines (one compact object per line, fields in a fixed order).
pub fn write_jsonl(path: &Path, records: &[Record]) -> Result<(), DataError> {
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    for r in records {
        let line =
            serde_json::to_string(r).map_err(|e| DataError::format(path, 0, e.to_string()))?;
        writeln!(w, "{line}").map_err(|e| DataError::io(path, e))?;
    }
    w.flush().map_err(|e| DataError::io(path, e))
}
