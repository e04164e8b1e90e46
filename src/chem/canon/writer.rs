//! Writes SMILES for a molecule whose atoms carry a total canonical order.
//!
//! Traversal: each fragment starts at its lowest-ranked atom; neighbours are visited in
//! rank order (depth first; `~` bonds first), non-tree bonds become ring closures with the
//! lowest free digit. Stereo is re-expressed for the written neighbour order; where several
//! `@SPn`/`@TBn`/`@OHn` numbers fit (interchangeable hydrogens or vacant sites), the
//! smallest is written.

use super::rank::{Graph, IMPLICIT_H};
use crate::chem::nontetrahedral::Shape;
use crate::chem::{elements, Atom, BondType};

const NONE: usize = usize::MAX;

/// Layout of the written string: DFS forest, ring closures and positions.
struct Layout {
    /// Preorder position of each atom.
    pos: Vec<usize>,
    /// Atoms in preorder.
    order: Vec<usize>,
    /// Bond to the DFS parent, or `NONE` for fragment roots.
    parent_bond: Vec<usize>,
    /// Neighbours (atom, bond) of each atom in rank order: `nbrs[off[a]..off[a + 1]]`.
    nbrs: Vec<(usize, usize)>,
    off: Vec<usize>,
    /// Ring-closure bonds at each atom, in the order their digits are written.
    rings: Vec<Vec<usize>>,
}

impl Layout {
    /// Tree children of `a`, in visiting (rank) order.
    fn children(&self, a: usize) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.nbrs[self.off[a]..self.off[a + 1]]
            .iter()
            .filter(|&&(u, b)| self.parent_bond[u] == b)
            .map(|&(u, _)| u)
    }
}

fn layout(g: &Graph, ranks: &[u32]) -> Layout {
    let mol = g.mol;
    let n = mol.atoms.len();
    let mut off = Vec::with_capacity(n + 1);
    let mut nbrs = Vec::with_capacity(2 * mol.bonds.len());
    off.push(0);
    for a in 0..n {
        let start = nbrs.len();
        nbrs.extend(
            mol.atom_bonds[a]
                .iter()
                .map(|&b| (mol.bonds[b].other(a), b)),
        );
        // `~` bonds first, so that they become chain bonds where possible: RDKit (and so
        // our reader) takes a `~` on a ring-closure digit for a single bond.
        nbrs[start..]
            .sort_unstable_by_key(|&(nb, b)| (mol.bonds[b].kind != BondType::Zero, ranks[nb]));
        off.push(nbrs.len());
    }
    let mut l = Layout {
        pos: vec![NONE; n],
        order: Vec::with_capacity(n),
        parent_bond: vec![NONE; n],
        nbrs,
        off,
        rings: vec![Vec::new(); n],
    };
    let mut bond_seen = vec![false; mol.bonds.len()];
    let mut roots: Vec<usize> = (0..n).collect();
    roots.sort_by_key(|&a| ranks[a]);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in roots {
        if l.pos[root] != NONE {
            continue;
        }
        l.pos[root] = l.order.len();
        l.order.push(root);
        stack.push((root, 0));
        while let Some(&mut (v, ref mut i)) = stack.last_mut() {
            if l.off[v] + *i == l.off[v + 1] {
                stack.pop();
                continue;
            }
            let (u, b) = l.nbrs[l.off[v] + *i];
            *i += 1;
            if bond_seen[b] {
                continue;
            }
            bond_seen[b] = true;
            if l.pos[u] == NONE {
                l.parent_bond[u] = b;
                l.pos[u] = l.order.len();
                l.order.push(u);
                stack.push((u, 0));
            } else {
                l.rings[v].push(b);
                l.rings[u].push(b);
            }
        }
    }
    // Digits at an atom: closings (partner written earlier) first, then openings, each by
    // the partner's position.
    for a in 0..n {
        let pos = &l.pos;
        let key = |b: usize| {
            let p = pos[mol.bonds[b].other(a)];
            (p > pos[a], p)
        };
        l.rings[a].sort_by_key(|&b| key(b));
    }
    l
}

/// Direction characters for the written string: per bond, `Some(true)` = `/`, read from
/// the earlier-written atom to the later one.
fn bond_directions(g: &Graph, l: &Layout) -> Vec<Option<bool>> {
    let mol = g.mol;
    let mut dirs: Vec<Option<bool>> = vec![None; mol.bonds.len()];
    let mut dbonds: Vec<usize> = (0..g.dbonds.len()).collect();
    dbonds.sort_by_key(|&i| l.pos[g.dbonds[i].a].min(l.pos[g.dbonds[i].b]));
    // Up-ness of substituent `s` of end `e` <-> character on bond e-s.
    let first_is = |e: usize, s: usize| l.pos[e] < l.pos[s];
    for di in dbonds {
        let d = &g.dbonds[di];
        let single_subs = |e: usize, p: usize| -> Vec<(usize, usize)> {
            let mut v: Vec<(usize, usize)> = mol.atom_bonds[e]
                .iter()
                .filter(|&&b| carries_direction(mol.bonds[b].kind) && mol.bonds[b].other(e) != p)
                .map(|&b| (mol.bonds[b].other(e), b))
                .collect();
            v.sort_by_key(|&(s, _)| l.pos[s]);
            v
        };
        // Work from the end written first, so the arbitrary first choice is canonical.
        let (e1, e2) = if l.pos[d.a] < l.pos[d.b] {
            (d.a, d.b)
        } else {
            (d.b, d.a)
        };
        let cis = |x: usize, y: usize| {
            if e1 == d.a {
                d.cis_of(x, y)
            } else {
                d.cis_of(y, x)
            }
        };
        let subs1 = single_subs(e1, e2);
        let subs2 = single_subs(e2, e1);
        if subs1.is_empty() || subs2.is_empty() {
            continue;
        }
        // Reference substituent on `e1` and its up-ness: from a direction already written
        // for a neighbouring double bond, on either end, else a free choice.
        let assigned1 = subs1.iter().find(|&&(_, b)| dirs[b].is_some());
        let assigned2 = subs2.iter().find(|&&(_, b)| dirs[b].is_some());
        let (x, up_x) = match (assigned1, assigned2) {
            (Some(&(s, b)), _) => {
                let slash = dirs[b].unwrap_or(true);
                (s, if first_is(e1, s) { slash } else { !slash })
            }
            (None, Some(&(y, b))) => {
                let slash = dirs[b].unwrap_or(true);
                let up_y = if first_is(e2, y) { slash } else { !slash };
                let x = subs1[0].0;
                (x, up_y ^ !cis(x, y))
            }
            (None, None) => (subs1[0].0, true),
        };
        // Every other substituent bond of both ends is set relative to `x`: a bond this
        // leaves unset would be chosen freely by a later double bond sharing it.
        let mut set = |e: usize, s: usize, b: usize, up: bool| {
            if dirs[b].is_none() {
                dirs[b] = Some(if first_is(e, s) { up } else { !up });
            }
        };
        for &(s, b) in &subs1 {
            set(e1, s, b, if s == x { up_x } else { !up_x });
        }
        for &(y, b) in &subs2 {
            set(e2, y, b, up_x ^ !cis(x, y));
        }
    }
    dirs
}

/// Whether a bond next to a stereo double bond can carry `/` or `\\`.
pub(super) fn carries_direction(kind: BondType) -> bool {
    matches!(kind, BondType::Single | BondType::Aromatic)
}

/// Implicit hydrogens a SMILES reader gives this atom when it is written without brackets;
/// `None` when it cannot be written without brackets.
fn unbracketed_h(g: &Graph, a: usize) -> Option<u8> {
    let mol = g.mol;
    let atom = &mol.atoms[a];
    if atom.aromatic {
        let all_aromatic = mol.atom_bonds[a]
            .iter()
            .all(|&b| mol.bonds[b].kind == BondType::Aromatic);
        return match atom.element {
            6 => Some(u8::from(mol.degree(a) == 2 && all_aromatic)),
            7 | 8 | 15 | 16 => Some(0),
            _ => None,
        };
    }
    let allowed: &[u32] = match atom.element {
        0 => return Some(0),
        5 => &[3],
        6 => &[4],
        7 => &[3],
        8 => &[2],
        15 => &[3, 5],
        16 => &[2, 4, 6],
        9 | 17 | 35 => &[1],
        53 => &[1, 3, 5],
        _ => return None,
    };
    // Bond orders in half units: an aromatic bond on a non-aromatic atom counts 1.5, and the
    // reader rounds the sum half up (RDKit: `C:C` has two H on each carbon, `O:O` none).
    let mut halves = 0u32;
    for &b in &mol.atom_bonds[a] {
        halves += match mol.bonds[b].kind {
            BondType::Single => 2,
            BondType::Double => 4,
            BondType::Triple => 6,
            BondType::Quadruple => 8,
            BondType::Aromatic => 3,
            BondType::Zero | BondType::Dative => 0,
        };
    }
    let val = halves.div_ceil(2);
    let target = allowed.iter().copied().find(|&v| v >= val)?;
    u8::try_from(target - val).ok()
}

fn push_atom(out: &mut String, g: &Graph, a: usize, chiral: Option<AtomStereo>) {
    let atom: &Atom = &g.mol.atoms[a];
    let isotope = if g.isomeric { atom.isotope } else { None };
    let simple = chiral.is_none()
        && isotope.is_none()
        && atom.charge == 0
        && atom.map_number.is_none()
        && atom.radicals == 0
        && unbracketed_h(g, a) == Some(atom.total_h());
    let symbol = if atom.element == 0 {
        "*"
    } else {
        elements::symbol(atom.element)
    };
    let push_symbol = |out: &mut String| {
        if atom.aromatic {
            out.extend(symbol.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            out.push_str(symbol);
        }
    };
    if simple {
        push_symbol(out);
        return;
    }
    out.push('[');
    if let Some(iso) = isotope {
        out.push_str(&iso.to_string());
    }
    push_symbol(out);
    match chiral {
        Some(AtomStereo::Tetrahedral(true)) => out.push('@'),
        Some(AtomStereo::Tetrahedral(false)) => out.push_str("@@"),
        Some(AtomStereo::Shaped(shape, n)) => {
            out.push('@');
            out.push_str(shape.letters());
            if n != 0 {
                out.push_str(&n.to_string());
            }
        }
        None => {}
    }
    match atom.total_h() {
        0 => {}
        1 => out.push('H'),
        h => {
            out.push('H');
            out.push_str(&h.to_string());
        }
    }
    match atom.charge {
        0 => {}
        1 => out.push('+'),
        -1 => out.push('-'),
        c if c > 0 => {
            out.push('+');
            out.push_str(&c.to_string());
        }
        c => {
            out.push('-');
            out.push_str(&(-i16::from(c)).to_string());
        }
    }
    if let Some(map) = atom.map_number {
        out.push(':');
        out.push_str(&map.to_string());
    }
    out.push(']');
}

/// Writes bond `b` as it is read from atom `from` (which decides a dative arrow's way).
fn push_bond(out: &mut String, g: &Graph, b: usize, from: usize, dir: Option<bool>) {
    let bond = &g.mol.bonds[b];
    let both_aromatic = g.mol.atoms[bond.begin].aromatic && g.mol.atoms[bond.end].aromatic;
    match bond.kind {
        BondType::Single => match dir {
            Some(true) => out.push('/'),
            Some(false) => out.push('\\'),
            None if both_aromatic => out.push('-'),
            None => {}
        },
        BondType::Aromatic => match dir {
            Some(true) => out.push('/'),
            Some(false) => out.push('\\'),
            None if !both_aromatic => out.push(':'),
            None => {}
        },
        BondType::Double => out.push('='),
        BondType::Triple => out.push('#'),
        BondType::Quadruple => out.push('$'),
        BondType::Zero => out.push('~'),
        BondType::Dative if bond.begin == from => out.push_str("->"),
        BondType::Dative => out.push_str("<-"),
    }
}

fn push_digit(out: &mut String, d: usize) {
    if d < 10 {
        out.push_str(&d.to_string());
    } else if d < 100 {
        out.push('%');
        out.push_str(&d.to_string());
    } else {
        out.push_str("%(");
        out.push_str(&d.to_string());
        out.push(')');
    }
}

/// Stereo written on an atom.
#[derive(Debug, Clone, Copy)]
enum AtomStereo {
    /// `@` (true) or `@@` (false).
    Tetrahedral(bool),
    /// `@SPn`, `@TBn` or `@OHn` (no number when 0).
    Shaped(Shape, u8),
}

/// Neighbours of `a` in the order the string names them: the preceding atom, ring-closure
/// partners, then branches and the chain.
fn written_neighbours(g: &Graph, l: &Layout, a: usize) -> Vec<usize> {
    let mol = g.mol;
    let mut written: Vec<usize> = Vec::with_capacity(6);
    if l.parent_bond[a] != NONE {
        written.push(mol.bonds[l.parent_bond[a]].other(a));
    }
    written.extend(l.rings[a].iter().map(|&b| mol.bonds[b].other(a)));
    written.extend(l.children(a));
    written
}

/// The stereo to write on atom `a` for its written neighbour order, if it has any.
fn written_chirality(g: &Graph, l: &Layout, a: usize) -> Option<AtomStereo> {
    if let Some(c) = g.shaped_center(a) {
        if c.n == 0 {
            return Some(AtomStereo::Shaped(c.shape, 0));
        }
        let written = written_neighbours(g, l, a);
        let starts_fragment = l.parent_bond[a] == NONE;
        let order = c
            .shape
            .reading_order(&written, starts_fragment, IMPLICIT_H)?;
        let n = c.shape.reexpress(c.n, &c.stored, &order)?;
        return Some(AtomStereo::Shaped(c.shape, n));
    }
    let c = g.center(a)?;
    let mut written = written_neighbours(g, l, a);
    if c.nbrs().contains(&IMPLICIT_H) {
        // The implicit H is read right after the preceding atom.
        let at = usize::from(l.parent_bond[a] != NONE);
        written.insert(at, IMPLICIT_H);
    }
    if written.len() != c.len {
        return None;
    }
    let mut perm = [0usize; 4];
    for (p, w) in perm.iter_mut().zip(&written) {
        *p = c.nbrs().iter().position(|x| x == w)?;
    }
    let mut odd = false;
    for i in 0..c.len {
        for j in i + 1..c.len {
            if perm[i] > perm[j] {
                odd = !odd;
            }
        }
    }
    Some(AtomStereo::Tetrahedral(c.ccw ^ odd))
}

/// Ring-closure digits: the lowest free one is taken, in O(log n) however many rings are
/// open at once.
#[derive(Default)]
struct Digits {
    /// Freed digits below `next`.
    free: std::collections::BinaryHeap<std::cmp::Reverse<usize>>,
    /// Digits from here on have never been used.
    next: usize,
}

impl Digits {
    /// The lowest digit (from 1) not in use, now in use.
    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(std::cmp::Reverse(d)) => d,
            None => {
                self.next = self.next.max(1);
                self.next += 1;
                self.next - 1
            }
        }
    }

    /// Gives digit `d` back.
    fn free(&mut self, d: usize) {
        self.free.push(std::cmp::Reverse(d));
    }
}

enum Step {
    Atom(usize),
    Open,
    Close,
}

/// The SMILES string of `g.mol` for the total order `ranks` (all ranks distinct), and the
/// atoms in the order the string names them.
pub(super) fn write(g: &Graph, ranks: &[u32]) -> (String, Vec<usize>) {
    let mol = g.mol;
    let l = layout(g, ranks);
    let dirs = bond_directions(g, &l);
    let mut out = String::with_capacity(mol.atoms.len() * 4);
    let mut digit_of = vec![0usize; mol.bonds.len()];
    let mut digits = Digits::default();
    let mut steps: Vec<Step> = Vec::new();
    for &root in &l.order {
        if l.parent_bond[root] != NONE {
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        steps.push(Step::Atom(root));
        while let Some(step) = steps.pop() {
            let a = match step {
                Step::Open => {
                    out.push('(');
                    continue;
                }
                Step::Close => {
                    out.push(')');
                    continue;
                }
                Step::Atom(a) => a,
            };
            if l.parent_bond[a] != NONE {
                let b = l.parent_bond[a];
                push_bond(&mut out, g, b, mol.bonds[b].other(a), dirs[b]);
            }
            let chiral = if g.isomeric {
                written_chirality(g, &l, a)
            } else {
                None
            };
            push_atom(&mut out, g, a, chiral);
            let mut freed = Vec::new();
            for &b in &l.rings[a] {
                let other = mol.bonds[b].other(a);
                // `~` goes on the closing digit (where RDKit writes it; no reader keeps
                // it there, so the traversal avoids such closures), other symbols on the
                // opening one.
                let zero = mol.bonds[b].kind == BondType::Zero;
                if l.pos[other] < l.pos[a] {
                    if zero {
                        push_bond(&mut out, g, b, a, dirs[b]);
                    }
                    push_digit(&mut out, digit_of[b]);
                    freed.push(digit_of[b]);
                } else {
                    let d = digits.take();
                    digit_of[b] = d;
                    if !zero {
                        push_bond(&mut out, g, b, a, dirs[b]);
                    }
                    push_digit(&mut out, d);
                }
            }
            for d in freed {
                digits.free(d);
            }
            // Last child continues the chain; earlier ones are branches.
            for (i, c) in l.children(a).rev().enumerate() {
                if i == 0 {
                    steps.push(Step::Atom(c));
                } else {
                    steps.push(Step::Close);
                    steps.push(Step::Atom(c));
                    steps.push(Step::Open);
                }
            }
        }
    }
    (out, l.order)
}

#[cfg(test)]
mod tests {
    use super::Digits;

    /// The heap gives the digit the plain scan for the lowest free one gives.
    #[test]
    fn digits_are_the_lowest_free_ones() {
        let mut digits = Digits::default();
        let mut used = vec![false];
        let mut open: Vec<usize> = Vec::new();
        let mut state = 12345u64;
        for _ in 0..5000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            if open.is_empty() || !(state >> 33).is_multiple_of(3) {
                let expected = (1..used.len()).find(|&d| !used[d]).unwrap_or(used.len());
                if expected == used.len() {
                    used.push(true);
                } else {
                    used[expected] = true;
                }
                assert_eq!(digits.take(), expected);
                open.push(expected);
            } else {
                let d = open.swap_remove((state >> 40) as usize % open.len());
                used[d] = false;
                digits.free(d);
            }
        }
    }
}
