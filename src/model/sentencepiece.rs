//! The LLaMA/Vicuna sentencepiece tokenizer on the `tokenizers` crate.
//!
//! A sentencepiece `tokenizer.model` is a protobuf `ModelProto`; [`SentencePieceModel::parse`]
//! reads the few fields a BPE tokenizer needs (pieces with scores and types, the trainer's model
//! type, byte fallback and special ids, the normalizer's whitespace options) with a small
//! bounds-checked protobuf reader: a malformed file is an error, never a panic. The same
//! vocabulary can come from a GGUF file's `tokenizer.ggml.*` metadata (`model = llama`).
//!
//! [`SpVocab::build`] turns the vocabulary into a `tokenizers` BPE with byte fallback whose merges
//! are ranked by the score of the merged piece (sentencepiece's BPE merges the adjacent pair whose
//! concatenation scores highest), the sentencepiece normalizer (spaces escaped as `▁`, a dummy
//! `▁` prefix) and decoder (`▁` -> space, byte pieces joined into UTF-8, the dummy prefix
//! removed). Control and unknown pieces are special tokens, split out of the text before
//! encoding; user-defined pieces are kept whole. Ids then equal the `sentencepiece` library's
//! (and transformers' slow `LlamaTokenizer`, legacy mode), see `tests/model_spm.rs`.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// What is wrong with a sentencepiece model or vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum SentencePieceError {
    /// The protobuf is malformed (truncated, bad lengths, wrong wire types, invalid UTF-8).
    #[error("malformed sentencepiece model at byte {offset}: {reason} (truncated or not a tokenizer.model?)")]
    Malformed {
        /// Byte offset in the file where reading failed.
        offset: usize,
        /// What was expected there.
        reason: String,
    },
    /// The model is valid but of a kind this crate does not build.
    #[error("unsupported sentencepiece model: {0}")]
    Unsupported(String),
    /// The vocabulary is inconsistent (duplicate pieces, bad byte pieces, ids out of range).
    #[error("invalid sentencepiece vocabulary: {0}")]
    Vocabulary(String),
}

type Result<T> = std::result::Result<T, SentencePieceError>;

/// The type of a sentencepiece piece (`ModelProto.SentencePiece.Type`; the same numbers are
/// GGUF's `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// An ordinary piece, produced by merges.
    Normal,
    /// The unknown piece (`<unk>`).
    Unknown,
    /// A control piece (`<s>`, `</s>`): never produced from text by sentencepiece.
    Control,
    /// A user-defined piece, always kept whole.
    UserDefined,
    /// A reserved piece that is never produced.
    Unused,
    /// A byte piece `<0xHH>` (byte fallback).
    Byte,
}

impl PieceKind {
    /// The kind with protobuf/GGUF number `n`.
    pub fn from_number(n: i64) -> Option<Self> {
        Some(match n {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// One piece of the vocabulary; its id is its index.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece's text (`▁` stands for a space; byte pieces are spelled `<0xHH>`).
    pub text: String,
    /// Its score (log probability for unigram, negated merge order for BPE).
    pub score: f32,
    /// Its type.
    pub kind: PieceKind,
}

/// A sentencepiece BPE vocabulary and the options that shape encoding.
#[derive(Debug, Clone)]
pub struct SpVocab {
    /// The pieces; a piece's id is its index.
    pub pieces: Vec<Piece>,
    /// Unknown characters become their UTF-8 byte pieces.
    pub byte_fallback: bool,
    /// A `▁` is put before the text (sentencepiece's `add_dummy_prefix`).
    pub add_dummy_prefix: bool,
}

/// How the tokenizer adds special tokens and treats text after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpOptions {
    /// Encoding with special tokens puts this id first (`add_bos_token`).
    pub bos: Option<u32>,
    /// Encoding with special tokens puts this id last (`add_eos_token`).
    pub eos: Option<u32>,
    /// transformers' `legacy` mode (the default for LLaMA/Vicuna tokenizers that do not say
    /// otherwise, and llama.cpp's behaviour): every piece of text between special tokens gets
    /// the dummy prefix, exactly as the `sentencepiece` library encodes it on its own. Otherwise
    /// only the start of the whole text does (transformers' `legacy: false`, through the
    /// `Metaspace` pre-tokenizer as its fast tokenizer does).
    pub legacy: bool,
}

/// The fields of a sentencepiece `ModelProto` that a BPE tokenizer needs.
#[derive(Debug, Clone)]
pub struct SentencePieceModel {
    /// The vocabulary.
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: i64,
    /// `TrainerSpec.byte_fallback`.
    pub byte_fallback: bool,
    /// `TrainerSpec.treat_whitespace_as_suffix`.
    pub whitespace_as_suffix: bool,
    /// `TrainerSpec.unk_id`.
    pub unk_id: i64,
    /// `TrainerSpec.bos_id` (-1: none).
    pub bos_id: i64,
    /// `TrainerSpec.eos_id` (-1: none).
    pub eos_id: i64,
    /// `NormalizerSpec.name`.
    pub normalizer: String,
    /// Length of `NormalizerSpec.precompiled_charsmap` (0: no character normalization).
    pub charsmap_len: usize,
    /// `NormalizerSpec.add_dummy_prefix`.
    pub add_dummy_prefix: bool,
    /// `NormalizerSpec.remove_extra_whitespaces`.
    pub remove_extra_whitespaces: bool,
    /// `NormalizerSpec.escape_whitespaces`.
    pub escape_whitespaces: bool,
}

impl SentencePieceModel {
    /// Parses a serialized `ModelProto` (the bytes of a `tokenizer.model`).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        // proto2 defaults of the fields read here.
        let mut model = Self {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            whitespace_as_suffix: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            normalizer: String::new(),
            charsmap_len: 0,
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        };
        let mut r = Reader::new(bytes, 0);
        while let Some((field, wire)) = r.key()? {
            match field {
                1 => {
                    let mut sub = r.message(wire, "ModelProto.pieces")?;
                    model.pieces.push(parse_piece(&mut sub)?);
                }
                2 => {
                    let mut sub = r.message(wire, "ModelProto.trainer_spec")?;
                    while let Some((f, w)) = sub.key()? {
                        match f {
                            3 => model.model_type = sub.int(w, "TrainerSpec.model_type")?,
                            24 => {
                                model.whitespace_as_suffix =
                                    sub.int(w, "TrainerSpec.treat_whitespace_as_suffix")? != 0
                            }
                            35 => {
                                model.byte_fallback = sub.int(w, "TrainerSpec.byte_fallback")? != 0
                            }
                            40 => model.unk_id = sub.int(w, "TrainerSpec.unk_id")?,
                            41 => model.bos_id = sub.int(w, "TrainerSpec.bos_id")?,
                            42 => model.eos_id = sub.int(w, "TrainerSpec.eos_id")?,
                            _ => sub.skip(w)?,
                        }
                    }
                }
                3 => {
                    let mut sub = r.message(wire, "ModelProto.normalizer_spec")?;
                    while let Some((f, w)) = sub.key()? {
                        match f {
                            1 => model.normalizer = sub.string(w, "NormalizerSpec.name")?,
                            2 => {
                                model.charsmap_len =
                                    sub.bytes(w, "NormalizerSpec.precompiled_charsmap")?.len()
                            }
                            3 => {
                                model.add_dummy_prefix =
                                    sub.int(w, "NormalizerSpec.add_dummy_prefix")? != 0
                            }
                            4 => {
                                model.remove_extra_whitespaces =
                                    sub.int(w, "NormalizerSpec.remove_extra_whitespaces")? != 0
                            }
                            5 => {
                                model.escape_whitespaces =
                                    sub.int(w, "NormalizerSpec.escape_whitespaces")? != 0
                            }
                            _ => sub.skip(w)?,
                        }
                    }
                }
                _ => r.skip(wire)?,
            }
        }
        if model.pieces.is_empty() {
            return Err(SentencePieceError::Malformed {
                offset: bytes.len(),
                reason: "no pieces (an empty vocabulary)".into(),
            });
        }
        Ok(model)
    }

    /// The vocabulary, after checking that the model is a BPE model whose normalization the
    /// tokenizer reproduces (LLaMA's: identity normalizer, spaces escaped, no whitespace removal).
    pub fn into_vocab(self) -> Result<SpVocab> {
        let unsupported = |what: String| Err(SentencePieceError::Unsupported(what));
        if self.model_type != 2 {
            let kind = match self.model_type {
                1 => "unigram",
                3 => "word",
                4 => "char",
                _ => "unknown",
            };
            return unsupported(format!(
                "model type {} ({kind}); only BPE models (LLaMA, Vicuna, Mistral) can be read: \
                 for other models use their tokenizer.json",
                self.model_type
            ));
        }
        if self.charsmap_len > 0 || !matches!(self.normalizer.as_str(), "" | "identity") {
            return unsupported(format!(
                "normalizer `{}` with a character map; only the identity normalizer (LLaMA's) is \
                 supported: use the model's tokenizer.json",
                self.normalizer
            ));
        }
        if self.remove_extra_whitespaces {
            return unsupported(
                "remove_extra_whitespaces is set (LLaMA keeps whitespace as is); use the model's \
                 tokenizer.json"
                    .into(),
            );
        }
        if !self.escape_whitespaces || self.whitespace_as_suffix {
            return unsupported(
                "whitespace is not escaped as a `▁` prefix (escape_whitespaces off or \
                 treat_whitespace_as_suffix on); use the model's tokenizer.json"
                    .into(),
            );
        }
        let vocab = SpVocab {
            pieces: self.pieces,
            byte_fallback: self.byte_fallback,
            add_dummy_prefix: self.add_dummy_prefix,
        };
        for (what, id) in [
            ("unk_id", self.unk_id),
            ("bos_id", self.bos_id),
            ("eos_id", self.eos_id),
        ] {
            if id >= vocab.pieces.len() as i64 {
                return Err(SentencePieceError::Vocabulary(format!(
                    "{what} = {id} is outside the vocabulary ({} pieces)",
                    vocab.pieces.len()
                )));
            }
        }
        Ok(vocab)
    }
}

fn parse_piece(r: &mut Reader<'_>) -> Result<Piece> {
    let mut piece = Piece {
        text: String::new(),
        score: 0.0,
        kind: PieceKind::Normal,
    };
    while let Some((f, w)) = r.key()? {
        match f {
            1 => piece.text = r.string(w, "SentencePiece.piece")?,
            2 => piece.score = f32::from_bits(r.fixed32(w, "SentencePiece.score")?),
            3 => {
                let at = r.offset();
                let n = r.int(w, "SentencePiece.type")?;
                piece.kind = PieceKind::from_number(n).ok_or(SentencePieceError::Malformed {
                    offset: at,
                    reason: format!("piece type {n} is not one of 1..=6"),
                })?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(piece)
}

impl SpVocab {
    /// The id of the piece spelled `text`.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.pieces
            .iter()
            .position(|p| p.text == text)
            .map(|i| i as u32)
    }

    /// Builds the `tokenizers` tokenizer: BPE with byte fallback and merges ranked by score,
    /// the sentencepiece normalizer and decoder, special tokens and the BOS/EOS post-processor.
    pub fn build(&self, opts: SpOptions) -> Result<Tokenizer> {
        let n = self.pieces.len();
        let mut vocab = tokenizers::models::bpe::Vocab::default();
        for (id, p) in self.pieces.iter().enumerate() {
            if p.text.is_empty() {
                return Err(SentencePieceError::Vocabulary(format!(
                    "piece {id} is empty"
                )));
            }
            if let Some(first) = vocab.insert(p.text.clone(), id as u32) {
                return Err(SentencePieceError::Vocabulary(format!(
                    "pieces {first} and {id} are both `{}`",
                    p.text
                )));
            }
        }
        for id in [opts.bos, opts.eos].into_iter().flatten() {
            if id as usize >= n {
                return Err(SentencePieceError::Vocabulary(format!(
                    "special id {id} is outside the vocabulary ({n} pieces)"
                )));
            }
        }
        let bytes = self.pieces.iter().filter(|p| p.kind == PieceKind::Byte);
        let mut seen = [false; 256];
        for p in bytes {
            let b = parse_byte_piece(&p.text).ok_or_else(|| {
                SentencePieceError::Vocabulary(format!(
                    "byte piece `{}` is not spelled <0xHH>",
                    p.text
                ))
            })?;
            seen[b as usize] = true;
        }
        if self.byte_fallback && seen.iter().any(|s| !s) {
            return Err(SentencePieceError::Vocabulary(
                "byte fallback is on but not all 256 byte pieces <0x00>..<0xFF> are present".into(),
            ));
        }

        // sentencepiece merges the adjacent pair whose concatenation is the highest-scoring
        // normal piece; as BPE merges: every split of a normal piece into two pieces of the
        // vocabulary, ranked by the piece's score (ties: lower piece id, then lower ids of the
        // halves).
        let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
        for (id, p) in self.pieces.iter().enumerate() {
            if p.kind != PieceKind::Normal {
                continue;
            }
            for (at, _) in p.text.char_indices().skip(1) {
                let (l, r) = p.text.split_at(at);
                if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                    ranked.push((p.score, id as u32, li, ri));
                }
            }
        }
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let text = |id: u32| self.pieces[id as usize].text.clone();
        let merges: Vec<(String, String)> = ranked
            .iter()
            .map(|&(_, _, l, r)| (text(l), text(r)))
            .collect();

        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(self.byte_fallback)
            .fuse_unk(true);
        if let Some(unk) = self.pieces.iter().find(|p| p.kind == PieceKind::Unknown) {
            builder = builder.unk_token(unk.text.clone());
        }
        let bpe = builder.build().map_err(|e| {
            SentencePieceError::Vocabulary(format!("cannot build the BPE model: {e}"))
        })?;
        let mut tok = Tokenizer::new(bpe);

        let escape = Replace::new(" ", "▁").map_err(|e| {
            SentencePieceError::Vocabulary(format!("cannot build the normalizer: {e}"))
        })?;
        if opts.legacy {
            let mut steps: Vec<NormalizerWrapper> = Vec::new();
            if self.add_dummy_prefix {
                steps.push(Prepend::new("▁".into()).into());
            }
            steps.push(escape.into());
            tok.with_normalizer(Some(tokenizers::normalizers::Sequence::new(steps)))
                .map_err(|e| {
                    SentencePieceError::Vocabulary(format!("cannot set the normalizer: {e}"))
                })?;
        } else {
            let scheme = if self.add_dummy_prefix {
                PrependScheme::First
            } else {
                PrependScheme::Never
            };
            tok.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
        }

        let unescape = Replace::new("▁", " ").map_err(|e| {
            SentencePieceError::Vocabulary(format!("cannot build the decoder: {e}"))
        })?;
        let mut steps: Vec<DecoderWrapper> = vec![
            DecoderWrapper::Replace(unescape),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if self.add_dummy_prefix {
            steps.push(Strip::new(' ', 1, 0).into());
        }
        tok.with_decoder(Some(DecoderSequence::new(steps)));

        let special: Vec<AddedToken> = self
            .pieces
            .iter()
            .filter(|p| matches!(p.kind, PieceKind::Control | PieceKind::Unknown))
            .map(|p| AddedToken::from(p.text.clone(), true).normalized(false))
            .collect();
        tok.add_special_tokens(special).map_err(|e| {
            SentencePieceError::Vocabulary(format!("cannot add control pieces: {e}"))
        })?;
        let user: Vec<AddedToken> = self
            .pieces
            .iter()
            .filter(|p| p.kind == PieceKind::UserDefined)
            .map(|p| AddedToken::from(p.text.clone(), false).normalized(false))
            .collect();
        tok.add_tokens(user).map_err(|e| {
            SentencePieceError::Vocabulary(format!("cannot add user-defined pieces: {e}"))
        })?;

        if opts.bos.is_some() || opts.eos.is_some() {
            let name = |id: u32| self.pieces[id as usize].text.clone();
            let mut single = Vec::new();
            let mut pair = Vec::new();
            let mut specials = Vec::new();
            if let Some(b) = opts.bos {
                single.push(name(b));
                pair.push(format!("{}:0", name(b)));
                specials.push((name(b), b));
            }
            single.push("$A".to_string());
            pair.push("$A:0".to_string());
            if let Some(e) = opts.eos {
                single.push(name(e));
                pair.push(format!("{}:0", name(e)));
                if opts.bos != Some(e) {
                    specials.push((name(e), e));
                }
            }
            if let Some(b) = opts.bos {
                pair.push(format!("{}:1", name(b)));
            }
            pair.push("$B:1".to_string());
            if let Some(e) = opts.eos {
                pair.push(format!("{}:1", name(e)));
            }
            let processor = TemplateProcessing::builder()
                .try_single(single.join(" "))
                .and_then(|b| b.try_pair(pair.join(" ")))
                .map_err(|e| {
                    SentencePieceError::Vocabulary(format!("cannot build the post-processor: {e}"))
                })?
                .special_tokens(specials)
                .build()
                .map_err(|e| {
                    SentencePieceError::Vocabulary(format!("cannot build the post-processor: {e}"))
                })?;
            tok.with_post_processor(Some(processor));
        }
        Ok(tok)
    }
}

/// The byte a piece `<0xHH>` stands for.
fn parse_byte_piece(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// A bounds-checked reader of protobuf wire format (varints, fixed32/64, length-delimited).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole file, for error messages.
    base: usize,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn malformed<T>(&self, reason: impl Into<String>) -> Result<T> {
        Err(SentencePieceError::Malformed {
            offset: self.offset(),
            reason: reason.into(),
        })
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return self.malformed("the data ends inside a varint");
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.malformed("a varint longer than 10 bytes")
    }

    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let wire = (key & 7) as u8;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return self.malformed(format!("invalid field number {field}"));
        }
        Ok(Some((field as u32, wire)))
    }

    fn expect(&self, wire: u8, want: u8, what: &str) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            self.malformed(format!("{what} has wire type {wire}, expected {want}"))
        }
    }

    /// An integer field (int32/int64/bool/enum), negative int32 values included.
    fn int(&mut self, wire: u8, what: &str) -> Result<i64> {
        self.expect(wire, VARINT, what)?;
        Ok(self.varint()? as i64)
    }

    fn fixed32(&mut self, wire: u8, what: &str) -> Result<u32> {
        self.expect(wire, FIXED32, what)?;
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => self.malformed(format!(
                "{what} needs {n} bytes, only {} are left",
                self.buf.len() - self.pos
            )),
        }
    }

    fn bytes(&mut self, wire: u8, what: &str) -> Result<&'a [u8]> {
        self.expect(wire, LEN, what)?;
        let n = self.varint()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.take(n, what)
    }

    fn string(&mut self, wire: u8, what: &str) -> Result<String> {
        let at = self.offset();
        let b = self.bytes(wire, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| SentencePieceError::Malformed {
            offset: at,
            reason: format!("{what} is not valid UTF-8"),
        })
    }

    fn message(&mut self, wire: u8, what: &str) -> Result<Reader<'a>> {
        let b = self.bytes(wire, what)?;
        Ok(Reader::new(b, self.offset() - b.len()))
    }

    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8, "a fixed64 field").map(drop),
            LEN => self.bytes(wire, "a length-delimited field").map(drop),
            FIXED32 => self.take(4, "a fixed32 field").map(drop),
            _ => self.malformed(format!("unsupported wire type {wire}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(field: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = Vec::new();
        len_field(1, text.as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut p);
        varint(kind, &mut p);
        p
    }

    /// A tiny LLaMA-like model: <unk> <s> </s>, the 256 bytes, a few merges.
    fn tiny_model() -> Vec<u8> {
        tiny_fields().concat()
    }

    /// The top-level fields of [`tiny_model`], each serialized on its own.
    fn tiny_fields() -> Vec<Vec<u8>> {
        let mut fields = Vec::new();
        let mut field = |f: u64, body: &[u8]| {
            let mut m = Vec::new();
            len_field(f, body, &mut m);
            fields.push(m);
        };
        field(1, &piece("<unk>", 0.0, 2));
        field(1, &piece("<s>", 0.0, 3));
        field(1, &piece("</s>", 0.0, 3));
        for b in 0..=255u8 {
            field(1, &piece(&format!("<0x{b:02X}>"), 0.0, 6));
        }
        for (i, t) in ["▁a", "ab", "▁ab", "▁", "a", "b", "c"].iter().enumerate() {
            field(1, &piece(t, -(i as f32), 1));
        }
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer); // BPE
        varint(35 << 3, &mut trainer);
        varint(1, &mut trainer); // byte_fallback
        varint(43 << 3, &mut trainer);
        varint(u64::MAX, &mut trainer); // pad_id -1: a 10-byte varint, skipped
        field(2, &trainer);
        let mut norm = Vec::new();
        len_field(1, b"identity", &mut norm);
        varint(4 << 3, &mut norm);
        varint(0, &mut norm); // remove_extra_whitespaces false
        field(3, &norm);
        fields
    }

    #[test]
    fn reads_and_encodes_a_tiny_model() {
        let model = SentencePieceModel::parse(&tiny_model()).unwrap();
        assert_eq!(model.pieces.len(), 3 + 256 + 7);
        assert_eq!(model.model_type, 2);
        assert!(model.byte_fallback && model.add_dummy_prefix && !model.remove_extra_whitespaces);
        let vocab = model.into_vocab().unwrap();
        let tok = vocab
            .build(SpOptions {
                bos: Some(1),
                eos: None,
                legacy: true,
            })
            .unwrap();
        let ids = tok.encode("ab c\u{e9}", true).unwrap().get_ids().to_vec();
        // <s> ▁ab ▁ c <0xC3> <0xA9>
        assert_eq!(ids, vec![1, 261, 262, 265, 0xC3 + 3, 0xA9 + 3]);
        assert_eq!(tok.decode(&ids, true).unwrap(), "ab c\u{e9}");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = tiny_model();
        let mut boundaries = vec![0];
        for f in tiny_fields() {
            boundaries.push(boundaries[boundaries.len() - 1] + f.len());
        }
        for n in 0..full.len() {
            // A cut between two fields is a valid (smaller) model; a cut inside one is an error.
            let parsed = SentencePieceModel::parse(&full[..n]);
            assert_eq!(
                parsed.is_ok(),
                n > 0 && boundaries.contains(&n),
                "cut at {n}"
            );
        }
        let err = SentencePieceModel::parse(&full[..full.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("malformed") && err.contains("byte"), "{err}");
        let mut bad = Vec::new();
        len_field(1, &piece("x", 0.0, 9), &mut bad);
        let err = SentencePieceModel::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("piece type 9"), "{err}");
        let mut bad = Vec::new();
        len_field(1, &[0x0a, 0x01, 0xff], &mut bad);
        let err = SentencePieceModel::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn unigram_and_normalizing_models_are_refused() {
        let mut m = Vec::new();
        len_field(1, &piece("a", 0.0, 1), &mut m);
        let err = SentencePieceModel::parse(&m)
            .unwrap()
            .into_vocab()
            .unwrap_err()
            .to_string();
        assert!(err.contains("unigram"), "{err}");
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        len_field(2, &trainer, &mut m);
        let err = SentencePieceModel::parse(&m)
            .unwrap()
            .into_vocab()
            .unwrap_err()
            .to_string();
        assert!(err.contains("remove_extra_whitespaces"), "{err}");
    }
}
