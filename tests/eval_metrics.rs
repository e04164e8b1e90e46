//! Golden test: every metric of `instructmol eval` against the reference implementations
//! (nltk 3.10 BLEU/METEOR/Porter, rouge-score 0.1.2, scikit-learn, python-Levenshtein,
//! RDKit + selfies), on the fixed prediction files made by scripts/golden/metrics_golden.py.
//! Tolerance 1e-6 (METEOR 1e-4, as the issue allows).

use std::path::{Path, PathBuf};

use instructmol::eval::reactions::levenshtein;
use instructmol::eval::{self, porter, Task, TaskMetrics, TextResources, TextTokenizer, WordNet};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn expected() -> Value {
    let path = golden_dir().join("metrics_expected.json");
    let text = std::fs::read_to_string(&path).expect("metrics_expected.json");
    serde_json::from_str(&text).expect("expected JSON")
}

fn rows(task: &str) -> Vec<eval::Prediction> {
    eval::read_predictions(&golden_dir().join(format!("metrics_{task}.jsonl")))
        .expect("predictions")
}

/// Compares `names` of our metrics with the golden values; returns the failures.
fn compare(ours: &TaskMetrics, want: &Value, names: &[&str], failures: &mut Vec<String>) {
    for name in names {
        let tol = if *name == "meteor" { 1e-4 } else { 1e-6 };
        let Some(w) = want["metrics"][name].as_f64() else {
            failures.push(format!("{}: golden has no {name}", ours.task));
            continue;
        };
        match ours.number(name) {
            Some(v) if (v - w).abs() <= tol => {}
            other => failures.push(format!(
                "{} {name}: ours {other:?}, reference {w}",
                ours.task
            )),
        }
    }
}

#[test]
fn classification_regression_and_reactions_match_reference() {
    let exp = expected();
    let mut failures = Vec::new();
    for (task, names) in [
        (
            "bace",
            &[
                "roc_auc_prob",
                "roc_auc_hard",
                "accuracy",
                "invalid",
                "total",
            ][..],
        ),
        (
            "bbbp",
            &[
                "roc_auc_prob",
                "roc_auc_hard",
                "accuracy",
                "invalid",
                "total",
            ][..],
        ),
        (
            "hiv",
            &[
                "roc_auc_prob",
                "roc_auc_hard",
                "accuracy",
                "invalid",
                "total",
            ][..],
        ),
        (
            "qm9",
            &[
                "mae_homo",
                "mae_lumo",
                "mae_gap",
                "mae_average",
                "mae_all",
                "invalid",
                "total",
            ][..],
        ),
        (
            "retrosynthesis",
            &["exact", "bleu", "validity", "valid", "total"][..],
        ),
        (
            "forward",
            &["exact", "bleu", "validity", "valid", "total"][..],
        ),
        (
            "reagent",
            &["exact", "bleu", "validity", "valid", "total"][..],
        ),
    ] {
        let t = eval::parse_task(task).expect("task");
        let ours = eval::score(t, &rows(task), None).expect("scores");
        compare(&ours, &exp[task], names, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The reaction Levenshtein arithmetic on RDKit's canonical strings (stored in the golden):
/// our own canonical SMILES are other strings, so the end-to-end value differs by design.
#[test]
fn levenshtein_matches_python_levenshtein() {
    let exp = expected();
    for task in ["retrosynthesis", "forward", "reagent"] {
        let rows = exp[task]["info"]["canonical"]
            .as_array()
            .expect("canonical rows");
        let dists: Vec<usize> = rows
            .iter()
            .filter_map(|r| {
                let p = r["pred"].as_str().filter(|p| !p.is_empty())?;
                Some(levenshtein(p, r["gt"].as_str().expect("gt")))
            })
            .collect();
        let mean = dists.iter().sum::<usize>() as f64 / dists.len() as f64;
        let want = exp[task]["metrics"]["levenshtein"]
            .as_f64()
            .expect("levenshtein");
        assert!((mean - want).abs() < 1e-9, "{task}: {mean} vs {want}");
    }
}

/// Valid/invalid verdicts of our SELFIES -> molecule pipeline equal RDKit's on every row.
#[test]
fn reaction_validity_per_row_matches_rdkit() {
    let exp = expected();
    for task in ["retrosynthesis", "forward", "reagent"] {
        let canon = exp[task]["info"]["canonical"]
            .as_array()
            .expect("canonical rows");
        for (row, c) in rows(task).iter().zip(canon) {
            let rdkit_valid = c["pred"].as_str().is_some_and(|s| !s.is_empty());
            let ours = eval::reactions::canonical_of_selfies(&row.prediction);
            assert_eq!(
                ours.is_some(),
                rdkit_valid,
                "{}: {}",
                row.id,
                row.prediction
            );
        }
    }
}

fn chebi(wordnet: Option<WordNet>) -> TaskMetrics {
    let res = TextResources::new(TextTokenizer::scibert().expect("tokenizer"), wordnet);
    eval::score(Task::Chebi20, &rows("chebi20"), Some(&res)).expect("scores")
}

const TEXT_METRICS: [&str; 6] = ["bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor"];

/// ChEBI-20 with the committed WordNet excerpt (every entry the golden's words reach).
#[test]
fn chebi20_matches_nltk_and_rouge_score() {
    let wn = WordNet::load(&golden_dir().join("metrics_wordnet")).expect("wordnet excerpt");
    let ours = chebi(Some(wn));
    let mut failures = Vec::new();
    compare(&ours, &expected()["chebi20"], &TEXT_METRICS, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// METEOR without the synonym stage equals nltk's with an empty WordNet.
#[test]
fn chebi20_meteor_without_wordnet() {
    let ours = chebi(None).number("meteor").expect("meteor");
    let want = expected()["chebi20"]["info"]["meteor_without_synonyms"]
        .as_f64()
        .expect("meteor_without_synonyms");
    assert!((ours - want).abs() < 1e-4, "{ours} vs {want}");
}

/// The same with the full WordNet 3.0 when it is installed (scripts/setup_wordnet.sh).
#[test]
fn chebi20_with_full_wordnet() {
    let dir = std::env::var_os("INSTRUCTMOL_WORDNET")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wordnet"));
    if !dir.join("index.noun").is_file() {
        println!(
            "skipped: no WordNet at {} (bash scripts/setup_wordnet.sh)",
            dir.display()
        );
        return;
    }
    let ours = chebi(Some(WordNet::load(&dir).expect("wordnet")));
    let mut failures = Vec::new();
    compare(&ours, &expected()["chebi20"], &TEXT_METRICS, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Per-sample METEOR and ROUGE agree too (the means could hide compensating errors).
#[test]
fn chebi20_per_sample_scores() {
    let wn = WordNet::load(&golden_dir().join("metrics_wordnet")).expect("wordnet excerpt");
    let tok = TextTokenizer::scibert().expect("tokenizer");
    let exp = expected();
    let samples = exp["chebi20"]["info"]["samples"]
        .as_array()
        .expect("samples");
    let mut failures = Vec::new();
    for (row, want) in rows("chebi20").iter().zip(samples) {
        let h = tok.tokenize(&row.prediction).expect("tokens");
        let g = tok.tokenize(&row.reference).expect("tokens");
        if h.len() as u64 != want["hyp_tokens"].as_u64().unwrap_or(u64::MAX)
            || g.len() as u64 != want["ref_tokens"].as_u64().unwrap_or(u64::MAX)
        {
            failures.push(format!(
                "{}: token counts {} / {}",
                row.id,
                h.len(),
                g.len()
            ));
        }
        let m = eval::meteor::meteor(&g, &h, Some(&wn));
        let r = eval::rouge::score(&row.reference, &row.prediction);
        for (name, v) in [
            ("meteor", m),
            ("rouge1", r.rouge1),
            ("rouge2", r.rouge2),
            ("rougeL", r.rouge_l),
        ] {
            let w = want[name].as_f64().expect("number");
            if (v - w).abs() > 1e-9 {
                failures.push(format!("{} {name}: {v} vs {w}", row.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// nltk's PorterStemmer on every token of the ChEBI-20 golden.
#[test]
fn porter_matches_nltk() {
    let exp = expected();
    let stems = exp["chebi20"]["info"]["porter"]
        .as_object()
        .expect("porter table");
    let bad: Vec<String> = stems
        .iter()
        .filter_map(|(w, s)| {
            let ours = porter::stem(w);
            (ours != s.as_str().unwrap_or_default()).then(|| format!("{w}: ours {ours}, nltk {s}"))
        })
        .collect();
    assert!(stems.len() > 1000, "porter table too small");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
