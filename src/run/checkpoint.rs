//! Checkpoints of a training run, written atomically and verified on load.
//!
//! A checkpoint is a directory `RUN/checkpoint-NNNNNNN/` holding the model directory
//! ([`crate::model::InstructMol::save`]: GIN, projector, PEFT adapter), the optimizer moments, plus
//! `trainer_state.json`: the step, the position in the data, and a manifest with the size and
//! CRC-32 of every file. It is first written as `checkpoint-NNNNNNN.tmp/`, synced, and renamed
//! into place; `RUN/latest` (itself replaced by rename) names the newest complete one. A
//! directory whose files do not match its manifest is refused with a message naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Result, RunError};

/// Name of the state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Name of the pointer file in the run directory.
pub const LATEST_FILE: &str = "latest";

/// Size and checksum of one file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE) of the contents.
    pub crc32: u32,
}

/// Where training stands, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// `"pretrain"` or `"finetune"`.
    pub stage: String,
    /// Optimizer updates done.
    pub step: u64,
    /// Epoch in progress (0-based).
    pub epoch: u64,
    /// Batches of that epoch already consumed.
    pub batch_in_epoch: u64,
    /// Examples seen since the start of the run.
    pub examples_seen: u64,
    /// Last evaluation loss, if any.
    pub eval_loss: Option<f64>,
    /// The run's resolved configuration (a resume must use the same).
    pub config: serde_json::Value,
    /// Every other file of the checkpoint, by name.
    #[serde(default)]
    pub manifest: BTreeMap<String, FileEntry>,
}

impl TrainerState {
    /// The state of a run that has not taken a step yet.
    pub fn start(stage: &str, config: serde_json::Value) -> Self {
        Self {
            stage: stage.to_string(),
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            examples_seen: 0,
            eval_loss: None,
            config,
            manifest: BTreeMap::new(),
        }
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// CRC-32 and length of a file.
fn file_entry(path: &Path) -> Result<FileEntry> {
    let mut f = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
    }
    Ok(FileEntry {
        bytes: crc.amount() as u64,
        crc32: crc.sum(),
    })
}

/// Every regular file under `dir`, as paths relative to it, sorted.
fn list_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn sync_dir(path: &Path) {
    // Directory fsync is best effort: not every platform or filesystem supports it.
    if let Ok(d) = fs::File::open(path) {
        let _ = d.sync_all();
    }
}

/// Writes `text` to `path` atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Directory name of the checkpoint at `step`.
pub fn checkpoint_name(step: u64) -> String {
    format!("checkpoint-{step:07}")
}

/// Saves a checkpoint: `write_files` fills a fresh temporary directory, then the manifest and
/// state are added and the directory is renamed into place and recorded in `RUN/latest`.
/// Older checkpoints beyond the newest `keep` are removed. Returns the checkpoint directory.
pub fn save(
    run_dir: &Path,
    state: &TrainerState,
    keep: usize,
    write_files: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let name = checkpoint_name(state.step);
    let final_dir = run_dir.join(&name);
    let tmp_dir = run_dir.join(format!("{name}.tmp"));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir).map_err(|e| io_err(&tmp_dir, e))?;
    }
    fs::create_dir_all(&tmp_dir).map_err(|e| io_err(&tmp_dir, e))?;
    write_files(&tmp_dir)?;
    let mut state = state.clone();
    state.manifest.clear();
    for rel in list_files(&tmp_dir)? {
        let path = tmp_dir.join(&rel);
        if let Ok(f) = fs::File::open(&path) {
            let _ = f.sync_all();
        }
        state.manifest.insert(rel, file_entry(&path)?);
    }
    let json = serde_json::to_vec_pretty(&state).map_err(|e| io_err(&tmp_dir, e))?;
    write_atomic(&tmp_dir.join(STATE_FILE), &json)?;
    sync_dir(&tmp_dir);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| io_err(&final_dir, e))?;
    }
    fs::rename(&tmp_dir, &final_dir).map_err(|e| io_err(&final_dir, e))?;
    sync_dir(run_dir);
    write_atomic(&run_dir.join(LATEST_FILE), name.as_bytes())?;
    prune(run_dir, keep, &name)?;
    Ok(final_dir)
}

/// Removes complete checkpoints older than the newest `keep` (never `current`).
fn prune(run_dir: &Path, keep: usize, current: &str) -> Result<()> {
    let mut names: Vec<String> = fs::read_dir(run_dir)
        .map_err(|e| io_err(run_dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-") && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    for n in names.into_iter().take(excess) {
        if n != current {
            let p = run_dir.join(&n);
            fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }
    }
    Ok(())
}

/// Reads and verifies a checkpoint directory: the state must parse and every file of the
/// manifest except those named in `optional` must be present with its recorded size and
/// checksum (an optional file that is present is checked too).
pub fn load(dir: &Path, optional: &[&str]) -> Result<TrainerState> {
    let state_path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&state_path).map_err(|e| {
        io_err(
            &state_path,
            format!("{e} (not a complete checkpoint: it may have been interrupted while writing)"),
        )
    })?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| {
        io_err(
            &state_path,
            format!(
                "corrupt state file at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    for (rel, want) in &state.manifest {
        let path = dir.join(rel);
        if !path.exists() && optional.contains(&rel.as_str()) {
            continue;
        }
        if !path.exists() {
            return Err(io_err(
                &path,
                "file listed in the checkpoint's manifest is missing",
            ));
        }
        let got = file_entry(&path)?;
        if got.bytes != want.bytes {
            return Err(io_err(
                &path,
                format!(
                    "file is {} bytes, the checkpoint recorded {} (truncated or replaced)",
                    got.bytes, want.bytes
                ),
            ));
        }
        if got.crc32 != want.crc32 {
            return Err(io_err(&path, "checksum mismatch: the file is corrupted"));
        }
    }
    Ok(state)
}

/// The checkpoint directory a resume should use: `path` itself if it is a checkpoint, else
/// the one `path/latest` names (`path` being a run directory).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join(STATE_FILE).exists() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join(LATEST_FILE);
    if !latest.exists() {
        let reason = if path.join(super::LOG_FILE).exists() {
            "the run has no checkpoint yet (it stopped before its first save; see train.save_every): \
             start it afresh with --overwrite instead of --resume"
                .to_string()
        } else if path.is_dir() {
            format!("neither a checkpoint (no {STATE_FILE}) nor a run directory (no `{LATEST_FILE}` file)")
        } else {
            "no such directory".to_string()
        };
        return Err(io_err(path, reason));
    }
    let name = fs::read_to_string(&latest).map_err(|e| io_err(&latest, e))?;
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name == ".." {
        return Err(io_err(
            &latest,
            format!(
                "does not name a checkpoint (it should hold e.g. `{}`): pass a checkpoint directory instead",
                checkpoint_name(1)
            ),
        ));
    }
    Ok(path.join(name))
}

/// Complete checkpoints of a run directory, oldest first.
pub fn list(run_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with("checkpoint-") && !n.ends_with(".tmp")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ckpt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn state(step: u64) -> TrainerState {
        TrainerState {
            stage: "finetune".into(),
            step,
            epoch: 0,
            batch_in_epoch: step,
            examples_seen: 4 * step,
            eval_loss: None,
            config: serde_json::json!({"lr": 1e-4}),
            manifest: BTreeMap::new(),
        }
    }

    #[test]
    fn round_trip_prune_and_latest() {
        let run = tmp("rt");
        for step in [10, 20, 30] {
            save(&run, &state(step), 2, |d| {
                fs::write(d.join("a.bin"), vec![step as u8; 100]).unwrap();
                fs::create_dir_all(d.join("adapter")).unwrap();
                fs::write(d.join("adapter/x.json"), b"{}").unwrap();
                Ok(())
            })
            .unwrap();
        }
        let dir = resolve(&run).unwrap();
        assert!(dir.ends_with(checkpoint_name(30)));
        let st = load(&dir, &[]).unwrap();
        assert_eq!(st.step, 30);
        assert_eq!(st.manifest.len(), 2);
        assert!(!run.join(checkpoint_name(10)).exists());
        assert!(run.join(checkpoint_name(20)).exists());
        fs::remove_dir_all(&run).ok();
    }

    #[test]
    fn truncated_corrupt_or_partial_checkpoints_are_refused() {
        let run = tmp("bad");
        let dir = save(&run, &state(5), 3, |d| {
            fs::write(d.join("w.safetensors"), vec![7u8; 64]).unwrap();
            Ok(())
        })
        .unwrap();
        // Truncated.
        fs::write(dir.join("w.safetensors"), vec![7u8; 60]).unwrap();
        let err = load(&dir, &[]).unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("w.safetensors"),
            "{err}"
        );
        // Same size, flipped byte.
        let mut bytes = vec![7u8; 64];
        bytes[3] = 8;
        fs::write(dir.join("w.safetensors"), bytes).unwrap();
        let err = load(&dir, &[]).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        // Missing file.
        fs::remove_file(dir.join("w.safetensors")).unwrap();
        assert!(load(&dir, &[]).unwrap_err().to_string().contains("missing"));
        // Interrupted while writing: no state file.
        let partial = run.join("checkpoint-0000009.tmp");
        fs::create_dir_all(&partial).unwrap();
        let err = load(&partial, &[]).unwrap_err().to_string();
        assert!(err.contains("not a complete checkpoint"), "{err}");
        // Corrupt state JSON.
        fs::write(dir.join(STATE_FILE), b"{\"stage\": ").unwrap();
        let err = load(&dir, &[]).unwrap_err().to_string();
        assert!(err.contains("corrupt state file"), "{err}");
        fs::remove_dir_all(&run).ok();
    }
}
