//! Helpers shared by the model, inference, training and CLI tests: the repository root, the
//! binary under test, fresh temporary directories, the SmolLM2 file (tests that need it skip
//! themselves with a message when it is absent) and tensor comparison.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Tensor};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `instructmol` binary built for the tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_instructmol"))
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
