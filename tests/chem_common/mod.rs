//! Shared helpers for the golden tests: reading the committed RDKit/selfies goldens
//! (tests/data/golden/*.jsonl, written by scripts/golden/make_goldens.py) and tallying
//! agreement per data source with a readable list of the first disagreements.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::{BTreeMap, HashSet};
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
///
/// Known disagreements can be listed, one input per line, in
/// tests/data/golden/xfail/<name>.txt ("# " lines are comments): they are counted and shown
/// but do not fail the test, so main stays green while the chem layer is being completed;
/// any other disagreement fails it. Listed inputs that now agree are reported so the list can
/// shrink. `GOLDEN_UPDATE_XFAIL=1 cargo test --test <t>` rewrites the lists from the current
/// disagreements (and deletes a list that becomes empty).
pub struct Tally {
    title: String,
    xfail: PathBuf,
    known: HashSet<String>,
    per_source: BTreeMap<String, (usize, usize)>,
    unexpected: Vec<String>,
    expected: Vec<String>,
    failed_keys: Vec<String>,
    now_agree: usize,
    informational: bool,
}

impl Tally {
    /// An empty tally for the check called `title`, with known disagreements read from
    /// tests/data/golden/xfail/`xfail`.txt when that file exists.
    pub fn new(title: &str, xfail: &str) -> Self {
        let path = data_path(&format!("golden/xfail/{xfail}.txt"));
        let known = std::fs::read_to_string(&path)
            .map(|text| {
                text.lines()
                    .filter(|l| !(l.is_empty() || *l == "#" || l.starts_with("# ")))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            title: title.to_string(),
            xfail: path,
            known,
            per_source: BTreeMap::new(),
            unexpected: Vec::new(),
            expected: Vec::new(),
            failed_keys: Vec::new(),
            now_agree: 0,
            informational: false,
        }
    }

    /// A tally that is only printed, never asserted (no xfail list).
    pub fn info(title: &str) -> Self {
        Self {
            informational: true,
            ..Self::new(title, "")
        }
    }

    /// Records one agreeing case; `key` is the input as listed in the xfail file.
    pub fn pass(&mut self, source: &str, key: &str) {
        self.per_source.entry(source.to_string()).or_default().0 += 1;
        if self.known.contains(key) {
            self.now_agree += 1;
        }
    }

    /// Records one disagreement with its readable explanation.
    pub fn fail(&mut self, source: &str, key: &str, explanation: String) {
        self.per_source.entry(source.to_string()).or_default().1 += 1;
        self.failed_keys.push(key.to_string());
        if self.known.contains(key) {
            self.expected.push(explanation);
        } else {
            self.unexpected.push(explanation);
        }
    }

    /// Records a case from an `Err(explanation)` / `Ok(())` comparison result.
    pub fn record(&mut self, source: &str, key: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(source, key),
            Err(explanation) => self.fail(source, key, explanation),
        }
    }

    /// (agreeing, total).
    pub fn counts(&self) -> (usize, usize) {
        self.per_source
            .values()
            .fold((0, 0), |(a, t), &(ok, bad)| (a + ok, t + ok + bad))
    }

    /// Prints the summary and the first disagreements (unexpected ones first); returns true
    /// when every disagreement is a listed known one.
    pub fn report(&self) -> bool {
        let (agree, total) = self.counts();
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * agree as f64 / total as f64
        };
        println!("== {}: {agree}/{total} agree ({pct:.2}%)", self.title);
        if !self.known.is_empty() {
            println!(
                "   known disagreements listed in {}: {} still disagree, {} now agree",
                self.xfail
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(&self.xfail)
                    .display(),
                self.expected.len(),
                self.now_agree
            );
        }
        for (source, (ok, bad)) in &self.per_source {
            println!("   {source:22} {ok:6}/{}", ok + bad);
        }
        let shown: Vec<(&str, &String)> = self
            .unexpected
            .iter()
            .map(|f| ("", f))
            .chain(self.expected.iter().map(|f| ("[known] ", f)))
            .take(SHOWN)
            .collect();
        if self.informational && !shown.is_empty() {
            println!(
                "   {} differences (information only, not asserted); the first {}:",
                self.unexpected.len(),
                shown.len()
            );
        } else if !shown.is_empty() {
            println!(
                "   {} unexpected and {} known disagreements; the first {}:",
                self.unexpected.len(),
                self.expected.len(),
                shown.len()
            );
            for (tag, failure) in shown {
                for (i, line) in failure.lines().enumerate() {
                    if i == 0 {
                        println!("   - {tag}{line}");
                    } else {
                        println!("     {line}");
                    }
                }
            }
        }
        self.unexpected.is_empty()
    }

    /// Rewrites the xfail list from the current disagreements (deleting it when there are none).
    fn update_xfail(&self) {
        let mut keys: Vec<&String> = self.failed_keys.iter().collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            let _ = std::fs::remove_file(&self.xfail);
            return;
        }
        let mut text = format!(
            "# Known disagreements for \"{}\" (written by GOLDEN_UPDATE_XFAIL=1; see tests/chem_common)\n",
            self.title
        );
        for key in keys {
            text.push_str(key);
            text.push('\n');
        }
        if let Some(dir) = self.xfail.parent() {
            std::fs::create_dir_all(dir).expect("create xfail directory");
        }
        std::fs::write(&self.xfail, text).expect("write xfail list");
    }
}

/// Prints every tally and panics (failing the test) when any has an unexpected disagreement.
pub fn assert_all(tallies: &[&Tally]) {
    let updating = std::env::var_os("GOLDEN_UPDATE_XFAIL").is_some();
    if updating {
        for tally in tallies {
            tally.update_xfail();
        }
    }
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
        all || updating,
        "unexpected disagreements with the reference: {}",
        summary.join("; ")
    );
}
