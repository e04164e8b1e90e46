//! ChEBI-20 molecule description: TSV `CID\tSMILES\tdescription` with a header (MolT5's
//! `train.txt`, `validation.txt`, `test.txt`). Each file is prepared as given: its examples go
//! to the split named after the file (`test.txt` -> `test.jsonl`).

use std::path::Path;

use super::prepare::{Examples, Task};
use super::prompts::{description_question, Variant};
use super::table::read_lines;
use super::DataError;

/// Reads a caption TSV (`id\tSMILES\ttext`, header optional when its first field is `CID`)
/// as `task`: one description question per molecule.
pub fn read_captions(
    path: &Path,
    task: Task,
    variant: Variant,
    seed: u64,
) -> Result<Examples, DataError> {
    let split = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out = Examples::default();
    for (i, line) in read_lines(path)?.iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || (n == 1 && line.starts_with("CID\t")) {
            continue;
        }
        out.rows += 1;
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        let [cid, smiles, text] = fields[..] else {
            return Err(DataError::format(
                path,
                n,
                format!(
                    "expected 3 TAB-separated fields (CID, SMILES, text), found {}",
                    fields.len()
                ),
            ));
        };
        let (cid, smiles, text) = (cid.trim(), smiles.trim(), text.trim());
        if text.is_empty() {
            out.reject(n, "empty_field", format!("CID {cid}: empty description"));
            continue;
        }
        if !out.check_molecule(n, smiles) {
            continue;
        }
        let selfies = match variant {
            Variant::Gs => match out.selfies(n, smiles) {
                Some(s) => s,
                None => continue,
            },
            Variant::G => String::new(),
        };
        let question = description_question(variant, seed, cid, &selfies);
        out.push(
            n,
            task,
            cid.to_string(),
            smiles.to_string(),
            &question,
            text.to_string(),
            None,
            cid.to_string(),
            Some(split.clone()),
        );
    }
    Ok(out)
}

/// Reads one ChEBI-20 split file.
pub fn read(path: &Path, variant: Variant, seed: u64) -> Result<Examples, DataError> {
    read_captions(path, Task::Chebi20, variant, seed)
}
