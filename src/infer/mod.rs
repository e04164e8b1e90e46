//! Inference: token selection with penalties ([`sampling`]), the answer's text with stop
//! strings ([`stop`]), log-probabilities ([`logprobs`]), the decode loop
//! ([`generate`](mod@generate): one streamed sequence or a left-padded batch, over any
//! [`crate::model::Decode`] model), answering a file of questions ([`rows`]), the probability
//! of "Yes" for yes/no questions ([`yes_no`]) and the molecular assistant ([`assistant`]).
//!
//! A server that runs its own step loop (continuous batching) keeps, per sequence, a
//! [`Sampler`] (`Sampler::with_prompt_ids`; `sample` each step's logits row) and an
//! [`AnswerStream`] (`push` each id, send the text it returns; `finish` at the end), and calls
//! [`token_logprobs`] on the raw logits row when log-probabilities are asked for.

pub mod assistant;
pub mod generate;
pub mod logprobs;
pub mod rows;
pub mod sampling;
pub mod stop;
pub mod yes_no;

pub use generate::{
    generate, generate_batch, BatchGeneration, Generation, GenerationConfig, NewToken, Prompt,
    RowGeneration, RowPrompt, StopReason,
};
pub use logprobs::{token_logprobs, TokenLogprobs};
pub use sampling::{BadSetting, Sampler, SamplingConfig};
pub use stop::{AnswerStream, StopMatcher};
pub use yes_no::YesNoIds;

use crate::model::{ModelError, TokenizerError};

/// Errors of the inference layer.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The run directory or checkpoint cannot be used.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    /// Tokenizing or decoding failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The input cannot be generated from.
    #[error("{0}")]
    Input(String),
    /// The prompt does not fit the length the model takes.
    #[error("{0}")]
    PromptTooLong(String),
    /// A sampling setting is out of range.
    #[error(transparent)]
    Setting(#[from] BadSetting),
    /// A molecule could not be read (the message names the position).
    #[error("invalid SMILES: {0}")]
    InvalidSmiles(String),
    /// Writing the streamed output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Result alias of the inference layer.
pub type Result<T> = std::result::Result<T, InferError>;
