//! `instructmol chat`: a multi-turn conversation with the trained molecular assistant about
//! one molecule. Questions come one per line on stdin; each answer is streamed to stdout.
//! The conversation so far is rendered with the run's template before every new question
//! (the molecule's graph tokens stay in the first turn). `reset` clears the history,
//! `reset SMILES` switches to another molecule, `quit` or end of input ends. With `--json`
//! each answer is one JSON line (`turn`, `smiles`, `question`, `answer`) instead of streamed
//! text, for scripts (answers may span several lines).

use crate::model::quant::QuantMode;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::chem::GraphFeatures;
use crate::data::record::{Turn, IMAGE_TOKEN};
use crate::infer::assistant::Assistant;
use crate::infer::{generate, GenerationConfig, InferError, SamplingConfig};

use super::generate::{stream_answer, DecodingArgs, RUN_PENALTIES};
use crate::model::{parse_device, parse_dtype};

/// Arguments of `instructmol chat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trained run directory (or checkpoint).
    #[arg(long)]
    pub run: PathBuf,
    /// The molecule (SMILES) to talk about.
    #[arg(long)]
    pub smiles: String,
    /// Replaces the run's base model path.
    #[arg(long)]
    pub model: Option<String>,
    /// MoleculeSTM's `molecule_model.pth`, for a --run folder of the official InstructMol
    /// code that holds no graph-encoder weights.
    #[arg(long)]
    pub graph_encoder: Option<PathBuf>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Sampling temperature (the reference's 0.2); 0 is greedy decoding.
    #[arg(long, default_value_t = super::generate::RUN_TEMPERATURE)]
    pub temperature: f64,
    /// Nucleus sampling threshold (1 keeps every token).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampler (turn i of a conversation uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Penalties and stop strings.
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Decoder matrices: quantize at load to q8_0, q4_k, q4_0, q4_1, q5_0, q5_1, q5_k, q6_k,
    /// q3_k or q2_k, or `none` to dequantize a GGUF. Default: as the file stores them (a GGUF
    /// stays quantized, on the CPU; LoRA adapters stay unmerged on quantized matrices).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON line per answer (`turn`, `smiles`, `question`, `answer`) instead of
    /// streaming the text.
    #[arg(long)]
    pub json: bool,
}

/// The molecule being discussed and the conversation so far.
struct Session {
    smiles: String,
    molecule: GraphFeatures,
    history: Vec<Turn>,
}

fn molecule(smiles: &str) -> Result<GraphFeatures> {
    Assistant::molecule(smiles).map_err(|e| match e {
        InferError::InvalidSmiles(m) => anyhow::anyhow!("invalid SMILES {smiles}: {m}"),
        other => other.into(),
    })
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let sampling =
        args.decoding
            .sampling(args.temperature, args.top_p, args.seed, RUN_PENALTIES)?;
    let stop_strings = args.decoding.stop.clone();
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let start = Instant::now();
    let assistant = Assistant::from_run(
        &args.run,
        args.model.as_deref(),
        args.graph_encoder.as_deref(),
        (
            dtype,
            &device,
            QuantMode::from_option(args.quantize.as_deref())?,
        ),
    )?;
    let interactive = std::io::stdin().is_terminal();
    eprintln!(
        "chat: loaded {} in {:.2} s; one question per line, `reset` clears the conversation, \
         `reset SMILES` switches molecule, `quit` ends",
        assistant.checkpoint.display(),
        start.elapsed().as_secs_f64()
    );
    let mut session = Session {
        molecule: molecule(&args.smiles)?,
        smiles: args.smiles.clone(),
        history: Vec::new(),
    };
    let stop_ids = assistant.stop_ids();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let stdout = std::io::stdout();
    loop {
        if interactive {
            eprint!("[{}] > ", session.smiles);
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let question = line.trim();
        if question.is_empty() {
            continue;
        }
        if question == "quit" || question == "exit" {
            break;
        }
        if question == "reset" || question.starts_with("reset ") {
            let smiles = question["reset".len()..].trim();
            if !smiles.is_empty() {
                match molecule(smiles) {
                    Ok(m) => {
                        session.molecule = m;
                        session.smiles = smiles.to_string();
                    }
                    Err(e) => {
                        eprintln!("chat: {e}; still on {}", session.smiles);
                        continue;
                    }
                }
            }
            session.history.clear();
            eprintln!("chat: new conversation about {}", session.smiles);
            continue;
        }
        let prompt = assistant.followup(&session.molecule, &session.history, question)?;
        let turn = (session.history.len() / 2) as u64;
        let cfg = GenerationConfig {
            max_new_tokens: args.max_new_tokens,
            sampling: SamplingConfig {
                seed: sampling.seed.wrapping_add(turn),
                ..sampling
            },
            stop_ids: stop_ids.clone(),
            stop_strings: stop_strings.clone(),
            logprobs: None,
        };
        let (model, tokenizer) = (&assistant.model, &assistant.tokenizer);
        let mut out = stdout.lock();
        let result = if args.json {
            generate(model, tokenizer, &prompt, &cfg, |_| Ok(()))?
        } else {
            stream_answer(model, tokenizer, &prompt, &cfg, &mut out)?
        };
        let answer = result.text.trim().to_string();
        if args.json {
            let line = serde_json::json!({
                "turn": turn + 1,
                "smiles": session.smiles,
                "question": question,
                "answer": answer,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out)?;
        }
        out.flush()?;
        let asked = if session.history.is_empty() {
            format!("{IMAGE_TOKEN}\n{question}")
        } else {
            question.to_string()
        };
        session.history.push(Turn::human(asked));
        session.history.push(Turn::gpt(answer));
    }
    Ok(())
}
