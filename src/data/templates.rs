//! Conversation templates and loss masks: `plain` (stage 1), `vicuna_v1` (the paper's) and
//! `chatml` (SmolLM2).
//!
//! A conversation is first rendered to one string together with the byte spans that are
//! supervised; the string is then tokenised around the single `<image>` placeholder (the text
//! before it and the text after it separately, so no BPE merge crosses the graph). A token is
//! supervised iff its byte span overlaps a supervised span; everything else gets label -100.
//! With byte-level BPE the space before an answer merges into the answer's first token
//! (` Yes`): that token is supervised, as LLaVA's count-based masking also does.
//!
//! - `plain`: `[BOS]<image>{caption}\n`; the question is discarded; caption and `\n` supervised.
//! - `vicuna_v1`: `{system} USER: <image>\n{q} ASSISTANT: {a}</s>USER: ...`; each answer and its
//!   `</s>` supervised, everything up to and including ` ASSISTANT: ` masked.
//! - `chatml`: `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<image>\n{q}<|im_end|>\n
//!   <|im_start|>assistant\n{a}<|im_end|>\n`; each answer and its `<|im_end|>` supervised. The
//!   `\n` after `<|im_end|>` is not: generation stops at `<|im_end|>`, so the model never has to
//!   produce it.
//!
//! The system prompt is part of the template, and inference renders its prompt with
//! [`Template::render_prompt`] / [`Template::tokenize_prompt`], so training and generation
//! cannot drift apart.

use std::ops::Range;

use tokenizers::Tokenizer;

use super::record::{Role, Turn, IMAGE_TOKEN};
use super::DataError;
use crate::model::{ModelTokenizer, IGNORE_INDEX};

/// Default maximum sequence length (tokens, graph tokens included).
pub const DEFAULT_MAX_LEN: usize = 2048;

/// Vicuna v1 system prompt (the reference's training prompt).
pub const VICUNA_SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/// The official InstructMol code's evaluation prompt (LLaVA's `llava_v1`, "curious human"):
/// the reference trains with [`VICUNA_SYSTEM`] and evaluates with this one.
pub const LLAVA_SYSTEM: &str = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";

/// SmolLM2-Instruct's default system prompt (from its chat template).
pub const CHATML_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// The template families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// Stage-1 alignment: graph tokens then the caption.
    Plain,
    /// Vicuna v1 (LLaVA `llava_v1`/`vicuna_v1`).
    VicunaV1,
    /// LLaVA `llava_v1`: Vicuna v1 with the "curious human" system prompt (the official
    /// code's evaluation template).
    LlavaV1,
    /// ChatML (SmolLM2-Instruct).
    Chatml,
}

impl TemplateKind {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TemplateKind::Plain => "plain",
            TemplateKind::VicunaV1 => "vicuna_v1",
            TemplateKind::LlavaV1 => "llava_v1",
            TemplateKind::Chatml => "chatml",
        }
    }
}

impl std::str::FromStr for TemplateKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(TemplateKind::Plain),
            "vicuna_v1" | "vicuna" | "v1" => Ok(TemplateKind::VicunaV1),
            "llava_v1" => Ok(TemplateKind::LlavaV1),
            "chatml" => Ok(TemplateKind::Chatml),
            _ => Err(format!(
                "unknown template `{s}` (expected plain, vicuna_v1, llava_v1 or chatml)"
            )),
        }
    }
}

/// A template with its token-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Which template.
    pub kind: TemplateKind,
    /// Token id prepended to every sequence (plain and vicuna_v1 use the model's BOS; ChatML
    /// models such as SmolLM2 add none).
    pub bos_id: Option<u32>,
    /// Maximum sequence length, counting the graph tokens that replace `<image>`.
    pub max_len: usize,
}

/// A conversation rendered to text, with the supervised byte spans and the `<image>` offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The full text, `<image>` included.
    pub text: String,
    /// Byte ranges of `text` whose tokens are supervised.
    pub supervised: Vec<Range<usize>>,
    /// Byte offset of the `<image>` placeholder in `text`, if the conversation has one.
    pub image_at: Option<usize>,
}

/// Token ids and labels of one example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Token ids; the `<image>` slot holds id 0 (the trainer replaces it by the graph tokens).
    pub input_ids: Vec<u32>,
    /// Per token: the id to predict there, or [`IGNORE_INDEX`].
    pub labels: Vec<i64>,
    /// Index of the one `<image>` slot in `input_ids`.
    pub image_position: Option<usize>,
    /// Whether tokens were cut to fit `max_len`.
    pub truncated: bool,
}

impl TokenizedExample {
    /// Sequence length once the slot is replaced by `graph_tokens` embeddings.
    pub fn expanded_len(&self, graph_tokens: usize) -> usize {
        match self.image_position {
            Some(_) => self.input_ids.len() - 1 + graph_tokens,
            None => self.input_ids.len(),
        }
    }
}

impl Template {
    /// `kind` with no BOS and the default maximum length.
    pub fn new(kind: TemplateKind) -> Self {
        Self {
            kind,
            bos_id: None,
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// `kind` with the BOS a tokenizer defines: `<s>` for plain and vicuna_v1 when the
    /// vocabulary has it; none for chatml. Models whose BOS has another name (SmolLM2's
    /// `<|im_start|>`) set it with [`Template::with_bos`].
    pub fn for_tokenizer(kind: TemplateKind, tokenizer: &Tokenizer) -> Self {
        let bos_id = match kind {
            TemplateKind::Chatml => None,
            _ => tokenizer.token_to_id("<s>"),
        };
        Self {
            bos_id,
            ..Self::new(kind)
        }
    }

    /// The template a run names (`plain`, `vicuna_v1`, `chatml`) for a model's tokenizer, cut
    /// at `max_len` tokens: plain and vicuna_v1 start with the tokenizer's BOS (as LLaMA's
    /// tokenizer adds it), chatml with none. The one way training and inference build it.
    pub fn for_model(
        name: &str,
        tokenizer: &ModelTokenizer,
        max_len: usize,
    ) -> Result<Self, String> {
        let kind: TemplateKind = name.parse()?;
        let template = Self::for_tokenizer(kind, tokenizer.inner()).with_max_len(max_len);
        Ok(match kind {
            TemplateKind::Plain | TemplateKind::VicunaV1 | TemplateKind::LlavaV1 => {
                template.with_bos(tokenizer.bos_id())
            }
            TemplateKind::Chatml => template,
        })
    }

    /// The same template with another BOS.
    pub fn with_bos(mut self, bos_id: Option<u32>) -> Self {
        self.bos_id = bos_id;
        self
    }

    /// The same template with another maximum length.
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The system prompt used in training and inference (empty for plain).
    pub fn system_prompt(&self) -> &'static str {
        match self.kind {
            TemplateKind::Plain => "",
            TemplateKind::VicunaV1 => VICUNA_SYSTEM,
            TemplateKind::LlavaV1 => LLAVA_SYSTEM,
            TemplateKind::Chatml => CHATML_SYSTEM,
        }
    }

    /// The text that ends an answer: generation stops when it appears.
    pub fn stop_text(&self) -> &'static str {
        match self.kind {
            TemplateKind::Plain => "\n",
            TemplateKind::VicunaV1 | TemplateKind::LlavaV1 => "</s>",
            TemplateKind::Chatml => "<|im_end|>",
        }
    }

    /// Renders a conversation (human/gpt turns, human first). The first human turn's
    /// `<image>` is moved to its front as `<image>\n`.
    pub fn render(&self, turns: &[Turn]) -> Result<Rendered, String> {
        for (i, t) in turns.iter().enumerate() {
            let want = if i % 2 == 0 { Role::Human } else { Role::Gpt };
            if t.from != want {
                return Err(format!("turn {i} is from {:?}, expected {want:?}", t.from));
            }
            if i > 0 && t.value.contains(IMAGE_TOKEN) {
                return Err(format!(
                    "turn {i} contains {IMAGE_TOKEN}; only the first may"
                ));
            }
        }
        let Some(first) = turns.first() else {
            return Err("empty conversation".into());
        };
        let has_image = first.value.contains(IMAGE_TOKEN);
        let first_q = if has_image {
            format!(
                "{IMAGE_TOKEN}\n{}",
                first.value.replace(IMAGE_TOKEN, "").trim()
            )
        } else {
            first.value.clone()
        };
        let mut r = Rendered {
            text: String::new(),
            supervised: Vec::new(),
            image_at: None,
        };
        let put = |r: &mut Rendered, s: &str, supervised: bool| {
            let start = r.text.len();
            r.text.push_str(s);
            if supervised && !s.is_empty() {
                r.supervised.push(start..r.text.len());
            }
        };
        match self.kind {
            TemplateKind::Plain => {
                if has_image {
                    put(&mut r, IMAGE_TOKEN, false);
                }
                if let Some(answer) = turns.get(1) {
                    put(&mut r, &format!("{}\n", answer.value), true);
                }
            }
            TemplateKind::VicunaV1 | TemplateKind::LlavaV1 => {
                put(&mut r, &format!("{} ", self.system_prompt()), false);
                for (i, t) in turns.iter().enumerate() {
                    match t.from {
                        Role::Human => {
                            let q = if i == 0 { &first_q } else { &t.value };
                            put(&mut r, &format!("USER: {q} "), false);
                        }
                        Role::Gpt => {
                            put(&mut r, "ASSISTANT: ", false);
                            put(&mut r, &format!("{}</s>", t.value), true);
                        }
                    }
                }
            }
            TemplateKind::Chatml => {
                let sys = format!("<|im_start|>system\n{}<|im_end|>\n", self.system_prompt());
                put(&mut r, &sys, false);
                for (i, t) in turns.iter().enumerate() {
                    match t.from {
                        Role::Human => {
                            let q = if i == 0 { &first_q } else { &t.value };
                            put(&mut r, &format!("<|im_start|>user\n{q}<|im_end|>\n"), false);
                        }
                        Role::Gpt => {
                            put(&mut r, "<|im_start|>assistant\n", false);
                            put(&mut r, &format!("{}<|im_end|>", t.value), true);
                            put(&mut r, "\n", false);
                        }
                    }
                }
            }
        }
        r.image_at = if has_image {
            r.text.find(IMAGE_TOKEN)
        } else {
            None
        };
        Ok(r)
    }

    /// The generation prompt for one question (with `<image>` if the question has it):
    /// everything the model sees before it starts answering.
    pub fn render_prompt(&self, question: &str) -> String {
        let q = if question.contains(IMAGE_TOKEN) {
            format!(
                "{IMAGE_TOKEN}\n{}",
                question.replace(IMAGE_TOKEN, "").trim()
            )
        } else {
            question.to_string()
        };
        match self.kind {
            TemplateKind::Plain => {
                if question.contains(IMAGE_TOKEN) {
                    IMAGE_TOKEN.to_string()
                } else {
                    String::new()
                }
            }
            TemplateKind::VicunaV1 | TemplateKind::LlavaV1 => {
                format!("{} USER: {q} ASSISTANT:", self.system_prompt())
            }
            TemplateKind::Chatml => format!(
                "<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
                self.system_prompt()
            ),
        }
    }

    /// The generation prompt of a follow-up question: the conversation so far (`history`,
    /// complete human/gpt pairs, the first human turn carrying `<image>`), then `question` as a
    /// new user turn, ending where the assistant's answer starts. It is a prefix of
    /// [`Self::render`] of `history` plus the question and its answer, and equals
    /// [`Self::render_prompt`] when `history` is empty. The plain template has no turns: its
    /// prompt is the `<image>` slot alone, whatever the history.
    pub fn render_followup(&self, history: &[Turn], question: &str) -> Result<String, String> {
        let Some(first) = history.first() else {
            return Ok(self.render_prompt(question));
        };
        if !history.len().is_multiple_of(2) {
            return Err("the history must end with an assistant turn".into());
        }
        if question.contains(IMAGE_TOKEN) {
            return Err(format!(
                "a follow-up question cannot contain {IMAGE_TOKEN}; only the first may"
            ));
        }
        let mut text = self.render(history)?.text;
        match self.kind {
            TemplateKind::Plain => return Ok(self.render_prompt(&first.value)),
            TemplateKind::VicunaV1 | TemplateKind::LlavaV1 => {
                text.push_str(&format!("USER: {question} ASSISTANT:"))
            }
            TemplateKind::Chatml => text.push_str(&format!(
                "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
            )),
        }
        Ok(text)
    }

    /// Tokenises the generation prompt of [`Self::render_followup`] (all labels
    /// [`IGNORE_INDEX`]).
    pub fn tokenize_followup(
        &self,
        tokenizer: &Tokenizer,
        history: &[Turn],
        question: &str,
    ) -> Result<TokenizedExample, DataError> {
        let text =
            self.render_followup(history, question)
                .map_err(|message| DataError::Conversation {
                    id: String::new(),
                    message,
                })?;
        let image_at = text.find(IMAGE_TOKEN);
        let rendered = Rendered {
            text,
            supervised: Vec::new(),
            image_at,
        };
        self.tokenize_rendered(tokenizer, &rendered, 1)
    }

    /// Tokenises a conversation with its loss mask. `graph_tokens` is how many embeddings
    /// will replace the `<image>` slot (it counts against `max_len`); the tail is cut to fit,
    /// never the slot.
    pub fn tokenize(
        &self,
        tokenizer: &Tokenizer,
        turns: &[Turn],
        graph_tokens: usize,
    ) -> Result<TokenizedExample, DataError> {
        let rendered = self
            .render(turns)
            .map_err(|message| DataError::Conversation {
                id: String::new(),
                message,
            })?;
        self.tokenize_rendered(tokenizer, &rendered, graph_tokens)
    }

    /// Tokenises the generation prompt of one question (all labels [`IGNORE_INDEX`]).
    pub fn tokenize_prompt(
        &self,
        tokenizer: &Tokenizer,
        question: &str,
    ) -> Result<TokenizedExample, DataError> {
        let text = self.render_prompt(question);
        let image_at = text.find(IMAGE_TOKEN);
        let rendered = Rendered {
            text,
            supervised: Vec::new(),
            image_at,
        };
        self.tokenize_rendered(tokenizer, &rendered, 1)
    }

    /// Tokenises rendered text: BOS, the text before `<image>`, the slot, the text after.
    pub fn tokenize_rendered(
        &self,
        tokenizer: &Tokenizer,
        rendered: &Rendered,
        graph_tokens: usize,
    ) -> Result<TokenizedExample, DataError> {
        let text = rendered.text.as_str();
        let (before, after, after_start) = match rendered.image_at {
            Some(at) => (
                &text[..at],
                &text[at + IMAGE_TOKEN.len()..],
                at + IMAGE_TOKEN.len(),
            ),
            None => (text, "", text.len()),
        };
        let mut ids: Vec<u32> = Vec::new();
        let mut labels: Vec<i64> = Vec::new();
        if let Some(bos) = self.bos_id {
            ids.push(bos);
            labels.push(IGNORE_INDEX);
        }
        let sup = &rendered.supervised;
        encode_into(tokenizer, before, 0, sup, &mut ids, &mut labels)?;
        let image_position = rendered.image_at.map(|_| ids.len());
        if image_position.is_some() {
            ids.push(0);
            labels.push(IGNORE_INDEX);
        }
        encode_into(tokenizer, after, after_start, sup, &mut ids, &mut labels)?;
        let extra = image_position.map_or(0, |_| graph_tokens.saturating_sub(1));
        let mut truncated = false;
        if ids.len() + extra > self.max_len {
            let keep = self
                .max_len
                .saturating_sub(extra)
                .max(image_position.map_or(0, |p| p + 1));
            truncated = keep < ids.len();
            ids.truncate(keep);
            labels.truncate(keep);
        }
        Ok(TokenizedExample {
            input_ids: ids,
            labels,
            image_position,
            truncated,
        })
    }
}

/// Appends the tokens of `segment` (which starts at byte `shift` of the rendered text) and
/// their labels: supervised iff the token's bytes overlap a `supervised` span.
fn encode_into(
    tokenizer: &Tokenizer,
    segment: &str,
    shift: usize,
    supervised: &[Range<usize>],
    ids: &mut Vec<u32>,
    labels: &mut Vec<i64>,
) -> Result<(), DataError> {
    if segment.is_empty() {
        return Ok(());
    }
    let enc = tokenizer
        .encode(segment, false)
        .map_err(|e| DataError::Tokenizer(e.to_string()))?;
    for (&id, &(s, e)) in enc.get_ids().iter().zip(enc.get_offsets()) {
        let (s, e) = (s + shift, e + shift);
        let sup = e > s && supervised.iter().any(|r| s < r.end && e > r.start);
        ids.push(id);
        labels.push(if sup { i64::from(id) } else { IGNORE_INDEX });
    }
    Ok(())
}

/// Tokenises `turns` with `template`, counting the `<image>` slot as one token (use
/// [`Template::tokenize`] to reserve room for the real number of graph tokens).
pub fn tokenize(
    tokenizer: &Tokenizer,
    turns: &[Turn],
    template: &Template,
) -> Result<TokenizedExample, DataError> {
    template.tokenize(tokenizer, turns, 1)
}
