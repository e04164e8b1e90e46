//! Helpers shared by the model, inference, training and CLI tests: the repository root, the
//! binary under test, fresh temporary directories, the SmolLM2 file (tests that need it skip
//! themselves with a message when it is absent) and tensor comparison.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use candle_core::{DType, Tensor};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `instructmol` binary built for the tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_instructmol"))
}

/// Runs `cmd` with `stdin` as its standard input (written from a thread: the command may fill
/// its output pipe before it has read everything) and collects its output.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut pipe = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // The command may stop reading early (e.g. after refusing its arguments).
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("binary finishes");
    writer.join().expect("stdin writer");
    out
}

/// Writes `tensors` as two safetensors shards (`model-0000k-of-00002.safetensors`, names in
/// sorted order, split in half) and `model.safetensors.index.json` in `dir`; returns the index's
/// weight map and the names of the first shard.
pub fn write_two_shards(
    dir: &Path,
    tensors: &std::collections::HashMap<String, Tensor>,
) -> (serde_json::Map<String, serde_json::Value>, Vec<String>) {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (part, file) in [
        (a, "model-00001-of-00002.safetensors"),
        (b, "model-00002-of-00002.safetensors"),
    ] {
        let shard: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|k| ((*k).clone(), tensors[*k].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.join(file)).expect("write shard");
        for k in part {
            map.insert((*k).clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
        .expect("write index");
    (map, a.iter().map(|k| (*k).clone()).collect())
}

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("instructmol-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// The SmolLM2 GGUF (`INSTRUCTMOL_SMOLLM2` or `models/`), or `None` with a printed skip notice.
pub fn smollm2() -> Option<PathBuf> {
    let p = std::env::var_os("INSTRUCTMOL_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if Path::new(&p).is_file() {
        Some(p)
    } else {
        println!(
            "skipped: {} not found (run scripts/get_smollm2.sh)",
            p.display()
        );
        None
    }
}

/// Fails the test with the exit code and stderr unless the command succeeded.
pub fn check(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Largest absolute element-wise difference of two tensors of the same shape (in f32).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
