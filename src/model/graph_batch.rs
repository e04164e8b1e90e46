//! Ragged batches of molecular graphs: the nodes of all graphs concatenated, edge indices
//! offset into the concatenation, and each graph's node range kept to split the output.

use std::ops::Range;

use candle_core::{Device, Tensor};

use super::{ModelError, Result};
use crate::chem::GraphFeatures;

/// One graph in InstructMol's feature layout (borrowed).
#[derive(Debug, Clone, Copy)]
pub struct GraphInput<'a> {
    /// One row per atom: `[atomic_number - 1, chiral_tag]`.
    pub node_feat: &'a [[i64; 2]],
    /// Directed edges: sources in `[0]`, destinations in `[1]`.
    pub edge_index: [&'a [i64]; 2],
    /// One row per directed edge: `[bond_type, bond_dir]`.
    pub edge_feat: &'a [[i64; 2]],
}

impl<'a> From<&'a GraphFeatures> for GraphInput<'a> {
    fn from(g: &'a GraphFeatures) -> Self {
        Self {
            node_feat: &g.node_feat,
            edge_index: [&g.edge_index[0], &g.edge_index[1]],
            edge_feat: &g.edge_feat,
        }
    }
}

/// Number of feature columns of nodes and edges.
pub(crate) const COLUMNS: usize = 2;

/// Many graphs as one disconnected graph, ready for the encoder.
#[derive(Debug, Clone)]
pub struct GraphBatch {
    /// Per atom column, the feature values of all nodes (u32, `[num_nodes]`).
    pub(crate) atom_cols: Vec<Tensor>,
    /// Per bond column, the feature values of all edges (u32, `[num_edges]`).
    pub(crate) bond_cols: Vec<Tensor>,
    /// Edge sources (u32, `[num_edges]`), global node numbers.
    pub(crate) src: Tensor,
    /// Edge destinations (u32, `[num_edges]`), global node numbers.
    pub(crate) dst: Tensor,
    /// Largest value per atom column (0 when there is no node).
    pub(crate) atom_max: [u32; COLUMNS],
    /// Largest value per bond column (0 when there is no edge).
    pub(crate) bond_max: [u32; COLUMNS],
    num_nodes: usize,
    num_edges: usize,
    ranges: Vec<Range<usize>>,
}

fn feature(v: i64, graph: usize, what: &str, row: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| ModelError::Graph {
        graph,
        reason: format!("{what} row {row} holds {v}, not a valid feature value"),
    })
}

impl GraphBatch {
    /// Concatenates graphs into one batch on `device`. Fails on a graph whose edge lists
    /// disagree in length, whose edge points outside its nodes, or whose feature value is negative.
    pub fn new<'a, I>(graphs: I, device: &Device) -> Result<Self>
    where
        I: IntoIterator<Item = GraphInput<'a>>,
    {
        let mut atoms: [Vec<u32>; COLUMNS] = [Vec::new(), Vec::new()];
        let mut bonds: [Vec<u32>; COLUMNS] = [Vec::new(), Vec::new()];
        let mut src = Vec::new();
        let mut dst = Vec::new();
        let mut ranges = Vec::new();
        let mut atom_max = [0u32; COLUMNS];
        let mut bond_max = [0u32; COLUMNS];
        for (gi, g) in graphs.into_iter().enumerate() {
            let offset = atoms[0].len();
            let n = g.node_feat.len();
            let e = g.edge_feat.len();
            if g.edge_index[0].len() != e || g.edge_index[1].len() != e {
                return Err(ModelError::Graph {
                    graph: gi,
                    reason: format!(
                        "edge_index has {} sources and {} destinations for {e} edge feature rows",
                        g.edge_index[0].len(),
                        g.edge_index[1].len()
                    ),
                });
            }
            for (row, f) in g.node_feat.iter().enumerate() {
                for c in 0..COLUMNS {
                    let v = feature(f[c], gi, "node_feat", row)?;
                    atom_max[c] = atom_max[c].max(v);
                    atoms[c].push(v);
                }
            }
            for (row, f) in g.edge_feat.iter().enumerate() {
                for c in 0..COLUMNS {
                    let v = feature(f[c], gi, "edge_feat", row)?;
                    bond_max[c] = bond_max[c].max(v);
                    bonds[c].push(v);
                }
            }
            for (list, out) in g.edge_index.iter().zip([&mut src, &mut dst]) {
                for (k, &v) in list.iter().enumerate() {
                    let node = usize::try_from(v).ok().filter(|&v| v < n).ok_or_else(|| {
                        ModelError::Graph {
                            graph: gi,
                            reason: format!(
                                "edge {k} refers to node {v}, but the graph has {n} nodes"
                            ),
                        }
                    })?;
                    let global = u32::try_from(offset + node).map_err(|_| ModelError::Graph {
                        graph: gi,
                        reason: "batch has more than 2^32 nodes".into(),
                    })?;
                    out.push(global);
                }
            }
            ranges.push(offset..offset + n);
        }
        let num_nodes = atoms[0].len();
        let num_edges = src.len();
        let col = |v: Vec<u32>| Tensor::from_vec(v, (num_nodes,), device);
        let ecol = |v: Vec<u32>| Tensor::from_vec(v, (num_edges,), device);
        let [a0, a1] = atoms;
        let [b0, b1] = bonds;
        Ok(Self {
            atom_cols: vec![col(a0)?, col(a1)?],
            bond_cols: vec![ecol(b0)?, ecol(b1)?],
            src: ecol(src)?,
            dst: ecol(dst)?,
            atom_max,
            bond_max,
            num_nodes,
            num_edges,
            ranges,
        })
    }

    /// Batches featurized molecules.
    pub fn from_features<'a, I>(graphs: I, device: &Device) -> Result<Self>
    where
        I: IntoIterator<Item = &'a GraphFeatures>,
    {
        Self::new(graphs.into_iter().map(GraphInput::from), device)
    }

    /// Total number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// Total number of directed edges.
    pub fn num_edges(&self) -> usize {
        self.num_edges
    }

    /// The rows of each graph's nodes in the encoder output, in input order.
    pub fn node_ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Splits a node-level tensor (`[num_nodes, ...]`) into one tensor per graph (views, no copy).
    pub fn split(&self, nodes: &Tensor) -> Result<Vec<Tensor>> {
        self.ranges
            .iter()
            .map(|r| Ok(nodes.narrow(0, r.start, r.len())?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_edges_and_keeps_ranges() {
        let n1 = [[5, 0], [7, 0]];
        let n2 = [[5, 1], [5, 0], [6, 0]];
        let e1 = [[1, 0], [1, 0]];
        let e2 = [[0, 0], [0, 0], [3, 2], [3, 2]];
        let g1 = GraphInput {
            node_feat: &n1,
            edge_index: [&[0, 1], &[1, 0]],
            edge_feat: &e1,
        };
        let g2 = GraphInput {
            node_feat: &n2,
            edge_index: [&[0, 1, 1, 2], &[1, 0, 2, 1]],
            edge_feat: &e2,
        };
        let b = GraphBatch::new([g1, g2], &Device::Cpu).unwrap();
        assert_eq!(b.num_nodes(), 5);
        assert_eq!(b.num_edges(), 6);
        assert_eq!(b.node_ranges(), &[0..2, 2..5]);
        assert_eq!(b.src.to_vec1::<u32>().unwrap(), vec![0, 1, 2, 3, 3, 4]);
        assert_eq!(b.dst.to_vec1::<u32>().unwrap(), vec![1, 0, 3, 2, 4, 3]);
        assert_eq!(b.atom_max, [7, 1]);
        assert_eq!(b.bond_max, [3, 2]);
    }

    #[test]
    fn rejects_bad_edges_and_negative_features() {
        let n = [[5, 0]];
        let bad_edge = GraphInput {
            node_feat: &n,
            edge_index: [&[0], &[1]],
            edge_feat: &[[0, 0]],
        };
        let err = GraphBatch::new([bad_edge], &Device::Cpu).unwrap_err();
        assert!(matches!(err, ModelError::Graph { graph: 0, .. }), "{err}");
        let neg = [[-1, 0]];
        let bad_feat = GraphInput {
            node_feat: &neg,
            edge_index: [&[], &[]],
            edge_feat: &[],
        };
        assert!(GraphBatch::new([bad_feat], &Device::Cpu).is_err());
        let mismatch = GraphInput {
            node_feat: &n,
            edge_index: [&[0], &[]],
            edge_feat: &[],
        };
        assert!(GraphBatch::new([mismatch], &Device::Cpu).is_err());
    }
}
