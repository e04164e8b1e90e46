//! Golden test: the raw SMILES parser's accept/reject verdict against RDKit's parser
//! (`Chem.MolFromSmiles(s, sanitize=False)`), over the sample and the edge cases.
//!
//! The features golden (tests/data/golden/features.jsonl) records error category "parse"
//! exactly when RDKit's parser returned None; every other row (accepted, or rejected later by
//! sanitization or the featurizer) was parsed by RDKit, so `parse_smiles` must accept it.
//!
//! Run with `cargo test --test chem_parse -- --nocapture` to see the per-source summary.

mod chem_common;

use chem_common::{assert_all, describe_error, golden_rows, opt_str, str_field, Tally};
use instructmol::chem::{parse_smiles, ErrorKind};

#[test]
fn raw_parse_verdict_matches_rdkit_parser() {
    let rows = golden_rows("features.jsonl");
    assert!(rows.len() > 5000, "golden file too small: {}", rows.len());
    let mut verdict = Tally::new(
        "parse_smiles accept/reject (syntax errors)",
        "parse_verdict",
    );
    for row in &rows {
        let smiles = str_field(row, "smiles");
        let source = str_field(row, "source");
        let rdkit_parses = opt_str(row, "error") != Some("parse");
        let result = match (rdkit_parses, parse_smiles(smiles)) {
            (true, Ok(_)) => Ok(()),
            (false, Err(err)) if err.kind == ErrorKind::Syntax => Ok(()),
            (false, Err(err)) => Err(format!(
                "{smiles}\nrdkit: syntax error; ours rejects with another kind: {}",
                describe_error(&err)
            )),
            (true, Err(err)) => Err(format!(
                "{smiles}\nrdkit parses it; ours: {}",
                describe_error(&err)
            )),
            (false, Ok(mol)) => Err(format!(
                "{smiles}\nrdkit: syntax error; ours parses {} atoms, {} bonds",
                mol.atoms.len(),
                mol.bonds.len()
            )),
        };
        verdict.record(source, smiles, result);
    }
    assert_all(&[&verdict]);
}
