//! The networks of InstructMol on candle and the loading of their weights: the MoleculeSTM GIN
//! graph encoder, the projector, the LLaMA decoder with LoRA adapters and its tokenizer, and
//! [`InstructMol`], the one type that owns all three networks.
//!
//! The GIN and the projector run in f32 on the CPU; the decoder runs in f32, bf16 or f16 on
//! the CPU or a CUDA device. Each network can be built frozen (plain tensors, no gradient
//! bookkeeping) or trainable (parameters registered as [`candle_nn::VarMap`] variables so that
//! `loss.backward()` reaches them).

pub mod config;
pub mod device;
pub mod gguf_write;
pub mod gin;
pub mod graph_batch;
pub mod instructmol;
pub mod llama;
pub mod llava_graph;
pub mod loader;
pub mod lora;
pub mod ops;
pub mod quant;
pub mod sentencepiece;
pub mod tokenizer;
pub mod torch_save;
pub mod untrusted;
pub mod weights;

pub use config::LlamaConfig;
pub use device::{parse_device, parse_dtype, DeviceError, DeviceSpec};
pub use gin::{Gin, GinConfig};
pub use graph_batch::{GraphBatch, GraphInput};
pub use instructmol::{
    Decode, InstructMol, LoraInit, MolPrompt, Projector, ProjectorKind, PromptBatch, TrainInit,
};
pub use llama::{KvCache, Llama, IGNORE_INDEX};
pub use loader::{load_model, load_model_quantized, LoadError, LoadedModel};
pub use lora::{LoraConfig, LORA_MODULES};
use std::path::PathBuf;
pub use tokenizer::{ChatMessage, ModelTokenizer, TextStream, TokenizerError};
pub use weights::Weights;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A weight file could not be opened or parsed (missing, truncated, corrupt, unknown format).
    #[error("cannot read weights from {path}: {reason}")]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A weight file could not be written.
    #[error("cannot write weights to {path}: {reason}")]
    Write {
        /// The file that was written.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A tensor the network needs is absent from the weights.
    #[error("missing weight `{0}`")]
    MissingKey(String),
    /// A tensor has another shape than the network needs.
    #[error("weight `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor's name.
        key: String,
        /// The shape the network needs.
        expected: Vec<usize>,
        /// The shape found in the weights.
        found: Vec<usize>,
    },
    /// The weights do not describe a network this crate can build.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A graph handed to the encoder is malformed.
    #[error("graph {graph}: {reason}")]
    Graph {
        /// Index of the graph within the batch.
        graph: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A feature value has no row in its embedding table.
    #[error(
        "{what} feature column {column} holds {value}, but its embedding table has {size} rows"
    )]
    FeatureRange {
        /// `"atom"` or `"bond"`.
        what: &'static str,
        /// Column of the feature matrix.
        column: usize,
        /// The offending (largest) value.
        value: u32,
        /// Number of rows of the table.
        size: usize,
    },
    /// An error raised by candle while computing.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the model layer.
pub type Result<T> = std::result::Result<T, ModelError>;
