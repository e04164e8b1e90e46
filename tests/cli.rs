//! End-to-end tests of the line-oriented subcommands through the real binary.

mod common;

fn run(args: &[&str], stdin: &str) -> (String, String, bool) {
    let mut cmd = common::bin();
    cmd.args(args);
    let out = common::run_with_stdin(cmd, stdin.as_bytes());
    (
        String::from_utf8(out.stdout).expect("utf8 stdout"),
        String::from_utf8(out.stderr).expect("utf8 stderr"),
        out.status.success(),
    )
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

#[test]
fn featurize_keeps_order_skips_blank_lines_and_reports_bad_lines() {
    // 2000+ lines so the multi-threaded chunking path is exercised.
    let mut input = String::new();
    let mut expected = Vec::new();
    for i in 0..2100 {
        let smi = match i % 4 {
            0 => "CCO",
            1 => "C1CC",
            2 => "c1ccccc1 benzene",
            _ => "",
        };
        input.push_str(smi);
        input.push('\n');
        if let Some(first) = smi.split_whitespace().next() {
            expected.push(first);
        }
    }
    let (stdout, stderr, ok) = run(&["featurize", "--threads", "2"], &input);
    assert!(ok, "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), expected.len());
    for (line, smi) in lines.iter().zip(&expected) {
        assert_eq!(line["smiles"], *smi);
        if *smi == "C1CC" {
            let err = line["error"].as_str().expect("error line");
            assert!(
                err.contains("ring bond 1 opened at position 1 is never closed"),
                "{err}"
            );
            assert!(err.contains("\n   ^"), "caret under the ring bond: {err}");
        } else {
            let n = line["node_feat"].as_array().expect("features").len();
            assert_eq!(n, if *smi == "CCO" { 3 } else { 6 });
        }
    }
    assert!(
        stderr.contains("1050 molecules featurized, 525 invalid"),
        "{stderr}"
    );
}

#[test]
fn featurize_output_matches_reference_layout() {
    let (stdout, _, ok) = run(&["featurize"], "C[C@H](N)C(=O)O\n");
    assert!(ok);
    let v = &json_lines(&stdout)[0];
    assert_eq!(v["node_feat"][1], serde_json::json!([5, 2]));
    // Bond 0 (C0-C1) gives edges 0->1 then 1->0.
    assert_eq!(v["edge_index"][0][0], 0);
    assert_eq!(v["edge_index"][1][0], 1);
    assert_eq!(v["edge_index"][0][1], 1);
    assert_eq!(v["edge_index"][1][1], 0);
    assert_eq!(v["edge_feat"].as_array().map(Vec::len), Some(10));
}

#[test]
fn convert_round_trips_selfies_and_canonicalizes() {
    let (stdout, _, ok) = run(&["convert", "--to", "selfies"], "C1=CC=CC=C1\n");
    assert!(ok);
    let selfies = json_lines(&stdout)[0]["output"]
        .as_str()
        .expect("output")
        .to_string();
    let (stdout, _, ok) = run(
        &["convert", "--to", "canonical", "--from", "selfies"],
        &selfies,
    );
    assert!(ok);
    let from_selfies = json_lines(&stdout)[0]["output"].clone();
    let (stdout, _, ok) = run(&["convert", "--to", "canonical"], "c1ccccc1\n");
    assert!(ok);
    assert_eq!(json_lines(&stdout)[0]["output"], from_selfies);
    let (stdout, _, ok) = run(&["convert", "--to", "canonical-nonisomeric"], "xyz\n");
    assert!(ok, "a bad line never fails the run");
    assert!(json_lines(&stdout)[0]["error"].is_string());
}

#[test]
fn missing_input_file_is_a_clear_error() {
    let (_, stderr, ok) = run(&["featurize", "--input", "/nonexistent/x.smi"], "");
    assert!(!ok);
    assert!(
        stderr.contains("cannot open input file /nonexistent/x.smi"),
        "{stderr}"
    );
}
