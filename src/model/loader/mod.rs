//! Loading a real LLaMA-family model from disk: configuration, weights with Hugging Face names,
//! and tokenizer.
//!
//! [`load_model`] accepts
//! - a directory in Hugging Face layout: `config.json`; `tokenizer.json` or a sentencepiece
//!   `tokenizer.model` (LLaMA/Vicuna), with `tokenizer_config.json` / `special_tokens_map.json`;
//!   weights as `model.safetensors`, sharded `model-0000k-of-0000N.safetensors` +
//!   `model.safetensors.index.json`, or PyTorch `pytorch_model.bin` / sharded
//!   `pytorch_model-0000k-of-0000N.bin` + `pytorch_model.bin.index.json` (read shard by shard and
//!   tensor by tensor, see [`checkpoint`]);
//! - a repository id (`org/name`, optionally `org/name@revision`) already in the local Hugging Face
//!   cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`);
//! - a `.gguf` file of the llama architecture (tensors dequantized, renamed to Hugging Face names,
//!   q/k rows un-permuted for the rotate-half rope; tokenizer built from the GGUF metadata).
//!
//! [`load_tokenizer`] accepts the same and reads only the tokenizer files (no weights).

pub mod checkpoint;
mod gguf;
mod hf;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use super::quant::QuantMode;
use super::tokenizer::{ModelTokenizer, TokenizerError};
use super::{LlamaConfig, ModelError};

pub use gguf::{gguf_name, load_gguf, load_gguf_tokenizer};
pub use hf::{load_hf_dir, load_hf_tokenizer, resolve_hf_cache};

/// Errors while loading a model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file the layout needs is absent.
    #[error("{path}: missing; {expected}")]
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// What layout is expected.
        expected: String,
    },
    /// The model argument is neither a path nor a repository in the local cache.
    #[error("model `{spec}` not found: {reason}")]
    NotFound {
        /// What the user gave.
        spec: String,
        /// Where we looked.
        reason: String,
    },
    /// A file could not be read or parsed (truncated, corrupt, bad JSON).
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong (with line/column for JSON).
        reason: String,
    },
    /// The model is not of an architecture we can run.
    #[error("{path}: unsupported architecture: {reason}")]
    Architecture {
        /// The file stating the architecture.
        path: PathBuf,
        /// What was found and what is supported.
        reason: String,
    },
    /// A weight is missing from the checkpoint.
    #[error(
        "{path}: weight `{key}` is missing (a LLaMA checkpoint with Hugging Face tensor names is expected; \
         a sharded checkpoint's index must list every tensor, and each shard must hold what the index says)"
    )]
    MissingWeight {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        key: String,
    },
    /// A weight has a shape that does not match the configuration.
    #[error("{path}: weight `{key}` has shape {found:?}, the configuration implies {expected:?}")]
    Shape {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The configuration is invalid.
    #[error("{path}: {source}")]
    Config {
        /// The file the configuration came from.
        path: PathBuf,
        /// What is wrong.
        source: ModelError,
    },
    /// The tokenizer has more tokens than the model has embeddings.
    #[error(
        "{tokenizer}: the tokenizer has {tokens} tokens but {config} says vocab_size {vocab_size}, so ids \
         {vocab_size} and above have no embedding; use the tokenizer that belongs to this model (or fix \
         vocab_size in config.json if the embedding matrix really has {tokens} rows)"
    )]
    VocabSize {
        /// The tokenizer file.
        tokenizer: PathBuf,
        /// The configuration file.
        config: PathBuf,
        /// Tokens of the tokenizer (added tokens included).
        tokens: usize,
        /// `vocab_size` of the configuration.
        vocab_size: usize,
    },
    /// The tokenizer could not be built.
    #[error("{path}: {source}")]
    Tokenizer {
        /// The file the tokenizer came from.
        path: PathBuf,
        /// What is wrong.
        source: TokenizerError,
    },
}

/// Result alias of the loader.
pub type Result<T> = std::result::Result<T, LoadError>;

/// A model read from disk, ready to be handed to the decoder.
#[derive(Debug)]
pub struct LoadedModel {
    /// The decoder's hyperparameters.
    pub config: LlamaConfig,
    /// Every tensor of the checkpoint under its Hugging Face name, in the requested dtype.
    /// The names the LLaMA decoder needs are checked to be present with the right shapes;
    /// other tensors of the checkpoint (e.g. a projector) are kept as they are.
    pub weights: HashMap<String, Tensor>,
    /// Tensors kept in their GGML block type (a GGUF loaded with [`load_model_quantized`]),
    /// under Hugging Face names, q/k rows already in the rotate-half order; not in `weights`.
    pub quantized: HashMap<String, QTensor>,
    /// The tokenizer with its special tokens and chat template.
    pub tokenizer: ModelTokenizer,
    /// Where the model came from, for logs.
    pub source: String,
}

/// Loads a model from a directory, a `.gguf` file or a repository id in the local HF cache;
/// every tensor dense in `dtype` (GGUF blocks dequantized).
pub fn load_model(spec: &str, dtype: DType, device: &Device) -> Result<LoadedModel> {
    load(spec, dtype, device, false)
}

/// As [`load_model`], but a GGUF file's block-quantized tensors stay quantized
/// ([`LoadedModel::quantized`]), for [`crate::model::Llama::from_parts`].
pub fn load_model_quantized(spec: &str, dtype: DType, device: &Device) -> Result<LoadedModel> {
    load(spec, dtype, device, true)
}

fn load(spec: &str, dtype: DType, device: &Device, keep_quantized: bool) -> Result<LoadedModel> {
    match resolve(spec)? {
        Source::Gguf(path) => load_gguf(&path, dtype, device, keep_quantized),
        Source::Dir(dir) => load_hf_dir(&dir, dtype, device),
        Source::Cache(dir) => {
            let mut loaded = load_hf_dir(&dir, dtype, device)?;
            loaded.source = format!("{spec} (Hugging Face cache: {})", dir.display());
            Ok(loaded)
        }
    }
}

/// A decoder built and ready to run, with its tokenizer.
pub struct LoadedDecoder {
    /// The decoder.
    pub llama: crate::model::Llama,
    /// Its tokenizer.
    pub tokenizer: ModelTokenizer,
    /// Where it came from and how its matrices are stored, for logs.
    pub source: String,
}

/// Loads `spec` (as [`load_model`] takes it) and builds the decoder with its matrices stored as
/// `mode` says (GGUF blocks kept on the CPU unless [`QuantMode::Dense`]).
pub fn load_decoder(
    spec: &str,
    dtype: DType,
    device: &Device,
    mode: QuantMode,
) -> Result<LoadedDecoder> {
    let keep = match mode {
        QuantMode::AsStored => device.is_cpu(),
        QuantMode::Dense => false,
        QuantMode::To(_) => true,
    };
    let loaded = load(spec, dtype, device, keep)?;
    let quantize = match mode {
        QuantMode::To(t) => Some(t),
        _ => None,
    };
    let llama = crate::model::Llama::from_parts(
        &loaded.config,
        loaded.weights,
        loaded.quantized,
        quantize,
        dtype,
        device,
    )
    .map_err(|source| LoadError::Config {
        path: PathBuf::from(spec),
        source,
    })?;
    let stored: Vec<String> = llama
        .weight_types()
        .into_iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    Ok(LoadedDecoder {
        source: format!("{} [matrices: {}]", loaded.source, stored.join(", ")),
        llama,
        tokenizer: loaded.tokenizer,
    })
}

/// Loads only the tokenizer of a model given as [`load_model`] takes it: the tokenizer files
/// of a directory, or the metadata of a GGUF file; no weights are read.
pub fn load_tokenizer(spec: &str) -> Result<ModelTokenizer> {
    match resolve(spec)? {
        Source::Gguf(path) => load_gguf_tokenizer(&path),
        Source::Dir(dir) | Source::Cache(dir) => load_hf_tokenizer(&dir),
    }
}

/// Where a model argument points.
enum Source {
    /// A GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face model directory.
    Dir(PathBuf),
    /// A snapshot directory in the local Hugging Face cache.
    Cache(PathBuf),
}

fn resolve(spec: &str) -> Result<Source> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(Source::Gguf(path.to_path_buf()));
    }
    if path.is_dir() {
        if !path.join("config.json").exists() {
            let ggufs = gguf_files_in(path);
            if let [only] = ggufs.as_slice() {
                return Ok(Source::Gguf(only.clone()));
            }
        }
        return Ok(Source::Dir(path.to_path_buf()));
    }
    let looks_like_repo = spec.split('/').count() == 2
        && !spec.starts_with('.')
        && !spec.ends_with(".gguf")
        && spec.split('/').all(|p| !p.is_empty());
    if !looks_like_repo {
        return Err(LoadError::NotFound {
            spec: spec.to_string(),
            reason: "no such file or directory (give a .gguf file, a Hugging Face model directory, or a \
                     repository id like `org/name` that is in the local Hugging Face cache)"
                .to_string(),
        });
    }
    resolve_hf_cache(spec).map(Source::Cache)
}

fn gguf_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect()
}

/// The Hugging Face tensor names and shapes a LLaMA decoder with `cfg` needs.
pub fn expected_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.hidden_size;
    let hd = cfg.head_dim();
    let q = cfg.num_attention_heads * hd;
    let kv = cfg.kv_heads() * hd;
    let ff = cfg.intermediate_size;
    let mut out = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![cfg.vocab_size, d],
        ),
        ("model.norm.weight".to_string(), vec![d]),
    ];
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d]));
    }
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        out.push((format!("{p}.self_attn.q_proj.weight"), vec![q, d]));
        out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, d]));
        out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, d]));
        out.push((format!("{p}.self_attn.o_proj.weight"), vec![d, q]));
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![ff, d]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![ff, d]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![d, ff]));
        out.push((format!("{p}.input_layernorm.weight"), vec![d]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
    }
    out
}

/// Checks that every tensor the decoder needs is present (dense or quantized) with the shape
/// `cfg` implies.
fn check_weights(
    path: &Path,
    cfg: &LlamaConfig,
    weights: &HashMap<String, Tensor>,
    quantized: &HashMap<String, QTensor>,
) -> Result<()> {
    super::untrusted::check_layer_count(path, cfg, weights.len() + quantized.len())?;
    for (key, expected) in expected_shapes(cfg) {
        let dims = match (weights.get(&key), quantized.get(&key)) {
            (Some(t), _) => t.dims(),
            (None, Some(q)) => q.shape().dims(),
            (None, None) => {
                return Err(LoadError::MissingWeight {
                    path: path.to_path_buf(),
                    key: key.clone(),
                })
            }
        };
        if dims != expected.as_slice() {
            return Err(LoadError::Shape {
                path: path.to_path_buf(),
                key,
                expected,
                found: dims.to_vec(),
            });
        }
    }
    Ok(())
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
