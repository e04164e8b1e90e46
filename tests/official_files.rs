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

/// The golden of scripts/golden/export_check.py: logits of the exported folders as the
/// official loading code (torch, transformers, peft) computes them.
fn export_golden() -> serde_json::Value {
    let text =
        std::fs::read_to_string(root().join("tests/data/golden/export_logits.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn golden_logits(g: &serde_json::Value, stage: &str) -> Vec<f32> {
    g[stage]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn export(model_dir: &Path, out: &Path) -> std::process::Output {
    bin()
        .args(["export", "--format", "llava-graph", "--base"])
        .arg(root().join("tests/data/tiny_model"))
        .arg(model_dir)
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn exported_stage2_folder_gives_the_official_loaders_logits() {
    let g = export_golden();
    assert_eq!(g["smiles"], "CN1C=NC2=C1C(=O)N(C(=O)N2C)C");
    let out = common::temp_dir("export-stage2").join("llava-tiny-lora");
    let o = export(&official("ours"), &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "adapter_config.json",
        "adapter_model.bin",
        "non_lora_trainables.bin",
        "config.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let golden = golden_logits(&g, "stage2");
    let exported = InstructMol::load_official(&out, tiny_decoder(), None).unwrap();
    let d = max_diff(&logits(&exported), &golden);
    assert!(d <= 1e-4, "exported folder vs torch+peft: {d}");
    let ours = InstructMol::load(&official("ours"), tiny_decoder()).unwrap();
    let d = max_diff(&logits(&ours), &golden);
    assert!(d <= 1e-4, "our folder vs torch+peft: {d}");
    // The official config fields the graph tower is built from.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llava_graph");
    assert_eq!(cfg["mm_hidden_size"], 16);
    assert_eq!(cfg["gin_num_layers"], 5);
    assert_eq!(cfg["mm_projector_type"], "linear");
}

#[test]
fn exported_stage1_folder_gives_the_official_loaders_logits() {
    let dir = common::temp_dir("export-stage1");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["projector.safetensors", "gin.safetensors"] {
        std::fs::copy(official("ours").join(f), model.join(f)).unwrap();
    }
    let out = dir.join("llava-tiny-pretrain");
    let o = export(&model, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("mm_projector.bin").exists());
    assert!(!out.join("adapter_model.bin").exists());
    let exported = InstructMol::load_official(&out, tiny_decoder(), None).unwrap();
    let d = max_diff(
        &logits(&exported),
        &golden_logits(&export_golden(), "stage1"),
    );
    assert!(d <= 1e-4, "{d}");
}

#[test]
fn export_refuses_a_non_empty_folder_and_a_model_without_a_base() {
    let dir = common::temp_dir("export-refusals");
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let o = export(&official("ours"), &busy);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not empty"), "{err}");
    // A stage-2 folder named without `llava` and `lora` gets a note about the official loader.
    let o = export(&official("ours"), &dir.join("plain-name"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("llava and lora"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "mine"
    );
    let o = bin()
        .args(["export"])
        .arg(official("ours"))
        .arg(dir.join("new"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--base"), "{err}");
}

#[test]
fn an_adapter_for_another_base_model_names_that_model() {
    // A LLaMA of another width (d 32) than the adapter's base (d 64).
    let dir = root().join("tests/data/golden/llama_untied");
    let cfg = instructmol::model::LlamaConfig::from_json(
        &std::fs::read_to_string(dir.join("config.json")).unwrap(),
    )
    .unwrap();
    let weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut other = Llama::from_weights(&cfg, weights, DType::F32, &Device::Cpu).unwrap();
    let err = other
        .load_peft(official("ours").join("adapter"), &candle_nn::VarMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adapter_model.safetensors")
            && err.contains("trained on `lmsys/vicuna-7b-v1.3`"),
        "{err}"
    );
}
