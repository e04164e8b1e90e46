//! RDKit's topological fingerprint (`Chem.RDKFingerprint`): every connected subgraph of
//! `min_path..=max_path` bonds is hashed from its bonds' invariants and sets
//! `bits_per_hash` bits chosen by a small Mersenne twister seeded with the hash.

use super::hash::{hash_combine, hash_range, SmallTwister};
use super::morgan::rdkit_bond_type;
use super::BitVec;
use crate::chem::{BondType, Mol};

/// Options of the RDKit fingerprint; [`Default`] gives `RDKFingerprint`'s defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdkitFpOptions {
    /// Fewest bonds in a subgraph (at least 1).
    pub min_path: usize,
    /// Most bonds in a subgraph.
    pub max_path: usize,
    /// Fingerprint length in bits (at least 1).
    pub fp_size: usize,
    /// Bits set per subgraph (at least 1).
    pub bits_per_hash: usize,
}

impl Default for RdkitFpOptions {
    fn default() -> Self {
        RdkitFpOptions {
            min_path: 1,
            max_path: 7,
            fp_size: 2048,
            bits_per_hash: 2,
        }
    }
}

/// The RDKit fingerprint of `mol` (branched subgraphs, bond orders used, hydrogens as present;
/// subgraphs with a `~` bond are skipped, as RDKit skips query bonds).
pub fn rdkit_fingerprint(mol: &Mol, opts: &RdkitFpOptions) -> BitVec {
    let fp_size = opts.fp_size.max(1);
    let mut bits = BitVec::new(fp_size);
    let atom_inv: Vec<u32> = mol
        .atoms
        .iter()
        .map(|a| (u32::from(a.element) % 128) << 1 | u32::from(a.aromatic))
        .collect();
    let bond_hash: Vec<u32> = mol
        .bonds
        .iter()
        .map(|b| match b.kind {
            BondType::Aromatic => 12,
            k => rdkit_bond_type(k),
        })
        .collect();
    // `~` bonds are query bonds in RDKit, and subgraphs holding one are skipped.
    let query_bond: Vec<bool> = mol.bonds.iter().map(|b| b.kind == BondType::Zero).collect();
    let mut scratch = Scratch::default();
    let mut emit = |path: &[usize]| {
        if path.iter().any(|&b| query_bond[b]) {
            return;
        }
        let seed = subgraph_hash(mol, &atom_inv, &bond_hash, path, &mut scratch);
        bits.set(seed as usize % fp_size);
        if opts.bits_per_hash > 1 {
            let mut rng = SmallTwister::new(seed);
            for _ in 1..opts.bits_per_hash {
                bits.set(rng.next_int31() as usize % fp_size);
            }
        }
    };
    for_each_subgraph(mol, opts.min_path.max(1), opts.max_path, &mut emit);
    bits
}

/// Buffers reused from one subgraph to the next.
#[derive(Default)]
struct Scratch {
    /// Atoms of the subgraph with their degree inside it.
    atoms: Vec<(usize, u32)>,
    /// Per-bond hashes.
    hashes: Vec<u32>,
}

/// The hash RDKit seeds a subgraph's bits with.
fn subgraph_hash(
    mol: &Mol,
    atom_inv: &[u32],
    bond_hash: &[u32],
    path: &[usize],
    scratch: &mut Scratch,
) -> u32 {
    let Scratch { atoms, hashes } = scratch;
    atoms.clear();
    hashes.clear();
    for &b in path {
        for a in [mol.bonds[b].begin, mol.bonds[b].end] {
            match atoms.iter_mut().find(|e| e.0 == a) {
                Some(e) => e.1 += 1,
                None => atoms.push((a, 1)),
            }
        }
    }
    let degree = |a: usize| atoms.iter().find(|e| e.0 == a).map_or(0, |e| e.1);
    for (i, &bi) in path.iter().enumerate() {
        let b = &mol.bonds[bi];
        let nbrs = path
            .iter()
            .enumerate()
            .filter(|&(j, &bj)| {
                let o = &mol.bonds[bj];
                j != i
                    && (o.begin == b.begin
                        || o.begin == b.end
                        || o.end == b.begin
                        || o.end == b.end)
            })
            .count() as u32;
        let (mut a1, mut a2) = (atom_inv[b.begin], atom_inv[b.end]);
        let (mut d1, mut d2) = (degree(b.begin), degree(b.end));
        if a1 < a2 {
            std::mem::swap(&mut a1, &mut a2);
            std::mem::swap(&mut d1, &mut d2);
        } else if a1 == a2 && d1 < d2 {
            std::mem::swap(&mut d1, &mut d2);
        }
        let mut h = nbrs;
        hash_combine(&mut h, bond_hash[bi]);
        hash_combine(&mut h, a1);
        hash_combine(&mut h, d1);
        hash_combine(&mut h, a2);
        hash_combine(&mut h, d2);
        hashes.push(h);
    }
    if hashes.len() == 1 {
        return hashes[0];
    }
    hashes.sort_unstable();
    hashes.push(atoms.len() as u32);
    hash_range(hashes)
}

/// Calls `emit` once for every connected set of `min..=max` bonds (as bond indices).
///
/// Each set is grown from its lowest bond; candidate bonds are taken in turn and a bond passed
/// over is never added again in that branch, so every set is produced exactly once.
fn for_each_subgraph(mol: &Mol, min: usize, max: usize, emit: &mut dyn FnMut(&[usize])) {
    let nb = mol.bonds.len();
    if max == 0 || nb == 0 {
        return;
    }
    let adjacency: Vec<Vec<usize>> = (0..nb)
        .map(|b| {
            let bond = &mol.bonds[b];
            let mut v: Vec<usize> = mol.atom_bonds[bond.begin]
                .iter()
                .chain(&mol.atom_bonds[bond.end])
                .copied()
                .filter(|&o| o != b)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut seen = vec![false; nb];
    let mut current: Vec<usize> = Vec::with_capacity(max);
    let mut stack: Vec<usize> = Vec::new();
    for root in 0..nb {
        seen[root] = true;
        current.push(root);
        stack.clear();
        for &o in &adjacency[root] {
            if o > root && !seen[o] {
                seen[o] = true;
                stack.push(o);
            }
        }
        let first: Vec<usize> = stack.clone();
        let mut walk = Walk {
            adjacency: &adjacency,
            root,
            min,
            max,
            current: &mut current,
            stack: &mut stack,
            seen: &mut seen,
            added: Vec::new(),
            emit,
        };
        walk.grow(0);
        for &o in &first {
            seen[o] = false;
        }
        current.pop();
        seen[root] = false;
    }
}

/// The state of the subgraph walk from one root bond.
struct Walk<'a, 'e> {
    adjacency: &'a [Vec<usize>],
    root: usize,
    min: usize,
    max: usize,
    current: &'a mut Vec<usize>,
    /// Candidate bonds of every open level; the level being grown owns `stack[lo..]`.
    stack: &'a mut Vec<usize>,
    seen: &'a mut [bool],
    /// Bonds marked seen by each open level, in order (a level unmarks its own on return).
    added: Vec<usize>,
    emit: &'e mut dyn FnMut(&[usize]),
}

impl Walk<'_, '_> {
    /// Emits the current subgraph and grows it by the candidates in `stack[lo..]`.
    fn grow(&mut self, lo: usize) {
        if self.current.len() >= self.min {
            (self.emit)(self.current);
        }
        if self.current.len() == self.max {
            return;
        }
        while self.stack.len() > lo {
            let Some(e) = self.stack.pop() else {
                break;
            };
            // The child level: the candidates still left here, then e's new neighbours.
            let child = self.stack.len();
            self.stack.extend_from_within(lo..child);
            let log_start = self.added.len();
            for &o in &self.adjacency[e] {
                if o > self.root && !self.seen[o] {
                    self.seen[o] = true;
                    self.stack.push(o);
                    self.added.push(o);
                }
            }
            self.current.push(e);
            self.grow(child);
            self.current.pop();
            for &o in &self.added[log_start..] {
                self.seen[o] = false;
            }
            self.added.truncate(log_start);
            self.stack.truncate(child);
        }
    }
}
