//! `selfies`' perfect-matching search, step for step: a greedy maximal matching driven by
//! a min-heap of free degrees, then augmenting paths found by a breadth-first search from
//! each unmatched node. The order in which unmatched nodes are tried is the order in which
//! CPython's `set.pop()` hands out small integers, reproduced by [`IntSet`]; a different
//! order can give a different (equally valid) Kekule structure.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A perfect matching of `graph` (adjacency lists), as `mate[i]` for every node, or `None`
/// when the search fails.
pub(super) fn perfect_matching(graph: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut matching = greedy_matching(graph);
    let mut unmatched = IntSet::from_sorted((0..graph.len()).filter(|&i| matching[i].is_none()));
    while let Some(root) = unmatched.pop() {
        let path = augmenting_path(graph, root, &matching)?;
        for pair in path.chunks_exact(2) {
            matching[pair[0]] = Some(pair[1]);
            matching[pair[1]] = Some(pair[0]);
        }
        if let (Some(&first), Some(&last)) = (path.first(), path.last()) {
            unmatched.discard(first);
            unmatched.discard(last);
        }
    }
    matching.into_iter().collect()
}

fn greedy_matching(graph: &[Vec<usize>]) -> Vec<Option<usize>> {
    let mut matching = vec![None; graph.len()];
    let mut free: Vec<usize> = graph.iter().map(Vec::len).collect();
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> = free
        .iter()
        .enumerate()
        .map(|(i, &d)| Reverse((d, i)))
        .collect();
    while let Some(Reverse((_, node))) = heap.pop() {
        if matching[node].is_some() || free[node] == 0 {
            continue;
        }
        let Some(mate) = graph[node].iter().copied().find(|&i| matching[i].is_none()) else {
            continue;
        };
        matching[node] = Some(mate);
        matching[mate] = Some(node);
        for &adj in graph[node].iter().chain(&graph[mate]) {
            free[adj] = free[adj].saturating_sub(1);
            if matching[adj].is_none() && free[adj] > 0 {
                heap.push(Reverse((free[adj], adj)));
            }
        }
    }
    matching
}

/// The augmenting path from `root` found by `selfies`' modified BFS, as the node sequence
/// `[other_end, x1, y1, ..., root]`, whose consecutive pairs become matched.
fn augmenting_path(
    graph: &[Vec<usize>],
    root: usize,
    matching: &[Option<usize>],
) -> Option<Vec<usize>> {
    let mut parents: Vec<Option<(usize, usize)>> = vec![None; graph.len()];
    parents[root] = Some((usize::MAX, usize::MAX));
    let mut queue = VecDeque::from([root]);
    let mut other_end = None;
    'search: while let Some(node) = queue.pop_front() {
        for &adj in &graph[node] {
            match matching[adj] {
                None => {
                    if adj != root {
                        parents[adj] = Some((node, adj));
                        other_end = Some(adj);
                        break 'search;
                    }
                }
                Some(mate) => {
                    if parents[mate].is_none() {
                        parents[mate] = Some((node, adj));
                        queue.push_back(mate);
                    }
                }
            }
        }
    }
    let mut node = other_end?;
    let mut path = Vec::new();
    while node != root {
        let (parent, via) = parents[node]?;
        path.push(via);
        path.push(parent);
        node = parent;
    }
    Some(path)
}

/// Slot of [`IntSet`]'s hash table.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Empty,
    Dummy,
    Key(usize),
}

/// CPython's `set` of small non-negative integers (whose hash is the value), reduced to
/// what `perfect_matching` needs: building by insertion, `pop()` and `discard()`.
struct IntSet {
    table: Vec<Slot>,
    fill: usize,
    used: usize,
    finger: usize,
}

impl IntSet {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;

    fn from_sorted(keys: impl Iterator<Item = usize>) -> Self {
        let mut set = IntSet {
            table: vec![Slot::Empty; 8],
            fill: 0,
            used: 0,
            finger: 0,
        };
        for key in keys {
            Self::insert_clean(&mut set.table, key);
            set.fill += 1;
            set.used += 1;
            let mask = set.table.len() - 1;
            if set.fill * 5 >= mask * 3 {
                set.resize(set.used * if set.used > 50_000 { 2 } else { 4 });
            }
        }
        set
    }

    /// Places a key that is not yet present into a table without dummies.
    fn insert_clean(table: &mut [Slot], key: usize) {
        let mask = table.len() - 1;
        let mut perturb = key;
        let mut i = key & mask;
        loop {
            let probes = if i + Self::LINEAR_PROBES <= mask {
                Self::LINEAR_PROBES
            } else {
                0
            };
            for slot in &mut table[i..=i + probes] {
                if *slot == Slot::Empty {
                    *slot = Slot::Key(key);
                    return;
                }
            }
            perturb >>= Self::PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }

    fn resize(&mut self, min_used: usize) {
        let mut size = 8;
        while size <= min_used {
            size <<= 1;
        }
        let old = std::mem::replace(&mut self.table, vec![Slot::Empty; size]);
        for slot in old {
            if let Slot::Key(k) = slot {
                Self::insert_clean(&mut self.table, k);
            }
        }
        self.fill = self.used;
    }

    fn pop(&mut self) -> Option<usize> {
        if self.used == 0 {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut i = self.finger & mask;
        loop {
            if let Slot::Key(k) = self.table[i] {
                self.table[i] = Slot::Dummy;
                self.used -= 1;
                self.finger = i + 1;
                return Some(k);
            }
            i = (i + 1) & mask;
        }
    }

    fn discard(&mut self, key: usize) {
        if let Some(slot) = self.table.iter_mut().find(|s| **s == Slot::Key(key)) {
            *slot = Slot::Dummy;
            self.used -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pops(keys: &[usize]) -> Vec<usize> {
        let mut set = IntSet::from_sorted(keys.iter().copied());
        std::iter::from_fn(|| set.pop()).collect()
    }

    #[test]
    fn pop_order_matches_cpython() {
        // Orders printed by CPython 3.11: s = set(k for k in keys); [s.pop() for _ in keys]
        assert_eq!(pops(&[37, 90]), vec![90, 37]);
        assert_eq!(pops(&[1, 5, 9, 17]), vec![1, 5, 9, 17]);
        assert_eq!(pops(&[3, 8, 64, 100]), vec![8, 64, 3, 100]);
    }

    #[test]
    fn matches_a_hexagon() {
        let ring: Vec<Vec<usize>> = (0..6).map(|i| vec![(i + 5) % 6, (i + 1) % 6]).collect();
        let m = perfect_matching(&ring).unwrap();
        assert!((0..6).all(|i| m[m[i]] == i && m[i] != i));
    }

    #[test]
    fn odd_cycle_has_no_perfect_matching() {
        let ring: Vec<Vec<usize>> = (0..5).map(|i| vec![(i + 4) % 5, (i + 1) % 5]).collect();
        assert!(perfect_matching(&ring).is_none());
    }

    #[test]
    fn follows_cpython_pop_order_on_augmenting_paths() {
        // Graphs where trying unmatched nodes in sorted order would give another matching;
        // expected: selfies.utils.matching_utils.find_perfect_matching(graph).
        let cases: [(&[&[usize]], [usize; 10]); 3] = [
            (
                &[
                    &[8, 2, 1],
                    &[5, 0],
                    &[9, 3, 0],
                    &[2, 5],
                    &[7],
                    &[9, 3, 1],
                    &[8],
                    &[8, 4],
                    &[6, 7, 0],
                    &[2, 5],
                ],
                [1, 0, 9, 5, 7, 3, 8, 4, 6, 2],
            ),
            (
                &[
                    &[3, 9, 1, 2, 8, 7],
                    &[0, 2, 6],
                    &[4, 0, 1],
                    &[0, 9],
                    &[6, 2],
                    &[7],
                    &[8, 4, 9, 1],
                    &[5, 0],
                    &[6, 0],
                    &[0, 6, 3],
                ],
                [1, 0, 4, 9, 2, 7, 8, 5, 6, 3],
            ),
            (
                &[
                    &[3, 7],
                    &[8],
                    &[8, 4, 7],
                    &[0, 9],
                    &[7, 2, 9, 5, 6],
                    &[9, 4, 6],
                    &[5, 4],
                    &[4, 2, 0],
                    &[2, 1, 9],
                    &[5, 3, 4, 8],
                ],
                [7, 8, 4, 9, 2, 6, 5, 0, 1, 3],
            ),
        ];
        for (adj, want) in cases {
            let graph: Vec<Vec<usize>> = adj.iter().map(|a| a.to_vec()).collect();
            assert_eq!(perfect_matching(&graph), Some(want.to_vec()));
        }
    }
}
