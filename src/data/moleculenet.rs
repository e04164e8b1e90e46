//! MoleculeNet classification (chemprop's CSV copies): BBBP `smiles,p_np`, BACE `mol,Class`,
//! HIV `smiles,HIV_active` (`.csv` or `.csv.gz`). One yes/no question per molecule; the split
//! is computed (scaffold by default).

use std::path::Path;

use super::prepare::{Examples, Task};
use super::prompts::{moleculenet_question, with_selfies, yes_no, Variant};
use super::table::read_csv;
use super::DataError;

/// The (SMILES, label) column names of a MoleculeNet task.
pub fn columns(task: Task) -> Option<(&'static str, &'static str)> {
    match task {
        Task::Bbbp => Some(("smiles", "p_np")),
        Task::Bace => Some(("mol", "Class")),
        Task::Hiv => Some(("smiles", "HIV_active")),
        _ => None,
    }
}

/// Reads a MoleculeNet CSV for `task` (bbbp, bace or hiv).
pub fn read(path: &Path, task: Task, variant: Variant, _seed: u64) -> Result<Examples, DataError> {
    let (Some((smiles_col, label_col)), Some(question)) =
        (columns(task), moleculenet_question(task.name()))
    else {
        return Err(DataError::Usage(format!(
            "{} is not a MoleculeNet task",
            task.name()
        )));
    };
    let table = read_csv(path)?;
    let si = table.column(path, smiles_col)?;
    let li = table.column(path, label_col)?;
    let mut out = Examples::default();
    for (n, fields) in &table.rows {
        let n = *n;
        out.rows += 1;
        let smiles = fields[si].trim();
        let label = match fields[li].trim().parse::<f64>() {
            Ok(v) if v == 0.0 || v == 1.0 => v,
            _ => {
                out.reject(
                    n,
                    "bad_label",
                    format!("label `{}` is not 0 or 1", fields[li]),
                );
                continue;
            }
        };
        if !out.check_molecule(n, smiles) {
            continue;
        }
        let q = match variant {
            Variant::G => question.to_string(),
            Variant::Gs => match out.selfies(n, smiles) {
                Some(s) => with_selfies(question, variant, &s),
                None => continue,
            },
        };
        let id = format!("{}-{n}", task.name());
        out.push(
            n,
            task,
            id.clone(),
            smiles.to_string(),
            &q,
            yes_no(label == 1.0).to_string(),
            Some(label),
            id,
            None,
        );
    }
    Ok(out)
}
