//! SMARTS patterns: a parser for the subset RDKit's MACCS keys (and everyday substructure
//! queries) need, and a backtracking subgraph matcher with RDKit's matching semantics.
//!
//! Supported: atoms `*`, `a`, `A`, organic-subset symbols (upper case aliphatic, lower case
//! aromatic), bracket atoms with `#n`, any element symbol, `H<n>` (total hydrogens, explicit
//! neighbours included), `D<n>`, `X<n>`, `R` / `R<n>`, charges (`+`, `-2`, `++`, `+0`),
//! recursive `$(...)`, the operators `!`, `&`, implicit and, `,` and `;`; bonds `-`, `=`, `#`,
//! `:`, `~`, `@` with `!`, `&`, `,`, `;`; branches and ring closures (digits and `%nn`).
//! Anything else (chirality, isotopes, atom maps, `.`, directional bonds, `r`, `v`, `x`, `h`)
//! is rejected with an error naming its position.

mod matcher;
mod parse;

pub use matcher::Target;
pub use parse::parse;

/// A logical expression over primitives, as SMARTS writes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<P> {
    /// A single primitive.
    Prim(P),
    /// Negation (`!`).
    Not(Box<Expr<P>>),
    /// Conjunction (`&`, `;` or juxtaposition).
    And(Vec<Expr<P>>),
    /// Disjunction (`,`).
    Or(Vec<Expr<P>>),
}

impl<P> Expr<P> {
    /// Evaluates the expression with `prim` deciding each primitive.
    pub fn eval(&self, prim: &mut impl FnMut(&P) -> bool) -> bool {
        match self {
            Expr::Prim(p) => prim(p),
            Expr::Not(e) => !e.eval(prim),
            Expr::And(es) => es.iter().all(|e| e.eval(prim)),
            Expr::Or(es) => es.iter().any(|e| e.eval(prim)),
        }
    }
}

/// Atom primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomPrim {
    /// `*`: any atom.
    Any,
    /// An element symbol: upper case is aliphatic, lower case aromatic.
    Element {
        /// Atomic number.
        z: u8,
        /// Required aromaticity.
        aromatic: bool,
    },
    /// `#n`: atomic number, either aromaticity.
    AtomicNum(u8),
    /// `a`: aromatic atom.
    Aromatic,
    /// `A`: aliphatic atom.
    Aliphatic,
    /// `H<n>`: total hydrogen count (implicit, explicit and hydrogen neighbours).
    HCount(u8),
    /// `+n` / `-n`: formal charge.
    Charge(i8),
    /// `D<n>`: number of explicit connections.
    Degree(u8),
    /// `X<n>`: total connections, hydrogens included.
    TotalConnections(u8),
    /// `R`: in a ring.
    InRing,
    /// `R<n>`: member of exactly `n` rings of RDKit's ring set.
    RingCount(u8),
    /// `$(...)`: the atom is the first atom of a match of recursive pattern number `n`.
    Recursive(usize),
}

/// Bond primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondPrim {
    /// `-`: single (not aromatic).
    Single,
    /// `=`: double.
    Double,
    /// `#`: triple.
    Triple,
    /// `:`: aromatic.
    Aromatic,
    /// `~`: any bond.
    Any,
    /// `@`: ring bond.
    Ring,
    /// No bond symbol: single or aromatic.
    SingleOrAromatic,
}

/// One bond of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternBond {
    /// Earlier atom.
    pub a: usize,
    /// Later atom.
    pub b: usize,
    /// What the bond must satisfy.
    pub expr: Expr<BondPrim>,
}

/// A parsed SMARTS pattern (one connected component).
///
/// Atoms are numbered in order of appearance; every atom after the first is bonded to an
/// earlier one (its parent in the SMARTS string), ring closures add further bonds.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// Atom expressions in order of appearance.
    pub atoms: Vec<Expr<AtomPrim>>,
    /// Bonds in order of appearance.
    pub bonds: Vec<PatternBond>,
    /// For each atom after the first, the bond to its parent.
    parent_bond: Vec<Option<usize>>,
    /// For each atom, the bonds (other than the parent bond) to earlier atoms.
    closures: Vec<Vec<usize>>,
    /// Recursive sub-patterns referenced by [`AtomPrim::Recursive`] (top-level pattern only).
    recursive: Vec<Pattern>,
}

/// A SMARTS syntax error or unsupported feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position} of SMARTS {smarts:?}")]
pub struct SmartsError {
    /// What is wrong.
    pub message: String,
    /// 0-based byte offset in `smarts`.
    pub position: usize,
    /// The pattern text.
    pub smarts: String,
}
