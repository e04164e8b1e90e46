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
    /// Another process is training into the same run directory.
    #[error("{path} is in use by another training run (it holds {path}/.lock); wait for it to finish or choose another output_dir")]
    Busy {
        /// The run directory.
        path: PathBuf,
    },
    /// A new run was pointed at a directory that already holds files.
    #[error("{path} already holds a run ({found}): pass --resume {path} to continue it, --overwrite to replace it, or choose another output_dir")]
    NotEmpty {
        /// The run directory.
        path: PathBuf,
        /// Some of what is there.
        found: String,
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

/// The lock file that marks a run directory as in use.
pub const LOCK_FILE: &str = ".lock";

/// How a training command may use its run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run: the directory must be empty or absent.
    Fresh,
    /// Continue the run that is there (`--resume`).
    Resume,
    /// Replace the run that is there (`--overwrite`): its files are removed first.
    Overwrite,
}

/// A run directory being written, locked for one process while this value lives.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    /// Holds the exclusive lock on [`LOCK_FILE`].
    _lock: std::fs::File,
}

/// Whether a directory entry is one of the files a run writes.
fn is_run_file(name: &str) -> bool {
    name.starts_with("checkpoint-")
        || name.starts_with(CURVE_STEM)
        || [
            checkpoint::LATEST_FILE,
            LOG_FILE,
            EVAL_EXAMPLES_FILE,
            DATA_REPORT_FILE,
            SUMMARY_FILE,
        ]
        .contains(&name)
        || name.ends_with(".tmp")
}

impl RunDir {
    /// Creates (if needed) and locks the run directory `path`. Another process using it, or
    /// (for [`Start::Fresh`]) a directory that already holds files, is refused with what to do.
    pub fn create(path: &Path, start: Start) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| io_err(path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(RunError::Busy {
                    path: path.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, e)),
        }
        let mut present: Vec<String> = std::fs::read_dir(path)
            .map_err(|e| io_err(path, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK_FILE)
            .collect();
        present.sort();
        match start {
            Start::Fresh if !present.is_empty() => {
                let shown: Vec<&str> = present.iter().take(4).map(String::as_str).collect();
                return Err(RunError::NotEmpty {
                    path: path.to_path_buf(),
                    found: format!(
                        "{}{}",
                        shown.join(", "),
                        if present.len() > 4 { ", ..." } else { "" }
                    ),
                });
            }
            Start::Overwrite => {
                for name in present.iter().filter(|n| is_run_file(n)) {
                    let p = path.join(name);
                    let removed = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    removed.map_err(|e| io_err(&p, e))?;
                }
            }
            _ => {}
        }
        Ok(Self {
            root: path.to_path_buf(),
            _lock: lock,
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
    /// Opens `path` to continue training: a checkpoint directory, or a run directory (its
    /// `latest` checkpoint). Every file is checked against the checkpoint's manifest.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &[])
    }

    /// Opens `path` to use the model (generation, evaluation): as [`Checkpoint::open`], but
    /// the optimizer state may have been deleted.
    pub fn open_model(path: &Path) -> Result<Self> {
        Self::open_with(path, &[OPTIMIZER_FILE])
    }

    fn open_with(path: &Path, optional: &[&str]) -> Result<Self> {
        let dir = checkpoint::resolve(path)?;
        match checkpoint::load(&dir, optional) {
            Ok(state) => Ok(Self { dir, state }),
            Err(RunError::Checkpoint { path: bad, reason }) if dir != path => {
                // The run's latest checkpoint is damaged: an older one may be intact.
                let hint = checkpoint::list(path)
                    .into_iter()
                    .rfind(|d| d != &dir)
                    .map(|older| {
                        format!(
                            "; the previous checkpoint may be intact: pass {}",
                            older.display()
                        )
                    })
                    .unwrap_or_default();
                Err(RunError::Checkpoint {
                    path: bad,
                    reason: format!("{reason}{hint}"),
                })
            }
            Err(e) => Err(e),
        }
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
