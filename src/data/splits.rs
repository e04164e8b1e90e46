//! Train/valid/test splits: deterministic Bemis-Murcko scaffold split (deepchem's
//! `ScaffoldSplitter`, as chemprop's unbalanced scaffold split) and a seeded random split.

use std::collections::BTreeMap;

use crate::chem::scaffold::scaffold_smiles;
use crate::rng::Rng;

/// Split fractions; test gets the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractions {
    /// Train share (0.8 by default).
    pub train: f64,
    /// Validation share (0.1 by default).
    pub valid: f64,
}

impl Default for Fractions {
    fn default() -> Self {
        Self {
            train: 0.8,
            valid: 0.1,
        }
    }
}

/// Item indices per split, each ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// Train items.
    pub train: Vec<usize>,
    /// Validation items.
    pub valid: Vec<usize>,
    /// Test items.
    pub test: Vec<usize>,
}

/// Scaffold key of each SMILES: its Bemis-Murcko scaffold (RDKit-compatible, no stereo).
/// Acyclic molecules share the empty scaffold; a SMILES whose scaffold cannot be computed is
/// its own group.
pub fn scaffold_keys(smiles: &[&str]) -> Vec<String> {
    smiles
        .iter()
        .map(|s| scaffold_smiles(s).unwrap_or_else(|_| format!("unreadable:{s}")))
        .collect()
}

/// Scaffold split over items with scaffold `keys`: scaffold sets sorted by size, largest
/// first (ties: the set whose first item comes later first, as deepchem's reverse sort);
/// each set goes to train while train stays within `train` of all items, else to valid while
/// train+valid stay within `train + valid`, else to test.
pub fn scaffold_split(keys: &[String], fractions: Fractions) -> Split {
    let mut sets: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        sets.entry(k.as_str()).or_default().push(i);
    }
    let mut sets: Vec<Vec<usize>> = sets.into_values().collect();
    sets.sort_by(|a, b| (b.len(), b[0]).cmp(&(a.len(), a[0])));
    let n = keys.len() as f64;
    let train_cut = fractions.train * n;
    let valid_cut = (fractions.train + fractions.valid) * n;
    let mut split = Split::default();
    for set in sets {
        if (split.train.len() + set.len()) as f64 > train_cut {
            if (split.train.len() + split.valid.len() + set.len()) as f64 > valid_cut {
                split.test.extend(set);
            } else {
                split.valid.extend(set);
            }
        } else {
            split.train.extend(set);
        }
    }
    for part in [&mut split.train, &mut split.valid, &mut split.test] {
        part.sort_unstable();
    }
    split
}

/// Seeded random split of `n` items: a shuffled order cut at `train` and `train + valid`.
pub fn random_split(n: usize, fractions: Fractions, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    let train_end = ((fractions.train * n as f64).round() as usize).min(n);
    let valid_end = (((fractions.train + fractions.valid) * n as f64).round() as usize).min(n);
    let mut split = Split {
        train: order[..train_end].to_vec(),
        valid: order[train_end..valid_end].to_vec(),
        test: order[valid_end..].to_vec(),
    };
    for part in [&mut split.train, &mut split.valid, &mut split.test] {
        part.sort_unstable();
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaffold_sets_stay_together_and_largest_go_to_train() {
        // 10 items: scaffold a x5, b x2, c x1, d x1, e x1.
        let keys: Vec<String> = ["a", "b", "a", "c", "a", "b", "d", "a", "e", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = scaffold_split(&keys, Fractions::default());
        let total = s.train.len() + s.valid.len() + s.test.len();
        assert_eq!(total, 10);
        for part in [&s.train, &s.valid, &s.test] {
            for other in [&s.train, &s.valid, &s.test] {
                if !std::ptr::eq(part, other) {
                    for &i in part.iter() {
                        assert!(other.iter().all(|&j| keys[j] != keys[i]));
                    }
                }
            }
        }
        assert!(s.train.contains(&0) && s.train.contains(&1), "{s:?}");
        assert!(s.train.len() <= 8 && s.train.len() + s.valid.len() <= 9);
    }

    #[test]
    fn random_split_is_seeded_and_complete() {
        let a = random_split(101, Fractions::default(), 3);
        assert_eq!(a, random_split(101, Fractions::default(), 3));
        assert_ne!(a, random_split(101, Fractions::default(), 4));
        assert_eq!((a.train.len(), a.valid.len(), a.test.len()), (81, 10, 10));
        let mut all: Vec<usize> = [a.train, a.valid, a.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..101).collect::<Vec<_>>());
    }
}
