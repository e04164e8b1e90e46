//! Golden test: `canonical_from_smiles` against RDKit (tests/data/golden/canonical.jsonl).
//! - accept/reject verdict equals RDKit's `Chem.MolFromSmiles` on the sample plus edge cases;
//! - invariance: the 20 random SMILES (RDKit `doRandom` and random atom renumberings) and the
//!   Kekule SMILES of a molecule canonicalize to the same string as the molecule itself,
//!   isomeric and non-isomeric;
//! - equality classes: two sample rows get the same canonical string from us exactly when they
//!   get the same canonical string from RDKit (isomeric and non-isomeric); for molecules with
//!   square-planar, trigonal-bipyramidal or octahedral centres, whose RDKit string can depend
//!   on the input atom order, RDKit's order-independent key "iso_class" stands in for it;
//! - exact string agreement with RDKit's canonical SMILES is printed for information only.
//!
//! Run with `cargo test --test chem_canon -- --nocapture` to see the per-source summary.

mod chem_common;

use std::collections::HashMap;

use chem_common::{assert_all, describe_error, golden_rows, opt_str, str_field, Tally};
use instructmol::chem::canon::canonical_from_smiles;
use serde_json::Value;

/// One sample row with RDKit's class key and our canonical string (None when rejected).
struct Canon<'a> {
    smiles: &'a str,
    source: &'a str,
    rdkit: Option<&'a str>,
    ours: Option<String>,
}

/// RDKit's class key of a row: "iso_class" where present, else the canonical string.
fn rdkit_class(row: &Value, isomeric: bool) -> Option<&str> {
    match opt_str(row, "iso_class") {
        Some(class) if isomeric => Some(class),
        _ => rdkit_canon(row, isomeric),
    }
}

/// RDKit's canonical string of a row: isomeric, or non-isomeric ("noniso" is omitted when it
/// equals "iso").
fn rdkit_canon(row: &Value, isomeric: bool) -> Option<&str> {
    if isomeric {
        opt_str(row, "iso")
    } else {
        opt_str(row, "noniso").or_else(|| opt_str(row, "iso"))
    }
}

fn check_verdict(canon: &Canon, ours: &Result<String, String>) -> Result<(), String> {
    match (canon.rdkit, ours) {
        (Some(_), Ok(_)) | (None, Err(_)) => Ok(()),
        (Some(want), Err(err)) => Err(format!(
            "{}\nrdkit accepts ({want}), ours rejects: {err}",
            canon.smiles
        )),
        (None, Ok(ours)) => Err(format!(
            "{}\nrdkit rejects, ours writes {ours}",
            canon.smiles
        )),
    }
}

/// Every random / Kekule form of `row` must canonicalize like the row's own SMILES.
fn check_invariance(row: &Value, reference: &str, isomeric: bool) -> Result<(), String> {
    let smiles = str_field(row, "smiles");
    let mut forms: Vec<(&str, &str)> = row
        .get("random")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| ("random", s))
                .collect()
        })
        .unwrap_or_default();
    if let Some(kekule) = opt_str(row, "kekule") {
        forms.push(("kekule", kekule));
    }
    let mut bad = Vec::new();
    for (kind, form) in &forms {
        match canonical_from_smiles(form, isomeric) {
            Ok(c) if c == reference => {}
            Ok(c) => bad.push(format!("{kind} {form}\n  -> {c}")),
            Err(e) => bad.push(format!("{kind} {form}\n  -> error {}", describe_error(&e))),
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let shown = bad.len().min(3);
    Err(format!(
        "{smiles}\nours canonical {reference}\n{} of {} forms differ, e.g.\n{}",
        bad.len(),
        forms.len(),
        bad[..shown].join("\n")
    ))
}

/// Compares the partition of rows by RDKit's canonical string with the partition by ours.
fn check_classes(rows: &[Canon], tally: &mut Tally) {
    let mut by_rdkit: HashMap<&str, usize> = HashMap::new();
    let mut by_ours: HashMap<&str, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (Some(rdkit), Some(ours)) = (row.rdkit, row.ours.as_deref()) else {
            continue;
        };
        let first_rdkit = *by_rdkit.entry(rdkit).or_insert(i);
        let first_ours = *by_ours.entry(ours).or_insert(i);
        if first_rdkit == first_ours {
            tally.pass(row.source, row.smiles);
            continue;
        }
        // Some earlier row is grouped with row i by one side only: find it and show both.
        // (One always exists when the first members differ; fall back to the earlier one.)
        let other = [first_rdkit, first_ours]
            .into_iter()
            .find(|&j| {
                j != i && (rows[j].rdkit == Some(rdkit)) != (rows[j].ours.as_deref() == Some(ours))
            })
            .unwrap_or(first_rdkit.min(first_ours));
        let o = &rows[other];
        let verdict = |same: bool| if same { "same molecule" } else { "different" };
        tally.fail(
            row.source,
            row.smiles,
            format!(
                "{} vs {}\nrdkit: {}, ours: {}\nrdkit {} | {}\nours  {} | {}",
                row.smiles,
                o.smiles,
                verdict(o.rdkit == Some(rdkit)),
                verdict(o.ours.as_deref() == Some(ours)),
                rdkit,
                o.rdkit.unwrap_or("-"),
                ours,
                o.ours.as_deref().unwrap_or("-"),
            ),
        );
    }
}

fn run(isomeric: bool) -> [Tally; 4] {
    let label = if isomeric { "isomeric" } else { "non-isomeric" };
    let rows = golden_rows("canonical.jsonl");
    assert!(rows.len() > 5000, "golden file too small: {}", rows.len());
    let mut verdict = Tally::new(
        &format!("canonical {label}: accept/reject verdict"),
        &format!("canon_{label}_verdict"),
    );
    let mut invariance = Tally::new(
        &format!("canonical {label}: random/Kekule invariance"),
        &format!("canon_{label}_invariance"),
    );
    let mut classes = Tally::new(
        &format!("canonical {label}: equality classes"),
        &format!("canon_{label}_classes"),
    );
    let mut exact = Tally::info(&format!("canonical {label}: identical to RDKit"));
    let mut canons = Vec::with_capacity(rows.len());
    for row in &rows {
        let smiles = str_field(row, "smiles");
        let source = str_field(row, "source");
        let ours = canonical_from_smiles(smiles, isomeric).map_err(|e| describe_error(&e));
        let canon = Canon {
            smiles,
            source,
            rdkit: rdkit_class(row, isomeric),
            ours: ours.as_ref().ok().cloned(),
        };
        verdict.record(source, smiles, check_verdict(&canon, &ours));
        if let (Some(want), Some(got)) = (rdkit_canon(row, isomeric), canon.ours.as_deref()) {
            if want == got {
                exact.pass(source, smiles);
            } else {
                exact.fail(
                    source,
                    smiles,
                    format!("{smiles}\nrdkit {want}\nours  {got}"),
                );
            }
        }
        if row.get("random").is_some() {
            if let Some(reference) = canon.ours.as_deref() {
                invariance.record(source, smiles, check_invariance(row, reference, isomeric));
            }
        }
        canons.push(canon);
    }
    check_classes(&canons, &mut classes);
    [verdict, invariance, classes, exact]
}

fn assert_canon(isomeric: bool) {
    let [verdict, invariance, classes, exact] = run(isomeric);
    exact.report();
    assert_all(&[&verdict, &invariance, &classes]);
}

#[test]
fn canonical_isomeric_matches_rdkit_classes() {
    assert_canon(true);
}

#[test]
fn canonical_non_isomeric_matches_rdkit_classes() {
    assert_canon(false);
}
