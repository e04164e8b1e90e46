//! SMILES reader producing the raw molecule graph exactly as RDKit's parser builds it,
//! before any sanitization.
//!
//! Atoms are numbered in order of appearance. Chain and branch bonds are numbered as
//! they are read; ring-closure bonds are appended after all of them, ordered by ring
//! number and, for one ring number, by order of closure (this is RDKit's numbering).
//! Chiral tags are converted from SMILES neighbour order to RDKit's convention
//! (relative to the atom's bond order in [`Mol::atom_bonds`], implicit H last).

use super::elements;
use super::nontetrahedral::Shape;
use super::{Atom, BondDir, BondType, ChemError, ChiralTag, ErrorKind, Mol};

/// Largest number RDKit's lexer accepts for isotopes, charges, H counts and atom classes.
const MAX_NUMBER: u64 = 2_147_483_639;
/// Largest ring-bond number (`%(99999)`).
const MAX_RING_NUMBER: u32 = 99_999;

/// Parses `smiles` into the raw (unsanitized) molecule graph.
///
/// Follows RDKit's `MolFromSmiles` input conventions: text after the first space or tab
/// (when that is not the first character) is a name and ignored, leading whitespace is
/// skipped and a newline ends the SMILES. The empty string gives an empty molecule.
pub fn parse(smiles: &str) -> Result<Mol, ChemError> {
    Parser::new(smiles).run()
}

/// What a bond symbol says about the bond's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SymbolKind {
    /// `/` or `\`: a direction only.
    Direction,
    /// `~`: RDKit's unspecified bond (a [`BondType::Zero`] bond in a chain, the default
    /// single/aromatic bond when it closes a ring).
    Any,
    /// `- = # $ :`.
    Typed(BondType),
    /// `->` (`reversed == false`) or `<-`: a dative bond, stored as [`BondType::Dative`] from
    /// the donor (arrow tail) to the acceptor.
    Dative { reversed: bool },
}

/// A bond symbol as written.
#[derive(Debug, Clone, Copy)]
struct BondSpec {
    symbol: SymbolKind,
    dir: BondDir,
    pos: usize,
}

impl BondSpec {
    /// The bond type the symbol fixes, if any.
    fn kind(&self) -> Option<BondType> {
        match self.symbol {
            SymbolKind::Typed(k) => Some(k),
            SymbolKind::Dative { .. } => Some(BondType::Dative),
            SymbolKind::Direction | SymbolKind::Any => None,
        }
    }

    /// Whether the symbol counts as a written bond type for ring closures.
    fn is_typed(&self) -> bool {
        self.symbol != SymbolKind::Direction
    }
}

/// What the previous token was, for the grammar checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Start,
    Atom,
    RingBond,
    BranchOpen,
    BranchClose,
    Dot,
}

/// A ring bond that was opened and not yet closed.
#[derive(Debug, Clone, Copy)]
struct OpenRing {
    number: u32,
    atom: usize,
    spec: Option<BondSpec>,
    pos: usize,
}

/// A ring bond that was closed; added to the molecule once parsing is complete.
#[derive(Debug, Clone, Copy)]
struct RingClosure {
    number: u32,
    begin: usize,
    end: usize,
    kind: BondType,
    dir: BondDir,
    /// Position of the ring-bond digit next to `begin` and next to `end` (neighbour order).
    begin_pos: usize,
    end_pos: usize,
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
    end: usize,
    mol: Mol,
    last: Last,
    prev: Option<usize>,
    pending: Option<BondSpec>,
    /// Parent atom and position of each open branch.
    branches: Vec<(usize, usize)>,
    open_rings: Vec<OpenRing>,
    closures: Vec<RingClosure>,
    /// For each chain bond, the position of the token that made it (the child atom).
    chain_pos: Vec<usize>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        let bytes = input.as_bytes();
        // A space or tab after the first character separates the SMILES from a name.
        let mut end = match bytes.iter().position(|&b| b == b' ' || b == b'\t') {
            Some(i) if i > 0 => i,
            _ => bytes.len(),
        };
        let mut pos = 0;
        while pos < end && matches!(bytes[pos], b' ' | b'\t' | b'\r' | b'\n') {
            pos += 1;
        }
        if let Some(nl) = bytes[pos..end].iter().position(|&b| b == b'\n') {
            end = pos + nl;
        }
        Parser {
            input,
            bytes,
            pos,
            end,
            mol: Mol::new(),
            last: Last::Start,
            prev: None,
            pending: None,
            branches: Vec::new(),
            open_rings: Vec::new(),
            closures: Vec::new(),
            chain_pos: Vec::new(),
        }
    }

    /// An error at byte offset `pos`, reported as a character offset.
    fn err(&self, pos: usize, msg: impl Into<String>) -> ChemError {
        let cpos = self
            .input
            .get(..pos)
            .map_or(pos, |prefix| prefix.chars().count());
        ChemError::at(ErrorKind::Syntax, self.input, cpos, msg)
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.bytes[self.pos])
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        let p = self.pos + offset;
        (p < self.end).then(|| self.bytes[p])
    }

    fn unexpected(&self, pos: usize) -> ChemError {
        let c = self.input.get(pos..).and_then(|s| s.chars().next());
        match c {
            Some(c) => self.err(
                pos,
                format!("unexpected character '{}'", c.escape_default()),
            ),
            None => self.err(pos, "unexpected end of input"),
        }
    }

    fn run(mut self) -> Result<Mol, ChemError> {
        if self.bytes.is_empty() {
            return Ok(self.mol);
        }
        if self.pos >= self.end {
            return Err(self.err(self.pos, "empty SMILES"));
        }
        while let Some(c) = self.peek() {
            match c {
                b'[' => self.bracket_atom()?,
                b'(' => self.branch_open()?,
                b')' => self.branch_close()?,
                b'.' => self.dot()?,
                b'-' | b'=' | b'#' | b'$' | b':' | b'/' | b'\\' | b'~' | b'<' => self.bond(c)?,
                b'0'..=b'9' | b'%' => self.ring_bond()?,
                _ => self.organic_atom()?,
            }
        }
        self.finish()
    }

    fn finish(mut self) -> Result<Mol, ChemError> {
        if let Some(spec) = self.pending {
            return Err(self.err(spec.pos, "bond is not followed by an atom"));
        }
        match self.last {
            Last::Dot => return Err(self.err(self.end - 1, "SMILES ends with '.'")),
            Last::BranchOpen => return Err(self.err(self.end - 1, "SMILES ends with '('")),
            _ => {}
        }
        if let Some(&(_, p)) = self.branches.first() {
            return Err(self.err(p, format!("branch opened at position {p} is never closed")));
        }
        if let Some(r) = self.open_rings.first() {
            return Err(self.err(
                r.pos,
                format!(
                    "ring bond {} opened at position {} is never closed",
                    r.number, r.pos
                ),
            ));
        }
        // RDKit adds ring-closure bonds last, by ring number (stable: closure order).
        self.closures.sort_by_key(|c| c.number);
        let n_chain = self.mol.bonds.len();
        for c in &self.closures {
            let b = self.mol.add_bond(c.begin, c.end, c.kind, c.dir);
            self.mol.bonds[b].ring_closure = true;
        }
        self.fix_chirality(n_chain);
        Ok(self.mol)
    }

    /// Converts `@`/`@@` from SMILES neighbour order to RDKit's bond order, and re-expresses
    /// `@SPn`/`@TBn`/`@OHn` for the stored bond order (missing ligands last).
    ///
    /// The SMILES order of an atom's bonds is: the bond to the preceding atom, then its
    /// ring-closure bonds and bonds to later atoms in written order. The tag is
    /// inverted when that order is an odd permutation of the stored bond order, and once
    /// more in RDKit's special three-neighbour cases (a fragment's first atom with one H,
    /// or exactly one ring closure on a saturated atom without H).
    fn fix_chirality(&mut self, n_chain: usize) {
        let mut keyed: Vec<(usize, usize)> = Vec::new();
        for a in 0..self.mol.atoms.len() {
            let atom = &self.mol.atoms[a];
            let shaped = Shape::of(atom.chiral);
            if !matches!(atom.chiral, ChiralTag::Cw | ChiralTag::Ccw) && shaped.is_none() {
                continue;
            }
            keyed.clear();
            let mut closures = 0;
            let mut has_preceding = false;
            let mut unsaturated = false;
            for &b in &self.mol.atom_bonds[a] {
                let bond = &self.mol.bonds[b];
                unsaturated |= bond.kind.valence_contrib() > 1.0;
                let key = if b < n_chain {
                    // The parent of a chain bond always has the lower index.
                    if bond.other(a) < a {
                        has_preceding = true;
                        0
                    } else {
                        self.chain_pos[b]
                    }
                } else {
                    closures += 1;
                    let c = &self.closures[b - n_chain];
                    if c.begin == a {
                        c.begin_pos
                    } else {
                        c.end_pos
                    }
                };
                keyed.push((key, b));
            }
            keyed.sort_unstable();
            let first = !has_preceding;
            if let Some((shape, n)) = shaped {
                // Re-expressed for the stored bond order, missing ligands last (RDKit's
                // `_chiralPermutation`; the number is kept when it still fits, as RDKit keeps
                // it); 0 (no number) stays 0, and too many neighbours give 0.
                let written: Vec<usize> = keyed.iter().map(|&(_, b)| b).collect();
                let stored = shape
                    .reading_order(&written, first, usize::MAX)
                    .zip(shape.stored_order(&self.mol.atom_bonds[a], usize::MAX))
                    .and_then(|(from, to)| {
                        if shape.same(n, &from, n, &to) {
                            Some(n)
                        } else {
                            shape.reexpress(n, &from, &to)
                        }
                    })
                    .unwrap_or(0);
                self.mol.atoms[a].chiral = shape.tag(stored);
                continue;
            }
            // Stored order is increasing bond index; count inversions of the SMILES order.
            let mut swaps = 0usize;
            for i in 0..keyed.len() {
                for j in i + 1..keyed.len() {
                    if keyed[i].1 > keyed[j].1 {
                        swaps += 1;
                    }
                }
            }
            if keyed.len() == 3
                && ((first && atom.explicit_h == 1)
                    || (atom.explicit_h != 1 && closures == 1 && !unsaturated))
            {
                swaps += 1;
            }
            if swaps % 2 == 1 {
                let atom = &mut self.mol.atoms[a];
                atom.chiral = match atom.chiral {
                    ChiralTag::Cw => ChiralTag::Ccw,
                    _ => ChiralTag::Cw,
                };
            }
        }
    }

    fn bond(&mut self, c: u8) -> Result<(), ChemError> {
        let pos = self.pos;
        if self.pending.is_some() {
            return Err(self.err(pos, "two bond symbols in a row"));
        }
        match self.last {
            Last::Start => return Err(self.err(pos, "SMILES starts with a bond")),
            Last::Dot => return Err(self.err(pos, "bond symbol after '.'")),
            _ => {}
        }
        let next = self.peek_at(1);
        let (symbol, dir, len) = match (c, next) {
            (b'-', Some(b'>')) => (SymbolKind::Dative { reversed: false }, BondDir::None, 2),
            (b'<', Some(b'-')) => (SymbolKind::Dative { reversed: true }, BondDir::None, 2),
            (b'<', _) => return Err(self.unexpected(pos)),
            (b'-', _) => (SymbolKind::Typed(BondType::Single), BondDir::None, 1),
            (b'=', _) => (SymbolKind::Typed(BondType::Double), BondDir::None, 1),
            (b'#', _) => (SymbolKind::Typed(BondType::Triple), BondDir::None, 1),
            (b'$', _) => (SymbolKind::Typed(BondType::Quadruple), BondDir::None, 1),
            (b':', _) => (SymbolKind::Typed(BondType::Aromatic), BondDir::None, 1),
            (b'~', _) => (SymbolKind::Any, BondDir::None, 1),
            (b'/', _) => (SymbolKind::Direction, BondDir::EndUpRight, 1),
            _ => (SymbolKind::Direction, BondDir::EndDownRight, 1),
        };
        self.pending = Some(BondSpec { symbol, dir, pos });
        self.pos += len;
        // RDKit also reads an escaped backslash `\\` as one `\` bond.
        if c == b'\\' && self.peek() == Some(b'\\') {
            self.pos += 1;
        }
        Ok(())
    }

    fn branch_open(&mut self) -> Result<(), ChemError> {
        let pos = self.pos;
        if let Some(spec) = self.pending {
            return Err(self.err(spec.pos, "bond symbol before '('"));
        }
        match (self.last, self.prev) {
            (Last::Atom | Last::RingBond | Last::BranchClose, Some(p)) => {
                self.branches.push((p, pos));
                self.last = Last::BranchOpen;
                self.pos += 1;
                Ok(())
            }
            (Last::BranchOpen, _) => Err(self.err(pos, "branch starts with '('")),
            _ => Err(self.err(pos, "'(' must follow an atom")),
        }
    }

    fn branch_close(&mut self) -> Result<(), ChemError> {
        let pos = self.pos;
        if let Some(spec) = self.pending {
            return Err(self.err(spec.pos, "bond is not followed by an atom"));
        }
        match self.last {
            Last::BranchOpen => return Err(self.err(pos, "empty branch")),
            Last::Dot => return Err(self.err(pos, "')' after '.'")),
            _ => {}
        }
        let Some((parent, _)) = self.branches.pop() else {
            return Err(self.err(pos, "unmatched ')'"));
        };
        self.prev = Some(parent);
        self.last = Last::BranchClose;
        self.pos += 1;
        Ok(())
    }

    fn dot(&mut self) -> Result<(), ChemError> {
        let pos = self.pos;
        if let Some(spec) = self.pending {
            return Err(self.err(spec.pos, "bond is not followed by an atom"));
        }
        match self.last {
            Last::Start => return Err(self.err(pos, "SMILES starts with '.'")),
            Last::Dot => return Err(self.err(pos, "two '.' in a row")),
            Last::BranchOpen => return Err(self.err(pos, "'.' right after '('")),
            _ => {}
        }
        self.prev = None;
        self.last = Last::Dot;
        self.pos += 1;
        Ok(())
    }

    /// Reads an unsigned decimal number of at most `max_digits` digits at the cursor.
    fn digits(&mut self, max_digits: usize) -> Option<(u64, usize)> {
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.pos - start == max_digits {
                break;
            }
            value = value * 10 + u64::from(d - b'0');
            self.pos += 1;
        }
        (self.pos > start).then_some((value, self.pos - start))
    }

    /// Reads a number as RDKit's lexer accepts it: no leading zeros, at most [`MAX_NUMBER`].
    fn number(&mut self, what: &str) -> Result<Option<u64>, ChemError> {
        let start = self.pos;
        let Some((value, len)) = self.digits(11) else {
            return Ok(None);
        };
        if len > 1 && self.bytes[start] == b'0' {
            return Err(self.err(start, format!("{what} has a leading zero")));
        }
        if value > MAX_NUMBER || matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.err(start, format!("{what} is too large")));
        }
        Ok(Some(value))
    }

    fn ring_bond(&mut self) -> Result<(), ChemError> {
        let pos = self.pos;
        if !matches!(self.last, Last::Atom | Last::RingBond | Last::BranchClose) {
            return Err(self.err(pos, "ring bond number must follow an atom"));
        }
        let number = if self.bytes[pos] == b'%' {
            self.pos += 1;
            if self.peek() == Some(b'(') {
                self.pos += 1;
                let Some((n, _)) = self.digits(5) else {
                    return Err(self.err(self.pos, "expected a ring bond number after '%('"));
                };
                if self.peek() != Some(b')') {
                    return Err(self.err(pos, "malformed ring bond number '%(...)'"));
                }
                self.pos += 1;
                n as u32
            } else {
                match self.digits(2) {
                    Some((n, 2)) => n as u32,
                    _ => return Err(self.err(pos, "'%' must be followed by two digits")),
                }
            }
        } else {
            self.pos += 1;
            u32::from(self.bytes[pos] - b'0')
        };
        debug_assert!(number <= MAX_RING_NUMBER);
        let Some(atom) = self.prev else {
            return Err(self.err(pos, "ring bond number must follow an atom"));
        };
        let spec = self.pending.take();
        if let Some(i) = self.open_rings.iter().position(|r| r.number == number) {
            let open = self.open_rings.remove(i);
            self.close_ring(open, atom, spec, pos)?;
        } else {
            self.open_rings.push(OpenRing {
                number,
                atom,
                spec,
                pos,
            });
        }
        self.last = Last::RingBond;
        Ok(())
    }

    fn close_ring(
        &mut self,
        open: OpenRing,
        atom: usize,
        spec: Option<BondSpec>,
        pos: usize,
    ) -> Result<(), ChemError> {
        if open.atom == atom {
            return Err(self.err(
                pos,
                format!("ring bond {} bonds an atom to itself", open.number),
            ));
        }
        let duplicate = self.mol.bond_between(open.atom, atom).is_some()
            || self.closures.iter().any(|c| {
                (c.begin == atom && c.end == open.atom) || (c.begin == open.atom && c.end == atom)
            });
        if duplicate {
            return Err(self.err(
                pos,
                format!(
                    "ring bond {} duplicates a bond between the same two atoms",
                    open.number
                ),
            ));
        }
        let both_aromatic = self.mol.atoms[open.atom].aromatic && self.mol.atoms[atom].aromatic;
        let default_kind = if both_aromatic {
            BondType::Aromatic
        } else {
            BondType::Single
        };
        let flip = |d: BondDir| match d {
            BondDir::EndUpRight => BondDir::EndDownRight,
            BondDir::EndDownRight => BondDir::EndUpRight,
            BondDir::None => BondDir::None,
        };
        let opening_typed = open.spec.filter(BondSpec::is_typed);
        let mut closure = match opening_typed {
            // A bond type written at the opening digit wins; the bond then starts there.
            Some(o) => RingClosure {
                number: open.number,
                begin: open.atom,
                end: atom,
                kind: o.kind().unwrap_or(default_kind),
                dir: spec.map_or(BondDir::None, |s| flip(s.dir)),
                begin_pos: open.pos,
                end_pos: pos,
            },
            None => {
                let kind = spec.and_then(|s| s.kind()).unwrap_or(default_kind);
                let dir = match (spec, open.spec) {
                    (Some(s), _) if s.dir != BondDir::None => s.dir,
                    (_, Some(o)) => flip(o.dir),
                    _ => BondDir::None,
                };
                RingClosure {
                    number: open.number,
                    begin: atom,
                    end: open.atom,
                    kind,
                    dir,
                    begin_pos: pos,
                    end_pos: open.pos,
                }
            }
        };
        // A dative arrow points from the donor to the acceptor.
        let deciding = opening_typed
            .map(|o| (o, open.atom))
            .or(spec.map(|s| (s, atom)));
        if let Some((s, written_at)) = deciding {
            if let SymbolKind::Dative { reversed } = s.symbol {
                let partner = if written_at == atom { open.atom } else { atom };
                let donor = if reversed { partner } else { written_at };
                if closure.begin != donor {
                    std::mem::swap(&mut closure.begin, &mut closure.end);
                    std::mem::swap(&mut closure.begin_pos, &mut closure.end_pos);
                }
            }
        }
        self.closures.push(closure);
        Ok(())
    }

    /// Adds `atom` and the bond from the previous atom, if any.
    fn push_atom(&mut self, atom: Atom) -> Result<(), ChemError> {
        let pos = atom.position;
        let aromatic = atom.aromatic;
        let idx = self.mol.add_atom(atom);
        if let Some(p) = self.prev {
            let spec = self.pending.take();
            let default_kind = match spec.map(|s| s.symbol) {
                Some(SymbolKind::Any) => BondType::Zero,
                _ if aromatic && self.mol.atoms[p].aromatic => BondType::Aromatic,
                _ => BondType::Single,
            };
            let kind = spec.and_then(|s| s.kind()).unwrap_or(default_kind);
            let dir = spec.map_or(BondDir::None, |s| s.dir);
            match spec.map(|s| s.symbol) {
                Some(SymbolKind::Dative { reversed: true }) => self.mol.add_bond(idx, p, kind, dir),
                _ => self.mol.add_bond(p, idx, kind, dir),
            };
            self.chain_pos.push(pos);
        }
        self.prev = Some(idx);
        self.last = Last::Atom;
        Ok(())
    }

    fn organic_atom(&mut self) -> Result<(), ChemError> {
        let pos = self.pos;
        let c = self.bytes[pos];
        let next = self.peek_at(1);
        let (element, aromatic, len) = match (c, next) {
            (b'C', Some(b'l')) => (17, false, 2),
            (b'B', Some(b'r')) => (35, false, 2),
            (b'B', _) => (5, false, 1),
            (b'C', _) => (6, false, 1),
            (b'N', _) => (7, false, 1),
            (b'O', _) => (8, false, 1),
            (b'P', _) => (15, false, 1),
            (b'S', _) => (16, false, 1),
            (b'F', _) => (9, false, 1),
            (b'I', _) => (53, false, 1),
            (b'*', _) => (0, false, 1),
            (b'b', _) => (5, true, 1),
            (b'c', _) => (6, true, 1),
            (b'n', _) => (7, true, 1),
            (b'o', _) => (8, true, 1),
            (b'p', _) => (15, true, 1),
            (b's', _) => (16, true, 1),
            _ => return Err(self.unexpected(pos)),
        };
        self.pos += len;
        self.push_atom(Atom {
            element,
            aromatic,
            position: pos,
            ..Atom::default()
        })
    }

    /// Reads the element symbol of a bracket atom: (atomic number, aromatic).
    fn bracket_symbol(&mut self) -> Result<(u8, bool), ChemError> {
        let pos = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.err(pos, "expected an element symbol"));
        };
        if c == b'*' {
            self.pos += 1;
            return Ok((0, false));
        }
        if c.is_ascii_lowercase() {
            let two = match (c, self.peek_at(1)) {
                (b's', Some(b'e')) => Some(34),
                (b'a', Some(b's')) => Some(33),
                (b't', Some(b'e')) => Some(52),
                (b's', Some(b'i')) => Some(14),
                _ => None,
            };
            if let Some(z) = two {
                self.pos += 2;
                return Ok((z, true));
            }
            let one = match c {
                b'b' => 5,
                b'c' => 6,
                b'n' => 7,
                b'o' => 8,
                b'p' => 15,
                b's' => 16,
                _ => return Err(self.err(pos, "unknown aromatic element")),
            };
            self.pos += 1;
            return Ok((one, true));
        }
        if !c.is_ascii_uppercase() {
            return Err(self.err(pos, "expected an element symbol"));
        }
        // Legacy IUPAC placeholder names for elements 110-118.
        if c == b'U' && self.peek_at(1) == Some(b'u') {
            let z = match self.peek_at(2) {
                Some(b'n') => Some(110),
                Some(b'u') => Some(111),
                Some(b'b') => Some(112),
                Some(b't') => Some(113),
                Some(b'q') => Some(114),
                Some(b'p') => Some(115),
                Some(b'h') => Some(116),
                Some(b's') => Some(117),
                Some(b'o') => Some(118),
                _ => None,
            };
            if let Some(z) = z {
                self.pos += 3;
                return Ok((z, false));
            }
        }
        if let Some(l @ b'a'..=b'z') = self.peek_at(1) {
            let sym = [c, l];
            if let Some(z) = std::str::from_utf8(&sym)
                .ok()
                .and_then(elements::from_symbol)
            {
                self.pos += 2;
                return Ok((z, false));
            }
        }
        let sym = [c];
        match std::str::from_utf8(&sym)
            .ok()
            .and_then(elements::from_symbol)
        {
            Some(z) => {
                self.pos += 1;
                Ok((z, false))
            }
            None => Err(self.err(pos, "unknown element symbol")),
        }
    }

    /// Reads a chirality specification after `@` (the cursor is on the first `@`).
    fn chirality(&mut self) -> Result<ChiralTag, ChemError> {
        let pos = self.pos;
        self.pos += 1;
        if self.peek() == Some(b'@') {
            self.pos += 1;
            return Ok(ChiralTag::Cw);
        }
        let class = match (self.peek(), self.peek_at(1)) {
            (Some(b'T'), Some(b'H')) => Some((b'H', 2u8)),
            (Some(b'S'), Some(b'P')) => Some((b'P', 3)),
            (Some(b'T'), Some(b'B')) => Some((b'B', 20)),
            (Some(b'O'), Some(b'H')) => Some((b'O', 30)),
            (Some(b'A'), Some(b'L')) => Some((b'L', 2)),
            _ => None,
        };
        let Some((code, max)) = class else {
            return Ok(ChiralTag::Ccw);
        };
        self.pos += 2;
        let start = self.pos;
        let n = match self.digits(2) {
            None => 0,
            Some((n, len)) => {
                if (len > 1 && self.bytes[start] == b'0') || n == 0 || n > u64::from(max) {
                    return Err(self.err(pos, "chirality permutation number out of range"));
                }
                n as u8
            }
        };
        Ok(match code {
            b'H' => {
                if n == 2 {
                    ChiralTag::Cw
                } else {
                    ChiralTag::Ccw
                }
            }
            b'P' => ChiralTag::SquarePlanar(n),
            b'B' => ChiralTag::TrigonalBipyramidal(n),
            b'O' => ChiralTag::Octahedral(n),
            _ => ChiralTag::Allene(n),
        })
    }

    fn bracket_atom(&mut self) -> Result<(), ChemError> {
        let open = self.pos;
        self.pos += 1;
        let close = self.bytes[self.pos..self.end]
            .iter()
            .position(|&b| b == b']')
            .map(|i| self.pos + i);
        let Some(close) = close else {
            return Err(self.err(open, "'[' is never closed"));
        };
        // Parse only up to the closing bracket.
        let saved_end = self.end;
        self.end = close;
        let atom = self.bracket_contents(open);
        self.end = saved_end;
        let atom = atom?;
        if self.pos != close {
            return Err(self.unexpected(self.pos));
        }
        self.pos = close + 1;
        self.push_atom(atom)
    }

    fn bracket_contents(&mut self, open: usize) -> Result<Atom, ChemError> {
        let isotope = match self.number("isotope")? {
            None => None,
            Some(n) => Some(n as u16).filter(|&i| i != 0),
        };
        let (element, aromatic) = self.bracket_symbol()?;
        let chiral = if self.peek() == Some(b'@') {
            self.chirality()?
        } else {
            ChiralTag::Unspecified
        };
        let mut explicit_h = 0u8;
        if self.peek() == Some(b'H') {
            self.pos += 1;
            explicit_h = match self.number("hydrogen count")? {
                None => 1,
                Some(n) => n as u8,
            };
        }
        let mut charge = 0i8;
        if let Some(sign @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let magnitude = match self.number("charge")? {
                Some(n) => n,
                None if self.peek() == Some(sign) => {
                    self.pos += 1;
                    2
                }
                None => 1,
            };
            let value = magnitude as i64 * if sign == b'+' { 1 } else { -1 };
            charge = value as i8;
        }
        let mut map_number = None;
        if self.peek() == Some(b':') {
            let p = self.pos;
            self.pos += 1;
            map_number = match self.number("atom class")? {
                Some(n) => Some(n as u32),
                None => return Err(self.err(p, "':' in a bracket atom needs a number")),
            };
        }
        Ok(Atom {
            element,
            isotope,
            charge,
            explicit_h,
            no_implicit: true,
            aromatic,
            chiral,
            map_number,
            position: open,
            ..Atom::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bonds(m: &Mol) -> Vec<(usize, usize, BondType, BondDir)> {
        m.bonds
            .iter()
            .map(|b| (b.begin, b.end, b.kind, b.dir))
            .collect()
    }

    fn tags(s: &str) -> Vec<ChiralTag> {
        parse(s).unwrap().atoms.iter().map(|a| a.chiral).collect()
    }

    #[test]
    fn ring_closure_bonds_come_last_by_ring_number() {
        // RDKit: bonds (0,1) (1,2) (2,3) (3,4) (4,0) (2,0)
        let m = parse("C21CC2CC1").unwrap();
        let pairs: Vec<_> = m.bonds.iter().map(|b| (b.begin, b.end)).collect();
        assert_eq!(pairs, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (2, 0)]);
        assert_eq!(m.atom_bonds[0], [0, 4, 5]);
        assert!(m.bonds[4].ring_closure && !m.bonds[3].ring_closure);
        // Closures after a later fragment: (0,1) (1,2) (3,4) (2,0)
        let m = parse("C1CC1.CC").unwrap();
        let pairs: Vec<_> = m.bonds.iter().map(|b| (b.begin, b.end)).collect();
        assert_eq!(pairs, [(0, 1), (1, 2), (3, 4), (2, 0)]);
    }

    #[test]
    fn ring_bond_symbols_on_either_end() {
        use BondDir::*;
        use BondType::*;
        assert_eq!(bonds(&parse("C=1CC1").unwrap())[2], (0, 2, Double, None));
        assert_eq!(bonds(&parse("C1CC=1").unwrap())[2], (2, 0, Double, None));
        // The opening end wins when both give a type.
        assert_eq!(bonds(&parse("C-1CC=1").unwrap())[2], (0, 2, Single, None));
        assert_eq!(
            bonds(&parse("C=1CC/1").unwrap())[2],
            (0, 2, Double, EndDownRight)
        );
        assert_eq!(
            bonds(&parse("C/1CC1").unwrap())[2],
            (2, 0, Single, EndDownRight)
        );
        assert_eq!(
            bonds(&parse("C\\1CC/1").unwrap())[2],
            (2, 0, Single, EndUpRight)
        );
        assert_eq!(
            bonds(&parse("c/1cc1").unwrap())[2],
            (2, 0, Aromatic, EndDownRight)
        );
        assert_eq!(bonds(&parse("c1cccc-1").unwrap())[4], (4, 0, Single, None));
    }

    #[test]
    fn default_bond_types_and_directions() {
        use BondDir::*;
        use BondType::*;
        assert_eq!(bonds(&parse("cC").unwrap()), [(0, 1, Single, None)]);
        assert_eq!(bonds(&parse("cc").unwrap()), [(0, 1, Aromatic, None)]);
        assert_eq!(
            bonds(&parse("c/c").unwrap()),
            [(0, 1, Aromatic, EndUpRight)]
        );
        assert_eq!(bonds(&parse("C$C").unwrap()), [(0, 1, Quadruple, None)]);
        // `\\` (escaped backslash) reads as one `\`.
        let m = parse("C/C=C\\\\C").unwrap();
        assert_eq!(m.bonds[2].dir, EndDownRight);
        assert_eq!(bonds(&parse("C.C").unwrap()), []);
        assert_eq!(bonds(&parse("C1.C1").unwrap()), [(1, 0, Single, None)]);
    }

    #[test]
    fn unspecified_and_dative_bonds() {
        use BondDir::None;
        use BondType::*;
        // RDKit: `~` is an unspecified (zero-order) chain bond but a plain ring closure.
        assert_eq!(bonds(&parse("C~C").unwrap()), [(0, 1, Zero, None)]);
        assert_eq!(bonds(&parse("C~1CC1").unwrap())[2], (0, 2, Single, None));
        assert_eq!(bonds(&parse("C1CC~1").unwrap())[2], (2, 0, Single, None));
        // Dative bonds run from donor to acceptor.
        assert_eq!(bonds(&parse("N->[Fe]").unwrap()), [(0, 1, Dative, None)]);
        assert_eq!(bonds(&parse("[Fe]<-N").unwrap()), [(1, 0, Dative, None)]);
        assert_eq!(bonds(&parse("C->1CC1").unwrap())[2], (0, 2, Dative, None));
        assert_eq!(bonds(&parse("C1CC<-1").unwrap())[2], (0, 2, Dative, None));
        for s in ["C-<C", "C->", "C-~C", "C~=C", "C<C"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn bracket_atoms() {
        let m = parse("[13CH3:7][NH4+][O--][Fe+3][se][Uuo][*H][C-15]").unwrap();
        let a = &m.atoms;
        assert_eq!(
            (a[0].element, a[0].isotope, a[0].explicit_h),
            (6, Some(13), 3)
        );
        assert_eq!(
            (a[0].map_number, a[0].no_implicit, a[0].position),
            (Some(7), true, 0)
        );
        assert_eq!((a[1].element, a[1].charge, a[1].explicit_h), (7, 1, 4));
        assert_eq!(a[2].charge, -2);
        assert_eq!((a[3].element, a[3].charge), (26, 3));
        assert_eq!((a[4].element, a[4].aromatic), (34, true));
        assert_eq!(a[5].element, 118);
        assert_eq!((a[6].element, a[6].explicit_h), (0, 1));
        assert_eq!(a[7].charge, -15);
        // RDKit wraps out-of-range values into the stored integer types.
        assert_eq!(parse("[99999C]").unwrap().atoms[0].isotope, Some(34463));
        assert_eq!(parse("[C+999]").unwrap().atoms[0].charge, -25);
        assert_eq!(parse("[CH999]").unwrap().atoms[0].explicit_h, 231);
        let m = parse("ClBr[Sc]Sc").unwrap();
        let z: Vec<u8> = m.atoms.iter().map(|a| a.element).collect();
        assert_eq!(z, [17, 35, 21, 16, 6]);
    }

    #[test]
    fn chirality_classes() {
        use ChiralTag::*;
        assert_eq!(tags("[C@TH2]"), [Cw]);
        assert_eq!(tags("[C@TH]"), [Ccw]);
        assert_eq!(tags("[C@SP3]"), [SquarePlanar(3)]);
        assert_eq!(tags("[C@TB20]"), [TrigonalBipyramidal(20)]);
        assert_eq!(tags("[C@OH30]"), [Octahedral(30)]);
        assert_eq!(tags("[C@AL2]"), [Allene(2)]);
    }

    #[test]
    fn chiral_tags_match_rdkit() {
        use ChiralTag::*;
        // Expected values from RDKit 2026.09 atom.GetChiralTag() (sanitize=False).
        assert_eq!(tags("F[C@H](Cl)Br")[1], Ccw);
        assert_eq!(tags("[C@H](F)(Cl)Br")[0], Cw);
        assert_eq!(tags("C.[C@H](F)(Cl)Br")[1], Cw);
        assert_eq!(tags("C1.[C@H]1(Cl)Br")[1], Cw);
        assert_eq!(tags("C[C@]2(F)CCC2")[1], Ccw);
        assert_eq!(tags("C[C@]2CCC2")[1], Ccw);
        assert_eq!(tags("[C@]2(C)CCC2")[0], Cw);
        assert_eq!(tags("C=[C@]1CCC1")[1], Cw);
        assert_eq!(tags("C[C@](Cl)2CC2")[1], Cw);
        assert_eq!(tags("C2CC[N@H]2")[3], Ccw);
        assert_eq!(tags("C1CC[C@@]1(C)")[3], Cw);
        assert_eq!(tags("C[C@]12CC.C1.C2")[1], Ccw);
    }

    #[test]
    fn whitespace_and_empty_input() {
        assert_eq!(parse("").unwrap().atoms.len(), 0);
        assert_eq!(parse("CC name").unwrap().atoms.len(), 2);
        assert_eq!(parse(" C").unwrap().atoms[0].position, 1);
        assert_eq!(parse("C\nC(").unwrap().atoms.len(), 1);
        assert!(parse(" ").is_err());
        assert!(parse(" C C").is_err());
        assert!(parse("C\rC").is_err());
    }

    #[test]
    fn syntax_errors_with_positions() {
        let e = parse("C1CC").unwrap_err();
        assert_eq!(
            e.message,
            "ring bond 1 opened at position 1 is never closed"
        );
        assert_eq!((e.kind, e.position), (ErrorKind::Syntax, Some(1)));
        let cases: &[(&str, usize)] = &[
            ("C(", 1),
            ("C)", 1),
            ("C==C", 2),
            ("C=", 1),
            ("=C", 0),
            ("C..C", 2),
            ("C.", 1),
            ("C()C", 2),
            ("C11", 2),
            ("C12CCC12", 7),
            ("C1(C1)", 4),
            ("C((C))", 2),
            ("C=(C)C", 1),
            ("[C", 0),
            ("[Xx]", 1),
            ("[C+-]", 3),
            ("[C@SP4]", 2),
            ("CX", 1),
            ("Cé", 1),
            ("C%1C", 1),
            ("[C:2147483640]", 3),
        ];
        for &(s, pos) in cases {
            let e = parse(s).unwrap_err();
            assert_eq!(e.position, Some(pos), "{s}: {}", e.message);
        }
    }

    #[test]
    fn accepted_oddities() {
        for s in [
            "C(C)1CC1",
            "C(C.C)C",
            "C%(01)CC1",
            "C0CC0",
            "C=1CC-1",
            "[0C]",
            "[C+0]",
        ] {
            assert!(parse(s).is_ok(), "{s}");
        }
        assert_eq!(parse("[0C]").unwrap().atoms[0].isotope, None);
    }
}
