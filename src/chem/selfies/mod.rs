//! SELFIES, with the exact behaviour of the `selfies` Python package, version 2.1.1, under
//! its default semantic constraints.
//!
//! [`encode`] reads SMILES with `selfies`' own reader and kekulizer (not RDKit's: it may pick
//! a different Kekule structure and accepts or rejects different strings), checks the
//! bonding capacities, and writes SELFIES in the atom order of the input. [`decode`]
//! rebuilds the molecule symbol by symbol under the same capacities and writes it with
//! `selfies`' SMILES writer. [`tokens`] splits a SELFIES string into its symbols.
//!
//! Known deviations from the Python package, all on inputs no chemistry data contains:
//! numbers (isotopes, charges) longer than 18 digits and non-ASCII digits are rejected
//! rather than read. Branches nested more than [`MAX_NESTING`] deep are an error, which is
//! where the Python encoder, called at top level, hits its `RecursionError` (the decoder
//! cannot nest that deep: a branch holds at most 4096 symbols).

mod atom;
mod decoder;
mod encoder;
mod graph;
mod matching;
mod reader;
mod writer;

pub use decoder::decode;
pub use encoder::encode;

use crate::chem::{ChemError, ErrorKind};

/// Deepest branch nesting the encoder and decoder follow before giving up (the deepest
/// `selfies.encoder` handles under Python's default recursion limit).
pub const MAX_NESTING: usize = 993;

/// The symbols that encode ring lengths and branch sizes, as base-16 digits.
const INDEX_ALPHABET: [&str; 16] = [
    "[C]",
    "[Ring1]",
    "[Ring2]",
    "[Branch1]",
    "[=Branch1]",
    "[#Branch1]",
    "[Branch2]",
    "[=Branch2]",
    "[#Branch2]",
    "[O]",
    "[N]",
    "[=N]",
    "[=C]",
    "[#C]",
    "[S]",
    "[P]",
];

/// The index symbols for `index` (most significant first; `[C]` for 0).
fn index_symbols(index: usize) -> Vec<&'static str> {
    if index == 0 {
        return vec![INDEX_ALPHABET[0]];
    }
    let mut digits = Vec::new();
    let mut rest = index;
    while rest > 0 {
        digits.push(INDEX_ALPHABET[rest % 16]);
        rest /= 16;
    }
    digits.reverse();
    digits
}

/// The number that index symbols stand for; symbols outside the alphabet count as 0.
fn index_of_symbols(symbols: &[&str]) -> usize {
    symbols.iter().fold(0, |acc, s| {
        acc * 16 + INDEX_ALPHABET.iter().position(|a| a == s).unwrap_or(0)
    })
}

/// `selfies.split_selfies` without the `.` handling: everything before the first `[` is
/// skipped, then every symbol runs up to the next `]`. `Err(byte offset)` for a symbol that
/// is never closed.
fn split_symbols(s: &str) -> Result<Vec<&str>, usize> {
    let mut out = Vec::new();
    let Some(mut left) = s.find('[') else {
        return Ok(out);
    };
    while left < s.len() {
        // Python skips the character at `left`, whatever it is; a `]` byte is never part
        // of a longer UTF-8 character, so searching bytes from `left + 1` is the same.
        let Some(r) = s.as_bytes()[left + 1..].iter().position(|&b| b == b']') else {
            return Err(left);
        };
        let right = left + 1 + r;
        out.push(&s[left..=right]);
        left = right + 1;
        if s[left..].starts_with('.') {
            out.push(".");
            left += 1;
        }
    }
    Ok(out)
}

/// Splits a SELFIES string into its symbols, as `selfies.split_selfies` does: `"."` is a
/// symbol of its own, text before the first `[` is skipped, and anything else between
/// symbols becomes part of the next symbol. An error for a symbol that is never closed.
pub fn tokens(selfies: &str) -> Result<Vec<&str>, ChemError> {
    split_symbols(selfies).map_err(|at| {
        let pos = selfies[..at].chars().count();
        ChemError::at(
            ErrorKind::Syntax,
            selfies,
            pos,
            "malformed SELFIES string, hanging '[' bracket",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_symbols_round_trip() {
        // selfies.grammar_rules.get_selfies_from_index(n) for n = 0, 5, 16, 4095
        assert_eq!(index_symbols(0), vec!["[C]"]);
        assert_eq!(index_symbols(5), vec!["[#Branch1]"]);
        assert_eq!(index_symbols(16), vec!["[Ring1]", "[C]"]);
        assert_eq!(index_symbols(4095), vec!["[P]", "[P]", "[P]"]);
        for n in [0, 7, 300, 4000] {
            assert_eq!(index_of_symbols(&index_symbols(n)), n);
        }
        assert_eq!(index_of_symbols(&["[F]", "[O]"]), 9);
    }

    #[test]
    fn nesting_limit_matches_python() {
        // selfies.encoder('C(' * d + 'C' + ')C' * d) succeeds for d = 993 and raises
        // RecursionError for d = 994.
        let nested = |d: usize| format!("{}C{}", "C(".repeat(d), ")C".repeat(d));
        assert!(encode(&nested(MAX_NESTING)).is_ok());
        assert!(encode(&nested(MAX_NESTING + 1)).is_err());
    }

    #[test]
    fn splits_like_selfies() {
        // list(selfies.split_selfies(s))
        assert_eq!(
            tokens("[C][=C][F].[C]").unwrap(),
            vec!["[C]", "[=C]", "[F]", ".", "[C]"]
        );
        assert_eq!(tokens("ab[C]x[C]").unwrap(), vec!["[C]", "x[C]"]);
        assert!(tokens("[C]x").is_err());
        assert_eq!(tokens("[C]é[N]").unwrap(), vec!["[C]", "é[N]"]);
        assert!(tokens("[C]]").is_err());
        assert!(decode("[C]é[N]").is_err());
        assert!(tokens("[C").is_err());
        assert_eq!(tokens("").unwrap(), Vec::<&str>::new());
    }

    /// Every row of the committed selfies 2.1.1 goldens (sample of all datasets plus edge
    /// cases): same SELFIES and decoded SMILES, and an error exactly where selfies raised.
    #[test]
    fn matches_selfies_goldens() {
        let text = include_str!("../../../tests/data/golden/selfies.jsonl");
        let mut rows = 0;
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let smiles = row["smiles"].as_str().unwrap();
            let encoded = encode(smiles);
            match (row.get("error"), row["selfies"].as_str()) {
                (Some(_), None) => assert!(encoded.is_err(), "{smiles}"),
                (_, Some(want)) => {
                    let got = encoded.unwrap_or_else(|e| panic!("{smiles}: {e}"));
                    assert_eq!(got, want, "{smiles}");
                    let decoded = decode(&got);
                    match row["decoded"].as_str() {
                        Some(d) => assert_eq!(decoded.as_deref(), Ok(d), "{smiles}"),
                        None => assert!(decoded.is_err(), "{smiles}"),
                    }
                }
                (None, None) => panic!("malformed golden row {line}"),
            }
            rows += 1;
        }
        assert!(rows > 5000);
    }

    proptest::proptest! {
        /// Arbitrary text, SMILES-like or not, never panics either direction.
        #[test]
        fn never_panics(s in "([CcNnOoSsPBrlF()=#:/@+%.\\-]|\\[|\\]|[0-9]|H|[\\x{80}-\\x{10ffff}]|\\[[A-Za-z0-9@+:-]{0,6}\\]){0,40}") {
            let _ = encode(&s);
            let _ = decode(&s);
            let _ = tokens(&s);
        }

        /// Random sequences of SELFIES symbols always decode to something or fail cleanly,
        /// and re-encoding the decoded SMILES does not panic either.
        #[test]
        fn random_selfies_never_panic(syms in proptest::collection::vec(
            proptest::sample::select(vec![
                "[C]", "[=C]", "[#C]", "[N]", "[=N]", "[O]", "[=O]", "[F]", "[Br]", "[S]",
                "[P]", "[Branch1]", "[=Branch1]", "[#Branch1]", "[Branch2]", "[Branch3]",
                "[Ring1]", "[=Ring1]", "[#Ring1]", "[Ring2]", "[-/Ring1]", "[\\/Ring2]",
                "[/C]", "[\\C]", "[C@@H1]", "[N+1]", "[O-1]", "[nop]", "[epsilon]", ".",
                "[Xx]", "[C+10]", "[13C]", "[CH4]",
            ]),
            0..60,
        )) {
            let s: String = syms.concat();
            if let Ok(smiles) = decode(&s) {
                let _ = encode(&smiles);
            }
        }
    }
}
