//! Golden test: `selfies::encode` / `selfies::decode` against the `selfies` 2.1.1 package
//! (tests/data/golden/selfies.jsonl) over the committed sample plus the edge cases:
//! - encode(smiles) is the identical string, or an error exactly where `selfies.encoder` raised;
//! - decode(reference SELFIES) is the identical SMILES string `selfies.decoder` wrote;
//! - where RDKit finds decoder(encoder(s)) to be the same molecule as s, our own round trip
//!   decode(encode(s)) canonicalizes (with our canonical writer) to the same string as s.
//!
//! Run with `cargo test --test chem_selfies -- --nocapture` to see the per-source summary.

mod chem_common;

use chem_common::{assert_all, describe_error, golden_rows, opt_str, str_field, Tally};
use instructmol::chem::canon::canonical_from_smiles;
use instructmol::chem::selfies::{decode, encode};
use serde_json::Value;

fn check_encode(smiles: &str, row: &Value) -> Result<(), String> {
    match (opt_str(row, "selfies"), encode(smiles)) {
        (Some(want), Ok(ours)) if ours == want => Ok(()),
        (Some(want), Ok(ours)) => Err(format!(
            "{smiles}\nselfies {want}\nours    {ours}\n        {}",
            caret_at_first_difference(want, &ours)
        )),
        (Some(want), Err(err)) => Err(format!(
            "{smiles}\nselfies encodes to {want}\nours rejects: {}",
            describe_error(&err)
        )),
        (None, Ok(ours)) => Err(format!(
            "{smiles}\nselfies rejects ({})\nours encodes to {ours}",
            opt_str(row, "error").unwrap_or("")
        )),
        (None, Err(_)) => Ok(()),
    }
}

fn check_decode(encoded: &str, row: &Value) -> Result<(), String> {
    let want = opt_str(row, "decoded");
    match (want, decode(encoded)) {
        (Some(want), Ok(ours)) if ours == want => Ok(()),
        (Some(want), Ok(ours)) => Err(format!(
            "{encoded}\nselfies decodes to {want}\nours               {ours}\n                   {}",
            caret_at_first_difference(want, &ours)
        )),
        (Some(want), Err(err)) => Err(format!(
            "{encoded}\nselfies decodes to {want}\nours rejects: {}",
            describe_error(&err)
        )),
        (None, Ok(ours)) => Err(format!(
            "{encoded}\nselfies decoder raised ({})\nours decodes to {ours}",
            opt_str(row, "error").unwrap_or("")
        )),
        (None, Err(_)) => Ok(()),
    }
}

fn check_roundtrip(smiles: &str) -> Result<(), String> {
    let fail = |what: String| format!("{smiles}\n{what}");
    let encoded = encode(smiles).map_err(|e| fail(format!("encode: {}", describe_error(&e))))?;
    let decoded = decode(&encoded).map_err(|e| fail(format!("decode: {}", describe_error(&e))))?;
    let original = canonical_from_smiles(smiles, true)
        .map_err(|e| fail(format!("canonical(input): {}", describe_error(&e))))?;
    let back = canonical_from_smiles(&decoded, true).map_err(|e| {
        fail(format!(
            "canonical(decoded {decoded}): {}",
            describe_error(&e)
        ))
    })?;
    if back == original {
        Ok(())
    } else {
        Err(fail(format!(
            "round trip {encoded} -> {decoded}\ncanonical in  {original}\ncanonical out {back}"
        )))
    }
}

/// A caret under the first character where `a` and `b` differ.
fn caret_at_first_difference(a: &str, b: &str) -> String {
    let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    format!("{}^", " ".repeat(at))
}

#[test]
fn selfies_match_reference_package() {
    let rows = golden_rows("selfies.jsonl");
    assert!(rows.len() > 5000, "golden file too small: {}", rows.len());
    let mut encoding = Tally::new("selfies encode (string or error)", "selfies_encode");
    let mut decoding = Tally::new("selfies decode of the reference SELFIES", "selfies_decode");
    let mut roundtrip = Tally::new(
        "canonical(decode(encode(s))) == canonical(s)",
        "selfies_roundtrip",
    );
    for row in &rows {
        let smiles = str_field(row, "smiles");
        let source = str_field(row, "source");
        encoding.record(source, smiles, check_encode(smiles, row));
        if let Some(encoded) = opt_str(row, "selfies") {
            decoding.record(source, smiles, check_decode(encoded, row));
        }
        if row.get("roundtrip").and_then(Value::as_bool) == Some(true) {
            roundtrip.record(source, smiles, check_roundtrip(smiles));
        }
    }
    assert_all(&[&encoding, &decoding, &roundtrip]);
}
