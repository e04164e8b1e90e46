//! `selfies`' own SMILES reader. It differs from RDKit's in what it accepts (no `*`, no
//! `$`, only `@`/`@@`, at most one hydrogen digit, no ring bonds across `.`, no second
//! bond between bonded atoms) and, above all, in how it orders each atom's out-bonds,
//! which the encoder's output follows; so it is reproduced here rather than derived from
//! RDKit's graph.

use super::atom::{bond_of_char, organic, smiles_bracket_atom, SfAtom};
use super::graph::Graph;
use crate::chem::{ChemError, ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Atom,
    Branch,
    Ring,
    Dot,
}

/// One SMILES token: an atom, branch bracket, ring number or dot, with the bond character
/// written before it (byte offsets into the SMILES).
#[derive(Debug, Clone, Copy)]
struct Tok {
    bond: Option<u8>,
    start: usize,
    end: usize,
    kind: Kind,
}

/// A ring number waiting for its partner.
struct OpenRing<'a> {
    label: &'a str,
    tok: Tok,
    atom: usize,
    slot: usize,
}

fn syntax(smiles: &str, byte_pos: usize, message: impl Into<String>) -> ChemError {
    let pos = smiles
        .get(..byte_pos)
        .map_or(byte_pos, |prefix| prefix.chars().count());
    ChemError::at(ErrorKind::Syntax, smiles, pos, message)
}

fn tokenize(smiles: &str) -> Result<Vec<Tok>, ChemError> {
    let b = smiles.as_bytes();
    let mut toks = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            toks.push(Tok {
                bond: None,
                start: i,
                end: i + 1,
                kind: Kind::Dot,
            });
            i += 1;
            continue;
        }
        let bond = match b[i] {
            c @ (b'-' | b'/' | b'\\' | b':' | b'=' | b'#') => {
                i += 1;
                Some(c)
            }
            _ => None,
        };
        let Some(&c) = b.get(i) else {
            return Err(syntax(smiles, i - 1, "hanging bond"));
        };
        let (end, kind) = match c {
            c if c.is_ascii_alphabetic() => {
                let two = matches!(&b[i..], [b'B', b'r', ..] | [b'C', b'l', ..]);
                (if two { i + 2 } else { i + 1 }, Kind::Atom)
            }
            b'[' => match smiles[i + 1..].find(']') {
                Some(r) => (i + 1 + r + 1, Kind::Atom),
                None => return Err(syntax(smiles, i, "hanging bracket [")),
            },
            b'(' | b')' => {
                if bond.is_some() {
                    return Err(syntax(smiles, i - 1, "hanging bond"));
                }
                (i + 1, Kind::Branch)
            }
            c if c.is_ascii_digit() => (i + 1, Kind::Ring),
            b'%' => {
                let two_digits = b.len() >= i + 3 && b[i + 1..i + 3].iter().all(u8::is_ascii_digit);
                if !two_digits {
                    return Err(syntax(smiles, i, "invalid ring number after '%'"));
                }
                (i + 3, Kind::Ring)
            }
            _ => {
                let symbol = smiles[i..].chars().next().unwrap_or('?');
                return Err(syntax(smiles, i, format!("unrecognized symbol '{symbol}'")));
            }
        };
        toks.push(Tok {
            bond,
            start: i,
            end,
            kind,
        });
        i = end;
    }
    Ok(toks)
}

/// Reads `smiles` into a `selfies` molecular graph (aromatic, not yet kekulized).
pub(super) fn read(smiles: &str) -> Result<Graph, ChemError> {
    if smiles.is_empty() {
        return Err(ChemError::whole(ErrorKind::Syntax, smiles, "empty SMILES"));
    }
    let toks = tokenize(smiles)?;
    let mut graph = Graph::default();
    let mut pos = 0;
    while pos < toks.len() {
        pos = read_fragment(&mut graph, smiles, &toks, pos)?;
    }
    Ok(graph)
}

fn atom_of(symbol: &str) -> Option<SfAtom> {
    if let Some(inner) = symbol.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return smiles_bracket_atom(inner);
    }
    if let Some(element) = organic(symbol) {
        return Some(SfAtom::plain(element, false));
    }
    let upper = match symbol {
        "b" => "B",
        "c" => "C",
        "n" => "N",
        "o" => "O",
        "p" => "P",
        "s" => "S",
        _ => return None,
    };
    Some(SfAtom::plain(upper, true))
}

/// Reads tokens from `pos` up to the next dot (or the end); returns the next position.
fn read_fragment(
    graph: &mut Graph,
    smiles: &str,
    toks: &[Tok],
    mut pos: usize,
) -> Result<usize, ChemError> {
    let mut prev_stack: Vec<Option<usize>> = vec![None];
    let mut branch_stack: Vec<Tok> = Vec::new();
    let mut rings: Vec<OpenRing<'_>> = Vec::new();
    let mut chain_start = true;
    let mut last: Option<Tok> = None;
    while let Some(&tok) = toks.get(pos) {
        pos += 1;
        last = Some(tok);
        let symbol = &smiles[tok.start..tok.end];
        let prev = prev_stack.last().copied().flatten();
        match tok.kind {
            Kind::Dot => break,
            Kind::Atom => {
                let atom = atom_of(symbol).ok_or_else(|| {
                    syntax(smiles, tok.start, format!("invalid atom symbol '{symbol}'"))
                })?;
                let aromatic = atom.aromatic;
                let idx = graph.add_atom(atom, prev.is_none());
                if let Some(p) = prev {
                    let (mut order, stereo) = bond_of_char(tok.bond);
                    if tok.bond.is_none() && aromatic && graph.atoms[p].aromatic {
                        order = 3;
                    }
                    graph.add_bond(p, idx, order, stereo);
                }
                if let Some(top) = prev_stack.last_mut() {
                    *top = Some(idx);
                }
                chain_start = false;
            }
            _ if chain_start => {
                return Err(syntax(
                    smiles,
                    tok.start,
                    "SMILES chain begins with non-atom",
                ));
            }
            Kind::Branch if symbol == "(" => {
                branch_stack.push(tok);
                prev_stack.push(prev);
                chain_start = true;
            }
            Kind::Branch => {
                if branch_stack.pop().is_none() {
                    return Err(syntax(smiles, tok.start, "hanging ')' bracket"));
                }
                prev_stack.pop();
            }
            Kind::Ring => {
                let Some(atom) = prev else {
                    return Err(syntax(smiles, tok.start, "ring number without an atom"));
                };
                let label = symbol;
                match rings.iter().position(|r| r.label == label) {
                    None => {
                        let slot = graph.add_placeholder(atom);
                        rings.push(OpenRing {
                            label,
                            tok,
                            atom,
                            slot,
                        });
                    }
                    Some(k) => {
                        let open = rings.remove(k);
                        close_ring(graph, smiles, &open, tok, atom)?;
                    }
                }
            }
        }
    }
    if graph.len() == 0 {
        let at = last.map_or(smiles.len(), |t| t.start).saturating_sub(1);
        return Err(syntax(smiles, at, "empty SMILES fragment"));
    }
    if let Some(open) = branch_stack.last() {
        return Err(syntax(smiles, open.start, "hanging '(' bracket"));
    }
    if let Some(open) = rings.last() {
        return Err(syntax(
            smiles,
            open.tok.start,
            format!("hanging ring number '{}'", open.label),
        ));
    }
    Ok(pos)
}

fn close_ring(
    graph: &mut Graph,
    smiles: &str,
    open: &OpenRing<'_>,
    rtok: Tok,
    ratom: usize,
) -> Result<(), ChemError> {
    let latom = open.atom;
    if graph.has_bond(latom, ratom) {
        return Err(syntax(
            smiles,
            open.tok.start,
            "ring bond specified between already-bonded atoms",
        ));
    }
    if latom == ratom {
        // selfies accepts this but always fails later (an IndexError in its encoder).
        return Err(ChemError::at(
            ErrorKind::Unsupported,
            smiles,
            rtok.start,
            "ring bond from an atom to itself",
        ));
    }
    let (lchar, rchar) = (open.tok.bond, rtok.bond);
    let (first, second) = if lchar.is_none() {
        (rchar, lchar)
    } else {
        (lchar, rchar)
    };
    let stereo = |c: Option<u8>| matches!(c, Some(b'/' | b'\\'));
    if !(first == second || second.is_none() || (stereo(first) && stereo(second))) {
        return Err(syntax(smiles, open.tok.start, "mismatched ring bonds"));
    }
    let (mut lorder, lstereo) = bond_of_char(lchar);
    let (mut rorder, rstereo) = bond_of_char(rchar);
    if graph.atoms[latom].aromatic && graph.atoms[ratom].aromatic && first.is_none() {
        lorder = 3;
        rorder = 3;
    }
    graph.add_ring_bond(
        latom,
        ratom,
        lorder.max(rorder),
        lstereo,
        rstereo,
        Some(open.slot),
        None,
    );
    Ok(())
}
