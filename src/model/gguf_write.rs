//! Writes a decoder as a llama GGUF file that llama.cpp loads: llama.cpp's tensor names, q/k rows
//! in its interleaved-rope order, the `llama.*` hyperparameters, and the tokenizer as GGUF
//! metadata (copied from a GGUF source; from `tokenizer.model` as a `llama` sentencepiece
//! vocabulary; from `tokenizer.json` as a `gpt2` byte-level BPE vocabulary with its merges),
//! with the chat template.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::DType;

use super::loader::gguf_name;
use super::quant::{permute_rows, unpermute_order};
use super::sentencepiece::{PieceKind, SentencePieceModel};
use super::{Llama, ModelError, Result};

/// llama.cpp's `general.file_type` for a quantization type (its `LLAMA_FTYPE_*` numbers).
fn file_type(t: GgmlDType) -> u32 {
    match t {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 12,
        GgmlDType::Q4K => 15,
        GgmlDType::Q5K => 17,
        GgmlDType::Q6K => 18,
        GgmlDType::BF16 => 32,
        _ => 0,
    }
}

fn read_err(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Read {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn json_file(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_err(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| read_err(path, format!("not JSON: {e}")))
}

/// The `tokenizer.*` metadata (and `general.name`) of the model at `source`: a `.gguf` file or
/// a Hugging Face directory.
pub fn tokenizer_metadata(source: &Path) -> Result<Vec<(String, Value)>> {
    if source.is_file() {
        crate::model::untrusted::check_gguf(source).map_err(|e| read_err(source, e))?;
        let mut f = std::fs::File::open(source).map_err(|e| read_err(source, e))?;
        let content = gguf_file::Content::read(&mut f).map_err(|e| read_err(source, e))?;
        let mut md: Vec<(String, Value)> = content
            .metadata
            .into_iter()
            .filter(|(k, _)| k.starts_with("tokenizer.") || k == "general.name")
            .collect();
        md.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(md);
    }
    let mut md = Vec::new();
    let tok_cfg = json_file(&source.join("tokenizer_config.json"))?.unwrap_or_default();
    let flag = |key: &str| tok_cfg.get(key).and_then(serde_json::Value::as_bool);
    let tokens: Vec<String> = if source.join("tokenizer.json").exists() {
        let path = source.join("tokenizer.json");
        let j = json_file(&path)?.unwrap_or_default();
        let (list, types, merges) = gpt2_vocab(&path, &j)?;
        md.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
        // The pre-tokenizer llama.cpp applies to byte-level BPE; `default` is GPT-2's split.
        md.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
        md.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
        md.push(("tokenizer.ggml.merges".into(), Value::Array(merges)));
        md.push((
            "tokenizer.ggml.add_bos_token".into(),
            Value::Bool(flag("add_bos_token").unwrap_or(false)),
        ));
        list
    } else {
        let path = source.join("tokenizer.model");
        let bytes = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
        let sp = SentencePieceModel::parse(&bytes).map_err(|e| read_err(&path, e))?;
        md.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
        md.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
        let scores = sp.pieces.iter().map(|p| Value::F32(p.score)).collect();
        let types = sp
            .pieces
            .iter()
            .map(|p| {
                Value::I32(match p.kind {
                    PieceKind::Normal => 1,
                    PieceKind::Unknown => 2,
                    PieceKind::Control => 3,
                    PieceKind::UserDefined => 4,
                    PieceKind::Unused => 5,
                    PieceKind::Byte => 6,
                })
            })
            .collect();
        md.push(("tokenizer.ggml.scores".into(), Value::Array(scores)));
        md.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
        md.push((
            "tokenizer.ggml.add_bos_token".into(),
            Value::Bool(flag("add_bos_token").unwrap_or(true)),
        ));
        md.push((
            "tokenizer.ggml.add_eos_token".into(),
            Value::Bool(flag("add_eos_token").unwrap_or(false)),
        ));
        sp.pieces.into_iter().map(|p| p.text).collect()
    };
    let tok = crate::model::loader::load_tokenizer(&source.to_string_lossy())
        .map_err(|e| read_err(source, e))?;
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", tok.bos_id()),
        ("tokenizer.ggml.eos_token_id", tok.eos_id()),
        ("tokenizer.ggml.padding_token_id", tok.pad_id()),
        ("tokenizer.ggml.unknown_token_id", tok.token_id("<unk>")),
    ] {
        if let Some(id) = id {
            md.push((key.into(), Value::U32(id)));
        }
    }
    if let Some(t) = tok.chat_template() {
        md.push((
            "tokenizer.chat_template".into(),
            Value::String(t.to_string()),
        ));
    }
    md.push((
        "tokenizer.ggml.tokens".into(),
        Value::Array(tokens.into_iter().map(Value::String).collect()),
    ));
    Ok(md)
}

/// Tokens by id, token types and merges of a byte-level BPE `tokenizer.json`.
fn gpt2_vocab(path: &Path, j: &serde_json::Value) -> Result<(Vec<String>, Vec<Value>, Vec<Value>)> {
    let model = &j["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(read_err(
            path,
            "only BPE tokenizer.json files can be written to GGUF",
        ));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| read_err(path, "model.vocab is not an object"))?;
    let mut by_id: HashMap<u64, (String, i32)> = HashMap::new();
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| read_err(path, format!("id of `{tok}` is not a number")))?;
        by_id.insert(id, (tok.clone(), 1));
    }
    for added in j["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            continue;
        };
        let special = added["special"].as_bool().unwrap_or(false);
        by_id.insert(id, (content.to_string(), if special { 3 } else { 4 }));
    }
    let n = by_id.keys().max().map_or(0, |m| m + 1);
    let mut tokens = Vec::with_capacity(n as usize);
    let mut types = Vec::with_capacity(n as usize);
    for id in 0..n {
        // A hole in the ids gets an unused placeholder, as llama.cpp's converter writes.
        let (t, ty) = by_id
            .remove(&id)
            .unwrap_or_else(|| (format!("[PAD{id}]"), 5));
        tokens.push(t);
        types.push(Value::I32(ty));
    }
    let merges = model["merges"]
        .as_array()
        .ok_or_else(|| read_err(path, "model.merges is not a list"))?
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(Value::String(s.clone())),
            serde_json::Value::Array(p) if p.len() == 2 => Ok(Value::String(format!(
                "{} {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            ))),
            _ => Err(read_err(path, "a merge is neither \"a b\" nor [a, b]")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((tokens, types, merges))
}

/// Writes `llama` (matrices as they are stored in it: quantized ones as they are, dense ones
/// as f32; norms f32) with `tokenizer` metadata to `out`. `file_type` is the type most
/// matrices have (`general.file_type`).
pub fn write(
    out: &Path,
    llama: &Llama,
    tokenizer: Vec<(String, Value)>,
    main_type: GgmlDType,
) -> Result<PathBuf> {
    let werr = |reason: String| ModelError::Write {
        path: out.to_path_buf(),
        reason,
    };
    let cfg = llama.config();
    let mut tensors: Vec<(String, Arc<QTensor>)> = Vec::new();
    for (hf, w) in llama.named_tensors() {
        let name = gguf_name(&hf).ok_or_else(|| werr(format!("no GGUF name for `{hf}`")))?;
        let heads = if hf.ends_with("q_proj.weight") {
            Some(cfg.num_attention_heads)
        } else if hf.ends_with("k_proj.weight") {
            Some(cfg.kv_heads())
        } else {
            None
        };
        let q = match w.qtensor()? {
            Some(q) => q,
            None => Arc::new(QTensor::quantize(&w.to_dense(DType::F32)?, GgmlDType::F32)?),
        };
        let q = match heads {
            Some(n) => {
                let rows = q.shape().dims()[0];
                let order = unpermute_order(rows, n).ok_or_else(|| {
                    werr(format!("`{hf}`: {rows} rows do not split into {n} heads"))
                })?;
                // llama.cpp's order: row `order[i]` there is row `i` here.
                let mut inverse = vec![0; rows];
                for (i, &o) in order.iter().enumerate() {
                    inverse[o] = i;
                }
                Arc::new(permute_rows(&q, &inverse)?)
            }
            None => q,
        };
        tensors.push((name, q));
    }
    let u32v = |x: usize| Value::U32(x as u32);
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.file_type".into(), Value::U32(file_type(main_type))),
        ("general.quantization_version".into(), Value::U32(2)),
        ("llama.vocab_size".into(), u32v(cfg.vocab_size)),
        (
            "llama.context_length".into(),
            u32v(cfg.max_position_embeddings),
        ),
        ("llama.embedding_length".into(), u32v(cfg.hidden_size)),
        ("llama.block_count".into(), u32v(cfg.num_hidden_layers)),
        (
            "llama.feed_forward_length".into(),
            u32v(cfg.intermediate_size),
        ),
        ("llama.rope.dimension_count".into(), u32v(cfg.head_dim())),
        (
            "llama.attention.head_count".into(),
            u32v(cfg.num_attention_heads),
        ),
        ("llama.attention.head_count_kv".into(), u32v(cfg.kv_heads())),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (
            "llama.rope.freq_base".into(),
            Value::F32(cfg.rope_theta as f32),
        ),
    ];
    md.extend(tokenizer);
    if !md.iter().any(|(k, _)| k == "general.name") {
        md.push((
            "general.name".into(),
            Value::String("instructmol export".into()),
        ));
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
    let tmp = out.with_extension("gguf.part");
    let file = std::fs::File::create(&tmp).map_err(|e| werr(e.to_string()))?;
    let mut w = std::io::BufWriter::new(file);
    gguf_file::write(&mut w, &md_refs, &t_refs).map_err(|e| werr(e.to_string()))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(|e| werr(e.to_string()))?;
    Ok(out.to_path_buf())
}
