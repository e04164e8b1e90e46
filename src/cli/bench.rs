//! `instructmol bench`: performance measurements of the model stack (results on stdout,
//! progress on stderr). `bench train` times LoRA training steps on a randomly initialised
//! LLaMA; scripts/bench/lora_step.py runs the same step in PyTorch + peft for comparison.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
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
pub struct GenerateArgs {
    /// The model (.gguf, Hugging Face directory or cache id).
    #[arg(long)]
    pub model: String,
    /// Prompt tokens per row.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// New tokens per row.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Rows decoded together.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Decoder matrices, as `generate --quantize` (default: as stored).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Timed repetitions (the best is reported, as llama-bench's mean of a warm machine).
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
}

/// Model shapes of `bench train`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Preset {
    /// SmolLM2-135M: d 576, ffn 1536, 30 blocks, 9/3 heads, vocab 49152, tied, theta 1e5.
    #[value(name = "smollm2-135m")]
    Smollm2,
    /// A tiny model (d 64, 2 blocks), for smoke tests.
    Tiny,
}

impl Preset {
    fn config(self) -> Result<LlamaConfig> {
        let text = match self {
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
        };
        Ok(LlamaConfig::from_json(text)?)
    }
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
    /// Peak FLOP/s of the device in GFLOP/s, to report model FLOPs utilisation.
    #[arg(long)]
    pub peak_gflops: Option<f64>,
}

/// Runs `instructmol bench`.
pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Train(a) => train(a),
        What::Generate(a) => generate(a),
        What::Kl(a) => kl(a),
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
    let dtype = parse_dtype(&a.dtype)?;
    let device = candle_core::Device::Cpu;
    let t0 = Instant::now();
    let loaded = load_decoder(
        &a.model,
        dtype,
        &device,
        QuantMode::from_option(a.quantize.as_deref())?,
    )?;
    let load_s = t0.elapsed().as_secs_f64();
    let m = &loaded.llama;
    let vocab = m.config().vocab_size as u64;
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..a.batch * a.prompt_tokens)
        .map(|_| (rng.next_u64() % vocab) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (a.batch, a.prompt_tokens), &device)?;
    let (mut best_pp, mut best_tg) = (f64::MAX, f64::MAX);
    for _ in 0..a.repeats {
        let mut cache = m.new_cache(a.batch);
        let t = Instant::now();
        let mut logits = m.forward_cached(&m.embed(&ids)?, None, &mut cache)?;
        best_pp = best_pp.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..a.new_tokens {
            let next = logits
                .argmax(candle_core::D::Minus1)?
                .reshape((a.batch, 1))?;
            logits = m.forward_cached(&m.embed(&next)?, None, &mut cache)?;
        }
        best_tg = best_tg.min(t.elapsed().as_secs_f64());
    }
    let rows = a.batch as f64;
    let out = serde_json::json!({
        "model": a.model,
        "matrices": loaded.source,
        "batch": a.batch,
        "threads": rayon::current_num_threads(),
        "load_s": load_s,
        "pp_tokens": a.prompt_tokens,
        "pp_tok_s": rows * a.prompt_tokens as f64 / best_pp,
        "tg_tokens": a.new_tokens,
        "tg_tok_s": rows * a.new_tokens as f64 / best_tg,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{out}");
    Ok(())
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
    eprintln!("building a random {:?} model ...", a.preset);
    let mut model = Llama::random(&cfg, 0, dtype, &device)?;
    let varmap = VarMap::new();
    let lcfg = LoraConfig {
        r: a.rank,
        alpha: a.alpha,
        dropout: a.dropout,
        ..LoraConfig::default()
    };
    model.add_lora(&lcfg, &varmap, 1)?;
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
    let d = cfg.hidden_size;
    let base_params = cfg.vocab_size * d
        + cfg.num_hidden_layers
            * (d * cfg.head_dim() * (2 * cfg.num_attention_heads + 2 * cfg.kv_heads())
                + 3 * d * cfg.intermediate_size
                + 2 * d)
        + d
        + if cfg.tie_word_embeddings {
            0
        } else {
            cfg.vocab_size * d
        };
    let lora_params: usize = model.lora_vars().iter().map(|v| v.elem_count()).sum();
    let mut rng = Rng::new(42);
    let tokens = a.batch * a.seq;
    let mut times = Vec::with_capacity(a.steps);
    // Seconds per phase summed over the timed steps: forward, loss, backward, optimizer.
    let mut phases = [0f64; 4];
    for step in 0..=a.steps {
        let ids: Vec<u32> = (0..tokens)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        let ids = Tensor::from_vec(ids, (a.batch, a.seq), &device)?;
        let start = Instant::now();
        let embeds = model.embed(&ids)?;
        let logits = model.forward(&embeds, None, true, step as u64)?;
        let t_fwd = start.elapsed().as_secs_f64();
        let loss = Llama::loss(&logits, &ids)?;
        let t_loss = start.elapsed().as_secs_f64();
        let grads = loss.backward()?;
        let t_bwd = start.elapsed().as_secs_f64();
        opt.accumulate(&grads)?;
        opt.step(1e-4)?;
        let loss = loss.to_scalar::<f32>()?;
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
    // Forward 2N, input gradients 2N per token; frozen weights get no weight gradient. The
    // conventional 6N figure is reported for comparison with other MFU numbers.
    let flops6 = 6.0 * (base_params + lora_params) as f64 * tokens as f64;
    let mut out = serde_json::json!({
        "preset": format!("{:?}", a.preset).to_lowercase(),
        "device": a.device,
        "dtype": a.dtype,
        "threads": candle_core::utils::get_num_threads(),
        "batch": a.batch,
        "seq": a.seq,
        "rank": a.rank,
        "base_params": base_params,
        "lora_params": lora_params,
        "steps": times.len(),
        "step_s_mean": mean,
        "step_s_min": min,
        "steps_per_s": 1.0 / mean,
        "tokens_per_s": tokens as f64 / mean,
        "gflops_6n_per_s": flops6 / mean / 1e9,
        "peak_rss_mib": peak_rss_mib(),
        "phase_s_mean": {
            "forward": phases[0] / times.len() as f64,
            "loss": phases[1] / times.len() as f64,
            "backward": phases[2] / times.len() as f64,
            "optimizer": phases[3] / times.len() as f64,
        },
    });
    if let Some(peak) = a.peak_gflops {
        out["mfu_6n"] = serde_json::json!(flops6 / mean / 1e9 / peak);
    }
    println!("{out}");
    Ok(())
}
