//! Stereochemistry as RDKit's `MolFromSmiles` leaves it: legacy `assignStereochemistry`
//! with `cleanIt=true` (chiral tags removed from atoms that are not stereocentres) and the
//! bond directions it keeps.
//!
//! Interface stub: implemented by the stereo work.

use super::Mol;

/// Removes chiral tags and bond directions the way RDKit's legacy
/// `assignStereochemistry(mol, cleanIt=true, force=false)` does after sanitization.
pub fn assign_stereochemistry(_mol: &mut Mol) {}
