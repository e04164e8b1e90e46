//! Atoms as the `selfies` package sees them: element, aromatic flag, isotope, chirality,
//! hydrogen count and charge; their bonding capacities under the default semantic
//! constraints; reading them from SMILES / SELFIES symbols and writing them back.

/// Every element symbol `selfies` accepts, sorted for binary search.
const ELEMENTS: [&str; 114] = [
    "Ac", "Ag", "Al", "Am", "Ar", "As", "At", "Au", "B", "Ba", "Be", "Bh", "Bi", "Bk", "Br", "C",
    "Ca", "Cd", "Ce", "Cf", "Cl", "Cm", "Cn", "Co", "Cr", "Cs", "Cu", "Db", "Ds", "Dy", "Er", "Es",
    "Eu", "F", "Fe", "Fl", "Fm", "Fr", "Ga", "Gd", "Ge", "H", "He", "Hf", "Hg", "Ho", "Hs", "I",
    "In", "Ir", "K", "Kr", "La", "Li", "Lr", "Lu", "Lv", "Md", "Mg", "Mn", "Mo", "Mt", "N", "Na",
    "Nb", "Nd", "Ne", "Ni", "No", "Np", "O", "Os", "P", "Pa", "Pb", "Pd", "Pm", "Po", "Pr", "Pt",
    "Pu", "Ra", "Rb", "Re", "Rf", "Rg", "Rh", "Rn", "Ru", "S", "Sb", "Sc", "Se", "Sg", "Si", "Sm",
    "Sn", "Sr", "Ta", "Tb", "Tc", "Te", "Th", "Ti", "Tl", "Tm", "U", "V", "W", "Xe", "Y", "Yb",
    "Zn", "Zr",
];

/// Lower-case symbols `selfies` reads as aromatic atoms.
const AROMATIC_SUBSET: [&str; 11] = ["al", "as", "b", "c", "n", "o", "p", "s", "se", "si", "te"];

/// The interned symbol of an element, if `symbol` names one.
pub(super) fn element(symbol: &str) -> Option<&'static str> {
    ELEMENTS.binary_search(&symbol).ok().map(|i| ELEMENTS[i])
}

/// The interned symbol of an element of the SMILES organic subset (the elements that may
/// be written without brackets), if `symbol` is one.
pub(super) fn organic(symbol: &str) -> Option<&'static str> {
    Some(match symbol {
        "B" => "B",
        "Br" => "Br",
        "C" => "C",
        "Cl" => "Cl",
        "F" => "F",
        "I" => "I",
        "N" => "N",
        "O" => "O",
        "P" => "P",
        "S" => "S",
        _ => return None,
    })
}

/// Tetrahedral chirality as written: `@` or `@@`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chirality {
    /// `@`
    At,
    /// `@@`
    AtAt,
}

impl Chirality {
    /// The opposite tag.
    pub(super) fn inverted(self) -> Self {
        match self {
            Chirality::At => Chirality::AtAt,
            Chirality::AtAt => Chirality::At,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Chirality::At => "@",
            Chirality::AtAt => "@@",
        }
    }
}

/// One atom of a `selfies` molecular graph.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SfAtom {
    /// Capitalised element symbol.
    pub element: &'static str,
    /// Aromatic flag (cleared by kekulization).
    pub aromatic: bool,
    /// Mass number, if written.
    pub isotope: Option<u64>,
    /// Chirality tag, if written.
    pub chirality: Option<Chirality>,
    /// Hydrogen count: `None` for unbracketed atoms, `Some(0)` for a bracket atom without `H`.
    pub h_count: Option<u8>,
    /// Formal charge.
    pub charge: i64,
}

impl SfAtom {
    /// An unbracketed atom (no isotope, chirality, hydrogen count or charge).
    pub(super) fn plain(element: &'static str, aromatic: bool) -> Self {
        Self {
            element,
            aromatic,
            isotope: None,
            chirality: None,
            h_count: None,
            charge: 0,
        }
    }

    /// Number of bonds the atom may make: the default constraint minus its hydrogens.
    pub(super) fn capacity(&self) -> i64 {
        default_constraint(self.element, self.charge) - i64::from(self.h_count.unwrap_or(0))
    }

    /// Writes the atom as `selfies`' `atom_to_smiles` does, with or without brackets.
    pub(super) fn write(&self, brackets: bool, out: &mut String) {
        let plain = self.isotope.is_none()
            && self.chirality.is_none()
            && self.h_count.is_none()
            && self.charge == 0;
        if plain {
            out.push_str(self.element);
            return;
        }
        if brackets {
            out.push('[');
        }
        if let Some(iso) = self.isotope {
            out.push_str(&iso.to_string());
        }
        out.push_str(self.element);
        if let Some(c) = self.chirality {
            out.push_str(c.text());
        }
        match self.h_count {
            Some(0) => {
                if self.isotope.is_none()
                    && self.chirality.is_none()
                    && self.charge == 0
                    && organic(self.element).is_some()
                {
                    out.push_str("H0");
                }
            }
            Some(h) => {
                out.push('H');
                out.push_str(&h.to_string());
            }
            // `selfies` prints Python's `None` here; unreachable for atoms it builds.
            None => out.push_str("HNone"),
        }
        if self.charge != 0 {
            if self.charge > 0 {
                out.push('+');
            }
            out.push_str(&self.charge.to_string());
        }
        if brackets {
            out.push(']');
        }
    }
}

/// The bonding capacity of `element` with `charge` under `selfies`' default constraints.
pub(super) fn default_constraint(element: &str, charge: i64) -> i64 {
    match (element, charge) {
        ("H" | "F" | "Cl" | "Br" | "I", 0) => 1,
        ("B", 0) => 3,
        ("B", 1) => 2,
        ("B", -1) => 4,
        ("O", 0) => 2,
        ("O", 1) => 3,
        ("O", -1) => 1,
        ("N", 0) => 3,
        ("N", 1) => 4,
        ("N", -1) => 2,
        ("C", 0) => 4,
        ("C", 1 | -1) => 3,
        ("P", 0) => 5,
        ("P", 1) => 4,
        ("P", -1) => 6,
        ("S", 0) => 6,
        ("S", 1 | -1) => 5,
        _ => 8,
    }
}

/// Allowed valences of atoms that may be aromatic in `selfies`' kekulizer, and their
/// valence electron counts.
pub(super) fn aromatic_valences(element: &str) -> Option<(&'static [i64], i64)> {
    Some(match element {
        "B" | "Al" => (&[3], 3),
        "C" | "Si" => (&[4], 4),
        "N" | "P" | "As" => (&[3, 5], 5),
        "O" | "S" | "Se" | "Te" => (&[2, 4], 6),
        _ => return None,
    })
}

/// A small cursor over ASCII bytes, for the hand-written equivalents of `selfies`' regexes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        // Only ASCII digits were consumed, so this is valid UTF-8.
        std::str::from_utf8(&self.b[start..self.i]).unwrap_or("")
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

/// Integer value of a digit string as Python's `int()` reads it; `None` on overflow.
fn int_of(digits: &str) -> Option<u64> {
    digits.parse().ok()
}

fn signed(sign: u8, magnitude: u64) -> Option<i64> {
    let m = i64::try_from(magnitude).ok()?;
    Some(if sign == b'-' { -m } else { m })
}

/// Reads the inside of a SMILES bracket atom (`13CH3+`, without the brackets) as
/// `selfies`' `smiles_to_atom` does. `None` when `selfies` rejects it.
pub(super) fn smiles_bracket_atom(inner: &str) -> Option<SfAtom> {
    let mut cur = Cursor {
        b: inner.as_bytes(),
        i: 0,
    };
    let iso_digits = cur.digits();
    let start = cur.i;
    if !cur.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    cur.i += 1;
    if cur.peek().is_some_and(|c| c.is_ascii_lowercase()) {
        cur.i += 1;
    }
    let written = &inner[start..cur.i];
    let chirality = parse_chirality(&mut cur);
    let mut h_count = 0u8;
    if cur.eat(b'H') {
        h_count = match cur.peek() {
            Some(d) if d.is_ascii_digit() => {
                cur.i += 1;
                d - b'0'
            }
            _ => 1,
        };
    }
    let mut charge = 0i64;
    if let Some(sign @ (b'+' | b'-')) = cur.peek() {
        cur.i += 1;
        let digits = cur.digits();
        if digits.is_empty() {
            let mut n = 1u64;
            while cur.eat(sign) {
                n += 1;
            }
            charge = signed(sign, n)?;
        } else {
            charge = signed(sign, int_of(digits)?)?;
        }
    }
    if cur.eat(b':') && cur.digits().is_empty() {
        return None;
    }
    if !cur.done() {
        return None;
    }
    let aromatic = written.as_bytes()[0].is_ascii_lowercase() && AROMATIC_SUBSET.contains(&written);
    let mut capitalised = String::with_capacity(2);
    let mut chars = written.chars();
    if let Some(first) = chars.next() {
        capitalised.push(first.to_ascii_uppercase());
    }
    capitalised.extend(chars);
    let element = element(&capitalised)?;
    let isotope = if iso_digits.is_empty() {
        None
    } else {
        Some(int_of(iso_digits)?)
    };
    Some(SfAtom {
        element,
        aromatic,
        isotope,
        chirality,
        h_count: Some(h_count),
        charge,
    })
}

fn parse_chirality(cur: &mut Cursor<'_>) -> Option<Chirality> {
    if cur.eat(b'@') {
        if cur.eat(b'@') {
            Some(Chirality::AtAt)
        } else {
            Some(Chirality::At)
        }
    } else {
        None
    }
}

/// Bond order (in half units: 2 single, 3 aromatic, 4 double, 6 triple) and stereo
/// direction of a bond character, as `selfies`' `smiles_to_bond` reads it; anything
/// unknown (including no character) is a plain single bond.
pub(super) fn bond_of_char(c: Option<u8>) -> (u8, Option<u8>) {
    match c {
        Some(b'=') => (4, None),
        Some(b'#') => (6, None),
        Some(b':') => (3, None),
        Some(s @ (b'/' | b'\\')) => (2, Some(s)),
        _ => (2, None),
    }
}

/// Reads a SELFIES atom symbol such as `[=C]`, `[13CH1]` or `[C@@H1]` as `selfies`'
/// `process_atom_symbol` does: the bond char and the atom. `None` when `selfies` rejects it
/// (including atoms with more hydrogens than their capacity, such as `[CH5]`).
pub(super) fn selfies_atom(symbol: &str) -> Option<(Option<u8>, SfAtom)> {
    let inner = symbol.strip_prefix('[')?.strip_suffix(']')?;
    let mut cur = Cursor {
        b: inner.as_bytes(),
        i: 0,
    };
    let bond = match cur.peek() {
        Some(c @ (b'=' | b'#' | b'/' | b'\\')) => {
            cur.i += 1;
            Some(c)
        }
        _ => None,
    };
    let body = &inner[cur.i..];
    let iso_digits = cur.digits();
    let start = cur.i;
    if !cur.peek().is_some_and(|c| c.is_ascii_uppercase()) {
        return None;
    }
    cur.i += 1;
    if cur.peek().is_some_and(|c| c.is_ascii_lowercase()) {
        cur.i += 1;
    }
    let written = &inner[start..cur.i];
    let chirality = parse_chirality(&mut cur);
    let mut h_count = 0u8;
    if cur.eat(b'H') {
        match cur.peek() {
            Some(d) if d.is_ascii_digit() => {
                cur.i += 1;
                h_count = d - b'0';
            }
            _ => return None,
        }
    }
    let mut charge = 0i64;
    if let Some(sign @ (b'+' | b'-')) = cur.peek() {
        cur.i += 1;
        let start = cur.i;
        while cur.peek().is_some_and(|c| (b'1'..=b'9').contains(&c)) {
            cur.i += 1;
        }
        let digits = &inner[start..cur.i];
        if digits.is_empty() {
            return None;
        }
        charge = signed(sign, int_of(digits)?)?;
    }
    if !cur.done() {
        return None;
    }
    let atom = if let Some(element) = organic(body) {
        SfAtom::plain(element, false)
    } else {
        let isotope = if iso_digits.is_empty() {
            None
        } else {
            Some(int_of(iso_digits)?)
        };
        SfAtom {
            element: element(written)?,
            aromatic: false,
            isotope,
            chirality,
            h_count: Some(h_count),
            charge,
        }
    };
    if atom.capacity() < 0 {
        return None;
    }
    Some((bond, atom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smiles_text(inner: &str) -> Option<String> {
        let atom = smiles_bracket_atom(inner)?;
        let mut s = String::new();
        atom.write(true, &mut s);
        Some(s)
    }

    #[test]
    fn elements_are_sorted() {
        assert!(ELEMENTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(element("Cl"), Some("Cl"));
        assert_eq!(element("Xx"), None);
    }

    #[test]
    fn bracket_atoms_read_like_selfies() {
        // Expected strings printed by selfies 2.1.1 (encoder then decoder).
        assert_eq!(smiles_text("C").as_deref(), Some("[CH0]"));
        assert_eq!(smiles_text("013C").as_deref(), Some("[13C]"));
        assert_eq!(smiles_text("N+0").as_deref(), Some("[NH0]"));
        assert_eq!(smiles_text("NH4+").as_deref(), Some("[NH4+1]"));
        assert_eq!(smiles_text("Fe++").as_deref(), Some("[Fe+2]"));
        assert_eq!(smiles_text("cl").as_deref(), Some("[ClH0]"));
        assert_eq!(smiles_text("CH3:12").as_deref(), Some("[CH3]"));
        assert!(smiles_text("CH10").is_none());
        assert!(smiles_text("C@TH1").is_none());
        assert!(smiles_text("++2C").is_none());
        assert!(smiles_text("Xx").is_none());
        assert!(smiles_bracket_atom("se").is_some_and(|a| a.aromatic));
        assert!(smiles_bracket_atom("Se").is_some_and(|a| !a.aromatic));
    }

    #[test]
    fn selfies_atoms_read_like_selfies() {
        let (bond, atom) = selfies_atom("[=C]").unwrap();
        assert_eq!(bond, Some(b'='));
        assert_eq!(atom, SfAtom::plain("C", false));
        assert!(selfies_atom("[C+10]").is_none());
        assert!(selfies_atom("[CH]").is_none());
        assert!(selfies_atom("[CH5]").is_none());
        assert!(selfies_atom("[Xx]").is_none());
        let (_, atom) = selfies_atom("[C+11]").unwrap();
        assert_eq!(atom.charge, 11);
        assert_eq!(atom.capacity(), 8);
        let (_, atom) = selfies_atom("[CH4]").unwrap();
        assert_eq!(atom.capacity(), 0);
    }
}
