//! `instructmol quantize --model IN --type T --out OUT.gguf`: a LLaMA-family model (Hugging Face
//! directory, GGUF, or local HF cache id) written as a llama GGUF that llama.cpp and this binary
//! load, its matrices quantized to T (rows that are not whole blocks of T fall back to q8_0, as
//! llama.cpp does), norms in f32, tokenizer and chat template as GGUF metadata.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};

use crate::model::loader::resolve_hf_cache;
use crate::model::quant::{parse_quant_type, QuantMode};
use crate::model::{gguf_write, load_model, Llama};

/// Arguments of `instructmol quantize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a Hugging Face directory (safetensors or .bin; tokenizer.json or
    /// tokenizer.model), a .gguf file, or a repository id in the local Hugging Face cache.
    #[arg(long)]
    pub model: String,
    /// Quantization type: q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k; or f32 / f16
    /// (no quantization).
    #[arg(long = "type")]
    pub kind: String,
    /// The GGUF file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// The dtype the checkpoint's dense tensors are read in: its own (`torch_dtype`), so that
/// nothing is rounded before quantization, and bf16 for a 7B model never takes f32's memory.
fn source_dtype(dir: &Path) -> DType {
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap_or_default();
    match v["torch_dtype"].as_str() {
        Some("bfloat16") => DType::BF16,
        Some("float16") => DType::F16,
        _ => DType::F32,
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let (mode, main_type) = match args.kind.as_str() {
        "f32" => (QuantMode::Dense, GgmlDType::F32),
        "f16" => (QuantMode::To(GgmlDType::F16), GgmlDType::F16),
        other => {
            let t = parse_quant_type(other)?;
            (QuantMode::To(t), t)
        }
    };
    if args.out.extension().is_none_or(|e| e != "gguf") {
        bail!(
            "--out {}: give a file name ending in .gguf",
            args.out.display()
        );
    }
    let source = if Path::new(&args.model).exists() {
        PathBuf::from(&args.model)
    } else {
        resolve_hf_cache(&args.model)?
    };
    let dtype = if source.is_dir() {
        source_dtype(&source)
    } else {
        DType::F32
    };
    let start = Instant::now();
    // Dense first (a GGUF source dequantized), then each matrix quantized as it is taken.
    let loaded = load_model(&args.model, dtype, &Device::Cpu)
        .with_context(|| format!("cannot load {}", args.model))?;
    let quantize = match mode {
        QuantMode::To(t) => Some(t),
        _ => None,
    };
    let llama = Llama::from_parts(
        &loaded.config,
        loaded.weights,
        Default::default(),
        quantize,
        dtype,
        &Device::Cpu,
    )?;
    let stored: Vec<String> = llama
        .weight_types()
        .into_iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    eprintln!(
        "quantize: {} -> matrices {} in {:.1} s",
        loaded.source,
        stored.join(", "),
        start.elapsed().as_secs_f64()
    );
    let tokenizer = gguf_write::tokenizer_metadata(&source)?;
    let out = gguf_write::write(&args.out, &llama, tokenizer, main_type)?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "quantize: wrote {} ({:.1} MB) in {:.1} s",
        out.display(),
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
