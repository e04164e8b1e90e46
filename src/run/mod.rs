//! A training run on disk, the one place that knows its layout. The trainer writes through
//! this module; generation, chat and evaluation read through it.
//!
//! ```text
//! RUN/
//!   log.jsonl                 one line per update (step, loss, lr, ...) and per evaluation
//!   loss_curve.png / .svg     the curves of log.jsonl
//!   data_report.json          examples left out, by reason
//!   eval_examples.jsonl       the final evaluation's loss per example
//!   summary.json              what the finished run reports
//!   latest                    the name of the newest complete checkpoint
//!   checkpoint-NNNNNNN/       trainer_state.json (step, data position, config, manifest),
//!                             optimizer.safetensors, and the model directory's files
//!                             (crate::model::InstructMol::save: GIN, projector, adapter/)
//! ```

pub mod checkpoint;
pub mod config;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use checkpoint::{write_atomic, TrainerState};
pub use config::RunConfig;

/// The training log.
pub const LOG_FILE: &str = "log.jsonl";
/// The loss curve, without extension (`.png` and `.svg` are written).
pub const CURVE_STEM: &str = "loss_curve";
/// The final evaluation's loss per example (`id`, `loss`, `tokens`), for paired comparisons.
pub const EVAL_EXAMPLES_FILE: &str = "eval_examples.jsonl";
/// Record of the examples that could not be used.
pub const DATA_REPORT_FILE: &str = "data_report.json";
/// What a finished run reports.
pub const SUMMARY_FILE: &str = "summary.json";
/// The optimizer's moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Errors of the run layer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    /// Another file of the run could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias of the run layer.
pub type Result<T> = std::result::Result<T, RunError>;

fn io_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A run directory being written.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (if needed) the run directory `path`.
    pub fn create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| io_err(path, e))?;
        Ok(Self {
            root: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file of the run (one of this module's file names).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `value` as pretty JSON to the run file `name`, atomically.
    pub fn write_json(&self, name: &str, value: &impl serde::Serialize) -> Result<()> {
        let path = self.file(name);
        let text = serde_json::to_vec_pretty(value).map_err(|e| io_err(&path, e))?;
        write_atomic(&path, &text)
    }

    /// Writes one JSON line per row to the run file `name`, atomically.
    pub fn write_jsonl<T: serde::Serialize>(&self, name: &str, rows: &[T]) -> Result<()> {
        let path = self.file(name);
        let mut text = Vec::new();
        for r in rows {
            serde_json::to_writer(&mut text, r).map_err(|e| io_err(&path, e))?;
            text.push(b'\n');
        }
        write_atomic(&path, &text)
    }

    /// Saves a checkpoint for `state`: `write_files` fills its directory, then the manifest
    /// is written, the directory renamed into place and `latest` updated; checkpoints beyond
    /// the newest `keep` are removed. Returns the checkpoint directory.
    pub fn save_checkpoint(
        &self,
        state: &TrainerState,
        keep: usize,
        write_files: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        checkpoint::save(&self.root, state, keep, write_files)
    }

    /// Opens the log for appending, first dropping the lines after `step` (a resumed run
    /// rewrites what came after its checkpoint).
    pub fn open_log(&self, step: u64) -> Result<RunLog> {
        let path = self.file(LOG_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let kept: String = text
                .lines()
                .filter(|line| log_step(line).is_some_and(|s| s <= step))
                .flat_map(|line| [line, "\n"])
                .collect();
            write_atomic(&path, kept.as_bytes())?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(RunLog { path, file })
    }
}

fn log_step(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("step")?
        .as_u64()
}

/// The run's `log.jsonl`, open for appending.
pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

/// The curves of a log: (step, value) points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Training loss of every update.
    pub train: Vec<(u64, f64)>,
    /// Evaluation loss.
    pub eval: Vec<(u64, f64)>,
    /// Learning rate of every update.
    pub lr: Vec<(u64, f64)>,
}

impl RunLog {
    /// Appends one JSON line.
    pub fn append(&mut self, line: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|e| io_err(&self.path, e))
    }

    /// The curves logged so far.
    pub fn history(&self) -> Result<History> {
        read_history(&self.path)
    }
}

/// The curves of a `log.jsonl` (lines that are not log entries are skipped).
pub fn read_history(path: &Path) -> Result<History> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut h = History::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(s) = v.get("step").and_then(|s| s.as_u64()) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_f64());
        if let Some(l) = field("loss") {
            h.train.push((s, l));
        }
        if let Some(l) = field("lr") {
            h.lr.push((s, l));
        }
        if let Some(l) = field("eval_loss") {
            h.eval.push((s, l));
        }
    }
    Ok(h)
}

/// A verified checkpoint of a run.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its directory (also the model directory).
    pub dir: PathBuf,
    /// Its state.
    pub state: TrainerState,
}

impl Checkpoint {
    /// Opens `path`: a checkpoint directory, or a run directory (its `latest` checkpoint).
    /// Every file is checked against the checkpoint's manifest.
    pub fn open(path: &Path) -> Result<Self> {
        let dir = checkpoint::resolve(path)?;
        let state = checkpoint::load(&dir)?;
        Ok(Self { dir, state })
    }

    /// The configuration the run was made with.
    pub fn config(&self) -> Result<RunConfig> {
        serde_json::from_value(self.state.config.clone()).map_err(|e| RunError::Checkpoint {
            path: self.dir.join(checkpoint::STATE_FILE),
            reason: format!("the run's configuration is unreadable: {e}"),
        })
    }

    /// The optimizer's moments.
    pub fn optimizer_file(&self) -> PathBuf {
        self.dir.join(OPTIMIZER_FILE)
    }
}
