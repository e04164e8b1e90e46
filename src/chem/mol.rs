//! The molecule graph shared by every part of the `chem` layer.
//!
//! Atoms are numbered in order of appearance in the SMILES; bonds are numbered in
//! the order RDKit's SMILES parser adds them. Each atom's neighbour list is kept in
//! bond-insertion order, because RDKit's chiral tags (`CW`/`CCW`) are defined
//! relative to that order.

/// Tetrahedral and higher-order chirality tags, with RDKit's meaning.
///
/// `Cw`/`Ccw` are relative to the order of the atom's bonds in [`Mol::neighbors`]
/// (RDKit `CHI_TETRAHEDRAL_CW`/`CCW`), not CIP labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChiralTag {
    /// No chirality (RDKit `CHI_UNSPECIFIED`).
    #[default]
    Unspecified,
    /// RDKit `CHI_TETRAHEDRAL_CW`.
    Cw,
    /// RDKit `CHI_TETRAHEDRAL_CCW`.
    Ccw,
    /// RDKit `CHI_OTHER`.
    Other,
    /// `@SPn` (RDKit `CHI_SQUAREPLANAR`, permutation 1..=3, 0 when none was given).
    /// Like RDKit's `_chiralPermutation`, the number is relative to the bond order with
    /// missing ligands last (see [`crate::chem::nontetrahedral`]).
    SquarePlanar(u8),
    /// `@TBn` (RDKit `CHI_TRIGONALBIPYRAMIDAL`, permutation 1..=20), as `SquarePlanar`.
    TrigonalBipyramidal(u8),
    /// `@OHn` (RDKit `CHI_OCTAHEDRAL`, permutation 1..=30), as `SquarePlanar`.
    Octahedral(u8),
    /// `@AL1`/`@AL2` (RDKit `CHI_ALLENE`).
    Allene(u8),
}

/// Bond types, with RDKit's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BondType {
    /// Single bond (`-` or implicit).
    #[default]
    Single,
    /// Double bond (`=`).
    Double,
    /// Triple bond (`#`).
    Triple,
    /// Quadruple bond (`$`).
    Quadruple,
    /// Aromatic bond (`:` or implicit between aromatic atoms).
    Aromatic,
    /// Zero-order bond (RDKit `ZERO`/`UNSPECIFIED`, from `~`): no valence on either side.
    Zero,
    /// Dative bond from donor (begin) to acceptor (end), from `->`/`<-` or RDKit's
    /// organometallic clean-up (RDKit `DATIVE`).
    Dative,
}

impl BondType {
    /// Bond order as RDKit's `getBondTypeAsDouble` (aromatic = 1.5, dative = 1). For the
    /// valence of one atom use [`Bond::valence_contrib`], which knows the dative direction.
    pub fn valence_contrib(self) -> f64 {
        match self {
            BondType::Single => 1.0,
            BondType::Double => 2.0,
            BondType::Triple => 3.0,
            BondType::Quadruple => 4.0,
            BondType::Aromatic => 1.5,
            BondType::Zero => 0.0,
            BondType::Dative => 1.0,
        }
    }
}

/// Directional single bonds from `/` and `\`, as RDKit stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BondDir {
    /// No direction.
    #[default]
    None,
    /// RDKit `ENDUPRIGHT` (`/` read from begin to end atom).
    EndUpRight,
    /// RDKit `ENDDOWNRIGHT` (`\` read from begin to end atom).
    EndDownRight,
}

/// One atom.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Atom {
    /// Atomic number; 0 for the wildcard `*`.
    pub element: u8,
    /// Mass number from a bracket atom (`[13C]`), if any.
    pub isotope: Option<u16>,
    /// Formal charge.
    pub charge: i8,
    /// Hydrogens written in a bracket atom (`[NH4+]` -> 4).
    pub explicit_h: u8,
    /// Hydrogens added by valence rules (organic-subset atoms only), set by sanitization.
    pub implicit_h: u8,
    /// True for bracket atoms: they never receive implicit hydrogens.
    pub no_implicit: bool,
    /// Aromatic flag (lower-case in the SMILES, or perceived by sanitization).
    pub aromatic: bool,
    /// Chirality tag, relative to the bond order in [`Mol::neighbors`].
    pub chiral: ChiralTag,
    /// Atom class / atom map number (`[CH3:7]` -> `Some(7)`); `None` when absent. RDKit keeps
    /// an explicit `:0` (`[CH4:0]` is written back as such and is not `C`).
    pub map_number: Option<u32>,
    /// Number of radical electrons, set by sanitization.
    pub radicals: u8,
    /// Byte offset of the atom in the source SMILES (for error messages).
    pub position: usize,
}

impl Atom {
    /// Total hydrogen count (explicit + implicit).
    pub fn total_h(&self) -> u8 {
        self.explicit_h + self.implicit_h
    }
}

/// One bond between two atoms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bond {
    /// Index of the first atom (RDKit's begin atom).
    pub begin: usize,
    /// Index of the second atom (RDKit's end atom).
    pub end: usize,
    /// Bond type.
    pub kind: BondType,
    /// Direction from `/` or `\`, relative to begin -> end.
    pub dir: BondDir,
    /// True when the bond was written as a ring closure (digit or `%nn`) in the SMILES.
    pub ring_closure: bool,
}

impl Bond {
    /// The bond's contribution to the valence of `atom` (one of its ends), as RDKit's
    /// `getValenceContrib`: a dative bond counts 1 on its acceptor (end) atom, 0 on its donor.
    pub fn valence_contrib(&self, atom: usize) -> f64 {
        if self.kind == BondType::Dative && atom != self.end {
            0.0
        } else {
            self.kind.valence_contrib()
        }
    }

    /// The atom at the other end of the bond from `atom`.
    pub fn other(&self, atom: usize) -> usize {
        if self.begin == atom {
            self.end
        } else {
            self.begin
        }
    }
}

/// A molecule: atoms, bonds and, for each atom, its bonds in insertion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mol {
    /// Atoms in SMILES order.
    pub atoms: Vec<Atom>,
    /// Bonds in RDKit insertion order.
    pub bonds: Vec<Bond>,
    /// For each atom, the indices of its bonds in insertion order.
    pub atom_bonds: Vec<Vec<usize>>,
}

impl Mol {
    /// An empty molecule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an atom and returns its index.
    pub fn add_atom(&mut self, atom: Atom) -> usize {
        self.atoms.push(atom);
        self.atom_bonds.push(Vec::new());
        self.atoms.len() - 1
    }

    /// Appends a bond between `begin` and `end` and returns its index.
    pub fn add_bond(&mut self, begin: usize, end: usize, kind: BondType, dir: BondDir) -> usize {
        let idx = self.bonds.len();
        self.bonds.push(Bond {
            begin,
            end,
            kind,
            dir,
            ring_closure: false,
        });
        self.atom_bonds[begin].push(idx);
        self.atom_bonds[end].push(idx);
        idx
    }

    /// Neighbouring atom indices of `atom`, in bond-insertion order.
    pub fn neighbors(&self, atom: usize) -> impl Iterator<Item = usize> + '_ {
        self.atom_bonds[atom]
            .iter()
            .map(move |&b| self.bonds[b].other(atom))
    }

    /// Index of the bond between `a` and `b`, if any.
    pub fn bond_between(&self, a: usize, b: usize) -> Option<usize> {
        self.atom_bonds[a]
            .iter()
            .copied()
            .find(|&bi| self.bonds[bi].other(a) == b)
    }

    /// Number of heavy-atom neighbours (RDKit's degree, hydrogens not counted).
    pub fn degree(&self, atom: usize) -> usize {
        self.atom_bonds[atom].len()
    }
}
