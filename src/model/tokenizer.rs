//! The language model's tokenizer and chat template.
//!
//! [`ModelTokenizer`] wraps a `tokenizers::Tokenizer` built from a Hugging Face
//! `tokenizer.json` (+ `tokenizer_config.json`), from a sentencepiece `tokenizer.model` (LLaMA,
//! Vicuna; see [`super::sentencepiece`]) or from the tokenizer metadata of a GGUF file
//! (`tokenizer.ggml.*`, byte-level `gpt2` or sentencepiece `llama`). It knows the model's special ids (bos / eos / pad), encodes and
//! decodes text, decodes a token stream incrementally (multi-byte characters split over several
//! tokens come out whole), and renders the model's chat template with minijinja the way
//! transformers' `apply_chat_template` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use serde::Serialize;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::sentencepiece::{Piece, PieceKind, SentencePieceModel, SpOptions, SpVocab};

/// Errors of tokenizer and chat-template handling.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A tokenizer file could not be read or parsed.
    #[error("cannot read tokenizer from {path}: {reason}")]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// GGUF tokenizer metadata is missing or malformed.
    #[error("GGUF tokenizer metadata: {0}")]
    Metadata(String),
    /// The tokenizer kind is not one this crate can build.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
    /// The model has no chat template.
    #[error(
        "the model has no chat template (neither `tokenizer.chat_template` in the GGUF nor `chat_template` \
         in tokenizer_config.json); pass --raw to send the prompt as is"
    )]
    NoChatTemplate,
    /// The chat template could not be compiled or rendered.
    #[error("chat template: {0}")]
    Template(String),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, TokenizerError>;

/// One message of a conversation, as chat templates expect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A model's tokenizer with its special tokens and chat template.
#[derive(Debug, Clone)]
pub struct ModelTokenizer {
    inner: Tokenizer,
    bos: Option<(u32, String)>,
    eos: Option<(u32, String)>,
    pad: Option<u32>,
    /// Extra template variables (`unk_token`, `pad_token`, ...).
    extra_tokens: Vec<(String, String)>,
    /// Prepend bos in [`Self::encode`] with `add_special` (tokenizers without a post-processor).
    add_bos: bool,
    chat_template: Option<String>,
}

impl ModelTokenizer {
    /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` (special tokens, chat
    /// template) from a Hugging Face model directory.
    pub fn from_hf_files(tokenizer_json: &Path, tokenizer_config: Option<&Path>) -> Result<Self> {
        super::untrusted::check_tokenizer_json(tokenizer_json)?;
        let inner = Tokenizer::from_file(tokenizer_json).map_err(|e| TokenizerError::Read {
            path: tokenizer_json.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut tok = Self {
            inner,
            bos: None,
            eos: None,
            pad: None,
            extra_tokens: Vec::new(),
            add_bos: false,
            chat_template: None,
        };
        if let Some(path) = tokenizer_config {
            let cfg = HfTokenizerConfig::read(path, None)?;
            let with_id =
                |t: Option<String>| t.and_then(|t| tok.inner.token_to_id(&t).map(|id| (id, t)));
            tok.bos = with_id(cfg.bos.clone());
            tok.eos = with_id(cfg.eos.clone());
            tok.pad = cfg.pad.as_deref().and_then(|t| tok.inner.token_to_id(t));
            tok.extra_tokens = cfg.extra_tokens();
            tok.chat_template = cfg.chat_template;
        }
        Ok(tok)
    }

    /// Reads a sentencepiece `tokenizer.model` (LLaMA/Vicuna: BPE with byte fallback) with the
    /// Hugging Face `tokenizer_config.json` and `special_tokens_map.json` beside it, when present:
    /// `add_bos_token` (default true, as transformers' `LlamaTokenizer`), `add_eos_token`
    /// (default false), `legacy` (default true: the text after a special token gets the dummy
    /// prefix, as the `sentencepiece` library and llama.cpp do), the special tokens (default:
    /// the model's own bos/eos ids) and the chat template.
    pub fn from_sentencepiece_files(
        model: &Path,
        tokenizer_config: Option<&Path>,
        special_tokens_map: Option<&Path>,
    ) -> Result<Self> {
        let read_err = |reason: String| TokenizerError::Read {
            path: model.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(model).map_err(|e| read_err(e.to_string()))?;
        let proto = SentencePieceModel::parse(&bytes).map_err(|e| read_err(e.to_string()))?;
        let piece_text = |id: i64| {
            usize::try_from(id)
                .ok()
                .and_then(|i| proto.pieces.get(i))
                .map(|p| p.text.clone())
        };
        let (default_bos, default_eos) = (piece_text(proto.bos_id), piece_text(proto.eos_id));
        let vocab = proto.into_vocab().map_err(|e| read_err(e.to_string()))?;
        let cfg = match tokenizer_config {
            Some(path) => HfTokenizerConfig::read(path, special_tokens_map)?,
            None => HfTokenizerConfig::default(),
        };
        let with_id = |t: Option<String>| t.and_then(|t| vocab.id_of(&t).map(|id| (id, t)));
        let bos = with_id(cfg.bos.clone().or(default_bos));
        let eos = with_id(cfg.eos.clone().or(default_eos));
        let opts = SpOptions {
            bos: bos
                .as_ref()
                .filter(|_| cfg.add_bos.unwrap_or(true))
                .map(|b| b.0),
            eos: eos
                .as_ref()
                .filter(|_| cfg.add_eos.unwrap_or(false))
                .map(|e| e.0),
            legacy: cfg.legacy.unwrap_or(true),
        };
        let inner = vocab.build(opts).map_err(|e| read_err(e.to_string()))?;
        Ok(Self {
            pad: cfg.pad.as_deref().and_then(|t| vocab.id_of(t)),
            extra_tokens: cfg.extra_tokens(),
            chat_template: cfg.chat_template,
            inner,
            bos,
            eos,
            add_bos: false,
        })
    }

    /// Builds the tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata.
    ///
    /// `gpt2` vocabularies become a byte-level BPE (digits split one by one, GPT-2 regex, no
    /// prefix space) with the control tokens (type 3) as special tokens; the ids then match
    /// Hugging Face's tokenizer for the same model.
    pub fn from_gguf_metadata(md: &HashMap<String, Value>) -> Result<Self> {
        let kind = md_string(md, "tokenizer.ggml.model")?;
        match kind.as_str() {
            "gpt2" => Self::from_gguf_gpt2(md),
            "llama" => Self::from_gguf_llama(md),
            _ => Err(TokenizerError::Unsupported(format!(
                "GGUF tokenizer.ggml.model `{kind}`: only byte-level BPE (`gpt2`) and sentencepiece BPE \
                 (`llama`) vocabularies can be built from GGUF metadata; use the model's Hugging Face \
                 directory (tokenizer.json) instead"
            ))),
        }
    }

    /// A sentencepiece vocabulary (`tokenizer.ggml.model = llama`): tokens, scores and token
    /// types; bos/eos/unk ids; `add_bos_token` (default true), `add_eos_token` (default false),
    /// `add_space_prefix` (default true). Text after special tokens gets the dummy prefix, as
    /// llama.cpp does.
    fn from_gguf_llama(md: &HashMap<String, Value>) -> Result<Self> {
        let tokens = md_string_array(md, "tokenizer.ggml.tokens")?;
        let numbers = |key: &str| -> Result<Vec<&Value>> {
            let list = md
                .get(key)
                .ok_or_else(|| TokenizerError::Metadata(format!("`{key}` is missing")))?
                .to_vec()
                .map_err(|e| TokenizerError::Metadata(format!("`{key}`: {e}")))?;
            if list.len() != tokens.len() {
                return Err(TokenizerError::Metadata(format!(
                    "`{key}` has {} entries for {} tokens",
                    list.len(),
                    tokens.len()
                )));
            }
            Ok(list.iter().collect())
        };
        let scores = numbers("tokenizer.ggml.scores")?;
        let types = numbers("tokenizer.ggml.token_type")?;
        let mut pieces = Vec::with_capacity(tokens.len());
        for (i, text) in tokens.iter().enumerate() {
            let score = match scores[i] {
                Value::F32(x) => *x,
                Value::F64(x) => *x as f32,
                _ => {
                    return Err(TokenizerError::Metadata(format!(
                        "tokenizer.ggml.scores[{i}] is not a float"
                    )))
                }
            };
            let kind = value_as_i64(types[i])
                .and_then(PieceKind::from_number)
                .ok_or_else(|| {
                    TokenizerError::Metadata(format!(
                        "tokenizer.ggml.token_type[{i}] is not a token type (1..=6)"
                    ))
                })?;
            pieces.push(Piece {
                text: text.clone(),
                score,
                kind,
            });
        }
        let flag = |key: &str, default: bool| match md.get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        };
        let vocab = SpVocab {
            byte_fallback: pieces.iter().any(|p| p.kind == PieceKind::Byte),
            add_dummy_prefix: flag("tokenizer.ggml.add_space_prefix", true),
            pieces,
        };
        let bos = gguf_special(md, "tokenizer.ggml.bos_token_id", &tokens)?;
        let eos = gguf_special(md, "tokenizer.ggml.eos_token_id", &tokens)?;
        let pad = gguf_special(md, "tokenizer.ggml.padding_token_id", &tokens)?;
        let unk = gguf_special(md, "tokenizer.ggml.unknown_token_id", &tokens)?;
        let opts = SpOptions {
            bos: bos
                .as_ref()
                .filter(|_| flag("tokenizer.ggml.add_bos_token", true))
                .map(|b| b.0),
            eos: eos
                .as_ref()
                .filter(|_| flag("tokenizer.ggml.add_eos_token", false))
                .map(|e| e.0),
            legacy: true,
        };
        let inner = vocab
            .build(opts)
            .map_err(|e| TokenizerError::Metadata(e.to_string()))?;
        let mut extra_tokens = Vec::new();
        if let Some((_, t)) = &unk {
            extra_tokens.push(("unk_token".to_string(), t.clone()));
        }
        if let Some((_, t)) = &pad {
            extra_tokens.push(("pad_token".to_string(), t.clone()));
        }
        Ok(Self {
            inner,
            bos,
            eos,
            pad: pad.map(|(id, _)| id),
            extra_tokens,
            add_bos: false,
            chat_template: gguf_chat_template(md)?,
        })
    }

    /// A byte-level BPE vocabulary (`tokenizer.ggml.model = gpt2`).
    fn from_gguf_gpt2(md: &HashMap<String, Value>) -> Result<Self> {
        let tokens = md_string_array(md, "tokenizer.ggml.tokens")?;
        let merges = md_string_array(md, "tokenizer.ggml.merges")?;
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| TokenizerError::Metadata(format!("tokenizer.ggml.token_type: {e}")))?
                .iter()
                .map(value_as_i64)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    TokenizerError::Metadata("tokenizer.ggml.token_type holds non-integers".into())
                })?,
            None => Vec::new(),
        };
        let alphabet = byte_level_alphabet();
        let mut vocab = tokenizers::models::bpe::Vocab::default();
        for (id, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), id as u32);
        }
        let mut merge_pairs = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').ok_or_else(|| {
                TokenizerError::Metadata(format!(
                    "merge {i} `{m}` is not two tokens separated by a space"
                ))
            })?;
            merge_pairs.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merge_pairs)
            .build()
            .map_err(|e| TokenizerError::Metadata(format!("cannot build the BPE model: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens stay whole; a "control" token spelled outside the byte alphabet is a
        // converter mislabel and is left alone (as transformers does).
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(t, ty)| **ty == 3 && t.chars().all(|c| alphabet.contains(&c)))
            .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        inner
            .add_special_tokens(control)
            .map_err(|e| TokenizerError::Metadata(format!("cannot add the control tokens: {e}")))?;
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, ty)| **ty == 4)
            .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
            .collect();
        inner.add_tokens(user).map_err(|e| {
            TokenizerError::Metadata(format!("cannot add the user-defined tokens: {e}"))
        })?;

        let bos = gguf_special(md, "tokenizer.ggml.bos_token_id", &tokens)?;
        let eos = gguf_special(md, "tokenizer.ggml.eos_token_id", &tokens)?;
        let pad = gguf_special(md, "tokenizer.ggml.padding_token_id", &tokens)?;
        let unk = gguf_special(md, "tokenizer.ggml.unknown_token_id", &tokens)?;
        let mut extra_tokens = Vec::new();
        if let Some((_, t)) = &unk {
            extra_tokens.push(("unk_token".to_string(), t.clone()));
        }
        if let Some((_, t)) = &pad {
            extra_tokens.push(("pad_token".to_string(), t.clone()));
        }
        let add_bos = matches!(
            md.get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        let chat_template = gguf_chat_template(md)?;
        Ok(Self {
            inner,
            bos,
            eos,
            pad: pad.map(|(id, _)| id),
            extra_tokens,
            add_bos,
            chat_template,
        })
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Beginning-of-sequence id.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|(id, _)| *id)
    }

    /// End-of-sequence id.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos.as_ref().map(|(id, _)| *id)
    }

    /// Padding id.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// The id of a token spelled exactly `token` (special tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The chat template text, when the model has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Replaces the chat template (e.g. one given on the command line).
    pub fn set_chat_template(&mut self, template: Option<String>) {
        self.chat_template = template;
    }

    /// Token ids of `text`; `add_special` adds the model's bos (and whatever its
    /// post-processor adds), as transformers' `encode(add_special_tokens=...)`.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special)
            .map_err(|e| TokenizerError::Codec(format!("cannot encode text: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special && self.add_bos {
            if let Some(bos) = self.bos_id() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; `skip_special` drops special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Codec(format!("cannot decode ids: {e}")))
    }

    /// A fresh incremental decoder for a stream of generated ids.
    pub fn stream(&self, skip_special: bool) -> TextStream {
        TextStream {
            skip_special,
            ids: Vec::new(),
            prefix: String::new(),
            prefix_index: 0,
        }
    }

    /// Renders the chat template for `messages` as transformers' `apply_chat_template(...,
    /// tokenize=False)` does (Jinja with `trim_blocks` and `lstrip_blocks`).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let source = self
            .chat_template
            .as_deref()
            .ok_or(TokenizerError::NoChatTemplate)?;
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(python_string_methods);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("the chat template raised an exception: {msg}"),
                ))
            },
        );
        env.add_template("chat", source)
            .map_err(|e| TokenizerError::Template(format!("cannot compile: {e}")))?;
        let template = env
            .get_template("chat")
            .map_err(|e| TokenizerError::Template(e.to_string()))?;
        let mut ctx: HashMap<String, minijinja::Value> = HashMap::new();
        ctx.insert(
            "messages".into(),
            minijinja::Value::from_serialize(messages),
        );
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        for (k, v) in &self.extra_tokens {
            ctx.insert(k.clone(), v.as_str().into());
        }
        fn tok_text(t: &Option<(u32, String)>) -> &str {
            t.as_ref().map(|(_, s)| s.as_str()).unwrap_or("")
        }
        ctx.insert("bos_token".into(), tok_text(&self.bos).into());
        ctx.insert("eos_token".into(), tok_text(&self.eos).into());
        template.render(ctx).map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            TokenizerError::Template(msg)
        })
    }
}

/// Incremental decoder: feed generated ids one by one, get text pieces that are always whole
/// UTF-8 characters (a character split over several byte tokens comes out once complete).
#[derive(Debug, Clone)]
pub struct TextStream {
    skip_special: bool,
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl TextStream {
    /// Adds one id; returns the new text it completes, if any.
    pub fn step(&mut self, tokenizer: &ModelTokenizer, id: u32) -> Result<Option<String>> {
        tokenizers::tokenizer::step_decode_stream(
            &tokenizer.inner,
            vec![id],
            self.skip_special,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(|e| TokenizerError::Codec(format!("cannot decode token {id}: {e}")))
    }

    /// Ends the stream: the text still held back (bytes that never completed a character come
    /// out as U+FFFD, as a whole decode shows them), if any.
    pub fn finish(&mut self, tokenizer: &ModelTokenizer) -> Result<Option<String>> {
        let full = tokenizer.decode(&self.ids, self.skip_special)?;
        let rest = match full.strip_prefix(self.prefix.as_str()) {
            Some(rest) if !rest.is_empty() => Some(rest.to_string()),
            _ => None,
        };
        self.ids.clear();
        self.prefix.clear();
        self.prefix_index = 0;
        Ok(rest)
    }
}

/// Python `str`/`dict` methods that Hugging Face chat templates call (`strip`, `startswith`,
/// `split`, `items`, ...), which Jinja2 gets from Python and minijinja lacks.
fn python_string_methods(
    _state: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use minijinja::value::ValueKind;
    use minijinja::{Error, ErrorKind, Value as V};
    let unknown = || {
        Error::new(
            ErrorKind::UnknownMethod,
            format!("unknown method `{method}`"),
        )
    };
    let arg_str =
        |i: usize| -> Option<String> { args.get(i).and_then(|a| a.as_str()).map(str::to_string) };
    match value.kind() {
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            let chars = arg_str(0);
            let set = |c: char| match &chars {
                Some(cs) => cs.contains(c),
                None => c.is_whitespace(),
            };
            Ok(match method {
                "strip" => V::from(s.trim_matches(set)),
                "lstrip" => V::from(s.trim_start_matches(set)),
                "rstrip" => V::from(s.trim_end_matches(set)),
                "upper" => V::from(s.to_uppercase()),
                "lower" => V::from(s.to_lowercase()),
                "startswith" => V::from(s.starts_with(arg_str(0).ok_or_else(unknown)?.as_str())),
                "endswith" => V::from(s.ends_with(arg_str(0).ok_or_else(unknown)?.as_str())),
                "replace" => {
                    let (from, to) = (
                        arg_str(0).ok_or_else(unknown)?,
                        arg_str(1).ok_or_else(unknown)?,
                    );
                    V::from(s.replace(&from, &to))
                }
                "split" => match arg_str(0) {
                    Some(sep) => V::from(s.split(sep.as_str()).map(V::from).collect::<Vec<_>>()),
                    None => V::from(s.split_whitespace().map(V::from).collect::<Vec<_>>()),
                },
                _ => return Err(unknown()),
            })
        }
        ValueKind::Map => match method {
            "items" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    out.push(V::from(vec![k, v]));
                }
                Ok(V::from(out))
            }
            "keys" => Ok(V::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    out.push(value.get_item(&k)?);
                }
                Ok(V::from(out))
            }
            "get" => {
                let key = args.first().ok_or_else(unknown)?;
                let v = value.get_item(key)?;
                Ok(if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(V::from(()))
                } else {
                    v
                })
            }
            _ => Err(unknown()),
        },
        _ => Err(unknown()),
    }
}

/// The 256 characters GPT-2's byte-level alphabet spells bytes with.
fn byte_level_alphabet() -> std::collections::HashSet<char> {
    let mut set = std::collections::HashSet::new();
    let mut n = 0u32;
    for b in 0u32..256 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        if let Some(ch) = char::from_u32(c) {
            set.insert(ch);
        }
    }
    set
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::U8(x) => Some(i64::from(*x)),
        Value::I8(x) => Some(i64::from(*x)),
        Value::U16(x) => Some(i64::from(*x)),
        Value::I16(x) => Some(i64::from(*x)),
        Value::U32(x) => Some(i64::from(*x)),
        Value::I32(x) => Some(i64::from(*x)),
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}

fn md_string(md: &HashMap<String, Value>, key: &str) -> Result<String> {
    md.get(key)
        .ok_or_else(|| TokenizerError::Metadata(format!("`{key}` is missing")))?
        .to_string()
        .cloned()
        .map_err(|e| TokenizerError::Metadata(format!("`{key}`: {e}")))
}

fn md_string_array(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>> {
    let list = md
        .get(key)
        .ok_or_else(|| TokenizerError::Metadata(format!("`{key}` is missing")))?
        .to_vec()
        .map_err(|e| TokenizerError::Metadata(format!("`{key}`: {e}")))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.to_string()
                .cloned()
                .map_err(|_| TokenizerError::Metadata(format!("`{key}`[{i}] is not a string")))
        })
        .collect()
}

/// The id and text of the special token a GGUF metadata key names, if present.
fn gguf_special(
    md: &HashMap<String, Value>,
    key: &str,
    tokens: &[String],
) -> Result<Option<(u32, String)>> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    let id = value_as_i64(v)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| TokenizerError::Metadata(format!("{key} is not a token id")))?;
    let text = tokens.get(id as usize).ok_or_else(|| {
        TokenizerError::Metadata(format!(
            "{key} = {id} is outside the vocabulary ({} tokens)",
            tokens.len()
        ))
    })?;
    Ok(Some((id, text.clone())))
}

/// `tokenizer.chat_template` of a GGUF file, if present.
fn gguf_chat_template(md: &HashMap<String, Value>) -> Result<Option<String>> {
    match md.get("tokenizer.chat_template") {
        Some(v) => Ok(Some(
            v.to_string()
                .map_err(|e| TokenizerError::Metadata(format!("tokenizer.chat_template: {e}")))?
                .clone(),
        )),
        None => Ok(None),
    }
}

/// What a Hugging Face `tokenizer_config.json` (with `special_tokens_map.json`, whose entries
/// win, as in transformers) says about special tokens, BOS/EOS insertion and the chat template.
#[derive(Debug, Default)]
struct HfTokenizerConfig {
    bos: Option<String>,
    eos: Option<String>,
    unk: Option<String>,
    pad: Option<String>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    legacy: Option<bool>,
    chat_template: Option<String>,
}

impl HfTokenizerConfig {
    fn read(tokenizer_config: &Path, special_tokens_map: Option<&Path>) -> Result<Self> {
        let cfg = read_json(tokenizer_config)?;
        let map = match special_tokens_map {
            Some(p) if p.is_file() => Some(read_json(p)?),
            _ => None,
        };
        let token_text = |v: &serde_json::Value, key: &str| -> Option<String> {
            match v.get(key)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
                _ => None,
            }
        };
        let token = |key: &str| {
            map.as_ref()
                .and_then(|m| token_text(m, key))
                .or_else(|| token_text(&cfg, key))
        };
        let flag = |key: &str| cfg.get(key).and_then(|v| v.as_bool());
        let chat_template = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default", else the first.
            Some(serde_json::Value::Array(list)) => {
                let named = |want: Option<&str>| {
                    list.iter().find_map(|t| {
                        let name = t.get("name")?.as_str()?;
                        if want.is_none_or(|w| w == name) {
                            t.get("template")?.as_str().map(str::to_string)
                        } else {
                            None
                        }
                    })
                };
                named(Some("default")).or_else(|| named(None))
            }
            _ => None,
        };
        Ok(Self {
            bos: token("bos_token"),
            eos: token("eos_token"),
            unk: token("unk_token"),
            pad: token("pad_token"),
            add_bos: flag("add_bos_token"),
            add_eos: flag("add_eos_token"),
            legacy: flag("legacy"),
            chat_template,
        })
    }

    /// Template variables besides bos/eos (`unk_token`, `pad_token`).
    fn extra_tokens(&self) -> Vec<(String, String)> {
        [("unk_token", &self.unk), ("pad_token", &self.pad)]
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
            .collect()
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenizerError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| TokenizerError::Read {
        path: path.to_path_buf(),
        reason: format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ),
    })
}
