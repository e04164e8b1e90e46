//! Canonical atom ranking: iterative refinement of atom invariants, with tetrahedral and
//! double-bond stereo folded in as soon as the neighbours that define them are told apart.
//!
//! Ranks follow the "number of atoms with a strictly smaller invariant" convention, so a
//! class of `k` tied atoms with rank `r` owns the rank values `r..r + k`. Refinement only
//! ever splits classes and keeps the relative order of existing ones.
//!
//! Each refinement round computes what a full round would (every atom's key from the ranks at
//! the start of the round), but only for the atoms whose key can have changed: the neighbours
//! of the atoms that moved to a new class in the previous round, except those of each split
//! class's largest part, whose members all see the same change (Hopcroft's "all but the
//! largest" rule). A long chain therefore takes O(n log n) instead of one O(n log n) pass per
//! atom of its length.

use crate::chem::nontetrahedral::Shape;
use crate::chem::{BondDir, BondType, ChiralTag, Mol};

/// Marks the implicit hydrogen in a stereo centre's neighbour list.
pub(super) const IMPLICIT_H: usize = usize::MAX;

/// A tetrahedral stereocentre as read from the input molecule.
#[derive(Debug, Clone)]
pub(super) struct Center {
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

/// Working buffers reused across refinement rounds: the partition into classes ("cells"),
/// with each cell's members contiguous in `lab` and its rank value stored once, so that a
/// class whose rank value moves is updated in O(1).
#[derive(Default)]
pub(super) struct Scratch {
    /// Atoms grouped by cell: cell `c` holds `lab[lo[c]..hi[c]]`.
    lab: Vec<usize>,
    /// Index of each atom in `lab`.
    pos: Vec<usize>,
    /// Cell of each atom.
    cell: Vec<usize>,
    /// Start of each cell's range in `lab`.
    lo: Vec<usize>,
    /// End of each cell's range in `lab`.
    hi: Vec<usize>,
    /// Rank value of each cell.
    value: Vec<u32>,
    /// Stereo invariant of each atom under the current ranks (0 = none or not yet defined).
    stereo: Vec<u8>,
    /// Atoms whose key is recomputed this round (`is_touched` marks them).
    touched: Vec<usize>,
    is_touched: Vec<bool>,
    /// Stereo atoms whose invariant is recomputed this round (`is_checked` marks them).
    checked: Vec<usize>,
    is_checked: Vec<bool>,
    /// Cells with touched members this round, and how many members each has touched.
    cells: Vec<usize>,
    touched_in: Vec<usize>,
    /// Keys of the touched atoms: `(atom, start, end)` into `keybuf`.
    entries: Vec<(usize, usize, usize)>,
    keybuf: Vec<u64>,
    /// Atoms of one cell in their new order.
    reordered: Vec<usize>,
    /// Keys computed since the scratch was created: the work refinement did.
    keys_computed: usize,
    /// Planned splits of this round: `(cell, first group, end of groups)` into `groups`.
    splits: Vec<(usize, usize, usize)>,
    /// Groups of the planned splits: `(start, end)` in `lab`, rank value, keeps the cell id.
    groups: Vec<(usize, usize, u32, bool)>,
}

impl Scratch {
    /// The partition of `ranks`, with rank values renumbered to the convention (a class's
    /// value is the number of atoms ranked below it).
    fn init(&mut self, ranks: &[u32]) {
        let n = ranks.len();
        self.lab.clear();
        self.lab.extend(0..n);
        self.lab.sort_by_key(|&a| ranks[a]);
        self.pos.clear();
        self.pos.resize(n, 0);
        self.cell.clear();
        self.cell.resize(n, 0);
        self.lo.clear();
        self.hi.clear();
        self.value.clear();
        for i in 0..n {
            let a = self.lab[i];
            self.pos[a] = i;
            if i == 0 || ranks[self.lab[i - 1]] != ranks[a] {
                if i > 0 {
                    self.hi.push(i);
                }
                self.lo.push(i);
                self.value.push(i as u32);
            }
            self.cell[a] = self.lo.len() - 1;
        }
        if n > 0 {
            self.hi.push(n);
        }
        self.stereo.clear();
        self.stereo.resize(n, 0);
        self.touched.clear();
        self.is_touched.clear();
        self.is_touched.resize(n, false);
        self.checked.clear();
        self.is_checked.clear();
        self.is_checked.resize(n, false);
        self.touched_in.clear();
        self.touched_in.resize(n, 0);
    }

    /// Number of atom keys computed by the refinements run with this scratch.
    #[cfg(test)]
    pub fn keys_computed(&self) -> usize {
        self.keys_computed
    }

    /// The current rank of atom `a`.
    fn rank(&self, a: usize) -> u32 {
        self.value[self.cell[a]]
    }

    /// Marks `a` for a key recomputation this round.
    fn touch(&mut self, a: usize) {
        if !self.is_touched[a] {
            self.is_touched[a] = true;
            self.touched.push(a);
        }
    }

    /// Marks stereo atom `a` for an invariant recomputation.
    fn check(&mut self, a: usize) {
        if !self.is_checked[a] {
            self.is_checked[a] = true;
            self.checked.push(a);
        }
    }

    /// Puts atom `a` at index `i` of `lab`, moving the atom there to `a`'s old place.
    fn place(&mut self, a: usize, i: usize) {
        let (j, b) = (self.pos[a], self.lab[i]);
        self.lab.swap(i, j);
        self.pos[a] = i;
        self.pos[b] = j;
    }
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
            if self.in_ring_smaller_than(bi, 8) {
                continue;
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

    /// Whether bond `bi` lies in a ring of fewer than `size` atoms. The search stays within
    /// that distance of the bond, so it costs the same in a small molecule and a large one.
    fn in_ring_smaller_than(&self, bi: usize, size: usize) -> bool {
        let bond = &self.mol.bonds[bi];
        // A ring of k atoms is a path of k - 1 bonds from one end to the other, avoiding `bi`.
        let max_path = size.saturating_sub(2);
        let mut dist = std::collections::HashMap::new();
        let mut queue = std::collections::VecDeque::new();
        dist.insert(bond.begin, 0usize);
        queue.push_back(bond.begin);
        while let Some(v) = queue.pop_front() {
            let d = dist[&v];
            if d >= max_path {
                continue;
            }
            for &b in &self.mol.atom_bonds[v] {
                if b == bi {
                    continue;
                }
                let u = self.mol.bonds[b].other(v);
                if u == bond.end {
                    return true;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = dist.entry(u) {
                    e.insert(d + 1);
                    queue.push_back(u);
                }
            }
        }
        false
    }

    /// Transpositions of interchangeable terminal atoms (same neighbour, same invariants,
    /// same bond type, the neighbour not a stereo element): automorphisms known up front.
    pub fn twin_swaps(&self, ranks: &[u32]) -> Vec<(usize, usize)> {
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
                    swaps.push((u, v));
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

    /// Stereo invariant of atom `a` under the ranks `rank` gives (0 = none or not yet
    /// defined): 1 or 2 for a tetrahedral centre, 3 or 4 for a double-bond end (which wins).
    pub fn stereo_of(&self, a: usize, rank: &impl Fn(usize) -> u32) -> u8 {
        let mut v = 0;
        if let Some(odd) = self
            .center(a)
            .and_then(|c| self.center_parity(c, rank).map(|o| c.ccw ^ o))
        {
            v = 1 + u8::from(odd);
        }
        if let Some(d) = self.dbond_of[a].checked_sub(1).map(|i| &self.dbonds[i]) {
            if let Some(cis) = self.dbond_relation(d, rank) {
                v = 3 + u8::from(cis);
            }
        }
        v
    }

    /// Whether atom `a` carries a stereo element (so that its invariant can change).
    fn is_stereo(&self, a: usize) -> bool {
        self.center_of[a] != 0 || self.dbond_of[a] != 0
    }

    /// Parity of the centre's reference order against rank order; `None` while neighbours tie.
    fn center_parity(&self, c: &Center, rank: &impl Fn(usize) -> u32) -> Option<bool> {
        let mut vals = [0i64; 4];
        for (v, &nb) in vals.iter_mut().zip(c.nbrs()) {
            *v = if nb == IMPLICIT_H {
                -1
            } else {
                i64::from(rank(nb))
            };
        }
        sort_parity(&vals[..c.len])
    }

    /// The highest-ranked substituent of end `e`; `None` when two substituents tie.
    fn top_substituent(
        &self,
        e: usize,
        partner: usize,
        rank: &impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut tie = false;
        for &(nb, _) in self.neighbors(e) {
            if nb == partner {
                continue;
            }
            match best {
                Some(b) if rank(b) == rank(nb) => tie = true,
                Some(b) if rank(b) > rank(nb) => {}
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
    fn dbond_relation(&self, d: &StereoBond, rank: &impl Fn(usize) -> u32) -> Option<bool> {
        let ta = self.top_substituent(d.a, d.b, rank)?;
        let tb = self.top_substituent(d.b, d.a, rank)?;
        Some(d.cis_of(ta, tb))
    }

    /// Neighbours of `a` with bond codes.
    pub fn neighbors(&self, a: usize) -> &[(usize, u64)] {
        &self.adj[self.off[a]..self.off[a + 1]]
    }

    /// Refines `ranks` until stable: each round splits classes by the stereo invariant and
    /// the sorted multiset of (neighbour rank, bond type), both taken at the start of the
    /// round; the parts of a class are ordered by that key, keeping the class's place.
    pub fn refine(&self, ranks: &mut [u32], s: &mut Scratch) {
        let n = ranks.len();
        if n == 0 {
            return;
        }
        s.init(ranks);
        // The first round looks at everything.
        for a in 0..n {
            s.touch(a);
            if self.is_stereo(a) {
                s.check(a);
            }
        }
        loop {
            self.update_stereo(s);
            self.plan_splits(s);
            if s.splits.is_empty() {
                break;
            }
            self.apply_splits(s);
        }
        for (a, r) in ranks.iter_mut().enumerate() {
            *r = s.rank(a);
        }
    }

    /// Recomputes the stereo invariants marked for checking; an atom whose invariant changed
    /// is touched.
    fn update_stereo(&self, s: &mut Scratch) {
        let checked = std::mem::take(&mut s.checked);
        for &a in &checked {
            s.is_checked[a] = false;
            let v = self.stereo_of(a, &|x| s.rank(x));
            if v != s.stereo[a] {
                s.stereo[a] = v;
                s.touch(a);
            }
        }
        s.checked = checked;
        s.checked.clear();
    }

    /// The key of atom `a` (stereo invariant, then the sorted neighbour codes), appended to
    /// `s.keybuf`; returns its range there.
    fn push_key(&self, a: usize, s: &mut Scratch) -> (usize, usize) {
        s.keys_computed += 1;
        let start = s.keybuf.len();
        s.keybuf.push(u64::from(s.stereo[a]));
        for &(nb, code) in self.neighbors(a) {
            let r = u64::from(s.value[s.cell[nb]]);
            s.keybuf.push((r << 3) | code);
        }
        s.keybuf[start + 1..].sort_unstable();
        (start, s.keybuf.len())
    }

    /// Works out, from the current ranks, how each cell with touched members splits. Only
    /// `lab` is reordered (within cells); the split itself waits for [`Self::apply_splits`].
    fn plan_splits(&self, s: &mut Scratch) {
        s.splits.clear();
        s.groups.clear();
        // Touched members go to the front of their cell.
        s.cells.clear();
        let touched = std::mem::take(&mut s.touched);
        for &a in &touched {
            s.is_touched[a] = false;
            let c = s.cell[a];
            if s.touched_in[c] == 0 {
                s.cells.push(c);
            }
            let i = s.lo[c] + s.touched_in[c];
            s.place(a, i);
            s.touched_in[c] += 1;
        }
        s.touched = touched;
        s.touched.clear();
        let cells = std::mem::take(&mut s.cells);
        for &c in &cells {
            let t = std::mem::take(&mut s.touched_in[c]);
            let (lo, hi) = (s.lo[c], s.hi[c]);
            if hi - lo > 1 {
                self.plan_cell(c, lo, lo + t, hi, s);
            }
        }
        s.cells = cells;
    }

    /// Plans the split of cell `c`, whose members `lab[lo..mid]` are touched and
    /// `lab[mid..hi]` are not (and so share one key).
    fn plan_cell(&self, c: usize, lo: usize, mid: usize, hi: usize, s: &mut Scratch) {
        s.keybuf.clear();
        s.entries.clear();
        for i in lo..mid {
            let a = s.lab[i];
            let (start, end) = self.push_key(a, s);
            s.entries.push((a, start, end));
        }
        let rest = (mid < hi).then(|| self.push_key(s.lab[mid], s));
        let Scratch {
            lab,
            pos,
            value,
            keybuf,
            entries,
            reordered,
            splits,
            groups,
            ..
        } = s;
        let key = |start: usize, end: usize| &keybuf[start..end];
        entries.sort_unstable_by(|x, y| key(x.1, x.2).cmp(key(y.1, y.2)));
        let rest_key = rest.map(|(start, end)| key(start, end));
        // The members that keep the cell's id: the untouched ones and the touched ones with
        // the same key. The others form one new cell per key, in key order around them.
        let stay = (hi - mid)
            + rest_key.map_or(0, |rk| {
                entries.iter().filter(|e| key(e.1, e.2) == rk).count()
            });
        let first = groups.len();
        let r = value[c];
        let mut below = 0u32;
        let mut stay_placed = rest_key.is_none();
        reordered.clear();
        let mut i = 0;
        while i < entries.len() {
            let k = key(entries[i].1, entries[i].2);
            let mut j = i + 1;
            while j < entries.len() && key(entries[j].1, entries[j].2) == k {
                j += 1;
            }
            if let Some(rk) = rest_key {
                if k == rk {
                    i = j;
                    continue;
                }
                if k > rk && !stay_placed {
                    groups.push((0, 0, r + below, true));
                    below += stay as u32;
                    stay_placed = true;
                }
            }
            let start = lo + reordered.len();
            reordered.extend(entries[i..j].iter().map(|e| e.0));
            groups.push((start, lo + reordered.len(), r + below, false));
            below += (j - i) as u32;
            i = j;
        }
        if !stay_placed {
            groups.push((0, 0, r + below, true));
        }
        if groups.len() - first == 1 {
            groups.truncate(first);
            return;
        }
        let stay_start = lo + reordered.len();
        match rest_key {
            Some(rk) => {
                reordered.extend(entries.iter().filter(|e| key(e.1, e.2) == rk).map(|e| e.0));
                for g in &mut groups[first..] {
                    if g.3 {
                        (g.0, g.1) = (stay_start, hi);
                    }
                }
            }
            // Every member was touched: the first part keeps the id.
            None => groups[first].3 = true,
        }
        for (k, &a) in reordered.iter().enumerate() {
            lab[lo + k] = a;
            pos[a] = lo + k;
        }
        splits.push((c, first, groups.len()));
    }

    /// Carries out the planned splits and touches, for the next round, the neighbours of every
    /// part but the largest of each split cell.
    fn apply_splits(&self, s: &mut Scratch) {
        let splits = std::mem::take(&mut s.splits);
        for &(c, first, end) in &splits {
            for gi in first..end {
                let (start, stop, value, keeps) = s.groups[gi];
                let id = if keeps {
                    c
                } else {
                    s.lo.push(0);
                    s.hi.push(0);
                    s.value.push(0);
                    for i in start..stop {
                        let a = s.lab[i];
                        s.cell[a] = s.lo.len() - 1;
                    }
                    s.lo.len() - 1
                };
                s.lo[id] = start;
                s.hi[id] = stop;
                s.value[id] = value;
            }
            let largest = (first..end)
                .max_by_key(|&gi| (s.groups[gi].1 - s.groups[gi].0, std::cmp::Reverse(gi)))
                .unwrap_or(first);
            for gi in (first..end).filter(|&gi| gi != largest) {
                let (start, stop, _, _) = s.groups[gi];
                for i in start..stop {
                    let x = s.lab[i];
                    for &(y, _) in self.neighbors(x) {
                        s.touch(y);
                        if self.center_of[y] != 0 {
                            s.check(y);
                        }
                        if let Some(d) = self.dbond_of[y].checked_sub(1).map(|i| &self.dbonds[i]) {
                            s.check(d.a);
                            s.check(d.b);
                        }
                    }
                }
            }
        }
        s.splits = splits;
        s.splits.clear();
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
