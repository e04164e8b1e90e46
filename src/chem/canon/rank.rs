//! Canonical atom ranking: iterative refinement of atom invariants, with tetrahedral and
//! double-bond stereo folded in as soon as the neighbours that define them are told apart.
//!
//! Ranks follow the "number of atoms with a strictly smaller invariant" convention, so a
//! class of `k` tied atoms with rank `r` owns the rank values `r..r + k`. Refinement only
//! ever splits classes and keeps the relative order of existing ones.

use crate::chem::nontetrahedral::Shape;
use crate::chem::{BondDir, BondType, ChiralTag, Mol};

/// Marks the implicit hydrogen in a stereo centre's neighbour list.
pub(super) const IMPLICIT_H: usize = usize::MAX;

/// A tetrahedral stereocentre as read from the input molecule.
#[derive(Debug, Clone)]
pub(super) struct Center {
    /// The chiral atom.
    pub atom: usize,
    /// Neighbours in reference order (bond order, then the implicit H as [`IMPLICIT_H`]).
    pub nbrs: [usize; 4],
    /// How many entries of `nbrs` are used (3 or 4).
    pub len: usize,
    /// True for RDKit `CHI_TETRAHEDRAL_CCW` (`@` in reference order).
    pub ccw: bool,
}

impl Center {
    /// The used part of the neighbour list.
    pub fn nbrs(&self) -> &[usize] {
        &self.nbrs[..self.len]
    }
}

/// A square-planar, trigonal-bipyramidal or octahedral centre as read from the input.
#[derive(Debug, Clone)]
pub(super) struct ShapedCenter {
    /// The shape.
    pub shape: Shape,
    /// Permutation number for `stored` (0 = none given).
    pub n: u8,
    /// Neighbours in stored bond order, then [`IMPLICIT_H`] for each missing ligand.
    pub stored: Vec<usize>,
}

/// A stereo double bond `a=b` with one reference substituent on each end.
#[derive(Debug, Clone)]
pub(super) struct StereoBond {
    /// First end atom.
    pub a: usize,
    /// Second end atom.
    pub b: usize,
    /// Reference substituent of `a`.
    pub sa: usize,
    /// Reference substituent of `b`.
    pub sb: usize,
    /// True when `sa` and `sb` lie on the same side of the double bond.
    pub cis: bool,
}

impl StereoBond {
    /// Whether substituent `x` of end `a` and substituent `y` of end `b` are cis.
    pub fn cis_of(&self, x: usize, y: usize) -> bool {
        self.cis ^ (x != self.sa) ^ (y != self.sb)
    }
}

/// The molecule prepared for ranking: adjacency with bond codes and the stereo elements.
pub(super) struct Graph<'a> {
    /// The molecule being canonicalized.
    pub mol: &'a Mol,
    /// Whether isotopes and stereo take part.
    pub isomeric: bool,
    /// Ranks after refinement without stereo, the search's starting point.
    pub base: Vec<u32>,
    /// Tetrahedral stereocentres (isomeric mode only).
    pub centers: Vec<Center>,
    /// Stereo double bonds (isomeric mode only).
    pub dbonds: Vec<StereoBond>,
    /// Non-tetrahedral centres (isomeric mode only).
    pub shaped: Vec<ShapedCenter>,
    /// Flat neighbour table: `adj[off[a]..off[a + 1]]` = (neighbour, bond code).
    adj: Vec<(usize, u64)>,
    off: Vec<usize>,
    /// Per atom: index + 1 into `centers`, or 0.
    center_of: Vec<usize>,
    /// Per atom: index + 1 into `dbonds`, or 0.
    dbond_of: Vec<usize>,
    /// Per atom: index + 1 into `shaped`, or 0.
    shaped_of: Vec<usize>,
}

/// An atom's own invariant: degree, element, isotope, hydrogens, charge, aromaticity,
/// map number, radicals (in this order of precedence).
type AtomInvariant = (usize, u8, u16, u8, i8, bool, Option<u32>, u8);

/// Working buffers reused across refinement rounds.
#[derive(Default)]
pub(super) struct Scratch {
    keys: Vec<u64>,
    stereo: Vec<u8>,
    order: Vec<usize>,
    next: Vec<u32>,
    seen: Vec<bool>,
}

fn bond_code(kind: BondType) -> u64 {
    match kind {
        BondType::Single => 1,
        BondType::Double => 2,
        BondType::Triple => 3,
        BondType::Quadruple => 4,
        BondType::Aromatic => 5,
        BondType::Zero => 6,
        BondType::Dative => 7,
    }
}

/// Number of distinct values in a rank vector (ranks are `0..n`).
fn class_count(ranks: &[u32], seen: &mut Vec<bool>) -> usize {
    seen.clear();
    seen.resize(ranks.len(), false);
    let mut count = 0;
    for &r in ranks {
        let r = r as usize;
        if !seen[r] {
            seen[r] = true;
            count += 1;
        }
    }
    count
}

/// Parity (true = odd) of the permutation that sorts `vals` ascending; `None` on ties.
fn sort_parity(vals: &[i64]) -> Option<bool> {
    let mut odd = false;
    for i in 0..vals.len() {
        for j in i + 1..vals.len() {
            if vals[i] == vals[j] {
                return None;
            }
            if vals[i] > vals[j] {
                odd = !odd;
            }
        }
    }
    Some(odd)
}

impl<'a> Graph<'a> {
    /// Prepares `mol`; in isomeric mode, also collects its stereo elements.
    pub fn new(mol: &'a Mol, isomeric: bool) -> Self {
        let n = mol.atoms.len();
        let mut off = Vec::with_capacity(n + 1);
        let mut adj = Vec::with_capacity(2 * mol.bonds.len());
        off.push(0);
        for a in 0..n {
            for &b in &mol.atom_bonds[a] {
                let bond = &mol.bonds[b];
                adj.push((bond.other(a), bond_code(bond.kind)));
            }
            off.push(adj.len());
        }
        let mut g = Graph {
            mol,
            isomeric,
            base: Vec::new(),
            centers: Vec::new(),
            dbonds: Vec::new(),
            shaped: Vec::new(),
            adj,
            off,
            center_of: vec![0; n],
            dbond_of: vec![0; n],
            shaped_of: vec![0; n],
        };
        // Stereo elements are not collected yet, so this refinement ignores stereo.
        let mut base = g.initial_ranks();
        g.refine(&mut base, &mut Scratch::default());
        if isomeric {
            g.collect_centers();
            g.collect_shaped();
            g.collect_dbonds(&base);
        }
        g.base = base;
        g
    }

    fn collect_centers(&mut self) {
        let mol = self.mol;
        for (i, atom) in mol.atoms.iter().enumerate() {
            let ccw = match atom.chiral {
                ChiralTag::Ccw => true,
                ChiralTag::Cw => false,
                _ => continue,
            };
            let h = atom.total_h() as usize;
            let deg = mol.degree(i);
            if h > 1 || !(3..=4).contains(&(deg + h)) {
                continue;
            }
            let mut nbrs = [IMPLICIT_H; 4];
            for (slot, nb) in nbrs.iter_mut().zip(mol.neighbors(i)) {
                *slot = nb;
            }
            self.centers.push(Center {
                atom: i,
                nbrs,
                len: deg + h,
                ccw,
            });
            self.center_of[i] = self.centers.len();
        }
    }

    fn collect_shaped(&mut self) {
        let mol = self.mol;
        for (i, atom) in mol.atoms.iter().enumerate() {
            let Some((shape, n)) = Shape::of(atom.chiral) else {
                continue;
            };
            let nbrs: Vec<usize> = mol.neighbors(i).collect();
            let Some(stored) = shape.stored_order(&nbrs, IMPLICIT_H) else {
                continue;
            };
            self.shaped.push(ShapedCenter { shape, n, stored });
            self.shaped_of[i] = self.shaped.len();
        }
    }

    /// Up-ness of substituent `s` relative to double-bond end `e`, from the input `/` `\`.
    fn input_up(&self, e: usize, s: usize) -> Option<bool> {
        let bi = self.mol.bond_between(e, s)?;
        let bond = &self.mol.bonds[bi];
        let slash = match bond.dir {
            BondDir::EndUpRight => true,
            BondDir::EndDownRight => false,
            BondDir::None => return None,
        };
        Some(if bond.begin == e { slash } else { !slash })
    }

    /// Single-bonded substituents of double-bond end `e` other than `partner`.
    fn substituents(&self, e: usize, partner: usize) -> Vec<usize> {
        self.mol.atom_bonds[e]
            .iter()
            .map(|&b| &self.mol.bonds[b])
            .filter(|b| b.other(e) != partner)
            .map(|b| b.other(e))
            .collect()
    }

    fn collect_dbonds(&mut self, base: &[u32]) {
        let mol = self.mol;
        for (bi, bond) in mol.bonds.iter().enumerate() {
            if bond.kind != BondType::Double {
                continue;
            }
            let (a, b) = (bond.begin, bond.end);
            let Some((sa, upa)) = self.end_reference(a, b, base) else {
                continue;
            };
            let Some((sb, upb)) = self.end_reference(b, a, base) else {
                continue;
            };
            if self.dbond_of[a] != 0 || self.dbond_of[b] != 0 {
                continue;
            }
            if let Some(size) = self.min_ring_size(bi) {
                if size < 8 {
                    continue;
                }
            }
            self.dbonds.push(StereoBond {
                a,
                b,
                sa,
                sb,
                cis: upa == upb,
            });
            self.dbond_of[a] = self.dbonds.len();
            self.dbond_of[b] = self.dbonds.len();
        }
    }

    /// For a double-bond end `e` (partner `p`): a substituent with an input direction and
    /// its up-ness, provided the end can carry stereo (1 or 2 single-bonded substituents,
    /// two of them not symmetry-equivalent).
    fn end_reference(&self, e: usize, p: usize, base: &[u32]) -> Option<(usize, bool)> {
        let subs = self.substituents(e, p);
        if subs.is_empty() || subs.len() > 2 {
            return None;
        }
        for &s in &subs {
            let bi = self.mol.bond_between(e, s)?;
            let kind = self.mol.bonds[bi].kind;
            // A `~` substituent neither carries a direction nor blocks the stereo (RDKit).
            if !super::writer::carries_direction(kind) && kind != BondType::Zero {
                return None;
            }
        }
        if subs.len() == 2 && base[subs[0]] == base[subs[1]] {
            return None;
        }
        subs.iter()
            .find_map(|&s| self.input_up(e, s).map(|up| (s, up)))
    }

    /// Size of the smallest ring through bond `bi`, if it is a ring bond.
    fn min_ring_size(&self, bi: usize) -> Option<usize> {
        let bond = &self.mol.bonds[bi];
        let n = self.mol.atoms.len();
        let mut dist = vec![usize::MAX; n];
        let mut queue = std::collections::VecDeque::new();
        dist[bond.begin] = 0;
        queue.push_back(bond.begin);
        while let Some(v) = queue.pop_front() {
            for &b in &self.mol.atom_bonds[v] {
                if b == bi {
                    continue;
                }
                let u = self.mol.bonds[b].other(v);
                if dist[u] == usize::MAX {
                    dist[u] = dist[v] + 1;
                    if u == bond.end {
                        return Some(dist[u] + 1);
                    }
                    queue.push_back(u);
                }
            }
        }
        None
    }

    /// Transpositions of interchangeable terminal atoms (same neighbour, same invariants,
    /// same bond type, the neighbour not a stereo element): automorphisms known up front.
    pub fn twin_swaps(&self, ranks: &[u32]) -> Vec<Vec<usize>> {
        let mol = self.mol;
        let n = mol.atoms.len();
        let mut swaps = Vec::new();
        for p in 0..n {
            if self.center_of[p] != 0 || self.dbond_of[p] != 0 || self.shaped_of[p] != 0 {
                continue;
            }
            let terminal: Vec<(usize, u64)> = self
                .neighbors(p)
                .iter()
                .copied()
                .filter(|&(u, _)| mol.degree(u) == 1)
                .collect();
            for (i, &(u, code)) in terminal.iter().enumerate() {
                let twin = terminal[..i]
                    .iter()
                    .find(|&&(v, c)| c == code && ranks[v] == ranks[u]);
                if let Some(&(v, _)) = twin {
                    let mut map: Vec<usize> = (0..n).collect();
                    map.swap(u, v);
                    swaps.push(map);
                }
            }
        }
        swaps
    }

    /// Ranks from the atoms' own invariants (no neighbourhood yet).
    fn initial_ranks(&self) -> Vec<u32> {
        let mol = self.mol;
        let n = mol.atoms.len();
        let inv: Vec<AtomInvariant> = (0..n)
            .map(|i| {
                let a = &mol.atoms[i];
                let iso = if self.isomeric {
                    a.isotope.unwrap_or(0)
                } else {
                    0
                };
                (
                    mol.degree(i),
                    a.element,
                    iso,
                    a.total_h(),
                    a.charge,
                    a.aromatic,
                    a.map_number,
                    a.radicals,
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&x, &y| inv[x].cmp(&inv[y]));
        let mut ranks = vec![0u32; n];
        for (i, &a) in order.iter().enumerate() {
            ranks[a] = if i > 0 && inv[order[i - 1]] == inv[a] {
                ranks[order[i - 1]]
            } else {
                i as u32
            };
        }
        ranks
    }

    /// Stereo invariant of every atom under the current ranks (0 = none or not yet defined).
    fn stereo_invariants(&self, ranks: &[u32], out: &mut Vec<u8>) {
        out.clear();
        out.resize(ranks.len(), 0);
        for c in &self.centers {
            if let Some(odd) = self.center_parity(c, ranks) {
                out[c.atom] = 1 + u8::from(c.ccw ^ odd);
            }
        }
        for d in &self.dbonds {
            if let Some(cis) = self.dbond_relation(d, ranks) {
                let v = 3 + u8::from(cis);
                out[d.a] = v;
                out[d.b] = v;
            }
        }
    }

    /// Parity of the centre's reference order against rank order; `None` while neighbours tie.
    fn center_parity(&self, c: &Center, ranks: &[u32]) -> Option<bool> {
        let mut vals = [0i64; 4];
        for (v, &nb) in vals.iter_mut().zip(c.nbrs()) {
            *v = if nb == IMPLICIT_H {
                -1
            } else {
                i64::from(ranks[nb])
            };
        }
        sort_parity(&vals[..c.len])
    }

    /// The highest-ranked substituent of end `e`; `None` when two substituents tie.
    fn top_substituent(&self, e: usize, partner: usize, ranks: &[u32]) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut tie = false;
        for &(nb, _) in self.neighbors(e) {
            if nb == partner {
                continue;
            }
            match best {
                Some(b) if ranks[b] == ranks[nb] => tie = true,
                Some(b) if ranks[b] > ranks[nb] => {}
                _ => {
                    best = Some(nb);
                    tie = false;
                }
            }
        }
        if tie {
            None
        } else {
            best
        }
    }

    /// Cis/trans relation of the two top-ranked substituents; `None` while they tie.
    fn dbond_relation(&self, d: &StereoBond, ranks: &[u32]) -> Option<bool> {
        let ta = self.top_substituent(d.a, d.b, ranks)?;
        let tb = self.top_substituent(d.b, d.a, ranks)?;
        Some(d.cis_of(ta, tb))
    }

    /// Neighbours of `a` with bond codes.
    pub fn neighbors(&self, a: usize) -> &[(usize, u64)] {
        &self.adj[self.off[a]..self.off[a + 1]]
    }

    /// Refines `ranks` until stable: each round splits classes by the sorted multiset of
    /// (neighbour rank, bond type) and by the stereo invariants.
    pub fn refine(&self, ranks: &mut [u32], s: &mut Scratch) {
        let n = ranks.len();
        let mut count = class_count(ranks, &mut s.seen);
        loop {
            self.stereo_invariants(ranks, &mut s.stereo);
            s.keys.clear();
            s.keys.extend(
                self.adj
                    .iter()
                    .map(|&(nb, code)| (u64::from(ranks[nb]) << 3) | code),
            );
            for a in 0..n {
                s.keys[self.off[a]..self.off[a + 1]].sort_unstable();
            }
            s.order.clear();
            s.order.extend(0..n);
            let (keys, stereo, off) = (&s.keys, &s.stereo, &self.off);
            let key = |a: usize| (ranks[a], stereo[a], &keys[off[a]..off[a + 1]]);
            s.order.sort_by(|&x, &y| key(x).cmp(&key(y)));
            s.next.clear();
            s.next.resize(n, 0);
            for i in 0..n {
                let a = s.order[i];
                s.next[a] = if i > 0 && key(s.order[i - 1]) == key(a) {
                    s.next[s.order[i - 1]]
                } else {
                    i as u32
                };
            }
            ranks.copy_from_slice(&s.next);
            let new_count = class_count(ranks, &mut s.seen);
            if new_count == count {
                return;
            }
            count = new_count;
        }
    }

    /// The smallest rank value of a class whose ties keep a stereo element undefined.
    pub fn undetermined_cell(&self, ranks: &[u32]) -> Option<u32> {
        let mut best: Option<u32> = None;
        let mut consider = |r: u32| best = Some(best.map_or(r, |b: u32| b.min(r)));
        for c in &self.centers {
            let nb = c.nbrs();
            for i in 0..nb.len() {
                for j in i + 1..nb.len() {
                    if nb[i] != IMPLICIT_H && nb[j] != IMPLICIT_H && ranks[nb[i]] == ranks[nb[j]] {
                        consider(ranks[nb[i]]);
                    }
                }
            }
        }
        for c in self.shaped.iter().filter(|c| c.n != 0) {
            for (i, &x) in c.stored.iter().enumerate() {
                for &y in &c.stored[i + 1..] {
                    if x != IMPLICIT_H && y != IMPLICIT_H && ranks[x] == ranks[y] {
                        consider(ranks[x]);
                    }
                }
            }
        }
        for d in &self.dbonds {
            for (e, p) in [(d.a, d.b), (d.b, d.a)] {
                let subs: Vec<usize> = self
                    .neighbors(e)
                    .iter()
                    .map(|&(nb, _)| nb)
                    .filter(|&nb| nb != p)
                    .collect();
                if subs.len() == 2 && ranks[subs[0]] == ranks[subs[1]] {
                    consider(ranks[subs[0]]);
                }
            }
        }
        best
    }

    /// Stereo centre data of atom `a`, if it is one.
    pub fn center(&self, a: usize) -> Option<&Center> {
        self.center_of[a].checked_sub(1).map(|i| &self.centers[i])
    }

    /// Non-tetrahedral centre data of atom `a`, if it is one.
    pub fn shaped_center(&self, a: usize) -> Option<&ShapedCenter> {
        self.shaped_of[a].checked_sub(1).map(|i| &self.shaped[i])
    }
}

/// The smallest rank value shared by two or more atoms.
pub(super) fn first_tied_cell(ranks: &[u32]) -> Option<u32> {
    let mut counts = vec![0u32; ranks.len()];
    for &r in ranks {
        counts[r as usize] += 1;
    }
    counts.iter().position(|&c| c > 1).map(|r| r as u32)
}

/// Gives `atom` its own class: it keeps the class's rank, its former class mates move up one.
pub(super) fn individualize(ranks: &mut [u32], atom: usize) {
    let r = ranks[atom];
    for (i, x) in ranks.iter_mut().enumerate() {
        if *x == r && i != atom {
            *x = r + 1;
        }
    }
}
