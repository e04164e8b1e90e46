//! `instructmol generate`: text generation from a plain prompt with a LLaMA-family model,
//! streamed to stdout as it is produced; timings to stderr.

use std::io::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::data::prompts::DESCRIPTION_QUESTIONS;
use crate::infer::assistant::Assistant;
use crate::infer::{generate, CausalLm, GenerationConfig, LlamaLm, SamplingConfig, StopReason};
use crate::model::llama::Llama;
use crate::model::{load_model, parse_device, parse_dtype, ChatMessage, ModelTokenizer};

/// The embedded default model, fetched by scripts/get_smollm2.sh.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Arguments of `instructmol generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a .gguf file, a Hugging Face model directory, or a repository id in the local
    /// Hugging Face cache (org/name[@revision]).
    #[arg(long)]
    pub model: Option<String>,
    /// The prompt text (with --run: the question about the molecule; default: a description request).
    #[arg(long)]
    pub prompt: Option<String>,
    /// A trained run directory (or checkpoint): answer about --smiles with its GIN, projector
    /// and LoRA on the run's base model (--model, if given, replaces the base model's path).
    #[arg(long, requires = "smiles")]
    pub run: Option<std::path::PathBuf>,
    /// The molecule (SMILES) to ask about; needs --run.
    #[arg(long, requires = "run")]
    pub smiles: Option<String>,
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
    if let (Some(run), Some(smiles)) = (&args.run, &args.smiles) {
        let assistant = Assistant::from_run(run, args.model.as_deref(), dtype, &device)?;
        eprintln!(
            "generate: loaded {} in {:.2} s",
            assistant.checkpoint.display(),
            start.elapsed().as_secs_f64()
        );
        let question = args.prompt.as_deref().unwrap_or(DESCRIPTION_QUESTIONS[0]);
        let prompt = assistant.prompt_embeds(smiles, question)?;
        let mut lm = LlamaLm::new(&assistant.llama);
        return stream(
            &mut lm,
            &prompt,
            &assistant.tokenizer,
            assistant.stop_ids(),
            &args,
        );
    }
    let model = args.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let Some(prompt_text) = args.prompt.as_deref() else {
        bail!("give --prompt TEXT (or --run DIR --smiles S to ask about a molecule)");
    };
    let loaded = load_model(model, dtype, &device)?;
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
        tokenizer.encode(prompt_text, true)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", prompt_text));
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
    let mut lm = LlamaLm::new(&llama);
    let prompt = lm.embed_ids(&ids)?;
    stream(&mut lm, &prompt, &tokenizer, stop_ids, &args)
}

/// Runs the decode loop from `prompt` embeddings, streaming text to stdout, timings to stderr.
fn stream(
    lm: &mut LlamaLm,
    prompt: &candle_core::Tensor,
    tokenizer: &ModelTokenizer,
    stop_ids: Vec<u32>,
    args: &Args,
) -> Result<()> {
    let cfg = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_ids,
    };

    let mut stream = tokenizer.stream(true);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = generate(lm, prompt, &cfg, |id| {
        if let Some(piece) = stream.step(tokenizer, id)? {
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
