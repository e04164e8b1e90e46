//! Non-tetrahedral stereo (@SP, @TB, @OH) against RDKit (tests/data/golden/nontetrahedral.json,
//! written by scripts/golden/nontetrahedral.py):
//! - permutation numbers: two (number, ligand order) pairs are the same centre for us exactly
//!   when RDKit's canonical SMILES of the two are equal;
//! - reading: the number we keep after `mol_from_smiles` describes the same centre, for the
//!   stored bond order, as RDKit's `_chiralPermutation`;
//! - canonical SMILES: every random SMILES of a molecule gives the molecule's string, two
//!   molecules share a string exactly when they share RDKit's order-independent class key,
//!   and our string reads back to itself.

mod chem_common;

use std::collections::HashMap;

use chem_common::{data_path, describe_error};
use instructmol::chem::canon::canonical_from_smiles;
use instructmol::chem::mol_from_smiles;
use instructmol::chem::nontetrahedral::Shape;
use serde_json::Value;

fn golden() -> Value {
    let path = data_path("golden/nontetrahedral.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()))
}

fn shape(name: &str) -> Shape {
    match name {
        "SP" => Shape::SquarePlanar,
        "TB" => Shape::TrigonalBipyramidal,
        "OH" => Shape::Octahedral,
        other => panic!("unknown shape {other:?} in golden file"),
    }
}

fn as_u8(v: &Value) -> u8 {
    v.as_u64()
        .and_then(|x| u8::try_from(x).ok())
        .unwrap_or_else(|| panic!("not a small integer: {v}"))
}

fn as_str(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn array(v: &Value) -> &[Value] {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

#[test]
fn permutation_numbers_match_rdkit() {
    let g = golden();
    let orders = g["orders"]
        .as_object()
        .unwrap_or_else(|| panic!("golden file without an orders object"));
    let mut checked = 0;
    for (name, rows) in orders {
        let shape = shape(name);
        let rows: Vec<(u8, Vec<u8>, u64)> = array(rows)
            .iter()
            .map(|r| {
                let listing = array(&r[1]).iter().map(as_u8).collect();
                (as_u8(&r[0]), listing, r[2].as_u64().unwrap_or(u64::MAX))
            })
            .collect();
        for (n1, l1, c1) in &rows {
            for (n2, l2, c2) in &rows {
                assert_eq!(
                    shape.same(*n1, l1, *n2, l2),
                    c1 == c2,
                    "@{name}{n1} {l1:?} vs @{name}{n2} {l2:?}: RDKit says same = {}",
                    c1 == c2
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "too few pairs checked: {checked}");
}

#[test]
fn stored_permutations_match_rdkit() {
    let g = golden();
    let rows = array(&g["stored"]);
    assert!(
        rows.len() > 50,
        "golden file has {} stored rows",
        rows.len()
    );
    for row in rows {
        let smiles = as_str(&row[0]);
        let mol = mol_from_smiles(smiles)
            .unwrap_or_else(|e| panic!("{smiles}: rejected: {}", describe_error(&e)));
        for entry in array(&row[1]) {
            let atom = entry[0].as_u64().unwrap_or(u64::MAX) as usize;
            let want_shape = shape(as_str(&entry[1]));
            let want = as_u8(&entry[2]);
            let got = mol.atoms.get(atom).and_then(|a| Shape::of(a.chiral));
            let Some((got_shape, got)) = got else {
                panic!(
                    "{smiles}: atom {atom} has no non-tetrahedral tag, RDKit @{want_shape:?}{want}"
                );
            };
            assert_eq!(got_shape, want_shape, "{smiles}: atom {atom}");
            let bonds: Vec<usize> = (0..mol.degree(atom)).collect();
            let stored = want_shape
                .stored_order(&bonds, usize::MAX)
                .unwrap_or_else(|| panic!("{smiles}: atom {atom} has too many bonds"));
            let same = (got == 0 && want == 0) || want_shape.same(got, &stored, want, &stored);
            assert!(
                same,
                "{smiles}: atom {atom}: ours @{}{got}, RDKit {want}",
                want_shape.letters()
            );
        }
    }
}

#[test]
fn canonical_smiles_of_nontetrahedral_centres() {
    let g = golden();
    let rows = array(&g["molecules"]);
    let mut by_class: HashMap<&str, (&str, String)> = HashMap::new();
    let mut by_ours: HashMap<String, (&str, &str)> = HashMap::new();
    let mut forms = 0;
    for row in rows {
        let smiles = as_str(&row["smiles"]);
        let class = as_str(&row["class"]);
        let ours = canonical_from_smiles(smiles, true)
            .unwrap_or_else(|e| panic!("{smiles}: rejected: {}", describe_error(&e)));
        for form in array(&row["random"]).iter().map(as_str) {
            let got = canonical_from_smiles(form, true)
                .unwrap_or_else(|e| panic!("{form}: rejected: {}", describe_error(&e)));
            assert_eq!(got, ours, "random form {form} of {smiles}");
            forms += 1;
        }
        let again = canonical_from_smiles(&ours, true)
            .unwrap_or_else(|e| panic!("{ours}: our output rejected: {}", describe_error(&e)));
        assert_eq!(
            again, ours,
            "{smiles}: our canonical string does not read back to itself"
        );
        if let Some((other, theirs)) = by_class.get(class) {
            assert_eq!(
                &ours, theirs,
                "{smiles} and {other} are the same molecule for RDKit"
            );
        }
        if let Some((other, other_class)) = by_ours.get(&ours) {
            assert_eq!(
                class, *other_class,
                "{smiles} and {other} differ for RDKit, ours {ours}"
            );
        }
        by_class.insert(class, (smiles, ours.clone()));
        by_ours.insert(ours, (smiles, class));
    }
    assert!(forms > 300, "too few random forms: {forms}");
}
