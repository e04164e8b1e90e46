//! `instructmol generate`: text generation with a LLaMA-family model. One prompt is streamed
//! to stdout as it is produced (timings to stderr); `--input FILE.jsonl` answers every row of
//! a file in batches (`--output`, progress bar on stderr). With `--run` the trained molecular
//! assistant answers about molecules.

use crate::model::quant::QuantMode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use crate::data::prompts::DESCRIPTION_QUESTIONS;
use crate::infer::assistant::Assistant;
use crate::infer::rows::{generate_rows, read_rows, BatchOptions, InputRow, OutputRow, Progress};
use crate::infer::{
    generate, Generation, GenerationConfig, InferError, Prompt, SamplingConfig, StopReason,
    YesNoIds,
};
use crate::model::llama::Llama;
use crate::model::loader::load_decoder;
use crate::model::{parse_device, parse_dtype, ChatMessage, Decode, ModelTokenizer};

/// The embedded default model, fetched by scripts/get_smollm2.sh.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The reference's sampling temperature for the molecular assistant.
pub const RUN_TEMPERATURE: f64 = 0.2;

/// The molecular assistant's penalties when its answers are read: `generate --run --smiles`
/// and `chat`. A repetition penalty of 1.1 ends the loops of a lightly trained assistant ("a
/// molecule of the structure of a molecule of ...") and its answers still end on their own;
/// 1.2 already rambles (the prompt's own end-of-turn tokens count as seen, as in Hugging Face,
/// so ending gets harder). Answers that are scored (`generate --input`, `eval --run`) keep
/// [`Penalties::OFF`], as the reference evaluation decodes.
pub const RUN_PENALTIES: Penalties = Penalties {
    repetition: 1.1,
    ..Penalties::OFF
};

/// Arguments of `instructmol generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model: a .gguf file, a Hugging Face model directory, or a repository id in the local
    /// Hugging Face cache (org/name[@revision]).
    #[arg(long)]
    pub model: Option<String>,
    /// MoleculeSTM's `molecule_model.pth`, for a --run folder of the official InstructMol
    /// code that holds no graph-encoder weights.
    #[arg(long)]
    pub graph_encoder: Option<PathBuf>,
    /// The prompt text (with --run: the question about the molecule; default: a description request).
    #[arg(long, conflicts_with = "input")]
    pub prompt: Option<String>,
    /// A trained run directory (or checkpoint): answer about --smiles (or the rows of --input)
    /// with its GIN, projector and LoRA on the run's base model (--model, if given, replaces
    /// the base model's path).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// The molecule (SMILES) to ask about; needs --run.
    #[arg(long, requires = "run", conflicts_with = "input")]
    pub smiles: Option<String>,
    /// Questions file (JSON lines): records as `data prepare` writes them (`id`, `smiles`,
    /// `conversations`; the question is the first human turn, the reference the first gpt
    /// turn), or `{"id", "prompt"}` objects for a plain model.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Answers file for --input (one JSON per line, input order: id, smiles, prompt,
    /// prediction, reference [, prob_yes] [, error]); `-` or absent: stdout.
    #[arg(long, requires = "input")]
    pub output: Option<PathBuf>,
    /// Rows decoded together with --input.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Answer only the first N rows of --input.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With --input: add `prob_yes`, the probability of "Yes" against "No" at the first answer
    /// token, to every row.
    #[arg(long, requires = "input")]
    pub prob_yes: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding. Default: 0.2 with --run (the reference's),
    /// 0 for a plain model.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold (1 keeps every token).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampler (row i of --input uses seed + i, whatever the batch size).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Penalties and stop strings.
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Keep generating past end tokens until --max-new-tokens (for speed measurements).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Send the prompt as is, without the model's chat template (plain model only).
    #[arg(long)]
    pub raw: bool,
    /// System message for the chat template (plain model; default: the template's own, if any).
    #[arg(long)]
    pub system: Option<String>,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Decoder matrices: quantize at load to q8_0, q4_k, q4_0, q4_1, q5_0, q5_1, q5_k, q6_k,
    /// q3_k or q2_k, or `none` to dequantize a GGUF. Default: as the file stores them (a GGUF
    /// stays quantized, on the CPU; LoRA adapters stay unmerged on quantized matrices).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Penalties against repeats and stop strings: flags shared by `generate`, `chat` and
/// `eval --run` (each command has its own defaults, see [`Penalties`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DecodingArgs {
    /// Repetition penalty (CTRL, as Hugging Face's): the logit of every token already in the
    /// prompt's text or the answer is divided by it when positive, multiplied when negative;
    /// 1 = off, > 1 discourages repeats. Default: 1.1 for `generate --run --smiles` and `chat`,
    /// 1 for `generate --input`, a plain model and `eval --run` (the reference's decoding).
    #[arg(long, allow_negative_numbers = true)]
    pub repetition_penalty: Option<f64>,
    /// Frequency penalty (OpenAI's): subtracted from a token's logit once per time it was
    /// generated; in [-2, 2], 0 = off.
    #[arg(long, allow_negative_numbers = true)]
    pub frequency_penalty: Option<f64>,
    /// Presence penalty (OpenAI's): subtracted from the logit of every token generated at
    /// least once; in [-2, 2], 0 = off.
    #[arg(long, allow_negative_numbers = true)]
    pub presence_penalty: Option<f64>,
    /// End the answer where this text appears; the answer is the text before it (repeat the
    /// flag for several).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
}

/// Penalty values: a command's defaults, or what the flags chose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// See [`SamplingConfig::repetition_penalty`].
    pub repetition: f64,
    /// See [`SamplingConfig::frequency_penalty`].
    pub frequency: f64,
    /// See [`SamplingConfig::presence_penalty`].
    pub presence: f64,
}

impl Penalties {
    /// All off: plain sampling, as the reference evaluation decodes (`eval --run`, a plain
    /// model's `generate`).
    pub const OFF: Penalties = Penalties {
        repetition: 1.0,
        frequency: 0.0,
        presence: 0.0,
    };
}

impl DecodingArgs {
    /// The sampling settings from these flags over `defaults`; every flag is checked here, the
    /// stop strings too, so that a bad value is refused before a model loads (the error names
    /// the flag).
    pub fn sampling(
        &self,
        temperature: f64,
        top_p: f64,
        seed: u64,
        defaults: Penalties,
    ) -> Result<SamplingConfig> {
        let cfg = SamplingConfig {
            temperature,
            top_p,
            seed,
            repetition_penalty: self.repetition_penalty.unwrap_or(defaults.repetition),
            frequency_penalty: self.frequency_penalty.unwrap_or(defaults.frequency),
            presence_penalty: self.presence_penalty.unwrap_or(defaults.presence),
        };
        if let Err(e) = cfg.check() {
            bail!(
                "--{} must be {}, got {}",
                e.name.replace('_', "-"),
                e.range,
                e.value
            );
        }
        if self.stop.iter().any(String::is_empty) {
            bail!("--stop needs a non-empty text");
        }
        Ok(cfg)
    }
}

/// A loaded plain model (no molecule path).
struct PlainModel {
    llama: Llama,
    tokenizer: ModelTokenizer,
    stop_ids: Vec<u32>,
}

impl PlainModel {
    /// The prompt of `text` for this model.
    fn prompt(&self, text: &str, args: &Args) -> Result<Prompt> {
        let ids = plain_ids(&self.tokenizer, text, args.raw, args.system.as_deref())?;
        Ok(Prompt::from_ids(&self.llama, ids)?)
    }
}

fn load_plain(args: &Args, dtype: DType, device: &Device) -> Result<PlainModel> {
    let start = Instant::now();
    let model = args.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let quantize = QuantMode::from_option(args.quantize.as_deref())?;
    let loaded = load_decoder(model, dtype, device, quantize)?;
    let cfg = loaded.llama.config();
    eprintln!(
        "generate: loaded {} in {:.2} s ({} layers, d={}, {:?} on {})",
        loaded.source,
        start.elapsed().as_secs_f64(),
        cfg.num_hidden_layers,
        cfg.hidden_size,
        dtype,
        args.device
    );
    let mut stop_ids = cfg.eos_ids();
    stop_ids.extend(loaded.tokenizer.eos_id());
    stop_ids.sort_unstable();
    stop_ids.dedup();
    Ok(PlainModel {
        llama: loaded.llama,
        tokenizer: loaded.tokenizer,
        stop_ids,
    })
}

/// Token ids of a plain prompt: the chat template around it unless `raw`.
fn plain_ids(
    tokenizer: &ModelTokenizer,
    prompt: &str,
    raw: bool,
    system: Option<&str>,
) -> Result<Vec<u32>> {
    let ids = if raw {
        tokenizer.encode(prompt, true)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", prompt));
        let text = tokenizer.apply_chat_template(&messages, true)?;
        tokenizer.encode(&text, false)?
    };
    if ids.is_empty() {
        bail!("the prompt is empty after tokenization");
    }
    Ok(ids)
}

fn load_assistant(run: &Path, args: &Args, dtype: DType, device: &Device) -> Result<Assistant> {
    let start = Instant::now();
    let assistant = Assistant::from_run(
        run,
        args.model.as_deref(),
        args.graph_encoder.as_deref(),
        (
            dtype,
            device,
            QuantMode::from_option(args.quantize.as_deref())?,
        ),
    )?;
    eprintln!(
        "generate: loaded {} on {} in {:.2} s",
        assistant.checkpoint.display(),
        assistant.base,
        start.elapsed().as_secs_f64()
    );
    Ok(assistant)
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    // Answers to read get the assistant's penalties; answers to score (--input) do not.
    let (default_temperature, penalties) = match (&args.run, &args.input) {
        (Some(_), None) => (RUN_TEMPERATURE, RUN_PENALTIES),
        (Some(_), Some(_)) => (RUN_TEMPERATURE, Penalties::OFF),
        (None, _) => (0.0, Penalties::OFF),
    };
    let sampling = args.decoding.sampling(
        args.temperature.unwrap_or(default_temperature),
        args.top_p,
        args.seed,
        penalties,
    )?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let dtype = parse_dtype(&args.dtype)?;
    let device = parse_device(&args.device)?;
    if let Some(input) = &args.input {
        return run_file(&args, input, sampling, dtype, &device);
    }
    if let Some(run) = &args.run {
        let Some(smiles) = &args.smiles else {
            bail!(
                "--run needs --smiles S (one molecule) or --input FILE.jsonl (a file of questions)"
            );
        };
        let assistant = load_assistant(run, &args, dtype, &device)?;
        let question = args.prompt.as_deref().unwrap_or(DESCRIPTION_QUESTIONS[0]);
        let prompt = assistant.prompt(smiles, question).map_err(|e| match e {
            InferError::InvalidSmiles(m) => anyhow::anyhow!("--smiles: {m}"),
            other => other.into(),
        })?;
        let cfg = generation_config(&args, sampling, assistant.stop_ids());
        return stream(&assistant.model, &assistant.tokenizer, &prompt, &cfg);
    }
    let Some(prompt_text) = args.prompt.as_deref() else {
        bail!("give --prompt TEXT, --input FILE.jsonl, or --run DIR --smiles S to ask about a molecule");
    };
    let plain = load_plain(&args, dtype, &device)?;
    let prompt = plain.prompt(prompt_text, &args)?;
    let cfg = generation_config(&args, sampling, plain.stop_ids.clone());
    stream(&plain.llama, &plain.tokenizer, &prompt, &cfg)
}

/// The decoding settings of the flags, for a model whose answers end at `end_ids`.
fn generation_config(args: &Args, sampling: SamplingConfig, end_ids: Vec<u32>) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_ids: stop_ids(args, end_ids),
        stop_strings: args.decoding.stop.clone(),
        logprobs: None,
    }
}

fn stop_ids(args: &Args, ids: Vec<u32>) -> Vec<u32> {
    if args.ignore_eos {
        Vec::new()
    } else {
        ids
    }
}

/// The batch settings of `--input` for a model with this tokenizer and these end ids.
fn batch_options(
    args: &Args,
    sampling: SamplingConfig,
    tokenizer: &ModelTokenizer,
    end_ids: Vec<u32>,
) -> Result<BatchOptions> {
    let yes_no = if args.prob_yes {
        Some(YesNoIds::from_tokenizer(tokenizer)?)
    } else {
        None
    };
    Ok(BatchOptions {
        generation: generation_config(args, sampling, end_ids),
        batch_size: args.batch_size,
        yes_no,
    })
}

/// `--input`: answers every row of the file, in batches.
fn run_file(
    args: &Args,
    input: &Path,
    sampling: SamplingConfig,
    dtype: DType,
    device: &Device,
) -> Result<()> {
    let mut rows = read_rows(input)?;
    if let Some(n) = args.limit {
        rows.truncate(n);
    }
    let out = match &args.run {
        Some(run) => {
            let assistant = load_assistant(run, args, dtype, device)?;
            let options =
                batch_options(args, sampling, &assistant.tokenizer, assistant.stop_ids())?;
            answer_rows(
                &assistant.model,
                &assistant.tokenizer,
                &rows,
                &options,
                |row| assistant.row_prompt(row),
            )?
        }
        None => {
            let plain = load_plain(args, dtype, device)?;
            let options = batch_options(args, sampling, &plain.tokenizer, plain.stop_ids.clone())?;
            answer_rows(&plain.llama, &plain.tokenizer, &rows, &options, |row| {
                plain
                    .prompt(&row.question, args)
                    .map_err(|e| InferError::Input(format!("line {}: {e}", row.line)))
            })?
        }
    };
    write_rows(args.output.as_deref(), &out)
}

/// Generates every row with a progress bar on stderr, then reports refused rows and speed.
pub fn answer_rows<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    rows: &[InputRow],
    options: &BatchOptions,
    prompt: impl Fn(&InputRow) -> crate::infer::Result<Prompt>,
) -> Result<Vec<OutputRow>> {
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} rows  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let mut last = Progress::default();
    let out = generate_rows(model, tokenizer, rows, options, prompt, |p| {
        if p.rows_done != last.rows_done {
            bar.set_position(p.rows_done as u64);
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{} tokens, {:.1} tok/s",
            p.tokens,
            p.tokens as f64 / secs
        ));
        last = p;
    })?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let bad: Vec<&OutputRow> = out.iter().filter(|r| r.error.is_some()).collect();
    eprintln!(
        "generate: {} rows in {:.2} s, {} tokens generated ({:.1} tok/s), batch size {}",
        out.len(),
        secs,
        last.tokens,
        last.tokens as f64 / secs.max(1e-9),
        options.batch_size
    );
    if !bad.is_empty() {
        let lines: Vec<String> = bad.iter().take(5).map(|r| r.line.to_string()).collect();
        eprintln!(
            "generate: {} rows not answered (written with an empty prediction and their \"error\"), lines {}{}",
            bad.len(),
            lines.join(", "),
            if bad.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(out)
}

/// Writes output rows as JSON lines to `path` (stdout for `-` or none; a file is written under
/// a temporary name and renamed when complete).
pub fn write_rows(path: Option<&Path>, rows: &[OutputRow]) -> Result<()> {
    let mut out = super::lines::Output::create(path.unwrap_or(Path::new("-")))?;
    for r in rows {
        if !out.write_line(&serde_json::to_string(r)?)? {
            return Ok(());
        }
    }
    out.commit()?;
    Ok(())
}

/// Generates from `prompt`, writing the answer's text to `out` as the decode loop releases it
/// (the text held back for stop strings comes at the end); returns the generation.
pub fn stream_answer<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    prompt: &Prompt,
    cfg: &GenerationConfig,
    out: &mut impl Write,
) -> Result<Generation> {
    let mut shown = 0;
    let generation = generate(model, tokenizer, prompt, cfg, |token| {
        out.write_all(token.text.as_bytes())?;
        out.flush()?;
        shown += token.text.len();
        Ok(())
    })?;
    out.write_all(generation.text.get(shown..).unwrap_or_default().as_bytes())?;
    out.flush()?;
    Ok(generation)
}

/// Runs the decode loop from `prompt`, streaming text to stdout, timings to stderr.
fn stream<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    prompt: &Prompt,
    cfg: &GenerationConfig,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = stream_answer(model, tokenizer, prompt, cfg, &mut out)?;
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
            StopReason::StopString => "a --stop text",
            StopReason::Length => "--max-new-tokens",
            StopReason::Context => "the model's context length",
        }
    );
    Ok(())
}
