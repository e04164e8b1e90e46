//! Property tests: the chem layer never panics and answers quickly on any input.
//!
//! Five input families: arbitrary strings over the SMILES alphabet, arbitrary bytes (read as
//! UTF-8 with replacement characters, as the data readers hand them on), real SMILES from the
//! committed sample with random character edits (delete / insert / swap), random sequences
//! of SELFIES tokens, and arbitrary bracket tokens (`[` + any characters + `]`, brackets
//! sometimes missing) decoded as SELFIES. Every SMILES input goes through `parse_smiles`, `mol_from_smiles`,
//! `featurize_smiles`, `canonical_from_smiles` (isomeric and not) and `selfies::encode`;
//! SELFIES inputs through
//! `selfies::decode`, whose output is fed back to the SMILES functions.
//!
//! `PROPTEST_CASES=N` sets the number of cases per family (default sized for CI, about 30 s
//! in a debug build; the byte and bracket-token families default to fewer); each test prints
//! how many inputs it ran.

mod chem_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use instructmol::chem::canon::canonical_from_smiles;
use instructmol::chem::selfies::{decode, encode};
use instructmol::chem::{featurize_smiles, mol_from_smiles, parse_smiles};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Default number of cases per input family when PROPTEST_CASES is not set.
const DEFAULT_CASES: u32 = 12000;

/// Default for the arbitrary-bytes and bracket-token families.
const DEFAULT_EXTRA_CASES: u32 = 3000;

/// Characters SMILES is written with, plus a few that are not (whitespace, NUL, multi-byte).
const ALPHABET: &[char] = &[
    'C', 'N', 'O', 'S', 'P', 'F', 'I', 'B', 'H', 'l', 'r', 'c', 'n', 'o', 's', 'p', 'b', 'e', 'a',
    't', 'i', 'K', 'Z', 'u', '[', ']', '(', ')', '=', '#', '$', ':', '/', '\\', '@', '+', '-', '.',
    '%', '*', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', '>', '<', '~', '?', 'X', 'T',
    'A', 'L', 'M', 'Q', 'é', 'Ω', '€', '\t', '\n', '\u{0}',
];

/// SELFIES tokens: the common alphabet, some exotic but valid ones, and malformed ones.
const SELFIES_TOKENS: &[&str] = &[
    "[C]",
    "[C]",
    "[C]",
    "[N]",
    "[O]",
    "[S]",
    "[F]",
    "[Cl]",
    "[Br]",
    "[I]",
    "[P]",
    "[B]",
    "[=C]",
    "[=N]",
    "[=O]",
    "[=S]",
    "[#C]",
    "[#N]",
    "[/C]",
    "[\\C]",
    "[=C@@H1]",
    "[C@H1]",
    "[C@@H1]",
    "[N+1]",
    "[O-1]",
    "[NH1+1]",
    "[NH3+1]",
    "[13C]",
    "[2H]",
    "[Na+1]",
    "[Fe+3]",
    "[Branch1]",
    "[Branch2]",
    "[Branch3]",
    "[=Branch1]",
    "[=Branch2]",
    "[#Branch1]",
    "[Ring1]",
    "[Ring2]",
    "[Ring3]",
    "[=Ring1]",
    "[=Ring2]",
    "[#Ring1]",
    "[/Ring1]",
    "[\\Ring1]",
    "[-/Ring1]",
    "[\\/Ring2]",
    "[nop]",
    "[epsilon]",
    ".",
    "[Xyz]",
    "[C",
    "C]",
    "[]",
    "[=]",
    "[Ring0]",
    "[Branch9]",
    "[#Fe]",
    "[C@TH1]",
    "[*]",
    "é",
    "[Cé]",
    "[=Ω]",
];

static SAMPLE: OnceLock<Vec<String>> = OnceLock::new();

/// The committed sample's SMILES (tests/data/sample.tsv).
fn sample() -> &'static [String] {
    SAMPLE.get_or_init(|| {
        let path = chem_common::data_path("sample.tsv");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        text.lines()
            .skip(1)
            .filter_map(|line| line.split('\t').next())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn config() -> Config {
    config_with(DEFAULT_CASES)
}

fn config_with(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs every SMILES-consuming function on `input`; panics (failing the case) on a broken invariant.
fn exercise_smiles(input: &str) {
    let raw = parse_smiles(input);
    let parsed = mol_from_smiles(input);
    let featurized = featurize_smiles(input);
    let iso = canonical_from_smiles(input, true);
    let noniso = canonical_from_smiles(input, false);
    let _ = encode(input);
    // A molecule we reject can be neither featurized nor written; a syntax error is rejected.
    if parsed.is_err() {
        assert!(
            featurized.is_err(),
            "featurized a rejected SMILES {input:?}"
        );
        assert!(
            iso.is_err() && noniso.is_err(),
            "canonicalized a rejected SMILES {input:?}"
        );
    }
    if raw.is_err() {
        assert!(parsed.is_err(), "sanitized an unparsable SMILES {input:?}");
    }
    if let Ok(graph) = featurized {
        let n = graph.node_feat.len() as i64;
        let edges = graph.edge_feat.len();
        assert!(
            graph.edge_index.iter().all(|side| side.len() == edges),
            "edge_index / edge_feat lengths differ for {input:?}"
        );
        let endpoints = graph.edge_index[0].iter().chain(&graph.edge_index[1]);
        assert!(
            endpoints.copied().all(|a| (0..n).contains(&a)),
            "edge out of range for {input:?}"
        );
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Swap(usize),
}

/// Applies `edits` (positions taken modulo the current length) to `smiles`.
fn mutate(smiles: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = smiles.chars().collect();
    for edit in edits {
        let n = chars.len();
        match *edit {
            Edit::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Swap(i) if n > 1 => chars.swap(i % (n - 1), i % (n - 1) + 1),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), proptest::sample::select(ALPHABET)).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Swap),
    ]
}

static ALPHABET_RUNS: AtomicUsize = AtomicUsize::new(0);
static MUTATION_RUNS: AtomicUsize = AtomicUsize::new(0);
static SELFIES_RUNS: AtomicUsize = AtomicUsize::new(0);
static BYTES_RUNS: AtomicUsize = AtomicUsize::new(0);
static BRACKET_RUNS: AtomicUsize = AtomicUsize::new(0);

/// What goes inside a bracket token: element symbols, charges, isotopes, chirality, the
/// Branch/Ring words, bond prefixes, digits, brackets, and characters SELFIES never uses.
const BRACKET_PARTS: &[&str] = &[
    "C",
    "c",
    "N",
    "O",
    "S",
    "Cl",
    "Br",
    "H",
    "Fe",
    "Xx",
    "Branch",
    "Ring",
    "nop",
    "epsilon",
    "=",
    "#",
    "/",
    "\\",
    "-",
    "+",
    "@",
    "@@",
    "@TH",
    "@SP",
    "@OH",
    "0",
    "1",
    "2",
    "3",
    "9",
    "13",
    "255",
    "99999999999999999999",
    "[",
    "]",
    ".",
    " ",
    "*",
    "%",
    ":",
    "é",
    "Ω",
    "\u{0}",
];

#[test]
fn arbitrary_smiles_alphabet_strings_never_panic() {
    proptest!(config(), |(chars in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..40))| {
        let input: String = chars.into_iter().collect();
        exercise_smiles(&input);
        ALPHABET_RUNS.fetch_add(1, Ordering::Relaxed);
    });
    println!(
        "alphabet strings run: {}",
        ALPHABET_RUNS.load(Ordering::Relaxed)
    );
}

#[test]
fn mutated_real_smiles_never_panic() {
    let n = sample().len();
    assert!(n >= 5000, "sample too small: {n}");
    proptest!(config(), |(index in 0..n, edits in proptest::collection::vec(edit_strategy(), 1..4))| {
        let input = mutate(&sample()[index], &edits);
        exercise_smiles(&input);
        MUTATION_RUNS.fetch_add(1, Ordering::Relaxed);
    });
    println!(
        "mutated SMILES run: {}",
        MUTATION_RUNS.load(Ordering::Relaxed)
    );
}

#[test]
fn random_selfies_never_panic() {
    proptest!(config(), |(tokens in proptest::collection::vec(proptest::sample::select(SELFIES_TOKENS), 0..30))| {
        let input = tokens.concat();
        let decoded = decode(&input);
        if let Ok(smiles) = decoded {
            exercise_smiles(&smiles);
        }
        SELFIES_RUNS.fetch_add(1, Ordering::Relaxed);
    });
    println!(
        "SELFIES sequences run: {}",
        SELFIES_RUNS.load(Ordering::Relaxed)
    );
}

#[test]
fn arbitrary_bytes_as_smiles_never_panic() {
    proptest!(config_with(DEFAULT_EXTRA_CASES), |(bytes in proptest::collection::vec(any::<u8>(), 0..48))| {
        let input = String::from_utf8_lossy(&bytes);
        exercise_smiles(&input);
        let _ = decode(&input);
        BYTES_RUNS.fetch_add(1, Ordering::Relaxed);
    });
    println!(
        "arbitrary byte strings run: {}",
        BYTES_RUNS.load(Ordering::Relaxed)
    );
}

/// One bracket token with arbitrary contents; `open` / `close` false drop a bracket.
fn bracket_token() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(proptest::sample::select(BRACKET_PARTS), 0..5),
        proptest::bool::weighted(0.95),
        proptest::bool::weighted(0.95),
    )
        .prop_map(|(parts, open, close)| {
            let mut t = String::new();
            if open {
                t.push('[');
            }
            t.push_str(&parts.concat());
            if close {
                t.push(']');
            }
            t
        })
}

#[test]
fn arbitrary_bracket_tokens_as_selfies_never_panic() {
    let token = prop_oneof![
        3 => bracket_token(),
        1 => proptest::sample::select(SELFIES_TOKENS).prop_map(str::to_string),
    ];
    proptest!(config_with(DEFAULT_EXTRA_CASES), |(tokens in proptest::collection::vec(token, 0..20))| {
        let input = tokens.concat();
        if let Ok(smiles) = decode(&input) {
            exercise_smiles(&smiles);
        }
        BRACKET_RUNS.fetch_add(1, Ordering::Relaxed);
    });
    println!(
        "bracket-token SELFIES run: {}",
        BRACKET_RUNS.load(Ordering::Relaxed)
    );
}

#[test]
fn mutation_helper_edits_as_described() {
    let edits = [Edit::Delete(0), Edit::Insert(100, 'N'), Edit::Swap(0)];
    // "CCO" -> delete 0 -> "CO" -> insert at 100 % 3 = 1 -> "CNO" -> swap 0,1 -> "NCO"
    assert_eq!(mutate("CCO", &edits), "NCO");
    assert_eq!(mutate("", &[Edit::Delete(3), Edit::Swap(1)]), "");
}
