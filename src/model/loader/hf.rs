//! Hugging Face layout: a model directory or a snapshot in the local Hugging Face cache.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use hf_hub::{Cache, Repo, RepoType};

use super::{check_weights, read_err, LoadError, LoadedModel, Result};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::LlamaConfig;

const LAYOUT: &str = "a Hugging Face model directory holds config.json, tokenizer.json, tokenizer_config.json and \
                      model.safetensors (or model.safetensors.index.json with its model-0000k-of-0000N.safetensors shards)";

/// Loads config, tokenizer and weights from a directory in Hugging Face layout.
pub fn load_hf_dir(dir: &Path, dtype: DType, device: &Device) -> Result<LoadedModel> {
    let config_path = dir.join("config.json");
    let config = read_config(&config_path)?;
    let tok_path = dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(LoadError::Missing {
            path: tok_path,
            expected: format!(
                "{LAYOUT}; a sentencepiece tokenizer.model alone is not supported, convert it to tokenizer.json \
                 (transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir))"
            ),
        });
    }
    let tok_cfg = dir.join("tokenizer_config.json");
    let tokenizer =
        ModelTokenizer::from_hf_files(&tok_path, tok_cfg.is_file().then_some(tok_cfg.as_path()))
            .map_err(|source| LoadError::Tokenizer {
                path: tok_path.clone(),
                source,
            })?;

    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let (weights, weights_path) = if single.is_file() {
        (read_safetensors(&single, dtype, device)?, single)
    } else if index.is_file() {
        (read_sharded(dir, &index, dtype, device)?, index)
    } else {
        let hint = if dir.join("pytorch_model.bin").exists()
            || dir.join("pytorch_model.bin.index.json").exists()
        {
            "; this checkpoint is in PyTorch .bin format: convert it to safetensors first"
        } else {
            ""
        };
        return Err(LoadError::Missing {
            path: single,
            expected: format!("{LAYOUT}{hint}"),
        });
    };
    check_weights(&weights_path, &config, &weights)?;
    Ok(LoadedModel {
        config,
        weights,
        tokenizer,
        source: dir.display().to_string(),
    })
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

/// Reads every tensor of one safetensors file, converted to `dtype`.
fn read_safetensors(path: &Path, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    read_safetensors_into(path, None, dtype, device, &mut out)?;
    Ok(out)
}

/// Reads the tensors of `path` (only those in `only` when given) into `out`.
fn read_safetensors_into(
    path: &Path,
    only: Option<&BTreeSet<&str>>,
    dtype: DType,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LoadError::Missing {
                path: path.to_path_buf(),
                expected: LAYOUT.to_string(),
            }
        } else {
            read_err(path, e)
        }
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        read_err(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    for (name, view) in st.tensors() {
        if only.is_some_and(|keep| !keep.contains(name.as_str())) {
            continue;
        }
        let t = candle_core::safetensors::Load::load(&view, device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
    }
    Ok(())
}

/// Reads a sharded checkpoint described by `model.safetensors.index.json`.
fn read_sharded(
    dir: &Path,
    index: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let text = std::fs::read_to_string(index).map_err(|e| read_err(index, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        read_err(
            index,
            format!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| read_err(index, "no `weight_map` object (tensor name -> shard file)"))?;
    let mut by_shard: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| read_err(index, format!("weight_map[`{name}`] is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(read_err(
                index,
                format!("weight_map[`{name}`] = `{file}` is not a file of this directory"),
            ));
        }
        by_shard.entry(file).or_default().insert(name.as_str());
    }
    let mut shards: Vec<_> = by_shard.into_iter().collect();
    shards.sort();
    let mut out = HashMap::new();
    for (file, names) in &shards {
        let shard = dir.join(file);
        read_safetensors_into(&shard, Some(names), dtype, device, &mut out)?;
        if let Some(absent) = names.iter().find(|n| !out.contains_key(**n)) {
            return Err(LoadError::MissingWeight {
                path: shard,
                key: absent.to_string(),
            });
        }
    }
    Ok(out)
}
