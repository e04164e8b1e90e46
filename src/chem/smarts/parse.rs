//! SMARTS text -> [`Pattern`].

use std::collections::HashMap;

use super::{AtomPrim, BondPrim, Expr, Pattern, PatternBond, SmartsError};
use crate::chem::elements;

/// Parses a SMARTS pattern.
pub fn parse(smarts: &str) -> Result<Pattern, SmartsError> {
    let mut p = Parser {
        text: smarts.as_bytes(),
        smarts,
        pos: 0,
        recursive: Vec::new(),
    };
    let mut pattern = p.pattern(false)?;
    if p.pos < p.text.len() {
        return Err(p.err("unexpected ')'"));
    }
    pattern.recursive = std::mem::take(&mut p.recursive);
    Ok(pattern)
}

struct Parser<'a> {
    text: &'a [u8],
    smarts: &'a str,
    pos: usize,
    /// Every recursive sub-pattern met so far, at any depth.
    recursive: Vec<Pattern>,
}

/// One open ring closure: the atom it starts at, its bond (if written) and where it was opened.
struct OpenRing {
    atom: usize,
    bond: Option<Expr<BondPrim>>,
    position: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> SmartsError {
        self.err_at(self.pos, message)
    }

    fn err_at(&self, position: usize, message: impl Into<String>) -> SmartsError {
        SmartsError {
            message: message.into(),
            position,
            smarts: self.smarts.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.text.get(self.pos + offset).copied()
    }

    /// Parses atoms, bonds, branches and ring closures until the end of the text or, inside a
    /// recursive pattern, the `)` that closes it (left unconsumed).
    fn pattern(&mut self, nested: bool) -> Result<Pattern, SmartsError> {
        let mut pat = Pattern {
            atoms: Vec::new(),
            bonds: Vec::new(),
            parent_bond: Vec::new(),
            closures: Vec::new(),
            recursive: Vec::new(),
        };
        let mut prev: Option<usize> = None;
        let mut branches: Vec<(usize, usize)> = Vec::new();
        let mut bond: Option<(Expr<BondPrim>, usize)> = None;
        let mut rings: HashMap<u32, OpenRing> = HashMap::new();
        while let Some(c) = self.peek() {
            match c {
                b'(' => {
                    let Some(p) = prev else {
                        return Err(self.err("branch opened before any atom"));
                    };
                    if bond.is_some() {
                        return Err(self.err("a bond cannot precede '('"));
                    }
                    branches.push((p, self.pos));
                    self.pos += 1;
                }
                b')' => {
                    if bond.is_some() {
                        return Err(self.err("bond without a following atom"));
                    }
                    match branches.pop() {
                        Some((p, _)) => {
                            prev = Some(p);
                            self.pos += 1;
                        }
                        None if nested => break,
                        None => return Err(self.err("unmatched ')'")),
                    }
                }
                b'-' | b'=' | b'#' | b':' | b'~' | b'@' | b'!' | b'&' | b',' | b';' | b'/'
                | b'\\' => {
                    if prev.is_none() {
                        return Err(self.err("bond before any atom"));
                    }
                    if bond.is_some() {
                        return Err(self.err("two bonds in a row"));
                    }
                    let start = self.pos;
                    bond = Some((self.bond_expr()?, start));
                }
                b'0'..=b'9' | b'%' => {
                    let start = self.pos;
                    let Some(atom) = prev else {
                        return Err(self.err("ring closure before any atom"));
                    };
                    let label = self.ring_label()?;
                    let this_bond = bond.take().map(|(b, _)| b);
                    match rings.remove(&label) {
                        None => {
                            rings.insert(
                                label,
                                OpenRing {
                                    atom,
                                    bond: this_bond,
                                    position: start,
                                },
                            );
                        }
                        Some(open) => {
                            if open.atom == atom {
                                return Err(self.err_at(start, "ring closure onto the same atom"));
                            }
                            let expr = match (open.bond, this_bond) {
                                (Some(a), Some(b)) if a != b => {
                                    return Err(self
                                        .err_at(start, "ring closure bonds disagree on both ends"))
                                }
                                (Some(a), _) => a,
                                (None, Some(b)) => b,
                                (None, None) => Expr::Prim(BondPrim::SingleOrAromatic),
                            };
                            let (a, b) = (open.atom.min(atom), open.atom.max(atom));
                            let bi = pat.bonds.len();
                            pat.bonds.push(PatternBond { a, b, expr });
                            pat.closures[b].push(bi);
                        }
                    }
                }
                b'.' => return Err(self.err("disconnected patterns ('.') are not supported")),
                _ => {
                    let atom_expr = self.atom()?;
                    let idx = pat.atoms.len();
                    pat.atoms.push(atom_expr);
                    pat.closures.push(Vec::new());
                    match prev {
                        None => {
                            if !pat.bonds.is_empty() || idx != 0 {
                                return Err(self.err("disconnected patterns are not supported"));
                            }
                            pat.parent_bond.push(None);
                        }
                        Some(p) => {
                            let expr = bond
                                .take()
                                .map_or(Expr::Prim(BondPrim::SingleOrAromatic), |(b, _)| b);
                            let bi = pat.bonds.len();
                            pat.bonds.push(PatternBond { a: p, b: idx, expr });
                            pat.parent_bond.push(Some(bi));
                        }
                    }
                    prev = Some(idx);
                }
            }
        }
        if let Some((_, at)) = bond {
            return Err(self.err_at(at, "bond without a following atom"));
        }
        if let Some((_, at)) = branches.pop() {
            return Err(self.err_at(at, "branch '(' is never closed"));
        }
        if let Some(open) = rings.values().min_by_key(|r| r.position) {
            return Err(self.err_at(open.position, "ring closure is never closed"));
        }
        if pat.atoms.is_empty() {
            return Err(self.err("empty pattern"));
        }
        Ok(pat)
    }

    fn ring_label(&mut self) -> Result<u32, SmartsError> {
        if self.peek() == Some(b'%') {
            let start = self.pos;
            self.pos += 1;
            let d1 = self.peek().filter(u8::is_ascii_digit);
            let d2 = self.peek_at(1).filter(u8::is_ascii_digit);
            match (d1, d2) {
                (Some(a), Some(b)) => {
                    self.pos += 2;
                    Ok(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
                }
                _ => Err(self.err_at(start, "'%' must be followed by two digits")),
            }
        } else {
            let d = self.text[self.pos] - b'0';
            self.pos += 1;
            Ok(u32::from(d))
        }
    }

    // ---- bonds -------------------------------------------------------------------------

    fn bond_expr(&mut self) -> Result<Expr<BondPrim>, SmartsError> {
        self.low(Self::bond_unary, is_bond_char)
    }

    fn bond_unary(&mut self) -> Result<Expr<BondPrim>, SmartsError> {
        let Some(c) = self.peek() else {
            return Err(self.err("bond expression ends early"));
        };
        self.pos += 1;
        let prim = match c {
            b'!' => return Ok(Expr::Not(Box::new(self.bond_unary()?))),
            b'-' => BondPrim::Single,
            b'=' => BondPrim::Double,
            b'#' => BondPrim::Triple,
            b':' => BondPrim::Aromatic,
            b'~' => BondPrim::Any,
            b'@' => BondPrim::Ring,
            b'/' | b'\\' => {
                self.pos -= 1;
                return Err(self.err("directional bonds ('/', '\\') are not supported"));
            }
            _ => {
                self.pos -= 1;
                return Err(self.err("expected a bond primitive"));
            }
        };
        Ok(Expr::Prim(prim))
    }

    // ---- shared precedence levels ------------------------------------------------------

    /// `;`-separated conjunction (lowest precedence).
    fn low<P>(
        &mut self,
        unary: fn(&mut Self) -> Result<Expr<P>, SmartsError>,
        continues: fn(u8) -> bool,
    ) -> Result<Expr<P>, SmartsError> {
        let mut parts = vec![self.or(unary, continues)?];
        while self.peek() == Some(b';') {
            self.pos += 1;
            parts.push(self.or(unary, continues)?);
        }
        Ok(collapse(parts, Expr::And))
    }

    /// `,`-separated disjunction.
    fn or<P>(
        &mut self,
        unary: fn(&mut Self) -> Result<Expr<P>, SmartsError>,
        continues: fn(u8) -> bool,
    ) -> Result<Expr<P>, SmartsError> {
        let mut parts = vec![self.high(unary, continues)?];
        while self.peek() == Some(b',') {
            self.pos += 1;
            parts.push(self.high(unary, continues)?);
        }
        Ok(collapse(parts, Expr::Or))
    }

    /// `&`-separated or juxtaposed conjunction (highest binary precedence).
    fn high<P>(
        &mut self,
        unary: fn(&mut Self) -> Result<Expr<P>, SmartsError>,
        continues: fn(u8) -> bool,
    ) -> Result<Expr<P>, SmartsError> {
        let mut parts = vec![unary(self)?];
        loop {
            match self.peek() {
                Some(b'&') => {
                    self.pos += 1;
                    parts.push(unary(self)?);
                }
                Some(c) if c != b',' && c != b';' && continues(c) => parts.push(unary(self)?),
                _ => break,
            }
        }
        Ok(collapse(parts, Expr::And))
    }

    // ---- atoms -------------------------------------------------------------------------

    fn atom(&mut self) -> Result<Expr<AtomPrim>, SmartsError> {
        let Some(c) = self.peek() else {
            return Err(self.err("expected an atom"));
        };
        if c == b'[' {
            let start = self.pos;
            self.pos += 1;
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.err("isotopes in SMARTS are not supported"));
            }
            let expr = self.low(Self::atom_unary, |c| c != b']')?;
            if self.peek() != Some(b']') {
                if self.peek().is_none() {
                    return Err(self.err_at(start, "bracket atom '[' is never closed"));
                }
                return Err(self.err("unexpected character in bracket atom"));
            }
            self.pos += 1;
            return Ok(expr);
        }
        let prim = match c {
            b'*' => AtomPrim::Any,
            b'a' => AtomPrim::Aromatic,
            b'A' => AtomPrim::Aliphatic,
            b'C' if self.peek_at(1) == Some(b'l') => {
                self.pos += 2;
                return Ok(Expr::Prim(AtomPrim::Element {
                    z: 17,
                    aromatic: false,
                }));
            }
            b'B' if self.peek_at(1) == Some(b'r') => {
                self.pos += 2;
                return Ok(Expr::Prim(AtomPrim::Element {
                    z: 35,
                    aromatic: false,
                }));
            }
            b'B' | b'C' | b'N' | b'O' | b'P' | b'S' | b'F' | b'I' => AtomPrim::Element {
                z: elements::from_symbol(&(c as char).to_string()).unwrap_or(0),
                aromatic: false,
            },
            b'b' | b'c' | b'n' | b'o' | b'p' | b's' => AtomPrim::Element {
                z: elements::from_symbol(&(c.to_ascii_uppercase() as char).to_string())
                    .unwrap_or(0),
                aromatic: true,
            },
            _ => return Err(self.err(format!("unexpected character '{}'", c as char))),
        };
        self.pos += 1;
        Ok(Expr::Prim(prim))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut v: u32 = 0;
        while let Some(d) = self.peek().filter(u8::is_ascii_digit) {
            v = v.saturating_mul(10).saturating_add(u32::from(d - b'0'));
            self.pos += 1;
        }
        (self.pos > start).then_some(v)
    }

    fn small(&self, v: u32, at: usize) -> Result<u8, SmartsError> {
        u8::try_from(v).map_err(|_| self.err_at(at, "number too large"))
    }

    fn atom_unary(&mut self) -> Result<Expr<AtomPrim>, SmartsError> {
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.err("bracket atom ends early"));
        };
        if c == b'!' {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.atom_unary()?)));
        }
        let prim = match c {
            b'*' => {
                self.pos += 1;
                AtomPrim::Any
            }
            b'#' => {
                self.pos += 1;
                let n = self
                    .number()
                    .ok_or_else(|| self.err("'#' must be followed by an atomic number"))?;
                AtomPrim::AtomicNum(self.small(n, start)?)
            }
            b'+' | b'-' => {
                self.pos += 1;
                let sign: i32 = if c == b'+' { 1 } else { -1 };
                let mut magnitude: i32 = 1;
                if let Some(n) = self.number() {
                    magnitude = i32::try_from(n).unwrap_or(i32::MAX);
                } else {
                    while self.peek() == Some(c) {
                        self.pos += 1;
                        magnitude += 1;
                    }
                }
                let q = i8::try_from(sign * magnitude)
                    .map_err(|_| self.err_at(start, "charge out of range"))?;
                AtomPrim::Charge(q)
            }
            b'$' => {
                if self.peek_at(1) != Some(b'(') {
                    return Err(self.err("'$' must be followed by '('"));
                }
                self.pos += 2;
                let sub = self.pattern(true)?;
                if self.peek() != Some(b')') {
                    return Err(self.err_at(start, "recursive SMARTS '$(' is never closed"));
                }
                self.pos += 1;
                self.recursive.push(sub);
                AtomPrim::Recursive(self.recursive.len() - 1)
            }
            b'@' => return Err(self.err("chirality in SMARTS is not supported")),
            b':' => return Err(self.err("atom maps in SMARTS are not supported")),
            b'a' if self.peek_at(1) == Some(b's') => {
                self.pos += 2;
                AtomPrim::Element {
                    z: 33,
                    aromatic: true,
                }
            }
            b's' if self.peek_at(1) == Some(b'e') => {
                self.pos += 2;
                AtomPrim::Element {
                    z: 34,
                    aromatic: true,
                }
            }
            b'a' => {
                self.pos += 1;
                AtomPrim::Aromatic
            }
            b'b' | b'c' | b'n' | b'o' | b'p' | b's' => {
                self.pos += 1;
                AtomPrim::Element {
                    z: elements::from_symbol(&(c.to_ascii_uppercase() as char).to_string())
                        .unwrap_or(0),
                    aromatic: true,
                }
            }
            b'A'..=b'Z' => return self.upper_primitive(),
            _ => {
                return Err(self.err(format!(
                    "unsupported or unexpected '{}' in bracket atom",
                    c as char
                )))
            }
        };
        Ok(Expr::Prim(prim))
    }

    /// An upper-case primitive: a two-letter element, `H<n>`, `D<n>`, `X<n>`, `R<n>`, `A`, or a
    /// one-letter element.
    fn upper_primitive(&mut self) -> Result<Expr<AtomPrim>, SmartsError> {
        let start = self.pos;
        let c = self.text[self.pos];
        if let Some(l) = self.peek_at(1).filter(u8::is_ascii_lowercase) {
            let sym = format!("{}{}", c as char, l as char);
            if let Some(z) = elements::from_symbol(&sym) {
                self.pos += 2;
                return Ok(Expr::Prim(AtomPrim::Element { z, aromatic: false }));
            }
        }
        self.pos += 1;
        let counted = |p: &mut Self, default: u32| -> Result<u8, SmartsError> {
            let n = p.number().unwrap_or(default);
            p.small(n, start)
        };
        let prim = match c {
            b'H' => {
                // `[H]`, `[H+]`: a hydrogen atom; elsewhere a hydrogen count.
                let first = start > 0 && self.text[start - 1] == b'[';
                if first && matches!(self.peek(), Some(b']' | b'+' | b'-')) {
                    AtomPrim::AtomicNum(1)
                } else {
                    AtomPrim::HCount(counted(self, 1)?)
                }
            }
            b'D' => AtomPrim::Degree(counted(self, 1)?),
            b'X' => AtomPrim::TotalConnections(counted(self, 1)?),
            b'R' => match self.number() {
                None => AtomPrim::InRing,
                Some(n) => AtomPrim::RingCount(self.small(n, start)?),
            },
            b'A' => AtomPrim::Aliphatic,
            _ => match elements::from_symbol(&(c as char).to_string()) {
                Some(z) => AtomPrim::Element { z, aromatic: false },
                None => return Err(self.err_at(start, format!("unknown element '{}'", c as char))),
            },
        };
        Ok(Expr::Prim(prim))
    }
}

fn is_bond_char(c: u8) -> bool {
    matches!(
        c,
        b'-' | b'=' | b'#' | b':' | b'~' | b'@' | b'!' | b'/' | b'\\'
    )
}

/// One part stays itself; several are joined with `join`.
fn collapse<P>(mut parts: Vec<Expr<P>>, join: fn(Vec<Expr<P>>) -> Expr<P>) -> Expr<P> {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        join(parts)
    }
}
