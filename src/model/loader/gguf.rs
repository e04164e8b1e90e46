//! GGUF files of the llama architecture (llama.cpp's format).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use super::{check_weights, read_err, LoadError, LoadedModel, Result};
use crate::model::config::TokenIds;
use crate::model::quant::{permute_rows, unpermute_order};
use crate::model::tokenizer::ModelTokenizer;
use crate::model::LlamaConfig;

impl LlamaConfig {
    /// The configuration a llama-architecture GGUF file states in its `llama.*` metadata.
    ///
    /// `vocab_size` falls back to the token list's length, `tie_word_embeddings` must be given by the
    /// caller's knowledge of the tensors (`output.weight` absent = tied), bos/eos come from the
    /// tokenizer metadata.
    pub fn from_gguf_metadata(
        md: &HashMap<String, Value>,
        tie_word_embeddings: bool,
    ) -> std::result::Result<Self, String> {
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or("`general.architecture` is missing")?;
        if arch != "llama" {
            return Err(format!(
                "general.architecture is `{arch}`; only `llama` GGUF files can be loaded"
            ));
        }
        let int = |key: &str| -> std::result::Result<usize, String> {
            md.get(key)
                .ok_or_else(|| format!("`{key}` is missing"))
                .and_then(|v| {
                    as_usize(v).ok_or_else(|| format!("`{key}` is not a non-negative integer"))
                })
        };
        let opt_int = |key: &str| md.get(key).and_then(as_usize);
        let float = |key: &str| md.get(key).and_then(as_f64);
        if let Some(kind) = md
            .get("llama.rope.scaling.type")
            .and_then(|v| v.to_string().ok())
        {
            if kind != "none" {
                return Err(format!(
                    "llama.rope.scaling.type is `{kind}`: RoPE scaling is not supported"
                ));
            }
        }
        let hidden = int("llama.embedding_length")?;
        let heads = int("llama.attention.head_count")?;
        let vocab = match opt_int("llama.vocab_size") {
            Some(v) => v,
            None => md
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(Vec::len)
                .ok_or("neither `llama.vocab_size` nor `tokenizer.ggml.tokens` is present")?,
        };
        let head_dim = opt_int("llama.attention.key_length")
            .or_else(|| opt_int("llama.rope.dimension_count"))
            .filter(|&hd| heads == 0 || hd != hidden / heads);
        let cfg = LlamaConfig {
            architectures: vec!["LlamaForCausalLM".to_string()],
            model_type: "llama".to_string(),
            hidden_size: hidden,
            intermediate_size: int("llama.feed_forward_length")?,
            num_hidden_layers: int("llama.block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: opt_int("llama.attention.head_count_kv"),
            head_dim,
            vocab_size: vocab,
            rms_norm_eps: float("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: float("llama.rope.freq_base").unwrap_or(10_000.0),
            max_position_embeddings: opt_int("llama.context_length").unwrap_or(2048),
            tie_word_embeddings,
            bos_token_id: opt_int("tokenizer.ggml.bos_token_id").map(|v| v as u32),
            eos_token_id: opt_int("tokenizer.ggml.eos_token_id").map(|v| TokenIds::One(v as u32)),
            pad_token_id: opt_int("tokenizer.ggml.padding_token_id").map(|v| v as u32),
            hidden_act: "silu".to_string(),
            rope_scaling: None,
            rope_parameters: None,
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

/// Reads only the tokenizer of a GGUF file (its metadata; no tensor data is read).
pub fn load_gguf_tokenizer(path: &Path) -> Result<ModelTokenizer> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let content = Content::read(&mut BufReader::new(file)).map_err(|e| {
        read_err(
            path,
            format!("not a valid GGUF file (truncated or corrupt?): {e}"),
        )
    })?;
    ModelTokenizer::from_gguf_metadata(&content.metadata).map_err(|source| LoadError::Tokenizer {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a llama-architecture GGUF file: tensors renamed to their Hugging Face names and q/k rows
/// un-permuted; block-quantized tensors kept as they are when `keep_quantized` (their rows moved
/// as bytes), everything else dequantized to f32 and cast to `dtype`; tokenizer and chat
/// template from metadata.
pub fn load_gguf(
    path: &Path,
    dtype: DType,
    device: &Device,
    keep_quantized: bool,
) -> Result<LoadedModel> {
    crate::model::untrusted::check_gguf(path)?;
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        read_err(
            path,
            format!("not a valid GGUF file (truncated or corrupt?): {e}"),
        )
    })?;
    let md = &content.metadata;
    let tied = !content.tensor_infos.contains_key("output.weight");
    let config = LlamaConfig::from_gguf_metadata(md, tied).map_err(|reason| {
        if reason.contains("general.architecture") || reason.contains("scaling") {
            LoadError::Architecture {
                path: path.to_path_buf(),
                reason,
            }
        } else {
            read_err(path, format!("GGUF metadata: {reason}"))
        }
    })?;
    let tokenizer =
        ModelTokenizer::from_gguf_metadata(md).map_err(|source| LoadError::Tokenizer {
            path: path.to_path_buf(),
            source,
        })?;

    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut weights = HashMap::with_capacity(names.len());
    let mut quantized = HashMap::new();
    for name in names {
        let hf = hf_name(name).ok_or_else(|| {
            read_err(
                path,
                format!("tensor `{name}` is not part of a plain llama model (RoPE scaling factors and other extras are not supported)"),
            )
        })?;
        let q = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        let heads = if hf.ends_with("self_attn.q_proj.weight") {
            Some(config.num_attention_heads)
        } else if hf.ends_with("self_attn.k_proj.weight") {
            Some(config.kv_heads())
        } else {
            None
        };
        if keep_quantized && crate::model::quant::is_block_quantized(q.dtype()) {
            let q = match heads {
                Some(n_head) => {
                    let rows = q.shape().dims().first().copied().unwrap_or(0);
                    let order = unpermute_order(rows, n_head).ok_or_else(|| {
                        read_err(path, format!("tensor `{name}`: {rows} rows cannot be split into {n_head} heads of rope pairs"))
                    })?;
                    permute_rows(&q, &order)
                        .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?
                }
                None => q,
            };
            quantized.insert(hf, q);
            continue;
        }
        let mut t = q
            .dequantize(&Device::Cpu)
            .map_err(|e| read_err(path, format!("tensor `{name}`: cannot dequantize: {e}")))?;
        if let Some(n_head) = heads {
            t = unpermute(&t, n_head)
                .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        }
        let t = t
            .to_dtype(dtype)
            .and_then(|t| t.to_device(device))
            .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        weights.insert(hf, t);
    }
    check_weights(path, &config, &weights, &quantized)?;
    let name = md
        .get("general.name")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    Ok(LoadedModel {
        config,
        weights,
        quantized,
        tokenizer,
        source: format!(
            "{} (GGUF{})",
            path.display(),
            if name.is_empty() {
                String::new()
            } else {
                format!(", {name}")
            }
        ),
    })
}

/// Undoes llama.cpp's q/k row permutation (interleaved rope pairs -> rotate-half halves).
fn unpermute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    if n_head == 0 || out % (2 * n_head) != 0 {
        candle_core::bail!("{out} rows cannot be split into {n_head} heads of rope pairs");
    }
    w.reshape((n_head, out / n_head / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// llama.cpp's tensor names and their Hugging Face names: whole-model tensors, then the
/// per-block parts (`blk.{i}.` / `model.layers.{i}.`).
const MODEL_NAMES: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];
const BLOCK_NAMES: [(&str, &str); 9] = [
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
];

/// Hugging Face name of a GGUF llama tensor.
fn hf_name(name: &str) -> Option<String> {
    if let Some((_, hf)) = MODEL_NAMES.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let (layer, part) = name.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (_, hf) = BLOCK_NAMES.iter().find(|(g, _)| *g == part)?;
    Some(format!("model.layers.{layer}.{hf}"))
}

/// llama.cpp's name of a Hugging Face LLaMA tensor (the inverse of [`hf_name`]).
pub fn gguf_name(hf: &str) -> Option<String> {
    if let Some((g, _)) = MODEL_NAMES.iter().find(|(_, h)| *h == hf) {
        return Some(g.to_string());
    }
    let (layer, part) = hf.strip_prefix("model.layers.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (g, _) = BLOCK_NAMES.iter().find(|(_, h)| *h == part)?;
    Some(format!("blk.{layer}.{g}"))
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::U8(x) => Some(usize::from(*x)),
        Value::U16(x) => Some(usize::from(*x)),
        Value::U32(x) => usize::try_from(*x).ok(),
        Value::U64(x) => usize::try_from(*x).ok(),
        Value::I8(x) => usize::try_from(*x).ok(),
        Value::I16(x) => usize::try_from(*x).ok(),
        Value::I32(x) => usize::try_from(*x).ok(),
        Value::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::F32(x) => Some(f64::from(*x)),
        Value::F64(x) => Some(*x),
        other => as_usize(other).map(|u| u as f64),
    }
}
