//! Training: the two InstructMol stages (projector alignment, then LoRA instruction tuning).
//! [`trainer`] is the loop, [`optim`] the optimizer (accumulation, clipping, AdamW),
//! [`schedule`] the learning rate, [`plot`] the loss curve; the run directory it writes is
//! [`crate::run`]'s.

#[cfg(feature = "nccl")]
pub mod nccl;
pub mod optim;
pub mod plot;
pub mod schedule;
pub mod trainer;

use crate::run::RunError;

/// Errors of the training layer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run's configuration, checkpoints or files.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The loss, the gradients or the parameters became NaN or infinite. Nothing from that
    /// update is saved.
    #[error("{what} at step {step}: training stopped and nothing from this step was saved; the last good checkpoint is kept ({last_good}). Lower train.lr, or set train.max_grad_norm to clip gradients")]
    NonFinite {
        /// What went wrong (e.g. "the loss is NaN").
        what: String,
        /// The update (1-based) in which it happened.
        step: u64,
        /// Where the last good checkpoint is (or "none").
        last_good: String,
    },
    /// An optimizer update that would leave the model unusable.
    #[error(transparent)]
    Step(#[from] optim::StepError),
    /// The loss curve could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// The model layer failed.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A tensor computation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the training layer.
pub type Result<T> = std::result::Result<T, TrainError>;
