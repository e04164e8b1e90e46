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
        let cycle = CycleParts::new(mol);
        let mut atom_rings = Vec::new();
        for component in ring_components(mol) {
            atom_rings.extend(relevant_cycles(mol, &component, &cycle));
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

/// The bonds and atoms that lie on some cycle: every ring-capable bond that is not a bridge,
/// and the atoms at its ends. A chain between two rings (a linker, a polymer backbone)
/// holds none, so the cycle search neither starts from nor walks through it: its cost does
/// not grow with the length of such chains.
struct CycleParts {
    /// Per bond: on a cycle.
    bond: Vec<bool>,
    /// Per atom: on a cycle.
    atom: Vec<bool>,
}

impl CycleParts {
    /// Finds the bridges with one depth-first search (Tarjan's low-link), iteratively.
    fn new(mol: &Mol) -> Self {
        let n = mol.atoms.len();
        let mut disc = vec![usize::MAX; n];
        let mut low = vec![0usize; n];
        let mut bond = vec![false; mol.bonds.len()];
        let mut timer = 0;
        // Frames: (atom, bond to its parent, next position in its bond list).
        let mut stack: Vec<(usize, usize, usize)> = Vec::new();
        for start in 0..n {
            if disc[start] != usize::MAX {
                continue;
            }
            disc[start] = timer;
            low[start] = timer;
            timer += 1;
            stack.push((start, usize::MAX, 0));
            while let Some(&mut (v, up, ref mut next)) = stack.last_mut() {
                if let Some(&b) = mol.atom_bonds[v].get(*next) {
                    *next += 1;
                    if b == up || !active_bond(mol, b) {
                        continue;
                    }
                    let u = mol.bonds[b].other(v);
                    if disc[u] == usize::MAX {
                        disc[u] = timer;
                        low[u] = timer;
                        timer += 1;
                        stack.push((u, b, 0));
                    } else {
                        // A bond back to an atom already on the search path closes a cycle.
                        low[v] = low[v].min(disc[u]);
                        bond[b] = true;
                    }
                    continue;
                }
                stack.pop();
                if let Some(&(parent, _, _)) = stack.last() {
                    low[parent] = low[parent].min(low[v]);
                    // The tree bond is a bridge unless the subtree reaches above `parent`.
                    if low[v] <= disc[parent] {
                        bond[up] = true;
                    }
                }
            }
        }
        let mut atom = vec![false; n];
        for (b, _) in bond.iter().enumerate().filter(|(_, &on)| on) {
            atom[mol.bonds[b].begin] = true;
            atom[mol.bonds[b].end] = true;
        }
        CycleParts { bond, atom }
    }
}

/// Vertex order used by the cycle search and the ring sort: (degree, index).
fn rank(mol: &Mol, a: usize) -> (usize, usize) {
    (mol.degree(a), a)
}

/// Shortest-path structure from one root: distance and all shortest-path parents of the
/// atoms the search reached. Reused from root to root and reset only where the last search
/// went, so a search costs what it reaches, not the size of the molecule.
struct ShortestPaths {
    dist: Vec<usize>,
    parents: Vec<Vec<usize>>,
    /// Atoms reached by the last search, in the order they were found.
    reached: Vec<usize>,
}

impl ShortestPaths {
    /// Room for the atoms of `mol`, nothing reached.
    fn new(mol: &Mol) -> Self {
        let n = mol.atoms.len();
        ShortestPaths {
            dist: vec![usize::MAX; n],
            parents: vec![Vec::new(); n],
            reached: Vec::new(),
        }
    }

    /// Breadth-first search from `root` through the atoms `allowed` accepts, along bonds on a
    /// cycle (a path over a bridge never closes a ring).
    fn search(
        &mut self,
        mol: &Mol,
        root: usize,
        allowed: impl Fn(usize) -> bool,
        cycle_bond: &[bool],
    ) {
        for &a in &self.reached {
            self.dist[a] = usize::MAX;
            self.parents[a].clear();
        }
        self.reached.clear();
        self.dist[root] = 0;
        self.reached.push(root);
        let mut queue = VecDeque::from([root]);
        while let Some(a) = queue.pop_front() {
            for &b in &mol.atom_bonds[a] {
                if !cycle_bond[b] {
                    continue;
                }
                let o = mol.bonds[b].other(a);
                if !allowed(o) {
                    continue;
                }
                if self.dist[o] == usize::MAX {
                    self.dist[o] = self.dist[a] + 1;
                    self.parents[o].push(a);
                    self.reached.push(o);
                    queue.push_back(o);
                } else if self.dist[o] == self.dist[a] + 1 {
                    self.parents[o].push(a);
                }
            }
        }
    }
}

/// All shortest paths from the root to `target`, each listed root first (at most
/// [`MAX_PATHS_PER_ATOM`], in parent order). Atoms are filled into `memo` nearest first, so
/// a deep target (a large ring) needs no deep recursion.
fn paths_to(
    sp: &ShortestPaths,
    target: usize,
    memo: &mut [Option<Vec<Vec<usize>>>],
) -> Vec<Vec<usize>> {
    // The target's ancestors whose paths are not known yet, found going up.
    let mut missing = Vec::new();
    let mut stack = vec![target];
    while let Some(a) = stack.pop() {
        if memo[a].is_some() {
            continue;
        }
        memo[a] = Some(Vec::new());
        missing.push(a);
        stack.extend(&sp.parents[a]);
    }
    // Nearest to the root first: every parent's paths are complete before its children's.
    missing.sort_by_key(|&a| sp.dist[a]);
    for a in missing {
        let paths = if sp.parents[a].is_empty() {
            vec![vec![a]]
        } else {
            let mut out = Vec::new();
            for &p in &sp.parents[a] {
                for path in memo[p].iter().flatten() {
                    if out.len() >= MAX_PATHS_PER_ATOM {
                        break;
                    }
                    let mut longer = Vec::with_capacity(path.len() + 1);
                    longer.extend_from_slice(path);
                    longer.push(a);
                    out.push(longer);
                }
            }
            out
        };
        memo[a] = Some(paths);
    }
    memo[target].clone().unwrap_or_default()
}

/// A candidate cycle: atoms in ring order and its bonds, sorted.
struct Cycle {
    atoms: Vec<usize>,
    bonds: Vec<usize>,
}

/// The bonds of a ring given as atoms in ring order, sorted: the ring's identity.
fn sorted_ring_bonds(mol: &Mol, ring: &[usize]) -> Vec<usize> {
    let mut bonds = ring_bonds(mol, ring);
    bonds.sort_unstable();
    bonds
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
/// uses atoms on a cycle ranked below it, so each cycle is built from its top-ranked atom;
/// relevant cycles are isometric, so none is missed.
fn candidate_cycles(mol: &Mol, component: &[usize], cycle: &CycleParts) -> Vec<Cycle> {
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut cycles = Vec::new();
    let mut add = |ring: Vec<usize>, cycles: &mut Vec<Cycle>| {
        let bonds = sorted_ring_bonds(mol, &ring);
        if seen.insert(bonds.clone()) {
            cycles.push(Cycle { atoms: ring, bonds });
        }
    };
    let ring_atoms: Vec<usize> = component
        .iter()
        .copied()
        .filter(|&a| cycle.atom[a])
        .collect();
    let mut sp = ShortestPaths::new(mol);
    let mut memo: Vec<Option<Vec<Vec<usize>>>> = vec![None; mol.atoms.len()];
    let mut targets: Vec<usize> = Vec::new();
    for &root in &ring_atoms {
        let allowed = |a: usize| cycle.atom[a] && rank(mol, a) <= rank(mol, root);
        for &a in &sp.reached {
            memo[a] = None;
        }
        sp.search(mol, root, allowed, &cycle.bond);
        // The reached atoms in atom order, as the component lists them.
        targets.clear();
        targets.extend(sp.reached.iter().copied().filter(|&a| a != root));
        targets.sort_unstable();
        for &a in &targets {
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
                if !cycle.bond[b] {
                    continue;
                }
                let o = mol.bonds[b].other(a);
                if o > a && allowed(o) && sp.dist[o] == sp.dist[a] {
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
///
/// The cycle space is the direct sum of its blocks' (biconnected components'), so a cycle is
/// a sum of shorter ones exactly when it is a sum of shorter ones of its own block: the
/// elimination runs block by block, on bit sets as long as the block has bonds.
fn relevant_cycles(mol: &Mol, component: &[usize], cycle: &CycleParts) -> Vec<Vec<usize>> {
    let mut candidates = candidate_cycles(mol, component, cycle);
    candidates.sort_by_key(|c| c.atoms.len());
    let blocks = block_order(mol, component);
    // Each bond's position among its block's bonds, and the candidates of each block (in
    // length order).
    let mut local = vec![0usize; mol.bonds.len()];
    let mut block_bonds: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for (b, &block) in blocks.iter().enumerate() {
        if block != usize::MAX {
            let count = block_bonds.entry(block).or_insert(0);
            local[b] = *count;
            *count += 1;
        }
    }
    let mut by_block: std::collections::BTreeMap<usize, Vec<&Cycle>> =
        std::collections::BTreeMap::new();
    for c in &candidates {
        let block = c.bonds.first().map_or(usize::MAX, |&b| blocks[b]);
        by_block.entry(block).or_default().push(c);
    }
    let mut relevant = Vec::new();
    for (block, cycles) in by_block {
        let words = block_bonds.get(&block).copied().unwrap_or(0).div_ceil(64);
        let bits = |c: &Cycle| {
            let mut v = vec![0u64; words];
            for &b in &c.bonds {
                v[local[b] / 64] |= 1 << (local[b] % 64);
            }
            v
        };
        let mut basis: Vec<(usize, Vec<u64>)> = Vec::new();
        let mut start = 0;
        while start < cycles.len() {
            let len = cycles[start].atoms.len();
            let end = start
                + cycles[start..]
                    .iter()
                    .take_while(|c| c.atoms.len() == len)
                    .count();
            // Relevance is judged against strictly shorter cycles only.
            let mut reduced = Vec::new();
            for c in &cycles[start..end] {
                let mut v = bits(c);
                if !reduce(&basis, &mut v) {
                    relevant.push(normalize(&c.atoms));
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
    }
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

    /// A chain between rings (linker, polymer backbone) is on no cycle: the search neither
    /// starts from it nor walks it (before, a 16k-atom linker took 12 s and a 100k-atom one
    /// ran out of memory).
    #[test]
    fn chains_between_rings_are_not_searched() {
        let n = 5000;
        let mut bonds: Vec<(usize, usize)> = (0..5).map(|i| (i, i + 1)).collect();
        bonds.push((5, 0));
        for i in 5..6 + n {
            bonds.push((i, i + 1));
        }
        let end = 6 + n;
        bonds.extend((end..end + 5).map(|i| (i, i + 1)));
        bonds.push((end + 5, end));
        let mol = skeleton(end + 6, &bonds);
        let parts = CycleParts::new(&mol);
        assert_eq!(parts.atom.iter().filter(|&&on| on).count(), 12);
        assert_eq!(parts.bond.iter().filter(|&&on| on).count(), 12);
        let mut rings = RingInfo::new(&mol).atom_rings;
        rings.sort();
        assert_eq!(
            rings,
            vec![(0..6).collect::<Vec<_>>(), (end..end + 6).collect()]
        );
    }

    /// Many rings hung on one backbone (polystyrene-like): each found once, in atom order.
    #[test]
    fn many_pendant_rings() {
        let units = 1000;
        let mut bonds = Vec::new();
        // Unit u: backbone atom 7u, ring atoms 7u+1..7u+6 hung on it.
        for u in 0..units {
            let b = 7 * u;
            if u > 0 {
                bonds.push((b - 7, b));
            }
            bonds.push((b, b + 1));
            for i in 1..6 {
                bonds.push((b + i, b + i + 1));
            }
            bonds.push((b + 6, b + 1));
        }
        let info = RingInfo::new(&skeleton(7 * units, &bonds));
        assert_eq!(info.atom_rings.len(), units);
        for (u, ring) in info.atom_rings.iter().enumerate() {
            assert_eq!(*ring, (7 * u + 1..7 * u + 7).collect::<Vec<_>>());
        }
    }

    /// The paths around a large ring are built without recursion: a small thread stack
    /// suffices (the recursive version overflowed a worker thread's stack at 20k atoms).
    #[test]
    fn a_large_ring_needs_no_deep_stack() {
        let n = 3000;
        let bonds: Vec<(usize, usize)> = (0..n).map(|i| (i, (i + 1) % n)).collect();
        let mol = skeleton(n, &bonds);
        let rings = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || RingInfo::new(&mol).atom_rings)
            .expect("thread starts")
            .join()
            .expect("no stack overflow");
        assert_eq!(rings, vec![(0..n).collect::<Vec<_>>()]);
    }
}
