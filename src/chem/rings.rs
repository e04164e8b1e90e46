//! Ring perception (RDKit's symmetrized SSSR).
//!
//! The smallest set of smallest rings is found with the Figueras-style procedure
//! RDKit uses during sanitization (`MolOps::findSSSR`): chains are trimmed away,
//! rings are grown by breadth-first search from degree-2 atoms (and, when none is
//! left, from a degree-3 atom), surplus rings are dropped greedily, and finally
//! (`symmetrizeSSSR`) dropped rings that could stand in for an SSSR ring of the
//! same size are added back. The exact sequence of choices matters, because for
//! fused systems several equally valid SSSRs exist and aromaticity perception
//! works on whichever RDKit picks.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

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
        let (sssr, extras) = match RingFinder::new(mol).find_sssr() {
            Some(found) => found,
            None => (fast_find_rings(mol), Vec::new()),
        };
        let atom_rings = symmetrize(mol, sssr, &extras);
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

/// Bond indices around a ring given as atoms in ring order (the last bond closes the ring).
/// Consecutive ring atoms are always bonded, so a missing bond is skipped.
fn ring_bonds(mol: &Mol, ring: &[usize]) -> Vec<usize> {
    let n = ring.len();
    (0..n)
        .filter_map(|i| mol.bond_between(ring[i], ring[(i + 1) % n]))
        .collect()
}

/// Order-independent identity of a ring: its sorted atom indices.
fn invariant(ring: &[usize]) -> Vec<usize> {
    let mut key = ring.to_vec();
    key.sort_unstable();
    key
}

/// Key that orders ring invariants like RDKit's bitsets (compared as binary numbers).
fn bitset_order_key(invar: &[usize]) -> Vec<usize> {
    invar.iter().rev().copied().collect()
}

/// Upper bound on the breadth-first queues, as in RDKit (which gives up beyond it).
const MAX_QUEUE: usize = 200_000;

/// Mutable state of the SSSR search over one molecule.
struct RingFinder<'a> {
    mol: &'a Mol,
    /// Bonds still taking part in the search.
    active: Vec<bool>,
    /// Number of active bonds at each atom.
    degree: Vec<i64>,
    /// Invariants of every ring found so far (all fragments).
    seen: HashSet<Vec<usize>>,
    /// Bonds of rings found from degree-2 atoms or by the connecting search.
    ring_bonds: Vec<bool>,
    /// Atoms of rings found from degree-2 atoms or by the connecting search.
    ring_atoms: Vec<bool>,
}

impl<'a> RingFinder<'a> {
    fn new(mol: &'a Mol) -> Self {
        let active: Vec<bool> = mol.bonds.iter().map(|b| b.kind != BondType::Zero).collect();
        let degree = mol
            .atom_bonds
            .iter()
            .map(|bs| bs.iter().filter(|&&b| active[b]).count() as i64)
            .collect();
        RingFinder {
            mol,
            active,
            degree,
            seen: HashSet::new(),
            ring_bonds: vec![false; mol.bonds.len()],
            ring_atoms: vec![false; mol.atoms.len()],
        }
    }

    /// The SSSR rings and the surplus rings set aside, or `None` when the search
    /// falls short and the approximate ring finder must be used instead.
    #[allow(clippy::type_complexity)]
    fn find_sssr(mut self) -> Option<(Vec<Vec<usize>>, Vec<Vec<usize>>)> {
        let mol = self.mol;
        let mut result = Vec::new();
        let mut extras = Vec::new();
        for frag in fragments(mol) {
            if frag.len() < 3 {
                continue;
            }
            let all_bonds: usize = frag.iter().map(|&a| mol.atom_bonds[a].len()).sum::<usize>() / 2;
            if all_bonds < frag.len() {
                continue;
            }
            let nbonds = (frag.iter().map(|&a| self.degree[a]).sum::<i64>() / 2) as usize;
            let mut changed: BTreeSet<usize> = frag
                .iter()
                .copied()
                .filter(|&a| self.degree[a] < 2)
                .collect();
            let mut done = vec![false; mol.atoms.len()];
            let mut n_done = 0;
            let mut found: Vec<Vec<usize>> = Vec::new();
            while n_done < frag.len() {
                while let Some(cand) = changed.pop_first() {
                    if !done[cand] {
                        done[cand] = true;
                        n_done += 1;
                        trim_bonds(mol, cand, &mut changed, &mut self.degree, &mut self.active);
                    }
                }
                let d2 = self.pick_d2_nodes(&frag);
                if !d2.is_empty() {
                    self.rings_from_d2_nodes(&mut found, &d2);
                    for &a in &d2 {
                        done[a] = true;
                        n_done += 1;
                        trim_bonds(mol, a, &mut changed, &mut self.degree, &mut self.active);
                    }
                } else if n_done < frag.len() {
                    let Some(cand) = frag.iter().copied().find(|&a| self.degree[a] == 3) else {
                        break;
                    };
                    self.rings_from_d3_node(&mut found, cand);
                    done[cand] = true;
                    n_done += 1;
                    trim_bonds(mol, cand, &mut changed, &mut self.degree, &mut self.active);
                }
            }
            let expected = (nbonds + 1).saturating_sub(frag.len());
            if found.len() < expected {
                self.connect_remaining(&mut found, nbonds);
                if found.len() < expected {
                    return None;
                }
            }
            if found.len() > expected {
                extras.extend(remove_extra_rings(mol, &mut found));
            }
            result.extend(found);
        }
        Some((result, extras))
    }

    /// Records a ring if it is new; returns whether it was.
    fn record(&mut self, found: &mut Vec<Vec<usize>>, ring: &[usize], mark: bool) -> bool {
        let key = invariant(ring);
        if self.seen.contains(&key) {
            return false;
        }
        self.seen.insert(key);
        found.push(ring.to_vec());
        if mark {
            for &a in ring {
                self.ring_atoms[a] = true;
            }
            for b in ring_bonds(self.mol, ring) {
                self.ring_bonds[b] = true;
            }
        }
        true
    }

    /// Degree-2 atoms to start ring searches from: one per connected run of degree-2 atoms.
    fn pick_d2_nodes(&self, frag: &[usize]) -> Vec<usize> {
        let mol = self.mol;
        let mut covered = vec![false; mol.atoms.len()];
        let mut picked = Vec::new();
        while let Some(root) = frag
            .iter()
            .copied()
            .find(|&a| self.degree[a] == 2 && !covered[a])
        {
            picked.push(root);
            covered[root] = true;
            let mut stack = vec![root];
            while let Some(a) = stack.pop() {
                for &b in &mol.atom_bonds[a] {
                    if !self.active[b] {
                        continue;
                    }
                    let o = mol.bonds[b].other(a);
                    if !covered[o] && self.degree[o] == 2 {
                        covered[o] = true;
                        stack.push(o);
                    }
                }
            }
        }
        picked
    }

    /// Smallest rings through each degree-2 start atom, then a second look at atoms
    /// whose smallest rings coincided.
    fn rings_from_d2_nodes(&mut self, found: &mut Vec<Vec<usize>>, d2: &[usize]) {
        let mol = self.mol;
        let mut by_ring: BTreeMap<Vec<usize>, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        let mut duplicates: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut node_rings: BTreeMap<usize, Vec<Vec<usize>>> = BTreeMap::new();
        for &cand in d2 {
            let rings = smallest_rings(mol, cand, &self.active, &[]);
            for ring in &rings {
                self.record(found, ring, true);
                let key = invariant(ring);
                node_rings.entry(cand).or_default().push(key.clone());
                for (&node, keys) in &node_rings {
                    if node != cand && keys.contains(&key) {
                        duplicates.entry(cand).or_default().push(node);
                        duplicates.entry(node).or_default().push(cand);
                    }
                }
                by_ring
                    .entry(bitset_order_key(&key))
                    .or_insert_with(|| (key, Vec::new()))
                    .1
                    .push(cand);
            }
            if rings.is_empty() {
                let mut changed = BTreeSet::from([cand]);
                while let Some(c) = changed.pop_first() {
                    trim_bonds(mol, c, &mut changed, &mut self.degree, &mut self.active);
                }
            }
        }
        for (_, cands) in by_ring.values() {
            if cands.len() < 2 {
                continue;
            }
            let mut candidates: Vec<Vec<usize>> = Vec::new();
            for &cand in cands {
                let mut degree = self.degree.clone();
                let mut active = self.active.clone();
                let mut changed = BTreeSet::new();
                for &other in duplicates.get(&cand).map(Vec::as_slice).unwrap_or(&[]) {
                    trim_bonds(mol, other, &mut changed, &mut degree, &mut active);
                }
                candidates.extend(smallest_rings(mol, cand, &active, &[]));
            }
            let min = candidates.iter().map(Vec::len).min().unwrap_or(0);
            for ring in candidates.iter().filter(|r| r.len() == min) {
                self.record(found, ring, false);
            }
        }
    }

    /// The (up to three) smallest rings through a degree-3 atom.
    fn rings_from_d3_node(&mut self, found: &mut Vec<Vec<usize>>, cand: usize) {
        let mol = self.mol;
        let rings = smallest_rings(mol, cand, &self.active, &[]);
        for ring in &rings {
            self.record(found, ring, false);
        }
        if rings.len() >= 3 || rings.is_empty() {
            return;
        }
        let nbrs: Vec<usize> = mol.atom_bonds[cand]
            .iter()
            .filter(|&&b| self.active[b])
            .map(|&b| mol.bonds[b].other(cand))
            .take(3)
            .collect();
        if nbrs.len() < 3 {
            return;
        }
        if rings.len() == 2 {
            let Some(&shared) = nbrs
                .iter()
                .find(|n| rings[0].contains(n) && rings[1].contains(n))
            else {
                return;
            };
            for ring in smallest_rings(mol, cand, &self.active, &[shared]) {
                self.record(found, &ring, false);
            }
        } else {
            let ring = &rings[0];
            let (f1, f2) = if !ring.contains(&nbrs[0]) {
                (nbrs[1], nbrs[2])
            } else if !ring.contains(&nbrs[1]) {
                (nbrs[0], nbrs[2])
            } else if !ring.contains(&nbrs[2]) {
                (nbrs[0], nbrs[1])
            } else {
                return;
            };
            for forbidden in [f2, f1] {
                for ring in smallest_rings(mol, cand, &self.active, &[forbidden]) {
                    self.record(found, &ring, false);
                }
            }
        }
    }

    /// Fallback for highly fused systems: close rings over non-ring bonds joining ring atoms.
    /// Like RDKit, only bonds with an index below the fragment's bond count are considered.
    fn connect_remaining(&mut self, found: &mut Vec<Vec<usize>>, nbonds: usize) {
        let mol = self.mol;
        let mut dead = vec![false; mol.bonds.len()];
        let limit = nbonds.min(mol.bonds.len());
        loop {
            let next = (0..limit).find(|&b| {
                let bond = &mol.bonds[b];
                !self.ring_bonds[b]
                    && !dead[b]
                    && self.ring_atoms[bond.begin]
                    && self.ring_atoms[bond.end]
            });
            let Some(b) = next else {
                return;
            };
            let (start, end) = (mol.bonds[b].begin, mol.bonds[b].end);
            match self.path_ring(start, end) {
                Some(ring) => {
                    self.record(found, &ring, true);
                }
                None => dead[b] = true,
            }
        }
    }

    /// Shortest new ring from `start` to `end` through ring atoms (breadth-first over paths).
    fn path_ring(&self, start: usize, end: usize) -> Option<Vec<usize>> {
        let mol = self.mol;
        let mut queue: VecDeque<Vec<usize>> = VecDeque::from([vec![start]]);
        while let Some(path) = queue.pop_front() {
            if queue.len() >= MAX_QUEUE {
                return None;
            }
            let curr = *path.last()?;
            for nbr in mol.neighbors(curr) {
                if nbr == end {
                    if curr != start {
                        let mut ring = path.clone();
                        ring.push(end);
                        if !self.seen.contains(&invariant(&ring)) {
                            return Some(ring);
                        }
                    }
                } else if self.ring_atoms[nbr] && !path.contains(&nbr) {
                    let mut next = path.clone();
                    next.push(nbr);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// Removes every active bond of `cand`, queueing neighbours left with degree <= 1.
fn trim_bonds(
    mol: &Mol,
    cand: usize,
    changed: &mut BTreeSet<usize>,
    degree: &mut [i64],
    active: &mut [bool],
) {
    for &b in &mol.atom_bonds[cand] {
        if !active[b] {
            continue;
        }
        let o = mol.bonds[b].other(cand);
        if degree[o] <= 2 {
            changed.insert(o);
        }
        active[b] = false;
        degree[o] -= 1;
        degree[cand] -= 1;
    }
}

/// All smallest rings through `root` over active bonds, avoiding `forbidden` atoms.
/// Each ring starts at `root` and lists its atoms in ring order.
fn smallest_rings(mol: &Mol, root: usize, active: &[bool], forbidden: &[usize]) -> Vec<Vec<usize>> {
    const WHITE: u8 = 0;
    const GRAY: u8 = 1;
    const BLACK: u8 = 2;
    const NONE: usize = usize::MAX;
    let n = mol.atoms.len();
    let mut color = vec![WHITE; n];
    for &f in forbidden {
        color[f] = BLACK;
    }
    let mut parent = vec![NONE; n];
    let mut depth = vec![0usize; n];
    let mut queue = VecDeque::from([root]);
    let mut rings: Vec<Vec<usize>> = Vec::new();
    let mut best = usize::MAX;
    while let Some(curr) = queue.pop_front() {
        if queue.len() >= MAX_QUEUE {
            break;
        }
        color[curr] = BLACK;
        let d = depth[curr] + 1;
        if d > best {
            break;
        }
        for &b in &mol.atom_bonds[curr] {
            if !active[b] {
                continue;
            }
            let nbr = mol.bonds[b].other(curr);
            if color[nbr] == BLACK || parent[curr] == nbr {
                continue;
            }
            if color[nbr] == WHITE {
                parent[nbr] = curr;
                color[nbr] = GRAY;
                depth[nbr] = d;
                queue.push_back(nbr);
                continue;
            }
            // Two paths from the root meet here: root .. curr then nbr .. (back to root).
            let mut tail = vec![nbr];
            let mut p = parent[nbr];
            while p != NONE && p != root {
                tail.push(p);
                p = parent[p];
            }
            let mut head = vec![curr];
            let mut p = parent[curr];
            let mut through_root = true;
            while p != NONE {
                if tail.contains(&p) || head.contains(&p) {
                    through_root = false;
                    break;
                }
                head.push(p);
                p = parent[p];
            }
            if !through_root {
                continue;
            }
            head.reverse();
            head.extend(tail);
            if head.len() <= best {
                best = head.len();
                rings.push(head);
            } else {
                return rings;
            }
        }
    }
    rings
}

/// Drops surplus rings (largest last), keeping for each size those that add new bonds,
/// preferring rings that overlap most with what is kept. Returns the dropped rings.
fn remove_extra_rings(mol: &Mol, rings: &mut Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    rings.sort_by_key(Vec::len);
    let nb = mol.bonds.len();
    let bond_sets: Vec<Vec<bool>> = rings
        .iter()
        .map(|r| {
            let mut set = vec![false; nb];
            for b in ring_bonds(mol, r) {
                set[b] = true;
            }
            set
        })
        .collect();
    let subset = |set: &[bool], of: &[bool]| set.iter().zip(of).all(|(&s, &o)| !s || o);
    let overlap =
        |set: &[bool], with: &[bool]| set.iter().zip(with).filter(|(&s, &w)| s && w).count();
    let n = rings.len();
    let mut avail = vec![true; n];
    let mut keep = vec![false; n];
    let mut union = vec![false; nb];
    let add = |union: &mut Vec<bool>, set: &[bool]| {
        for (u, &s) in union.iter_mut().zip(set) {
            *u |= s;
        }
    };
    for i in 0..n {
        if subset(&bond_sets[i], &union) {
            avail[i] = false;
        }
        if !avail[i] {
            continue;
        }
        add(&mut union, &bond_sets[i]);
        keep[i] = true;
        let size = rings[i].len();
        let mut consider: Vec<bool> = (0..n)
            .map(|j| j > i && avail[j] && rings[j].len() == size)
            .collect();
        while consider.iter().any(|&c| c) {
            let mut best_j = i + 1;
            let mut best_overlap: Option<usize> = None;
            for j in (i + 1)..n {
                if rings[j].len() != size {
                    break;
                }
                if !consider[j] || !avail[j] {
                    continue;
                }
                let ov = overlap(&bond_sets[j], &union);
                if best_overlap.is_none_or(|b| ov > b) {
                    best_overlap = Some(ov);
                    best_j = j;
                }
            }
            consider[best_j] = false;
            avail[best_j] = false;
            if !subset(&bond_sets[best_j], &union) {
                keep[best_j] = true;
                add(&mut union, &bond_sets[best_j]);
            }
        }
    }
    let all = std::mem::take(rings);
    let mut extras = Vec::new();
    for (ring, kept) in all.into_iter().zip(keep) {
        if kept {
            rings.push(ring);
        } else {
            extras.push(ring);
        }
    }
    extras
}

/// Adds to the SSSR each surplus ring that could replace an SSSR ring of the same size
/// without losing any bond only that ring provides.
fn symmetrize(mol: &Mol, mut sssr: Vec<Vec<usize>>, extras: &[Vec<usize>]) -> Vec<Vec<usize>> {
    if extras.is_empty() {
        return sssr;
    }
    let sssr_bonds: Vec<Vec<usize>> = sssr.iter().map(|r| ring_bonds(mol, r)).collect();
    let mut count = vec![0usize; mol.bonds.len()];
    for ring in &sssr_bonds {
        for &b in ring {
            count[b] += 1;
        }
    }
    for extra in extras {
        let extra_bonds = ring_bonds(mol, extra);
        let replaces_one = sssr_bonds.iter().any(|ring| {
            if ring.len() != extra_bonds.len() {
                return false;
            }
            let mut shares = false;
            let mut covers_unique = true;
            for &b in ring {
                if count[b] == 1 || !shares {
                    if extra_bonds.contains(&b) {
                        shares = true;
                    } else if count[b] == 1 {
                        covers_unique = false;
                    }
                }
            }
            shares && covers_unique
        });
        if replaces_one {
            sssr.push(extra.clone());
        }
    }
    sssr
}

/// Connected components (over all bonds), each sorted, ordered by their lowest atom.
fn fragments(mol: &Mol) -> Vec<Vec<usize>> {
    let n = mol.atoms.len();
    let mut seen = vec![false; n];
    let mut frags = Vec::new();
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut frag = vec![start];
        let mut stack = vec![start];
        while let Some(a) = stack.pop() {
            for o in mol.neighbors(a) {
                if !seen[o] {
                    seen[o] = true;
                    frag.push(o);
                    stack.push(o);
                }
            }
        }
        frag.sort_unstable();
        frags.push(frag);
    }
    frags
}

/// RDKit's approximate ring finder (depth-first cycle closure), used when the SSSR
/// search cannot find the expected number of rings.
fn fast_find_rings(mol: &Mol) -> Vec<Vec<usize>> {
    let n = mol.atoms.len();
    let mut color = vec![0u8; n];
    let mut rings = Vec::new();
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        if mol.degree(start) < 2 {
            color[start] = 2;
            continue;
        }
        // Iterative DFS: (atom, came-from, next neighbour slot).
        let mut path: Vec<usize> = vec![start];
        let mut stack: Vec<(usize, Option<usize>, usize)> = vec![(start, None, 0)];
        color[start] = 1;
        while let Some(top) = stack.last_mut() {
            let (atom, from, slot) = *top;
            if slot >= mol.atom_bonds[atom].len() {
                color[atom] = 2;
                stack.pop();
                path.pop();
                continue;
            }
            top.2 += 1;
            let nbr = mol.bonds[mol.atom_bonds[atom][slot]].other(atom);
            match color[nbr] {
                0 if mol.degree(nbr) < 2 => color[nbr] = 2,
                0 => {
                    color[nbr] = 1;
                    path.push(nbr);
                    stack.push((nbr, Some(atom), 0));
                }
                1 if from.is_some_and(|f| f != nbr) => {
                    let mut cycle: Vec<usize> = path
                        .iter()
                        .rev()
                        .copied()
                        .take_while(|&a| a != nbr)
                        .collect();
                    cycle.push(nbr);
                    rings.push(cycle);
                }
                _ => {}
            }
        }
    }
    rings
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

    fn ring_sets(info: &RingInfo) -> Vec<Vec<usize>> {
        let mut sets: Vec<Vec<usize>> = info.atom_rings.iter().map(|r| invariant(r)).collect();
        sets.sort();
        sets
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
                (8, 3),
                (8, 9),
                (9, 0),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(
            ring_sets(&info),
            vec![vec![0, 1, 2, 3, 8, 9], vec![3, 4, 5, 6, 7, 8]]
        );
        assert_eq!(info.bond_rings.len(), 2);
        assert_eq!(info.num_atom_rings(3), 2);
        assert_eq!(info.num_bond_rings(8), 2);
    }

    #[test]
    fn cubane_symmetrized_has_six_rings() {
        // C12C3C4C1C5C2C3C45: RDKit gives 6 four-membered rings after symmetrization.
        let mol = skeleton(
            8,
            &[
                (0, 1),
                (1, 2),
                (2, 3),
                (3, 0),
                (3, 4),
                (4, 5),
                (5, 0),
                (5, 6),
                (6, 1),
                (6, 7),
                (7, 2),
                (7, 4),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(info.atom_rings.len(), 6);
        assert!(info.atom_rings.iter().all(|r| r.len() == 4));
    }

    #[test]
    fn spiro_and_separate_fragments() {
        // C1CC12CC2.C1CC1 : three 3-rings
        let mol = skeleton(
            8,
            &[
                (0, 1),
                (1, 2),
                (2, 0),
                (2, 3),
                (3, 4),
                (4, 2),
                (5, 6),
                (6, 7),
                (7, 5),
            ],
        );
        let info = RingInfo::new(&mol);
        assert_eq!(
            ring_sets(&info),
            vec![vec![0, 1, 2], vec![2, 3, 4], vec![5, 6, 7]]
        );
        assert_eq!(info.bond_rings[0].len(), 3);
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
