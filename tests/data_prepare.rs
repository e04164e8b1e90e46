//! `data prepare` readers on small cuts of the shared data (tests/data/datasets), splits,
//! invalid-row reports, determinism and the CLI end to end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use instructmol::chem::canon::canonical_from_smiles;
use instructmol::chem::scaffold::scaffold_smiles;
use instructmol::chem::selfies;
use instructmol::data::prepare::{prepare, PrepareOptions, Prepared, SplitMethod, Task};
use instructmol::data::prompts::{Variant, DESCRIPTION_QUESTIONS};
use instructmol::data::record::{read_jsonl, Record, Role};

const DATA: &str = "tests/data/datasets";

fn run(
    task: Task,
    input: &str,
    variant: Variant,
    split: Option<SplitMethod>,
    seed: u64,
) -> Prepared {
    prepare(&PrepareOptions {
        task,
        input: Path::new(DATA).join(input),
        variant,
        split,
        seed,
    })
    .unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn split<'a>(p: &'a Prepared, name: &str) -> &'a [Record] {
    p.splits
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_slice())
        .unwrap_or_else(|| panic!("no split {name}: {:?}", p.report.written))
}

fn question(r: &Record) -> &str {
    assert_eq!(r.conversations[0].from, Role::Human);
    r.conversations[0]
        .value
        .strip_prefix("<image>\n")
        .expect("question starts with <image>\\n")
}

fn answer(r: &Record) -> &str {
    assert_eq!(r.conversations[1].from, Role::Gpt);
    &r.conversations[1].value
}

fn data_lines(file: &str) -> Vec<String> {
    std::fs::read_to_string(Path::new(DATA).join(file))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn chebi20_file_is_prepared_as_given() {
    let p = run(Task::Chebi20, "chebi20_test.txt", Variant::G, None, 0);
    let rows: Vec<Vec<String>> = data_lines("chebi20_test.txt")[1..]
        .iter()
        .map(|l| l.splitn(3, '\t').map(str::to_string).collect())
        .collect();
    let recs = split(&p, "chebi20_test");
    assert_eq!(recs.len(), rows.len());
    for (r, row) in recs.iter().zip(&rows) {
        assert_eq!(r.id, row[0]);
        assert_eq!(r.smiles, row[1]);
        assert_eq!(answer(r), row[2]);
        assert!(
            DESCRIPTION_QUESTIONS.contains(&question(r)),
            "{}",
            question(r)
        );
        assert_eq!(r.task.as_deref(), Some("chebi20"));
    }
    // GS: the question names the molecule's SELFIES, which decodes back to the molecule.
    let gs = run(Task::Chebi20, "chebi20_test.txt", Variant::Gs, None, 0);
    for r in split(&gs, "chebi20_test") {
        let q = question(r);
        let (_, sf) = q
            .split_once(" The compound SELFIES sequence is: ")
            .expect(q);
        let sf = sf
            .strip_suffix('.')
            .expect("GS sentence ends with a period");
        let back = canonical_from_smiles(&selfies::decode(sf).unwrap(), false).unwrap();
        assert_eq!(
            back,
            canonical_from_smiles(&r.smiles, false).unwrap(),
            "{}",
            r.id
        );
    }
    assert!(
        gs.report.selfies_from_canonical >= 1,
        "the cut holds a `\\\\` SMILES"
    );
}

#[test]
fn moleculenet_scaffold_split_keeps_scaffolds_apart() {
    for (task, file) in [(Task::Bbbp, "bbbp.csv"), (Task::Bace, "bace.csv")] {
        let p = run(task, file, Variant::G, None, 0);
        assert_eq!(p.report.split, "scaffold");
        let labels: Vec<String> = data_lines(file)[1..]
            .iter()
            .map(|l| l.rsplit(',').next().unwrap().to_string())
            .collect();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut total = 0;
        for name in ["train", "valid", "test"] {
            for r in split(&p, name) {
                total += 1;
                let line: usize = r.id.rsplit('-').next().unwrap().parse().unwrap();
                let label = &labels[line - 2];
                assert_eq!(
                    answer(r),
                    if label == "1" { "Yes" } else { "No" },
                    "{}",
                    r.id
                );
                assert_eq!(r.label, Some(label.parse().unwrap()));
                let sc = scaffold_smiles(&r.smiles).unwrap();
                if let Some(prev) = seen.insert(sc.clone(), name.to_string()) {
                    assert_eq!(prev, name, "scaffold {sc} in two splits");
                }
            }
        }
        assert_eq!(total, labels.len());
        let train = split(&p, "train").len();
        assert!(train <= total * 8 / 10 && train + split(&p, "valid").len() <= total * 9 / 10);
    }
}

#[test]
fn hiv_reads_gzip_and_random_split_follows_the_seed() {
    let a = run(
        Task::Hiv,
        "hiv.csv.gz",
        Variant::G,
        Some(SplitMethod::Random),
        1,
    );
    let b = run(
        Task::Hiv,
        "hiv.csv.gz",
        Variant::G,
        Some(SplitMethod::Random),
        2,
    );
    assert_eq!(a.report.rows_read, 30);
    let n: usize = a.report.written.values().sum();
    assert_eq!(n, 30);
    assert_eq!(a.report.written["train"], 24);
    let ids = |p: &Prepared| {
        split(p, "train")
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(ids(&a), ids(&b));
    assert_eq!(
        ids(&a),
        ids(&run(
            Task::Hiv,
            "hiv.csv.gz",
            Variant::G,
            Some(SplitMethod::Random),
            1
        ))
    );
}

#[test]
fn invalid_rows_are_counted_by_reason_with_lines() {
    let p = run(Task::Bbbp, "bbbp_bad.csv", Variant::G, None, 0);
    let r = &p.report;
    assert_eq!(r.rows_read, 5);
    assert_eq!(r.invalid_total, 4);
    let lines =
        |reason: &str| -> Vec<usize> { r.invalid[reason].first.iter().map(|(l, _)| *l).collect() };
    assert_eq!(lines("smiles_syntax"), [2]);
    assert_eq!(lines("kekulize"), [3]);
    assert_eq!(lines("bad_label"), [4]);
    assert_eq!(lines("valence"), [5]);
    assert_eq!(r.written.values().sum::<usize>(), 1);
}

#[test]
fn qm9_asks_three_questions_per_molecule_and_skips_repeats() {
    let p = run(Task::Qm9, "qm9.csv", Variant::Gs, None, 0);
    assert_eq!(p.report.rows_read, 21);
    assert_eq!(p.report.duplicates, 1);
    let lines = data_lines("qm9.csv");
    let header: Vec<&str> = lines[0].split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let mut where_: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (name, recs) in &p.splits {
        for r in recs {
            let (mol_id, prop) = r.id.strip_prefix("qm9-").unwrap().rsplit_once('-').unwrap();
            let row: Vec<&str> = lines[1..]
                .iter()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f[col("mol_id")] == mol_id)
                .unwrap();
            assert_eq!(answer(r), row[col(prop)]);
            assert_eq!(r.smiles, row[col("smiles")]);
            assert!(question(r).contains(" The compound SELFIES sequence is: ["));
            let e = where_
                .entry(mol_id.to_string())
                .or_insert((name.clone(), 0));
            assert_eq!(&e.0, name, "{mol_id} split across files");
            e.1 += 1;
        }
    }
    assert_eq!(where_.len(), 20);
    assert!(where_.values().all(|(_, n)| *n == 3));
}

fn liu(file: &str) -> Vec<String> {
    data_lines(file)
        .iter()
        .map(|l| {
            let l = l
                .strip_prefix('<')
                .map_or(l.as_str(), |r| r.split_once("> ").unwrap().1);
            l.replace(' ', "")
        })
        .collect()
}

fn same_molecules(a: &str, b: &str) -> bool {
    canonical_from_smiles(a, false).unwrap() == canonical_from_smiles(b, false).unwrap()
}

#[test]
fn uspto_retrosynthesis_and_forward_from_liu_files() {
    let p = run(Task::Retrosynthesis, "uspto", Variant::G, None, 0);
    assert_eq!(p.report.written["test"], 8);
    assert_eq!(p.report.written["valid"], 5);
    let products = liu("uspto/liu2017_test_sources.txt");
    let reactants = liu("uspto/liu2017_test_targets.txt");
    for (i, r) in split(&p, "test").iter().enumerate() {
        assert_eq!(r.smiles, products[i]);
        assert!(same_molecules(
            &selfies::decode(answer(r)).unwrap(),
            &reactants[i]
        ));
    }
    let f = run(
        Task::Forward,
        "uspto/liu2017_test_sources.txt",
        Variant::G,
        None,
        0,
    );
    for (i, r) in split(&f, "test").iter().enumerate() {
        let parts: Vec<&str> = reactants[i].split('.').collect();
        assert_eq!(r.smiles, parts[0]);
        assert!(same_molecules(
            &selfies::decode(answer(r)).unwrap(),
            &products[i]
        ));
        assert_eq!(
            question(r).contains("The other joint reactants are: "),
            parts.len() > 1
        );
    }
}

#[test]
fn reagent_needs_mol_instructions() {
    let err = prepare(&PrepareOptions {
        task: Task::Reagent,
        input: PathBuf::from(DATA).join("uspto"),
        variant: Variant::G,
        split: None,
        seed: 0,
    })
    .unwrap_err();
    assert!(err.to_string().contains("Mol-Instructions"), "{err}");
    let p = run(
        Task::Reagent,
        "mol_instructions_reagent.json",
        Variant::G,
        None,
        0,
    );
    assert_eq!(p.report.invalid["bad_value"].count, 1);
    let recs = split(&p, "train");
    assert_eq!(recs.len(), 2);
    for r in recs {
        assert!(
            question(r).contains("\nThe product is ["),
            "{}",
            question(r)
        );
    }
}

#[test]
fn mol_instructions_retrosynthesis_uses_metadata_splits() {
    let p = run(
        Task::Retrosynthesis,
        "mol_instructions_retrosynthesis.json",
        Variant::Gs,
        None,
        0,
    );
    assert_eq!(p.report.written["train"], 2);
    assert_eq!(p.report.written["test"], 1);
    assert_eq!(p.report.invalid["empty_field"].count, 1);
    let products = liu("uspto/liu2017_test_sources.txt");
    for (i, r) in split(&p, "train").iter().enumerate() {
        assert!(same_molecules(&r.smiles, &products[i]));
        assert!(question(r).contains(" The product is: ["));
    }
}

#[test]
fn cli_writes_deterministic_files_and_a_report() {
    let exe = env!("CARGO_BIN_EXE_instructmol");
    let tmp = std::env::temp_dir().join(format!("instructmol-data-test-{}", std::process::id()));
    let prep = |out: &str, seed: &str| {
        let o = Command::new(exe)
            .args(["data", "prepare", "--task", "bbbp", "--input"])
            .arg(Path::new(DATA).join("bbbp.csv"))
            .arg("--out")
            .arg(tmp.join(out))
            .args(["--variant", "gs", "--split", "random", "--seed", seed])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let log = prep("a", "5");
    assert!(log.contains("40 rows read"), "{log}");
    prep("b", "5");
    prep("c", "6");
    let read = |d: &str, f: &str| std::fs::read(tmp.join(d).join(f)).unwrap();
    for f in [
        "train.jsonl",
        "valid.jsonl",
        "test.jsonl",
        "prepare_report.json",
    ] {
        assert_eq!(
            read("a", f),
            read("b", f),
            "{f} differs between identical runs"
        );
    }
    assert_ne!(read("a", "train.jsonl"), read("c", "train.jsonl"));
    let back = read_jsonl(&tmp.join("a").join("train.jsonl")).unwrap();
    assert!(back.bad.is_empty());
    assert_eq!(back.records.len(), 32);
    // A bad task name and a missing file give clear errors, not panics.
    let o = Command::new(exe)
        .args([
            "data", "prepare", "--task", "tox21", "--input", "x", "--out", "y",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown task"));
    let o = Command::new(exe)
        .args([
            "data",
            "prepare",
            "--task",
            "bbbp",
            "--input",
            "no/such.csv",
            "--out",
        ])
        .arg(tmp.join("d"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no/such.csv"), "{err}");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn jsonl_reader_reports_bad_lines() {
    let tmp = std::env::temp_dir().join(format!("instructmol-jsonl-{}.jsonl", std::process::id()));
    let good = r#"{"id":"1","smiles":"CCO","conversations":[{"from":"human","value":"<image>\nq"},{"from":"gpt","value":"a"}]}"#;
    let wrong_order = r#"{"id":"2","smiles":"CCO","conversations":[{"from":"gpt","value":"a"},{"from":"human","value":"q"}]}"#;
    std::fs::write(&tmp, format!("{good}\nnot json\n\n{wrong_order}\n{good}\n")).unwrap();
    let c = read_jsonl(&tmp).unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert_eq!(c.records.len(), 2);
    let lines: Vec<usize> = c.bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [2, 4]);
    assert!(
        c.bad[1].message.contains("expected Human"),
        "{}",
        c.bad[1].message
    );
}

#[test]
fn pubchem_pairs_read_headerless_caption_tsv() {
    let p = run(Task::PubchemPairs, "pubchem_pairs.tsv", Variant::G, None, 0);
    let rows: Vec<Vec<String>> = data_lines("pubchem_pairs.tsv")
        .iter()
        .map(|l| l.splitn(3, '\t').map(str::to_string).collect())
        .collect();
    assert_eq!(p.report.rows_read, rows.len());
    let recs = split(&p, "pubchem_pairs");
    assert_eq!(recs.len(), rows.len());
    for (r, row) in recs.iter().zip(&rows) {
        assert_eq!(
            (r.id.as_str(), r.smiles.as_str(), answer(r)),
            (row[0].as_str(), row[1].as_str(), row[2].as_str())
        );
        assert_eq!(r.task.as_deref(), Some("pubchem-pairs"));
    }
}

/// Prepares `json` (written to a temporary `all_clean.json`) as stage-1 pairs.
fn prepare_pubchemsft(name: &str, json: &serde_json::Value) -> Prepared {
    let dir = std::env::temp_dir().join(format!("im-sft-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("all_clean.json");
    std::fs::write(&path, serde_json::to_string_pretty(json).unwrap()).unwrap();
    let p = prepare(&PrepareOptions {
        task: Task::PubchemPairs,
        input: path,
        variant: Variant::G,
        split: None,
        seed: 0,
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    p
}

#[test]
fn pubchemsft_all_clean_json_is_read_unchanged_with_bad_records_counted() {
    // Real molecules and descriptions (ChEBI-20 rows) in the official stage-1 layout.
    let rows: Vec<Vec<String>> = data_lines("chebi20_test.txt")
        .iter()
        .skip(1)
        .take(6)
        .map(|l| l.splitn(3, '\t').map(str::to_string).collect())
        .collect();
    let conv = |q: &str, a: &str| serde_json::json!([{"from": "human", "value": q}, {"from": "gpt", "value": a}]);
    let mut records = vec![
        // <image> after the question: moved to the front, as the official training does.
        serde_json::json!({"id": rows[0][0], "smiles": rows[0][1],
            "conversations": conv("Describe this molecule.\n<image>", &rows[0][2])}),
        // A numeric id and a multi-turn conversation.
        serde_json::json!({"cid": 42, "smiles": rows[1][1], "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"},
            {"from": "gpt", "value": rows[1][2]},
            {"from": "human", "value": "Anything else?"},
            {"from": "gpt", "value": "No."}]}),
        serde_json::json!({"id": "x1", "smiles": rows[2][1],
            "conversations": conv("Provide a description of this molecule.", &rows[2][2])}),
    ];
    // Bad records: each is counted under its reason, the rest is kept.
    records.push(serde_json::json!({"id": "bad-smiles", "smiles": "C1CC(",
        "conversations": conv("<image>\nq", "a")}));
    records.push(serde_json::json!({"id": "no-conv", "smiles": rows[3][1]}));
    records.push(
        serde_json::json!({"id": "order", "smiles": rows[3][1], "conversations": [
        {"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]}),
    );
    records.push(
        serde_json::json!({"id": "late-image", "smiles": rows[4][1], "conversations": [
        {"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"},
        {"from": "human", "value": "<image>\nagain"}, {"from": "gpt", "value": "b"}]}),
    );
    records.push(serde_json::json!("not an object"));
    let p = prepare_pubchemsft("list", &serde_json::Value::Array(records));
    assert_eq!(p.report.rows_read, 8);
    let recs = split(&p, "all_clean");
    assert_eq!(recs.len(), 3, "{:?}", p.report.invalid);
    assert_eq!(p.report.invalid_total, 5);
    assert_eq!(p.report.invalid["smiles_syntax"].first[0].0, 4);
    assert_eq!(p.report.invalid["empty_field"].first[0].0, 5);
    assert_eq!(p.report.invalid["bad_value"].count, 3);
    assert_eq!(
        (recs[0].id.as_str(), recs[0].smiles.as_str()),
        (rows[0][0].as_str(), rows[0][1].as_str())
    );
    assert_eq!(question(&recs[0]), "Describe this molecule.");
    assert_eq!(answer(&recs[0]), rows[0][2]);
    assert_eq!(recs[1].id, "42");
    assert_eq!(recs[1].conversations.len(), 4);
    assert_eq!(recs[1].conversations[3].value, "No.");
    assert_eq!(
        question(&recs[2]),
        "Provide a description of this molecule."
    );

    // The `{SMILES: [[question, answer], ...]}` form the official converter reads.
    let by_smiles = serde_json::json!({
        rows[0][1].clone(): [["Describe this molecule.", rows[0][2]], ["What is it?", "A molecule."]],
        rows[1][1].clone(): [["Only a question"]],
    });
    let p = prepare_pubchemsft("object", &by_smiles);
    let recs = split(&p, "all_clean");
    assert_eq!(
        (p.report.rows_read, recs.len(), p.report.invalid_total),
        (3, 2, 1)
    );
    assert!(recs.iter().all(|r| r.smiles == rows[0][1]));
    assert_eq!(answer(&recs[1]), "A molecule.");
}

/// Writes `text` as a CSV file in a fresh temporary directory and prepares it as BBBP.
fn prepare_csv(name: &str, text: &str, split: Option<SplitMethod>) -> Result<Prepared, String> {
    let dir = std::env::temp_dir().join(format!("im-prep-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join(format!("{name}.csv"));
    std::fs::write(&input, text).unwrap();
    let out = prepare(&PrepareOptions {
        task: Task::Bbbp,
        input,
        variant: Variant::G,
        split,
        seed: 3,
    })
    .map_err(|e| e.to_string());
    std::fs::remove_dir_all(&dir).ok();
    out
}

#[test]
fn one_molecule_never_sits_in_two_splits_and_repeats_are_counted() {
    // 40 molecules, each written again with the other label, and 3 rows copied verbatim.
    let lines = data_lines("bbbp.csv");
    let header = &lines[0];
    let rows: Vec<&String> = lines[1..].iter().take(40).collect();
    let mut text = format!("{header}\n");
    for r in &rows {
        text.push_str(&format!("{r}\n"));
    }
    for r in &rows {
        // Same molecule again, label flipped.
        let (smiles, label) = r.rsplit_once(',').unwrap();
        let flipped = if label == "1" { "0" } else { "1" };
        text.push_str(&format!("{smiles},{flipped}\n"));
    }
    for r in rows.iter().take(3) {
        text.push_str(&format!("{r}\n"));
    }
    for method in [SplitMethod::Random, SplitMethod::Scaffold] {
        let p = prepare_csv("dups", &text, Some(method)).unwrap();
        assert!(p.report.repeated_molecules >= 43, "{:?}", p.report);
        let mut home: BTreeMap<String, String> = BTreeMap::new();
        for (name, records) in &p.splits {
            for r in records {
                let key = canonical_from_smiles(&r.smiles, false).unwrap();
                if let Some(other) = home.insert(key.clone(), name.clone()) {
                    assert_eq!(&other, name, "{method:?}: {key} is in {other} and {name}");
                }
            }
        }
        assert_eq!(p.report.written.values().sum::<usize>(), 83);
    }
}

#[test]
fn a_file_with_no_usable_row_is_an_error() {
    let lines = data_lines("bbbp.csv");
    let header = &lines[0];
    let cols: Vec<&str> = header.split(',').collect();
    let label = cols.iter().position(|c| *c == "p_np").unwrap();
    let mut text = format!("{header}\n");
    for r in lines[1..].iter().take(10) {
        let mut f: Vec<&str> = r.split(',').collect();
        f[label] = "";
        text.push_str(&(f.join(",") + "\n"));
    }
    let err = prepare_csv("nolabels", &text, Some(SplitMethod::Random)).unwrap_err();
    assert!(
        err.contains("no usable row") && err.contains("bad_label"),
        "{err}"
    );
}

#[test]
fn truncated_gzip_non_utf8_bytes_and_a_file_as_out_get_clear_errors() {
    let dir = std::env::temp_dir().join(format!("im-prep-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = |input: PathBuf| PrepareOptions {
        task: Task::Hiv,
        input,
        variant: Variant::G,
        split: Some(SplitMethod::Random),
        seed: 0,
    };
    // A gzip file cut in half.
    let gz = std::fs::read(Path::new(DATA).join("hiv.csv.gz")).unwrap();
    let cut = dir.join("hiv.csv.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let err = prepare(&opts(cut.clone())).unwrap_err().to_string();
    assert!(
        err.contains("hiv.csv.gz") && err.contains("truncated or corrupt"),
        "{err}"
    );
    // A Latin-1 byte on line 3.
    let lines = data_lines("bbbp.csv");
    let mut bytes = format!("{}\n{}\n", lines[0], lines[1]).into_bytes();
    bytes.extend_from_slice(b"CC\xe9O,1\n");
    let latin = dir.join("latin.csv");
    std::fs::write(&latin, bytes).unwrap();
    let err = prepare(&PrepareOptions {
        task: Task::Bbbp,
        ..opts(latin)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("latin.csv:3") && err.contains("byte 3"),
        "{err}"
    );
    // --out naming a file.
    let p = run(Task::Bbbp, "bbbp.csv", Variant::G, None, 0);
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = instructmol::data::prepare::write(&p, &file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is a file"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_non_utf8_line_in_prepared_data_is_reported_and_the_rest_is_read() {
    let dir = std::env::temp_dir().join(format!("im-jsonl-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = run(Task::Bbbp, "bbbp.csv", Variant::G, None, 0);
    let path = dir.join("train.jsonl");
    instructmol::data::record::write_jsonl(&path, &p.splits[0].1).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[second_line + 10] = 0xff;
    std::fs::write(&path, bytes).unwrap();
    let contents = read_jsonl(&path).unwrap();
    assert_eq!(contents.records.len(), p.splits[0].1.len() - 1);
    assert_eq!(contents.bad.len(), 1);
    assert_eq!(contents.bad[0].line, 2);
    assert!(
        contents.bad[0]
            .message
            .contains(&format!("offset {}", second_line + 10)),
        "{}",
        contents.bad[0].message
    );
    std::fs::remove_dir_all(&dir).ok();
}
