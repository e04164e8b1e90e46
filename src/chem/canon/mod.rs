//! Canonical SMILES (isomeric and non-isomeric) for sanitized molecules.
//!
//! Atoms are ranked by iterative refinement of their invariants ([`rank`]); ties that
//! remain are broken one atom at a time. While a stereo element (tetrahedral centre or
//! stereo double bond) cannot be expressed because some of its neighbours still tie, every
//! member of the tied class is tried and the smallest resulting string wins, so that
//! symmetric molecules whose stereo breaks the symmetry (meso forms, cis/trans ring
//! isomers) still give one string per stereoisomer. Other ties are broken by taking any
//! member, which is safe once all stereo is defined.

mod rank;
mod writer;

#[cfg(test)]
mod tests;

use super::Mol;
use rank::{first_tied_cell, individualize, Graph, Scratch};

/// How many branches the stereo tie-breaking search may open before it falls back to
/// taking the first member of each tied class.
const BRANCH_BUDGET: usize = 4096;

/// Canonical SMILES of a sanitized molecule (aromaticity perceived, hydrogens and stereo set
/// as RDKit's `MolFromSmiles` leaves them).
///
/// With `isomeric`, isotopes, tetrahedral chirality and double-bond stereo are written;
/// without, all three are dropped. Fragments are written in canonical order, separated by `.`.
pub fn canonical_smiles(mol: &Mol, isomeric: bool) -> String {
    let g = Graph::new(mol, isomeric);
    let mut search = Search {
        g: &g,
        scratch: Scratch::default(),
        budget: BRANCH_BUDGET,
        best: None,
    };
    search.run(g.initial_ranks());
    search.best.unwrap_or_default()
}

/// The tie-breaking search; keeps the smallest string over the explored branches.
struct Search<'g, 'm> {
    g: &'g Graph<'m>,
    scratch: Scratch,
    budget: usize,
    best: Option<String>,
}

impl Search<'_, '_> {
    fn run(&mut self, mut ranks: Vec<u32>) {
        loop {
            self.g.refine(&mut ranks, &mut self.scratch);
            if self.budget > 0 {
                if let Some(cell) = self.g.undetermined_cell(&ranks) {
                    let members: Vec<usize> =
                        (0..ranks.len()).filter(|&a| ranks[a] == cell).collect();
                    for m in members {
                        self.budget = self.budget.saturating_sub(1);
                        let mut branch = ranks.clone();
                        individualize(&mut branch, m);
                        self.run(branch);
                    }
                    return;
                }
            }
            match first_tied_cell(&ranks) {
                Some(cell) => {
                    let first = ranks.iter().position(|&r| r == cell).unwrap_or(0);
                    individualize(&mut ranks, first);
                }
                None => break,
            }
        }
        let s = writer::write(self.g, &ranks);
        if self.best.as_ref().is_none_or(|b| s < *b) {
            self.best = Some(s);
        }
    }
}
