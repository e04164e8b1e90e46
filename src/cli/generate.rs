//! `instructmol generate`: text generation from a plain prompt with a LLaMA-family model,
//! streamed to stdout as it is produced; timings to stderr.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::infer::{generate, CausalLm, GenerationConfig, LlamaLm, SamplingConfig, StopReason};
use crate::model::llama::Llama;
use crate::model::{load_model, parse_device, parse_dtype, ChatMessage};

/// Arguments of `instructmol generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a .gguf file, a Hugging Face model directory, or a repository id in the local
    /// Hugging Face cache (org/name[@revision]).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: String,
    /// The prompt text.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold (1 keeps every token).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Send the prompt as is, without the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// System message for the chat template (default: the template's own, if any).
    #[arg(long)]
    pub system: Option<String>,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    if args.temperature.is_nan() || args.temperature < 0.0 {
        bail!(
            "--temperature must be >= 0 (0 = greedy), got {}",
            args.temperature
        );
    }
    if args.top_p.is_nan() || args.top_p <= 0.0 || args.top_p > 1.0 {
        bail!("--top-p must be in (0, 1], got {}", args.top_p);
    }
    let dtype = parse_dtype(&args.dtype)?;
    let device = parse_device(&args.device)?;
    let start = Instant::now();
    let loaded = load_model(&args.model, dtype, &device)?;
    let tokenizer = loaded.tokenizer;
    let llama = Llama::from_weights(&loaded.config, loaded.weights, dtype, &device)
        .with_context(|| format!("cannot build the model from {}", loaded.source))?;
    eprintln!(
        "generate: loaded {} in {:.2} s ({} layers, d={}, {:?} on {})",
        loaded.source,
        start.elapsed().as_secs_f64(),
        loaded.config.num_hidden_layers,
        loaded.config.hidden_size,
        dtype,
        args.device
    );

    let ids = if args.raw {
        tokenizer.encode(&args.prompt, true)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", &args.prompt));
        let text = tokenizer.apply_chat_template(&messages, true)?;
        tokenizer.encode(&text, false)?
    };
    if ids.is_empty() {
        bail!("the prompt is empty after tokenization");
    }
    let mut stop_ids = loaded.config.eos_ids();
    stop_ids.extend(tokenizer.eos_id());
    stop_ids.sort_unstable();
    stop_ids.dedup();
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_ids,
    };

    let mut lm = LlamaLm::new(&llama);
    let prompt = lm.embed_ids(&ids)?;
    let mut stream = tokenizer.stream(true);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = generate(&mut lm, &prompt, &cfg, |id| {
        if let Some(piece) = stream.step(&tokenizer, id)? {
            out.write_all(piece.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    })?;
    writeln!(out)?;
    out.flush()?;
    eprintln!(
        "generate: prompt {} tokens in {:.3} s ({:.1} tok/s); generated {} tokens, decode {:.1} tok/s; stopped at {}",
        result.prompt_len,
        result.prompt_time.as_secs_f64(),
        result.prompt_tokens_per_sec(),
        result.tokens.len(),
        result.decode_tokens_per_sec(),
        match result.stop {
            StopReason::Eos => "end of sequence",
            StopReason::Length => "--max-new-tokens",
        }
    );
    Ok(())
}
