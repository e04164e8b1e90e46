//! The OpenAI chat-completions schema as the server reads and writes it: a request body is
//! checked field by field (an error names the offending field, as OpenAI's `param`), and
//! answers, stream chunks and errors are built as the `openai` clients expect them.
//!
//! The molecule travels as a content part `{"type": "molecule", "smiles": "..."}` (or
//! `"selfies"`), or, for clients that can only send strings, as an extra body field
//! `"molecule": "SMILES"` / `{"smiles": ...}` / `{"selfies": ...}`.

use serde_json::{json, Map, Value};

use crate::data::record::Turn;

/// Most stop strings a request may give (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;
/// Most alternatives per position a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;
/// New tokens when a request does not say.
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// Temperature when a request does not say: the reference evaluation's.
pub const DEFAULT_TEMPERATURE: f64 = 0.2;

/// A request the server cannot take: HTTP status, OpenAI error type, offending field.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, for the client.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A short machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 about `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    /// An error with the given status, type and code, about no particular field.
    pub fn new(status: u16, kind: &'static str, code: &'static str, message: String) -> Self {
        Self {
            status,
            message,
            kind,
            param: None,
            code: Some(code),
        }
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// The molecule a request asks about, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoleculeInput {
    /// A SMILES string.
    Smiles(String),
    /// A SELFIES string.
    Selfies(String),
}

/// A checked chat-completions request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The run to answer with (`None`: the only one, or the first).
    pub model: Option<String>,
    /// Earlier complete user/assistant exchanges (the first user turn gets the graph tokens).
    pub history: Vec<Turn>,
    /// The last user message.
    pub question: String,
    /// The molecule.
    pub molecule: MoleculeInput,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Softmax temperature (0: greedy).
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Seed of the sampler (`None`: the server picks one).
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream server-sent events.
    pub stream: bool,
    /// Include `usage` in the last stream chunk (`stream_options.include_usage`).
    pub stream_usage: bool,
    /// Return log-probabilities of the chosen tokens, with this many alternatives each.
    pub logprobs: Option<usize>,
    /// OpenAI's frequency penalty.
    pub frequency_penalty: f64,
    /// OpenAI's presence penalty.
    pub presence_penalty: f64,
    /// Hugging Face's repetition penalty (extension; 1 = off).
    pub repetition_penalty: f64,
    /// Also answer p(Yes) / (p(Yes) + p(No)) at the first answer token (extension).
    pub prob_yes: bool,
}

/// The JSON type of a value, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, want: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        param,
        format!("`{param}` must be {want}, got {}", type_name(got)),
    )
}

/// Reads an optional number field within `[lo, hi]`.
fn number(body: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if !(lo..=hi).contains(&x) {
                return Err(ApiError::invalid(
                    key,
                    format!("`{key}` must be between {lo} and {hi}, got {x}"),
                ));
            }
            Ok(Some(x))
        }
        Some(v) => Err(wrong_type(key, "a number", v)),
    }
}

/// Reads an optional non-negative integer field.
fn integer(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) => Ok(Some(x)),
            None => Err(ApiError::invalid(
                key,
                format!("`{key}` must be a non-negative integer, got {n}"),
            )),
        },
        Some(v) => Err(wrong_type(key, "an integer", v)),
    }
}

/// Reads an optional boolean field.
fn boolean(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "a boolean", v)),
    }
}

/// A molecule given as `"SMILES"`, `{"smiles": ...}` or `{"selfies": ...}` (field `param`).
fn molecule_value(param: &str, v: &Value) -> Result<MoleculeInput, ApiError> {
    let text = |s: &str, field: &str| -> Result<String, ApiError> {
        if s.trim().is_empty() {
            return Err(ApiError::invalid(
                field,
                format!("`{field}` is empty: give a SMILES or SELFIES string"),
            ));
        }
        Ok(s.trim().to_string())
    };
    match v {
        Value::String(s) => Ok(MoleculeInput::Smiles(text(s, param)?)),
        Value::Object(o) => match (o.get("smiles"), o.get("selfies")) {
            (Some(Value::String(s)), None) => Ok(MoleculeInput::Smiles(text(s, param)?)),
            (None, Some(Value::String(s))) => Ok(MoleculeInput::Selfies(text(s, param)?)),
            (Some(_), Some(_)) => Err(ApiError::invalid(
                param,
                format!("`{param}` has both `smiles` and `selfies`: give one"),
            )),
            (Some(v), None) => Err(wrong_type(&format!("{param}.smiles"), "a string", v)),
            (None, Some(v)) => Err(wrong_type(&format!("{param}.selfies"), "a string", v)),
            (None, None) => Err(ApiError::invalid(
                param,
                format!("`{param}` needs a `smiles` or a `selfies` string"),
            )),
        },
        other => Err(wrong_type(param, "a SMILES string or an object", other)),
    }
}

/// The text of a message's `content` (a string or content parts); a molecule part is returned
/// separately.
fn content(param: &str, v: &Value) -> Result<(String, Option<MoleculeInput>), ApiError> {
    match v {
        Value::String(s) => Ok((s.clone(), None)),
        Value::Array(parts) => {
            let mut text = Vec::new();
            let mut molecule = None;
            for (j, part) in parts.iter().enumerate() {
                let p = format!("{param}[{j}]");
                let Value::Object(o) = part else {
                    return Err(wrong_type(&p, "a content part object", part));
                };
                match o.get("type").and_then(Value::as_str) {
                    Some("text") => match o.get("text") {
                        Some(Value::String(s)) => text.push(s.clone()),
                        Some(v) => return Err(wrong_type(&format!("{p}.text"), "a string", v)),
                        None => {
                            return Err(ApiError::invalid(
                                format!("{p}.text"),
                                "a text part needs `text`",
                            ))
                        }
                    },
                    Some("molecule") => {
                        if molecule.is_some() {
                            return Err(ApiError::invalid(
                                p,
                                "a message may carry one molecule part",
                            ));
                        }
                        molecule = Some(molecule_value(&p, part)?);
                    }
                    Some(other) => {
                        return Err(ApiError::invalid(
                            format!("{p}.type"),
                            format!(
                                "content part type `{other}` is not supported: use `text` or \
                                 `molecule`"
                            ),
                        ))
                    }
                    None => {
                        return Err(ApiError::invalid(
                            format!("{p}.type"),
                            "a content part needs a `type` string",
                        ))
                    }
                }
            }
            Ok((text.join("\n"), molecule))
        }
        other => Err(wrong_type(
            param,
            "a string or an array of content parts",
            other,
        )),
    }
}

/// Checks a chat-completions body.
pub fn parse_chat(body: &Value) -> Result<ChatRequest, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid(
            "body",
            format!(
                "the request body must be a JSON object, got {}",
                type_name(body)
            ),
        ));
    };
    let model = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(wrong_type("model", "a string", v)),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(ApiError::invalid("messages", "`messages` is empty")),
        Some(v) => return Err(wrong_type("messages", "an array", v)),
        None => return Err(ApiError::invalid("messages", "`messages` is required")),
    };
    let mut molecule = match body.get("molecule") {
        None | Some(Value::Null) => None,
        Some(v) => Some(molecule_value("molecule", v)?),
    };
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let p = format!("messages[{i}]");
        let Value::Object(o) = m else {
            return Err(wrong_type(&p, "a message object", m));
        };
        let role = match o.get("role") {
            Some(Value::String(r)) => r.as_str(),
            Some(v) => return Err(wrong_type(&format!("{p}.role"), "a string", v)),
            None => {
                return Err(ApiError::invalid(
                    format!("{p}.role"),
                    "a message needs a `role`",
                ))
            }
        };
        let (text, part_molecule) = match o.get("content") {
            Some(v) => content(&format!("{p}.content"), v)?,
            None => {
                return Err(ApiError::invalid(
                    format!("{p}.content"),
                    "a message needs `content`",
                ))
            }
        };
        if let Some(pm) = part_molecule {
            if role != "user" {
                return Err(ApiError::invalid(
                    format!("{p}.content"),
                    "only a user message may carry the molecule",
                ));
            }
            if molecule.is_some() {
                return Err(ApiError::invalid(
                    format!("{p}.content"),
                    "the molecule is given twice: one conversation is about one molecule",
                ));
            }
            molecule = Some(pm);
        }
        let want_user = turns.len().is_multiple_of(2);
        match role {
            "user" if want_user => turns.push(Turn::human(text)),
            "assistant" if !want_user => turns.push(Turn::gpt(text)),
            "user" | "assistant" => {
                return Err(ApiError::invalid(
                    format!("{p}.role"),
                    "messages must alternate user and assistant, starting with user",
                ))
            }
            "system" | "developer" => {
                return Err(ApiError::invalid(
                    format!("{p}.role"),
                    "system messages are not supported: the model answers with the system \
                     prompt it was trained with",
                ))
            }
            other => {
                return Err(ApiError::invalid(
                    format!("{p}.role"),
                    format!("unknown role `{other}`: use `user` or `assistant`"),
                ))
            }
        }
    }
    if turns.len().is_multiple_of(2) {
        return Err(ApiError::invalid(
            "messages",
            "the last message must be the user's question",
        ));
    }
    let question = turns.pop().map(|t| t.value).unwrap_or_default();
    let molecule = molecule.ok_or_else(|| {
        ApiError::invalid(
            "messages",
            "no molecule: add a content part {\"type\": \"molecule\", \"smiles\": \"...\"} to a \
             user message, or a \"molecule\" field to the body",
        )
    })?;
    if let Some(n) = integer(body, "n")? {
        if n != 1 {
            return Err(ApiError::invalid("n", "only `n` = 1 is supported"));
        }
    }
    let max_tokens = match (
        integer(body, "max_completion_tokens")?,
        integer(body, "max_tokens")?,
    ) {
        (Some(n), _) | (None, Some(n)) => n as usize,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    if max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens",
            "`max_tokens` must be at least 1",
        ));
    }
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(wrong_type(&format!("stop[{i}]"), "a string", v)),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("stop", "a string or an array of strings", v)),
    };
    if stop.len() > MAX_STOP_STRINGS {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOP_STRINGS} stop strings"),
        ));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop strings must not be empty"));
    }
    let logprobs = boolean(body, "logprobs")?.unwrap_or(false);
    let top = integer(body, "top_logprobs")?;
    if let Some(k) = top {
        if k as usize > MAX_TOP_LOGPROBS {
            return Err(ApiError::invalid(
                "top_logprobs",
                format!("`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}"),
            ));
        }
        if !logprobs {
            return Err(ApiError::invalid(
                "top_logprobs",
                "`top_logprobs` needs `logprobs`: true",
            ));
        }
    }
    let stream = boolean(body, "stream")?.unwrap_or(false);
    let stream_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(wrong_type("stream_options.include_usage", "a boolean", v)),
        },
        Some(v) => return Err(wrong_type("stream_options", "an object", v)),
    };
    Ok(ChatRequest {
        model,
        history: turns,
        question,
        molecule,
        max_tokens,
        temperature: number(body, "temperature", 0.0, 2.0)?.unwrap_or(DEFAULT_TEMPERATURE),
        top_p: number(body, "top_p", 0.0, 1.0)?.unwrap_or(1.0),
        seed: integer(body, "seed")?,
        stop,
        stream,
        stream_usage,
        logprobs: logprobs.then_some(top.unwrap_or(0) as usize),
        frequency_penalty: number(body, "frequency_penalty", -2.0, 2.0)?.unwrap_or(0.0),
        presence_penalty: number(body, "presence_penalty", -2.0, 2.0)?.unwrap_or(0.0),
        repetition_penalty: match number(body, "repetition_penalty", 0.0, 10.0)? {
            Some(x) if x <= 0.0 => {
                return Err(ApiError::invalid(
                    "repetition_penalty",
                    "`repetition_penalty` must be above 0 (1 = off)",
                ))
            }
            Some(x) => x,
            None => 1.0,
        },
        prob_yes: boolean(body, "prob_yes")?.unwrap_or(false),
    })
}

/// Checks a `/v1/molecules` body: `{"smiles": ...}` or `{"selfies": ...}`.
pub fn parse_molecule(body: &Value) -> Result<MoleculeInput, ApiError> {
    molecule_value("body", body).map_err(|mut e| {
        if e.param.as_deref() == Some("body") {
            e.message = "the body must be {\"smiles\": \"...\"} or {\"selfies\": \"...\"}".into();
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat(&v)
    }

    #[test]
    fn molecule_part_history_and_options() {
        let r = parse(json!({
            "model": "cap",
            "messages": [
                {"role": "user", "content": [
                    {"type": "molecule", "smiles": " CCO "},
                    {"type": "text", "text": "Describe it."}]},
                {"role": "assistant", "content": "Ethanol."},
                {"role": "user", "content": "Is it toxic?"}],
            "max_tokens": 12, "temperature": 0, "stop": "\n", "seed": 3,
            "logprobs": true, "top_logprobs": 2, "repetition_penalty": 1.2
        }))
        .unwrap();
        assert_eq!(r.molecule, MoleculeInput::Smiles("CCO".into()));
        assert_eq!(r.history.len(), 2);
        assert_eq!(r.history[0].value, "Describe it.");
        assert_eq!(r.question, "Is it toxic?");
        assert_eq!((r.max_tokens, r.temperature, r.seed), (12, 0.0, Some(3)));
        assert_eq!(r.stop, vec!["\n".to_string()]);
        assert_eq!(r.logprobs, Some(2));
        assert_eq!(r.repetition_penalty, 1.2);
    }

    #[test]
    fn string_clients_put_the_molecule_in_the_body() {
        let r = parse(json!({"messages": [{"role": "user", "content": "Hi"}],
                             "molecule": {"selfies": "[C][O]"}}))
        .unwrap();
        assert_eq!(r.molecule, MoleculeInput::Selfies("[C][O]".into()));
        assert_eq!(r.temperature, DEFAULT_TEMPERATURE);
        assert_eq!(r.max_tokens, DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!([1]), "body"),
            (json!({"messages": "hi"}), "messages"),
            (
                json!({"messages": [{"role": "user", "content": 5}], "molecule": "C"}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "system", "content": "x"}], "molecule": "C"}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "messages",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": "C", "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": "C", "top_p": 1.5}),
                "top_p",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": "C", "max_tokens": -1}),
                "max_tokens",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": "C", "top_logprobs": 2}),
                "top_logprobs",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}], "molecule": "C"}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": {"smiles": 1}}),
                "molecule.smiles",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "molecule": "C", "stop": ["a","b","c","d","e"]}),
                "stop",
            ),
        ];
        for (body, param) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
            assert!(e.body()["error"]["message"].is_string());
        }
    }
}
