//! Chemistry core: SMILES/SELFIES, the molecule graph, RDKit-compatible sanitization,
//! InstructMol graph features and canonical SMILES. No ML code lives here.

pub mod aromaticity;
pub mod canon;
pub mod elements;
pub mod features;
pub mod fingerprints;
pub mod mol;
pub mod nontetrahedral;
pub mod rings;
pub mod sanitize;
pub mod scaffold;
pub mod selfies;
pub mod smarts;
pub mod smiles;
pub mod stereo;

pub use features::{featurize, featurize_smiles, GraphFeatures};
pub use mol::{Atom, Bond, BondDir, BondType, ChiralTag, Mol};
pub use sanitize::mol_from_smiles;
pub use smiles::parse as parse_smiles;

/// What went wrong while reading or sanitizing a molecule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid SMILES / SELFIES syntax.
    Syntax,
    /// An atom has more bonds than its element allows (RDKit "Explicit valence ... greater than permitted").
    Valence,
    /// Aromatic atoms that cannot be assigned a Kekule structure (RDKit "Can't kekulize mol").
    Kekulize,
    /// Anything the featurizer or a writer cannot represent (e.g. a quadruple bond).
    Unsupported,
}

/// An error from the chemistry layer, with the character position in the input when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ChemError {
    /// The category of the error.
    pub kind: ErrorKind,
    /// Human-readable explanation, e.g. "ring bond 1 opened at position 1 is never closed".
    pub message: String,
    /// 0-based character offset in `input` the error points at, if any.
    pub position: Option<usize>,
    /// The input text the error refers to.
    pub input: String,
}

impl ChemError {
    /// A new error pointing at `position` (0-based character offset) of `input`.
    pub fn at(kind: ErrorKind, input: &str, position: usize, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            position: Some(position),
            input: input.to_string(),
        }
    }

    /// A new error about the whole input.
    pub fn whole(kind: ErrorKind, input: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            position: None,
            input: input.to_string(),
        }
    }

    /// The message, followed (when a position is known) by the input and a caret line under it.
    pub fn render(&self) -> String {
        match self.position {
            Some(p) => {
                let pad: String = self
                    .input
                    .chars()
                    .take(p)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                // Messages that already name their position ("ring bond 1 opened at position 1
                // is never closed") are not told it twice.
                let at = if self.message.contains("position") {
                    String::new()
                } else {
                    format!(" at position {p}")
                };
                format!("{}{at}\n  {}\n  {pad}^", self.message, self.input)
            }
            None => format!("{}: {}", self.message, self.input),
        }
    }
}
