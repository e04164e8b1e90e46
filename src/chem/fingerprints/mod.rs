//! Molecular fingerprints as RDKit computes them, and Tanimoto similarity on them:
//! Morgan environments ([`morgan`]), MACCS keys ([`maccs`]) and the RDKit topological
//! fingerprint ([`rdkit_fp`]). These score the reaction tasks (InstructMol reports the
//! MACCS, RDK and Morgan Tanimoto similarities of predicted and reference molecules).

pub mod hash;
pub mod maccs;
mod masses;
pub mod morgan;
pub mod rdkit_fp;

pub use maccs::maccs_keys;
pub use morgan::{morgan_bits, morgan_counts};
pub use rdkit_fp::{rdkit_fingerprint, RdkitFpOptions};

use super::smarts::Target;
use super::Mol;

/// A fixed-length bit vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitVec {
    len: usize,
    words: Vec<u64>,
}

impl BitVec {
    /// `len` bits, all off.
    pub fn new(len: usize) -> Self {
        BitVec {
            len,
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length vector.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Turns bit `i` on (ignored beyond the end).
    pub fn set(&mut self, i: usize) {
        if i < self.len {
            self.words[i / 64] |= 1u64 << (i % 64);
        }
    }

    /// Whether bit `i` is on.
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }

    /// Number of bits on.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Indices of the bits that are on, ascending.
    pub fn on_bits(&self) -> Vec<usize> {
        (0..self.len).filter(|&i| self.get(i)).collect()
    }

    /// Tanimoto similarity `|A & B| / |A | B|` (RDKit's convention: 0 when both are empty).
    /// Vectors of different lengths are compared over their common words.
    pub fn tanimoto(&self, other: &BitVec) -> f64 {
        let (mut both, mut either) = (0u32, 0u32);
        for (a, b) in self.words.iter().zip(&other.words) {
            both += (a & b).count_ones();
            either += (a | b).count_ones();
        }
        if either == 0 {
            0.0
        } else {
            f64::from(both) / f64::from(either)
        }
    }
}

/// A sparse count vector: `(id, count)` pairs sorted by id, counts positive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountVec {
    entries: Vec<(u32, u32)>,
}

impl CountVec {
    /// From `(id, count)` pairs already sorted by id with distinct ids.
    pub fn from_sorted(entries: Vec<(u32, u32)>) -> Self {
        CountVec { entries }
    }

    /// The `(id, count)` pairs, sorted by id.
    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    /// Tanimoto similarity of count vectors, as RDKit's `TanimotoSimilarity` on
    /// `SparseIntVect`s: `sum(min) / (sum(a) + sum(b) - sum(min))`, 0 when both are empty.
    pub fn tanimoto(&self, other: &CountVec) -> f64 {
        let (a, b) = (&self.entries, &other.entries);
        let sum_a: u64 = a.iter().map(|e| u64::from(e.1)).sum();
        let sum_b: u64 = b.iter().map(|e| u64::from(e.1)).sum();
        let (mut i, mut j, mut common) = (0, 0, 0u64);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common += u64::from(a[i].1.min(b[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
        let denom = sum_a + sum_b - common;
        if denom == 0 {
            0.0
        } else {
            common as f64 / denom as f64
        }
    }
}

/// Which fingerprint to compare molecules with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpKind {
    /// Morgan environments: counts (`GetMorganFingerprint(mol, radius)`), or hashed bits when
    /// [`FpOptions::bits`] is given (`GetMorganFingerprintAsBitVect`).
    Morgan,
    /// MACCS keys (`MACCSkeys.GenMACCSKeys`).
    Maccs,
    /// RDKit topological fingerprint (`Chem.RDKFingerprint`, 2048 bits unless `bits` is given).
    Rdkit,
}

/// A fingerprint choice with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FpOptions {
    /// The fingerprint.
    pub kind: FpKind,
    /// Morgan radius.
    pub radius: u32,
    /// Bit-vector length (Morgan: hashed bits instead of counts; RDKit: fingerprint size).
    /// Ignored by MACCS. Must be positive when given.
    pub bits: Option<usize>,
}

impl FpOptions {
    /// The options the InstructMol reference uses for `kind` (Morgan counts radius 2,
    /// RDKit 2048 bits).
    pub fn reference(kind: FpKind) -> Self {
        FpOptions {
            kind,
            radius: 2,
            bits: None,
        }
    }
}

/// A computed fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// A bit vector.
    Bits(BitVec),
    /// A count vector.
    Counts(CountVec),
}

impl Fingerprint {
    /// Tanimoto similarity; fingerprints of different shapes (never produced by one
    /// [`FpOptions`]) have similarity 0.
    pub fn tanimoto(&self, other: &Fingerprint) -> f64 {
        match (self, other) {
            (Fingerprint::Bits(a), Fingerprint::Bits(b)) => a.tanimoto(b),
            (Fingerprint::Counts(a), Fingerprint::Counts(b)) => a.tanimoto(b),
            _ => 0.0,
        }
    }
}

/// Computes the fingerprint `opts` asks for on a prepared molecule.
pub fn fingerprint_target(target: &Target, opts: &FpOptions) -> Fingerprint {
    match opts.kind {
        FpKind::Morgan => match opts.bits {
            Some(n) => Fingerprint::Bits(morgan_bits(target, opts.radius, n.max(1))),
            None => Fingerprint::Counts(morgan_counts(target, opts.radius)),
        },
        FpKind::Maccs => Fingerprint::Bits(maccs_keys(target)),
        FpKind::Rdkit => Fingerprint::Bits(rdkit_fingerprint(
            target.mol,
            &RdkitFpOptions {
                fp_size: opts.bits.unwrap_or(2048).max(1),
                ..RdkitFpOptions::default()
            },
        )),
    }
}

/// Computes the fingerprint `opts` asks for.
pub fn fingerprint(mol: &Mol, opts: &FpOptions) -> Fingerprint {
    fingerprint_target(&Target::new(mol), opts)
}

/// Tanimoto similarity of two molecules under one fingerprint.
pub fn similarity(a: &Mol, b: &Mol, opts: &FpOptions) -> f64 {
    fingerprint(a, opts).tanimoto(&fingerprint(b, opts))
}

/// The three similarities InstructMol reports for reaction tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarities {
    /// MACCS keys Tanimoto.
    pub maccs: f64,
    /// RDKit fingerprint Tanimoto.
    pub rdk: f64,
    /// Morgan (radius 2, counts) Tanimoto.
    pub morgan: f64,
}

/// All three reference similarities of two molecules (rings perceived once per molecule).
pub fn similarities(a: &Mol, b: &Mol) -> Similarities {
    let (ta, tb) = (Target::new(a), Target::new(b));
    let sim = |kind| {
        let opts = FpOptions::reference(kind);
        fingerprint_target(&ta, &opts).tanimoto(&fingerprint_target(&tb, &opts))
    };
    Similarities {
        maccs: sim(FpKind::Maccs),
        rdk: sim(FpKind::Rdkit),
        morgan: sim(FpKind::Morgan),
    }
}
