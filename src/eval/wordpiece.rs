//! SciBERT's uncased WordPiece tokenization, as the reference ChEBI-20 evaluation uses it.
//!
//! The reference calls `BertTokenizerFast.from_pretrained("allenai/scibert_scivocab_uncased")
//! .tokenize(text, truncation=True, max_length=512, padding="max_length")` and then drops
//! `[PAD]`, `[CLS]` and `[SEP]`. That is the Hugging Face `tokenizers` pipeline built here:
//! BERT normalizer (clean text, CJK spacing, accent stripping, lowercase), BERT
//! pre-tokenizer (whitespace and punctuation), greedy longest-match WordPiece with `##`
//! continuations and `[UNK]`, special tokens recognised in the raw text, no special tokens
//! added, truncation to the first 512 tokens.
//!
//! The vocabulary (SciBERT `scivocab_uncased`, 31,090 entries, Apache-2.0) is embedded from
//! `assets/scibert_scivocab_uncased_vocab.txt`; another vocab file can be given instead.

use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

/// The embedded SciBERT uncased vocabulary.
pub const SCIBERT_VOCAB: &str = include_str!("../../assets/scibert_scivocab_uncased_vocab.txt");

/// Longest token sequence the reference keeps.
pub const MAX_TOKENS: usize = 512;

const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const DROPPED: [&str; 3] = ["[PAD]", "[CLS]", "[SEP]"];

/// A vocabulary could not be read or the tokenizer could not be built.
#[derive(Debug, thiserror::Error)]
#[error("WordPiece tokenizer: {0}")]
pub struct WordPieceError(pub String);

/// The reference's text tokenizer for ChEBI-20 BLEU and METEOR.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextTokenizer")
    }
}

impl TextTokenizer {
    /// The tokenizer with the embedded SciBERT vocabulary.
    pub fn scibert() -> Result<Self, WordPieceError> {
        Self::from_vocab_text(SCIBERT_VOCAB)
    }

    /// The tokenizer with a `vocab.txt` file (one token per line).
    pub fn from_vocab_file(path: &Path) -> Result<Self, WordPieceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| WordPieceError(format!("cannot read vocab {}: {e}", path.display())))?;
        Self::from_vocab_text(&text)
    }

    fn from_vocab_text(text: &str) -> Result<Self, WordPieceError> {
        let vocab =
            WordPiece::read_bytes(text.as_bytes()).map_err(|e| WordPieceError(e.to_string()))?;
        if !vocab.contains_key("[UNK]") {
            return Err(WordPieceError("the vocabulary has no [UNK] token".into()));
        }
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| WordPieceError(e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .map_err(|e| WordPieceError(e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| WordPieceError(e.to_string()))?;
        let special: Vec<AddedToken> = SPECIAL
            .iter()
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        inner
            .add_special_tokens(special)
            .map_err(|e| WordPieceError(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The reference's token list for `text`: at most 512 WordPiece tokens, without
    /// `[PAD]`, `[CLS]` and `[SEP]`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<String>, WordPieceError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| WordPieceError(e.to_string()))?;
        Ok(enc
            .get_tokens()
            .iter()
            .filter(|t| !DROPPED.contains(&t.as_str()))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_vocab_is_scibert() {
        let lines: Vec<&str> = SCIBERT_VOCAB.lines().collect();
        assert_eq!(lines.len(), 31090);
        assert_eq!(lines[0], "[PAD]");
        assert_eq!(lines[102], "[CLS]");
    }

    #[test]
    fn truncates_and_drops_special_tokens() {
        let t = TextTokenizer::scibert().expect("tokenizer");
        let long = "word ".repeat(600);
        assert_eq!(t.tokenize(&long).expect("tokens").len(), MAX_TOKENS);
        let toks = t.tokenize("[CLS] Acid [UNK]").expect("tokens");
        assert_eq!(toks, ["acid", "[UNK]"]);
    }
}
