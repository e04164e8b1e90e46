//! SELFIES -> SMILES, as `selfies.decoder(selfies)` (default constraints).

use super::atom::{bond_of_char, selfies_atom};
use super::graph::Graph;
use super::{index_of_symbols, split_symbols, writer, MAX_NESTING};
use crate::chem::{ChemError, ErrorKind};

/// A ring symbol's request, resolved after the whole string is read.
struct RingRequest {
    left: usize,
    right: usize,
    /// Bond order (1..=3).
    order: i64,
    stereo: (Option<u8>, Option<u8>),
}

/// The symbols of one dot-separated part, `[nop]` left out, consumed front to back.
struct Symbols<'a> {
    items: Vec<&'a str>,
    pos: usize,
}

impl<'a> Symbols<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let s = self.items.get(self.pos).copied();
        self.pos += 1;
        s
    }
}

/// Translates a SELFIES string into SMILES exactly as `selfies.decoder` (version 2.1.1,
/// default semantic constraints) does, failing exactly where it raises `DecoderError`.
pub fn decode(selfies: &str) -> Result<String, ChemError> {
    let mut graph = Graph::default();
    let mut rings = Vec::new();
    for part in selfies.split('.') {
        let items = split_symbols(part)
            .map_err(|at| {
                ChemError::whole(
                    ErrorKind::Syntax,
                    selfies,
                    format!(
                        "malformed SELFIES string, hanging '[' bracket in part starting at {at}"
                    ),
                )
            })?
            .into_iter()
            .filter(|s| *s != "[nop]")
            .collect();
        let mut symbols = Symbols { items, pos: 0 };
        let mut dec = Decoder {
            graph: &mut graph,
            rings: &mut rings,
            input: selfies,
        };
        dec.derive(&mut symbols, None, 0, None, 0)?;
    }
    form_rings(&mut graph, &rings);
    Ok(writer::write(&graph))
}

struct Decoder<'g, 'i> {
    graph: &'g mut Graph,
    rings: &'g mut Vec<RingRequest>,
    input: &'i str,
}

/// Python's `symbol[-4:-2]`, on characters.
fn tail_pair(symbol: &str) -> &str {
    let mut ends = symbol.char_indices().rev().map(|(i, _)| i);
    let end = ends.nth(1);
    let start = ends.nth(1);
    match (start, end) {
        (Some(s), Some(e)) => &symbol[s..e],
        (None, Some(e)) => &symbol[..e],
        _ => "",
    }
}

/// `[BranchL]`, `[=BranchL]`, `[#BranchL]`: (bond order, number of index symbols).
fn branch_symbol(symbol: &str) -> Option<(i64, usize)> {
    let rest = symbol.strip_prefix('[')?;
    let (order, rest) = match rest.as_bytes().first() {
        Some(b'=') => (2, &rest[1..]),
        Some(b'#') => (3, &rest[1..]),
        _ => (1, rest),
    };
    let n = match rest {
        "Branch1]" => 1,
        "Branch2]" => 2,
        "Branch3]" => 3,
        _ => return None,
    };
    Some((order, n))
}

/// A ring symbol read: bond order, number of index symbols, stereo at each end.
type RingSymbol = (i64, usize, (Option<u8>, Option<u8>));

/// `[RingL]`, `[=RingL]`, `[#RingL]` and `[xyRingL]` with `x`, `y` in `-`, `/`, `\`
/// (not both `-`).
fn ring_symbol(symbol: &str) -> Option<RingSymbol> {
    let inner = symbol.strip_prefix('[')?.strip_suffix(']')?;
    let pos = inner.find("Ring")?;
    let n = match &inner[pos + 4..] {
        "1" => 1,
        "2" => 2,
        "3" => 3,
        _ => return None,
    };
    let stereo = |c: u8| (c != b'-').then_some(c);
    match &inner.as_bytes()[..pos] {
        [] => Some((1, n, (None, None))),
        [b'='] => Some((2, n, (None, None))),
        [b'#'] => Some((3, n, (None, None))),
        [l @ (b'-' | b'/' | b'\\'), r @ (b'-' | b'/' | b'\\')] if !(*l == b'-' && *r == b'-') => {
            Some((1, n, (stereo(*l), stereo(*r))))
        }
        _ => None,
    }
}

impl Decoder<'_, '_> {
    fn invalid(&self, symbol: &str) -> ChemError {
        ChemError::whole(
            ErrorKind::Syntax,
            self.input,
            format!("invalid SELFIES symbol '{}'", crate::chem::excerpt(symbol)),
        )
    }

    fn read_index(symbols: &mut Symbols<'_>, n: usize) -> usize {
        let mut index_syms = [""; 3];
        for slot in index_syms.iter_mut().take(n) {
            *slot = symbols.next().unwrap_or("");
        }
        index_of_symbols(&index_syms[..n])
    }

    /// `selfies`' `_derive_mol_from_symbols`: reads at most `max` symbols (all when `None`)
    /// starting in `state` from atom `root`; returns the number of symbols consumed.
    fn derive(
        &mut self,
        symbols: &mut Symbols<'_>,
        max: Option<usize>,
        init_state: i64,
        root: Option<usize>,
        depth: usize,
    ) -> Result<usize, ChemError> {
        if depth > MAX_NESTING {
            return Err(ChemError::whole(
                ErrorKind::Unsupported,
                self.input,
                "branches nested too deeply",
            ));
        }
        let mut n = 0usize;
        let mut state = init_state;
        let mut prev = root;
        while max.is_none_or(|m| n < m) {
            let Some(symbol) = symbols.next() else {
                break;
            };
            n += 1;
            let pair = tail_pair(symbol);
            let next_state: Option<i64> = if pair == "ch" {
                let (btype, l) = branch_symbol(symbol).ok_or_else(|| self.invalid(symbol))?;
                if state <= 1 {
                    Some(state)
                } else {
                    let branch_state = (state - 1).min(btype);
                    let q = Self::read_index(symbols, l);
                    n += l + self.derive(symbols, Some(q + 1), branch_state, prev, depth + 1)?;
                    Some(state - branch_state)
                }
            } else if pair == "ng" {
                let (rtype, l, stereo) = ring_symbol(symbol).ok_or_else(|| self.invalid(symbol))?;
                if state == 0 {
                    Some(0)
                } else {
                    let order = rtype.min(state);
                    let q = Self::read_index(symbols, l);
                    n += l;
                    if let Some(right) = prev {
                        self.rings.push(RingRequest {
                            left: right.saturating_sub(q + 1),
                            right,
                            order,
                            stereo,
                        });
                    }
                    (state - order > 0).then_some(state - order)
                }
            } else if symbol.contains("eps") {
                (state == 0).then_some(0)
            } else {
                let (bond, atom) = selfies_atom(symbol).ok_or_else(|| self.invalid(symbol))?;
                let cap = atom.capacity();
                let (order2, stereo) = bond_of_char(bond);
                let mut order = i64::from(order2 / 2);
                if state == 0 {
                    order = 0;
                }
                order = order.min(state).min(cap);
                let left = cap - order;
                if order == 0 {
                    if state == 0 {
                        prev = Some(self.graph.add_atom(atom, true));
                    }
                } else if let Some(p) = prev {
                    let idx = self.graph.add_atom(atom, false);
                    self.graph.add_bond(p, idx, (2 * order) as u8, stereo);
                    prev = Some(idx);
                }
                (left > 0).then_some(left)
            };
            match next_state {
                Some(s) => state = s,
                None => break,
            }
        }
        while max.is_none_or(|m| n < m) && symbols.next().is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// `selfies`' `_form_rings_bilocally`: adds (or strengthens) the requested ring bonds where
/// both atoms have capacity left.
fn form_rings(graph: &mut Graph, rings: &[RingRequest]) {
    let mut made = vec![0usize; graph.len()];
    for ring in rings {
        let (l, r) = (ring.left, ring.right);
        if l == r {
            continue;
        }
        let lfree = graph.atoms[l].capacity() - graph.count2(l) / 2;
        let rfree = graph.atoms[r].capacity() - graph.count2(r) / 2;
        if lfree <= 0 || rfree <= 0 {
            continue;
        }
        let order = ring.order.min(lfree).min(rfree);
        if let Some(id) = graph.dirbond(l, r) {
            let old = i64::from(graph.bonds[id].order / 2);
            let new = (order + old).min(3);
            graph.update_bond_order(l, r, (2 * new) as u8);
        } else {
            graph.add_ring_bond(
                l,
                r,
                (2 * order) as u8,
                ring.stereo.0,
                ring.stereo.1,
                Some(made[l]),
                Some(made[r]),
            );
            made[l] += 1;
            made[r] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings printed by selfies 2.1.1: `selfies.decoder(s)`.
    #[test]
    fn decodes_like_selfies() {
        let cases = [
            ("[C][=C][F]", "C=CF"),
            ("[F][F][Xx]", "FF"),
            ("[C][=Branch1][C][O][C]", "C(O)C"),
            ("[C][Branch1]", "C"),
            ("", ""),
            (".", ""),
            ("[C]..[C]", "C.C"),
            ("[C][C][C][Ring1][Ring1]", "C1CC1"),
            ("[C][O][C][=Ring1][Ring1]", "C=1OC=1"),
            ("[C@@H1][Branch1][C][F][Cl]", "[C@@H1](F)Cl"),
            ("[C+11][C]", "[C+11]C"),
            ("[nop][C]", "C"),
            ("[C][epsilon][C]", "C"),
            ("[CH4][C]", "[CH4]"),
            ("[C][CH4]", "C"),
            ("[13C][C]", "[13C]C"),
            ("[H][H]", "[H][H]"),
            ("[C][=Ring1]", "C"),
            ("[C][=C][C][=C][C][=C][Ring1][=Branch1]", "C1=CC=CC=C1"),
            ("[C][C][C][C][/C][=C][-/Ring1][=Branch1]", "C1CCC/C=C/1"),
        ];
        for (s, want) in cases {
            assert_eq!(decode(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn errors_where_selfies_raises() {
        for s in [
            "[C][Xx]",
            "[C]x[C]",
            "[C",
            "[C+10]",
            "[C]x",
            "[C][Ring4]",
            "[C][Branch]",
        ] {
            assert!(decode(s).is_err(), "{s}");
        }
    }
}
