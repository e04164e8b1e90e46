//! Kekulization and RDKit's default aromaticity model.
//!
//! [`kekulize`] follows RDKit's `Kekulize` as run by sanitization: ring systems (rings
//! sharing a bond) are handled one at a time; in each, aromatic atoms that must carry a
//! double bond are found from their valence state, and a breadth-first walk with
//! backtracking pairs them up along aromatic bonds. [`set_aromaticity`] follows
//! `AROMATICITY_RDKIT`: every ring atom gets an electron-donor type, rings whose atoms
//! all qualify are candidates, and the 4n+2 rule is applied to each candidate ring and
//! to fused combinations of up to six of them. Both reproduce RDKit's traversal order,
//! because the Kekule form of rings that end up non-aromatic is visible in the output.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use super::rings::RingInfo;
use super::{elements, BondDir, BondType, ChemError, ErrorKind, Mol};

/// RDKit's limit on backtracking steps in one ring system.
const MAX_BACKTRACKS: usize = 100;
/// Rings larger than this are not fused with others for aromaticity (porphyrin-sized).
const MAX_FUSED_RING_SIZE: usize = 24;
/// At most this many rings are combined when testing a fused system.
const MAX_FUSED_RINGS: usize = 6;
/// Dummy-atom on/off permutations tried at most `2^MAX_QUESTIONS` times.
const MAX_QUESTIONS: usize = 16;

/// RDKit's allowed valences of element `z` (`-1` = anything); unknown elements get `[-1]`.
fn valences(z: u8) -> &'static [i8] {
    let list = elements::valences(z);
    if list.is_empty() {
        &[-1]
    } else {
        list
    }
}

/// RDKit's default valence of element `z` (`-1` when any valence is allowed).
fn default_valence(z: i32) -> i32 {
    u8::try_from(z).map_or(-1, |z| i32::from(valences(z)[0]))
}

/// Number of outer-shell electrons of element `z`.
fn outer_electrons(z: u8) -> i32 {
    i32::from(elements::outer_electrons(z))
}

/// RDKit's crude electronegativity order: more outer electrons, then the lighter element.
fn more_electronegative(a: u8, b: u8) -> bool {
    let (na, nb) = (outer_electrons(a), outer_electrons(b));
    na > nb || (na == nb && a < b)
}

/// Elements left of carbon (RDKit flips the sign of their charge in valence rules).
fn is_early_atom(z: u8) -> bool {
    z != 1 && default_valence(i32::from(z)) > 0 && (1..=3).contains(&outer_electrons(z))
}

/// Bond order rounded to an integer, as RDKit's `lround(getValenceContrib)`.
fn rounded_order(kind: BondType) -> i32 {
    match kind {
        BondType::Zero | BondType::Dative => 0,
        BondType::Single => 1,
        BondType::Double | BondType::Aromatic => 2,
        BondType::Triple => 3,
        BondType::Quadruple => 4,
    }
}

/// Valence bookkeeping of one atom of the raw (still aromatic) graph, as RDKit's
/// non-strict property cache computes it before kekulization.
struct RawValence {
    /// Hydrogens the atom would receive implicitly.
    implicit_h: i32,
    /// Explicit plus implicit valence.
    total: i32,
}

fn raw_valence(mol: &Mol, a: usize) -> RawValence {
    let atom = &mol.atoms[a];
    let aromatic = is_aromatic_atom(mol, a);
    let sum: f64 = mol.atom_bonds[a]
        .iter()
        .map(|&b| mol.bonds[b].valence_contrib(a))
        .sum::<f64>()
        + f64::from(atom.explicit_h);
    let rounded = (sum + 0.5).floor() as i32;
    // Only aromatic organic-subset atoms matter here: they get hydrogens up to the
    // default valence, and none once their bonds already exceed it.
    let implicit_h = if atom.no_implicit || atom.element == 0 || !aromatic {
        0
    } else {
        (default_valence(i32::from(atom.element)) - rounded).max(0)
    };
    let explicit = if aromatic {
        let charge = adjusted_charge(atom.element, atom.charge);
        valences(atom.element)
            .iter()
            .filter(|&&v| v >= 0)
            .map(|&v| i32::from(v) + charge)
            .filter(|&v| v <= rounded)
            .max()
            .unwrap_or(rounded)
    } else {
        rounded
    };
    RawValence {
        implicit_h,
        total: explicit + implicit_h,
    }
}

/// RDKit `isAromaticAtom`: flagged aromatic or carrying an aromatic bond.
fn is_aromatic_atom(mol: &Mol, a: usize) -> bool {
    mol.atoms[a].aromatic
        || mol.atom_bonds[a]
            .iter()
            .any(|&b| mol.bonds[b].kind == BondType::Aromatic)
}

/// Formal charge as it shifts the valence in RDKit's kekulization rules.
fn adjusted_charge(z: u8, charge: i8) -> i32 {
    let c = i32::from(charge);
    if is_early_atom(z) || (z == 6 && c > 0) {
        -c
    } else {
        c
    }
}

/// Builds a kekulization error naming the unkekulizable atoms.
fn kekulize_error(mol: &Mol, message: String, first_atom: Option<usize>) -> ChemError {
    ChemError {
        kind: ErrorKind::Kekulize,
        message,
        position: first_atom.map(|a| mol.atoms[a].position),
        input: String::new(),
    }
}

/// Replaces aromatic bonds by an alternating single/double (Kekule) assignment, as RDKit's
/// `Kekulize` does during sanitization. Relies only on element, charge, `explicit_h`,
/// `no_implicit`, aromatic flags and bonds (not on `implicit_h`). Atoms keep their aromatic
/// flag cleared afterwards. Fails with [`super::ErrorKind::Kekulize`] like RDKit's
/// "Can't kekulize mol". The error's `position` is the first problem atom's offset and its
/// `input` is left empty for the caller to fill in.
///
/// Like RDKit, an aromatic bond between atoms outside any ring system (`C:C`) keeps its
/// aromatic bond type. Neutral `[nH]`/`[pH]` lose their bracket hydrogen (it becomes
/// implicit, `no_implicit` is cleared), as RDKit does.
pub fn kekulize(mol: &mut Mol) -> Result<(), ChemError> {
    let rings = RingInfo::new(mol);
    kekulize_with_rings(mol, &rings)
}

/// [`kekulize`] with ring information that was already perceived for `mol`.
pub fn kekulize_with_rings(mol: &mut Mol, rings: &RingInfo) -> Result<(), ChemError> {
    let any_aromatic = mol.atoms.iter().any(|a| a.aromatic)
        || mol.bonds.iter().any(|b| b.kind == BondType::Aromatic);
    if !any_aromatic {
        return Ok(());
    }
    let mut k = Kekulizer::new(mol, rings);
    k.run()?;
    let mut in_ring = vec![false; mol.atoms.len()];
    for &a in rings.atom_rings.iter().flatten() {
        in_ring[a] = true;
    }
    for (i, atom) in mol.atoms.iter_mut().enumerate() {
        if !atom.aromatic {
            continue;
        }
        if !in_ring[i] {
            return Err(ChemError {
                kind: ErrorKind::Kekulize,
                message: format!("non-ring atom {i} marked aromatic"),
                position: Some(atom.position),
                input: String::new(),
            });
        }
        atom.aromatic = false;
        if matches!(atom.element, 7 | 15) && atom.charge == 0 && atom.explicit_h == 1 {
            atom.no_implicit = false;
            atom.explicit_h = 0;
        }
    }
    Ok(())
}

/// State of one kekulization.
struct Kekulizer<'a> {
    mol: &'a mut Mol,
    rings: &'a RingInfo,
    /// Bonds that were aromatic in the input (RDKit's bond aromatic flag).
    aromatic_bond: Vec<bool>,
    /// Atoms RDKit treats as aromatic here (flagged, or with an aromatic bond).
    aromatic_atom: Vec<bool>,
    /// Valence state of each atom before any change.
    valence: Vec<RawValence>,
    /// Number of rings through each atom.
    ring_count: Vec<usize>,
    /// Number of rings through each atom that cannot hold a double-bond candidate (no
    /// aromatic atom of theirs is in that ring only).
    not_cand_rings: Vec<usize>,
}

impl<'a> Kekulizer<'a> {
    fn new(mol: &'a mut Mol, rings: &'a RingInfo) -> Self {
        let aromatic_bond = mol
            .bonds
            .iter()
            .map(|b| b.kind == BondType::Aromatic)
            .collect();
        let valence = (0..mol.atoms.len()).map(|a| raw_valence(mol, a)).collect();
        let aromatic_atom: Vec<bool> = (0..mol.atoms.len())
            .map(|a| is_aromatic_atom(mol, a))
            .collect();
        // Per-molecule ring counts, computed once rather than for every ring system.
        let mut ring_count = vec![0; mol.atoms.len()];
        for &a in rings.atom_rings.iter().flatten() {
            ring_count[a] += 1;
        }
        let mut not_cand_rings = vec![0; mol.atoms.len()];
        for ring in &rings.atom_rings {
            if !ring.iter().any(|&a| aromatic_atom[a] && ring_count[a] == 1) {
                for &a in ring {
                    not_cand_rings[a] += 1;
                }
            }
        }
        Kekulizer {
            mol,
            rings,
            aromatic_bond,
            aromatic_atom,
            valence,
            ring_count,
            not_cand_rings,
        }
    }

    /// Kekulizes every ring system in RDKit's order.
    fn run(&mut self) -> Result<(), ChemError> {
        let mol = &*self.mol;
        let ring_ids: Vec<usize> = (0..self.rings.atom_rings.len())
            .filter(|&r| {
                self.rings.atom_rings[r]
                    .iter()
                    .any(|&a| mol.atoms[a].element != 0)
            })
            .collect();
        let bond_rings: Vec<&Vec<usize>> = ring_ids
            .iter()
            .map(|&r| &self.rings.bond_rings[r])
            .collect();
        let neighbors = ring_neighbors(&bond_rings, None, None);
        for system in fused_systems(&neighbors) {
            let atom_rings: Vec<&Vec<usize>> = system
                .iter()
                .map(|&i| &self.rings.atom_rings[ring_ids[i]])
                .collect();
            self.kekulize_system(&atom_rings)?;
        }
        Ok(())
    }

    /// Kekulizes one fused ring system given as atom rings.
    fn kekulize_system(&mut self, atom_rings: &[&Vec<usize>]) -> Result<(), ChemError> {
        let n = self.mol.atoms.len();
        let mut in_system = vec![false; n];
        let mut atoms = Vec::new();
        for ring in atom_rings {
            for &a in ring.iter() {
                if !in_system[a] {
                    in_system[a] = true;
                    atoms.push(a);
                }
            }
        }
        let mut cands = vec![false; n];
        let mut questions = Vec::new();
        let mut done = Vec::new();
        self.mark_candidates(&atoms, &mut cands, &mut questions, &mut done);
        let mut ok = self.worker(&atoms, &in_system, cands.clone(), done);
        if !ok && !questions.is_empty() {
            ok = self.permute_dummies(&atoms, &in_system, &cands, &questions);
        }
        if ok {
            return Ok(());
        }
        let problems: Vec<usize> = (0..n).filter(|&a| cands[a]).collect();
        let list: Vec<String> = problems.iter().map(usize::to_string).collect();
        Err(kekulize_error(
            self.mol,
            format!("Can't kekulize mol.  Unkekulized atoms: {}", list.join(" ")),
            problems.first().copied(),
        ))
    }

    /// Decides which atoms of the system need a double bond (RDKit `markDbondCands`),
    /// records non-aromatic atoms as done and dummies as optional, and turns the
    /// system's aromatic bonds single.
    fn mark_candidates(
        &mut self,
        atoms: &[usize],
        cands: &mut [bool],
        questions: &mut Vec<usize>,
        done: &mut Vec<usize>,
    ) {
        let mol = &*self.mol;
        if !atoms
            .iter()
            .any(|&a| mol.atoms[a].element == 0 || self.aromatic_atom[a])
        {
            return;
        }
        let mut seen = vec![false; mol.atoms.len()];
        let mut make_single = Vec::new();
        for &a in atoms {
            seen[a] = true;
            let atom = &mol.atoms[a];
            if atom.element != 0 && !self.aromatic_atom[a] {
                done.push(a);
                continue;
            }
            let mut sbo = 0i32;
            let mut ignored = 0i32;
            let mut plain_neighbors = 0usize;
            for &b in &mol.atom_bonds[a] {
                let bond = &mol.bonds[b];
                let other = &mol.atoms[bond.other(a)];
                if other.element != 0 && !other.aromatic && seen[bond.other(a)] {
                    plain_neighbors += 1;
                }
                if self.aromatic_bond[b]
                    && matches!(
                        bond.kind,
                        BondType::Single | BondType::Double | BondType::Aromatic
                    )
                {
                    sbo += 1;
                    make_single.push(b);
                } else {
                    let order = rounded_order(bond.kind);
                    sbo += order;
                    if order == 0 {
                        ignored += 1;
                    }
                }
            }
            let n_rings = self.ring_count[a];
            let n_not_cand = self.not_cand_rings[a];
            if atom.element == 0 && plain_neighbors < n_rings && n_not_cand < n_rings {
                cands[a] = true;
                questions.push(a);
                continue;
            }
            let val = &self.valence[a];
            let total_h = i32::from(atom.explicit_h) + val.implicit_h;
            sbo += total_h;
            let charge = adjusted_charge(atom.element, atom.charge);
            let list = valences(atom.element);
            let mut dv = i32::from(list[0]) + charge;
            let tbo = val.total;
            let radicals = i32::from(atom.radicals);
            let total_degree = mol.degree(a) as i32 + val.implicit_h - ignored;
            let mut vi = 1;
            while tbo > dv && vi < list.len() && list[vi] > 0 {
                dv = i32::from(list[vi]) + charge;
                vi += 1;
            }
            if tbo == 5
                && sbo == 4
                && dv == 3
                && total_degree == 3
                && radicals == 0
                && charge == 0
                && total_h == 0
                && matches!(atom.element, 7 | 15 | 33)
            {
                dv = 5;
            }
            if total_degree + radicals >= dv {
                continue;
            }
            if dv == sbo + 1 + radicals || (radicals == 0 && atom.no_implicit && dv == sbo + 2) {
                cands[a] = true;
            }
        }
        for b in make_single {
            self.mol.bonds[b].kind = BondType::Single;
        }
    }

    /// Tries switching off subsets of the dummy atoms' double-bond candidacy.
    fn permute_dummies(
        &mut self,
        atoms: &[usize],
        in_system: &[bool],
        cands: &[bool],
        questions: &[usize],
    ) -> bool {
        let questions = &questions[..questions.len().min(MAX_QUESTIONS)];
        for subset in 1u32..(1u32 << questions.len()) {
            for (b, bond) in self.mol.bonds.iter_mut().enumerate() {
                if self.aromatic_bond[b]
                    && bond.kind != BondType::Single
                    && in_system[bond.begin]
                    && in_system[bond.end]
                {
                    bond.kind = BondType::Single;
                }
            }
            let mut trial = cands.to_vec();
            for (i, &q) in questions.iter().enumerate() {
                if subset & (1 << i) != 0 {
                    trial[q] = false;
                }
            }
            if self.worker(atoms, in_system, trial, Vec::new()) {
                return true;
            }
        }
        false
    }

    /// Places double bonds between candidate atoms (RDKit `kekulizeWorker`): a
    /// breadth-first walk (neighbours by index) that takes the first candidate neighbour
    /// and backtracks to the latest atom that had alternatives when an atom is left
    /// without a partner. A directional bond that becomes double loses its direction.
    fn worker(
        &mut self,
        atoms: &[usize],
        in_system: &[bool],
        mut cands: Vec<bool>,
        mut done: Vec<usize>,
    ) -> bool {
        let nb = self.mol.bonds.len();
        let mut added = vec![false; nb];
        let mut local_added = vec![false; nb];
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut options: BTreeMap<usize, VecDeque<usize>> = BTreeMap::new();
        let mut branch_points: Vec<usize> = Vec::new();
        let mut last_branch: Option<usize> = None;
        let mut backtracks = 0;
        // Fresh starts go to the lowest-numbered atom not yet visited.
        let mut sorted_atoms = atoms.to_vec();
        sorted_atoms.sort_unstable();
        while done.len() < atoms.len() || !queue.is_empty() {
            let curr = match queue.pop_front() {
                Some(c) => c,
                None => match sorted_atoms.iter().copied().find(|a| !done.contains(a)) {
                    Some(c) => c,
                    None => return false,
                },
            };
            done.push(curr);
            let is_cand = cands[curr];
            let mut opts: VecDeque<usize> = match options.get(&curr) {
                Some(o) => o.clone(),
                None => {
                    let mut opts = VecDeque::new();
                    // Unvisited neighbours in the system, lowest index first.
                    let mut nbrs: Vec<(usize, usize)> = self.mol.atom_bonds[curr]
                        .iter()
                        .map(|&b| (self.mol.bonds[b].other(curr), b))
                        .filter(|&(nbr, _)| in_system[nbr] && !done.contains(&nbr))
                        .collect();
                    nbrs.sort_unstable();
                    let mut pending = Vec::new();
                    for (nbr, b) in nbrs {
                        if !queue.contains(&nbr) {
                            pending.push(nbr);
                        }
                        if is_cand
                            && cands[nbr]
                            && (self.aromatic_bond[b]
                                || self.mol.atoms[curr].element == 0
                                || self.mol.atoms[nbr].element == 0)
                        {
                            opts.push_back(nbr);
                        }
                    }
                    queue.extend(pending);
                    opts
                }
            };
            if !is_cand {
                continue;
            }
            if let Some(partner) = opts.pop_front() {
                let Some(b) = self.mol.bond_between(curr, partner) else {
                    return false;
                };
                self.mol.bonds[b].kind = BondType::Double;
                self.mol.bonds[b].dir = BondDir::None;
                cands[curr] = false;
                cands[partner] = false;
                added[b] = true;
                local_added[b] = true;
                match options.entry(curr) {
                    Entry::Occupied(mut slot) => {
                        if opts.is_empty() {
                            slot.remove();
                            branch_points.pop();
                            last_branch = branch_points.last().copied();
                        } else {
                            slot.insert(opts);
                        }
                    }
                    Entry::Vacant(slot) => {
                        if !opts.is_empty() {
                            last_branch = Some(curr);
                            branch_points.push(curr);
                            slot.insert(opts);
                        }
                    }
                }
            } else if self.mol.atoms[curr].element != 0 {
                match last_branch {
                    Some(branch) if backtracks < MAX_BACKTRACKS => {
                        self.backtrack(branch, &mut done, &mut queue, &mut cands, &mut added);
                        backtracks += 1;
                    }
                    _ => {
                        for (b, &was_added) in local_added.iter().enumerate() {
                            if was_added {
                                self.mol.bonds[b].kind = BondType::Single;
                            }
                        }
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Undoes the walk back to `branch`: atoms visited since are queued again and the
    /// double bonds placed among them are removed.
    fn backtrack(
        &mut self,
        branch: usize,
        done: &mut Vec<usize>,
        queue: &mut VecDeque<usize>,
        cands: &mut [bool],
        added: &mut [bool],
    ) {
        let first = done.iter().position(|&a| a == branch).unwrap_or(done.len());
        let last = done
            .iter()
            .rposition(|&a| a == branch)
            .unwrap_or(done.len());
        for &a in done[last..].iter().rev() {
            queue.push_front(a);
        }
        done.truncate(first);
        for (b, was_added) in added.iter_mut().enumerate() {
            if !*was_added {
                continue;
            }
            let (a1, a2) = (self.mol.bonds[b].begin, self.mol.bonds[b].end);
            if !done.contains(&a1) && !done.contains(&a2) {
                *was_added = false;
                self.mol.bonds[b].kind = BondType::Single;
                cands[a1] = true;
                cands[a2] = true;
            }
        }
    }
}

/// For each ring, the rings sharing at least one bond with it (RDKit
/// `makeRingNeighborMap`); rings above `max_size` have no neighbours, and with
/// `max_overlap` rings sharing more bonds than that are not neighbours.
fn ring_neighbors(
    bond_rings: &[&Vec<usize>],
    max_size: Option<usize>,
    max_overlap: Option<usize>,
) -> Vec<Vec<usize>> {
    let n = bond_rings.len();
    let too_big = |r: &Vec<usize>| max_size.is_some_and(|m| r.len() > m);
    // Rings through each bond, so that only rings that share a bond are compared.
    let mut rings_of: std::collections::HashMap<usize, Vec<usize>> =
        std::collections::HashMap::new();
    for (j, ring) in bond_rings.iter().enumerate() {
        if too_big(ring) {
            continue;
        }
        for &b in ring.iter() {
            let list = rings_of.entry(b).or_default();
            if list.last() != Some(&j) {
                list.push(j);
            }
        }
    }
    let mut neighbors = vec![Vec::new(); n];
    let mut shared: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    for i in 0..n {
        if too_big(bond_rings[i]) {
            continue;
        }
        // For every other ring: how many bonds of ring `i` it contains.
        shared.clear();
        for b in bond_rings[i].iter() {
            for &j in rings_of.get(b).into_iter().flatten() {
                if j != i {
                    *shared.entry(j).or_insert(0) += 1;
                }
            }
        }
        neighbors[i].extend(
            shared
                .iter()
                .filter(|&(_, &count)| max_overlap.is_none_or(|m| count <= m))
                .map(|(&j, _)| j),
        );
    }
    neighbors
}

/// Depth-first pre-order collection of the rings connected to `start` (RDKit
/// `pickFusedRings`), skipping rings already marked done.
fn pick_fused(start: usize, neighbors: &[Vec<usize>], done: &mut [bool], out: &mut Vec<usize>) {
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    done[start] = true;
    out.push(start);
    while let Some(top) = stack.last_mut() {
        let (ring, slot) = *top;
        if slot >= neighbors[ring].len() {
            stack.pop();
            continue;
        }
        top.1 += 1;
        let next = neighbors[ring][slot];
        if !done[next] {
            done[next] = true;
            out.push(next);
            stack.push((next, 0));
        }
    }
}

/// Ring systems in RDKit's order: starting from the lowest ring not yet taken.
fn fused_systems(neighbors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut done = vec![false; neighbors.len()];
    let mut systems = Vec::new();
    for start in 0..neighbors.len() {
        if !done[start] {
            let mut system = Vec::new();
            pick_fused(start, neighbors, &mut done, &mut system);
            systems.push(system);
        }
    }
    systems
}

/// RDKit's electron-donor classes of ring atoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Donor {
    /// Empty p orbital (0 electrons).
    Vacant,
    /// One electron.
    One,
    /// Two electrons (lone pair).
    Two,
    /// Dummy atom: one or two electrons.
    Any,
    /// Cannot take part.
    None,
}

impl Donor {
    /// Least and most electrons this atom can contribute.
    fn range(self) -> (i32, i32) {
        match self {
            Donor::Any => (1, 2),
            Donor::One => (1, 1),
            Donor::Two => (2, 2),
            Donor::Vacant | Donor::None => (0, 0),
        }
    }
}

/// Per-atom facts of the Kekule molecule that the aromaticity rules use.
struct AtomFacts<'a> {
    mol: &'a Mol,
    /// Bonds in at least one ring.
    ring_bond: Vec<bool>,
}

impl AtomFacts<'_> {
    /// RDKit explicit valence: rounded bond orders plus bracket hydrogens.
    fn explicit_valence(&self, a: usize) -> i32 {
        let sum: f64 = self.mol.atom_bonds[a]
            .iter()
            .map(|&b| self.mol.bonds[b].valence_contrib(a))
            .sum();
        (sum + 0.1).round() as i32 + i32::from(self.mol.atoms[a].explicit_h)
    }

    fn degree(&self, a: usize) -> i32 {
        self.mol.degree(a) as i32
    }

    fn zero_order_bonds(&self, a: usize) -> i32 {
        self.mol.atom_bonds[a]
            .iter()
            .filter(|&&b| rounded_order(self.mol.bonds[b].kind) == 0)
            .count() as i32
    }

    /// Partner of a double or triple bond outside any ring, if any.
    fn exocyclic_multiple(&self, a: usize) -> Option<usize> {
        self.mol.atom_bonds[a]
            .iter()
            .find(|&&b| !self.ring_bond[b] && self.mol.bonds[b].kind.valence_contrib() >= 2.0)
            .map(|&b| self.mol.bonds[b].other(a))
    }

    fn has_ring_multiple(&self, a: usize) -> bool {
        self.mol.atom_bonds[a]
            .iter()
            .any(|&b| self.ring_bond[b] && self.mol.bonds[b].kind.valence_contrib() >= 2.0)
    }

    fn has_multiple(&self, a: usize) -> bool {
        let deg =
            self.degree(a) + i32::from(self.mol.atoms[a].explicit_h) - self.zero_order_bonds(a);
        self.explicit_valence(a) != deg
    }

    /// Electrons the atom can donate to a pi system (RDKit `countAtomElec`), or -1.
    fn count_electrons(&self, a: usize) -> i32 {
        let atom = &self.mol.atoms[a];
        let dv = default_valence(i32::from(atom.element));
        if dv <= 1 {
            return -1;
        }
        let degree = self.degree(a) + i32::from(atom.total_h()) - self.zero_order_bonds(a);
        if degree > 3 {
            return -1;
        }
        let lone = (outer_electrons(atom.element) - dv - i32::from(atom.charge)).max(0);
        let mut res = dv - degree + lone - i32::from(atom.radicals);
        if res > 1 && self.explicit_valence(a) - self.degree(a) > 1 {
            res = 1;
        }
        res
    }

    /// RDKit `getAtomDonorTypeArom` with exocyclic bonds stealing electrons.
    fn donor(&self, a: usize) -> Donor {
        let atom = &self.mol.atoms[a];
        if atom.element == 0 {
            return if self.has_ring_multiple(a) {
                Donor::One
            } else {
                Donor::Any
            };
        }
        let mut nelec = self.count_electrons(a);
        let exo = self.exocyclic_multiple(a);
        let steals = |o: usize| more_electronegative(self.mol.atoms[o].element, atom.element);
        match nelec {
            n if n < 0 => Donor::None,
            0 => {
                if exo.is_some() {
                    Donor::Vacant
                } else if self.has_ring_multiple(a) {
                    Donor::One
                } else {
                    Donor::None
                }
            }
            1 => match exo {
                Some(o) if steals(o) => Donor::Vacant,
                Some(_) => Donor::One,
                None if self.has_multiple(a) => Donor::One,
                None if atom.charge == 1 => Donor::Vacant,
                None => Donor::None,
            },
            _ => {
                if exo.is_some_and(steals) {
                    nelec -= 1;
                }
                if nelec % 2 == 1 {
                    Donor::One
                } else {
                    Donor::Two
                }
            }
        }
    }

    /// Neutral two-coordinate O or S without double or triple bonds.
    fn is_plain_chalcogen(&self, a: usize) -> bool {
        let atom = &self.mol.atoms[a];
        matches!(atom.element, 8 | 16)
            && self.degree(a) == 2
            && atom.charge == 0
            && !self.mol.atom_bonds[a]
                .iter()
                .any(|&b| matches!(self.mol.bonds[b].kind, BondType::Double | BondType::Triple))
    }

    /// RDKit `isAtomCandForArom` with the default-model switches.
    fn is_candidate(&self, a: usize, donor: Donor) -> bool {
        let atom = &self.mol.atoms[a];
        if atom.element > 18 && atom.element != 34 && atom.element != 52 {
            return false;
        }
        if donor == Donor::None {
            return false;
        }
        let total_valence = self.explicit_valence(a) + i32::from(atom.implicit_h);
        if default_valence(i32::from(atom.element)) > 0
            && total_valence > default_valence(i32::from(atom.element) - i32::from(atom.charge))
        {
            return false;
        }
        if atom.radicals > 0 && (atom.element != 6 || atom.charge != 0) {
            return false;
        }
        if self.explicit_valence(a) - self.degree(a) > 1 {
            let multiple = self.mol.atom_bonds[a]
                .iter()
                .filter(|&&b| matches!(self.mol.bonds[b].kind, BondType::Double | BondType::Triple))
                .count();
            if multiple > 1 {
                return false;
            }
        }
        true
    }
}

/// Perceives aromaticity with RDKit's default model on a Kekule molecule whose implicit
/// hydrogens are set, marking aromatic atoms and turning their ring bonds into
/// [`super::BondType::Aromatic`].
pub fn set_aromaticity(mol: &mut Mol) {
    let rings = RingInfo::new(mol);
    set_aromaticity_with_rings(mol, &rings);
}

/// [`set_aromaticity`] with ring information that was already perceived for `mol`.
pub fn set_aromaticity_with_rings(mol: &mut Mol, rings: &RingInfo) {
    let n = mol.atoms.len();
    let mut ring_bond = vec![false; mol.bonds.len()];
    for ring in &rings.bond_rings {
        for &b in ring {
            ring_bond[b] = true;
        }
    }
    let facts = AtomFacts { mol, ring_bond };
    let mut seen = vec![false; n];
    let mut cand = vec![false; n];
    let mut donor = vec![Donor::None; n];
    let mut cand_rings: Vec<usize> = Vec::new();
    for (r, ring) in rings.atom_rings.iter().enumerate() {
        let mut all_cand = true;
        let mut all_dummy = true;
        for &a in ring {
            if mol.atoms[a].element != 0 {
                all_dummy = false;
            }
            if seen[a] {
                all_cand &= cand[a];
                continue;
            }
            seen[a] = true;
            donor[a] = facts.donor(a);
            // Ether-like O and S in macrocycles (9+ atoms, judged on the first ring the
            // atom is seen in) are bridges, not pi donors.
            if donor[a] == Donor::Two && ring.len() >= 9 && facts.is_plain_chalcogen(a) {
                donor[a] = Donor::None;
            }
            cand[a] = facts.is_candidate(a, donor[a]);
            all_cand &= cand[a];
        }
        if all_cand && !all_dummy {
            cand_rings.push(r);
        }
    }
    let bond_rings: Vec<&Vec<usize>> = cand_rings.iter().map(|&r| &rings.bond_rings[r]).collect();
    let atom_rings: Vec<&Vec<usize>> = cand_rings.iter().map(|&r| &rings.atom_rings[r]).collect();
    let neighbors = ring_neighbors(&bond_rings, Some(MAX_FUSED_RING_SIZE), Some(1));
    let mut aromatic_bonds = vec![false; mol.bonds.len()];
    for system in fused_systems(&neighbors) {
        huckel_on_system(
            &system,
            &atom_rings,
            &bond_rings,
            &neighbors,
            &donor,
            &mut aromatic_bonds,
        );
    }
    // Only single and double bonds become aromatic, and atoms are aromatic through them.
    for (b, arom) in aromatic_bonds.into_iter().enumerate() {
        let bond = &mut mol.bonds[b];
        if arom && matches!(bond.kind, BondType::Single | BondType::Double) {
            bond.kind = BondType::Aromatic;
            let (begin, end) = (bond.begin, bond.end);
            mol.atoms[begin].aromatic = true;
            mol.atoms[end].aromatic = true;
        }
    }
}

/// Applies the 4n+2 rule to every connected combination of up to six rings of a fused
/// system, smallest combinations first, until all of the system's bonds are aromatic.
fn huckel_on_system(
    system: &[usize],
    atom_rings: &[&Vec<usize>],
    bond_rings: &[&Vec<usize>],
    neighbors: &[Vec<usize>],
    donor: &[Donor],
    aromatic_bonds: &mut [bool],
) {
    let nrings = system.len();
    let mut system_bonds: Vec<usize> = system
        .iter()
        .flat_map(|&r| bond_rings[r].iter().copied())
        .collect();
    system_bonds.sort_unstable();
    system_bonds.dedup();
    let mut done_bonds = vec![false; aromatic_bonds.len()];
    let mut n_done = 0;
    let mut counts = vec![0u8; donor.len()];
    for size in 1..=nrings.min(MAX_FUSED_RINGS) {
        if n_done >= system_bonds.len() || (size == 3 && nrings > 300) {
            break;
        }
        let mut comb: Vec<usize> = (0..size).collect();
        loop {
            let chosen: Vec<usize> = comb.iter().map(|&i| system[i]).collect();
            if is_connected(&chosen, neighbors) {
                for &r in &chosen {
                    for &a in atom_rings[r].iter() {
                        counts[a] += 1;
                    }
                }
                let members: Vec<usize> = chosen
                    .iter()
                    .flat_map(|&r| atom_rings[r].iter().copied())
                    .filter(|&a| counts[a] == 1 || counts[a] == 2)
                    .collect();
                let mut uniq = members;
                uniq.sort_unstable();
                uniq.dedup();
                if huckel(&uniq, donor) {
                    let mut bond_count: BTreeMap<usize, usize> = BTreeMap::new();
                    for &r in &chosen {
                        for &b in bond_rings[r].iter() {
                            *bond_count.entry(b).or_default() += 1;
                        }
                    }
                    for (b, c) in bond_count {
                        if c == 1 {
                            aromatic_bonds[b] = true;
                            if !done_bonds[b] {
                                done_bonds[b] = true;
                                n_done += 1;
                            }
                        }
                    }
                }
                for &r in &chosen {
                    for &a in atom_rings[r].iter() {
                        counts[a] = 0;
                    }
                }
            }
            if !next_combination(&mut comb, nrings) {
                break;
            }
        }
    }
}

/// Advances `comb` to the next k-subset of `0..n` in lexicographic order.
fn next_combination(comb: &mut [usize], n: usize) -> bool {
    let k = comb.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        if comb[i] < n - k + i {
            comb[i] += 1;
            for j in (i + 1)..k {
                comb[j] = comb[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// True when the chosen rings form one connected piece under `neighbors` (RDKit `checkFused`).
fn is_connected(chosen: &[usize], neighbors: &[Vec<usize>]) -> bool {
    let mut reached = vec![chosen[0]];
    let mut i = 0;
    while i < reached.len() {
        for &nb in &neighbors[reached[i]] {
            if chosen.contains(&nb) && !reached.contains(&nb) {
                reached.push(nb);
            }
        }
        i += 1;
    }
    reached.len() == chosen.len()
}

/// Hückel's rule over the pooled electrons of `atoms` (RDKit `applyHuckel`).
fn huckel(atoms: &[usize], donor: &[Donor]) -> bool {
    let mut lo = 0;
    let mut hi = 0;
    let mut dummies = 0;
    for &a in atoms {
        if donor[a] == Donor::Any {
            dummies += 1;
            if dummies > 1 {
                return false;
            }
        }
        let (l, h) = donor[a].range();
        lo += l;
        hi += h;
    }
    if hi >= 6 {
        (lo..=hi).any(|e| (e - 2) % 4 == 0)
    } else {
        hi == 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chem::{Atom, BondDir};

    /// Atom spec: (element, aromatic, bracket hydrogens, bracket atom, charge).
    type AtomSpec = (u8, bool, u8, bool, i8);

    /// Builds a raw molecule with RDKit's bond order for the SMILES named in each test.
    fn build(atoms: &[AtomSpec], bonds: &[(usize, usize, BondType)]) -> Mol {
        let mut mol = Mol::new();
        for &(element, aromatic, explicit_h, no_implicit, charge) in atoms {
            mol.add_atom(Atom {
                element,
                aromatic,
                explicit_h,
                no_implicit,
                charge,
                ..Atom::default()
            });
        }
        for &(a, b, kind) in bonds {
            mol.add_bond(a, b, kind, BondDir::None);
        }
        mol
    }

    fn ring_of(n: usize, kind: BondType) -> Vec<(usize, usize, BondType)> {
        (0..n).map(|i| (i, (i + 1) % n, kind)).collect()
    }

    fn kinds(mol: &Mol) -> String {
        mol.bonds
            .iter()
            .map(|b| match b.kind {
                BondType::Single => 'S',
                BondType::Double => 'D',
                BondType::Triple => 'T',
                BondType::Aromatic => 'A',
                _ => '?',
            })
            .collect()
    }

    fn aromatic_flags(mol: &Mol) -> Vec<bool> {
        mol.atoms.iter().map(|a| a.aromatic).collect()
    }

    const C: AtomSpec = (6, false, 0, false, 0);
    const AR_C: AtomSpec = (6, true, 0, false, 0);

    /// Kekulé molecule with total hydrogen counts (as RDKit reports them) set as implicit.
    fn kekule(elements: &[(u8, i8)], hs: &[u8], bonds: &[(usize, usize, BondType)]) -> Mol {
        let atoms: Vec<AtomSpec> = elements
            .iter()
            .map(|&(z, q)| (z, false, 0, false, q))
            .collect();
        let mut mol = build(&atoms, bonds);
        for (atom, &h) in mol.atoms.iter_mut().zip(hs) {
            atom.implicit_h = h;
        }
        mol
    }

    #[test]
    fn benzene_kekulizes_like_rdkit() {
        // c1ccccc1 -> RDKit sanitization up to SANITIZE_KEKULIZE: D S D S D S
        let mut mol = build(&[AR_C; 6], &ring_of(6, BondType::Aromatic));
        kekulize(&mut mol).unwrap();
        assert_eq!(kinds(&mol), "DSDSDS");
        assert!(mol.atoms.iter().all(|a| !a.aromatic));
    }

    #[test]
    fn naphthalene_kekulizes_like_rdkit() {
        // c1ccc2ccccc2c1 (ring-closure bond 8-3 comes last) -> D S D S D S D S D S S
        let mut bonds: Vec<_> = (0..9).map(|i| (i, i + 1, BondType::Aromatic)).collect();
        bonds.push((9, 0, BondType::Aromatic));
        bonds.push((8, 3, BondType::Aromatic));
        let mut mol = build(&[AR_C; 10], &bonds);
        kekulize(&mut mol).unwrap();
        assert_eq!(kinds(&mol), "DSDSDSDSDSS");
    }

    #[test]
    fn pyrrole_nh_kekulizes_and_loses_bracket_h() {
        // c1cc[nH]c1 -> S D S S D; the N keeps its H as an implicit one
        let atoms = [AR_C, AR_C, AR_C, (7, true, 1, true, 0), AR_C];
        let mut mol = build(&atoms, &ring_of(5, BondType::Aromatic));
        kekulize(&mut mol).unwrap();
        assert_eq!(kinds(&mol), "SDSSD");
        assert_eq!(mol.atoms[3].explicit_h, 0);
        assert!(!mol.atoms[3].no_implicit);
    }

    #[test]
    fn five_carbon_aromatic_ring_fails() {
        // c1cccc1 -> "Can't kekulize mol.  Unkekulized atoms: 0 1 2 3 4"
        let mut mol = build(&[AR_C; 5], &ring_of(5, BondType::Aromatic));
        let err = kekulize(&mut mol).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Kekulize);
        assert_eq!(
            err.message,
            "Can't kekulize mol.  Unkekulized atoms: 0 1 2 3 4"
        );
    }

    #[test]
    fn aromatic_bonds_between_aliphatic_atoms_are_kekulized() {
        // C1:C:C:C:C:C:1 -> RDKit sanitization up to SANITIZE_KEKULIZE: D S D S D S;
        // C1:C:C:C:C:1 -> "Can't kekulize mol.  Unkekulized atoms: 0 1 2 3 4"
        let mut mol = build(&[C; 6], &ring_of(6, BondType::Aromatic));
        kekulize(&mut mol).unwrap();
        assert_eq!(kinds(&mol), "DSDSDS");
        let mut mol = build(&[C; 5], &ring_of(5, BondType::Aromatic));
        let err = kekulize(&mut mol).unwrap_err();
        assert_eq!(
            err.message,
            "Can't kekulize mol.  Unkekulized atoms: 0 1 2 3 4"
        );
    }

    #[test]
    fn aromatic_atom_outside_ring_fails() {
        // Cc1ccccc1.c -> "non-ring atom 7 marked aromatic"
        let mut atoms = vec![C];
        atoms.extend([AR_C; 7]);
        let mut bonds = vec![(0, 1, BondType::Single)];
        bonds.extend((1..6).map(|i| (i, i + 1, BondType::Aromatic)));
        bonds.push((6, 1, BondType::Aromatic));
        let mut mol = build(&atoms, &bonds);
        let err = kekulize(&mut mol).unwrap_err();
        assert_eq!(err.message, "non-ring atom 7 marked aromatic");
    }

    #[test]
    fn pyridinethione_is_aromatic_with_exocyclic_double_bond() {
        // C1=CC(=S)NC=C1: RDKit marks the ring aromatic and keeps C=S double
        use BondType::{Double as D, Single as S};
        let mut mol = kekule(
            &[(6, 0), (6, 0), (6, 0), (16, 0), (7, 0), (6, 0), (6, 0)],
            &[1, 1, 0, 0, 1, 1, 1],
            &[
                (0, 1, D),
                (1, 2, S),
                (2, 3, D),
                (2, 4, S),
                (4, 5, S),
                (5, 6, D),
                (6, 0, S),
            ],
        );
        set_aromaticity(&mut mol);
        assert_eq!(
            aromatic_flags(&mol),
            [true, true, true, false, true, true, true]
        );
        assert_eq!(kinds(&mol), "AADAAAA");
    }

    #[test]
    fn cyclopentadiene_and_cyclooctatetraene_stay_kekule() {
        use BondType::{Double as D, Single as S};
        // C1=CC=CC1
        let mut cp = kekule(
            &[(6, 0); 5],
            &[1, 1, 1, 1, 2],
            &[(0, 1, D), (1, 2, S), (2, 3, D), (3, 4, S), (4, 0, S)],
        );
        set_aromaticity(&mut cp);
        assert_eq!(kinds(&cp), "DSDSS");
        assert!(cp.atoms.iter().all(|a| !a.aromatic));
        // C1=CC=CC=CC=C1
        let bonds: Vec<_> = (0..8)
            .map(|i| (i, (i + 1) % 8, if i % 2 == 0 { D } else { S }))
            .collect();
        let mut cot = kekule(&[(6, 0); 8], &[1; 8], &bonds);
        set_aromaticity(&mut cot);
        assert_eq!(kinds(&cot), "DSDSDSDS");
    }

    #[test]
    fn tropone_and_tropylium_are_aromatic() {
        use BondType::{Double as D, Single as S};
        // O=C1C=CC=CC=C1: the exocyclic C=O leaves an empty p orbital
        let mut tropone = kekule(
            &[
                (8, 0),
                (6, 0),
                (6, 0),
                (6, 0),
                (6, 0),
                (6, 0),
                (6, 0),
                (6, 0),
            ],
            &[0, 0, 1, 1, 1, 1, 1, 1],
            &[
                (0, 1, D),
                (1, 2, S),
                (2, 3, D),
                (3, 4, S),
                (4, 5, D),
                (5, 6, S),
                (6, 7, D),
                (7, 1, S),
            ],
        );
        set_aromaticity(&mut tropone);
        assert_eq!(
            aromatic_flags(&tropone),
            [false, true, true, true, true, true, true, true]
        );
        assert_eq!(kinds(&tropone), "DAAAAAAA");
        // [CH+]1C=CC=CC=C1
        let mut elements = vec![(6, 1)];
        elements.extend([(6, 0); 6]);
        let bonds: Vec<_> = (0..7)
            .map(|i| (i, (i + 1) % 7, if i % 2 == 1 { D } else { S }))
            .collect();
        let mut tropylium = kekule(&elements, &[1; 7], &bonds);
        set_aromaticity(&mut tropylium);
        assert_eq!(kinds(&tropylium), "AAAAAAA");
    }

    #[test]
    fn pentalene_is_not_aromatic_but_azulene_like_fused_pairs_are_checked() {
        use BondType::{Double as D, Single as S};
        // C1=CC2=CC=CC2=C1 (8 pi electrons): RDKit leaves it Kekule
        let mut pentalene = kekule(
            &[(6, 0); 8],
            &[1, 1, 0, 1, 1, 1, 0, 1],
            &[
                (0, 1, D),
                (1, 2, S),
                (2, 3, D),
                (3, 4, S),
                (4, 5, D),
                (5, 6, S),
                (6, 7, D),
                (7, 0, S),
                (6, 2, S),
            ],
        );
        set_aromaticity(&mut pentalene);
        assert_eq!(kinds(&pentalene), "DSDSDSDSS");
        // C1=CC=C2C=CC=CC2=C1 (naphthalene, Kekule input): all aromatic
        let mut naph = kekule(
            &[(6, 0); 10],
            &[1, 1, 1, 0, 1, 1, 1, 1, 0, 1],
            &[
                (0, 1, D),
                (1, 2, S),
                (2, 3, D),
                (3, 4, S),
                (4, 5, D),
                (5, 6, S),
                (6, 7, D),
                (7, 8, S),
                (8, 9, D),
                (9, 0, S),
                (8, 3, S),
            ],
        );
        set_aromaticity(&mut naph);
        assert!(naph.atoms.iter().all(|a| a.aromatic));
        assert_eq!(kinds(&naph), "AAAAAAAAAAA");
    }

    /// Ring neighbours found through shared bonds equal the all-pairs comparison, with the
    /// size and overlap limits.
    #[test]
    fn ring_neighbors_match_all_pairs() {
        let rings: Vec<Vec<usize>> = vec![
            vec![0, 1, 2, 3, 4, 5],
            vec![5, 6, 7, 8, 9, 10],
            vec![4, 5, 10, 11, 12, 13],
            vec![20, 21, 22],
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            vec![22, 23, 24, 25],
            vec![30, 31, 32, 33, 34, 35, 36, 37, 38],
        ];
        let refs: Vec<&Vec<usize>> = rings.iter().collect();
        for (max_size, max_overlap) in [(None, None), (Some(8), Some(1)), (Some(10), None)] {
            let too_big = |r: &Vec<usize>| max_size.is_some_and(|m| r.len() > m);
            let mut expected = vec![Vec::new(); rings.len()];
            for i in 0..rings.len() {
                for j in 0..rings.len() {
                    if i == j || too_big(&rings[i]) || too_big(&rings[j]) {
                        continue;
                    }
                    let shared = rings[i].iter().filter(|b| rings[j].contains(b)).count();
                    if shared > 0 && max_overlap.is_none_or(|m| shared <= m) {
                        expected[i].push(j);
                    }
                }
            }
            assert_eq!(ring_neighbors(&refs, max_size, max_overlap), expected);
        }
    }
}
