//! Ring perception as RDKit's sanitization does it.
//!
//! Current RDKit (`symmetrizeSSSR` with the default, non-legacy algorithm) stores the
//! *relevant cycles* of the molecule: every cycle that cannot be written as a sum
//! (symmetric difference of bond sets) of strictly shorter cycles. This is the union of
//! all minimum cycle bases, so symmetric systems keep all their equivalent rings (six
//! four-membered rings for cubane, both six-membered rings of a bicyclo\[2.2.2\] cage).
//!
//! Relevant cycles are isometric: both arcs between a ring atom and the opposite atom
//! (or bond) are shortest paths. So every one of them is found by joining two
//! shortest paths from some root atom; candidates are then kept when they are
//! independent of all shorter candidates (Gaussian elimination over GF(2)).
//!
//! Rings are listed per connected component (in order of lowest atom), block by block,
//! smallest first (ties broken by atom degree and index), each starting at its lowest atom and continuing
//! towards its lower neighbour, which is how RDKit presents them.

use std::collections::{HashSet, VecDeque};

use super::{BondType, Mol};

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
    pub fn new(mol: &Mol) -> Self {
        let core = cyclic_core(mol);
        let mut atom_rings = Vec::new();
        for component in ring_components(mol) {
            atom_rings.extend(relevant_cycles(mol, &component, &core));
        }
        let bond_rings = atom_rings
            .iter()
            .map(|ring| ring_bonds(mol, ring))
            .collect();
        RingInfo {
            atom_rings,
            bond_rings,
        }
    }

    /// Number of rings that contain `atom`.
    pub fn num_atom_rings(&self, atom: usize) -> usize {
        self.atom_rings.iter().filter(|r| r.contains(&atom)).count()
    }

    /// Number of rings that contain `bond`.
    pub fn num_bond_rings(&self, bond: usize) -> usize {
        self.bond_rings.iter().filter(|r| r.contains(&bond)).count()
    }

    /// True when `atom` belongs to at least one ring.
    pub fn is_atom_in_ring(&self, atom: usize) -> bool {
        self.atom_rings.iter().any(|r| r.contains(&atom))
    }

    /// True when `bond` belongs to at least one ring.
    pub fn is_bond_in_ring(&self, bond: usize) -> bool {
        self.bond_rings.iter().any(|r| r.contains(&bond))
    }
}

/// Most shortest paths followed from one root to one atom; beyond this the search
/// stops adding paths (only reached by huge symmetric cages).
const MAX_PATHS_PER_ATOM: usize = 256;

/// Bonds that take part in ring finding: RDKit ignores dative bonds, but not `~` (read as
/// RDKit's UNSPECIFIED bond type).
fn active_bond(mol: &Mol, b: usize) -> bool {
    mol.bonds[b].kind != BondType::Dative
}

/// Bond indices around a ring given as atoms in ring order (the last bond closes the ring).
fn ring_bonds(mol: &Mol, ring: &[usize]) -> Vec<usize> {
    let n = ring.len();
    (0..n)
        .filter_map(|i| mol.bond_between(ring[i], ring[(i + 1) % n]))
        .collect()
}

/// Connected components (over ring-capable bonds) that contain a cycle, each as a
/// sorted atom list, ordered by lowest atom.
fn ring_components(mol: &Mol) -> Vec<Vec<usize>> {
    let n = mol.atoms.len();
    let mut seen = vec![false; n];
    let mut components = Vec::new();
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut atoms = vec![start];
        let mut bonds = 0usize;
        let mut i = 0;
        while i < atoms.len() {
            let a = atoms[i];
            i += 1;
            for &b in &mol.atom_bonds[a] {
                if !active_bond(mol, b) {
                    continue;
                }
                bonds += 1;
                let o = mol.bonds[b].other(a);
                if !seen[o] {
                    seen[o] = true;
                    atoms.push(o);
                }
            }
        }
        // Each bond was counted from both ends.
        if bonds / 2 >= atoms.len() {
            atoms.sort_unstable();
            components.push(atoms);
        }
    }
    components
}

/// Atoms left after repeatedly removing atoms with at most one (ring-capable) bond:
/// the only atoms that can lie on a cycle.
fn cyclic_core(mol: &Mol) -> Vec<bool> {
    let n = mol.atoms.len();
    let mut degree: Vec<usize> = (0..n)
        .map(|a| {
            mol.atom_bonds[a]
                .iter()
                .filter(|&&b| active_bond(mol, b))
                .count()
        })
        .collect();
    let mut core = vec![true; n];
    let mut leaves: Vec<usize> = (0..n).filter(|&a| degree[a] < 2).collect();
    while let Some(a) = leaves.pop() {
        if !core[a] {
            continue;
        }
        core[a] = false;
        for &b in &mol.atom_bonds[a] {
            if !active_bond(mol, b) {
                continue;
            }
            let o = mol.bonds[b].other(a);
            if core[o] {
                degree[o] -= 1;
                if degree[o] < 2 {
                    leaves.push(o);
                }
            }
        }
    }
    core
}

/// Vertex order used by the cycle search and the ring sort: (degree, index).
fn rank(mol: &Mol, a: usize) -> (usize, usize) {
    (mol.degree(a), a)
}

/// Shortest-path structure from one root: distance and all shortest-path parents.
struct ShortestPaths {
    dist: Vec<usize>,
    parents: Vec<Vec<usize>>,
}

/// Breadth-first search from `root` through the atoms marked in `allowed`.
fn shortest_paths(mol: &Mol, root: usize, allowed: &[bool]) -> ShortestPaths {
    let n = mol.atoms.len();
    let mut dist = vec![usize::MAX; n];
    let mut parents = vec![Vec::new(); n];
    dist[root] = 0;
    let mut queue = VecDeque::from([root]);
    while let Some(a) = queue.pop_front() {
        for &b in &mol.atom_bonds[a] {
            if !active_bond(mol, b) {
                continue;
            }
            let o = mol.bonds[b].other(a);
            if !allowed[o] {
                continue;
            }
            if dist[o] == usize::MAX {
                dist[o] = dist[a] + 1;
                parents[o].push(a);
                queue.push_back(o);
            } else if dist[o] == dist[a] + 1 {
                parents[o].push(a);
            }
        }
    }
    ShortestPaths { dist, parents }
}

/// All shortest paths from the root to `target`, each listed root first.
fn paths_to(
    sp: &ShortestPaths,
    target: usize,
    memo: &mut [Option<Vec<Vec<usize>>>],
) -> Vec<Vec<usize>> {
    if let Some(p) = &memo[target] {
        return p.clone();
    }
    let result = if sp.parents[target].is_empty() {
        vec![vec![target]]
    } else {
        let mut out = Vec::new();
        for &p in &sp.parents[target] {
            for mut path in paths_to(sp, p, memo) {
                if out.len() >= MAX_PATHS_PER_ATOM {
                    break;
                }
                path.push(target);
                out.push(path);
            }
        }
        out
    };
    memo[target] = Some(result.clone());
    result
}

/// A candidate cycle: atoms in ring order and its bond set as a bit vector.
struct Cycle {
    atoms: Vec<usize>,
    bits: Vec<u64>,
}

fn bond_bits(mol: &Mol, ring: &[usize]) -> Vec<u64> {
    let mut bits = vec![0u64; mol.bonds.len().div_ceil(64)];
    for b in ring_bonds(mol, ring) {
        bits[b / 64] |= 1 << (b % 64);
    }
    bits
}

/// Joins two root-first paths that share only the root into a ring.
fn join(first: &[usize], second: &[usize]) -> Option<Vec<usize>> {
    if first[1..].iter().any(|a| second[1..].contains(a)) {
        return None;
    }
    let mut ring = first.to_vec();
    ring.extend(second[1..].iter().rev());
    Some(ring)
}

/// Every cycle made of two shortest paths from a common root (plus one bond for odd
/// cycles), without duplicates. As in Vismara's algorithm, the search from a root only
/// uses core atoms ranked below it, so each cycle is built from its top-ranked atom;
/// relevant cycles are isometric, so none is missed.
fn candidate_cycles(mol: &Mol, component: &[usize], core: &[bool]) -> Vec<Cycle> {
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    let mut cycles = Vec::new();
    let mut add = |ring: Vec<usize>, cycles: &mut Vec<Cycle>| {
        let bits = bond_bits(mol, &ring);
        if seen.insert(bits.clone()) {
            cycles.push(Cycle { atoms: ring, bits });
        }
    };
    let ring_atoms: Vec<usize> = component.iter().copied().filter(|&a| core[a]).collect();
    let mut allowed = vec![false; mol.atoms.len()];
    for &root in &ring_atoms {
        for &a in &ring_atoms {
            allowed[a] = rank(mol, a) <= rank(mol, root);
        }
        let sp = shortest_paths(mol, root, &allowed);
        let mut memo: Vec<Option<Vec<Vec<usize>>>> = vec![None; mol.atoms.len()];
        for &a in &ring_atoms {
            if a == root || sp.dist[a] == usize::MAX {
                continue;
            }
            // Even cycles: two shortest paths meeting at `a` from different parents.
            let parents = &sp.parents[a];
            for (i, &y) in parents.iter().enumerate() {
                for &z in &parents[i + 1..] {
                    let py = paths_to(&sp, y, &mut memo);
                    let pz = paths_to(&sp, z, &mut memo);
                    for p in &py {
                        for q in &pz {
                            let mut first = p.clone();
                            first.push(a);
                            if let Some(ring) = join(&first, q) {
                                add(ring, &mut cycles);
                            }
                        }
                    }
                }
            }
            // Odd cycles: a bond between two atoms at the same distance.
            for &b in &mol.atom_bonds[a] {
                if !active_bond(mol, b) {
                    continue;
                }
                let o = mol.bonds[b].other(a);
                if o > a && allowed[o] && sp.dist[o] == sp.dist[a] {
                    let pa = paths_to(&sp, a, &mut memo);
                    let po = paths_to(&sp, o, &mut memo);
                    for p in &pa {
                        for q in &po {
                            if let Some(ring) = join(p, q) {
                                add(ring, &mut cycles);
                            }
                        }
                    }
                }
            }
        }
        for &a in &ring_atoms {
            allowed[a] = false;
        }
    }
    cycles
}

/// Reduces `v` by the GF(2) basis (each row keyed by its pivot bit); true when `v`
/// becomes zero, i.e. lies in the span.
fn reduce(basis: &[(usize, Vec<u64>)], v: &mut [u64]) -> bool {
    for (pivot, row) in basis {
        if v[pivot / 64] >> (pivot % 64) & 1 == 1 {
            for (x, r) in v.iter_mut().zip(row) {
                *x ^= r;
            }
        }
    }
    v.iter().all(|&x| x == 0)
}

/// Highest set bit of a non-zero bit vector.
fn pivot_of(v: &[u64]) -> Option<usize> {
    v.iter()
        .enumerate()
        .rev()
        .find(|(_, &w)| w != 0)
        .map(|(i, &w)| i * 64 + 63 - w.leading_zeros() as usize)
}

/// Inserts `v` (already reduced) into the basis, keeping rows reduced at the new pivot.
fn insert(basis: &mut Vec<(usize, Vec<u64>)>, v: Vec<u64>) {
    let Some(pivot) = pivot_of(&v) else {
        return;
    };
    for (_, row) in basis.iter_mut() {
        if row[pivot / 64] >> (pivot % 64) & 1 == 1 {
            for (r, x) in row.iter_mut().zip(&v) {
                *r ^= x;
            }
        }
    }
    basis.push((pivot, v));
}

/// The relevant cycles of one component, ordered and normalized like RDKit's.
fn relevant_cycles(mol: &Mol, component: &[usize], core: &[bool]) -> Vec<Vec<usize>> {
    let mut candidates = candidate_cycles(mol, component, core);
    candidates.sort_by_key(|c| c.atoms.len());
    let mut basis: Vec<(usize, Vec<u64>)> = Vec::new();
    let mut relevant = Vec::new();
    let mut start = 0;
    while start < candidates.len() {
        let len = candidates[start].atoms.len();
        let end = start
            + candidates[start..]
                .iter()
                .take_while(|c| c.atoms.len() == len)
                .count();
        // Relevance is judged against strictly shorter cycles only.
        let mut reduced = Vec::new();
        for cycle in &candidates[start..end] {
            let mut v = cycle.bits.clone();
            if !reduce(&basis, &mut v) {
                relevant.push(normalize(&cycle.atoms));
                reduced.push(v);
            }
        }
        for mut v in reduced {
            if !reduce(&basis, &mut v) {
                insert(&mut basis, v);
            }
        }
        start = end;
    }
    let blocks = block_order(mol, component);
    relevant.sort_by_cached_key(|r| RingKey::new(mol, r, &blocks));
    relevant
}

/// For each bond, the position at which its biconnected block is completed by a
/// depth-first search from the component's lowest atom (bonds taken in index order);
/// `usize::MAX` for bonds outside the component.
fn block_order(mol: &Mol, component: &[usize]) -> Vec<usize> {
    let n = mol.atoms.len();
    let mut block = vec![usize::MAX; mol.bonds.len()];
    let Some(&start) = component.first() else {
        return block;
    };
    let adjacency = |a: usize| {
        let mut bonds: Vec<usize> = mol.atom_bonds[a]
            .iter()
            .copied()
            .filter(|&b| active_bond(mol, b))
            .collect();
        bonds.sort_unstable();
        bonds
    };
    let mut disc = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut timer = 0;
    let mut next_block = 0;
    let mut edges: Vec<usize> = Vec::new();
    // Frames: (atom, bond to parent, its bonds, next position).
    let mut frames: Vec<(usize, Option<usize>, Vec<usize>, usize)> =
        vec![(start, None, adjacency(start), 0)];
    disc[start] = timer;
    low[start] = timer;
    timer += 1;
    while let Some(frame) = frames.last_mut() {
        let v = frame.0;
        if frame.3 < frame.2.len() {
            let b = frame.2[frame.3];
            frame.3 += 1;
            if Some(b) == frame.1 {
                continue;
            }
            let w = mol.bonds[b].other(v);
            if disc[w] == usize::MAX {
                edges.push(b);
                disc[w] = timer;
                low[w] = timer;
                timer += 1;
                frames.push((w, Some(b), adjacency(w), 0));
            } else if disc[w] < disc[v] {
                edges.push(b);
                low[v] = low[v].min(disc[w]);
            }
            continue;
        }
        let Some((v, parent_bond, _, _)) = frames.pop() else {
            break;
        };
        let (Some(tree_bond), Some(parent)) = (parent_bond, frames.last()) else {
            continue;
        };
        let u = parent.0;
        low[u] = low[u].min(low[v]);
        if low[v] >= disc[u] {
            while let Some(e) = edges.pop() {
                block[e] = next_block;
                if e == tree_bond {
                    break;
                }
            }
            next_block += 1;
        }
    }
    block
}

/// Sort key reproducing RDKit's ring order: rings of blocks completed earlier first;
/// within a block by size, then by lowest atom, then by the top atom in (degree, index)
/// order, then by the atom (or lower atom of the bond) opposite to it, then by the
/// other atoms.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RingKey {
    block: usize,
    size: usize,
    lowest: usize,
    top: (usize, usize),
    opposite: (usize, usize),
    rest: Vec<(usize, usize)>,
}

impl RingKey {
    fn new(mol: &Mol, ring: &[usize], blocks: &[usize]) -> Self {
        let n = ring.len();
        let block = mol
            .bond_between(ring[0], ring[1 % n])
            .map_or(usize::MAX, |b| blocks[b]);
        let top_pos = (0..n).max_by_key(|&i| rank(mol, ring[i])).unwrap_or(0);
        let far = ring[(top_pos + n / 2) % n];
        let opposite = if n.is_multiple_of(2) {
            (far, far)
        } else {
            let next = ring[(top_pos + n / 2 + 1) % n];
            (far.min(next), far.max(next))
        };
        let mut rest: Vec<(usize, usize)> = ring.iter().map(|&a| rank(mol, a)).collect();
        rest.sort_unstable_by(|x, y| y.cmp(x));
        RingKey {
            block,
            size: n,
            lowest: ring.iter().copied().min().unwrap_or(0),
            top: rank(mol, ring[top_pos]),
            opposite,
            rest,
        }
    }
}

/// Rotates/reverses a ring to start at its lowest atom, continuing to the lower neighbour.
fn normalize(ring: &[usize]) -> Vec<usize> {
    let n = ring.len();
    let start = (0..n).min_by_key(|&i| ring[i]).unwrap_or(0);
    let next = ring[(start + 1) % n];
    let prev = ring[(start + n - 1) % n];
    if next <= prev {
        (0..n).map(|i| ring[(start + i) % n]).collect()
    } else {
        (0..n).map(|i| ring[(start + n - i) % n]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chem::{Atom, BondDir};

    /// A carbon skeleton with the given bonds (all single).
    fn skeleton(n: usize, bonds: &[(usize, usize)]) -> Mol {
        let mut mol = Mol::new();
        for _ in 0..n {
            mol.add_atom(Atom {
                element: 6,
                ..Atom::default()
            });
        }
        for &(a, b) in bonds {
            mol.add_bond(a, b, BondType::Single, BondDir::None);
        }
        mol
    }

    #[test]
    fn chain_has_no_rings() {
        // CCCC
        let info = RingInfo::new(&skeleton(4, &[(0, 1), (1, 2), (2, 3)]));
        assert!(info.atom_rings.is_empty());
    }

    #[test]
    fn naphthalene_two_rings() {
        // c1ccc2ccccc2c1: RDKit AtomRings ((0,1,2,3,8,9), (3,4,5,6,7,8))
        let mol = skeleton(
            10,
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (3, 4),
                (4, 5),
                (5, 6),
                (6, 7),
                (7, 8),
                (8, 9),
                (9, 0),
                (8, 3),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(
            info.atom_rings,
            vec![vec![0, 1, 2, 3, 8, 9], vec![3, 4, 5, 6, 7, 8]]
        );
        assert_eq!(info.bond_rings[0], vec![0, 1, 2, 10, 8, 9]);
        assert_eq!(info.num_atom_rings(3), 2);
        assert_eq!(info.num_bond_rings(10), 2);
    }

    #[test]
    fn cubane_has_six_rings_in_rdkit_order() {
        // C12C3C4C1C5C2C3C45: RDKit ((0,1,2,3), (0,3,4,5), (0,1,6,5), (1,2,7,6),
        // (2,3,4,7), (4,5,6,7))
        let mol = skeleton(
            8,
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (3, 4),
                (4, 5),
                (5, 6),
                (6, 7),
                (3, 0),
                (5, 0),
                (6, 1),
                (7, 2),
                (7, 4),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(
            info.atom_rings,
            vec![
                vec![0, 1, 2, 3],
                vec![0, 3, 4, 5],
                vec![0, 1, 6, 5],
                vec![1, 2, 7, 6],
                vec![2, 3, 4, 7],
                vec![4, 5, 6, 7]
            ]
        );
    }

    #[test]
    fn rings_listed_per_component_and_block() {
        // C1CCCCC1.C1CC1 -> ((0..5), (6,7,8)): components in atom order
        let mut bonds: Vec<(usize, usize)> = (0..5).map(|i| (i, i + 1)).collect();
        bonds.extend([(5, 0), (6, 7), (7, 8), (8, 6)]);
        let info = RingInfo::new(&skeleton(9, &bonds));
        assert_eq!(info.atom_rings, vec![vec![0, 1, 2, 3, 4, 5], vec![6, 7, 8]]);
        // C1CC1CC1CCCCC1 -> ((4..9), (0,1,2)): the block finished first comes first
        let mut bonds: Vec<(usize, usize)> = (0..9).map(|i| (i, i + 1)).collect();
        bonds.extend([(2, 0), (9, 4)]);
        let info = RingInfo::new(&skeleton(10, &bonds));
        assert_eq!(info.atom_rings, vec![vec![4, 5, 6, 7, 8, 9], vec![0, 1, 2]]);
        // C1CCCCC1CC1CC1 -> ((7,8,9), (0..5))
        let mut bonds: Vec<(usize, usize)> = (0..9).map(|i| (i, i + 1)).collect();
        bonds.extend([(5, 0), (9, 7)]);
        let info = RingInfo::new(&skeleton(10, &bonds));
        assert_eq!(info.atom_rings, vec![vec![7, 8, 9], vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn bicyclic_cage_keeps_all_equivalent_rings() {
        // CC12CCC(=NNC(N)=O)C3C1CCCC32 skeleton reduced to its ring atoms: RDKit lists
        // five rings for the [2.2.2]-like core, including both equivalent six-rings.
        // Bicyclo[2.2.2]octane C1CC2CCC1CC2: three six-membered relevant cycles.
        let mol = skeleton(
            8,
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (3, 4),
                (4, 5),
                (5, 0),
                (5, 6),
                (6, 7),
                (7, 2),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(info.atom_rings.len(), 3);
        assert!(info.atom_rings.iter().all(|r| r.len() == 6));
    }

    #[test]
    fn substituent_is_not_in_ring() {
        // C1CC1C: atom 3 and bond 3 are outside the ring
        let info = RingInfo::new(&skeleton(4, &[(0, 1), (1, 2), (2, 0), (2, 3)]));
        assert!(info.is_atom_in_ring(2));
        assert!(!info.is_atom_in_ring(3));
        assert!(info.is_bond_in_ring(2));
        assert!(!info.is_bond_in_ring(3));
    }
}
