//! Stereochemistry as RDKit's `MolFromSmiles` leaves it: legacy `assignStereochemistry`
//! with `cleanIt=true` (chiral tags removed from atoms that are not stereocentres) and the
//! bond directions it keeps.
//!
//! The steps, in RDKit's order:
//! 1. sanitization's `cleanupChirality`: tetrahedral tags on atoms that are not SP3
//!    (by RDKit's hybridization rules, which need bond conjugation) and non-tetrahedral
//!    tags on atoms with an impossible coordination number are dropped;
//! 2. legacy CIP-style ranking of the atoms (iterative refinement seeded by element,
//!    isotope and atom map number, then neighbour ranks weighted by bond order, then
//!    hydrogen count);
//! 3. a fixed point in which tagged legal centres with four distinct neighbour ranks get an
//!    R/S code, double bonds with directed neighbours get E/Z, and the ranks are refined
//!    with those labels;
//! 4. cleanup: tags on atoms without a code are removed unless they take part in ring
//!    stereochemistry (`C[C@H]1CC[C@@H](C)CC1`), and `/` `\` next to double bonds without
//!    E/Z are cleared.

use super::elements;
use super::rings::RingInfo;
use super::{BondDir, BondType, ChiralTag, Mol};
use std::cell::OnceCell;

/// RDKit ignores double-bond stereo in rings smaller than this.
const MIN_RING_SIZE_FOR_DOUBLE_BOND_STEREO: usize = 8;

/// Most common isotope mass number per atomic number (RDKit `GetMostCommonIsotope`).
const MOST_COMMON_ISOTOPE: [u16; 119] = [
    0, 1, 4, 7, 9, 11, 12, 14, 16, 19, 20, 23, 24, 27, 28, 31, 32, 35, 40, 39, 40, 45, 48, 51, 52,
    55, 56, 59, 58, 63, 64, 69, 74, 75, 80, 79, 84, 85, 88, 89, 90, 93, 98, 97, 102, 103, 106, 107,
    114, 115, 120, 121, 130, 127, 132, 133, 138, 139, 140, 141, 142, 145, 152, 153, 158, 159, 164,
    165, 166, 169, 174, 175, 180, 181, 184, 187, 192, 193, 195, 197, 202, 205, 208, 209, 209, 210,
    222, 223, 226, 227, 232, 231, 238, 236, 238, 241, 243, 247, 249, 252, 257, 258, 259, 262, 267,
    268, 271, 270, 269, 278, 281, 281, 285, 284, 289, 288, 293, 292, 294,
];

/// Legacy CIP label of a stereocentre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cip {
    R,
    S,
}

/// Stereo of a double bond as the legacy code perceives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DoubleBondStereo {
    None,
    E,
    Z,
}

/// Removes chiral tags and bond directions the way RDKit's `MolFromSmiles` does after
/// sanitization: sanitization's `cleanupChirality`, then legacy
/// `assignStereochemistry(mol, cleanIt=true, force=true, flagPossibleStereoCenters=true)`.
///
/// Expects a sanitized molecule (implicit hydrogens, radicals and aromaticity set, explicit
/// `[H]` atoms already removed). An atom whose tag is removed and that had exactly one
/// bracket hydrogen, no charge and no aromaticity gets that hydrogen back as implicit
/// (RDKit "Issue 194"), so `[C@@H](C)(C)C` becomes `CC(C)C`.
///
/// Ring perception (SSSR) is only run when a bridgehead test needs it.
pub fn assign_stereochemistry(mol: &mut Mol) {
    if has_stereo_marks(mol) {
        let rings = RingData::from_graph(mol);
        cleanup_chirality(mol);
        Perception::new(mol, &rings).run();
    }
}

/// [`assign_stereochemistry`] with the molecule's ring perception already at hand
/// (RDKit's symmetrized SSSR, as [`RingInfo::new`] computes it).
pub fn assign_stereochemistry_with_rings(mol: &mut Mol, rings: &RingInfo) {
    if has_stereo_marks(mol) {
        let rings = RingData::from_rings(mol, rings);
        cleanup_chirality(mol);
        Perception::new(mol, &rings).run();
    }
}

/// Whether any chiral tag or bond direction is set: the cleanup only ever clears them.
fn has_stereo_marks(mol: &Mol) -> bool {
    mol.atoms.iter().any(|a| a.chiral != ChiralTag::Unspecified)
        || mol.bonds.iter().any(|b| b.dir != BondDir::None)
}

/// Ring facts the legacy code asks for. RDKit reads them from its symmetrized SSSR; all
/// but the bridgehead test follow from the graph alone (a bond is in an SSSR ring exactly
/// when it lies on a cycle, and the smallest SSSR ring through a bond is the shortest cycle
/// through it), so the SSSR itself is only perceived when a bridgehead test needs it.
struct RingData {
    bond_in_ring: Vec<bool>,
    atom_in_ring: Vec<bool>,
    in_ring_of_3: Vec<bool>,
    /// Per double bond: lies on a cycle of fewer than 8 atoms.
    in_small_ring: Vec<bool>,
    /// The SSSR as bond lists, once known.
    bond_rings: OnceCell<Vec<Vec<usize>>>,
}

impl RingData {
    /// Ring facts from a perceived SSSR.
    fn from_rings(mol: &Mol, info: &RingInfo) -> Self {
        let mut bond_in_ring = vec![false; mol.bonds.len()];
        let mut in_small_ring = vec![false; mol.bonds.len()];
        for ring in &info.bond_rings {
            for &b in ring {
                if let Some(flag) = bond_in_ring.get_mut(b) {
                    *flag = true;
                    in_small_ring[b] |= ring.len() < MIN_RING_SIZE_FOR_DOUBLE_BOND_STEREO;
                }
            }
        }
        let mut atom_in_ring = vec![false; mol.atoms.len()];
        let mut in_ring_of_3 = vec![false; mol.atoms.len()];
        for ring in &info.atom_rings {
            for &a in ring {
                if let Some(flag) = atom_in_ring.get_mut(a) {
                    *flag = true;
                    in_ring_of_3[a] |= ring.len() == 3;
                }
            }
        }
        RingData {
            bond_in_ring,
            atom_in_ring,
            in_ring_of_3,
            in_small_ring,
            bond_rings: OnceCell::from(info.bond_rings.clone()),
        }
    }

    /// Ring facts from the graph, without perceiving the SSSR.
    fn from_graph(mol: &Mol) -> Self {
        let bond_in_ring = cycle_bonds(mol);
        let mut atom_in_ring = vec![false; mol.atoms.len()];
        let mut in_ring_of_3 = vec![false; mol.atoms.len()];
        let mut in_small_ring = vec![false; mol.bonds.len()];
        for (bi, b) in mol.bonds.iter().enumerate() {
            if !bond_in_ring[bi] {
                continue;
            }
            atom_in_ring[b.begin] = true;
            atom_in_ring[b.end] = true;
            for c in mol.neighbors(b.begin) {
                if c != b.end && mol.bond_between(c, b.end).is_some() {
                    in_ring_of_3[b.begin] = true;
                    in_ring_of_3[b.end] = true;
                    in_ring_of_3[c] = true;
                }
            }
            if b.kind == BondType::Double {
                in_small_ring[bi] = on_short_cycle(
                    mol,
                    &bond_in_ring,
                    bi,
                    MIN_RING_SIZE_FOR_DOUBLE_BOND_STEREO - 1,
                );
            }
        }
        RingData {
            bond_in_ring,
            atom_in_ring,
            in_ring_of_3,
            in_small_ring,
            bond_rings: OnceCell::new(),
        }
    }

    /// RDKit `shouldDetectDoubleBondStereo` for a double bond: not in a ring smaller than 8.
    fn double_bond_stereo_allowed(&self, bond: usize) -> bool {
        !self.in_small_ring[bond]
    }

    /// RDKit `queryIsAtomBridgehead`: at least three ring bonds, and every ring through
    /// the atom shares at least two bonds with another ring through the atom.
    fn is_bridgehead(&self, mol: &Mol, atom: usize) -> bool {
        if mol.degree(atom) < 3 {
            return false;
        }
        let atom_ring_bonds: Vec<usize> = mol.atom_bonds[atom]
            .iter()
            .copied()
            .filter(|&b| self.bond_in_ring[b])
            .collect();
        if atom_ring_bonds.len() < 3 {
            return false;
        }
        let rings = self
            .bond_rings
            .get_or_init(|| RingInfo::new(mol).bond_rings);
        let touches = |ring: &[usize]| ring.iter().any(|b| atom_ring_bonds.contains(b));
        let mut overlaps = vec![false; rings.len()];
        for i in 0..rings.len() {
            if !touches(&rings[i]) {
                continue;
            }
            for j in i + 1..rings.len() {
                let shared = rings[j].iter().filter(|b| rings[i].contains(b)).count();
                if shared >= 2 && touches(&rings[j]) {
                    overlaps[i] = true;
                    overlaps[j] = true;
                }
            }
            if !overlaps[i] {
                return false;
            }
        }
        true
    }
}

/// Bonds that lie on a cycle (the non-bridges), by an iterative lowlink search.
fn cycle_bonds(mol: &Mol) -> Vec<bool> {
    let n = mol.atoms.len();
    let mut on_cycle = vec![true; mol.bonds.len()];
    let mut order = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut time = 0;
    // (atom, bond it was entered by, next position in its bond list)
    let mut stack: Vec<(usize, usize, usize)> = Vec::new();
    for root in 0..n {
        if order[root] != usize::MAX {
            continue;
        }
        order[root] = time;
        low[root] = time;
        time += 1;
        stack.push((root, usize::MAX, 0));
        while let Some(top) = stack.last_mut() {
            let (v, entered_by, next) = *top;
            if let Some(&bi) = mol.atom_bonds[v].get(next) {
                top.2 += 1;
                if bi == entered_by {
                    continue;
                }
                let w = mol.bonds[bi].other(v);
                if order[w] == usize::MAX {
                    order[w] = time;
                    low[w] = time;
                    time += 1;
                    stack.push((w, bi, 0));
                } else {
                    low[v] = low[v].min(order[w]);
                }
            } else {
                stack.pop();
                if let Some(&(parent, _, _)) = stack.last() {
                    low[parent] = low[parent].min(low[v]);
                    if low[v] > order[parent] {
                        on_cycle[entered_by] = false;
                    }
                }
            }
        }
    }
    on_cycle
}

/// Whether `bond` lies on a cycle of at most `max_len` atoms: a path of at most
/// `max_len - 1` ring bonds joins its ends without using it.
fn on_short_cycle(mol: &Mol, bond_in_ring: &[bool], bond: usize, max_len: usize) -> bool {
    let (start, target) = (mol.bonds[bond].begin, mol.bonds[bond].end);
    let mut dist = vec![usize::MAX; mol.atoms.len()];
    let mut queue = std::collections::VecDeque::new();
    dist[start] = 0;
    queue.push_back(start);
    while let Some(v) = queue.pop_front() {
        if dist[v] + 1 >= max_len {
            continue;
        }
        for &bi in &mol.atom_bonds[v] {
            if bi == bond || !bond_in_ring[bi] {
                continue;
            }
            let w = mol.bonds[bi].other(v);
            if w == target {
                return true;
            }
            if dist[w] == usize::MAX {
                dist[w] = dist[v] + 1;
                queue.push_back(w);
            }
        }
    }
    false
}

fn is_directional(dir: BondDir) -> bool {
    matches!(dir, BondDir::EndUpRight | BondDir::EndDownRight)
}

fn opposite(dir: BondDir) -> BondDir {
    if dir == BondDir::EndDownRight {
        BondDir::EndUpRight
    } else {
        BondDir::EndDownRight
    }
}

/// Twice the bond order, as the legacy ranking weights neighbours (aromatic = 3).
fn twice_bond_order(kind: BondType) -> u32 {
    match kind {
        BondType::Single => 2,
        BondType::Double => 4,
        BondType::Triple => 6,
        BondType::Quadruple => 8,
        BondType::Aromatic => 3,
        BondType::Zero => 0,
        BondType::Dative => 2,
    }
}

fn total_h(mol: &Mol, atom: usize) -> i32 {
    i32::from(mol.atoms[atom].total_h())
}

/// Degree including hydrogens (RDKit `getTotalDegree`).
fn total_degree(mol: &Mol, atom: usize) -> i32 {
    mol.degree(atom) as i32 + total_h(mol, atom)
}

/// Number of bonds that count for chirality (every bond but zero-order and dative ones).
fn nonzero_degree(mol: &Mol, atom: usize) -> i32 {
    mol.atom_bonds[atom]
        .iter()
        .filter(|&&b| !matches!(mol.bonds[b].kind, BondType::Zero | BondType::Dative))
        .count() as i32
}

fn default_valence(z: u8) -> i32 {
    elements::valences(z).first().map_or(-1, |&v| i32::from(v))
}

/// RDKit's explicit valence: bond orders (aromatic 1.5) plus bracket hydrogens, with its
/// rounding rules for aromatic atoms.
fn explicit_valence(mol: &Mol, atom: usize) -> i32 {
    let a = &mol.atoms[atom];
    let mut accum: f64 = mol.atom_bonds[atom]
        .iter()
        .map(|&b| mol.bonds[b].valence_contrib(atom))
        .sum();
    accum += f64::from(a.explicit_h);
    let own = elements::valences(a.element);
    let effective = if own.len() > 1 || own.first().is_some_and(|&v| v != -1) {
        (i32::from(a.element) - i32::from(a.charge)).clamp(0, 118) as u8
    } else {
        a.element
    };
    let dv = default_valence(effective);
    if a.aromatic && dv >= 0 && accum > f64::from(dv) {
        let mut pval = dv;
        for &v in elements::valences(effective) {
            if v == -1 || f64::from(v) > accum {
                break;
            }
            pval = i32::from(v);
        }
        if accum - f64::from(pval) <= 1.5 {
            accum = f64::from(pval);
        }
    }
    (accum + 0.1).round() as i32
}

fn total_valence(mol: &Mol, atom: usize) -> i32 {
    explicit_valence(mol, atom) + i32::from(mol.atoms[atom].implicit_h)
}

/// RDKit `countAtomElec`: electrons an atom can donate to a pi system (-1: none possible).
fn count_atom_elec(mol: &Mol, atom: usize) -> i32 {
    let a = &mol.atoms[atom];
    let dv = default_valence(a.element);
    if dv <= 1 {
        return -1;
    }
    let degree = nonzero_degree(mol, atom) + total_h(mol, atom);
    if degree > 3 {
        return -1;
    }
    let lone = (i32::from(elements::outer_electrons(a.element)) - dv - i32::from(a.charge)).max(0);
    let mut res = (dv - degree) + lone - i32::from(a.radicals);
    if res > 1 && explicit_valence(mol, atom) - mol.degree(atom) as i32 > 1 {
        res = 1;
    }
    res
}

/// RDKit `isAtomConjugCand`.
fn is_conjugation_candidate(mol: &Mol, atom: usize) -> bool {
    let a = &mol.atoms[atom];
    let first = elements::valences(a.element).first().copied().unwrap_or(-1);
    if a.charge == 0 && first >= 0 && total_valence(mol, atom) > i32::from(first) {
        return false;
    }
    let outer = elements::outer_electrons(a.element);
    (a.element <= 10 || (outer != 5 && outer != 6) || (outer == 6 && total_degree(mol, atom) < 2))
        && count_atom_elec(mol, atom) > 0
}

/// Substituent count RDKit's conjugation uses (0 for non-candidates).
fn substituents(mol: &Mol, atom: usize) -> (bool, i32) {
    if is_conjugation_candidate(mol, atom) {
        (true, mol.degree(atom) as i32 + total_h(mol, atom))
    } else {
        (false, 0)
    }
}

/// Whether RDKit's `setConjugation` marks `bond` conjugated when looking from `center`.
fn marked_conjugated_from(mol: &Mol, center: usize, bond: usize) -> bool {
    let (cand, subs) = substituents(mol, center);
    if !cand || !(2..=3).contains(&subs) {
        return false;
    }
    let b = &mol.bonds[bond];
    let other = b.other(center);
    let (other_cand, other_subs) = substituents(mol, other);
    let others = || {
        mol.atom_bonds[center]
            .iter()
            .copied()
            .filter(move |&ob| ob != bond)
    };
    // `bond` as the multiple bond, another bond to a candidate with <= 3 substituents.
    if b.kind.valence_contrib() >= 1.5
        && other_cand
        && others().any(|ob| {
            let (c, s) = substituents(mol, mol.bonds[ob].other(center));
            c && s <= 3
        })
    {
        return true;
    }
    // `bond` as the second bond, next to a multiple bond to a candidate.
    other_cand
        && other_subs <= 3
        && others().any(|ob| {
            mol.bonds[ob].kind.valence_contrib() >= 1.5
                && substituents(mol, mol.bonds[ob].other(center)).0
        })
}

/// RDKit `atomHasConjugatedBond` after `setConjugation`.
fn has_conjugated_bond(mol: &Mol, atom: usize) -> bool {
    mol.atom_bonds[atom].iter().any(|&bi| {
        let b = &mol.bonds[bi];
        b.kind == BondType::Aromatic
            || marked_conjugated_from(mol, b.begin, bi)
            || marked_conjugated_from(mol, b.end, bi)
    })
}

/// RDKit `numBondsPlusLonePairs`.
fn bonds_plus_lone_pairs(mol: &Mol, atom: usize) -> i32 {
    let a = &mol.atoms[atom];
    let deg = total_degree(mol, atom) - (mol.degree(atom) as i32 - nonzero_degree(mol, atom));
    if a.element <= 1 {
        return deg;
    }
    let outer = i32::from(elements::outer_electrons(a.element));
    let valence = total_valence(mol, atom);
    let charge = i32::from(a.charge);
    let free = outer - (valence + charge);
    if valence + outer - charge < 8 {
        let radicals = i32::from(a.radicals);
        deg + (free - radicals) / 2 + radicals
    } else {
        deg + free / 2
    }
}

/// Whether RDKit's `setHybridization` makes the atom SP3.
fn is_sp3(mol: &Mol, atom: usize) -> bool {
    let a = &mol.atoms[atom];
    if a.element == 0 {
        return false;
    }
    let td = total_degree(mol, atom);
    match a.chiral {
        ChiralTag::Cw | ChiralTag::Ccw if td == 4 => return true,
        ChiralTag::SquarePlanar(_) if (2..=4).contains(&td) => return false,
        ChiralTag::TrigonalBipyramidal(_) if (2..=5).contains(&td) => return false,
        ChiralTag::Octahedral(_) if (2..=6).contains(&td) => return false,
        _ => {}
    }
    let orbitals = if a.element < 89 {
        bonds_plus_lone_pairs(mol, atom)
    } else {
        td
    };
    orbitals == 4 && (td > 3 || !has_conjugated_bond(mol, atom))
}

/// Sanitization's `cleanupChirality`: tetrahedral tags survive only on SP3 atoms,
/// square-planar / trigonal-bipyramidal / octahedral tags only with 2..=4 / 2..=5 / 2..=6
/// neighbours (hydrogens included).
fn cleanup_chirality(mol: &mut Mol) {
    for atom in 0..mol.atoms.len() {
        let td = total_degree(mol, atom);
        let keep = match mol.atoms[atom].chiral {
            ChiralTag::Cw | ChiralTag::Ccw => is_sp3(mol, atom),
            ChiralTag::SquarePlanar(_) => (2..=4).contains(&td),
            ChiralTag::TrigonalBipyramidal(_) => (2..=5).contains(&td),
            ChiralTag::Octahedral(_) => (2..=6).contains(&td),
            ChiralTag::Unspecified | ChiralTag::Other | ChiralTag::Allene(_) => true,
        };
        if !keep {
            mol.atoms[atom].chiral = ChiralTag::Unspecified;
        }
    }
}

/// Legacy CIP ranks (RDKit `iterateCIPRanks`): atoms start ordered by `invariants`; tied
/// atoms are then split by the list of their neighbours' ranks (each repeated
/// twice-bond-order times, highest first) followed by one zero per hydrogen, for at most
/// n/2 + 1 rounds or until a round splits nothing. Ranks are dense, 0 = lowest priority.
fn iterate_ranks(mol: &Mol, invariants: &[i64]) -> Vec<u32> {
    let n = mol.atoms.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&i| invariants[i]);
    let mut ranks = vec![0u32; n];
    let mut num_ranks = dense_ranks(&order, &mut ranks, |a, b| invariants[a] == invariants[b]);
    if num_ranks == n {
        return ranks;
    }

    // Neighbours with their weights, atom i at nbrs[nbr_start[i]..nbr_start[i + 1]]:
    // twice the bond order, but a double bond to a 3- or 4-connected phosphorus counts
    // once (RDKit's chiral phosphorus special case).
    let mut nbr_start = Vec::with_capacity(n + 1);
    let mut nbrs: Vec<(usize, u32)> = Vec::with_capacity(2 * mol.bonds.len());
    for atom in 0..n {
        nbr_start.push(nbrs.len());
        for &bi in &mol.atom_bonds[atom] {
            let b = &mol.bonds[bi];
            let nbr = b.other(atom);
            let w = if b.kind == BondType::Double
                && mol.atoms[nbr].element == 15
                && matches!(mol.degree(nbr), 3 | 4)
            {
                1
            } else {
                twice_bond_order(b.kind)
            };
            nbrs.push((nbr, w));
        }
    }
    nbr_start.push(nbrs.len());

    let max_its = n / 2 + 1;
    let mut its = 0;
    let mut last_num_ranks: Option<usize> = None;
    // Keys of tied atoms in one buffer: atom i owns keys[key_start[i]..key_start[i + 1]].
    // A key is the neighbour list run-length encoded as (rank + 1) << 32 | total weight,
    // highest rank first, then (0, hydrogen count): comparing these runs
    // lexicographically orders atoms exactly as comparing the expanded lists would,
    // because the values strictly decrease along a key.
    let mut keys: Vec<u64> = Vec::with_capacity(nbrs.len() + n);
    let mut key_start: Vec<usize> = vec![0; n + 1];
    let mut tied = vec![false; n];
    let mut old = ranks.clone();
    while num_ranks < n && its < max_its && last_num_ranks.is_none_or(|last| last < num_ranks) {
        mark_tied(&order, &ranks, &mut tied);
        keys.clear();
        for atom in 0..n {
            key_start[atom] = keys.len();
            if !tied[atom] {
                continue;
            }
            let own = &mut nbrs[nbr_start[atom]..nbr_start[atom + 1]];
            // Highest rank first; neighbour lists are tiny, so insertion sort.
            for i in 1..own.len() {
                let mut j = i;
                while j > 0 && ranks[own[j - 1].0] < ranks[own[j].0] {
                    own.swap(j - 1, j);
                    j -= 1;
                }
            }
            let first = keys.len();
            for &(nbr, w) in own.iter() {
                if w == 0 {
                    continue;
                }
                let value = u64::from(ranks[nbr] + 1) << 32;
                let last = keys.len().wrapping_sub(1);
                if keys.len() > first && keys[last] >> 32 == value >> 32 {
                    keys[last] += u64::from(w);
                } else {
                    keys.push(value | u64::from(w));
                }
            }
            let hs = mol.atoms[atom].total_h();
            if hs > 0 {
                keys.push(u64::from(hs));
            }
        }
        key_start[n] = keys.len();
        let key = |atom: usize| &keys[key_start[atom]..key_start[atom + 1]];
        last_num_ranks = Some(num_ranks);
        // Only runs of equal rank need sorting; `order` stays sorted by rank.
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && ranks[order[end]] == ranks[order[start]] {
                end += 1;
            }
            if end - start > 1 {
                order[start..end].sort_unstable_by(|&a, &b| key(a).cmp(key(b)));
            }
            start = end;
        }
        old.copy_from_slice(&ranks);
        num_ranks = dense_ranks(&order, &mut ranks, |a, b| {
            old[a] == old[b] && key(a) == key(b)
        });
        its += 1;
    }
    ranks
}

/// Marks the atoms that share their rank with another atom.
fn mark_tied(order: &[usize], ranks: &[u32], tied: &mut [bool]) {
    for (pos, &atom) in order.iter().enumerate() {
        let r = ranks[atom];
        tied[atom] = (pos > 0 && ranks[order[pos - 1]] == r)
            || order.get(pos + 1).is_some_and(|&next| ranks[next] == r);
    }
}

/// Assigns dense ranks along `order` (equal neighbours share a rank); returns their count.
fn dense_ranks(order: &[usize], ranks: &mut [u32], same: impl Fn(usize, usize) -> bool) -> usize {
    let mut current = 0u32;
    for (pos, &atom) in order.iter().enumerate() {
        if pos > 0 && !same(order[pos - 1], atom) {
            current += 1;
        }
        ranks[atom] = current;
    }
    if order.is_empty() {
        0
    } else {
        current as usize + 1
    }
}

/// RDKit `buildCIPInvariants`: atomic number, isotope offset, atom map number.
fn cip_invariants(mol: &Mol) -> Vec<i64> {
    mol.atoms
        .iter()
        .map(|a| {
            let z = i64::from(a.element % 128);
            let mut mass = 0i64;
            if let Some(iso) = a.isotope.filter(|&i| i != 0) {
                let common = MOST_COMMON_ISOTOPE
                    .get(usize::from(a.element))
                    .copied()
                    .unwrap_or(0);
                mass = i64::from(iso) - i64::from(common);
                if mass >= 0 {
                    mass += 1;
                }
            }
            mass += 512;
            let mass = if mass < 0 { 0 } else { mass % 1024 };
            // Map numbers count from 1 so that an explicit `:0` differs from none.
            let map = a.map_number.map_or(0, |m| (i64::from(m) + 1) % 1024);
            ((z << 10) | mass) << 10 | map
        })
        .collect()
}

/// Number of transpositions (mod 2) turning `reference` into `probe`.
fn odd_permutation(reference: &[usize], probe: &[usize]) -> bool {
    let positions: Vec<usize> = probe
        .iter()
        .map(|p| reference.iter().position(|r| r == p).unwrap_or(0))
        .collect();
    let mut inversions = 0usize;
    for i in 0..positions.len() {
        for j in i + 1..positions.len() {
            if positions[i] > positions[j] {
                inversions += 1;
            }
        }
    }
    inversions % 2 == 1
}

/// RDKit `isAtomPotentialChiralCenter` without the rank check: whether `atom` could be a
/// tetrahedral centre at all.
fn legal_center(mol: &Mol, rings: &RingData, atom: usize) -> bool {
    let a = &mol.atoms[atom];
    let nz = nonzero_degree(mol, atom);
    let hs = total_h(mol, atom);
    // Tetrahedral only; fewer than three neighbours only for phosphines / arsines.
    if nz + hs > 4 || nz + hs < 3 || (nz < 3 && a.element != 15 && a.element != 33) {
        false
    } else if nz == 3 {
        if hs == 1 {
            !mol.neighbors(atom).any(|nbr| {
                let n = &mol.atoms[nbr];
                n.element == 1 && n.isotope.is_none_or(|i| i == 0)
            })
        } else {
            match a.element {
                7 => {
                    is_sp3(mol, atom)
                        && !has_conjugated_bond(mol, atom)
                        && (rings.in_ring_of_3[atom] || rings.is_bridgehead(mol, atom))
                }
                15 | 33 => true,
                16 | 34 => {
                    let ev = explicit_valence(mol, atom);
                    ev == 4 || (ev == 3 && a.charge == 1)
                }
                _ => false,
            }
        }
    } else {
        true
    }
}

/// State of RDKit's legacy stereo perception on one molecule.
struct Perception<'m> {
    mol: &'m mut Mol,
    rings: &'m RingData,
    /// Per atom: could it be a tetrahedral centre (ignoring ranks)?
    legal: Vec<bool>,
    ranks: Vec<u32>,
    cip: Vec<Option<Cip>>,
    stereo: Vec<DoubleBondStereo>,
}

impl<'m> Perception<'m> {
    fn new(mol: &'m mut Mol, rings: &'m RingData) -> Self {
        let (n_atoms, n_bonds) = (mol.atoms.len(), mol.bonds.len());
        let legal = (0..n_atoms).map(|a| legal_center(mol, rings, a)).collect();
        Perception {
            mol,
            rings,
            legal,
            ranks: Vec::new(),
            cip: vec![None; n_atoms],
            stereo: vec![DoubleBondStereo::None; n_bonds],
        }
    }

    fn run(mut self) {
        let mol = &*self.mol;
        let mut has_stereo_atoms = false;
        let mut has_potential_atoms = false;
        for atom in 0..mol.atoms.len() {
            let tag = mol.atoms[atom].chiral;
            if !has_stereo_atoms && !matches!(tag, ChiralTag::Unspecified | ChiralTag::Other) {
                has_stereo_atoms = true;
            } else if !has_potential_atoms {
                has_potential_atoms = self.legal[atom];
            }
        }
        let mut has_stereo_bonds = false;
        let mut has_potential_bonds = false;
        for (bi, b) in mol.bonds.iter().enumerate() {
            if has_stereo_bonds || b.kind != BondType::Double {
                continue;
            }
            let specified = [b.begin, b.end].iter().any(|&a| {
                mol.atom_bonds[a]
                    .iter()
                    .any(|&nb| is_directional(mol.bonds[nb].dir))
            });
            has_stereo_bonds = specified;
            if !has_potential_bonds && !specified && self.rings.double_bond_stereo_allowed(bi) {
                has_potential_bonds = true;
            }
        }

        let mut keep_going =
            has_stereo_atoms || has_stereo_bonds || has_potential_atoms || has_potential_bonds;
        if keep_going {
            self.ranks = iterate_ranks(self.mol, &cip_invariants(self.mol));
        }
        while keep_going {
            let mut changed_atoms = false;
            let mut changed_bonds = false;
            if has_stereo_atoms || has_potential_atoms {
                (has_stereo_atoms, changed_atoms) = self.assign_atom_codes();
            }
            if has_stereo_bonds || has_potential_bonds {
                (has_stereo_bonds, changed_bonds) = self.assign_bond_codes();
            }
            keep_going = (has_stereo_atoms || has_stereo_bonds) && (changed_atoms || changed_bonds);
            if keep_going {
                self.rerank();
            }
        }
        self.clean_atoms();
        self.clean_bonds();
    }

    /// Whether two chirality-relevant neighbours of `atom` share a rank.
    fn has_duplicate_ranks(&self, atom: usize) -> bool {
        let mol = &*self.mol;
        let mut seen = [0u32; 8];
        let mut count = 0;
        for &bi in &mol.atom_bonds[atom] {
            let b = &mol.bonds[bi];
            if matches!(b.kind, BondType::Zero | BondType::Dative) {
                continue;
            }
            let r = self.ranks[b.other(atom)];
            if seen[..count].contains(&r) {
                return true;
            }
            if count < seen.len() {
                seen[count] = r;
                count += 1;
            }
        }
        false
    }

    /// RDKit `assignAtomChiralCodes`: (unassigned legal centres remain, any code assigned).
    fn assign_atom_codes(&mut self) -> (bool, bool) {
        let mut changed = false;
        let mut unassigned = 0usize;
        for atom in 0..self.mol.atoms.len() {
            if self.cip[atom].is_some() {
                continue;
            }
            if !self.legal[atom] {
                continue;
            }
            let tag = self.mol.atoms[atom].chiral;
            if self.has_duplicate_ranks(atom)
                || matches!(tag, ChiralTag::Unspecified | ChiralTag::Other)
            {
                unassigned += 1;
                continue;
            }
            changed = true;
            let bonds = &self.mol.atom_bonds[atom];
            let mut sorted: Vec<usize> = bonds.clone();
            sorted.sort_by_key(|&bi| self.ranks[self.mol.bonds[bi].other(atom)]);
            let mut odd = odd_permutation(bonds, &sorted);
            if sorted.len() == 3 && self.mol.atoms[atom].total_h() == 1 {
                odd = !odd;
            }
            let ccw = (tag == ChiralTag::Ccw) != odd;
            self.cip[atom] = Some(if ccw { Cip::S } else { Cip::R });
        }
        (unassigned > 0, changed)
    }

    /// Neighbours of `atom` other than across `double`, with their directions as seen
    /// from `atom` (RDKit `findAtomNeighborDirHelper`); empty when no direction is set or
    /// the two substituents have the same rank.
    fn directed_neighbors(&self, atom: usize, double: usize) -> Vec<(usize, BondDir)> {
        let mol = &*self.mol;
        let mut seen_dir = false;
        let mut out: Vec<(usize, BondDir)> = Vec::with_capacity(2);
        for &bi in &mol.atom_bonds[atom] {
            if bi == double {
                continue;
            }
            let b = &mol.bonds[bi];
            let mut dir = b.dir;
            if is_directional(dir) {
                seen_dir = true;
                if atom != b.begin {
                    dir = opposite(dir);
                }
            }
            out.push((b.other(atom), dir));
        }
        if !seen_dir || (out.len() == 2 && self.ranks[out[0].0] == self.ranks[out[1].0]) {
            out.clear();
        } else if !is_directional(out[0].1) {
            if let Some(&(_, d)) = out.get(1) {
                out[0].1 = opposite(d);
            }
        } else if out.len() > 1 && !is_directional(out[1].1) {
            out[1].1 = opposite(out[0].1);
        }
        out
    }

    /// The direction of the higher-ranked directed neighbour.
    fn controlling_dir(&self, nbrs: &[(usize, BondDir)]) -> BondDir {
        if nbrs.len() == 1 || self.ranks[nbrs[0].0] > self.ranks[nbrs[1].0] {
            nbrs[0].1
        } else {
            nbrs[1].1
        }
    }

    /// RDKit `assignBondStereoCodes`: (unassigned candidate bonds remain, any assigned).
    fn assign_bond_codes(&mut self) -> (bool, bool) {
        let mut assigned = false;
        let mut unassigned = 0usize;
        let mut to_clear: Vec<usize> = Vec::new();
        for bi in 0..self.mol.bonds.len() {
            let b = &self.mol.bonds[bi];
            if b.kind != BondType::Double
                || self.stereo[bi] != DoubleBondStereo::None
                || !self.rings.double_bond_stereo_allowed(bi)
            {
                continue;
            }
            let (begin, end) = (b.begin, b.end);
            if !matches!(self.mol.degree(begin), 2 | 3) || !matches!(self.mol.degree(end), 2 | 3) {
                continue;
            }
            unassigned += 1;
            let begin_nbrs = self.directed_neighbors(begin, bi);
            let end_nbrs = self.directed_neighbors(end, bi);
            if begin_nbrs.is_empty() || end_nbrs.is_empty() {
                continue;
            }
            let conflict = |nbrs: &[(usize, BondDir)]| nbrs.len() == 2 && nbrs[0].1 == nbrs[1].1;
            let (bad_begin, bad_end) = (conflict(&begin_nbrs), conflict(&end_nbrs));
            assigned = true;
            if bad_begin || bad_end {
                for (center, nbrs, bad) in
                    [(begin, &begin_nbrs, bad_begin), (end, &end_nbrs, bad_end)]
                {
                    if bad {
                        to_clear.extend(
                            nbrs.iter()
                                .filter_map(|&(n, _)| self.mol.bond_between(n, center)),
                        );
                    }
                }
            } else if self.controlling_dir(&begin_nbrs) == self.controlling_dir(&end_nbrs) {
                self.stereo[bi] = DoubleBondStereo::Z;
            } else {
                self.stereo[bi] = DoubleBondStereo::E;
            }
            unassigned -= 1;
        }
        for bi in to_clear {
            self.mol.bonds[bi].dir = BondDir::None;
        }
        (unassigned > 0, assigned)
    }

    /// RDKit `rerankAtoms`: refine the ranks with R > S > none and Z > E > none.
    fn rerank(&mut self) {
        let n = self.mol.atoms.len();
        let mut factor: i64 = 100;
        while factor < n as i64 {
            factor *= 10;
        }
        let invariants: Vec<i64> = (0..n)
            .map(|atom| {
                let mut inv = i64::from(self.ranks[atom]) * factor;
                inv += match self.cip[atom] {
                    Some(Cip::S) => 10,
                    Some(Cip::R) => 20,
                    None => 0,
                };
                for &bi in &self.mol.atom_bonds[atom] {
                    if self.mol.bonds[bi].kind == BondType::Double {
                        inv += match self.stereo[bi] {
                            DoubleBondStereo::E => 1,
                            DoubleBondStereo::Z => 2,
                            DoubleBondStereo::None => 0,
                        };
                    }
                }
                inv
            })
            .collect();
        self.ranks = iterate_ranks(self.mol, &invariants);
    }

    /// RDKit `atomIsCandidateForRingStereochem`.
    fn ring_stereo_candidate(&self, atom: usize) -> bool {
        let mol = &*self.mol;
        if !self.rings.atom_in_ring[atom] {
            return false;
        }
        if mol.atoms[atom].element == 7
            && total_degree(mol, atom) == 3
            && !self.rings.in_ring_of_3[atom]
            && !self.rings.is_bridgehead(mol, atom)
        {
            return false;
        }
        let mut non_ring: Vec<usize> = Vec::with_capacity(4);
        let mut ring_count = 0usize;
        let mut ring_ranks: Vec<u32> = Vec::with_capacity(4);
        for &bi in &mol.atom_bonds[atom] {
            let nbr = mol.bonds[bi].other(atom);
            if !self.rings.bond_in_ring[bi] {
                non_ring.push(nbr);
            } else {
                ring_count += 1;
                if !ring_ranks.contains(&self.ranks[nbr]) {
                    ring_ranks.push(self.ranks[nbr]);
                }
            }
        }
        match non_ring.len() {
            2 => {
                self.ranks[non_ring[0]] != self.ranks[non_ring[1]] && ring_count != ring_ranks.len()
            }
            1 => ring_count > ring_ranks.len(),
            0 => {
                (ring_count == 4 && ring_ranks.len() == 3)
                    || (ring_count == 3 && ring_ranks.len() == 2)
            }
            _ => false,
        }
    }

    /// RDKit `findChiralAtomSpecialCases`: tagged ring atoms without a CIP code that keep
    /// their tag because another such atom is reachable through ring bonds.
    fn ring_stereo_atoms(&self) -> Vec<bool> {
        let mol = &*self.mol;
        let (n_atoms, n_bonds) = (mol.atoms.len(), mol.bonds.len());
        let mut special = vec![false; n_atoms];
        let mut has_partners = vec![false; n_atoms];
        let mut atoms_seen = vec![false; n_atoms];
        let mut atoms_used = vec![false; n_atoms];
        let mut bonds_seen = vec![false; n_bonds];
        let eligible = |atom: usize| {
            mol.atoms[atom].chiral != ChiralTag::Unspecified
                && self.cip[atom].is_none()
                && self.ring_stereo_candidate(atom)
        };
        for atom in 0..n_atoms {
            if atoms_seen[atom] || !self.rings.atom_in_ring[atom] || !eligible(atom) {
                continue;
            }
            let mut queue = std::collections::VecDeque::new();
            for &bi in &mol.atom_bonds[atom] {
                if !bonds_seen[bi] {
                    bonds_seen[bi] = true;
                    let other = mol.bonds[bi].other(atom);
                    if self.rings.bond_in_ring[bi] && !atoms_seen[other] {
                        queue.push_back(other);
                        atoms_used[other] = true;
                    }
                }
            }
            let mut found = false;
            while let Some(ratom) = queue.pop_front() {
                atoms_seen[ratom] = true;
                if eligible(ratom) {
                    found = true;
                    has_partners[ratom] = true;
                    special[ratom] = true;
                    special[atom] = true;
                }
                for &bi in &mol.atom_bonds[ratom] {
                    if !bonds_seen[bi] {
                        bonds_seen[bi] = true;
                        let other = mol.bonds[bi].other(ratom);
                        if self.rings.bond_in_ring[bi] && !atoms_seen[other] && !atoms_used[other] {
                            queue.push_back(other);
                            atoms_used[other] = true;
                        }
                    }
                }
            }
            if found {
                has_partners[atom] = true;
            } else {
                special[atom] = false;
            }
            atoms_seen[atom] = true;
        }
        (0..n_atoms)
            .map(|a| special[a] && has_partners[a])
            .collect()
    }

    /// Removes tags from atoms that are not stereocentres (keeping non-tetrahedral ones and
    /// ring stereochemistry), returning a lone bracket H of a neutral non-aromatic atom to
    /// the implicit count.
    fn clean_atoms(&mut self) {
        let keep_ring = if self.ranks.is_empty() {
            vec![false; self.mol.atoms.len()]
        } else {
            self.ring_stereo_atoms()
        };
        for (atom, keep_for_ring) in keep_ring.into_iter().enumerate() {
            let tag = self.mol.atoms[atom].chiral;
            let non_tetrahedral = matches!(
                tag,
                ChiralTag::SquarePlanar(_)
                    | ChiralTag::TrigonalBipyramidal(_)
                    | ChiralTag::Octahedral(_)
            );
            if tag == ChiralTag::Unspecified
                || non_tetrahedral
                || self.cip[atom].is_some()
                || keep_for_ring
            {
                continue;
            }
            self.mol.atoms[atom].chiral = ChiralTag::Unspecified;
            let a = &self.mol.atoms[atom];
            if a.explicit_h == 1 && a.charge == 0 && !a.aromatic {
                self.mol.atoms[atom].explicit_h = 0;
                self.mol.atoms[atom].no_implicit = false;
                self.mol.atoms[atom].implicit_h = recomputed_implicit_h(self.mol, atom);
            }
        }
    }

    /// Clears `/` `\` on single/aromatic bonds around double bonds without E/Z, unless the
    /// directed bond also touches a double bond with E/Z.
    fn clean_bonds(&mut self) {
        let mol = &mut *self.mol;
        for bi in 0..mol.bonds.len() {
            if mol.bonds[bi].kind != BondType::Double || self.stereo[bi] != DoubleBondStereo::None {
                continue;
            }
            for center in [mol.bonds[bi].begin, mol.bonds[bi].end] {
                for k in 0..mol.atom_bonds[center].len() {
                    let nb = mol.atom_bonds[center][k];
                    let b = &mol.bonds[nb];
                    if nb == bi
                        || !is_directional(b.dir)
                        || !matches!(b.kind, BondType::Single | BondType::Aromatic)
                    {
                        continue;
                    }
                    let far = b.other(center);
                    let protected = mol.atom_bonds[far].iter().any(|&fb| {
                        mol.bonds[fb].kind == BondType::Double
                            && self.stereo[fb] != DoubleBondStereo::None
                    });
                    if !protected {
                        mol.bonds[nb].dir = BondDir::None;
                    }
                }
            }
        }
    }
}

/// Implicit hydrogens of a neutral, non-aromatic atom without bracket hydrogens: the
/// smallest allowed valence that fits its bonds and radicals.
fn recomputed_implicit_h(mol: &Mol, atom: usize) -> u8 {
    let a = &mol.atoms[atom];
    if a.element == 0 {
        return 0;
    }
    let used = explicit_valence(mol, atom) + i32::from(a.radicals);
    elements::valences(a.element)
        .iter()
        .take_while(|&&v| v >= 0)
        .map(|&v| i32::from(v))
        .find(|&v| used <= v)
        .map_or(0, |v| u8::try_from(v - used).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chem::Atom;
    use BondDir::{EndUpRight as Up, None as NoDir};
    use BondType::{Aromatic as Ar, Double as D, Single as S};
    use ChiralTag::{Ccw, Cw, Unspecified as U};

    /// An atom as sanitization leaves it: (element, bracket H, implicit H, tag).
    type A = (u8, u8, u8, ChiralTag);

    /// Builds a sanitized molecule by hand; `rings` are atom cycles in ring order.
    fn build(
        atoms: &[A],
        bonds: &[(usize, usize, BondType, BondDir)],
        rings: &[&[usize]],
    ) -> (Mol, RingInfo) {
        let mut mol = Mol::new();
        for &(element, explicit_h, implicit_h, chiral) in atoms {
            mol.add_atom(Atom {
                element,
                explicit_h,
                implicit_h,
                no_implicit: explicit_h > 0 || chiral != U,
                chiral,
                ..Atom::default()
            });
        }
        for &(b, e, kind, dir) in bonds {
            mol.add_bond(b, e, kind, dir);
            if kind == Ar {
                mol.atoms[b].aromatic = true;
                mol.atoms[e].aromatic = true;
            }
        }
        let atom_rings: Vec<Vec<usize>> = rings.iter().map(|r| r.to_vec()).collect();
        let bond_rings = atom_rings
            .iter()
            .map(|r| {
                (0..r.len())
                    .filter_map(|i| mol.bond_between(r[i], r[(i + 1) % r.len()]))
                    .collect()
            })
            .collect();
        (
            mol,
            RingInfo {
                atom_rings,
                bond_rings,
            },
        )
    }

    fn run(atoms: &[A], bonds: &[(usize, usize, BondType, BondDir)], rings: &[&[usize]]) -> Mol {
        let (mut mol, info) = build(atoms, bonds, rings);
        assign_stereochemistry_with_rings(&mut mol, &info);
        mol
    }

    fn tags(mol: &Mol) -> Vec<ChiralTag> {
        mol.atoms.iter().map(|a| a.chiral).collect()
    }

    fn dirs(mol: &Mol) -> Vec<BondDir> {
        mol.bonds.iter().map(|b| b.dir).collect()
    }

    #[test]
    fn four_different_neighbours_keep_tag() {
        // F[C@](Cl)(Br)I
        let mol = run(
            &[
                (9, 0, 0, U),
                (6, 0, 0, Ccw),
                (17, 0, 0, U),
                (35, 0, 0, U),
                (53, 0, 0, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (1, 3, S, NoDir),
                (1, 4, S, NoDir),
            ],
            &[],
        );
        assert_eq!(tags(&mol), [U, Ccw, U, U, U]);
    }

    #[test]
    fn duplicate_neighbours_drop_tag_and_bracket_h() {
        // C[C@H](C)F -> CC(C)F: the bracket H becomes implicit.
        let mol = run(
            &[(6, 0, 3, U), (6, 1, 0, Ccw), (6, 0, 3, U), (9, 0, 0, U)],
            &[(0, 1, S, NoDir), (1, 2, S, NoDir), (1, 3, S, NoDir)],
            &[],
        );
        assert_eq!(tags(&mol), [U; 4]);
        let c = &mol.atoms[1];
        assert_eq!((c.explicit_h, c.implicit_h, c.no_implicit), (0, 1, false));
    }

    #[test]
    fn ring_stereo_keeps_both_tags() {
        // C[C@@H]1CC[C@H](C)CC1
        let mol = run(
            &[
                (6, 0, 3, U),
                (6, 1, 0, Cw),
                (6, 0, 2, U),
                (6, 0, 2, U),
                (6, 1, 0, Ccw),
                (6, 0, 3, U),
                (6, 0, 2, U),
                (6, 0, 2, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (2, 3, S, NoDir),
                (3, 4, S, NoDir),
                (4, 5, S, NoDir),
                (4, 6, S, NoDir),
                (6, 7, S, NoDir),
                (7, 1, S, NoDir),
            ],
            &[&[1, 2, 3, 4, 6, 7]],
        );
        assert_eq!(tags(&mol)[1], Cw);
        assert_eq!(tags(&mol)[4], Ccw);
    }

    #[test]
    fn lone_ring_centre_loses_tag() {
        // C[C@@H]1CCCCC1: no partner for ring stereo.
        let mol = run(
            &[
                (6, 0, 3, U),
                (6, 1, 0, Cw),
                (6, 0, 2, U),
                (6, 0, 2, U),
                (6, 0, 2, U),
                (6, 0, 2, U),
                (6, 0, 2, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (2, 3, S, NoDir),
                (3, 4, S, NoDir),
                (4, 5, S, NoDir),
                (5, 6, S, NoDir),
                (6, 1, S, NoDir),
            ],
            &[&[1, 2, 3, 4, 5, 6]],
        );
        assert_eq!(tags(&mol), [U; 7]);
    }

    #[test]
    fn pseudoasymmetric_centre_kept_after_reranking() {
        // C[C@H](O)[C@H](C)[C@@H](C)O keeps all three tags; RDKit's final _CIPRank is
        // 1 4 6 3 0 5 2 7 and the codes S, S, R.
        let (mut mol, info) = build(
            &[
                (6, 0, 3, U),
                (6, 1, 0, Ccw),
                (8, 0, 1, U),
                (6, 1, 0, Ccw),
                (6, 0, 3, U),
                (6, 1, 0, Cw),
                (6, 0, 3, U),
                (8, 0, 1, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (1, 3, S, NoDir),
                (3, 4, S, NoDir),
                (3, 5, S, NoDir),
                (5, 6, S, NoDir),
                (5, 7, S, NoDir),
            ],
            &[],
        );
        let rings = RingData::from_rings(&mol, &info);
        let mut p = Perception::new(&mut mol, &rings);
        p.ranks = iterate_ranks(p.mol, &cip_invariants(p.mol));
        let mut changed = true;
        while changed {
            let (_, c) = p.assign_atom_codes();
            changed = c;
            if changed {
                p.rerank();
            }
        }
        assert_eq!(p.ranks, [1, 4, 6, 3, 0, 5, 2, 7]);
        let codes: Vec<Option<Cip>> = [1, 3, 5].iter().map(|&a| p.cip[a]).collect();
        assert_eq!(codes, [Some(Cip::S), Some(Cip::S), Some(Cip::R)]);
    }

    #[test]
    fn initial_ranks_match_rdkit() {
        // OC[C@H](C)O: RDKit _CIPRank 3 1 2 0 4.
        let (mol, _) = build(
            &[
                (8, 0, 1, U),
                (6, 0, 2, U),
                (6, 1, 0, Ccw),
                (6, 0, 3, U),
                (8, 0, 1, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (2, 3, S, NoDir),
                (2, 4, S, NoDir),
            ],
            &[],
        );
        assert_eq!(iterate_ranks(&mol, &cip_invariants(&mol)), [3, 1, 2, 0, 4]);
    }

    #[test]
    fn aromatic_neighbours_rank_like_rdkit() {
        // CC(=O)[C@H](N)c1ccccc1: RDKit _CIPRank 0 6 8 5 7 4 3 2 1 2 3.
        let ring = [5, 6, 7, 8, 9, 10];
        let mut bonds = vec![
            (0, 1, S, NoDir),
            (1, 2, D, NoDir),
            (1, 3, S, NoDir),
            (3, 4, S, NoDir),
            (3, 5, S, NoDir),
        ];
        bonds.extend((0..6).map(|i| (ring[i], ring[(i + 1) % 6], Ar, NoDir)));
        let mut atoms: Vec<A> = vec![
            (6, 0, 3, U),
            (6, 0, 0, U),
            (8, 0, 0, U),
            (6, 1, 0, Ccw),
            (7, 0, 2, U),
            (6, 0, 0, U),
        ];
        atoms.extend([(6, 0, 1, U); 5]);
        let (mol, _) = build(&atoms, &bonds, &[&ring]);
        assert_eq!(
            iterate_ranks(&mol, &cip_invariants(&mol)),
            [0, 6, 8, 5, 7, 4, 3, 2, 1, 2, 3]
        );
    }

    #[test]
    fn trans_difluoroethene_keeps_directions() {
        // F/C=C/F
        let mol = run(
            &[(9, 0, 0, U), (6, 0, 1, U), (6, 0, 1, U), (9, 0, 0, U)],
            &[(0, 1, S, Up), (1, 2, D, NoDir), (2, 3, S, Up)],
            &[],
        );
        assert_eq!(dirs(&mol), [Up, NoDir, Up]);
    }

    #[test]
    fn identical_substituents_clear_directions() {
        // F/C=C(/F)F
        let mol = run(
            &[
                (9, 0, 0, U),
                (6, 0, 1, U),
                (6, 0, 0, U),
                (9, 0, 0, U),
                (9, 0, 0, U),
            ],
            &[
                (0, 1, S, Up),
                (1, 2, D, NoDir),
                (2, 3, S, Up),
                (2, 4, S, NoDir),
            ],
            &[],
        );
        assert_eq!(dirs(&mol), [NoDir; 4]);
    }

    #[test]
    fn conflicting_directions_are_cleared() {
        // F/C(/F)=C/F: both substituents of one end point the same way.
        let mol = run(
            &[
                (9, 0, 0, U),
                (6, 0, 0, U),
                (9, 0, 0, U),
                (6, 0, 1, U),
                (9, 0, 0, U),
            ],
            &[
                (0, 1, S, Up),
                (1, 2, S, Up),
                (1, 3, D, NoDir),
                (3, 4, S, Up),
            ],
            &[],
        );
        assert_eq!(dirs(&mol), [NoDir; 4]);
    }

    #[test]
    fn small_ring_double_bond_clears_directions() {
        // C1CCCC/C=C/1 (7-membered ring)
        let ring: Vec<usize> = (0..7).collect();
        let mut bonds: Vec<(usize, usize, BondType, BondDir)> =
            (0..4).map(|i| (i, i + 1, S, NoDir)).collect();
        bonds.extend([(4, 5, S, Up), (5, 6, D, NoDir), (6, 0, S, Up)]);
        let mut atoms: Vec<A> = vec![(6, 0, 2, U); 5];
        atoms.extend([(6, 0, 1, U); 2]);
        let mol = run(&atoms, &bonds, &[&ring]);
        assert_eq!(dirs(&mol), [NoDir; 7]);
    }

    #[test]
    fn directions_without_double_bond_survive() {
        // C/CC/C
        let mol = run(
            &[(6, 0, 3, U), (6, 0, 2, U), (6, 0, 2, U), (6, 0, 3, U)],
            &[(0, 1, S, Up), (1, 2, S, NoDir), (2, 3, S, Up)],
            &[],
        );
        assert_eq!(dirs(&mol), [Up, NoDir, Up]);
    }

    #[test]
    fn nitrogen_kept_only_in_three_ring() {
        // C[N@]1CC1F keeps the N tag; C[N@](F)Cl does not.
        let aziridine = run(
            &[
                (6, 0, 3, U),
                (7, 0, 0, Ccw),
                (6, 0, 2, U),
                (6, 0, 1, U),
                (9, 0, 0, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (2, 3, S, NoDir),
                (3, 1, S, NoDir),
                (3, 4, S, NoDir),
            ],
            &[&[1, 2, 3]],
        );
        assert_eq!(aziridine.atoms[1].chiral, Ccw);
        let amine = run(
            &[(6, 0, 3, U), (7, 0, 0, Ccw), (9, 0, 0, U), (17, 0, 0, U)],
            &[(0, 1, S, NoDir), (1, 2, S, NoDir), (1, 3, S, NoDir)],
            &[],
        );
        assert_eq!(amine.atoms[1].chiral, U);
    }

    #[test]
    fn amide_nitrogen_is_not_sp3() {
        // CC(=O)[N@@H]C: conjugation makes the N SP2, so cleanupChirality drops the tag.
        let mut mol = build(
            &[
                (6, 0, 3, U),
                (6, 0, 0, U),
                (8, 0, 0, U),
                (7, 1, 0, Cw),
                (6, 0, 3, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, D, NoDir),
                (1, 3, S, NoDir),
                (3, 4, S, NoDir),
            ],
            &[],
        )
        .0;
        assert!(!is_sp3(&mol, 3));
        cleanup_chirality(&mut mol);
        assert_eq!(mol.atoms[3].chiral, U);
    }

    #[test]
    fn sulfoxide_keeps_tag() {
        // C[S@](=O)c1ccccc1
        let ring = [3, 4, 5, 6, 7, 8];
        let mut bonds = vec![(0, 1, S, NoDir), (1, 2, D, NoDir), (1, 3, S, NoDir)];
        bonds.extend((0..6).map(|i| (ring[i], ring[(i + 1) % 6], Ar, NoDir)));
        let mut atoms: Vec<A> = vec![(6, 0, 3, U), (16, 0, 0, Ccw), (8, 0, 0, U), (6, 0, 0, U)];
        atoms.extend([(6, 0, 1, U); 5]);
        let mol = run(&atoms, &bonds, &[&ring]);
        assert_eq!(mol.atoms[1].chiral, Ccw);
    }

    #[test]
    fn square_planar_tag_survives() {
        // F[C@SP1](Cl)(Br)I
        let mol = run(
            &[
                (9, 0, 0, U),
                (6, 0, 0, ChiralTag::SquarePlanar(1)),
                (17, 0, 0, U),
                (35, 0, 0, U),
                (53, 0, 0, U),
            ],
            &[
                (0, 1, S, NoDir),
                (1, 2, S, NoDir),
                (1, 3, S, NoDir),
                (1, 4, S, NoDir),
            ],
            &[],
        );
        assert_eq!(mol.atoms[1].chiral, ChiralTag::SquarePlanar(1));
    }

    #[test]
    fn isotopes_break_ties() {
        // [13CH3][C@H](F)C keeps its tag (13C outranks C); RDKit agrees.
        let (mut mol, info) = build(
            &[(6, 0, 3, U), (6, 1, 0, Ccw), (9, 0, 0, U), (6, 0, 3, U)],
            &[(0, 1, S, NoDir), (1, 2, S, NoDir), (1, 3, S, NoDir)],
            &[],
        );
        mol.atoms[0].isotope = Some(13);
        assign_stereochemistry_with_rings(&mut mol, &info);
        assert_eq!(mol.atoms[1].chiral, Ccw);
    }

    fn ring_facts(rings: &RingData) -> (Vec<bool>, Vec<bool>, Vec<bool>, Vec<bool>) {
        (
            rings.bond_in_ring.clone(),
            rings.atom_in_ring.clone(),
            rings.in_ring_of_3.clone(),
            rings.in_small_ring.clone(),
        )
    }

    #[test]
    fn graph_ring_facts_match_sssr() {
        for smiles in [
            "C1=CCCCCCC1",
            "C1=CCCCCC1",
            "CC1CC1C=C",
            "C12C3C4C1C5C2C3C45",
            "C1CC2CCC1C2",
            "C1=CC2CCC1CC=C2",
            "c1ccc2ccccc2c1CC(C)C1CC1",
            "C1CC1.C1CCCCC/C=C/CCC1",
        ] {
            let mol = crate::chem::mol_from_smiles(smiles).expect("valid SMILES");
            let sssr = RingData::from_rings(&mol, &RingInfo::new(&mol));
            let mut from_sssr = ring_facts(&sssr);
            // `in_small_ring` is only defined for double bonds.
            for (bi, b) in mol.bonds.iter().enumerate() {
                if b.kind != D {
                    from_sssr.3[bi] = false;
                }
            }
            assert_eq!(
                ring_facts(&RingData::from_graph(&mol)),
                from_sssr,
                "{smiles}"
            );
        }
    }

    #[test]
    fn double_bonds_in_rings_below_eight_have_no_stereo() {
        // RDKit: cyclooctene's double bond can carry stereo, cycloheptene's cannot.
        for (smiles, allowed) in [("C1=CCCCCCC1", true), ("C1=CCCCCC1", false)] {
            let mol = crate::chem::mol_from_smiles(smiles).expect("valid SMILES");
            let rings = RingData::from_graph(&mol);
            let double = mol.bonds.iter().position(|b| b.kind == D);
            assert_eq!(
                double.map(|b| rings.double_bond_stereo_allowed(b)),
                Some(allowed)
            );
        }
    }

    #[test]
    fn allene_tag_kept_only_on_a_tetrahedral_centre() {
        // RDKit keeps CHI_ALLENE on F[C@AL1](Cl)(Br)I (it is ranked like a tetrahedral
        // centre) but drops it from the middle of OC(Cl)=[C@AL1]=C(C)F.
        let kept = crate::chem::mol_from_smiles("[C@AL1](F)(Cl)(Br)I").expect("valid");
        assert_eq!(kept.atoms[0].chiral, ChiralTag::Allene(1));
        let dropped = crate::chem::mol_from_smiles("OC(Cl)=[C@AL1]=C(C)F").expect("valid");
        assert_eq!(dropped.atoms[3].chiral, U);
    }

    #[test]
    fn trigonal_bipyramidal_needs_two_to_five_neighbours() {
        // RDKit keeps @TB1 on five-coordinate P and drops it on a one-neighbour atom.
        let kept = crate::chem::mol_from_smiles("F[P@TB1](Cl)(Br)(I)C").expect("valid");
        assert_eq!(kept.atoms[1].chiral, ChiralTag::TrigonalBipyramidal(1));
        let dropped = crate::chem::mol_from_smiles("[Cl@TB1]C").expect("valid");
        assert_eq!(dropped.atoms[0].chiral, U);
    }
}
