//! Training: the two InstructMol stages (projector alignment, then LoRA instruction tuning)
//! with AdamW, a cosine schedule, gradient accumulation and clipping, evaluation loss, a JSONL
//! log and loss curve, and atomic checkpoints that resume exactly.

pub mod checkpoint;
pub mod config;
pub mod optim;
pub mod plot;
pub mod schedule;
pub mod trainer;

use std::path::PathBuf;

pub use config::RunConfig;

/// Errors of the training layer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration file or override is invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The file (or `--set` for command-line overrides).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint could not be written or is not a valid checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("loss is {loss} at step {step}: training stopped; the last good checkpoint is kept ({last_good})")]
    NonFinite {
        /// The offending value.
        loss: f64,
        /// Optimizer step.
        step: u64,
        /// Where the last good checkpoint is (or "none").
        last_good: String,
    },
    /// Writing the log or the plot failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model layer failed.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A tensor computation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the training layer.
pub type Result<T> = std::result::Result<T, TrainError>;
