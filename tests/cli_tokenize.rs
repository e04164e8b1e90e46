//! `instructmol tokenize` through the real binary: the Vicuna sentencepiece tokenizer of
//! `tests/data/llama_spm` (no weights there) gives the golden ids, `--decode` gives
//! sentencepiece's text, and bad lines become error lines with their line number.

mod common;

use serde_json::{json, Value};

fn tokenize(args: &[&str], stdin: &str) -> (Vec<Value>, String, bool) {
    let mut cmd = common::bin();
    cmd.arg("tokenize").args(args);
    let out = common::run_with_stdin(cmd, stdin.as_bytes());
    let lines = String::from_utf8(out.stdout)
        .expect("utf8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    (
        lines,
        String::from_utf8(out.stderr).expect("utf8 stderr"),
        out.status.success(),
    )
}

fn golden() -> Value {
    let p = common::root().join("tests/data/golden/tokenizer_llama_spm.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn encodes_and_decodes_like_sentencepiece() {
    let model = common::root().join("tests/data/llama_spm");
    let model = model.to_str().unwrap();
    let g = golden();
    let cases: Vec<&Value> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .chain(g["special"].as_array().unwrap())
        .collect();
    let input: String = cases
        .iter()
        .map(|c| json!({"text": c["text"]}).to_string() + "\n")
        .collect();
    let (out, err, ok) = tokenize(&["--model", model], &input);
    assert!(ok, "{err}");
    assert_eq!(out.len(), cases.len());
    for (line, case) in out.iter().zip(&cases) {
        assert_eq!(line["text"], case["text"]);
        assert_eq!(line["ids"], case["ids"], "{}", case["text"]);
    }

    let plain = g["cases"].as_array().unwrap();
    let input: String = plain
        .iter()
        .map(|c| json!({"ids": c["ids"]}).to_string() + "\n")
        .collect();
    let (out, err, ok) = tokenize(&["--model", model, "--decode"], &input);
    assert!(ok, "{err}");
    for (line, case) in out.iter().zip(plain) {
        let want = case.get("decoded").unwrap_or(&case["text"]);
        assert_eq!(&line["text"], want);
        assert_eq!(line["ids"], case["ids"]);
    }
}

#[test]
fn bad_lines_become_error_lines_and_the_run_goes_on() {
    let model = common::root().join("tests/data/llama_spm");
    let input = "{\"text\": \"Hello world\"}\nnot json\n\n{\"smiles\": \"CCO\"}\n{\"text\": 5}\n{\"text\": \"ok\"}\n";
    let (out, err, ok) = tokenize(&["--model", model.to_str().unwrap()], input);
    assert!(ok, "{err}");
    assert_eq!(out.len(), 5);
    assert_eq!(out[0]["ids"], json!([1, 15043, 3186]));
    assert_eq!(out[1]["line"], 2);
    assert!(out[1]["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(out[2]["line"], 4);
    assert!(out[2]["error"].as_str().unwrap().contains("text"));
    assert_eq!(out[3]["line"], 5);
    assert_eq!(out[4]["ids"], json!([1, 3431]));
    assert!(err.contains("2 lines encoded, 3 errors"), "{err}");

    let input =
        "{\"ids\": [15043, 3186]}\n{\"ids\": [1, 99999]}\n{\"ids\": [-1]}\n{\"ids\": \"x\"}\n";
    let (out, err, ok) = tokenize(&["--model", model.to_str().unwrap(), "--decode"], input);
    assert!(ok, "{err}");
    assert_eq!(out[0]["text"], "Hello world");
    assert_eq!(out[1]["line"], 2);
    assert!(out[1]["error"].as_str().unwrap().contains("99999"));
    assert_eq!(out[2]["line"], 3);
    assert_eq!(out[3]["line"], 4);

    // Without special tokens: no BOS.
    let (out, _, _) = tokenize(
        &["--model", model.to_str().unwrap(), "--no-special"],
        "{\"text\": \"Hello world\"}\n",
    );
    assert_eq!(out[0]["ids"], json!([15043, 3186]));

    // A model that does not exist: a clear error, non-zero exit.
    let (_, err, ok) = tokenize(&["--model", "/nonexistent/dir"], "");
    assert!(!ok && err.contains("/nonexistent/dir"), "{err}");
}

#[test]
fn byte_level_tokenizer_json_works_too() {
    let model = common::root().join("tests/data/tiny_model");
    let (out, err, ok) = tokenize(
        &["--model", model.to_str().unwrap()],
        "{\"text\": \"The molecule is an acid.\"}\n",
    );
    assert!(ok, "{err}");
    let ids = out[0]["ids"].as_array().unwrap();
    assert!(!ids.is_empty());
    let (back, err, ok) = tokenize(
        &["--model", model.to_str().unwrap(), "--decode"],
        &(json!({"ids": ids}).to_string() + "\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(back[0]["text"], "The molecule is an acid.");
}
