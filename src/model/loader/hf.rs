//! Hugging Face layout: a model directory or a snapshot in the local Hugging Face cache.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use hf_hub::{Cache, Repo, RepoType};

use super::checkpoint::read_dir_weights;
use super::{check_weights, read_err, LoadError, LoadedModel, Result};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::LlamaConfig;

const LAYOUT: &str = "a Hugging Face model directory holds config.json, a tokenizer (tokenizer.json, or a \
                      sentencepiece tokenizer.model) with tokenizer_config.json, and the weights: model.safetensors \
                      (or model.safetensors.index.json with its model-0000k-of-0000N.safetensors shards) or \
                      pytorch_model.bin (or pytorch_model.bin.index.json with its pytorch_model-0000k-of-0000N.bin shards)";

/// Loads config, tokenizer and weights from a directory in Hugging Face layout.
pub fn load_hf_dir(dir: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let config_path = dir.join("config.json");
    let config = read_config(&config_path)?;
    let (tokenizer, tok_path) = read_tokenizer(dir)?;
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(LoadError::VocabSize {
            tokenizer: tok_path,
            config: config_path,
            tokens: tokenizer.vocab_size(),
            vocab_size: config.vocab_size,
        });
    }
    let Some((weights, weights_path)) = read_dir_weights(dir, dtype, device)? else {
        return Err(LoadError::Missing {
            path: dir.join("model.safetensors"),
            expected: LAYOUT.to_string(),
        });
    };
    check_weights(&weights_path, &config, &weights, &Default::default())?;
    Ok(LoadedModel {
        quantized: Default::default(),
        config,
        weights,
        tokenizer,
        source: dir.display().to_string(),
    })
}

/// Loads only the tokenizer of a Hugging Face directory (no weights are read).
pub fn load_hf_tokenizer(dir: &Path) -> Result<ModelTokenizer> {
    read_tokenizer(dir).map(|(tok, _)| tok)
}

/// The tokenizer of `dir` and the file it came from: `tokenizer.json` when present, else the
/// sentencepiece `tokenizer.model`; `tokenizer_config.json` and `special_tokens_map.json` add
/// the special tokens and the chat template.
fn read_tokenizer(dir: &Path) -> Result<(ModelTokenizer, PathBuf)> {
    let tok_json = dir.join("tokenizer.json");
    let spm = dir.join("tokenizer.model");
    let tok_cfg = dir.join("tokenizer_config.json");
    let tok_cfg = tok_cfg.is_file().then_some(tok_cfg.as_path());
    let (result, path) = if tok_json.is_file() {
        (ModelTokenizer::from_hf_files(&tok_json, tok_cfg), tok_json)
    } else if spm.is_file() {
        let map = dir.join("special_tokens_map.json");
        (
            ModelTokenizer::from_sentencepiece_files(&spm, tok_cfg, Some(map.as_path())),
            spm,
        )
    } else {
        return Err(LoadError::Missing {
            path: tok_json,
            expected: format!("neither tokenizer.json nor tokenizer.model is present; {LAYOUT}"),
        });
    };
    let tok = result.map_err(|source| LoadError::Tokenizer {
        path: path.clone(),
        source,
    })?;
    Ok((tok, path))
}

/// Finds the snapshot directory of `org/name[@revision]` in the local Hugging Face cache.
pub fn resolve_hf_cache(spec: &str) -> Result<PathBuf> {
    let cache = match std::env::var_os("HF_HUB_CACHE") {
        Some(p) if !p.is_empty() => Cache::new(PathBuf::from(p)),
        _ => Cache::from_env(),
    };
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (spec.to_string(), "main".to_string()),
    };
    let repo = Repo::with_revision(id.clone(), RepoType::Model, revision.clone());
    let folder = cache.path().join(repo.folder_name());
    let found = cache.repo(repo).get("config.json");
    match found {
        Some(config) => config
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| LoadError::NotFound {
                spec: spec.to_string(),
                reason: format!("unexpected cache path {}", config.display()),
            }),
        None => {
            // A revision given as a commit hash has no ref file: look for the snapshot directly.
            let snapshot = folder.join("snapshots").join(&revision);
            if snapshot.join("config.json").is_file() {
                return Ok(snapshot);
            }
            Err(LoadError::NotFound {
                spec: spec.to_string(),
                reason: format!(
                    "not a local path, and the Hugging Face cache has no config.json for it under {} \
                     (expected refs/{revision} and snapshots/<commit>/config.json there; set HF_HUB_CACHE or \
                     HF_HOME to the cache that holds it, or pass the model directory)",
                    folder.display()
                ),
            })
        }
    }
}

fn read_config(path: &Path) -> Result<LlamaConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LoadError::Missing {
                path: path.to_path_buf(),
                expected: LAYOUT.to_string(),
            }
        } else {
            read_err(path, e)
        }
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        read_err(
            path,
            format!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let model_type = value
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("llama");
    if model_type != "llama" {
        return Err(LoadError::Architecture {
            path: path.to_path_buf(),
            reason: format!(
                "model_type `{model_type}`; only LLaMA-architecture models (model_type \"llama\") can be loaded"
            ),
        });
    }
    LlamaConfig::from_json(&text).map_err(|source| LoadError::Config {
        path: path.to_path_buf(),
        source,
    })
}
