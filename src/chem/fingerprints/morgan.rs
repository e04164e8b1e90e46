//! Morgan (ECFP-like) fingerprints with RDKit's default atom and bond invariants, as
//! `rdFingerprintGenerator.GetMorganGenerator(radius)` (and the older
//! `AllChem.GetMorganFingerprint`) compute them: the same 32-bit environment ids.

use std::collections::{BTreeMap, HashSet};

use super::hash::{hash_combine, hash_pair, hash_range};
use super::masses::{ATOMIC_WEIGHTS, DELTA_EXCEPTIONS};
use super::{BitVec, CountVec};
use crate::chem::smarts::Target;
use crate::chem::{BondType, Mol};

/// RDKit's `Bond::BondType` number, which the Morgan bond invariant uses.
pub(super) fn rdkit_bond_type(kind: BondType) -> u32 {
    match kind {
        BondType::Zero => 0,
        BondType::Single => 1,
        BondType::Double => 2,
        BondType::Triple => 3,
        BondType::Quadruple => 4,
        BondType::Aromatic => 12,
        BondType::Dative => 17,
    }
}

/// `int(atom.GetMass() - atomic_weight(Z))` for an atom with an optional isotope.
fn delta_mass(z: u8, isotope: Option<u16>) -> i32 {
    let Some(iso) = isotope else {
        return 0;
    };
    if z == 0 {
        return 0;
    }
    if let Ok(i) = DELTA_EXCEPTIONS.binary_search_by(|e| (e.0, e.1).cmp(&(z, iso))) {
        return DELTA_EXCEPTIONS[i].2;
    }
    let weight = ATOMIC_WEIGHTS.get(usize::from(z)).copied().unwrap_or(0.0);
    (f64::from(iso) - weight) as i32
}

/// RDKit's default Morgan atom invariants (`getConnectivityInvariants` with ring membership):
/// the hash of atomic number, total degree, total hydrogens, formal charge, delta mass and a
/// 1 for ring atoms.
pub fn atom_invariants(target: &Target) -> Vec<u32> {
    let mol = target.mol;
    (0..mol.atoms.len())
        .map(|a| {
            let atom = &mol.atoms[a];
            let mut c = [0u32; 6];
            c[0] = u32::from(atom.element);
            c[1] = (mol.degree(a) + usize::from(atom.total_h())) as u32;
            c[2] = target.total_h[a];
            c[3] = i32::from(atom.charge) as u32;
            c[4] = delta_mass(atom.element, atom.isotope) as u32;
            let n = if target.atom_ring_count[a] > 0 {
                c[5] = 1;
                6
            } else {
                5
            };
            hash_range(&c[..n])
        })
        .collect()
}

/// The Morgan environments of radius up to `radius`: every environment id with how often it
/// occurs (RDKit's unhashed count fingerprint, e.g. `GetMorganFingerprint(mol, 2)`).
pub fn morgan_counts(target: &Target, radius: u32) -> CountVec {
    let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
    for id in morgan_ids(target.mol, &atom_invariants(target), radius) {
        *counts.entry(id).or_insert(0) += 1;
    }
    CountVec::from_sorted(counts.into_iter().collect())
}

/// The hashed Morgan bit vector of `n_bits` bits (`GetMorganFingerprintAsBitVect`): each
/// environment id sets bit `id % n_bits`. `n_bits` must be positive.
pub fn morgan_bits(target: &Target, radius: u32, n_bits: usize) -> BitVec {
    let mut bits = BitVec::new(n_bits);
    for id in morgan_ids(target.mol, &atom_invariants(target), radius) {
        bits.set(id as usize % n_bits);
    }
    bits
}

/// Every environment id the Morgan algorithm emits (with repeats), in no particular order.
fn morgan_ids(mol: &Mol, invariants: &[u32], radius: u32) -> Vec<u32> {
    morgan_environments(mol, invariants, radius).0
}

/// [`morgan_ids`], and the largest number of bond indices held at once for the environments
/// (the memory the algorithm needs beyond the ids).
///
/// An atom's environment is the set of bonds it covers: its own bonds and, from the second
/// round on, its neighbours' environments of the previous round (a dead atom's stays what it
/// was when it died). RDKit keeps these as bit sets of all bonds, n x bonds bits; here each
/// is a sorted list of bond indices, as long as the environment is. Equal sets are what
/// matters (an environment seen before kills its atom; of the atoms sharing a new one, the
/// smallest (invariant, atom) survives), not how the sets are ordered among themselves.
fn morgan_environments(mol: &Mol, invariants: &[u32], radius: u32) -> (Vec<u32>, usize) {
    let n = mol.atoms.len();
    let bond_inv: Vec<i32> = mol
        .bonds
        .iter()
        .map(|b| rdkit_bond_type(b.kind) as i32)
        .collect();
    let mut result: Vec<u32> = invariants.to_vec();
    let mut current: Vec<u32> = invariants.to_vec();
    let mut next = vec![0u32; n];
    // Bonds covered by each atom's environment as of the previous round, sorted.
    let mut env: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut held = 0usize;
    let mut peak = 0usize;
    let mut dead = vec![false; n];
    let mut seen: HashSet<Vec<u32>> = HashSet::new();
    let mut neighbours: Vec<(i32, u32)> = Vec::with_capacity(8);
    for layer in 0..radius {
        let mut this_round: Vec<(Vec<u32>, u32, usize)> = Vec::with_capacity(n);
        let mut round_held = 0usize;
        for a in 0..n {
            if dead[a] {
                continue;
            }
            if mol.degree(a) == 0 {
                dead[a] = true;
                continue;
            }
            neighbours.clear();
            let mut covered: Vec<u32> = env[a].clone();
            for &b in &mol.atom_bonds[a] {
                let o = mol.bonds[b].other(a);
                covered.push(b as u32);
                covered.extend_from_slice(&env[o]);
                neighbours.push((bond_inv[b], current[o]));
            }
            covered.sort_unstable();
            covered.dedup();
            covered.shrink_to_fit();
            round_held += covered.len();
            neighbours.sort_unstable();
            let mut invar = layer;
            hash_combine(&mut invar, current[a]);
            for &(bt, inv) in &neighbours {
                hash_combine(&mut invar, hash_pair(bt, inv));
            }
            next[a] = invar;
            this_round.push((covered, invar, a));
        }
        peak = peak.max(held + round_held);
        this_round.sort_unstable();
        for (covered, invar, a) in this_round {
            if seen.contains(&covered) {
                dead[a] = true;
            } else {
                result.push(invar);
                held += covered.len();
                seen.insert(covered.clone());
            }
            held = held + covered.len() - env[a].len();
            env[a] = covered;
        }
        std::mem::swap(&mut current, &mut next);
        next.iter_mut().for_each(|v| *v = 0);
    }
    (result, peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chem::mol_from_smiles;

    /// Environments are held as lists as long as they are: for radius 2 a chain needs a few
    /// bond indices per atom, not one bit per bond per atom (n^2 / 8 bytes, 1.25 GB for
    /// 100k atoms).
    #[test]
    fn environment_memory_is_linear_in_the_atom_count() {
        for n in [1_000, 20_000] {
            let mol = mol_from_smiles(&"C".repeat(n)).expect("chain");
            let target = Target::new(&mol);
            let (ids, held) = morgan_environments(&mol, &atom_invariants(&target), 2);
            assert!(held <= 20 * n, "{held} bond indices held for {n} atoms");
            assert!(ids.len() >= n);
        }
    }
}
