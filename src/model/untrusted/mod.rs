//! Checks of model files that may come from strangers, run before the files reach parsers that
//! trust the numbers inside them.
//!
//! candle's GGUF reader bounds most counts and lengths by the file size, but not the memory the
//! parsed metadata takes (32 bytes per one-byte array element), the tensors' byte ranges (many
//! tensors may share one range, each dequantized separately) nor `general.alignment` (zero
//! divides by zero). candle's pickle reader allocates a string's declared length before
//! reading it, deep-copies memo entries on every get (a few hundred bytes can ask for
//! terabytes), recurses as deep as the pickle nests, and allocates each tensor's declared
//! shape before reading its storage. A model configuration can name more layers than the
//! checkpoint holds tensors, and the loader lists every expected tensor name first.
//!
//! The checks here read a file's structure without building it, bound every count, length,
//! offset and the memory the real parse will take by the bytes that are there, and refuse
//! the file with an error naming it and the field that is wrong. They run at the loaders'
//! entry points: [`check_gguf`] in `load_gguf`; [`check_pth`] in `Weights::from_pth` and the
//! Hugging Face `.bin` reader; [`check_safetensors`] in `Weights::from_safetensors` and the
//! LoRA adapter reader, [`check_safetensors_bytes`] in the Hugging Face safetensors reader
//! (the file is mapped there); [`check_tokenizer_json`] in `ModelTokenizer::from_hf_files`
//! (the `tokenizers` crate panics on some malformed JSON and on some BPE merges); [`check_layer_count`] before a decoder's
//! weights are checked against its configuration. The `safetensors` crate itself bounds the
//! header length by the file and requires the tensors to tile the data exactly, so every byte
//! of a tensor is a byte of the file; only the length of a shape list is left unbounded, and
//! checked here.
//!
//! No check executes anything a file says: candle's pickle reader only builds objects
//! (`GLOBAL` and `REDUCE` produce `Class` / `Reduce` values; nothing is imported or called),
//! and neither does the mirror of it in [`pth`].

mod gguf;
mod pth;
mod safetensors;
mod tokenizer_json;

use std::path::{Path, PathBuf};

pub use gguf::check_gguf;
pub use pth::check_pth;
pub use safetensors::{check_safetensors, check_safetensors_bytes};
pub use tokenizer_json::{check_json, check_tokenizer_json};

use super::loader::LoadError;
use super::{LlamaConfig, ModelError, TokenizerError};

/// A file refused before parsing: what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A GGUF file whose header does not fit its bytes.
    #[error("{path}: not a valid GGUF file: {reason}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The field that is wrong, and why.
        reason: String,
    },
    /// A PyTorch zip archive (`.pth` / `.bin`) that is malformed or would take more memory than
    /// its size justifies.
    #[error("{path}: not a valid PyTorch archive: {reason}")]
    Pth {
        /// The file.
        path: PathBuf,
        /// The entry or field that is wrong, and why.
        reason: String,
    },
    /// A safetensors file whose header describes tensors candle should not build.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The tensor that is wrong, and why.
        reason: String,
    },
    /// A JSON file that is not JSON.
    #[error("{path}: invalid JSON: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and what.
        reason: String,
    },
    /// A model configuration that cannot describe the checkpoint it comes with.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
}

impl UntrustedError {
    /// The file, and the message without it (for errors that print the path themselves).
    fn into_parts(self) -> (PathBuf, String) {
        match self {
            Self::Io { path, source } => (path, source.to_string()),
            Self::Gguf { path, reason } => (path, format!("not a valid GGUF file: {reason}")),
            Self::Pth { path, reason } => (path, format!("not a valid PyTorch archive: {reason}")),
            Self::Safetensors { path, reason } => {
                (path, format!("not a valid safetensors file: {reason}"))
            }
            Self::Json { path, reason } => (path, format!("invalid JSON: {reason}")),
            Self::Checkpoint { path, reason } => (path, reason),
        }
    }
}

impl From<UntrustedError> for LoadError {
    fn from(e: UntrustedError) -> Self {
        let (path, reason) = e.into_parts();
        LoadError::Read { path, reason }
    }
}

impl From<UntrustedError> for TokenizerError {
    fn from(e: UntrustedError) -> Self {
        let (path, reason) = e.into_parts();
        TokenizerError::Read { path, reason }
    }
}

impl From<UntrustedError> for ModelError {
    fn from(e: UntrustedError) -> Self {
        let (path, reason) = e.into_parts();
        ModelError::Read { path, reason }
    }
}

/// Refuses a configuration with more decoder layers than the checkpoint has tensors (each
/// layer needs nine), or whose attention widths overflow, before the loader lists the
/// `9 * num_hidden_layers` tensor names it expects: a `config.json` or GGUF header saying
/// `num_hidden_layers: 1e12` must not make the loader allocate terabytes of names.
pub fn check_layer_count(
    path: &Path,
    cfg: &LlamaConfig,
    tensors: usize,
) -> Result<(), UntrustedError> {
    let refuse = |reason: String| UntrustedError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    if cfg.num_hidden_layers > tensors {
        return Err(refuse(format!(
            "the configuration has {} decoder layers, but the checkpoint holds only {tensors} tensors \
             (each layer needs 9)",
            cfg.num_hidden_layers
        )));
    }
    let hd = cfg.head_dim();
    for (what, heads) in [
        ("num_attention_heads", cfg.num_attention_heads),
        ("num_key_value_heads", cfg.kv_heads()),
    ] {
        if heads.checked_mul(hd).is_none() {
            return Err(refuse(format!(
                "{what} ({heads}) times head_dim ({hd}) overflows"
            )));
        }
    }
    Ok(())
}

/// Bytes a reader can still take from a file of `size` bytes at `pos`.
/// Opens a file to check, with its size.
fn open_sized(path: &Path) -> Result<(std::fs::File, u64), UntrustedError> {
    let io = |source| UntrustedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    Ok((file, size))
}

fn remaining(size: u64, pos: u64) -> u64 {
    size.saturating_sub(pos)
}

/// Product of `dims`, `None` when it overflows. Zero dimensions are multiplied last, so the
/// answer does not depend on the order candle multiplies them in (it overflows in one order
/// exactly when the product of the non-zero dimensions does).
fn elem_count<I: IntoIterator<Item = u64> + Clone>(dims: I) -> Option<u64> {
    let nonzero = dims
        .clone()
        .into_iter()
        .filter(|&d| d != 0)
        .try_fold(1u64, u64::checked_mul)?;
    if dims.into_iter().any(|d| d == 0) {
        Some(0)
    } else {
        Some(nonzero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elem_count_is_order_independent() {
        assert_eq!(elem_count([2u64, 3, 4]), Some(24));
        assert_eq!(elem_count([1u64 << 40, 1 << 40, 0]), None);
        assert_eq!(elem_count([0u64, 1 << 40, 1 << 40]), None);
        assert_eq!(elem_count([0u64, 1 << 40]), Some(0));
        assert_eq!(elem_count(Vec::<u64>::new()), Some(1));
    }

    #[test]
    fn layer_count_is_bounded_by_the_tensors() {
        let cfg = LlamaConfig::from_json(
            r#"{"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1000000000000,
                "num_attention_heads":2,"vocab_size":10}"#,
        )
        .expect("valid config");
        let err = check_layer_count(Path::new("m.safetensors"), &cfg, 20)
            .expect_err("too many layers")
            .to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("1000000000000"),
            "{err}"
        );
    }
}
