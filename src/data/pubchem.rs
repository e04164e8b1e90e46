//! Stage-1 alignment pairs: a caption TSV `CID\tSMILES\tcaption` (header optional), e.g.
//! PubChem molecule-text pairs exported to that form. The plain template ignores the
//! question; the record still carries one so other templates can use the file.

use std::path::Path;

use super::chebi20::read_captions;
use super::prepare::{Examples, Task};
use super::prompts::Variant;
use super::DataError;

/// Reads a caption TSV as stage-1 pairs (split named after the file).
pub fn read(path: &Path, variant: Variant, seed: u64) -> Result<Examples, DataError> {
    read_captions(path, Task::PubchemPairs, variant, seed)
}
