//! Kekulization and RDKit's default aromaticity model.
//!
//! Interface stub: implemented by the aromaticity work.

use super::{ChemError, Mol};

/// Replaces aromatic bonds by an alternating single/double (Kekule) assignment, as RDKit's
/// `Kekulize` does during sanitization. Relies only on element, charge, `explicit_h`,
/// `no_implicit`, aromatic flags and bonds (not on `implicit_h`). Atoms keep their aromatic
/// flag cleared afterwards. Fails with [`super::ErrorKind::Kekulize`] like RDKit's
/// "Can't kekulize mol".
pub fn kekulize(_mol: &mut Mol) -> Result<(), ChemError> {
    Ok(())
}

/// Perceives aromaticity with RDKit's default model on a Kekule molecule whose implicit
/// hydrogens are set, marking aromatic atoms and turning their ring bonds into
/// [`super::BondType::Aromatic`].
pub fn set_aromaticity(_mol: &mut Mol) {}
