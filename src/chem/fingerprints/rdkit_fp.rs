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
    let mut emit = |path: &[usize]| {
        if path.iter().any(|&b| query_bond[b]) {
            return;
        }
        let seed = subgraph_hash(mol, &atom_inv, &bond_hash, path);
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

/// The hash RDKit seeds a subgraph's bits with.
fn subgraph_hash(mol: &Mol, atom_inv: &[u32], bond_hash: &[u32], path: &[usize]) -> u32 {
    // Atoms of the subgraph with their degree inside it (at most max_path + 1 atoms).
    let mut atoms: Vec<(usize, u32)> = Vec::with_capacity(path.len() + 1);
    let mut bump = |a: usize| match atoms.iter_mut().find(|e| e.0 == a) {
        Some(e) => e.1 += 1,
        None => atoms.push((a, 1)),
    };
    for &b in path {
        bump(mol.bonds[b].begin);
        bump(mol.bonds[b].end);
    }
    let degree = |a: usize| atoms.iter().find(|e| e.0 == a).map_or(0, |e| e.1);
    let mut hashes: Vec<u32> = Vec::with_capacity(path.len() + 1);
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
    hash_range(&hashes)
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
    for root in 0..nb {
        seen[root] = true;
        current.push(root);
        let mut ext = Vec::new();
        for &o in &adjacency[root] {
            if o > root && !seen[o] {
                seen[o] = true;
                ext.push(o);
            }
        }
        grow(
            &adjacency,
            root,
            min,
            max,
            &mut current,
            ext.clone(),
            &mut seen,
            emit,
        );
        for &o in &ext {
            seen[o] = false;
        }
        current.pop();
        seen[root] = false;
    }
}

#[allow(clippy::too_many_arguments)]
fn grow(
    adjacency: &[Vec<usize>],
    root: usize,
    min: usize,
    max: usize,
    current: &mut Vec<usize>,
    mut ext: Vec<usize>,
    seen: &mut [bool],
    emit: &mut dyn FnMut(&[usize]),
) {
    if current.len() >= min {
        emit(current);
    }
    if current.len() == max {
        return;
    }
    while let Some(e) = ext.pop() {
        let mut next = ext.clone();
        let added_from = next.len();
        for &o in &adjacency[e] {
            if o > root && !seen[o] {
                seen[o] = true;
                next.push(o);
            }
        }
        let added: Vec<usize> = next[added_from..].to_vec();
        current.push(e);
        grow(adjacency, root, min, max, current, next, seen, emit);
        current.pop();
        for o in added {
            seen[o] = false;
        }
    }
}
