//! Canonical SMILES (isomeric and non-isomeric) for sanitized molecules.
//!
//! Atoms are ranked by iterative refinement of their invariants, stereo included as soon as
//! it is defined ([`rank`]). Ties that remain are broken by an individualization-refinement
//! search: each member of a tied class is tried (classes that keep a stereo element
//! undefined first), the smallest resulting string wins, and branches that an automorphism
//! found along the way maps onto explored ones are skipped. Meso forms, cis/trans ring
//! isomers and graphs whose refinement classes are not symmetry orbits therefore still get
//! one string per molecule and stereoisomer.
//!
//! Square-planar, trigonal-bipyramidal and octahedral centres are written with the number
//! that describes them for the written neighbour order. RDKit's own string for such a centre
//! can depend on the input atom order (repeated ligands: cis-[PtF2Cl2] comes out as `@SP1` or
//! `@SP3`) and on which implicit hydrogen or vacant site is which; ours does not.

mod rank;
mod writer;

#[cfg(test)]
mod tests;

use super::{mol_from_smiles, ChemError, Mol};
use rank::{first_tied_cell, individualize, Graph, Scratch};

/// Work budget of the search, in atoms written over all leaves (complete orderings); once
/// spent, it stops branching and takes the first member of each remaining tied class.
const SEARCH_WORK: usize = 200_000;

/// Leaves the search may always write, however large the molecule.
const MIN_LEAVES: usize = 16;

/// Canonical SMILES of a sanitized molecule (output of [`mol_from_smiles`]).
///
/// With `isomeric`, isotopes, tetrahedral chirality, square-planar / trigonal-bipyramidal /
/// octahedral centres (`@SPn`, `@TBn`, `@OHn`, the number re-expressed for the written
/// neighbour order) and double-bond stereo are written; without, all are dropped. Allene
/// tags (`@AL`) are never written, as RDKit does not write them. Fragments are written in canonical order, separated by `.`.
pub fn canonical_smiles(mol: &Mol, isomeric: bool) -> String {
    let g = Graph::new(mol, isomeric);
    let mut search = Search {
        g: &g,
        scratch: Scratch::default(),
        leaves_left: (SEARCH_WORK / mol.atoms.len().max(1)).max(MIN_LEAVES),
        best: None,
        automorphisms: g
            .twin_swaps(&g.base)
            .into_iter()
            .map(|(u, v)| Automorphism::Swap(u, v))
            .collect(),
        path: Vec::new(),
    };
    search.run(g.base.clone());
    search.best.map(|(s, _)| s).unwrap_or_default()
}

/// Reads `smiles` with [`mol_from_smiles`] (RDKit `MolFromSmiles` semantics) and returns its
/// canonical SMILES.
pub fn canonical_from_smiles(smiles: &str, isomeric: bool) -> Result<String, ChemError> {
    Ok(canonical_smiles(&mol_from_smiles(smiles)?, isomeric))
}

/// Individualization-refinement search for the smallest string over all tie-breaking
/// choices. Two leaves with the same string reveal an automorphism (atom at position `i` of
/// one to atom at position `i` of the other); members of a tied class that a known
/// automorphism fixing the current path maps onto an explored member are skipped.
struct Search<'g, 'm> {
    g: &'g Graph<'m>,
    scratch: Scratch,
    leaves_left: usize,
    /// Smallest string so far and its atom order.
    best: Option<(String, Vec<usize>)>,
    /// Automorphisms found so far.
    automorphisms: Vec<Automorphism>,
    /// Atoms individualized on the way to the current node.
    path: Vec<usize>,
}

/// An automorphism of the molecule graph.
enum Automorphism {
    /// Exchanges two atoms and fixes all others (interchangeable terminal atoms).
    Swap(usize, usize),
    /// A full atom map (`map[i]` is the image of atom `i`).
    Map(Vec<usize>),
}

impl Automorphism {
    /// Whether the automorphism leaves every atom of `path` in place (`on_path` marks them).
    fn fixes_path(&self, path: &[usize], on_path: &[bool]) -> bool {
        match self {
            Automorphism::Swap(u, v) => !on_path[*u] && !on_path[*v],
            Automorphism::Map(map) => path.iter().all(|&p| map[p] == p),
        }
    }

    /// Merges each atom's class with its image's in the union-find `parent`.
    fn join_orbits(&self, parent: &mut [usize]) {
        match self {
            Automorphism::Swap(u, v) => union(parent, *u, *v),
            Automorphism::Map(map) => {
                for (i, &j) in map.iter().enumerate() {
                    union(parent, i, j);
                }
            }
        }
    }
}

/// Root of `x`'s class in the union-find `parent` (with path halving).
fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Joins the classes of `a` and `b` in the union-find `parent`.
fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra] = rb;
    }
}

/// One node of the search on the way down: the members of the tied cell it branches on,
/// which of them were tried, and how to get its parent's ranks back.
struct Node {
    members: Vec<usize>,
    /// Index in `members` of the next member to consider.
    next: usize,
    explored: Vec<usize>,
    /// Orbits under the automorphisms that fix the path, with the number of automorphisms
    /// they were built from (rebuilt when one is found).
    orbits: Option<(usize, Vec<usize>)>,
    /// The parent's rank of every atom whose rank differs here.
    undo: Vec<(usize, u32)>,
}

impl Node {
    /// A node branching on `members`, reached by a change that `undo` reverts.
    fn new(members: Vec<usize>, undo: Vec<(usize, u32)>) -> Self {
        Node {
            members,
            next: 0,
            explored: Vec::new(),
            orbits: None,
            undo,
        }
    }
}

impl Search<'_, '_> {
    /// Depth-first search from `ranks`, with an explicit stack: the tree is one level deeper
    /// per tied cell, which is tens of thousands in a large symmetric polymer. Only the ranks
    /// of the current node are held; each node keeps what it changed, to go back up.
    fn run(&mut self, mut ranks: Vec<u32>) {
        self.g.refine(&mut ranks, &mut self.scratch);
        let mut stack: Vec<Node> = Vec::new();
        match self.branch_cell(&ranks) {
            Some(members) => stack.push(Node::new(members, Vec::new())),
            None => self.leaf(&ranks),
        }
        let mut branch: Vec<u32> = Vec::new();
        while let Some(node) = stack.last_mut() {
            let Some(m) = self.next_member(node) else {
                for &(a, r) in &node.undo {
                    ranks[a] = r;
                }
                stack.pop();
                // The member that led to the finished node.
                self.path.pop();
                continue;
            };
            branch.clone_from(&ranks);
            individualize(&mut branch, m);
            self.g.refine(&mut branch, &mut self.scratch);
            self.path.push(m);
            match self.branch_cell(&branch) {
                Some(members) => {
                    let undo = (0..ranks.len())
                        .filter(|&a| branch[a] != ranks[a])
                        .map(|a| (a, ranks[a]))
                        .collect();
                    std::mem::swap(&mut ranks, &mut branch);
                    stack.push(Node::new(members, undo));
                }
                None => {
                    self.leaf(&branch);
                    self.path.pop();
                }
            }
        }
    }

    /// The members of the cell to branch on under refined `ranks` (a class whose ties keep a
    /// stereo element undefined, else the first tied class); `None` for a complete order.
    fn branch_cell(&self, ranks: &[u32]) -> Option<Vec<usize>> {
        let cell = self
            .g
            .undetermined_cell(ranks)
            .or_else(|| first_tied_cell(ranks))?;
        Some((0..ranks.len()).filter(|&a| ranks[a] == cell).collect())
    }

    /// The next member of `node`'s cell to branch on: after the first, none once the budget
    /// is spent, and none that a known automorphism fixing the path maps onto an explored one.
    fn next_member(&self, node: &mut Node) -> Option<usize> {
        while let Some(&m) = node.members.get(node.next) {
            node.next += 1;
            if !node.explored.is_empty() {
                if self.leaves_left == 0 {
                    continue;
                }
                if node.orbits.as_ref().map(|o| o.0) != Some(self.automorphisms.len()) {
                    node.orbits = Some((self.automorphisms.len(), self.orbits()));
                }
                if let Some((_, parent)) = &mut node.orbits {
                    let root = find(parent, m);
                    if node.explored.iter().any(|&e| find(parent, e) == root) {
                        continue;
                    }
                }
            }
            node.explored.push(m);
            return Some(m);
        }
        None
    }

    fn leaf(&mut self, ranks: &[u32]) {
        self.leaves_left = self.leaves_left.saturating_sub(1);
        let (s, order) = writer::write(self.g, ranks);
        match &self.best {
            Some((b, best_order)) if *b == s => {
                let mut map = vec![0; order.len()];
                for (&from, &to) in order.iter().zip(best_order) {
                    map[from] = to;
                }
                if map.iter().enumerate().any(|(i, &j)| i != j) {
                    self.automorphisms.push(Automorphism::Map(map));
                }
            }
            Some((b, _)) if *b < s => {}
            _ => self.best = Some((s, order)),
        }
    }

    /// The orbits of the known automorphisms that fix the current path, as a union-find.
    fn orbits(&self) -> Vec<usize> {
        let n = self.g.mol.atoms.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let mut on_path = vec![false; n];
        for &p in &self.path {
            on_path[p] = true;
        }
        for map in &self.automorphisms {
            if map.fixes_path(&self.path, &on_path) {
                map.join_orbits(&mut parent);
            }
        }
        parent
    }
}
