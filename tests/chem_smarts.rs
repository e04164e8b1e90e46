//! SMARTS matcher against RDKit: unique match counts (`GetSubstructMatches`, uniquify) and
//! `HasSubstructMatch` for every pattern x molecule of tests/data/golden/fingerprints_smarts.json
//! (scripts/golden/fingerprints_golden.py), plus clear errors for unsupported syntax.

mod chem_common;

use chem_common::data_path;
use instructmol::chem::mol_from_smiles;
use instructmol::chem::smarts::{parse, Target};
use serde_json::Value;

#[test]
fn match_counts_equal_rdkit() {
    let path = data_path("golden/fingerprints_smarts.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let golden: Value = serde_json::from_str(&text).expect("golden is JSON");
    let patterns: Vec<&str> = golden["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .map(|p| p.as_str().expect("pattern string"))
        .collect();
    let compiled: Vec<_> = patterns
        .iter()
        .map(|p| parse(p).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let smiles = golden["smiles"].as_array().expect("smiles");
    let counts = golden["counts"].as_array().expect("counts");
    let (mut total, mut bad) = (0usize, Vec::new());
    for (s, row) in smiles.iter().zip(counts) {
        let s = s.as_str().expect("smiles string");
        let mol = mol_from_smiles(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let target = Target::new(&mol);
        for ((text, pattern), want) in patterns
            .iter()
            .zip(&compiled)
            .zip(row.as_array().expect("row"))
        {
            let want = want.as_u64().expect("count") as usize;
            let got = pattern.count_unique(&target, 1000);
            total += 1;
            if got != want || pattern.matches(&target) != (want > 0) {
                bad.push(format!("{text} on {s}: RDKit {want}, ours {got}"));
            }
        }
    }
    println!(
        "SMARTS pattern x molecule checks: {total}, disagreements: {}",
        bad.len()
    );
    for b in bad.iter().take(20) {
        println!("  {b}");
    }
    assert!(total > 5000);
    assert!(bad.is_empty());
}

#[test]
fn unique_matches_are_distinct_atom_sets() {
    let mol = mol_from_smiles("OCC(O)CO").expect("glycerol");
    let target = Target::new(&mol);
    let pattern = parse("[OX2H]").expect("parses");
    assert_eq!(
        pattern.unique_matches(&target, 10),
        vec![vec![0], vec![3], vec![5]]
    );
    // C-C-O is found from both ends of the chain; atom sets are distinct per match.
    let p = parse("CCO").expect("parses");
    let m = p.unique_matches(&target, 100);
    let mut sets: Vec<Vec<usize>> = m
        .iter()
        .map(|v| {
            let mut s = v.clone();
            s.sort_unstable();
            s
        })
        .collect();
    sets.dedup();
    assert_eq!(sets.len(), m.len());
    assert_eq!(p.count_unique(&target, 1), 1);
}

#[test]
fn unsupported_syntax_is_an_error_with_position() {
    for (smarts, pos, what) in [
        ("C.C", 1, "disconnected"),
        ("[C@H](F)Cl", 2, "chirality"),
        ("[13C]", 1, "isotope"),
        ("C/C=C/C", 1, "directional"),
        ("[C:1]", 2, "atom map"),
        ("C1CC", 1, "never closed"),
        ("C(C", 1, "never closed"),
        ("[CH2", 0, "never closed"),
        ("C-", 1, "bond without"),
        ("[Q]", 1, "unknown element"),
        ("[Xy]", 2, "unexpected 'y'"),
        ("[$(CC]", 5, "unexpected character"),
        ("", 0, "empty"),
    ] {
        let err = parse(smarts).expect_err(smarts);
        assert_eq!(err.position, pos, "{smarts}: {err}");
        assert!(err.to_string().contains(what), "{smarts}: {err}");
    }
}
