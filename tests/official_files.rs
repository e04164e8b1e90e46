//! The output folders of the official InstructMol code (tests/data/official, written with
//! torch.save by scripts/golden/official_files.py) load as they are and give the same model
//! as the same tensors in this project's own layout.

mod common;

use common::{bin, root};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use instructmol::model::{load_model, Gin, InstructMol, Llama, MolPrompt, Projector};

fn official(name: &str) -> PathBuf {
    root().join("tests/data/official").join(name)
}

fn tiny_decoder() -> Llama {
    let m = load_model(
        root().join("tests/data/tiny_model").to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    Llama::from_weights(&m.config, m.weights, DType::F32, &Device::Cpu).unwrap()
}

/// Logits of one prompt about caffeine (graph tokens after the first id).
fn logits(model: &InstructMol) -> Vec<f32> {
    let graph = instructmol::chem::featurize_smiles("CN1C=NC2=C1C(=O)N(C(=O)N2C)C").unwrap();
    let ids = [1u32, 0, 17, 99, 250, 3, 42];
    let labels = [-100i64; 7];
    let prompt = MolPrompt {
        ids: &ids,
        labels: &labels,
        image_position: Some(1),
        graph: &graph,
    };
    let (logits, _) = model.logits(&[prompt], false, 0).unwrap();
    logits.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn official_stage2_folder_equals_the_same_tensors_in_our_layout() {
    let theirs = InstructMol::load_official(&official("stage2"), tiny_decoder(), None).unwrap();
    let ours = InstructMol::load(&official("ours"), tiny_decoder()).unwrap();
    let (a, b) = (logits(&theirs), logits(&ours));
    assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    // The adapter and the tuned graph tower were both used: without them the logits move.
    let plain = InstructMol::new(
        Gin::load(root().join("tests/data/golden/gin_model.pth"), None).unwrap(),
        Projector::load(official("ours").join("projector.safetensors"), None).unwrap(),
        tiny_decoder(),
    )
    .unwrap();
    assert!(max_diff(&a, &logits(&plain)) > 1e-3);
}

#[test]
fn official_stage1_folder_needs_and_uses_the_graph_encoder() {
    let err = match InstructMol::load_official(&official("stage1"), tiny_decoder(), None) {
        Ok(_) => panic!("loaded without a graph encoder"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("--graph-encoder"), "{err}");
    let gin_path = root().join("tests/data/golden/gin_model.pth");
    let theirs =
        InstructMol::load_official(&official("stage1"), tiny_decoder(), Some(&gin_path)).unwrap();
    let ours = InstructMol::new(
        Gin::load(&gin_path, None).unwrap(),
        Projector::load(official("ours").join("projector.safetensors"), None).unwrap(),
        tiny_decoder(),
    )
    .unwrap();
    assert!(max_diff(&logits(&theirs), &logits(&ours)) < 1e-6);
}

fn generate(run: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args([
            "generate",
            "--max-new-tokens",
            "4",
            "--smiles",
            "CCO",
            "--run",
        ])
        .arg(run)
        .arg("--model")
        .arg(root().join("tests/data/tiny_model"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn generate_answers_from_official_folders() {
    let o = generate(&official("stage2"), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = generate(&official("stage1"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--graph-encoder"),
        "{err}"
    );
    let gin = root().join("tests/data/golden/gin_model.pth");
    let o = generate(
        &official("stage1"),
        &["--graph-encoder", gin.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
