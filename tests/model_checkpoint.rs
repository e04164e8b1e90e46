//! PyTorch `.bin` checkpoints (single and sharded, f32/f16/bf16, as torch.save writes them) load to
//! the same tensors as the safetensors checkpoint they were saved from, in a directory with a
//! sentencepiece tokenizer.model and no tokenizer.json; broken inputs (truncated shard, missing
//! index entry, legacy pickle, a vocabulary larger than the config's) give errors that name the
//! file and the fix.
//!
//! Fixtures: `tests/data/golden/llama_bin/` from `scripts/golden/llama_bin_golden.py` (saved by
//! torch from `tests/data/golden/llama_untied/model.safetensors`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::temp_dir;
use instructmol::model::loader::{load_hf_dir, LoadError};

fn golden(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(sub)
}

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(golden("llama_untied/model.safetensors"), &Device::Cpu).unwrap()
}

/// A model directory: config + tokenizer of `llama_bin`, the weights files of `variant`.
fn model_dir(name: &str, variant: &str) -> PathBuf {
    let dir = temp_dir(name);
    for f in ["config.json", "tokenizer.model", "tokenizer_config.json"] {
        std::fs::copy(golden("llama_bin").join(f), dir.join(f)).unwrap();
    }
    for e in std::fs::read_dir(golden("llama_bin").join(variant)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    common::max_abs_diff(a, b)
}

#[test]
fn pytorch_checkpoints_load_to_the_safetensors_tensors() {
    let raw = reference();
    for (variant, dtype) in [
        ("f32", DType::F32),
        ("f16", DType::F16),
        ("bf16", DType::BF16),
    ] {
        let dir = model_dir(&format!("bin-{variant}"), variant);
        // Loaded in the file's dtype: exactly the safetensors tensors cast to it.
        let m = load_hf_dir(&dir, dtype, &Device::Cpu).unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert_eq!(m.weights.len(), raw.len(), "{variant}");
        for (k, v) in &raw {
            let got = &m.weights[k];
            assert_eq!(got.dtype(), dtype, "{variant} {k}");
            let want = v.to_dtype(dtype).unwrap();
            assert_eq!(got.dims(), want.dims(), "{variant} {k}");
            assert_eq!(max_diff(got, &want), 0.0, "{variant} {k}");
        }
        // Converted on load: f32 from f16/bf16 files, bf16 from f32.
        let other = if dtype == DType::BF16 {
            DType::F32
        } else {
            DType::BF16
        };
        let m2 = load_hf_dir(&dir, other, &Device::Cpu).unwrap();
        let k = "model.layers.1.mlp.down_proj.weight";
        assert_eq!(m2.weights[k].dtype(), other);
        let want = raw[k].to_dtype(dtype).unwrap().to_dtype(other).unwrap();
        assert_eq!(
            max_diff(&m2.weights[k], &want),
            0.0,
            "{variant} -> {other:?}"
        );
        // The sentencepiece tokenizer came along (no tokenizer.json here).
        assert_eq!(m.tokenizer.vocab_size(), 200);
        assert_eq!(m.tokenizer.bos_id(), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn safetensors_and_bin_side_by_side_prefer_safetensors() {
    let dir = model_dir("bin-and-st", "f16");
    std::fs::copy(
        golden("llama_untied/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let m = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    let raw = reference();
    let k = "model.embed_tokens.weight";
    // f32 safetensors values, not the f16-rounded .bin ones.
    assert_eq!(max_diff(&m.weights[k], &raw[k]), 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broken_pytorch_checkpoints_give_errors_that_name_the_file() {
    // A truncated shard.
    let dir = model_dir("bin-truncated", "bf16");
    let shard = dir.join("pytorch_model-00002-of-00003.bin");
    let bytes = std::fs::read(&shard).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 10, 100] {
        std::fs::write(&shard, &bytes[..cut]).unwrap();
        let err = load_hf_dir(&dir, DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pytorch_model-00002-of-00003.bin") && err.contains("truncated"),
            "{err}"
        );
    }
    std::fs::write(&shard, &bytes).unwrap();

    // A shard the index names is absent.
    std::fs::remove_file(&shard).unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, LoadError::Missing { ref path, .. } if path == &shard),
        "{err}"
    );
    std::fs::write(&shard, &bytes).unwrap();

    // The index lacks an entry: the tensor is missing, and the error names the index.
    let index_path = dir.join("pytorch_model.bin.index.json");
    let text = std::fs::read_to_string(&index_path).unwrap();
    let mut index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let key = "model.layers.1.self_attn.v_proj.weight";
    index["weight_map"].as_object_mut().unwrap().remove(key);
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, LoadError::MissingWeight { .. })
            && msg.contains(key)
            && msg.contains("pytorch_model.bin.index.json")
            && msg.contains("index must list every tensor"),
        "{msg}"
    );
    // The index points a tensor at the wrong shard.
    index["weight_map"][key] = serde_json::json!("pytorch_model-00003-of-00003.bin");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let msg = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(key) && msg.contains("pytorch_model-00003-of-00003.bin"),
        "{msg}"
    );
    std::fs::write(&index_path, &text).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // A legacy (non-zip) torch file, and something that is not a checkpoint at all.
    let dir = model_dir("bin-legacy", "f32");
    let bin = dir.join("pytorch_model.bin");
    std::fs::write(&bin, b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let msg = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("pytorch_model.bin") && msg.contains("legacy") && msg.contains("safetensors"),
        "{msg}"
    );
    std::fs::write(&bin, "version https://git-lfs.github.com/spec/v1\n").unwrap();
    let msg = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("pytorch_model.bin") && msg.contains("not a zip-format"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_tokenizer_larger_than_the_vocabulary_is_refused() {
    // The 32,000-piece LLaMA tokenizer with a config of vocab_size 200.
    let dir = model_dir("bin-vocab", "f32");
    std::fs::copy(
        golden("../llama_spm/tokenizer.model"),
        dir.join("tokenizer.model"),
    )
    .unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            LoadError::VocabSize {
                tokens: 32000,
                vocab_size: 200,
                ..
            }
        ) && msg.contains("tokenizer.model")
            && msg.contains("config.json")
            && msg.contains("use the tokenizer that belongs to this model"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_safetensors_shards_name_the_shard() {
    let dir = temp_dir("st-truncated");
    for f in ["config.json", "tokenizer.model", "tokenizer_config.json"] {
        std::fs::copy(golden("llama_bin").join(f), dir.join(f)).unwrap();
    }
    let raw = reference();
    common::write_two_shards(&dir, &raw);
    let m = load_hf_dir(&dir, DType::BF16, &Device::Cpu).unwrap();
    for (k, v) in &raw {
        let want = v.to_dtype(DType::BF16).unwrap();
        assert_eq!(max_diff(&m.weights[k], &want), 0.0, "{k}");
    }
    let shard = dir.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 1]).unwrap();
    let msg = load_hf_dir(&dir, DType::BF16, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("model-00002-of-00002.safetensors") && msg.contains("truncated"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
