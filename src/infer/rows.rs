//! Generation over a file of questions: read the rows (LLaVA-style records as `data prepare`
//! writes them, or plain `{"prompt"}` objects), group rows of similar length into batches,
//! generate with [`generate_batch`], and return one [`OutputRow`] per input row in input
//! order. A row whose molecule cannot be read gets an `error` and an empty prediction; it is
//! never dropped.

use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use super::generate::{generate_batch, GenerationConfig, Prompt, RowPrompt};
use super::yes_no::YesNoIds;
use super::{InferError, Result};
use crate::data::record::IMAGE_TOKEN;
use crate::model::{Decode, ModelTokenizer};

/// One question read from an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    /// 1-based line in the input file.
    pub line: usize,
    /// `id` (numbers kept as their JSON text); the line number when absent.
    pub id: String,
    /// `smiles`, when the row has one.
    pub smiles: Option<String>,
    /// `prompt`, or else the first human turn of `conversations` without `<image>`.
    pub question: String,
    /// The first gpt turn of `conversations`, when there is one.
    pub reference: Option<String>,
}

/// One generated answer, as written to the output file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputRow {
    /// The input row's id.
    pub id: String,
    /// The molecule, when the row had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smiles: Option<String>,
    /// The question asked.
    pub prompt: String,
    /// The model's answer (empty when `error` is set).
    pub prediction: String,
    /// The expected answer, when the input had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Probability of "Yes" at the first answer token, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prob_yes: Option<f64>,
    /// Why the row could not be answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 1-based line of the row in the input file.
    #[serde(skip)]
    pub line: usize,
}

fn text_of(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_row(text: &str, line: usize) -> std::result::Result<InputRow, String> {
    let value: Json = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let Json::Object(obj) = value else {
        return Err(
            "expected a JSON object (a record with \"conversations\", or {\"prompt\"})".into(),
        );
    };
    let id = match obj.get("id") {
        None | Some(Json::Null) => line.to_string(),
        Some(v) => {
            text_of(v).ok_or_else(|| format!("\"id\" must be a string or number, not {v}"))?
        }
    };
    let smiles = match obj.get("smiles") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(v) => return Err(format!("\"smiles\" must be a string, not {v}")),
    };
    let turns = match obj.get("conversations") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a.clone(),
        Some(v) => {
            return Err(format!(
                "\"conversations\" must be a list of turns, not {v}"
            ))
        }
    };
    let turn = |from: &str| -> std::result::Result<Option<String>, String> {
        for t in &turns {
            if t.get("from").and_then(Json::as_str) == Some(from) {
                return match t.get("value").and_then(Json::as_str) {
                    Some(v) => Ok(Some(v.to_string())),
                    None => Err(format!("a \"{from}\" turn has no string \"value\"")),
                };
            }
        }
        Ok(None)
    };
    let question = match obj.get("prompt") {
        Some(Json::String(p)) => p.clone(),
        Some(v) => return Err(format!("\"prompt\" must be a string, not {v}")),
        None => turn("human")?.ok_or_else(|| {
            "no question: give \"prompt\" or a \"conversations\" list with a human turn".to_string()
        })?,
    };
    let question = question.replace(IMAGE_TOKEN, "").trim().to_string();
    if question.is_empty() && smiles.is_none() {
        return Err("the question is empty".into());
    }
    let reference = match obj.get("reference") {
        Some(v) => Some(text_of(v).ok_or_else(|| format!("\"reference\" must be text, not {v}"))?),
        None => turn("gpt")?,
    };
    Ok(InputRow {
        line,
        id,
        smiles,
        question,
        reference,
    })
}

/// Reads the rows of a JSONL questions file (empty lines skipped). A line that is not a usable
/// row stops the read with an error naming the file and the line.
pub fn read_rows(path: &Path) -> Result<Vec<InputRow>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InferError::Input(format!("cannot read {}: {e}", path.display())))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_row(line, i + 1).map_err(|message| {
            InferError::Input(format!("{}, line {}: {message}", path.display(), i + 1))
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// How the rows of a file are generated.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Decoding settings; row `i` of the file is sampled with seed `sampling.seed + i`.
    pub generation: GenerationConfig,
    /// Rows per batch (at least 1).
    pub batch_size: usize,
    /// Ids of "Yes"/"No" to report `prob_yes` with, when wanted.
    pub yes_no: Option<YesNoIds>,
}

/// Progress of [`generate_rows`], reported after every token and every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Rows finished (answered or refused).
    pub rows_done: usize,
    /// Tokens generated so far.
    pub tokens: usize,
}

/// Generates an answer for every row. `prompt` turns a row into its [`Prompt`]; when it fails
/// with [`InferError::InvalidSmiles`] or [`InferError::PromptTooLong`] the row gets that error
/// and an empty prediction, any other failure stops the run. Rows are sorted by length (question plus
/// SMILES, in characters) so that a batch holds prompts of similar length, and returned in
/// input order; the text is decoded with `tokenizer`.
pub fn generate_rows<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    rows: &[InputRow],
    options: &BatchOptions,
    prompt: impl Fn(&InputRow) -> Result<Prompt>,
    mut on_progress: impl FnMut(Progress),
) -> Result<Vec<OutputRow>> {
    let mut out: Vec<OutputRow> = rows
        .iter()
        .map(|r| OutputRow {
            id: r.id.clone(),
            smiles: r.smiles.clone(),
            prompt: r.question.clone(),
            prediction: String::new(),
            reference: r.reference.clone(),
            prob_yes: None,
            error: None,
            line: r.line,
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].question.len() + rows[i].smiles.as_ref().map_or(0, String::len));
    let mut progress = Progress::default();
    for chunk in order.chunks(options.batch_size.max(1)) {
        let mut prompts = Vec::with_capacity(chunk.len());
        let mut which = Vec::with_capacity(chunk.len());
        for &i in chunk {
            match prompt(&rows[i]) {
                Ok(p) => {
                    prompts.push(RowPrompt {
                        prompt: p,
                        seed: options.generation.sampling.seed.wrapping_add(i as u64),
                    });
                    which.push(i);
                }
                Err(e @ (InferError::InvalidSmiles(_) | InferError::PromptTooLong(_))) => {
                    out[i].error = Some(e.to_string());
                    progress.rows_done += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let result = generate_batch(
            model,
            tokenizer,
            &prompts,
            &options.generation,
            options.yes_no.as_ref(),
            |_| {
                progress.tokens += 1;
                on_progress(progress);
                Ok(())
            },
        )?;
        for (&i, row) in which.iter().zip(result.rows) {
            out[i].prediction = row.text.trim().to_string();
            out[i].prob_yes = row.prob_yes;
        }
        progress.rows_done += which.len();
        on_progress(progress);
    }
    Ok(out)
}
