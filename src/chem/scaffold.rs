//! Bemis-Murcko scaffolds as RDKit's `MurckoScaffold.MurckoScaffoldSmiles(smiles,
//! includeChirality=False)` computes them (the key of chemprop/deepchem scaffold splits).
//!
//! The scaffold keeps every ring atom, every linker atom (non-ring atoms on a path between two
//! rings) and every other atom joined to one of those by a double bond (`O=C1CCCCC1` keeps its
//! oxygen). Kept atoms that lose a neighbour are fixed up as RDKit's `MurckoDecompose` does:
//! an aromatic heteroatom gets one hydrogen (`Cn1cccc1` -> `c1cc[nH]c1`), a bracket or chiral
//! atom becomes an ordinary one whose hydrogens follow from its valence
//! (`C1CC[S+](C)C1` -> `C1CC[SH+]C1`). Molecules without rings have the empty scaffold.

use super::canon::canonical_smiles;
use super::rings::RingInfo;
use super::sanitize::sanitize;
use super::{mol_from_smiles, BondType, ChemError, ChiralTag, Mol};

/// Bemis-Murcko scaffold of a sanitized molecule (output of [`mol_from_smiles`]), as a
/// molecule. Empty when the molecule has no ring.
pub fn murcko_scaffold(mol: &Mol) -> Result<Mol, ChemError> {
    let n = mol.atoms.len();
    let rings = RingInfo::new(mol);
    let mut in_ring = vec![false; n];
    for ring in &rings.atom_rings {
        for &a in ring {
            in_ring[a] = true;
        }
    }
    // Ring atoms plus linkers: prune non-ring leaves until none is left.
    let mut keep = vec![true; n];
    let mut degree: Vec<usize> = (0..n).map(|a| mol.degree(a)).collect();
    let mut stack: Vec<usize> = (0..n).filter(|&a| !in_ring[a] && degree[a] <= 1).collect();
    while let Some(a) = stack.pop() {
        if !keep[a] {
            continue;
        }
        keep[a] = false;
        for b in mol.neighbors(a) {
            if keep[b] {
                degree[b] -= 1;
                if !in_ring[b] && degree[b] <= 1 {
                    stack.push(b);
                }
            }
        }
    }
    let mut out = mol.clone();
    // Sanitizing again must not move hydrogens: aromatic heteroatoms keep theirs as bracket
    // atoms do (`[nH]`), which is how RDKit's SMILES round trip keeps them.
    for atom in &mut out.atoms {
        if atom.aromatic && atom.element != 6 && atom.total_h() > 0 {
            atom.explicit_h = atom.total_h();
            atom.implicit_h = 0;
            atom.no_implicit = true;
        }
    }
    let mut survive = keep.clone();
    for a in (0..n).filter(|&a| !keep[a]) {
        for &bi in &mol.atom_bonds[a] {
            let bond = &mol.bonds[bi];
            let nbr = bond.other(a);
            if !keep[nbr] {
                continue;
            }
            if bond.kind == BondType::Double {
                survive[a] = true;
                break;
            }
            let atom = &mut out.atoms[nbr];
            if atom.aromatic && atom.element != 6 {
                // Written as a bracket atom (`[nH]`), so kekulization treats it as RDKit does.
                atom.explicit_h = 1;
                atom.no_implicit = true;
            } else if atom.no_implicit || atom.chiral != ChiralTag::Unspecified {
                atom.no_implicit = false;
                atom.explicit_h = 0;
                atom.chiral = ChiralTag::Unspecified;
            }
        }
    }
    let mut scaffold = Mol::new();
    let mut index = vec![usize::MAX; n];
    for a in (0..n).filter(|&a| survive[a]) {
        index[a] = scaffold.add_atom(out.atoms[a].clone());
    }
    for bond in &mol.bonds {
        if survive[bond.begin] && survive[bond.end] {
            scaffold.add_bond(index[bond.begin], index[bond.end], bond.kind, bond.dir);
        }
    }
    sanitize(&mut scaffold)?;
    Ok(scaffold)
}

/// Scaffold SMILES of `smiles` without stereo, as RDKit's
/// `MurckoScaffoldSmiles(smiles, includeChirality=False)`: the empty string for acyclic
/// molecules; an error when the SMILES cannot be read.
pub fn scaffold_smiles(smiles: &str) -> Result<String, ChemError> {
    let mol = mol_from_smiles(smiles)?;
    let scaffold = murcko_scaffold(&mol).map_err(|mut e| {
        e.input = smiles.to_string();
        e.position = None;
        e
    })?;
    Ok(canonical_smiles(&scaffold, false))
}

#[cfg(test)]
mod tests {
    use super::scaffold_smiles;
    use crate::chem::canon::canonical_from_smiles;

    /// RDKit's scaffolds of a few molecules (its spelling; compared as molecules).
    #[test]
    fn side_chains_go_and_linkers_stay() {
        let cases = [
            ("CC(=O)c1ccccc1", "c1ccccc1"),
            ("O=C1CCCCC1", "O=C1CCCCC1"),
            ("Cn1cccc1", "c1cc[nH]c1"),
            ("CCCC", ""),
            ("c1ccccc1CCc1ccccc1", "c1ccc(CCc2ccccc2)cc1"),
            ("C1CC[S+](C)C1", "C1CC[SH+]C1"),
            ("N#CC1CC1", "C1CC1"),
        ];
        for (smiles, want) in cases {
            let want = if want.is_empty() {
                String::new()
            } else {
                canonical_from_smiles(want, false).unwrap()
            };
            assert_eq!(scaffold_smiles(smiles).unwrap(), want, "{smiles}");
        }
    }
}
