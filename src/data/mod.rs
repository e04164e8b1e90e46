//! Datasets, prompts, conversation templates, splits and the batch order: from the raw
//! benchmark files to the tokenised examples the model takes.
//!
//! `instructmol data prepare` ([`prepare`]) turns a raw dataset into LLaVA-style JSONL
//! ([`record`]); [`dataset::Dataset`] reads those files back, featurizes each molecule and
//! tokenises each conversation with a [`templates::Template`]; [`sampler`] orders the examples
//! into batches (the model pads them: [`crate::model::InstructMol::embed_prompt`]).

pub mod chebi20;
pub mod dataset;
pub mod mol_instructions;
pub mod moleculenet;
pub mod prepare;
pub mod prompts;
pub mod pubchem;
pub mod qm9;
pub mod record;
pub mod sampler;
pub mod splits;
pub mod table;
pub mod templates;
pub mod uspto;

use std::path::{Path, PathBuf};

/// An error from the data layer. Bad molecules are not errors: they are counted in the
/// preparation report ([`prepare::Report`]).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not in the expected format (missing column, wrong field count, bad JSON...).
    #[error("{}:{line}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0 when the problem concerns the whole file).
        line: usize,
        /// What is wrong and, where possible, what to do.
        message: String,
    },
    /// The request cannot be served with this input (e.g. reagent prediction from Liu files).
    #[error("{0}")]
    Usage(String),
    /// The tokenizer failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A conversation cannot be rendered with a template.
    #[error("conversation {id}: {message}")]
    Conversation {
        /// The record id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A format error at `line` (1-based) of `path`.
    pub fn format(path: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}
