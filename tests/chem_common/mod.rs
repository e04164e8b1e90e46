//! Shared helpers for the golden tests: reading the committed RDKit/selfies goldens
//! (tests/data/golden/*.jsonl, written by scripts/golden/make_goldens.py) and tallying
//! agreement per data source with a readable list of the first disagreements.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::path::PathBuf;

use instructmol::chem::{ChemError, ErrorKind};
use serde_json::Value;

/// How many disagreements are printed in full.
pub const SHOWN: usize = 20;

/// Path of a file under tests/data.
pub fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(rel)
}

/// All rows of a golden JSONL file under tests/data/golden.
pub fn golden_rows(name: &str) -> Vec<Value> {
    let path = data_path(&format!("golden/{name}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: bad JSON: {e}", path.display(), n + 1))
        })
        .collect()
}

/// A string field of a golden row (panics with the row when missing: a broken golden file).
pub fn str_field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("golden row without string field {key:?}: {row}"))
}

/// An optional string field of a golden row.
pub fn opt_str<'a>(row: &'a Value, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

/// An integer array field of a golden row.
pub fn int_array(row: &Value, key: &str) -> Vec<i64> {
    row[key]
        .as_array()
        .unwrap_or_else(|| panic!("golden row without array field {key:?}: {row}"))
        .iter()
        .map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("non-integer in {key:?}: {row}"))
        })
        .collect()
}

/// The golden error category (as written by oracle.py) of one of our error kinds.
pub fn category(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Syntax => "parse",
        ErrorKind::Valence => "valence",
        ErrorKind::Kekulize => "kekulize",
        ErrorKind::Unsupported => "unsupported",
    }
}

/// One line summary of one of our errors.
pub fn describe_error(err: &ChemError) -> String {
    let pos = err
        .position
        .map(|p| format!(" at position {p}"))
        .unwrap_or_default();
    format!("{}{pos}: {}", category(err.kind), err.message)
}

/// Agreement counts per source plus the first disagreements, for one kind of check.
pub struct Tally {
    title: String,
    per_source: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
}

impl Tally {
    /// An empty tally for the check called `title`.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            per_source: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    /// Records one agreeing case.
    pub fn pass(&mut self, source: &str) {
        self.per_source.entry(source.to_string()).or_default().0 += 1;
    }

    /// Records one disagreement with its readable explanation.
    pub fn fail(&mut self, source: &str, explanation: String) {
        self.per_source.entry(source.to_string()).or_default().1 += 1;
        self.failures.push(explanation);
    }

    /// Records a case from an `Err(explanation)` / `Ok(())` comparison result.
    pub fn record(&mut self, source: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(source),
            Err(explanation) => self.fail(source, explanation),
        }
    }

    /// (agreeing, total).
    pub fn counts(&self) -> (usize, usize) {
        self.per_source
            .values()
            .fold((0, 0), |(a, t), &(ok, bad)| (a + ok, t + ok + bad))
    }

    /// Prints the summary and the first disagreements; returns true when everything agreed.
    pub fn report(&self) -> bool {
        let (agree, total) = self.counts();
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * agree as f64 / total as f64
        };
        println!("== {}: {agree}/{total} agree ({pct:.2}%)", self.title);
        for (source, (ok, bad)) in &self.per_source {
            println!("   {source:22} {ok:6}/{}", ok + bad);
        }
        if !self.failures.is_empty() {
            println!(
                "   first {} of {} disagreements:",
                self.failures.len().min(SHOWN),
                self.failures.len()
            );
            for failure in self.failures.iter().take(SHOWN) {
                for (i, line) in failure.lines().enumerate() {
                    println!("   {} {line}", if i == 0 { "-" } else { " " });
                }
            }
        }
        self.failures.is_empty()
    }
}

/// Prints every tally and panics (failing the test) unless all of them fully agree.
pub fn assert_all(tallies: &[&Tally]) {
    let mut all = true;
    for tally in tallies {
        all &= tally.report();
    }
    let summary: Vec<String> = tallies
        .iter()
        .map(|t| {
            let (a, n) = t.counts();
            format!("{}: {a}/{n}", t.title)
        })
        .collect();
    assert!(
        all,
        "disagreements with the reference: {}",
        summary.join("; ")
    );
}
