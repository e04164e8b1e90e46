//! QM9 HOMO/LUMO/gap (MoleculeNet `qm9.csv` schema: `mol_id`, `smiles`, `homo`, `lumo`,
//! `gap` in hartree). One question per property and molecule; the answer is the value as
//! written in the file. Rows repeating an earlier `mol_id` are skipped and counted. The three
//! questions of a molecule always share a split.

use std::collections::BTreeSet;
use std::path::Path;

use super::prepare::{Examples, Task};
use super::prompts::{pick, qm9_questions, with_selfies, Variant};
use super::table::read_csv;
use super::DataError;

/// The properties asked about, in output order.
pub const PROPERTIES: [&str; 3] = ["homo", "lumo", "gap"];

/// Reads a QM9 CSV.
pub fn read(path: &Path, variant: Variant, seed: u64) -> Result<Examples, DataError> {
    let table = read_csv(path)?;
    let idi = table.column(path, "mol_id")?;
    let si = table.column(path, "smiles")?;
    let cols = PROPERTIES
        .iter()
        .map(|p| table.column(path, p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = BTreeSet::new();
    let mut out = Examples::default();
    for (n, fields) in &table.rows {
        let n = *n;
        out.rows += 1;
        let mol_id = fields[idi].trim();
        if !seen.insert(mol_id.to_string()) {
            out.duplicates += 1;
            continue;
        }
        let smiles = fields[si].trim();
        let values: Vec<&str> = cols.iter().map(|&c| fields[c].trim()).collect();
        if let Some((p, v)) = PROPERTIES
            .iter()
            .zip(&values)
            .find(|(_, v)| v.parse::<f64>().map_or(true, |x| !x.is_finite()))
        {
            out.reject(
                n,
                "bad_value",
                format!("{mol_id}: {p} `{v}` is not a number"),
            );
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
        for (p, v) in PROPERTIES.iter().zip(&values) {
            let id = format!("qm9-{mol_id}-{p}");
            let pool = qm9_questions(p).unwrap_or_default();
            let q = with_selfies(pick(&pool, seed, &id), variant, &selfies);
            out.push(
                n,
                Task::Qm9,
                id,
                smiles.to_string(),
                &q,
                v.to_string(),
                v.parse().ok(),
                mol_id.to_string(),
                None,
            );
        }
    }
    Ok(out)
}
