//! `selfies`' SMILES writer: walks each fragment from its root along the stored out-bonds,
//! opening a branch for every non-ring out-bond but the last, and numbering ring bonds in
//! order of first appearance across the whole molecule (no reuse; `%` from 10 on).

use std::collections::HashMap;
use std::fmt::Write;

use super::graph::{DirBond, Graph};

fn bond_text(bond: &DirBond) -> &'static str {
    match (bond.order, bond.stereo) {
        (4, _) => "=",
        (6, _) => "#",
        (_, Some(b'/')) => "/",
        (_, Some(b'\\')) => "\\",
        _ => "",
    }
}

/// The SMILES `selfies` writes for `graph` (which must be kekulized).
pub(super) fn write(graph: &Graph) -> String {
    let mut out = String::new();
    let mut ring_numbers: HashMap<(usize, usize), usize> = HashMap::new();
    // (atom, next out-bond, closes a branch when done)
    let mut stack: Vec<(usize, usize, bool)> = Vec::new();
    for (k, &root) in graph.roots.iter().enumerate() {
        if k > 0 {
            out.push('.');
        }
        stack.push((root, 0, false));
        while let Some(top) = stack.last_mut() {
            let (curr, next, closes) = *top;
            if next == 0 {
                graph.atoms[curr].write(true, &mut out);
            }
            let bonds = graph.out_bonds(curr);
            let Some(&id) = bonds.get(next) else {
                stack.pop();
                if closes {
                    out.push(')');
                }
                continue;
            };
            top.1 += 1;
            let bond = &graph.bonds[id];
            if bond.ring {
                out.push_str(bond_text(bond));
                let ends = (bond.src.min(bond.dst), bond.src.max(bond.dst));
                let fresh = ring_numbers.len() + 1;
                let number = *ring_numbers.entry(ends).or_insert(fresh);
                if number >= 10 {
                    out.push('%');
                }
                let _ = write!(out, "{number}");
            } else {
                let branch = next + 1 < bonds.len();
                if branch {
                    out.push('(');
                }
                out.push_str(bond_text(bond));
                stack.push((bond.dst, 0, branch));
            }
        }
    }
    out
}
