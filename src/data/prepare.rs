//! `instructmol data prepare`: raw dataset -> LLaVA-style JSONL per split, plus a report of
//! every row that could not be used (`prepare_report.json`).
//!
//! Invalid molecules and malformed rows are never dropped silently: each is counted under its
//! reason, with the line numbers of the first few, on stderr (by the CLI) and in the report.
//! The output is a pure function of (input bytes, task, variant, split method, seed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::prompts::Variant;
use super::record::{write_jsonl, Record, Turn, IMAGE_TOKEN};
use super::splits::{random_split, scaffold_keys, scaffold_split, Fractions};
use super::{chebi20, mol_instructions, moleculenet, pubchem, qm9, uspto, DataError};
use crate::chem::{featurize_smiles, ErrorKind};

/// How many line numbers per reason the report keeps.
const FIRST_LINES: usize = 10;

/// The tasks `data prepare` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// ChEBI-20 molecule description (TSV `CID\tSMILES\tdescription`).
    Chebi20,
    /// MoleculeNet BACE (CSV `mol,Class`).
    Bace,
    /// MoleculeNet BBBP (CSV `smiles,p_np`).
    Bbbp,
    /// MoleculeNet HIV (CSV(.gz) `smiles,HIV_active`).
    Hiv,
    /// QM9 HOMO/LUMO/gap in hartree (MoleculeNet CSV), one question per property.
    Qm9,
    /// Retrosynthesis: product graph -> reactant SELFIES.
    Retrosynthesis,
    /// Forward prediction: first reactant graph (+ the others as text) -> product SELFIES.
    Forward,
    /// Reagent prediction (Mol-Instructions JSON only).
    Reagent,
    /// Stage-1 molecule-caption pairs (TSV `CID\tSMILES\tcaption`).
    PubchemPairs,
}

impl Task {
    /// Every task, in the order the CLI lists them.
    pub const ALL: [Task; 9] = [
        Task::Chebi20,
        Task::Bace,
        Task::Bbbp,
        Task::Hiv,
        Task::Qm9,
        Task::Retrosynthesis,
        Task::Forward,
        Task::Reagent,
        Task::PubchemPairs,
    ];

    /// The task's name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Task::Chebi20 => "chebi20",
            Task::Bace => "bace",
            Task::Bbbp => "bbbp",
            Task::Hiv => "hiv",
            Task::Qm9 => "qm9",
            Task::Retrosynthesis => "retrosynthesis",
            Task::Forward => "forward",
            Task::Reagent => "reagent",
            Task::PubchemPairs => "pubchem-pairs",
        }
    }

    /// The split a task gets when none is asked for and its files are not already split.
    pub fn default_split(self) -> Option<SplitMethod> {
        match self {
            Task::Bace | Task::Bbbp | Task::Hiv => Some(SplitMethod::Scaffold),
            Task::Qm9 => Some(SplitMethod::Random),
            _ => None,
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
                format!("unknown task `{s}` (expected one of {})", names.join(", "))
            })
    }
}

/// How examples are divided into train/valid/test (80/10/10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitMethod {
    /// Deterministic Bemis-Murcko scaffold split (largest scaffold sets into train first).
    Scaffold,
    /// Seeded random split.
    Random,
}

impl std::str::FromStr for SplitMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scaffold" => Ok(SplitMethod::Scaffold),
            "random" => Ok(SplitMethod::Random),
            _ => Err(format!("unknown split `{s}` (expected scaffold or random)")),
        }
    }
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The task.
    pub task: Task,
    /// Raw input file (or, for USPTO Liu files, the folder holding them).
    pub input: PathBuf,
    /// G or GS questions.
    pub variant: Variant,
    /// Split method; `None` keeps the input's own split (or the task's default).
    pub split: Option<SplitMethod>,
    /// Seed of the random split and of the question choice.
    pub seed: u64,
}

/// One usable example read from a raw file.
#[derive(Debug, Clone)]
pub struct Example {
    /// 1-based line (or JSON array index + 1) in the input.
    pub line: usize,
    /// The record to write.
    pub record: Record,
    /// Examples with the same group always land in the same split (e.g. one QM9 molecule's
    /// three questions).
    pub group: String,
    /// The split the input itself assigns (file name or metadata), if any.
    pub split: Option<String>,
}

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// 1-based line (or JSON array index + 1).
    pub line: usize,
    /// Reason key in the report (`smiles_syntax`, `valence`, `kekulize`, `unsupported`,
    /// `selfies_encode`, `selfies_decode`, `bad_label`, `bad_value`, `empty_field`).
    pub reason: &'static str,
    /// Details.
    pub message: String,
}

/// The output of a dataset reader.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    /// Data rows read (header excluded).
    pub rows: usize,
    /// Usable examples, in input order.
    pub items: Vec<Example>,
    /// Unusable rows.
    pub invalid: Vec<Invalid>,
    /// Rows skipped as repeats of an earlier row (QM9 `mol_id`).
    pub duplicates: usize,
    /// Molecules whose SELFIES was made from their canonical SMILES (see [`Examples::selfies`]).
    pub selfies_from_canonical: usize,
}

impl Examples {
    /// Records an unusable row.
    pub fn reject(&mut self, line: usize, reason: &'static str, message: impl Into<String>) {
        self.invalid.push(Invalid {
            line,
            reason,
            message: message.into(),
        });
    }

    /// Checks that `smiles` gives an InstructMol graph; otherwise records why and returns false.
    pub fn check_molecule(&mut self, line: usize, smiles: &str) -> bool {
        if smiles.trim().is_empty() {
            self.reject(line, "empty_field", "empty SMILES");
            return false;
        }
        match featurize_smiles(smiles) {
            Ok(_) => true,
            Err(e) => {
                let reason = match e.kind {
                    ErrorKind::Syntax => "smiles_syntax",
                    ErrorKind::Valence => "valence",
                    ErrorKind::Kekulize => "kekulize",
                    ErrorKind::Unsupported => "unsupported",
                };
                let msg = e.render().lines().next().unwrap_or_default().to_string();
                self.reject(line, reason, format!("{smiles}: {msg}"));
                false
            }
        }
    }

    /// SELFIES of `smiles`, or records why there is none. SMILES the SELFIES encoder does
    /// not take as written (e.g. a 5-valent nitro `N(=O)=O`, doubled `\\` bond marks) are
    /// encoded from their sanitized canonical form, and counted in `selfies_from_canonical`.
    pub fn selfies(&mut self, line: usize, smiles: &str) -> Option<String> {
        let first = match crate::chem::selfies::encode(smiles) {
            Ok(s) => return Some(s),
            Err(e) => e,
        };
        let canonical = crate::chem::canon::canonical_from_smiles(smiles, true);
        match canonical.map(|c| crate::chem::selfies::encode(&c)) {
            Ok(Ok(s)) => {
                self.selfies_from_canonical += 1;
                Some(s)
            }
            _ => {
                self.reject(
                    line,
                    "selfies_encode",
                    format!("{smiles}: {}", first.message),
                );
                None
            }
        }
    }

    /// Adds a usable one-question example.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        line: usize,
        task: Task,
        id: String,
        smiles: String,
        question: &str,
        answer: String,
        label: Option<f64>,
        group: String,
        split: Option<String>,
    ) {
        let record = Record {
            id,
            smiles,
            conversations: vec![
                Turn::human(format!("{IMAGE_TOKEN}\n{question}")),
                Turn::gpt(answer),
            ],
            task: Some(task.name().to_string()),
            label,
        };
        self.items.push(Example {
            line,
            record,
            group,
            split,
        });
    }
}

/// Count and first lines of one rejection reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReasonCount {
    /// Rows rejected for this reason.
    pub count: usize,
    /// The first few of them: line and message.
    pub first: Vec<(usize, String)>,
}

/// The preparation report (`prepare_report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Task name.
    pub task: String,
    /// Input path as given.
    pub input: String,
    /// `g` or `gs`.
    pub variant: String,
    /// `scaffold`, `random` or `as given`.
    pub split: String,
    /// Seed used.
    pub seed: u64,
    /// Data rows read.
    pub rows_read: usize,
    /// Examples written per output file (split name).
    pub written: BTreeMap<String, usize>,
    /// Rows that could not be used, in total.
    pub invalid_total: usize,
    /// The same, per reason.
    pub invalid: BTreeMap<String, ReasonCount>,
    /// Rows skipped as duplicates (repeated QM9 `mol_id`s).
    pub duplicates: usize,
    /// Rows kept whose molecule (non-isomeric canonical SMILES) an earlier row already showed
    /// (QM9's three questions about one molecule do not count); all rows of one molecule go to
    /// the same split.
    pub repeated_molecules: usize,
    /// Molecules that the input's own split assignment (`as given`) puts in more than one split.
    pub cross_split_molecules: usize,
    /// SELFIES made from the canonical SMILES because the written SMILES was not encodable.
    pub selfies_from_canonical: usize,
}

/// Prepared splits and their report.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// (split name, records) in output order.
    pub splits: Vec<(String, Vec<Record>)>,
    /// What happened.
    pub report: Report,
}

/// Reads the input of `opts.task` and assigns the splits.
pub fn prepare(opts: &PrepareOptions) -> Result<Prepared, DataError> {
    let path = opts.input.as_path();
    let json = path.extension().is_some_and(|e| e == "json");
    let examples = match opts.task {
        Task::PubchemPairs if json => pubchem::read_json(path)?,
        _ if json => mol_instructions::read(path, opts.task, opts.variant, opts.seed)?,
        Task::Chebi20 => chebi20::read(path, opts.variant, opts.seed)?,
        Task::PubchemPairs => pubchem::read(path, opts.variant, opts.seed)?,
        Task::Bace | Task::Bbbp | Task::Hiv => {
            moleculenet::read(path, opts.task, opts.variant, opts.seed)?
        }
        Task::Qm9 => qm9::read(path, opts.variant, opts.seed)?,
        Task::Retrosynthesis | Task::Forward => uspto::read(path, opts.task, opts.variant)?,
        Task::Reagent => {
            return Err(DataError::Usage(format!(
                "{}: reagent prediction needs reagents, which the USPTO-50k Liu files do not \
                 have; give a Mol-Instructions reagent_prediction JSON file (.json) instead",
                path.display()
            )))
        }
    };
    let method = opts.split.or_else(|| {
        if examples.items.iter().all(|e| e.split.is_some()) && !examples.items.is_empty() {
            None
        } else {
            opts.task.default_split()
        }
    });
    let fallback = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim_end_matches(".csv").to_string())
        .unwrap_or_else(|| "data".to_string());
    if examples.items.is_empty() {
        return Err(nothing_usable(path, &examples));
    }
    let molecules = MoleculeGroups::new(&examples);
    let splits = assign_splits(&examples.items, &molecules, method, opts.seed, &fallback);
    let mut report = make_report(opts, &examples, method, &splits);
    report.repeated_molecules = molecules.repeated;
    report.cross_split_molecules = cross_split_molecules(&splits, &examples.items, &molecules);
    Ok(Prepared { splits, report })
}

/// The error for an input of which no row could be used, with the reasons.
fn nothing_usable(path: &Path, ex: &Examples) -> DataError {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for inv in &ex.invalid {
        *reasons.entry(inv.reason).or_default() += 1;
    }
    let first = ex
        .invalid
        .first()
        .map(|i| format!("; line {}: {}", i.line, i.message))
        .unwrap_or_default();
    DataError::format(
        path,
        0,
        format!(
            "no usable row among {} ({}){first}: check the task and the file's columns",
            ex.rows,
            reasons
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Which examples show the same molecule: the same non-isomeric canonical SMILES (the raw
/// SMILES when it has none) or the same reader group (e.g. one QM9 `mol_id`). Examples of one
/// molecule always land in the same split.
struct MoleculeGroups {
    /// Group of each (kept) example.
    of: Vec<usize>,
    /// Number of groups.
    count: usize,
    /// Examples whose molecule an earlier example of another reader group already showed.
    repeated: usize,
}

impl MoleculeGroups {
    fn new(ex: &Examples) -> Self {
        let keys: Vec<String> = ex
            .items
            .iter()
            .map(|e| {
                crate::chem::canon::canonical_from_smiles(&e.record.smiles, false)
                    .unwrap_or_else(|_| e.record.smiles.clone())
            })
            .collect();
        // Union of "same molecule" and "same reader group".
        let n = ex.items.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_group: BTreeMap<&str, usize> = BTreeMap::new();
        let mut repeated = 0;
        for (i, e) in ex.items.iter().enumerate() {
            let group_first = *by_group.entry(e.group.as_str()).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, group_first));
            parent[a] = b;
            match by_key.get(keys[i].as_str()) {
                Some(&j) => {
                    if ex.items[j].group != e.group && group_first == i {
                        repeated += 1;
                    }
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    by_key.insert(keys[i].as_str(), i);
                }
            }
        }
        // Number the groups in order of first appearance.
        let mut number: BTreeMap<usize, usize> = BTreeMap::new();
        let mut of = Vec::with_capacity(n);
        for i in 0..n {
            let r = root(&mut parent, i);
            let next = number.len();
            of.push(*number.entry(r).or_insert(next));
        }
        Self {
            count: number.len(),
            of,
            repeated,
        }
    }
}

/// Molecules that the input's own split assignment puts in more than one split (0 for splits
/// made here, which never do).
fn cross_split_molecules(
    splits: &[(String, Vec<Record>)],
    items: &[Example],
    molecules: &MoleculeGroups,
) -> usize {
    if splits.len() < 2 {
        return 0;
    }
    let mut split_of: BTreeMap<usize, &str> = BTreeMap::new();
    let mut leaked = std::collections::BTreeSet::new();
    for (e, &g) in items.iter().zip(&molecules.of) {
        let name = e.split.as_deref().unwrap_or("");
        match split_of.get(&g) {
            Some(&other) if other != name => {
                leaked.insert(g);
            }
            Some(_) => {}
            None => {
                split_of.insert(g, name);
            }
        }
    }
    leaked.len()
}

fn assign_splits(
    items: &[Example],
    molecules: &MoleculeGroups,
    method: Option<SplitMethod>,
    seed: u64,
    fallback: &str,
) -> Vec<(String, Vec<Record>)> {
    let Some(method) = method else {
        let mut out: Vec<(String, Vec<Record>)> = Vec::new();
        for e in items {
            let name = e.split.clone().unwrap_or_else(|| fallback.to_string());
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(e.record.clone()),
                None => out.push((name, vec![e.record.clone()])),
            }
        }
        return out;
    };
    // Each molecule group is split as one item; its SMILES is its first example's.
    let group_of = &molecules.of;
    let mut group_smiles: Vec<&str> = vec![""; molecules.count];
    for (e, &g) in items.iter().zip(group_of).rev() {
        group_smiles[g] = e.record.smiles.as_str();
    }
    let fractions = Fractions::default();
    let split = match method {
        SplitMethod::Scaffold => scaffold_split(&scaffold_keys(&group_smiles), fractions),
        SplitMethod::Random => random_split(molecules.count, fractions, seed),
    };
    let mut which = vec![0usize; molecules.count];
    for (k, part) in [&split.train, &split.valid, &split.test]
        .into_iter()
        .enumerate()
    {
        for &g in part {
            which[g] = k;
        }
    }
    let mut out: Vec<(String, Vec<Record>)> = ["train", "valid", "test"]
        .iter()
        .map(|n| (n.to_string(), Vec::new()))
        .collect();
    for (e, &g) in items.iter().zip(group_of) {
        out[which[g]].1.push(e.record.clone());
    }
    out
}

fn make_report(
    opts: &PrepareOptions,
    ex: &Examples,
    method: Option<SplitMethod>,
    splits: &[(String, Vec<Record>)],
) -> Report {
    let mut invalid: BTreeMap<String, ReasonCount> = BTreeMap::new();
    for inv in &ex.invalid {
        let entry = invalid.entry(inv.reason.to_string()).or_default();
        entry.count += 1;
        if entry.first.len() < FIRST_LINES {
            entry.first.push((inv.line, inv.message.clone()));
        }
    }
    Report {
        task: opts.task.name().to_string(),
        input: opts.input.display().to_string(),
        variant: match opts.variant {
            Variant::G => "g",
            Variant::Gs => "gs",
        }
        .to_string(),
        split: match method {
            Some(SplitMethod::Scaffold) => "scaffold",
            Some(SplitMethod::Random) => "random",
            None => "as given",
        }
        .to_string(),
        seed: opts.seed,
        rows_read: ex.rows,
        written: splits.iter().map(|(n, r)| (n.clone(), r.len())).collect(),
        invalid_total: ex.invalid.len(),
        invalid,
        duplicates: ex.duplicates,
        repeated_molecules: 0,
        cross_split_molecules: 0,
        selfies_from_canonical: ex.selfies_from_canonical,
    }
}

/// Writes `DIR/{split}.jsonl` for every split and `DIR/prepare_report.json`.
pub fn write(prepared: &Prepared, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::Usage(format!(
            "--out {} is a file: give a directory for the split files",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut written = Vec::new();
    for (name, records) in &prepared.splits {
        let path = dir.join(format!("{name}.jsonl"));
        write_jsonl(&path, records)?;
        written.push(path);
    }
    let path = dir.join("prepare_report.json");
    let text = serde_json::to_string_pretty(&prepared.report)
        .map_err(|e| DataError::format(&path, 0, e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| DataError::io(&path, e))?;
    written.push(path);
    Ok(written)
}
