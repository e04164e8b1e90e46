//! Inference: token selection ([`sampling`]) and the streaming decode loop ([`generate`]) over
//! any model that implements [`CausalLm`].

pub mod assistant;
pub mod generate;
pub mod sampling;

pub use generate::{generate, CausalLm, Generation, GenerationConfig, LlamaLm, StopReason};
pub use sampling::{Sampler, SamplingConfig};

use crate::model::{ModelError, TokenizerError};

/// Errors of the inference layer.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokenizing or decoding failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The input cannot be generated from.
    #[error("{0}")]
    Input(String),
    /// Writing the streamed output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Result alias of the inference layer.
pub type Result<T> = std::result::Result<T, InferError>;
