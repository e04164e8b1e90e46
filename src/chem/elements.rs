//! The periodic table as RDKit 2026.09 defines it: symbols, allowed valences and
//! outer-shell electron counts for atomic numbers 0 (`*`) to 118.

mod table;

use table::{ELEMENTS, MAX_TABLE_CHARGE, MAX_VALENCE};

/// Highest atomic number in the table.
pub const MAX_Z: u8 = 118;

/// The element symbol for atomic number `z` (`"*"` for 0); `"?"` beyond the table.
pub fn symbol(z: u8) -> &'static str {
    ELEMENTS.get(z as usize).map_or("?", |e| e.0)
}

/// The atomic number of a case-sensitive element symbol (`"Cl"`, `"*"` -> 0).
pub fn from_symbol(s: &str) -> Option<u8> {
    ELEMENTS
        .iter()
        .position(|e| e.0 == s)
        .and_then(|z| u8::try_from(z).ok())
}

/// RDKit's list of allowed valences for `z` (`GetValenceList`), smallest first;
/// `-1` means any valence is allowed. Empty beyond the table.
pub fn valences(z: u8) -> &'static [i8] {
    ELEMENTS.get(z as usize).map_or(&[], |e| e.1)
}

/// Number of outer-shell electrons of `z` (RDKit `GetNOuterElecs`); 0 beyond the table.
pub fn outer_electrons(z: u8) -> u8 {
    ELEMENTS.get(z as usize).map_or(0, |e| e.2)
}

/// Largest explicit valence RDKit's strict valence check accepts for element `z` with
/// formal charge `charge`; `None` when any valence is accepted. Measured from RDKit for
/// charges -8..=8 (others are not checked).
pub fn max_valence(z: u8, charge: i8) -> Option<i8> {
    if charge.unsigned_abs() > MAX_TABLE_CHARGE.unsigned_abs() {
        return None;
    }
    let row = MAX_VALENCE.get(z as usize)?;
    match row[(charge + MAX_TABLE_CHARGE) as usize] {
        -1 => None,
        -2 => Some(-1),
        v => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip() {
        for z in 0..=MAX_Z {
            assert_eq!(from_symbol(symbol(z)), Some(z));
        }
        assert_eq!(from_symbol("Xx"), None);
        assert_eq!(from_symbol("cl"), None);
        assert_eq!(symbol(119), "?");
    }

    #[test]
    fn rdkit_values() {
        assert_eq!(symbol(0), "*");
        assert_eq!(from_symbol("Cl"), Some(17));
        assert_eq!(valences(7), &[3]);
        assert_eq!(valences(16), &[2, 4, 6]);
        assert_eq!(valences(53), &[1, 3, 5]);
        assert_eq!(valences(26), &[-1]);
        assert_eq!(outer_electrons(7), 5);
        assert_eq!(outer_electrons(26), 8);
        assert_eq!(outer_electrons(118), 2);
    }

    #[test]
    fn max_valence_follows_rdkit_checks() {
        // From RDKit: [NH4+] ok, [NH5+] not; [S-] takes 5; Fe takes anything.
        assert_eq!(max_valence(7, 1), Some(4));
        assert_eq!(max_valence(7, 0), Some(3));
        assert_eq!(max_valence(16, -1), Some(5));
        assert_eq!(max_valence(17, 1), Some(6));
        assert_eq!(max_valence(26, 0), None);
        assert_eq!(max_valence(6, 20), None);
        assert_eq!(max_valence(6, i8::MIN), None);
    }
}
