//! The directed molecular graph `selfies` builds while reading SMILES or SELFIES.
//!
//! Every atom keeps its *out-bonds* in the order they were written: chain bonds point
//! from the earlier atom to the later one, and a ring bond is stored twice, once from each
//! end, at the place where its ring number stood. The encoder and the SMILES writer walk
//! these lists, so their order decides the output string.

use super::atom::{aromatic_valences, SfAtom};
use super::matching::perfect_matching;
use crate::chem::{ChemError, ErrorKind};

/// Marks an out-bond slot reserved for a ring bond that is not closed yet.
const PLACEHOLDER: usize = usize::MAX;

/// One directed bond. Orders are in half units: 2 single, 3 aromatic, 4 double, 6 triple.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DirBond {
    /// Atom the bond leaves.
    pub src: usize,
    /// Atom the bond enters.
    pub dst: usize,
    /// Bond order in half units.
    pub order: u8,
    /// `b'/'` or `b'\\'` for a directional single bond.
    pub stereo: Option<u8>,
    /// True for ring bonds (stored once from each end).
    pub ring: bool,
}

/// A `selfies` molecular graph.
#[derive(Debug, Default)]
pub(super) struct Graph {
    /// Atoms in order of creation.
    pub atoms: Vec<SfAtom>,
    /// First atom of every fragment, where traversal starts.
    pub roots: Vec<usize>,
    /// Directed bonds; a ring bond has two entries.
    pub bonds: Vec<DirBond>,
    /// Out-bond indices of every atom, in written order.
    out: Vec<Vec<usize>>,
    /// Sum of bond orders of every atom, in half units.
    counts: Vec<i64>,
    /// Whether the atom has a ring bond.
    ring_flags: Vec<bool>,
    /// Delocalisation subgraph: neighbours over aromatic bonds, for atoms in it.
    deloc: Vec<Option<Vec<usize>>>,
    /// Number of atoms in the delocalisation subgraph.
    deloc_len: usize,
}

impl Graph {
    /// Number of atoms.
    pub(super) fn len(&self) -> usize {
        self.atoms.len()
    }

    /// Appends an atom, as a fragment root if `root`, and returns its index.
    pub(super) fn add_atom(&mut self, atom: SfAtom, root: bool) -> usize {
        let idx = self.atoms.len();
        if root {
            self.roots.push(idx);
        }
        let aromatic = atom.aromatic;
        self.atoms.push(atom);
        self.out.push(Vec::new());
        self.counts.push(0);
        self.ring_flags.push(false);
        self.deloc.push(None);
        if aromatic {
            self.deloc_entry(idx);
        }
        idx
    }

    fn deloc_entry(&mut self, idx: usize) -> &mut Vec<usize> {
        if self.deloc[idx].is_none() {
            self.deloc_len += 1;
        }
        self.deloc[idx].get_or_insert_with(Vec::new)
    }

    fn link_deloc(&mut self, a: usize, b: usize) {
        self.deloc_entry(a).push(b);
        self.deloc_entry(b).push(a);
    }

    fn push_bond(&mut self, bond: DirBond, pos: Option<usize>) {
        let src = bond.src;
        let id = self.bonds.len();
        self.bonds.push(bond);
        let out = &mut self.out[src];
        match pos {
            Some(p) if p < out.len() => {
                if out[p] == PLACEHOLDER {
                    out[p] = id;
                } else {
                    out.insert(p, id);
                }
            }
            _ => out.push(id),
        }
    }

    /// Adds a chain bond `src -> dst` (`src < dst`) at the end of `src`'s out-bonds.
    pub(super) fn add_bond(&mut self, src: usize, dst: usize, order: u8, stereo: Option<u8>) {
        self.push_bond(
            DirBond {
                src,
                dst,
                order,
                stereo,
                ring: false,
            },
            None,
        );
        self.counts[src] += i64::from(order);
        self.counts[dst] += i64::from(order);
        if order == 3 {
            self.link_deloc(src, dst);
        }
    }

    /// Reserves a slot in `src`'s out-bonds for a ring bond and returns its position.
    pub(super) fn add_placeholder(&mut self, src: usize) -> usize {
        self.out[src].push(PLACEHOLDER);
        self.out[src].len() - 1
    }

    /// Adds a ring bond between `a` and `b` (`a < b`), stored at position `a_pos` of `a`'s
    /// out-bonds (filling a placeholder or inserting) and `b_pos` of `b`'s (`None`: append).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_ring_bond(
        &mut self,
        a: usize,
        b: usize,
        order: u8,
        a_stereo: Option<u8>,
        b_stereo: Option<u8>,
        a_pos: Option<usize>,
        b_pos: Option<usize>,
    ) {
        let bond = |src, dst, stereo| DirBond {
            src,
            dst,
            order,
            stereo,
            ring: true,
        };
        self.push_bond(bond(a, b, a_stereo), a_pos);
        self.push_bond(bond(b, a, b_stereo), b_pos);
        self.counts[a] += i64::from(order);
        self.counts[b] += i64::from(order);
        self.ring_flags[a] = true;
        self.ring_flags[b] = true;
        if order == 3 {
            self.link_deloc(a, b);
        }
    }

    /// The out-bond indices of `atom`, in written order.
    pub(super) fn out_bonds(&self, atom: usize) -> &[usize] {
        &self.out[atom]
    }

    /// The directed bond `src -> dst`, if stored.
    pub(super) fn dirbond(&self, src: usize, dst: usize) -> Option<usize> {
        self.out[src]
            .iter()
            .copied()
            .find(|&id| id != PLACEHOLDER && self.bonds[id].dst == dst)
    }

    /// Whether `a` and `b` are bonded.
    pub(super) fn has_bond(&self, a: usize, b: usize) -> bool {
        self.dirbond(a.min(b), a.max(b)).is_some()
    }

    /// Sum of bond orders of `atom`, in half units.
    pub(super) fn count2(&self, atom: usize) -> i64 {
        self.counts[atom]
    }

    /// Whether `atom` has a ring bond.
    pub(super) fn has_ring_bond(&self, atom: usize) -> bool {
        self.ring_flags[atom]
    }

    /// Sets the order of the bond between `a` and `b` (both directions of a ring bond).
    pub(super) fn update_bond_order(&mut self, a: usize, b: usize, new_order: u8) {
        let (a, b) = (a.min(b), a.max(b));
        let Some(ab) = self.dirbond(a, b) else {
            return;
        };
        let old = self.bonds[ab].order;
        if old == new_order {
            return;
        }
        self.bonds[ab].order = new_order;
        if self.bonds[ab].ring {
            if let Some(ba) = self.dirbond(b, a) {
                self.bonds[ba].order = new_order;
            }
        }
        let delta = i64::from(new_order) - i64::from(old);
        self.counts[a] += delta;
        self.counts[b] += delta;
    }

    /// `selfies`' kekulization: prunes the delocalisation subgraph, finds a perfect matching
    /// of what is left with `selfies`' own matching algorithm and turns it into double bonds.
    /// `Ok(false)` when no matching exists; an error for atoms the kekulizer cannot handle.
    pub(super) fn kekulize(&mut self, input: &str) -> Result<bool, ChemError> {
        if self.deloc_len == 0 {
            return Ok(true);
        }
        let mut label = vec![usize::MAX; self.len()];
        let mut nodes = Vec::new();
        for (node, lab) in label.iter_mut().enumerate() {
            if self.deloc[node].is_some() && !self.prune(node, input)? {
                *lab = nodes.len();
                nodes.push(node);
            }
        }
        let pruned: Vec<Vec<usize>> = nodes
            .iter()
            .map(|&node| {
                self.deloc[node]
                    .iter()
                    .flatten()
                    .filter_map(|&adj| (label[adj] != usize::MAX).then_some(label[adj]))
                    .collect()
            })
            .collect();
        let Some(matching) = perfect_matching(&pruned) else {
            return Ok(false);
        };
        for node in 0..self.len() {
            let Some(adjs) = self.deloc[node].take() else {
                continue;
            };
            for &adj in &adjs {
                self.update_bond_order(node, adj, 2);
            }
            self.atoms[node].aromatic = false;
        }
        self.deloc_len = 0;
        for (i, &j) in matching.iter().enumerate() {
            self.update_bond_order(nodes[i], nodes[j], 4);
        }
        Ok(true)
    }

    /// `selfies`' rule for leaving an atom out of the delocalisation subgraph.
    fn prune(&self, node: usize, input: &str) -> Result<bool, ChemError> {
        let n_adj = self.deloc[node].as_ref().map_or(0, Vec::len);
        if n_adj == 0 {
            return Ok(true);
        }
        let atom = &self.atoms[node];
        let Some((valences, valence_electrons)) = aromatic_valences(atom.element) else {
            return Err(ChemError::whole(
                ErrorKind::Kekulize,
                input,
                format!("selfies cannot kekulize aromatic bonds at {}", atom.element),
            ));
        };
        let count2 = i128::from(self.counts[node]);
        // Every aromatic bond counts as a single bond here.
        let mut used = (count2 - n_adj as i128) / 2;
        let Some(h) = atom.h_count else {
            return Ok(valences.iter().any(|&v| used == i128::from(v)));
        };
        let charge = i128::from(atom.charge);
        let max_valence = valences.last().copied().map_or(0, i128::from);
        let valence = max_valence - charge;
        used += i128::from(h);
        let bound = charge.max(0) + i128::from(h) + count2 / 2 + count2 % 2;
        let radical = (i128::from(valence_electrons) - bound).max(0) % 2;
        let free = valence - used - radical;
        if valences.iter().any(|&v| used == i128::from(v) - charge) {
            Ok(true)
        } else {
            Ok(!(free >= 0 && free % 2 != 0))
        }
    }
}
