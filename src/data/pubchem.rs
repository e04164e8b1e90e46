//! Stage-1 alignment pairs, in either of two forms:
//!
//! - a caption TSV `CID\tSMILES\tcaption` (header optional), e.g. PubChem molecule-text pairs
//!   exported to that form; the question comes from the description pool;
//! - the official stage-1 data as published (OpenMol/PubChemSFT `all_clean.json`), read
//!   unchanged: a JSON list of LLaVA records `{"id"?, "smiles", "conversations": [{"from":
//!   "human", "value": "<image>\n..."}, {"from": "gpt", "value": ...}, ...]}`, or the object
//!   `{SMILES: [[question, answer], ...]}` that the official `convert_chembl` reads. Questions
//!   and answers are kept as written, except that `<image>` goes to the front of the first
//!   question, as the official training moves it.
//!   Records are numbered from 1 in the report ("line" = record number).

use std::path::Path;

use serde_json::Value;

use super::chebi20::read_captions;
use super::prepare::{Example, Examples, Task};
use super::prompts::Variant;
use super::record::{Record, Role, Turn, IMAGE_TOKEN};
use super::table::read_text;
use super::DataError;

/// Reads a caption TSV as stage-1 pairs (split named after the file).
pub fn read(path: &Path, variant: Variant, seed: u64) -> Result<Examples, DataError> {
    read_captions(path, Task::PubchemPairs, variant, seed)
}

/// Reads the official stage-1 JSON (`all_clean.json`): LLaVA records with a SMILES each, or a
/// `{SMILES: [[question, answer], ...]}` object. No split is assigned (one output file, named
/// after the input) unless `--split` asks for one.
pub fn read_json(path: &Path) -> Result<Examples, DataError> {
    let text = read_text(path)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        DataError::format(
            path,
            e.line(),
            format!("not JSON ({e}); expected the PubChemSFT list of LLaVA records"),
        )
    })?;
    let mut out = Examples::default();
    match value {
        Value::Array(records) => {
            for (i, rec) in records.iter().enumerate() {
                out.rows += 1;
                llava_record(&mut out, i + 1, rec);
            }
        }
        Value::Object(by_smiles) => {
            let mut n = 0;
            for (smiles, pairs) in &by_smiles {
                for (k, pair) in pairs.as_array().into_iter().flatten().enumerate() {
                    n += 1;
                    out.rows += 1;
                    let qa = pair.as_array().and_then(|p| match &p[..] {
                        [Value::String(q), Value::String(a)] => Some((q, a)),
                        _ => None,
                    });
                    let Some((q, a)) = qa else {
                        out.reject(
                            n,
                            "bad_value",
                            format!("{smiles}: pair {} is not [question, answer]", k + 1),
                        );
                        continue;
                    };
                    let turns = vec![Turn::human(q.clone()), Turn::gpt(a.clone())];
                    push(&mut out, n, format!("{}-{}", n, k + 1), smiles, turns);
                }
            }
        }
        _ => {
            return Err(DataError::format(
                path,
                1,
                "expected a JSON list of LLaVA records (or an object of SMILES -> [[question, \
                 answer], ...])",
            ))
        }
    }
    Ok(out)
}

/// One LLaVA record of the list form.
fn llava_record(out: &mut Examples, n: usize, rec: &Value) {
    let Some(obj) = rec.as_object() else {
        out.reject(n, "bad_value", "not a JSON object");
        return;
    };
    let field = |names: &[&str]| names.iter().find_map(|k| obj.get(*k));
    let Some(smiles) = field(&["smiles", "SMILES"]).and_then(Value::as_str) else {
        out.reject(n, "empty_field", "no `smiles` string");
        return;
    };
    let id = match field(&["id", "cid", "CID"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(x)) => x.to_string(),
        _ => n.to_string(),
    };
    let turns = match obj.get("conversations").map(turns) {
        Some(Ok(t)) => t,
        Some(Err(why)) => {
            out.reject(n, "bad_value", format!("id {id}: {why}"));
            return;
        }
        None => {
            out.reject(n, "empty_field", format!("id {id}: no `conversations`"));
            return;
        }
    };
    push(out, n, id, smiles, turns);
}

/// The turns of a `conversations` array: human first, alternating, ending with an answer.
fn turns(v: &Value) -> Result<Vec<Turn>, String> {
    let list = v.as_array().ok_or("`conversations` is not a list")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let from = match t.get("from").and_then(Value::as_str) {
            Some("human") | Some("user") => Role::Human,
            Some("gpt") | Some("assistant") => Role::Gpt,
            other => {
                return Err(format!(
                    "turn {}: `from` is {other:?}, not human or gpt",
                    i + 1
                ))
            }
        };
        let value = t
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("turn {}: no `value` string", i + 1))?;
        let expected = if i % 2 == 0 { Role::Human } else { Role::Gpt };
        if from != expected {
            return Err(format!(
                "turn {}: expected a {} turn (turns alternate, human first)",
                i + 1,
                if expected == Role::Human {
                    "human"
                } else {
                    "gpt"
                }
            ));
        }
        out.push(Turn {
            from,
            value: value.to_string(),
        });
    }
    if out.len() < 2 || out.len() % 2 != 0 {
        return Err(format!(
            "{} turns: a conversation needs question/answer pairs",
            out.len()
        ));
    }
    if out
        .iter()
        .any(|t| t.from == Role::Gpt && t.value.trim().is_empty())
    {
        return Err("an empty answer".into());
    }
    Ok(out)
}

/// Adds a usable record (after checking the molecule). As the official training does
/// (LLaVA's `preprocess_multimodal`), `<image>` is moved to the front of the first question
/// (`<image>\n` + the rest); a later turn that carries it is refused.
fn push(out: &mut Examples, n: usize, id: String, smiles: &str, mut turns: Vec<Turn>) {
    if let Some(k) = turns
        .iter()
        .skip(1)
        .position(|t| t.value.contains(IMAGE_TOKEN))
    {
        out.reject(
            n,
            "bad_value",
            format!(
                "id {id}: `{IMAGE_TOKEN}` in turn {}: only the first question carries the molecule",
                k + 2
            ),
        );
        return;
    }
    let smiles = smiles.trim();
    if !out.check_molecule(n, smiles) {
        return;
    }
    if let Some(first) = turns.first_mut() {
        let rest = first.value.replace(IMAGE_TOKEN, "");
        first.value = format!("{IMAGE_TOKEN}\n{}", rest.trim());
    }
    out.items.push(Example {
        line: n,
        record: Record {
            id,
            smiles: smiles.to_string(),
            conversations: turns,
            task: Some(Task::PubchemPairs.name().to_string()),
            label: None,
        },
        group: smiles.to_string(),
        split: None,
    });
}
