//! `instructmol eval` through the real binary: outputs and error messages.

mod common;

use common::temp_dir;
use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_instructmol"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        String::from_utf8(out.stdout).expect("utf8 stdout"),
        String::from_utf8(out.stderr).expect("utf8 stderr"),
        out.status.success(),
    )
}

fn golden(task: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/golden/metrics_{task}.jsonl"))
        .display()
        .to_string()
}

#[test]
fn writes_metrics_json_and_markdown() {
    let out = temp_dir("out");
    let (stdout, stderr, ok) = run(&[
        "eval",
        "--task",
        "bbbp",
        "--predictions",
        &golden("bbbp"),
        "--out",
        out.to_str().expect("path"),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("| InstructMol-G (paper) | – | 68.6 |"),
        "{stdout}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("metrics.json")).expect("metrics.json"),
    )
    .expect("json");
    assert_eq!(json["task"], "bbbp");
    assert_eq!(json["rows"], 300);
    assert!(json["metrics"]["roc_auc_prob"].as_f64().is_some());
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert_eq!(md, stdout);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn reaction_fingerprint_columns_average_the_pairs() {
    let (stdout, stderr, ok) = run(&[
        "eval",
        "--task",
        "reagent",
        "--predictions",
        &golden("reagent"),
    ]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json on stdout");
    // Recompute the means from the predictions file with the chem layer directly.
    let text = std::fs::read_to_string(golden("reagent")).unwrap();
    let (mut sums, mut n) = ([0f64; 3], 0usize);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let canon = |s: &str| instructmol::eval::reactions::canonical_of_selfies(s);
        let (Some(p), Some(t)) = (
            canon(row["prediction"].as_str().unwrap()),
            canon(row["reference"].as_str().unwrap()),
        ) else {
            continue;
        };
        let a = instructmol::chem::mol_from_smiles(&p).unwrap();
        let b = instructmol::chem::mol_from_smiles(&t).unwrap();
        let s = instructmol::chem::fingerprints::similarities(&a, &b);
        sums[0] += s.maccs;
        sums[1] += s.rdk;
        sums[2] += s.morgan;
        n += 1;
    }
    assert!(n > 100, "{n} valid pairs");
    for (col, sum) in ["maccs_fts", "rdk_fts", "morgan_fts"].iter().zip(sums) {
        let got = json["metrics"][col]
            .as_f64()
            .unwrap_or_else(|| panic!("{col}: {}", json["metrics"][col]));
        assert!((got - sum / n as f64).abs() < 1e-12, "{col}: {got}");
        assert!(got > 0.0 && got <= 1.0, "{col}: {got}");
    }
}

#[test]
fn unknown_task_is_refused() {
    let (_, stderr, ok) = run(&["eval", "--task", "tox21", "--predictions", &golden("bace")]);
    assert!(!ok);
    assert!(stderr.contains("unknown task 'tox21'"), "{stderr}");
}

#[test]
fn bad_lines_are_named() {
    let dir = temp_dir("bad");
    let file = dir.join("p.jsonl");
    let cases = [
        ("{\"id\":1,\"prediction\":\"Yes\",\"reference\":\"No\"}\n{\"id\":2,\"prediction\":\"Yes\"\n", "line 2: bad JSON"),
        ("{\"id\":1,\"prediction\":\"Yes\"}\n", "line 1: missing field \"reference\""),
        ("{\"id\":1,\"prediction\":\"Yes\",\"reference\":\"maybe\"}\n", "is not a yes/no label"),
        ("", "no predictions"),
    ];
    for (text, want) in cases {
        std::fs::write(&file, text).expect("write");
        let (_, stderr, ok) = run(&[
            "eval",
            "--task",
            "bace",
            "--predictions",
            file.to_str().expect("path"),
        ]);
        assert!(!ok, "{text}");
        assert!(stderr.contains(want), "{text}: {stderr}");
    }
    let (_, stderr, ok) = run(&[
        "eval",
        "--task",
        "qm9",
        "--predictions",
        "/nonexistent/p.jsonl",
    ]);
    assert!(!ok && stderr.contains("/nonexistent/p.jsonl"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_answers_are_counted_not_fatal() {
    let dir = temp_dir("invalid");
    let file = dir.join("p.jsonl");
    std::fs::write(
        &file,
        "{\"id\":1,\"prediction\":\"[C][Xx]\",\"reference\":\"[C][C][O]\"}\n{\"id\":2,\"prediction\":\"not a molecule\",\"reference\":\"[C][C][O]\"}\n",
    )
    .expect("write");
    let (stdout, stderr, ok) = run(&[
        "eval",
        "--task",
        "forward",
        "--predictions",
        file.to_str().expect("path"),
    ]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["metrics"]["valid"], 0);
    assert_eq!(json["metrics"]["validity"], 0.0);
    assert!(json["metrics"]["exact"].is_null());
    std::fs::remove_dir_all(&dir).ok();
}
