//! A prepared JSONL file, ready for training or scoring: every record's molecule featurized
//! (its graph) and its conversation tokenised through a template, with the molecule's graph
//! tokens reserved against the maximum length. Unusable records are counted by reason, with
//! the first few named; truncated examples are kept and counted. Nothing is dropped silently.

use std::collections::BTreeMap;
use std::path::Path;

use tokenizers::Tokenizer;

use super::record::{read_jsonl, Record};
use super::templates::{Template, TokenizedExample};
use super::DataError;
use crate::chem::{self, GraphFeatures};
use crate::model::MolPrompt;

/// How many unusable records a [`Dataset`] names in `first_errors`.
const FIRST_ERRORS: usize = 10;

/// The `skipped` key that counts examples cut to the maximum length (they are kept).
pub const TRUNCATED_KEPT: &str = "truncated (kept)";

/// One usable example: token ids and labels, and the molecule's graph.
#[derive(Debug, Clone)]
pub struct Example {
    /// The record's id.
    pub id: String,
    /// Token ids, labels and the `<image>` slot.
    pub tokens: TokenizedExample,
    /// The molecule's graph features (one graph token per atom).
    pub graph: GraphFeatures,
}

impl Example {
    /// The example as the model takes it.
    pub fn prompt(&self) -> MolPrompt<'_> {
        MolPrompt {
            ids: &self.tokens.input_ids,
            labels: &self.tokens.labels,
            image_position: self.tokens.image_position,
            graph: &self.graph,
        }
    }

    /// Sequence length once the `<image>` slot is replaced by the graph tokens.
    pub fn expanded_len(&self) -> usize {
        self.tokens.expanded_len(self.graph.node_feat.len())
    }
}

/// Usable examples and what happened to the other records.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The usable examples, in file order.
    pub examples: Vec<Example>,
    /// Records left out, counted by reason (plus [`TRUNCATED_KEPT`], kept ones).
    pub skipped: BTreeMap<String, usize>,
    /// The first few unusable records: where and why.
    pub first_errors: Vec<String>,
}

impl Dataset {
    /// Reads a prepared JSONL file (the first `limit` valid records; 0 = all) and prepares
    /// each record with `template`. Lines that are not records count as "bad line".
    pub fn load(
        path: &Path,
        limit: usize,
        template: &Template,
        tokenizer: &Tokenizer,
    ) -> Result<Self, DataError> {
        let contents = read_jsonl(path)?;
        let mut ds = Self::default();
        for bad in &contents.bad {
            ds.note(
                "bad line",
                format!("{}:{}: {}", path.display(), bad.line, bad.message),
            );
        }
        let take = if limit == 0 { usize::MAX } else { limit };
        ds.add_records(contents.records.into_iter().take(take), template, tokenizer);
        Ok(ds)
    }

    /// Prepares `records` with `template`: records whose molecule cannot be read, whose
    /// conversation the template refuses, or with no supervised token left after truncation
    /// are counted and named instead.
    pub fn from_records(
        records: impl IntoIterator<Item = Record>,
        template: &Template,
        tokenizer: &Tokenizer,
    ) -> Self {
        let mut ds = Self::default();
        ds.add_records(records, template, tokenizer);
        ds
    }

    fn add_records(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        template: &Template,
        tokenizer: &Tokenizer,
    ) {
        for rec in records {
            let graph = match chem::featurize_smiles(&rec.smiles) {
                Ok(g) => g,
                Err(e) => {
                    self.note("invalid molecule", format!("{}: {e}", rec.id));
                    continue;
                }
            };
            let tokens =
                match template.tokenize(tokenizer, &rec.conversations, graph.node_feat.len()) {
                    Ok(t) => t,
                    Err(e) => {
                        self.note("template", format!("{}: {e}", rec.id));
                        continue;
                    }
                };
            if tokens.labels.iter().all(|&l| l < 0) {
                self.note(
                    "nothing supervised",
                    format!("{}: no supervised token left after truncation", rec.id),
                );
                continue;
            }
            if tokens.truncated {
                *self.skipped.entry(TRUNCATED_KEPT.into()).or_default() += 1;
            }
            self.examples.push(Example {
                id: rec.id,
                tokens,
                graph,
            });
        }
    }

    fn note(&mut self, reason: &str, detail: String) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
        if self.first_errors.len() < FIRST_ERRORS {
            self.first_errors.push(detail);
        }
    }

    /// Records left out (truncated but kept examples not counted).
    pub fn left_out(&self) -> usize {
        self.skipped
            .iter()
            .filter(|(k, _)| k.as_str() != TRUNCATED_KEPT)
            .map(|(_, n)| n)
            .sum()
    }

    /// Sequence lengths with the graph tokens in place (what the length-grouped sampler wants).
    pub fn lengths(&self) -> Vec<usize> {
        self.examples.iter().map(Example::expanded_len).collect()
    }
}
