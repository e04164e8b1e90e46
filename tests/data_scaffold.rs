//! Bemis-Murcko scaffolds against RDKit's `MurckoScaffoldSmiles(includeChirality=False)` on
//! the full BBBP and BACE files and the HIV rows of the sample
//! (golden: `scripts/golden/scaffold_golden.py`).
//!
//! Our canonical SMILES writer groups molecules exactly as RDKit's does but does not spell
//! them with the same characters, so RDKit's scaffold is compared through our canonical form
//! of it: the two scaffolds must be the same molecule.

use instructmol::chem::canon::canonical_from_smiles;
use instructmol::chem::scaffold::scaffold_smiles;

#[derive(serde::Deserialize)]
struct Golden {
    rdkit: String,
    rows: Vec<(String, String, Option<String>)>,
}

#[test]
fn scaffolds_match_rdkit() {
    let text = std::fs::read_to_string("tests/data/golden/scaffold.json")
        .expect("tests/data/golden/scaffold.json (make it with scripts/golden/scaffold_golden.py)");
    let golden: Golden = serde_json::from_str(&text).expect("valid scaffold golden");
    let mut compared = 0usize;
    let mut same = 0usize;
    let mut diffs = Vec::new();
    for (source, smiles, want) in &golden.rows {
        let got = scaffold_smiles(smiles).ok();
        match (want, &got) {
            (Some(w), Some(g)) => {
                compared += 1;
                let w = if w.is_empty() {
                    String::new()
                } else {
                    canonical_from_smiles(w, false).unwrap_or_else(|e| format!("unreadable: {e}"))
                };
                if &w == g {
                    same += 1;
                } else {
                    diffs.push(format!("{source} {smiles}: rdkit {w} ours {g}"));
                }
            }
            (None, None) => {}
            _ => diffs.push(format!("{source} {smiles}: rdkit {want:?} ours {got:?}")),
        }
    }
    let rate = same as f64 / compared.max(1) as f64;
    eprintln!(
        "scaffolds identical to RDKit's {}: {same}/{compared} ({:.3}%)",
        golden.rdkit,
        rate * 100.0
    );
    for d in diffs.iter().take(20) {
        eprintln!("  {d}");
    }
    assert!(compared > 4000, "golden too small: {compared}");
    assert!(rate >= 0.999, "{} scaffolds differ from RDKit", diffs.len());
}
