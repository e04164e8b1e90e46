//! A prepared JSONL file, tokenised for training: every record through a template, with the
//! graph-token count of its molecule reserved against the maximum length. Truncations are
//! counted and records that cannot be used are listed, never dropped silently.

use tokenizers::Tokenizer;

use super::record::Record;
use super::templates::{Template, TokenizedExample};

/// Tokenised records and what happened to the rest.
#[derive(Debug, Clone, Default)]
pub struct TokenizedDataset {
    /// The records that were tokenised, parallel to `examples`.
    pub records: Vec<Record>,
    /// Their token ids and labels.
    pub examples: Vec<TokenizedExample>,
    /// Graph tokens (atoms) of each record's molecule, parallel to `examples`.
    pub graph_tokens: Vec<usize>,
    /// How many examples were cut to fit the template's maximum length.
    pub truncated: usize,
    /// Records left out: (id, reason).
    pub skipped: Vec<(String, String)>,
}

impl TokenizedDataset {
    /// Sequence lengths after the `<image>` slot is replaced by the graph tokens (the lengths
    /// the length-grouped sampler wants).
    pub fn lengths(&self) -> Vec<usize> {
        self.examples
            .iter()
            .zip(&self.graph_tokens)
            .map(|(e, &n)| e.expanded_len(n))
            .collect()
    }
}

/// Tokenises `records` with `template`. `graph_tokens` gives the number of graph tokens of a
/// record's molecule (its heavy atoms), or why it has none; such records, and records whose
/// conversation the template refuses, are listed in `skipped`. Records whose supervised
/// tokens are all cut by truncation are skipped too (they would carry no loss).
pub fn tokenize_records(
    tokenizer: &Tokenizer,
    template: &Template,
    records: Vec<Record>,
    graph_tokens: impl Fn(&Record) -> Result<usize, String>,
) -> TokenizedDataset {
    let mut out = TokenizedDataset::default();
    for r in records {
        let n = match graph_tokens(&r) {
            Ok(n) => n,
            Err(e) => {
                out.skipped.push((r.id.clone(), format!("molecule: {e}")));
                continue;
            }
        };
        match template.tokenize(tokenizer, &r.conversations, n) {
            Ok(ex) if ex.labels.iter().all(|&l| l < 0) => {
                out.skipped.push((
                    r.id.clone(),
                    "no supervised token left after truncation".into(),
                ));
            }
            Ok(ex) => {
                out.truncated += usize::from(ex.truncated);
                out.examples.push(ex);
                out.graph_tokens.push(n);
                out.records.push(r);
            }
            Err(e) => out.skipped.push((r.id.clone(), e.to_string())),
        }
    }
    out
}
