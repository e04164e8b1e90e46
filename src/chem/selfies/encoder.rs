//! SMILES -> SELFIES, as `selfies.encoder(smiles)` (strict, default constraints).

use std::fmt::Write;

use super::graph::{DirBond, Graph};
use super::reader;
use super::{index_symbols, MAX_NESTING};
use crate::chem::{ChemError, ErrorKind};

/// Translates `smiles` into SELFIES exactly as `selfies.encoder` (version 2.1.1, default
/// semantic constraints, `strict=True`) does, failing exactly where it raises.
pub fn encode(smiles: &str) -> Result<String, ChemError> {
    let mut graph = reader::read(smiles)?;
    if !graph.kekulize(smiles)? {
        return Err(ChemError::whole(
            ErrorKind::Kekulize,
            smiles,
            "selfies kekulization failed",
        ));
    }
    check_constraints(&graph, smiles)?;
    for atom in 0..graph.len() {
        if graph.atoms[atom].chirality.is_some()
            && graph.has_ring_bond(atom)
            && should_invert_chirality(&graph, atom)
        {
            let a = &mut graph.atoms[atom];
            a.chirality = a.chirality.map(|c| c.inverted());
        }
    }
    let mut out = String::with_capacity(smiles.len() * 4);
    let mut symbols = Vec::new();
    for (k, &root) in graph.roots.iter().enumerate() {
        if k > 0 {
            out.push('.');
        }
        symbols.clear();
        fragment(&graph, None, root, &mut symbols, 0, smiles)?;
        for sym in &symbols {
            render(&graph, sym, &mut out);
        }
    }
    Ok(out)
}

fn check_constraints(graph: &Graph, smiles: &str) -> Result<(), ChemError> {
    for (i, atom) in graph.atoms.iter().enumerate() {
        let count2 = graph.count2(i);
        let cap = atom.capacity();
        if i128::from(count2) > 2 * i128::from(cap) {
            let mut text = String::new();
            atom.write(true, &mut text);
            return Err(ChemError::whole(
                ErrorKind::Valence,
                smiles,
                format!(
                    "input violates the semantic constraints: {text} (atom {i}) with {} bond(s), a max. of {cap} bond(s)",
                    count2 / 2
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the order in which the decoder will meet `atom`'s bonds is an odd permutation of
/// the order they are written in, so that the chirality tag must be flipped.
fn should_invert_chirality(graph: &Graph, atom: usize) -> bool {
    let out = graph.out_bonds(atom);
    let mut closing = Vec::new();
    let mut opening = Vec::new();
    let mut other = Vec::new();
    for (i, &id) in out.iter().enumerate() {
        let b = &graph.bonds[id];
        if !b.ring {
            other.push(i);
        } else if b.src < b.dst {
            opening.push(i);
        } else {
            closing.push(i);
        }
    }
    opening.sort_by_key(|&i| graph.bonds[out[i]].dst);
    let perm: Vec<usize> = closing.into_iter().chain(opening).chain(other).collect();
    let mut inversions = 0usize;
    for i in 0..perm.len() {
        inversions += perm[i + 1..].iter().filter(|&&p| perm[i] > p).count();
    }
    inversions % 2 == 1
}

fn bond_text(bond: &DirBond, show_stereo: bool) -> &'static str {
    match bond.order {
        4 => "=",
        6 => "#",
        _ if !show_stereo => "",
        _ => match bond.stereo {
            Some(b'/') => "/",
            Some(b'\\') => "\\",
            _ => "",
        },
    }
}

/// One SELFIES symbol, rendered once the whole string is laid out.
enum Sym {
    /// An atom, entered over a bond (none for a root).
    Atom { bond_in: Option<usize>, atom: usize },
    /// A ring closure over directed bond `closing` (the later atom's side) and its
    /// reverse `opening`, followed by `digits` index symbols.
    Ring {
        opening: usize,
        closing: usize,
        digits: usize,
    },
    /// A branch over `bond`, followed by `digits` index symbols.
    Branch { bond: usize, digits: usize },
    /// An index symbol.
    Index(&'static str),
}

fn render(graph: &Graph, sym: &Sym, out: &mut String) {
    match *sym {
        Sym::Atom { bond_in, atom } => {
            out.push('[');
            if let Some(b) = bond_in {
                out.push_str(bond_text(&graph.bonds[b], true));
            }
            graph.atoms[atom].write(false, out);
            out.push(']');
        }
        Sym::Ring {
            opening,
            closing,
            digits,
        } => {
            let (lbond, rbond) = (&graph.bonds[opening], &graph.bonds[closing]);
            out.push('[');
            if lbond.order != 2 || (lbond.stereo.is_none() && rbond.stereo.is_none()) {
                out.push_str(bond_text(lbond, false));
            } else {
                for b in [lbond, rbond] {
                    out.push(b.stereo.map_or('-', char::from));
                }
            }
            let _ = write!(out, "Ring{digits}]");
        }
        Sym::Branch { bond, digits } => {
            let _ = write!(
                out,
                "[{}Branch{digits}]",
                bond_text(&graph.bonds[bond], false)
            );
        }
        Sym::Index(s) => out.push_str(s),
    }
}

/// Appends the SELFIES symbols of the chain starting at `root` (entered over `bond_in`).
fn fragment(
    graph: &Graph,
    bond_in: Option<usize>,
    root: usize,
    derived: &mut Vec<Sym>,
    depth: usize,
    smiles: &str,
) -> Result<(), ChemError> {
    if depth > MAX_NESTING {
        return Err(ChemError::whole(
            ErrorKind::Unsupported,
            smiles,
            "branches nested too deeply",
        ));
    }
    let (mut bond_in, mut curr) = (bond_in, root);
    loop {
        derived.push(Sym::Atom {
            bond_in,
            atom: curr,
        });
        let out = graph.out_bonds(curr);
        let mut next = None;
        for (i, &id) in out.iter().enumerate() {
            let bond = &graph.bonds[id];
            if bond.ring {
                if bond.src < bond.dst {
                    continue;
                }
                let Some(opening) = graph.dirbond(bond.dst, bond.src) else {
                    continue;
                };
                let index = index_symbols(bond.src - bond.dst - 1);
                derived.push(Sym::Ring {
                    opening,
                    closing: id,
                    digits: index.len(),
                });
                derived.extend(index.into_iter().map(Sym::Index));
            } else if i == out.len() - 1 {
                next = Some((id, bond.dst));
            } else {
                let mut branch = Vec::new();
                fragment(graph, Some(id), bond.dst, &mut branch, depth + 1, smiles)?;
                let index = index_symbols(branch.len() - 1);
                derived.push(Sym::Branch {
                    bond: id,
                    digits: index.len(),
                });
                derived.extend(index.into_iter().map(Sym::Index));
                derived.append(&mut branch);
            }
        }
        match next {
            Some((id, dst)) => {
                bond_in = Some(id);
                curr = dst;
            }
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        encode(s).unwrap()
    }

    // Expected strings printed by selfies 2.1.1: `selfies.encoder(s)`.
    #[test]
    fn simple_chains_and_branches() {
        assert_eq!(enc("C=CF"), "[C][=C][F]");
        assert_eq!(enc("C(=O)"), "[C][=O]");
        assert_eq!(enc("=CC"), "[C][C]");
        assert_eq!(enc("C..C"), "[C].[C]");
        assert_eq!(enc("C."), "[C]");
        assert_eq!(
            enc("[C@@H](F)(Cl)Br"),
            "[C@@H1][Branch1][C][F][Branch1][C][Cl][Br]"
        );
    }

    #[test]
    fn rings_and_aromatics() {
        assert_eq!(enc("c1ccccc1"), "[C][=C][C][=C][C][=C][Ring1][=Branch1]");
        assert_eq!(enc("C%10CC%10"), "[C][C][C][Ring1][Ring1]");
        assert_eq!(enc("[se]1cccc1"), "[Se][C][=C][C][=C][Ring1][Branch1]");
        assert_eq!(
            enc("C1CCC/C=C/1"),
            "[C][C][C][C][/C][=C][-/Ring1][=Branch1]"
        );
    }

    #[test]
    fn stereo_and_ring_order() {
        let cases = [
            (
                "F[C@]12CC[C@@H]1CC2",
                "[F][C@][C][C][C@@H1][Ring1][Ring2][C][C][Ring1][=Branch1]",
            ),
            (
                "N[C@@H]1CC[C@H]1C",
                "[N][C@@H1][C][C][C@H1][Ring1][Ring2][C]",
            ),
            // Branch written before the ring number: chirality flipped for the decoder.
            (
                "[C@@H](F)1CCC1",
                "[C@H1][Branch1][C][F][C][C][C][Ring1][Branch1]",
            ),
            ("F/C=C/1CCCC1", "[F][/C][=C][C][C][C][C][/-Ring1][Branch1]"),
            (
                "c1ccc2cc3ccccc3cc2c1",
                "[C][=C][C][=C][C][=C][C][=C][C][=C][C][Ring1][=Branch1][=C][C][Ring1][#Branch2][=C][Ring1][=C]",
            ),
            (
                "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
                "[C][N][C][=N][C][=C][Ring1][Branch1][C][=Branch1][C][=O][N][Branch1][C][C][C][=Branch1][C][=O][N][Ring1][=Branch2][C]",
            ),
        ];
        for (smiles, want) in cases {
            assert_eq!(enc(smiles), want, "{smiles}");
        }
        // selfies.decoder(selfies.encoder(s))
        assert_eq!(
            super::super::decode(&enc("[C@@H](F)1CCC1")).unwrap(),
            "[C@H1]1(F)CCC1"
        );
        assert_eq!(
            super::super::decode(&enc("c1ccccc1.c1ccccc1")).unwrap(),
            "C1=CC=CC=C1.C2=CC=CC=C2"
        );
    }

    #[test]
    fn bracket_atoms() {
        assert_eq!(enc("[C]"), "[CH0]");
        assert_eq!(enc("[013C]"), "[13C]");
        assert_eq!(enc("[NH4+]"), "[NH4+1]");
        assert_eq!(enc("C=[N+]=[N-]"), "[C][=N+1][=N-1]");
        assert_eq!(enc("[Na+].[Cl-]"), "[Na+1].[Cl-1]");
    }

    #[test]
    fn errors_where_selfies_raises() {
        for s in [
            "",
            ".C",
            "C$C",
            "*C",
            "C1C1",
            "C11",
            "C:F",
            "c1cc[nH]cc1",
            "c1cccc1",
            "CC(C)(C)(C)C",
            "C(",
            "C)",
            "C1CC",
            "C=",
            "[C",
        ] {
            assert!(encode(s).is_err(), "{s}");
        }
    }
}
