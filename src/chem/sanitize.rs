//! RDKit's `Chem.MolFromSmiles(s)` with default settings: parse, remove explicit `[H]`
//! atoms, sanitize (clean-up, valence checks and implicit hydrogens, kekulization,
//! radicals, aromaticity) and clean up stereochemistry.

use super::aromaticity;
use super::elements;
use super::rings::RingInfo;
use super::smiles;
use super::stereo;
use super::{BondDir, BondType, ChemError, ChiralTag, ErrorKind, Mol};

/// Reads `smiles` the way RDKit's `Chem.MolFromSmiles(smiles)` does with its defaults.
///
/// Errors: [`ErrorKind::Syntax`] for unreadable SMILES, [`ErrorKind::Valence`] for atoms
/// with more bonds than RDKit permits, [`ErrorKind::Kekulize`] for aromatic systems
/// without a Kekule structure.
pub fn mol_from_smiles(smiles: &str) -> Result<Mol, ChemError> {
    let mut mol = smiles::parse(smiles)?;
    remove_hs(&mut mol);
    sanitize(&mut mol).map_err(|mut e| {
        if e.input.is_empty() {
            e.input = smiles.to_string();
        }
        e
    })?;
    stereo::assign_stereochemistry(&mut mol);
    Ok(mol)
}

/// RDKit's `sanitizeMol` with default operations on a parsed molecule.
pub fn sanitize(mol: &mut Mol) -> Result<(), ChemError> {
    clean_up(mol);
    check_effective_atomic_numbers(mol)?;
    clean_up_organometallics(mol);
    assign_implicit_hs(mol)?;
    let rings = RingInfo::new(mol);
    let bracket: Vec<bool> = mol.atoms.iter().map(|a| a.no_implicit).collect();
    aromaticity::kekulize_with_rings(mol, &rings)?;
    // Kekulization turns the bracket H of neutral `[nH]`-like atoms into an implicit one.
    for (a, was_bracket) in bracket.into_iter().enumerate() {
        if was_bracket && !mol.atoms[a].no_implicit {
            let ev = explicit_valence(mol, a);
            mol.atoms[a].implicit_h = implicit_hs(mol, a, ev);
        }
    }
    assign_radicals(mol);
    aromaticity::set_aromaticity_with_rings(mol, &rings);
    Ok(())
}

/// Sum of bond orders at `a` plus its bracket hydrogens (aromatic bonds count 1.5).
fn bond_order_sum(mol: &Mol, a: usize) -> f64 {
    mol.atom_bonds[a]
        .iter()
        .map(|&b| mol.bonds[b].valence_contrib(a))
        .sum::<f64>()
        + f64::from(mol.atoms[a].explicit_h)
}

/// Whether RDKit treats `z` as lying left of carbon (its charge shifts valence the other way).
fn is_early_atom(z: u8) -> bool {
    matches!(
        z,
        3..=5
            | 11..=13
            | 19..=22
            | 30..=32
            | 37..=41
            | 48..=51
            | 55..=61
            | 72
            | 73
            | 80..=83
            | 87..=93
            | 104..=118
    )
}

/// Formal charge as it shifts the allowed valences of element `z`.
fn valence_charge_shift(z: u8, charge: i8) -> i32 {
    let q = i32::from(charge);
    if is_early_atom(z) || (z == 6 && q > 0) {
        -q
    } else {
        q
    }
}

/// RDKit's explicit valence of atom `a` (aromatic bond sums snapped to an allowed valence).
fn explicit_valence(mol: &Mol, a: usize) -> i32 {
    let atom = &mol.atoms[a];
    let mut accum = bond_order_sum(mol, a);
    let vals = elements::valences(atom.element);
    let aromatic = atom.aromatic
        || mol.atom_bonds[a]
            .iter()
            .any(|&b| mol.bonds[b].kind == BondType::Aromatic);
    if let Some(&dv) = vals.first().filter(|&&v| v >= 0) {
        let chg = valence_charge_shift(atom.element, atom.charge);
        let dv = i32::from(dv) + chg;
        if aromatic && accum > f64::from(dv) {
            let mut pval = dv;
            for &v in vals.iter().take_while(|&&v| v >= 0) {
                let val = i32::from(v) + chg;
                if f64::from(val) > accum {
                    break;
                }
                pval = val;
            }
            if accum - f64::from(pval) <= 1.5 {
                accum = f64::from(pval);
            }
        }
    }
    (accum + 0.1).round() as i32
}

/// The valence error RDKit reports for atom `a` with explicit valence `ev`.
fn valence_error(mol: &Mol, a: usize, ev: i32) -> ChemError {
    let atom = &mol.atoms[a];
    ChemError::at(
        ErrorKind::Valence,
        "",
        atom.position,
        format!(
            "Explicit valence for atom # {a} {}, {ev}, is greater than permitted",
            elements::symbol(atom.element)
        ),
    )
}

/// Sets `implicit_h` on every atom and rejects atoms over their permitted valence
/// (RDKit `updatePropertyCache(strict=true)`).
fn assign_implicit_hs(mol: &mut Mol) -> Result<(), ChemError> {
    for a in 0..mol.atoms.len() {
        let ev = explicit_valence(mol, a);
        let atom = &mol.atoms[a];
        match elements::max_valence(atom.element, atom.charge) {
            Some(max) if ev > i32::from(max) => return Err(valence_error(mol, a, ev)),
            _ => {}
        }
        mol.atoms[a].implicit_h = implicit_hs(mol, a, ev);
    }
    Ok(())
}

/// Implicit hydrogens of atom `a` with explicit valence `ev` (RDKit `calcImplicitValence`).
fn implicit_hs(mol: &Mol, a: usize, ev: i32) -> u8 {
    let atom = &mol.atoms[a];
    let implicit = if atom.no_implicit || atom.element == 0 {
        0
    } else {
        let vals = elements::valences(atom.element);
        let chg = valence_charge_shift(atom.element, atom.charge);
        match vals.first() {
            Some(&dv) if dv >= 0 => {
                let dv = i32::from(dv) + chg;
                if atom.aromatic {
                    (dv - ev).max(0)
                } else {
                    vals.iter()
                        .take_while(|&&v| v >= 0)
                        .map(|&v| i32::from(v) + chg)
                        .find(|&v| v >= ev)
                        .map_or(0, |v| v - ev)
                }
            }
            _ => 0,
        }
    };
    u8::try_from(implicit).unwrap_or(0)
}

/// Radical electrons for atoms that cannot take implicit hydrogens (RDKit `assignRadicals`).
fn assign_radicals(mol: &mut Mol) {
    for a in 0..mol.atoms.len() {
        let atom = &mol.atoms[a];
        if !atom.no_implicit || atom.element == 0 {
            mol.atoms[a].radicals = 0;
            continue;
        }
        // Truncated, as RDKit does here (an aromatic bond outside a ring leaves half a bond
        // unused: `[CH2]:[CH2]` has a radical on each carbon).
        let valence = (bond_order_sum(mol, a) + 0.1) as i32;
        let outer = i32::from(elements::outer_electrons(atom.element));
        let chg = i32::from(atom.charge);
        let vals = elements::valences(atom.element);
        let radicals = if vals.first().is_none_or(|&v| v < 0) {
            // Any valence (metals): only an unbonded atom (hydrogens aside) with an odd
            // electron count gets a radical.
            let free = outer - chg;
            if mol.atom_bonds[a].is_empty() && free > 0 {
                free % 2
            } else {
                0
            }
        } else {
            let base = if atom.element <= 2 { 2 } else { 8 };
            let mut r = base - outer - valence + chg;
            if r < 0 {
                // Hypervalent: distance to the next allowed valence.
                r = vals
                    .iter()
                    .take_while(|&&v| v >= 0)
                    .map(|&v| i32::from(v) - valence + chg)
                    .find(|&d| d >= 0)
                    .unwrap_or(0);
            }
            let r2 = outer - valence - chg;
            if r2 >= 0 {
                r.min(r2)
            } else {
                r
            }
        };
        mol.atoms[a].radicals = u8::try_from(radicals.max(0)).unwrap_or(0);
    }
}

/// RDKit's `cleanUp`: charge-separates N-oxides and nitro groups, azides/diazo groups
/// and halogen oxoacids written with hypervalent neutral atoms.
fn clean_up(mol: &mut Mol) {
    for a in 0..mol.atoms.len() {
        let atom = &mol.atoms[a];
        if atom.charge != 0 {
            continue;
        }
        match atom.element {
            7 if bond_order_sum(mol, a) == 5.0 => {
                let double_o = mol.atom_bonds[a].iter().copied().find(|&b| {
                    let bond = &mol.bonds[b];
                    bond.kind == BondType::Double && mol.atoms[bond.other(a)].element == 8
                });
                let triple_n = mol.atom_bonds[a].iter().copied().find(|&b| {
                    let bond = &mol.bonds[b];
                    let other = &mol.atoms[bond.other(a)];
                    bond.kind == BondType::Triple && other.element == 7 && other.charge == 0
                });
                if let Some(b) = double_o {
                    let o = mol.bonds[b].other(a);
                    mol.bonds[b].kind = BondType::Single;
                    mol.atoms[o].charge = -1;
                    mol.atoms[a].charge = 1;
                } else if let Some(b) = triple_n {
                    let n = mol.bonds[b].other(a);
                    mol.bonds[b].kind = BondType::Double;
                    mol.atoms[n].charge = -1;
                    mol.atoms[a].charge = 1;
                }
            }
            17 | 35 | 53 => {
                let all_o = mol.neighbors(a).all(|n| mol.atoms[n].element == 8);
                let sum = bond_order_sum(mol, a);
                if !all_o || !(sum == 3.0 || sum == 5.0 || sum == 7.0) {
                    continue;
                }
                let doubles: Vec<usize> = mol.atom_bonds[a]
                    .iter()
                    .copied()
                    .filter(|&b| mol.bonds[b].kind == BondType::Double)
                    .collect();
                for &b in &doubles {
                    let o = mol.bonds[b].other(a);
                    mol.bonds[b].kind = BondType::Single;
                    mol.atoms[o].charge = -1;
                }
                mol.atoms[a].charge = doubles.len() as i8;
            }
            _ => {}
        }
    }
}

/// RDKit's `QueryOps::isMetal`: everything but the non-metals (and the dummy atom).
fn is_metal(z: u8) -> bool {
    !matches!(
        z,
        0 | 1 | 2 | 5..=10 | 14..=18 | 33..=36 | 52..=54 | 85 | 86
    )
}

/// A non-metal whose explicit valence exceeds what its charge-adjusted element allows.
fn is_hypervalent_non_metal(mol: &Mol, a: usize) -> bool {
    let atom = &mol.atoms[a];
    if is_metal(atom.element) {
        return false;
    }
    let effective = i32::from(atom.element) - i32::from(atom.charge);
    let Some(max) = u8::try_from(effective)
        .ok()
        .filter(|&z| z > 0 && z <= elements::MAX_Z)
        .and_then(|z| elements::valences(z).last().copied())
    else {
        return false;
    };
    let max = i32::from(max);
    let ev = explicit_valence(mol, a);
    let total_degree =
        mol.degree(a) as i32 + i32::from(atom.explicit_h) + i32::from(implicit_hs(mol, a, ev));
    max > 0 && (ev > max || (ev == max && atom.aromatic && total_degree == 4))
}

/// RDKit fails on a non-metal whose charge-shifted atomic number lies beyond the table.
fn check_effective_atomic_numbers(mol: &Mol) -> Result<(), ChemError> {
    for (a, atom) in mol.atoms.iter().enumerate() {
        let effective = i32::from(atom.element) - i32::from(atom.charge);
        if !is_metal(atom.element) && effective > i32::from(elements::MAX_Z) {
            return Err(ChemError::at(
                ErrorKind::Valence,
                "",
                atom.position,
                format!(
                    "atom # {a} {} with charge {} has no valence rules",
                    elements::symbol(atom.element),
                    atom.charge
                ),
            ));
        }
    }
    Ok(())
}

/// RDKit's `cleanUpOrganometallics`: a single bond from a hypervalent non-metal to a
/// metal becomes a [`BondType::Dative`] bond, donor first.
///
/// RDKit visits the atoms in canonical-rank order and gives each donor the bonded metal
/// with the fewest dative bonds so far, the highest-ranked one on ties. [`atom_ranks`]
/// stands in for RDKit's canonical ranks; it orders symmetric twins by index like RDKit.
fn clean_up_organometallics(mol: &mut Mol) {
    if !mol.atoms.iter().any(|a| is_metal(a.element)) {
        return;
    }
    let donors: Vec<usize> = (0..mol.atoms.len())
        .filter(|&a| {
            !matches!(mol.atoms[a].element, 1 | 2 | 9 | 10)
                && is_hypervalent_non_metal(mol, a)
                && mol.atom_bonds[a]
                    .iter()
                    .any(|&b| single_to_metal(mol, a, b))
        })
        .collect();
    if donors.is_empty() {
        return;
    }
    let ranks = atom_ranks(mol);
    let mut order = donors;
    order.sort_by_key(|&a| ranks[a]);
    for a in order {
        let datives = |x: usize| {
            mol.atom_bonds[x]
                .iter()
                .filter(|&&b| mol.bonds[b].kind == BondType::Dative)
                .count()
        };
        let chosen = mol.atom_bonds[a]
            .iter()
            .copied()
            .filter(|&b| single_to_metal(mol, a, b))
            .min_by_key(|&b| {
                let metal = mol.bonds[b].other(a);
                (datives(metal), std::cmp::Reverse(ranks[metal]))
            });
        if let Some(b) = chosen {
            let metal = mol.bonds[b].other(a);
            let bond = &mut mol.bonds[b];
            bond.kind = BondType::Dative;
            bond.begin = a;
            bond.end = metal;
        }
    }
}

/// Whether bond `b` of atom `a` is a single bond to a metal.
fn single_to_metal(mol: &Mol, a: usize, b: usize) -> bool {
    let bond = &mol.bonds[b];
    bond.kind == BondType::Single && is_metal(mol.atoms[bond.other(a)].element)
}

/// A canonical-style atom ranking (0 = lowest): atoms ordered by degree, element, isotope,
/// hydrogen count and charge, refined by their neighbours' ranks until stable, remaining
/// ties broken by atom index.
fn atom_ranks(mol: &Mol) -> Vec<usize> {
    let n = mol.atoms.len();
    let invariant = |a: usize| {
        let atom = &mol.atoms[a];
        let h =
            u32::from(atom.explicit_h) + u32::from(implicit_hs(mol, a, explicit_valence(mol, a)));
        (
            mol.degree(a),
            atom.element,
            atom.isotope.unwrap_or(0),
            h,
            atom.charge,
        )
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&a| invariant(a));
    let mut class = vec![0usize; n];
    for w in 1..n {
        let (p, a) = (order[w - 1], order[w]);
        class[a] = class[p] + usize::from(invariant(p) != invariant(a));
    }
    // Each round splits classes by the sorted classes of the neighbours; at most n rounds.
    for _ in 0..n {
        let key = |a: usize| {
            let mut nbrs: Vec<usize> = mol.neighbors(a).map(|x| class[x]).collect();
            nbrs.sort_unstable();
            (class[a], nbrs)
        };
        let keys: Vec<_> = (0..n).map(key).collect();
        order.sort_by(|&x, &y| keys[x].cmp(&keys[y]));
        let mut next = vec![0usize; n];
        for w in 1..n {
            let (p, a) = (order[w - 1], order[w]);
            next[a] = next[p] + usize::from(keys[p] != keys[a]);
        }
        let stable = next == class;
        class = next;
        if stable {
            break;
        }
    }
    order.sort_by_key(|&a| (class[a], a));
    let mut ranks = vec![0; n];
    for (r, &a) in order.iter().enumerate() {
        ranks[a] = r;
    }
    ranks
}

/// Whether RDKit's default `RemoveHs` drops hydrogen atom `h`.
fn removable_h(mol: &Mol, h: usize) -> bool {
    let atom = &mol.atoms[h];
    if atom.element != 1 || atom.isotope.is_some() || atom.charge < 0 || mol.degree(h) != 1 {
        return false;
    }
    let b = mol.atom_bonds[h][0];
    let heavy = mol.bonds[b].other(h);
    let nbr = &mol.atoms[heavy];
    if nbr.element <= 1 {
        return false;
    }
    if matches!(
        nbr.chiral,
        ChiralTag::SquarePlanar(_) | ChiralTag::TrigonalBipyramidal(_) | ChiralTag::Octahedral(_)
    ) {
        return false;
    }
    if mol.bonds[b].dir != BondDir::None && has_double_bond(mol, heavy) {
        // The H defines double-bond stereo: kept unless another single bond can carry it.
        return other_single_bond(mol, heavy, b).is_some();
    }
    true
}

fn has_double_bond(mol: &Mol, a: usize) -> bool {
    mol.atom_bonds[a]
        .iter()
        .any(|&b| mol.bonds[b].kind == BondType::Double)
}

/// Another single (non-double) bond of `a` besides `skip`.
fn other_single_bond(mol: &Mol, a: usize, skip: usize) -> Option<usize> {
    mol.atom_bonds[a]
        .iter()
        .copied()
        .find(|&b| b != skip && mol.bonds[b].kind != BondType::Double)
}

fn flip(d: BondDir) -> BondDir {
    match d {
        BondDir::EndUpRight => BondDir::EndDownRight,
        BondDir::EndDownRight => BondDir::EndUpRight,
        BondDir::None => BondDir::None,
    }
}

/// RDKit's default `RemoveHs`: removes plain `[H]` atoms, folding each into its
/// neighbour's hydrogen count and keeping the neighbour's chirality and bond directions.
fn remove_hs(mol: &mut Mol) {
    if !mol.atoms.iter().any(|a| a.element == 1) {
        return;
    }
    let remove: Vec<bool> = (0..mol.atoms.len()).map(|h| removable_h(mol, h)).collect();
    if !remove.iter().any(|&r| r) {
        return;
    }
    let hs: Vec<usize> = (0..mol.atoms.len()).filter(|&h| remove[h]).collect();
    for h in hs {
        let b = mol.atom_bonds[h][0];
        let heavy = mol.bonds[b].other(h);
        // Chirality: the removed H counts as the heavy atom's last neighbour.
        if matches!(mol.atoms[heavy].chiral, ChiralTag::Cw | ChiralTag::Ccw) {
            let pos = mol.atom_bonds[heavy].iter().position(|&x| x == b);
            let after = pos.map_or(0, |p| mol.atom_bonds[heavy].len() - 1 - p);
            if after % 2 == 1 {
                let atom = &mut mol.atoms[heavy];
                atom.chiral = match atom.chiral {
                    ChiralTag::Cw => ChiralTag::Ccw,
                    _ => ChiralTag::Cw,
                };
            }
        }
        // Directions: move the H's bond direction onto another single bond.
        let dir = mol.bonds[b].dir;
        if dir != BondDir::None {
            if let Some(ob) = other_single_bond(mol, heavy, b) {
                if mol.bonds[ob].dir == BondDir::None {
                    // Direction of the H seen from the heavy atom, then the opposite side.
                    let h_out = if mol.bonds[b].begin == heavy {
                        dir
                    } else {
                        flip(dir)
                    };
                    let other_out = flip(h_out);
                    mol.bonds[ob].dir = if mol.bonds[ob].begin == heavy {
                        other_out
                    } else {
                        flip(other_out)
                    };
                }
            }
        }
        // RDKit keeps explicit H counts in 8 bits: 255 + 1 wraps to 0.
        let atom = &mut mol.atoms[heavy];
        atom.explicit_h = atom.explicit_h.wrapping_add(1);
    }
    // Rebuild without the removed atoms and their bonds, keeping relative order.
    let mut new_index = vec![usize::MAX; mol.atoms.len()];
    let mut out = Mol::new();
    for (i, atom) in mol.atoms.iter().enumerate() {
        if !remove[i] {
            new_index[i] = out.add_atom(atom.clone());
        }
    }
    for bond in &mol.bonds {
        if remove[bond.begin] || remove[bond.end] {
            continue;
        }
        let idx = out.add_bond(
            new_index[bond.begin],
            new_index[bond.end],
            bond.kind,
            bond.dir,
        );
        out.bonds[idx].ring_closure = bond.ring_closure;
    }
    *mol = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total_hs(s: &str) -> Vec<u8> {
        mol_from_smiles(s)
            .unwrap()
            .atoms
            .iter()
            .map(|a| a.total_h())
            .collect()
    }

    #[test]
    fn implicit_hydrogens_like_rdkit() {
        // RDKit GetTotalNumHs() after MolFromSmiles.
        assert_eq!(total_hs("CC(=O)O"), [3, 0, 0, 1]);
        assert_eq!(total_hs("c1ccsc1"), [1, 1, 1, 0, 1]);
        assert_eq!(total_hs("c1cc[nH]c1"), [1, 1, 1, 1, 1]);
        assert_eq!(total_hs("CS(=O)(=O)C"), [3, 0, 0, 0, 3]);
        assert_eq!(total_hs("C[N+](C)(C)C"), [3, 0, 3, 3, 3]);
        assert_eq!(total_hs("O=c1cc[nH]cc1"), [0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(total_hs("[CH3]"), [3]);
        assert_eq!(total_hs("B(C)C"), [1, 3, 3]);
    }

    #[test]
    fn radicals_like_rdkit() {
        let rad = |s: &str| -> Vec<u8> {
            mol_from_smiles(s)
                .unwrap()
                .atoms
                .iter()
                .map(|a| a.radicals)
                .collect()
        };
        assert_eq!(rad("[CH3]"), [1]);
        assert_eq!(rad("[B]"), [3]);
        assert_eq!(rad("[IH2]"), [1]);
        assert_eq!(rad("[Cu]"), [1]);
        assert_eq!(rad("C[Cu]"), [0, 0]);
        assert_eq!(rad("[Na]"), [1]);
        assert_eq!(rad("[NaH]"), [0]);
        assert_eq!(rad("[CuH]"), [1]);
        assert_eq!(rad("[CH2]:[CH2]"), [1, 1]);
        assert_eq!(rad("[CH]:[CH]"), [2, 2]);
        assert_eq!(rad("C:[CH]:C"), [0, 0, 0]);
    }

    #[test]
    fn clean_up_charge_separates() {
        let m = mol_from_smiles("CN(=O)=O").unwrap();
        let charges: Vec<i8> = m.atoms.iter().map(|a| a.charge).collect();
        assert_eq!(charges, [0, 1, -1, 0]);
        assert_eq!(m.bonds[1].kind, BondType::Single);
        let m = mol_from_smiles("C=N#N").unwrap();
        let charges: Vec<i8> = m.atoms.iter().map(|a| a.charge).collect();
        assert_eq!(charges, [0, 1, -1]);
        let m = mol_from_smiles("CN(C)(C)=O").unwrap();
        let charges: Vec<i8> = m.atoms.iter().map(|a| a.charge).collect();
        assert_eq!(charges, [0, 1, 0, 0, -1]);
        let m = mol_from_smiles("OCl(=O)(=O)=O").unwrap();
        let charges: Vec<i8> = m.atoms.iter().map(|a| a.charge).collect();
        assert_eq!(charges, [0, 3, -1, -1, -1]);
    }

    #[test]
    fn valence_errors() {
        let e = mol_from_smiles("CO(C)C").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Valence);
        assert_eq!(
            e.message,
            "Explicit valence for atom # 1 O, 3, is greater than permitted"
        );
        assert_eq!(e.position, Some(1));
        assert_eq!(e.input, "CO(C)C");
        assert!(mol_from_smiles("[S-](C)(C)(C)(C)C").is_ok());
        assert!(mol_from_smiles("[S-](C)(C)(C)(C)(C)C").is_err());
        assert!(mol_from_smiles("[NH4+]").is_ok());
        assert!(mol_from_smiles("[NH5+]").is_err());
        assert!(mol_from_smiles("[Fe](C)(C)(C)(C)(C)(C)(C)C").is_ok());
        // RDKit rejects non-metals whose charge-shifted atomic number exceeds 118.
        assert!(mol_from_smiles("[C-112]").is_ok());
        assert_eq!(
            mol_from_smiles("[C-113]").unwrap_err().kind,
            ErrorKind::Valence
        );
        assert!(mol_from_smiles("[*-128]").is_err());
        assert!(mol_from_smiles("[Fe-93]").is_ok());
    }

    #[test]
    fn ligand_bonds_to_metals_become_dative() {
        // RDKit turns N->Pt into dative bonds in cisplatin (written with single bonds).
        let m = mol_from_smiles("Cl[Pt](Cl)([NH3])[NH3]").unwrap();
        let b: Vec<_> = m.bonds.iter().map(|b| (b.begin, b.end, b.kind)).collect();
        assert_eq!(b[0], (0, 1, BondType::Single));
        assert_eq!(b[2], (3, 1, BondType::Dative));
        assert_eq!(b[3], (4, 1, BondType::Dative));
        // A normal-valent ligand keeps its single bond.
        let m = mol_from_smiles("C[Fe]").unwrap();
        assert_eq!(m.bonds[0].kind, BondType::Single);
    }

    fn datives(s: &str) -> Vec<(usize, usize)> {
        let m = mol_from_smiles(s).unwrap();
        let mut d: Vec<_> = m
            .bonds
            .iter()
            .filter(|b| b.kind == BondType::Dative)
            .map(|b| (b.begin, b.end))
            .collect();
        d.sort_unstable();
        d
    }

    #[test]
    fn donor_bonded_to_several_metals_picks_like_rdkit() {
        // Expected pairs (donor, acceptor) from RDKit's MolFromSmiles: fewest datives first,
        // then the higher canonical rank.
        assert_eq!(datives("Cl[Fe][S-](C)[Co]Cl"), [(2, 4)]);
        assert_eq!(datives("Cl[Co][S-](C)[Fe]Cl"), [(2, 1)]);
        assert_eq!(datives("[Fe][S-](C)[Fe]Cl"), [(1, 3)]);
        assert_eq!(datives("Cl[Fe][S-](C)[Fe]"), [(2, 1)]);
        assert_eq!(datives("C[S-]1[Fe][S-](C)[Fe]1"), [(1, 5), (3, 2)]);
        assert_eq!(
            datives("C[S-]1[Fe]2[S-](C)[Fe]1[S-]2C"),
            [(1, 5), (3, 2), (6, 5)]
        );
        assert_eq!(datives("CC[S-]1[Fe][S-](C)[Fe]1"), [(2, 3), (4, 6)]);
        assert_eq!(datives("C[S-]1[Fe](Cl)[S-](C)[Fe]1"), [(1, 2), (4, 6)]);
        assert_eq!(datives("C[N]1(C)[Pt][N](C)(C)[Pd]1"), [(1, 3), (4, 7)]);
        // The HIV iron complex: each bridging thiolate goes to a different iron.
        let hiv = "C1C[N+]23CCC[N+]4(C1)CC[S-]1[Fe+2]24([SH+]CC3)[S-]2CC[N+]34CCC[N+]5(CCC3)\
                   CC[SH+][Fe+2]1254";
        assert_eq!(datives(hiv), [(10, 29), (15, 11)]);
    }

    #[test]
    fn dative_valence_counts_on_the_acceptor_only() {
        // RDKit: the donor keeps its hydrogens, the acceptor's valence grows by one.
        assert_eq!(total_hs("N->[Fe]"), [3, 0]);
        assert_eq!(total_hs("O->C"), [2, 3]);
        assert_eq!(total_hs("CN(C)(C)->[Fe]"), [3, 0, 3, 3, 0]);
        assert_eq!(
            mol_from_smiles("N->B(C)(C)C").unwrap_err().kind,
            ErrorKind::Valence
        );
        // Dative bonds close no rings and cancel tetrahedral stereo, as in RDKit.
        let m = mol_from_smiles("[C@](F)(Cl)(Br)->[Fe]").unwrap();
        assert_eq!(m.atoms[0].chiral, ChiralTag::Unspecified);
        let ring = mol_from_smiles("C1CN->[Fe]C1").unwrap();
        assert!(!RingInfo::new(&ring).is_atom_in_ring(0));
    }

    #[test]
    fn kekulize_failure_is_reported() {
        let e = mol_from_smiles("c1cccc1").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Kekulize);
        assert_eq!(e.input, "c1cccc1");
    }

    #[test]
    fn explicit_hydrogens_removed_like_rdkit() {
        let count = |s: &str| mol_from_smiles(s).unwrap().atoms.len();
        assert_eq!(count("[H]C([H])([H])[H]"), 1);
        assert_eq!(count("[2H]C"), 2);
        assert_eq!(count("[H][H]"), 2);
        assert_eq!(count("[H-]C"), 2);
        assert_eq!(count("C[H+]"), 1);
        assert_eq!(count("[H]*"), 2);
        assert_eq!(count("[H]/C=C/C"), 4);
        // RDKit: [CH255][H+] -> the carbon's 8-bit H count wraps to 0.
        assert_eq!(
            mol_from_smiles("[CH255][H+]").unwrap().atoms[0].total_h(),
            0
        );
        // RDKit: [H][C@](F)(Cl)Br -> CW, F[C@]([H])(Cl)Br -> CCW.
        let m = mol_from_smiles("[H][C@](F)(Cl)Br").unwrap();
        assert_eq!((m.atoms.len(), m.atoms[0].chiral), (4, ChiralTag::Cw));
        let m = mol_from_smiles("F[C@]([H])(Cl)Br").unwrap();
        assert_eq!(m.atoms[1].chiral, ChiralTag::Ccw);
        // The H's direction moves to the other substituent: RDKit bond dirs [3, 0, 4].
        let m = mol_from_smiles("[H]\\C(F)=C/F").unwrap();
        let dirs: Vec<BondDir> = m.bonds.iter().map(|b| b.dir).collect();
        assert_eq!(
            dirs,
            [BondDir::EndDownRight, BondDir::None, BondDir::EndUpRight]
        );
    }
}
