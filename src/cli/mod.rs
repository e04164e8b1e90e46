//! Command-line interface: one module per subcommand.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod featurize;
pub mod generate;
pub mod lines;
pub mod quantize;
pub mod serve;
pub mod similarity;
pub mod tokenize;
pub mod train;

use clap::{Parser, Subcommand};

/// InstructMol in Rust: a molecular assistant (graph encoder + LLaMA) and its chemistry tools.
#[derive(Debug, Parser)]
#[command(name = "instructmol", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// SMILES -> InstructMol graph features (JSON lines), as RDKit + the reference featurizer.
    Featurize(featurize::Args),
    /// Convert molecules between SMILES, SELFIES and canonical SMILES (JSON lines).
    Convert(convert::Args),
    /// Tanimoto similarity of SMILES pairs (Morgan, MACCS or RDKit fingerprints), as RDKit.
    Similarity(similarity::Args),
    /// Score a predictions file on a benchmark (ChEBI-20, MoleculeNet, QM9, reactions).
    Eval(eval::Args),
    /// Dataset preparation: `data prepare` writes training JSONL from the raw benchmark files.
    Data(data::Args),
    /// Stage 1: align the projector (GIN and LLM frozen) on molecule-caption pairs.
    Pretrain(train::Args),
    /// Stage 2: LoRA + projector instruction tuning, from a stage-1 run.
    Finetune(train::Args),
    /// Generate text from a prompt with a LLaMA-family model (streamed to stdout).
    Generate(generate::Args),
    /// Multi-turn chat with a trained run about a molecule (stdin -> stdout; `reset`, `quit`).
    Chat(chat::Args),
    /// Open a device (`--device cpu|cuda|cuda:N`) and check it computes what the CPU computes.
    Device(device::Args),
    /// Performance measurements (LoRA training step, ...).
    Bench(bench::Args),
    /// Text -> token ids (or `--decode`: ids -> text) with a model's tokenizer (JSON lines).
    Tokenize(tokenize::Args),
    /// Write a run in another layout (`--format llava-graph`: the official InstructMol files).
    Export(export::Args),
    /// Write a model as a quantized llama GGUF (q8_0, q4_k, q4_0, ...) that llama.cpp loads.
    Quantize(quantize::Args),
    /// Serve trained runs over an OpenAI-compatible HTTP API, with a web page at `/`.
    Serve(serve::Args),
}
