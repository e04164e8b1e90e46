//! InstructMol's graph featurizer (drugchat `smiles2graph`): two integer features per atom
//! and per bond, and both directions of every bond as edges.

use serde::Serialize;

use super::sanitize::mol_from_smiles;
use super::{BondDir, BondType, ChemError, ChiralTag, ErrorKind, Mol};

/// The featurized graph, laid out like the reference's numpy arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphFeatures {
    /// Per atom: `[atomic number - 1 (118 for '*'), chiral tag index]`.
    pub node_feat: Vec<[i64; 2]>,
    /// Source and target atom of each directed edge: bond k gives edges 2k (begin -> end)
    /// and 2k+1 (end -> begin).
    pub edge_index: [Vec<i64>; 2],
    /// Per directed edge: `[bond type index, bond direction index]`.
    pub edge_feat: Vec<[i64; 2]>,
}

/// Featurizes a sanitized molecule (as [`mol_from_smiles`] returns it).
///
/// Fails with [`ErrorKind::Unsupported`] for chiral tags or bond types outside the
/// reference's lookup tables (square-planar / trigonal-bipyramidal / octahedral / allene
/// tags; quadruple, zero-order and dative bonds), where the reference raises an error.
pub fn featurize(mol: &Mol) -> Result<GraphFeatures, ChemError> {
    let unsupported =
        |position: usize, msg: String| ChemError::at(ErrorKind::Unsupported, "", position, msg);
    let mut node_feat = Vec::with_capacity(mol.atoms.len());
    for (i, atom) in mol.atoms.iter().enumerate() {
        let z = if atom.element == 0 {
            118
        } else {
            i64::from(atom.element) - 1
        };
        let chiral = match atom.chiral {
            ChiralTag::Unspecified => 0,
            ChiralTag::Cw => 1,
            ChiralTag::Ccw => 2,
            ChiralTag::Other => 3,
            other => {
                return Err(unsupported(
                    atom.position,
                    format!("atom {i} has chirality {other:?}, which the featurizer cannot encode"),
                ))
            }
        };
        node_feat.push([z, chiral]);
    }
    let n_edges = 2 * mol.bonds.len();
    let mut sources = Vec::with_capacity(n_edges);
    let mut targets = Vec::with_capacity(n_edges);
    let mut edge_feat = Vec::with_capacity(n_edges);
    for (i, bond) in mol.bonds.iter().enumerate() {
        let kind = match bond.kind {
            BondType::Single => 0,
            BondType::Double => 1,
            BondType::Triple => 2,
            BondType::Aromatic => 3,
            other => {
                return Err(unsupported(
                    mol.atoms[bond.begin].position,
                    format!("bond {i} is {other:?}, which the featurizer cannot encode"),
                ))
            }
        };
        let dir = match bond.dir {
            BondDir::None => 0,
            BondDir::EndUpRight => 1,
            BondDir::EndDownRight => 2,
        };
        let (b, e) = (bond.begin as i64, bond.end as i64);
        sources.extend([b, e]);
        targets.extend([e, b]);
        edge_feat.extend([[kind, dir], [kind, dir]]);
    }
    Ok(GraphFeatures {
        node_feat,
        edge_index: [sources, targets],
        edge_feat,
    })
}

/// Reads `smiles` like RDKit's `MolFromSmiles` and featurizes it.
pub fn featurize_smiles(smiles: &str) -> Result<GraphFeatures, ChemError> {
    let mol = mol_from_smiles(smiles)?;
    featurize(&mol).map_err(|mut e| {
        e.input = smiles.to_string();
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_features() {
        // RDKit 2026.09 + drugchat smiles2graph on "C/C=C/[C@@H](N)c1ccccc1".
        let g = featurize_smiles("C/C=C/[C@@H](N)c1ccccc1").unwrap();
        assert_eq!(g.node_feat.len(), 11);
        assert_eq!(&g.node_feat[..5], &[[5, 0], [5, 0], [5, 0], [5, 1], [6, 0]]);
        assert_eq!(g.edge_index[0][..6], [0, 1, 1, 2, 2, 3]);
        assert_eq!(g.edge_index[1][..6], [1, 0, 2, 1, 3, 2]);
        assert_eq!(
            &g.edge_feat[..6],
            &[[0, 1], [0, 1], [1, 0], [1, 0], [0, 1], [0, 1]]
        );
        // The ring closure is the last bond, aromatic.
        assert_eq!(g.edge_feat[g.edge_feat.len() - 1], [3, 0]);
        assert_eq!(g.edge_index[0].len(), 2 * 11);
    }

    #[test]
    fn wildcard_and_fragments() {
        let g = featurize_smiles("*C.[Na+]").unwrap();
        assert_eq!(g.node_feat, vec![[118, 0], [5, 0], [10, 0]]);
        assert_eq!(g.edge_index, [vec![0, 1], vec![1, 0]]);
    }

    #[test]
    fn unsupported_tags_and_bonds() {
        let e = featurize_smiles("F[Pt@SP1](F)(Cl)Cl").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e = featurize_smiles("[Mo]$[Mo]").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert_eq!(e.position, Some(0));
    }
}
