//! Chemistry core: SMILES/SELFIES, the molecule graph, RDKit-compatible sanitization,
//! InstructMol graph features and canonical SMILES. No ML code lives here.

pub mod aromaticity;
pub mod canon;
pub mod elements;
pub mod features;
pub mod fingerprints;
pub mod mol;
pub mod nontetrahedral;
pub mod rings;
pub mod sanitize;
pub mod scaffold;
pub mod selfies;
pub mod smarts;
pub mod smiles;
pub mod stereo;

pub use features::{featurize, featurize_smiles, GraphFeatures};
pub use mol::{Atom, Bond, BondDir, BondType, ChiralTag, Mol};
pub use sanitize::mol_from_smiles;
pub use smiles::parse as parse_smiles;

/// What went wrong while reading or sanitizing a molecule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not valid SMILES / SELFIES syntax.
    Syntax,
    /// An atom has more bonds than its element allows (RDKit "Explicit valence ... greater than permitted").
    Valence,
    /// Aromatic atoms that cannot be assigned a Kekule structure (RDKit "Can't kekulize mol").
    Kekulize,
    /// Anything the featurizer or a writer cannot represent (e.g. a quadruple bond).
    Unsupported,
}

/// An error from the chemistry layer, with the character position in the input when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ChemError {
    /// The category of the error.
    pub kind: ErrorKind,
    /// Human-readable explanation, e.g. "ring bond 1 opened at position 1 is never closed".
    pub message: String,
    /// 0-based character offset in `input` the error points at, if any.
    pub position: Option<usize>,
    /// The input text the error refers to.
    pub input: String,
}

impl ChemError {
    /// A new error pointing at `position` (0-based character offset) of `input`.
    pub fn at(kind: ErrorKind, input: &str, position: usize, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            position: Some(position),
            input: input.to_string(),
        }
    }

    /// A new error about the whole input.
    pub fn whole(kind: ErrorKind, input: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            position: None,
            input: input.to_string(),
        }
    }

    /// The message, followed (when a position is known) by the input and a caret line under
    /// it. A long input is cut to [`ECHO_CONTEXT`] characters on each side of the caret, with
    /// `...` where it was cut; an error without a position shows the input's two ends.
    pub fn render(&self) -> String {
        match self.position {
            Some(p) => {
                let (shown, pad) = caret_window(&self.input, p);
                // Messages that already name their position ("ring bond 1 opened at position 1
                // is never closed") are not told it twice.
                let at = if self.message.contains("position") {
                    String::new()
                } else {
                    format!(" at position {p}")
                };
                format!("{}{at}\n  {shown}\n  {pad}^", self.message)
            }
            None => format!("{}: {}", self.message, excerpt(&self.input)),
        }
    }
}

/// Characters of the input an error message shows on each side of the position it points at.
pub const ECHO_CONTEXT: usize = 40;

/// The part of `input` shown above a caret at character `position`, and the padding that puts
/// the caret under that character (tabs kept, so that it lines up under tabs too).
fn caret_window(input: &str, position: usize) -> (String, String) {
    const CUT: &str = "...";
    let len = input.chars().count();
    let start = position.saturating_sub(ECHO_CONTEXT);
    let end = len.min(position.saturating_add(ECHO_CONTEXT + 1));
    let mut shown = String::new();
    let mut pad = String::new();
    if start > 0 {
        shown.push_str(CUT);
        pad.push_str(&" ".repeat(CUT.len()));
    }
    for (i, c) in input
        .chars()
        .enumerate()
        .skip(start)
        .take(end.saturating_sub(start))
    {
        shown.push(c);
        if i < position {
            pad.push(if c == '\t' { '\t' } else { ' ' });
        }
    }
    if end < len {
        shown.push_str(CUT);
    }
    (shown, pad)
}

/// `text` itself when short, else its first and last [`ECHO_CONTEXT`] characters around
/// `...`: how error messages quote user input, which may be a 200 KB line.
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    let len = text.chars().count();
    if len <= 2 * ECHO_CONTEXT + 3 {
        return text.into();
    }
    let head: String = text.chars().take(ECHO_CONTEXT).collect();
    let tail: String = text.chars().skip(len - ECHO_CONTEXT).collect();
    format!("{head}...{tail} ({len} characters)").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_echoed_whole_with_the_caret_under_the_position() {
        let e = ChemError::at(ErrorKind::Syntax, "CC(C", 2, "unclosed branch");
        assert_eq!(e.render(), "unclosed branch at position 2\n  CC(C\n    ^");
        let tabbed = ChemError::at(ErrorKind::Syntax, "C\tC\tX", 4, "bad");
        assert_eq!(tabbed.render(), "bad at position 4\n  C\tC\tX\n   \t \t^");
    }

    #[test]
    fn long_input_is_cut_to_a_window_around_the_caret() {
        let input = format!("{}X{}", "C".repeat(100_000), "C".repeat(100_000));
        let e = ChemError::at(
            ErrorKind::Syntax,
            &input,
            100_000,
            "unexpected character 'X'",
        );
        let text = e.render();
        assert!(text.len() < 300, "{} bytes", text.len());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let window = format!("  ...{}X{}...", "C".repeat(40), "C".repeat(40));
        assert_eq!(lines[1], window);
        // The caret stands under the X.
        let caret = lines[2].find('^').expect("caret");
        assert_eq!(&lines[1][caret..=caret], "X");
    }

    #[test]
    fn window_at_the_ends_of_a_long_input() {
        let input = "C".repeat(1000);
        let first = ChemError::at(ErrorKind::Syntax, &input, 0, "m").render();
        assert_eq!(
            first.lines().nth(1),
            Some(format!("  {}...", "C".repeat(41)).as_str())
        );
        assert_eq!(first.lines().nth(2), Some("  ^"));
        // One past the end (a missing closing bracket): the caret follows the last character.
        let end = ChemError::at(ErrorKind::Syntax, &input, 1000, "m").render();
        let lines: Vec<&str> = end.lines().collect();
        assert_eq!(lines[1], format!("  ...{}", "C".repeat(40)));
        assert_eq!(lines[2].find('^'), Some(lines[1].len()));
    }

    #[test]
    fn error_without_position_shows_both_ends_of_a_long_input() {
        let input = format!("A{}Z", "C".repeat(200_000));
        let text = ChemError::whole(ErrorKind::Kekulize, &input, "cannot kekulize").render();
        assert!(text.len() < 200, "{text}");
        assert!(text.starts_with("cannot kekulize: AC") && text.contains("CZ (200002 characters)"));
        let short = ChemError::whole(ErrorKind::Kekulize, "c1cc1", "cannot kekulize").render();
        assert_eq!(short, "cannot kekulize: c1cc1");
    }
}
