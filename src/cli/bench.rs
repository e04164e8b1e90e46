//! `instructmol bench`: performance measurements of the model stack (results on stdout,
//! progress on stderr). `bench train` times LoRA training steps on a randomly initialised
//! LLaMA; scripts/bench/lora_step.py runs the same step in PyTorch + peft for comparison.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use crate::model::device::{parse_device, parse_dtype};
use crate::model::{Llama, LlamaConfig, LoraConfig};
use crate::rng::Rng;
use crate::train::optim::{AdamW, AdamWConfig};

/// Arguments of `instructmol bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to measure.
    #[command(subcommand)]
    pub what: What,
}

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// LoRA training steps (forward, causal LM loss, backward, AdamW) on random weights.
    Train(TrainArgs),
    /// Prompt and decode throughput of a real model file, as llama.cpp's `llama-bench` measures
    /// them (pp: a prompt of random tokens in one pass; tg: tokens generated one by one, EOS
    /// ignored), at any batch size.
    Generate(GenerateArgs),
    /// How far a quantized model's next-token distributions are from a reference model's on
    /// a text (mean KL divergence and top-1 agreement over the second half of each chunk), as
    /// llama.cpp's `llama-perplexity --kl-divergence` reports them.
    Kl(KlArgs),
    /// Writes a model directory of a preset's shapes with random weights (same values on
    /// every machine for a seed) and another model's tokenizer: a stand-in for a real model
    /// where one cannot be carried (e.g. SmolLM2-shaped training runs on a GPU machine).
    WriteModel(WriteModelArgs),
}

/// Arguments of `instructmol bench kl`.
#[derive(Debug, clap::Args)]
pub struct KlArgs {
    /// The model under test (e.g. a q8_0 GGUF).
    #[arg(long)]
    pub model: String,
    /// The reference model (e.g. the f32 GGUF of the same weights), read dense.
    #[arg(long)]
    pub reference: String,
    /// A UTF-8 text file.
    #[arg(long)]
    pub text: std::path::PathBuf,
    /// Tokens per chunk (each chunk is scored from its start).
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,
    /// Chunks to score (at most).
    #[arg(long, default_value_t = 8)]
    pub chunks: usize,
}

/// Arguments of `instructmol bench generate`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "preset"])))]
pub struct GenerateArgs {
    /// The model (.gguf, Hugging Face directory or cache id).
    #[arg(long)]
    pub model: Option<String>,
    /// Instead of `--model`: a model of these shapes with random weights, made on `--device`
    /// in `--dtype` (no file read).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Prompt tokens per row.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// New tokens per row.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Rows decoded together.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Decoder matrices, as `generate --quantize` (default: as stored; CPU only).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Timed repetitions (the best is reported, as llama-bench's mean of a warm machine).
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
}

/// Arguments of `instructmol bench write-model`.
#[derive(Debug, clap::Args)]
pub struct WriteModelArgs {
    /// Model shapes.
    #[arg(long, value_enum)]
    pub preset: Preset,
    /// The Hugging Face directory to write (`config.json`, `model.safetensors`, and the
    /// tokenizer files of `--tokenizer-from`).
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// A model directory whose tokenizer files (`tokenizer.json`, `tokenizer_config.json`,
    /// `tokenizer.model`, `special_tokens_map.json`, where present) are copied beside the
    /// weights. Its vocabulary must not be larger than the preset's.
    #[arg(long)]
    pub tokenizer_from: std::path::PathBuf,
    /// Weight dtype of the file: f32, bf16 or f16.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Seed of the weights ([`Llama::random`]: the same on every machine).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Model shapes of `bench train`, `bench generate --preset`, `bench write-model` and
/// `device --preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// SmolLM2-135M: d 576, ffn 1536, 30 blocks, 9/3 heads, vocab 49152, tied, theta 1e5.
    #[value(name = "smollm2-135m")]
    Smollm2,
    /// A tiny model (d 64, 2 blocks), for smoke tests.
    Tiny,
    /// Vicuna-7B (LLaMA-7B): d 4096, ffn 11008, 32 blocks, 32/32 heads, vocab 32000, untied,
    /// theta 1e4, RMSNorm eps 1e-6.
    #[value(name = "vicuna-7b")]
    Vicuna7b,
}

impl Preset {
    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Smollm2 => "smollm2-135m",
            Preset::Tiny => "tiny",
            Preset::Vicuna7b => "vicuna-7b",
        }
    }

    /// The preset's hyperparameters.
    pub fn config(self) -> Result<LlamaConfig> {
        Ok(LlamaConfig::from_json(self.config_json())?)
    }

    /// The preset's hyperparameters as a Hugging Face `config.json` body.
    pub fn config_json(self) -> &'static str {
        match self {
            Preset::Smollm2 => {
                r#"{"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":30,
                "num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,
                "rms_norm_eps":1e-5,"rope_theta":100000.0,"tie_word_embeddings":true,
                "max_position_embeddings":8192}"#
            }
            Preset::Tiny => {
                r#"{"hidden_size":64,"intermediate_size":160,"num_hidden_layers":2,
                "num_attention_heads":4,"num_key_value_heads":2,"vocab_size":512,
                "rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true}"#
            }
            Preset::Vicuna7b => {
                r#"{"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":32,
                "num_attention_heads":32,"num_key_value_heads":32,"vocab_size":32000,
                "rms_norm_eps":1e-6,"rope_theta":10000.0,"tie_word_embeddings":false,
                "max_position_embeddings":2048}"#
            }
        }
    }
}

/// A random model of `cfg` on `device` in `dtype` for a benchmark ([`Llama::random_on_device`]):
/// on a GPU drawn by cuRAND in its dtype (a 7B-shaped model never exists on the host), on the
/// CPU by [`Llama::random`] (the values the `scripts/bench/lora_step.py` comparisons used).
fn random_model(cfg: &LlamaConfig, dtype: DType, device: &Device) -> Result<Llama> {
    Ok(Llama::random_on_device(cfg, 0, dtype, device)?)
}

/// Parameters of the base decoder: embeddings, the seven matrices and two norms per block,
/// the final norm, and the output head when untied.
pub fn base_params(cfg: &LlamaConfig) -> usize {
    let d = cfg.hidden_size;
    cfg.vocab_size * d
        + cfg.num_hidden_layers
            * (d * cfg.head_dim() * (2 * cfg.num_attention_heads + 2 * cfg.kv_heads())
                + 3 * d * cfg.intermediate_size
                + 2 * d)
        + d
        + if cfg.tie_word_embeddings {
            0
        } else {
            cfg.vocab_size * d
        }
}

/// FLOPs of one LoRA training step over `batch` rows of `seq` tokens, two ways:
/// `(lora, conventional)`.
///
/// - `lora` (what the step computes): per token, forward `2 N` (every weight once, a
///   multiply-add is 2 FLOPs) and backward `2 N` for the input gradients only (frozen base
///   weights get no weight gradient), plus `6 N_lora` for the adapters (forward, input and
///   weight gradients); attention scores and values add `4 L d T` forward and twice that
///   backward (`T` = keys per query, the full sequence as PaLM's appendix counts it, causal
///   masking not subtracted): `4 N + 6 N_lora + 12 L d T`.
/// - `conventional`: `6 (N + N_lora) + 12 L d T`, the figure full fine-tuning MFU numbers
///   (PaLM, Megatron) use, for comparison with published LoRA MFU figures that quote it.
///
/// Gradient checkpointing's second forward pass is not counted (it is not model work).
pub fn step_flops(cfg: &LlamaConfig, lora_params: usize, batch: usize, seq: usize) -> (f64, f64) {
    let n = base_params(cfg) as f64;
    let nl = lora_params as f64;
    let attn = 12.0 * cfg.num_hidden_layers as f64 * cfg.hidden_size as f64 * seq as f64;
    let tokens = (batch * seq) as f64;
    (
        (4.0 * n + 6.0 * nl + attn) * tokens,
        (6.0 * (n + nl) + attn) * tokens,
    )
}

/// Arguments of `instructmol bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Model shapes.
    #[arg(long, value_enum, default_value = "smollm2-135m")]
    pub preset: Preset,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// LoRA rank (all seven modules are adapted).
    #[arg(long, default_value_t = 64)]
    pub rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// CPU threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weight dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Peak FLOP/s of the device in GFLOP/s, to report model FLOPs utilisation (e.g. 989000
    /// for an H100 SXM's dense bf16 peak).
    #[arg(long)]
    pub peak_gflops: Option<f64>,
    /// Recompute each decoder block in the backward pass (`train.gradient_checkpointing`).
    #[arg(long)]
    pub gradient_checkpointing: bool,
}

/// Runs `instructmol bench`.
pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Train(a) => train(a),
        What::Generate(a) => generate(a),
        What::Kl(a) => kl(a),
        What::WriteModel(a) => write_model(a),
    }
}

fn kl(a: KlArgs) -> Result<()> {
    use crate::model::loader::load_decoder;
    use crate::model::quant::QuantMode;
    let device = candle_core::Device::Cpu;
    let f32t = candle_core::DType::F32;
    let test = load_decoder(&a.model, f32t, &device, QuantMode::AsStored)?;
    let reference = load_decoder(&a.reference, f32t, &device, QuantMode::Dense)?;
    let text = std::fs::read_to_string(&a.text)
        .with_context(|| format!("cannot read {}", a.text.display()))?;
    let ids = test.tokenizer.encode(&text, false)?;
    let (mut kl_sum, mut same, mut n) = (0f64, 0usize, 0usize);
    for chunk in ids.chunks_exact(a.ctx).take(a.chunks) {
        let x = Tensor::from_slice(chunk, (1, a.ctx), &device)?;
        let logp = |m: &Llama| -> Result<Tensor> {
            let logits = m.forward(&m.embed(&x)?, None, false, 0)?.squeeze(0)?;
            Ok(candle_nn::ops::log_softmax(&logits.to_dtype(f32t)?, 1)?)
        };
        // As llama-perplexity: only the second half of each chunk is scored (every scored
        // position has at least ctx/2 tokens of context); the last position predicts nothing.
        let first = a.ctx / 2;
        let scored = a.ctx - 1 - first;
        let (lq, lp) = (
            logp(&test.llama)?.narrow(0, first, scored)?,
            logp(&reference.llama)?.narrow(0, first, scored)?,
        );
        // KL(P_ref || Q_test) per position, summed over the vocabulary.
        let kl = (lp.exp()? * (&lp - &lq)?)?.sum(1)?.to_vec1::<f32>()?;
        let top_q = lq.argmax(1)?.to_vec1::<u32>()?;
        let top_p = lp.argmax(1)?.to_vec1::<u32>()?;
        kl_sum += kl.iter().map(|&v| v as f64).sum::<f64>();
        same += top_q.iter().zip(&top_p).filter(|(a, b)| a == b).count();
        n += scored;
    }
    if n == 0 {
        bail!("{} has fewer than --ctx {} tokens", a.text.display(), a.ctx);
    }
    let out = serde_json::json!({
        "model": test.source,
        "reference": reference.source,
        "positions": n,
        "mean_kld": kl_sum / n as f64,
        "same_top1": same as f64 / n as f64,
    });
    println!("{out}");
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    use crate::model::loader::load_decoder;
    use crate::model::quant::QuantMode;
    if a.batch == 0 || a.prompt_tokens == 0 || a.new_tokens == 0 || a.repeats == 0 {
        bail!("--batch, --prompt-tokens, --new-tokens and --repeats must be positive");
    }
    let dtype = parse_dtype(&a.dtype).context("--dtype")?;
    let device = parse_device(&a.device).context("--device")?;
    let t0 = Instant::now();
    let (model, source, name) = match (&a.model, a.preset) {
        (_, Some(preset)) => {
            if a.quantize.is_some() {
                bail!("--quantize needs --model (a preset's random weights are dense)");
            }
            let m = random_model(&preset.config()?, dtype, &device)?;
            let source = format!("random {} weights made on {}", a.dtype, a.device);
            (m, source, preset.name().to_string())
        }
        (Some(path), None) => {
            let loaded = load_decoder(
                path,
                dtype,
                &device,
                QuantMode::from_option(a.quantize.as_deref())?,
            )?;
            (loaded.llama, loaded.source, path.clone())
        }
        (None, None) => bail!("give --model or --preset"),
    };
    device.synchronize()?;
    let load_s = t0.elapsed().as_secs_f64();
    let m = &model;
    let vocab = m.config().vocab_size as u64;
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..a.batch * a.prompt_tokens)
        .map(|_| (rng.next_u64() % vocab) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (a.batch, a.prompt_tokens), &device)?;
    let (mut best_pp, mut best_tg) = (f64::MAX, f64::MAX);
    let mut gpu_mem = GpuMemory::new(&device);
    for _ in 0..a.repeats {
        let mut cache = m.new_cache(a.batch);
        device.synchronize()?;
        let t = Instant::now();
        let mut logits = m.forward_cached(&m.embed(&ids)?, None, &mut cache)?;
        device.synchronize()?;
        best_pp = best_pp.min(t.elapsed().as_secs_f64());
        gpu_mem.sample();
        let t = Instant::now();
        for _ in 0..a.new_tokens {
            let next = logits
                .argmax(candle_core::D::Minus1)?
                .reshape((a.batch, 1))?;
            logits = m.forward_cached(&m.embed(&next)?, None, &mut cache)?;
        }
        device.synchronize()?;
        best_tg = best_tg.min(t.elapsed().as_secs_f64());
        gpu_mem.sample();
    }
    let rows = a.batch as f64;
    let out = serde_json::json!({
        "model": name,
        "matrices": source,
        "device": a.device,
        "dtype": a.dtype,
        "batch": a.batch,
        "threads": rayon::current_num_threads(),
        "load_s": load_s,
        "pp_tokens": a.prompt_tokens,
        "pp_tok_s": rows * a.prompt_tokens as f64 / best_pp,
        "tg_tokens": a.new_tokens,
        "tg_tok_s": rows * a.new_tokens as f64 / best_tg,
        "peak_rss_mib": peak_rss_mib(),
        "gpu_mem": gpu_mem.report(),
    });
    println!("{out}");
    Ok(())
}

fn write_model(a: WriteModelArgs) -> Result<()> {
    let dtype = parse_dtype(&a.dtype).context("--dtype")?;
    let cfg = a.preset.config()?;
    let from = a.tokenizer_from.display().to_string();
    let tokenizer = crate::model::loader::load_tokenizer(&from)
        .with_context(|| format!("--tokenizer-from {from}: no tokenizer there"))?;
    if tokenizer.vocab_size() > cfg.vocab_size {
        bail!(
            "the tokenizer of {} has {} ids, more than the {} of preset {}",
            a.tokenizer_from.display(),
            tokenizer.vocab_size(),
            cfg.vocab_size,
            a.preset.name()
        );
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let model = Llama::random(&cfg, a.seed, dtype, &Device::Cpu)?;
    let tensors: std::collections::HashMap<String, Tensor> = model
        .named_tensors()
        .into_iter()
        .map(|(k, w)| Ok((k, w.to_dense(dtype)?)))
        .collect::<Result<_>>()?;
    let weights = a.out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights)
        .with_context(|| format!("cannot write {}", weights.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(a.preset.config_json())?;
    config["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
    config["model_type"] = serde_json::json!("llama");
    config["torch_dtype"] = serde_json::json!(match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    });
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        if let Some(v) =
            read_json(&a.tokenizer_from.join("config.json")).and_then(|c| c.get(key).cloned())
        {
            config[key] = v;
        }
    }
    let config_path = a.out.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let mut copied = Vec::new();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
    ] {
        let from = a.tokenizer_from.join(f);
        if from.is_file() {
            std::fs::copy(&from, a.out.join(f))
                .with_context(|| format!("cannot copy {}", from.display()))?;
            copied.push(f);
        }
    }
    let out = serde_json::json!({
        "out": a.out.display().to_string(),
        "preset": a.preset.name(),
        "dtype": a.dtype,
        "seed": a.seed,
        "params": base_params(&cfg),
        "weights_bytes": std::fs::metadata(&weights).map(|m| m.len()).ok(),
        "tokenizer_from": a.tokenizer_from.display().to_string(),
        "tokenizer_files": copied,
    });
    println!("{out}");
    Ok(())
}

/// A JSON file's contents, or None when it is missing or not JSON.
fn read_json(path: &std::path::Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Peak resident memory of this process in MiB (VmHWM), when /proc is available.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn train(a: TrainArgs) -> Result<()> {
    if a.batch == 0 || a.seq < 2 || a.steps == 0 {
        bail!("--batch and --steps must be positive and --seq at least 2");
    }
    if let Some(t) = a.threads {
        if t == 0 {
            bail!("--threads must be positive");
        }
        // Read by candle's and rayon's thread pools on first use, which is below.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let device = parse_device(&a.device).context("--device")?;
    let dtype = parse_dtype(&a.dtype).context("--dtype")?;
    let cfg = a.preset.config()?;
    eprintln!(
        "building a random {} model in {} on {} ...",
        a.preset.name(),
        a.dtype,
        a.device
    );
    let t0 = Instant::now();
    let mut model = random_model(&cfg, dtype, &device)?;
    model.set_gradient_checkpointing(a.gradient_checkpointing);
    let varmap = VarMap::new();
    let lcfg = LoraConfig {
        r: a.rank,
        alpha: a.alpha,
        dropout: a.dropout,
        ..LoraConfig::default()
    };
    model.add_lora(&lcfg, &varmap, 1)?;
    device.synchronize()?;
    let init_s = t0.elapsed().as_secs_f64();
    let params = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("the LoRA variable map is poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = AdamW::new(
        params,
        AdamWConfig {
            max_grad_norm: 1.0,
            ..Default::default()
        },
    );
    let base_params = base_params(&cfg);
    let lora_params: usize = model.lora_vars().iter().map(|v| v.elem_count()).sum();
    let mut rng = Rng::new(42);
    let tokens = a.batch * a.seq;
    let mut times = Vec::with_capacity(a.steps);
    // Seconds per phase summed over the timed steps: forward, loss, backward, optimizer. On a
    // GPU each phase ends with a synchronisation, so that its kernels are counted in it.
    let mut phases = [0f64; 4];
    let mut gpu_mem = GpuMemory::new(&device);
    for step in 0..=a.steps {
        let ids: Vec<u32> = (0..tokens)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        let ids = Tensor::from_vec(ids, (a.batch, a.seq), &device)?;
        device.synchronize()?;
        let start = Instant::now();
        let embeds = model.embed(&ids)?;
        let logits = model.forward(&embeds, None, true, step as u64)?;
        device.synchronize()?;
        let t_fwd = start.elapsed().as_secs_f64();
        let loss = Llama::loss(&logits, &ids)?;
        device.synchronize()?;
        let t_loss = start.elapsed().as_secs_f64();
        gpu_mem.sample();
        let grads = loss.backward()?;
        device.synchronize()?;
        let t_bwd = start.elapsed().as_secs_f64();
        gpu_mem.sample();
        opt.accumulate(&grads)?;
        drop(grads);
        opt.step(1e-4)?;
        let loss = loss.to_scalar::<f32>()?;
        device.synchronize()?;
        let dt = start.elapsed().as_secs_f64();
        eprintln!(
            "step {step}: {dt:.3} s (forward {t_fwd:.3}, loss {:.3}, backward {:.3}, clip+AdamW {:.3}), loss {loss:.4}",
            t_loss - t_fwd,
            t_bwd - t_loss,
            dt - t_bwd
        );
        if step > 0 {
            times.push(dt);
            for (p, v) in phases
                .iter_mut()
                .zip([t_fwd, t_loss - t_fwd, t_bwd - t_loss, dt - t_bwd])
            {
                *p += v;
            }
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let (flops_lora, flops6) = step_flops(&cfg, lora_params, a.batch, a.seq);
    let mut out = serde_json::json!({
        "preset": a.preset.name(),
        "device": a.device,
        "dtype": a.dtype,
        "threads": candle_core::utils::get_num_threads(),
        "batch": a.batch,
        "seq": a.seq,
        "rank": a.rank,
        "gradient_checkpointing": a.gradient_checkpointing,
        "base_params": base_params,
        "lora_params": lora_params,
        "init_s": init_s,
        "steps": times.len(),
        "step_s_mean": mean,
        "step_s_min": min,
        "steps_per_s": 1.0 / mean,
        "tokens_per_s": tokens as f64 / mean,
        "gflops_6n_per_s": flops6 / mean / 1e9,
        "gflops_lora_per_s": flops_lora / mean / 1e9,
        "flops_formula": "lora: (4 N + 6 N_lora + 12 L d T) per token (forward 2N, input gradients 2N, \
                          frozen weights get none); 6n: (6 (N + N_lora) + 12 L d T) per token, the \
                          conventional full-fine-tuning count; T = seq",
        "peak_rss_mib": peak_rss_mib(),
        "gpu_mem": gpu_mem.report(),
        "phase_s_mean": {
            "forward": phases[0] / times.len() as f64,
            "loss": phases[1] / times.len() as f64,
            "backward": phases[2] / times.len() as f64,
            "optimizer": phases[3] / times.len() as f64,
        },
    });
    if let Some(peak) = a.peak_gflops {
        out["peak_gflops"] = serde_json::json!(peak);
        out["mfu_6n"] = serde_json::json!(flops6 / mean / 1e9 / peak);
        out["mfu_lora"] = serde_json::json!(flops_lora / mean / 1e9 / peak);
    }
    println!("{out}");
    Ok(())
}

/// Device memory in use on a GPU, sampled at chosen points (after the forward pass, after
/// the backward pass): candle exposes no peak-allocation counter, so this is the largest of
/// the samples of `total - free` as the driver reports it (`cuMemGetInfo`), which includes
/// the CUDA context and cuBLAS workspaces, and memory the CUDA allocator keeps cached.
struct GpuMemory {
    device: Device,
    max_used: Option<u64>,
    total: Option<u64>,
}

impl GpuMemory {
    fn new(device: &Device) -> Self {
        let mut m = Self {
            device: device.clone(),
            max_used: None,
            total: None,
        };
        m.sample();
        m
    }

    fn sample(&mut self) {
        if let Some((used, total)) = crate::model::device::gpu_memory(&self.device) {
            self.max_used = Some(self.max_used.map_or(used, |m| m.max(used)));
            self.total = Some(total);
        }
    }

    /// `null` on the CPU; else the largest sample and the GPU's size, in MiB.
    fn report(&self) -> serde_json::Value {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        match (self.max_used, self.total) {
            (Some(used), Some(total)) => serde_json::json!({
                "max_sampled_used_mib": mib(used),
                "total_mib": mib(total),
                "how": "largest of total-free (cuMemGetInfo) sampled after forward and backward; \
                        includes the CUDA context and cached allocations",
            }),
            _ => serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_models() {
        // LLaMA-7B / Vicuna-7B as published: 6,738,415,616 parameters.
        let cfg = Preset::Vicuna7b.config().expect("preset parses");
        assert_eq!(base_params(&cfg), 6_738_415_616);
        // SmolLM2-135M: 134,515,008 (tied embeddings counted once).
        let cfg = Preset::Smollm2.config().expect("preset parses");
        assert_eq!(base_params(&cfg), 134_515_008);
        // The tiny preset against the tensors a random model actually holds.
        let cfg = Preset::Tiny.config().expect("preset parses");
        let m = Llama::random(&cfg, 0, DType::F32, &Device::Cpu).expect("random model");
        let held: usize = m
            .named_tensors()
            .iter()
            .map(|(_, w)| {
                w.dims2()
                    .map(|(r, c)| r * c)
                    .unwrap_or_else(|_| cfg.hidden_size)
            })
            .sum();
        assert_eq!(base_params(&cfg), held);
    }

    #[test]
    fn lora_step_flops_count_no_weight_gradients_for_the_base() {
        let cfg = Preset::Vicuna7b.config().expect("preset parses");
        let (lora, six) = step_flops(&cfg, 0, 1, 512);
        // Without adapters the LoRA count is the conventional one less 2N per token.
        let n = base_params(&cfg) as f64;
        assert!((six - lora - 2.0 * n * 512.0).abs() < 1.0, "{six} {lora}");
        // Attention at 512 tokens: 12 * 32 * 4096 * 512 per token, ~12% of 6N.
        let attn = 12.0 * 32.0 * 4096.0 * 512.0 * 512.0;
        assert!((six - 6.0 * n * 512.0 - attn).abs() < 1.0);
    }
}
