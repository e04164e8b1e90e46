//! Mol-Instructions molecule-oriented JSON: a list of `{instruction, input, output,
//! metadata?}` with SELFIES in `input`/`output` (zjunlp/Mol-Instructions on Hugging Face).
//! `metadata.split` (`train`/`test`), when present, names the output split.
//!
//! Per task: retrosynthesis (input = product), forward (input = reactants joined by `.`; the
//! graph is the first), reagent (input = `reactants>>product`; the graph is the reactants),
//! qm9 (property prediction; input = the molecule), chebi20 (description; input = the
//! molecule).

use std::path::Path;

use serde::Deserialize;

use super::prepare::{Examples, Task};
use super::prompts::{
    forward_question, reagent_question, retrosynthesis_question, with_selfies, Variant,
};
use super::table::read_text;
use super::DataError;

#[derive(Deserialize)]
struct Entry {
    instruction: String,
    input: String,
    output: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Reads a Mol-Instructions JSON file as `task`.
pub fn read(path: &Path, task: Task, variant: Variant, seed: u64) -> Result<Examples, DataError> {
    if matches!(
        task,
        Task::Bace | Task::Bbbp | Task::Hiv | Task::PubchemPairs
    ) {
        return Err(DataError::Usage(format!(
            "{}: Mol-Instructions JSON is read for chebi20, qm9, retrosynthesis, forward and reagent, not {}",
            path.display(),
            task.name()
        )));
    }
    let text = read_text(path)?;
    let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|e| {
        DataError::format(
            path,
            e.line(),
            format!("not a Mol-Instructions list of {{instruction, input, output}}: {e}"),
        )
    })?;
    let mut out = Examples::default();
    for (i, e) in entries.iter().enumerate() {
        let n = i + 1;
        out.rows += 1;
        let split = e
            .metadata
            .as_ref()
            .and_then(|m| m.get("split"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let (input, output) = (e.input.trim(), e.output.trim());
        if input.is_empty() || output.is_empty() {
            out.reject(n, "empty_field", "empty input or output");
            continue;
        }
        let graph_selfies = match task {
            Task::Forward => input.split('.').next().unwrap_or_default(),
            Task::Reagent => match input.split_once(">>") {
                Some((r, _)) => r,
                None => {
                    out.reject(
                        n,
                        "bad_value",
                        format!("reagent input `{input}` has no `>>`"),
                    );
                    continue;
                }
            },
            _ => input,
        };
        let smiles = match crate::chem::selfies::decode(graph_selfies) {
            Ok(s) => s,
            Err(err) => {
                out.reject(
                    n,
                    "selfies_decode",
                    format!("{graph_selfies}: {}", err.message),
                );
                continue;
            }
        };
        if !out.check_molecule(n, &smiles) {
            continue;
        }
        let id = format!("{}-{n}", task.name());
        let question = match task {
            Task::Retrosynthesis => retrosynthesis_question(variant, e.instruction.trim(), input),
            Task::Forward => {
                let parts: Vec<String> = input.split('.').map(str::to_string).collect();
                forward_question(variant, e.instruction.trim(), &parts)
            }
            Task::Reagent => {
                let product = input.split_once(">>").map_or("", |(_, p)| p);
                reagent_question(variant, e.instruction.trim(), input, product, seed, &id)
            }
            _ => with_selfies(e.instruction.trim(), variant, input),
        };
        let label = match task {
            Task::Qm9 => output.parse::<f64>().ok(),
            _ => None,
        };
        out.push(
            n,
            task,
            id.clone(),
            smiles,
            &question,
            output.to_string(),
            label,
            id,
            split,
        );
    }
    Ok(out)
}
