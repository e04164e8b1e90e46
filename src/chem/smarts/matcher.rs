//! Subgraph matching of a [`Pattern`] onto a molecule (backtracking in pattern-atom order).

use std::collections::HashSet;

use super::{AtomPrim, BondPrim, Pattern};
use crate::chem::rings::RingInfo;
use crate::chem::{BondType, Mol};

/// A molecule prepared for matching: ring membership and hydrogen counts computed once.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The molecule.
    pub mol: &'a Mol,
    /// RDKit's ring set of the molecule.
    pub rings: RingInfo,
    /// Number of rings each atom belongs to.
    pub atom_ring_count: Vec<u32>,
    /// Whether each bond belongs to a ring.
    pub bond_in_ring: Vec<bool>,
    /// Total hydrogens per atom: implicit, explicit and hydrogen-atom neighbours
    /// (RDKit `GetTotalNumHs(includeNeighbors=True)`).
    pub total_h: Vec<u32>,
}

impl<'a> Target<'a> {
    /// Prepares `mol` (a sanitized molecule) for matching.
    pub fn new(mol: &'a Mol) -> Self {
        let rings = RingInfo::new(mol);
        let mut atom_ring_count = vec![0u32; mol.atoms.len()];
        for ring in &rings.atom_rings {
            for &a in ring {
                atom_ring_count[a] += 1;
            }
        }
        let mut bond_in_ring = vec![false; mol.bonds.len()];
        for ring in &rings.bond_rings {
            for &b in ring {
                bond_in_ring[b] = true;
            }
        }
        let total_h = (0..mol.atoms.len())
            .map(|a| {
                let h_neighbours = mol.neighbors(a).filter(|&n| mol.atoms[n].element == 1);
                u32::from(mol.atoms[a].total_h()) + h_neighbours.count() as u32
            })
            .collect();
        Target {
            mol,
            rings,
            atom_ring_count,
            bond_in_ring,
            total_h,
        }
    }

    fn atom_matches(&self, prim: AtomPrim, t: usize, ctx: &mut Ctx) -> bool {
        let atom = &self.mol.atoms[t];
        match prim {
            AtomPrim::Any => true,
            AtomPrim::Element { z, aromatic } => atom.element == z && atom.aromatic == aromatic,
            AtomPrim::AtomicNum(z) => atom.element == z,
            AtomPrim::Aromatic => atom.aromatic,
            AtomPrim::Aliphatic => !atom.aromatic,
            AtomPrim::HCount(n) => self.total_h[t] == u32::from(n),
            AtomPrim::Charge(q) => atom.charge == q,
            AtomPrim::Degree(n) => self.mol.degree(t) == usize::from(n),
            AtomPrim::TotalConnections(n) => {
                self.mol.degree(t) + usize::from(atom.total_h()) == usize::from(n)
            }
            AtomPrim::InRing => self.atom_ring_count[t] > 0,
            AtomPrim::RingCount(n) => self.atom_ring_count[t] == u32::from(n),
            AtomPrim::Recursive(i) => ctx.recursive_match(self, i, t),
        }
    }

    fn bond_matches(&self, prim: BondPrim, b: usize) -> bool {
        let kind = self.mol.bonds[b].kind;
        match prim {
            BondPrim::Single => kind == BondType::Single,
            BondPrim::Double => kind == BondType::Double,
            BondPrim::Triple => kind == BondType::Triple,
            BondPrim::Aromatic => kind == BondType::Aromatic,
            BondPrim::Any => true,
            BondPrim::Ring => self.bond_in_ring[b],
            BondPrim::SingleOrAromatic => matches!(kind, BondType::Single | BondType::Aromatic),
        }
    }
}

/// Per-search state shared by a pattern and its recursive sub-patterns.
struct Ctx<'p> {
    root: &'p Pattern,
    /// For each recursive sub-pattern and target atom: 0 unknown, 1 no match, 2 match.
    cache: Vec<Vec<u8>>,
}

impl Ctx<'_> {
    fn recursive_match(&mut self, target: &Target, i: usize, t: usize) -> bool {
        match self.cache[i][t] {
            1 => false,
            2 => true,
            _ => {
                let root = self.root;
                let sub = &root.recursive[i];
                let mut found = false;
                let mut search = Search::new(sub, target);
                search.run(self, Some(t), &mut |_| {
                    found = true;
                    false
                });
                self.cache[i][t] = if found { 2 } else { 1 };
                found
            }
        }
    }
}

/// Backtracking state for one pattern.
struct Search<'p, 't, 'm> {
    pattern: &'p Pattern,
    target: &'t Target<'m>,
    map: Vec<usize>,
    used: Vec<bool>,
}

impl<'p, 't, 'm> Search<'p, 't, 'm> {
    fn new(pattern: &'p Pattern, target: &'t Target<'m>) -> Self {
        Search {
            pattern,
            target,
            map: vec![usize::MAX; pattern.atoms.len()],
            used: vec![false; target.mol.atoms.len()],
        }
    }

    /// Calls `found` with every match (pattern atom -> target atom) until it returns false;
    /// `first` pins pattern atom 0. Returns false when stopped early.
    fn run(
        &mut self,
        ctx: &mut Ctx,
        first: Option<usize>,
        found: &mut dyn FnMut(&[usize]) -> bool,
    ) -> bool {
        match first {
            Some(t) => self.try_atom(ctx, 0, t, found),
            None => {
                for t in 0..self.target.mol.atoms.len() {
                    if !self.try_atom(ctx, 0, t, found) {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// Tries pattern atom `q` on target atom `t` (its parent bond already checked).
    fn try_atom(
        &mut self,
        ctx: &mut Ctx,
        q: usize,
        t: usize,
        found: &mut dyn FnMut(&[usize]) -> bool,
    ) -> bool {
        let target = self.target;
        if self.used[t] {
            return true;
        }
        if !self.pattern.atoms[q].eval(&mut |p| target.atom_matches(*p, t, ctx)) {
            return true;
        }
        for &bi in &self.pattern.closures[q] {
            let pb = &self.pattern.bonds[bi];
            let other = if pb.a == q { pb.b } else { pb.a };
            let ok = target
                .mol
                .bond_between(self.map[other], t)
                .is_some_and(|tb| pb.expr.eval(&mut |p| target.bond_matches(*p, tb)));
            if !ok {
                return true;
            }
        }
        self.map[q] = t;
        self.used[t] = true;
        let go_on = self.extend(ctx, q + 1, found);
        self.used[t] = false;
        self.map[q] = usize::MAX;
        go_on
    }

    fn extend(&mut self, ctx: &mut Ctx, q: usize, found: &mut dyn FnMut(&[usize]) -> bool) -> bool {
        if q == self.pattern.atoms.len() {
            return found(&self.map);
        }
        let Some(pbi) = self.pattern.parent_bond[q] else {
            return true;
        };
        let pb = &self.pattern.bonds[pbi];
        let parent = if pb.a == q { pb.b } else { pb.a };
        let tp = self.map[parent];
        let target = self.target;
        for &tb in &target.mol.atom_bonds[tp] {
            let t = target.mol.bonds[tb].other(tp);
            if self.used[t] || !pb.expr.eval(&mut |p| target.bond_matches(*p, tb)) {
                continue;
            }
            if !self.try_atom(ctx, q, t, found) {
                return false;
            }
        }
        true
    }
}

impl Pattern {
    fn search<F: FnMut(&[usize]) -> bool>(&self, target: &Target, mut found: F) {
        let mut ctx = Ctx {
            root: self,
            cache: vec![vec![0u8; target.mol.atoms.len()]; self.recursive.len()],
        };
        let mut search = Search::new(self, target);
        search.run(&mut ctx, None, &mut found);
    }

    /// True when the pattern occurs in the molecule (RDKit `HasSubstructMatch`).
    pub fn matches(&self, target: &Target) -> bool {
        let mut hit = false;
        self.search(target, |_| {
            hit = true;
            false
        });
        hit
    }

    /// Number of matches with distinct atom sets (RDKit `SubstructMatch` with `uniquify`),
    /// counted up to `limit` (the search stops there).
    pub fn count_unique(&self, target: &Target, limit: usize) -> usize {
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        if limit == 0 {
            return 0;
        }
        self.search(target, |m| {
            let mut key = m.to_vec();
            key.sort_unstable();
            seen.insert(key);
            seen.len() < limit
        });
        seen.len()
    }

    /// The matches with distinct atom sets, each as target atoms in pattern-atom order, in the
    /// order they are found (at most `max`).
    pub fn unique_matches(&self, target: &Target, max: usize) -> Vec<Vec<usize>> {
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        self.search(target, |m| {
            let mut key = m.to_vec();
            key.sort_unstable();
            if seen.insert(key) {
                out.push(m.to_vec());
            }
            out.len() < max
        });
        out
    }
}
