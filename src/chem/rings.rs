//! Ring perception (RDKit's symmetrized SSSR).
//!
//! Interface stub: implemented by the aromaticity work.

use super::Mol;

/// Ring membership of atoms and bonds, as RDKit's `RingInfo` after `symmetrizeSSSR`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RingInfo {
    /// Each ring as atom indices in ring order.
    pub atom_rings: Vec<Vec<usize>>,
    /// Each ring as bond indices, parallel to `atom_rings`.
    pub bond_rings: Vec<Vec<usize>>,
}

impl RingInfo {
    /// Perceives the rings of `mol`.
    pub fn new(_mol: &Mol) -> Self {
        RingInfo::default()
    }

    /// Number of rings that contain `atom`.
    pub fn num_atom_rings(&self, atom: usize) -> usize {
        self.atom_rings.iter().filter(|r| r.contains(&atom)).count()
    }

    /// Number of rings that contain `bond`.
    pub fn num_bond_rings(&self, bond: usize) -> usize {
        self.bond_rings.iter().filter(|r| r.contains(&bond)).count()
    }
}
