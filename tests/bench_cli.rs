//! `instructmol bench` through the binary on tiny shapes: the LoRA step's JSON (FLOP counts,
//! MFU), `bench generate --preset` (random weights, no file), and `bench write-model`.

mod common;

use common::{bin, root, temp_dir};

fn json_line(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn train_step_reports_both_flop_counts_and_mfu() {
    let out = bin()
        .args([
            "bench", "train", "--preset", "tiny", "--batch", "2", "--seq", "16",
        ])
        .args(["--steps", "1", "--threads", "1", "--peak-gflops", "100"])
        .output()
        .unwrap();
    let r = json_line(&out);
    assert_eq!(r["preset"], "tiny");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    // The LoRA count leaves out the base's weight gradients: below the conventional 6N one.
    assert!(f("gflops_lora_per_s") < f("gflops_6n_per_s"), "{r}");
    assert!(
        (f("mfu_6n") - f("gflops_6n_per_s") / 100.0).abs() < 1e-9,
        "{r}"
    );
    assert!(
        (f("mfu_lora") - f("gflops_lora_per_s") / 100.0).abs() < 1e-9,
        "{r}"
    );
    assert!(f("tokens_per_s") > 0.0);
    // No GPU: no device memory to report.
    assert!(r["gpu_mem"].is_null(), "{r}");
}

#[test]
fn generate_runs_on_a_preset_without_files_and_needs_a_model_or_a_preset() {
    let out = bin()
        .args(["bench", "generate", "--preset", "tiny", "--device", "cpu"])
        .args([
            "--prompt-tokens",
            "8",
            "--new-tokens",
            "4",
            "--repeats",
            "1",
        ])
        .output()
        .unwrap();
    let r = json_line(&out);
    assert_eq!(r["model"], "tiny");
    assert!(r["pp_tok_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    assert!(r["tg_tok_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    let out = bin().args(["bench", "generate"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model") && err.contains("--preset"), "{err}");
}

#[test]
fn write_model_makes_a_directory_that_loads_and_refuses_a_larger_tokenizer() {
    let dir = temp_dir("bench-write-model");
    let model = dir.join("tiny");
    let out = bin()
        .args([
            "bench",
            "write-model",
            "--preset",
            "tiny",
            "--dtype",
            "f32",
            "--seed",
            "3",
        ])
        .arg("--tokenizer-from")
        .arg(root().join("tests/data/tiny_model"))
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    let r = json_line(&out);
    assert_eq!(r["preset"], "tiny");
    // The weights are Llama::random's for the seed, whatever the machine.
    let loaded = instructmol::model::load_model(
        model.to_str().unwrap(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .expect("the written directory loads");
    let want = instructmol::model::Llama::random(
        &loaded.config,
        3,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let key = "model.layers.1.mlp.down_proj.weight";
    let got = loaded.weights.get(key).expect("a layer-1 weight");
    let want = want
        .named_tensors()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap()
        .1
        .to_dense(candle_core::DType::F32)
        .unwrap();
    let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    // It generates with the copied tokenizer.
    let out = bin()
        .args([
            "generate",
            "--raw",
            "--prompt",
            "CCO",
            "--max-new-tokens",
            "2",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A tokenizer of 32,000 ids does not fit the tiny preset's 512.
    let out = bin()
        .args([
            "bench",
            "write-model",
            "--preset",
            "tiny",
            "--tokenizer-from",
        ])
        .arg(root().join("tests/data/llama_spm"))
        .arg("--out")
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than the 512"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
