//! The HTTP side: routes, the optional API key, body limits, and turning scheduler events
//! into OpenAI answers or server-sent events. Every error is OpenAI's error JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use super::api::{self, ApiError, ChatRequest, MoleculeInput};
use super::engine::{Engine, Event, Finish, Job, JobSettings, ServedModel, SubmitError};
use super::web;
use crate::chem::{self, canon, selfies, ChemError};
use crate::infer::{InferError, Prompt, SamplingConfig, TokenLogprobs};

/// Largest request body accepted (bigger ones get 413).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// What every handler shares.
pub struct AppState {
    /// The loaded runs, in `--run` order.
    pub models: Arc<Vec<ServedModel>>,
    /// The scheduler.
    pub engine: Engine,
    /// The key every `/v1` request must present (`Authorization: Bearer KEY`), if any.
    pub api_key: Option<String>,
    /// Request counter, for ids and default seeds.
    pub counter: AtomicU64,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }
}

/// The router over `state`, with bodies limited to `body_limit` bytes.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/molecules", post(molecules))
        .route("/v1/chat/completions", post(chat))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/", get(index))
        .route("/static/{file}", get(static_file))
        .route("/health", get(health))
        .merge(v1)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `router` on `listener` until Ctrl-C.
pub async fn serve(router: Router, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::new(
                401,
                "invalid_request_error",
                "invalid_api_key",
                "missing or wrong API key: send `Authorization: Bearer KEY` with the key the \
                 server was started with (--api-key)"
                    .into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        404,
        "invalid_request_error",
        "not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

/// `{"status": "ok", "running": N, "queued": M}`: requests decoding and waiting now.
async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let (running, queued) = state.engine.load();
    Json(json!({"status": "ok", "running": running, "queued": queued}))
}

async fn index() -> Response {
    web::file("index.html").map_or_else(
        || StatusCode::NOT_FOUND.into_response(),
        |(bytes, mime)| ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
    )
}

async fn static_file(UrlPath(name): UrlPath<String>) -> Response {
    match web::file(&name) {
        Some((bytes, mime)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => ApiError::new(
            404,
            "invalid_request_error",
            "not_found",
            format!("no file /static/{name}"),
        )
        .into_response(),
    }
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| {
            json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "instructmol",
                "task": m.task,
                "yes_no": m.task.as_deref().is_some_and(is_yes_no_task) && m.yes_no.is_some(),
                "base": m.assistant.base,
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Tasks whose answers are Yes or No (MoleculeNet classification).
fn is_yes_no_task(task: &str) -> bool {
    matches!(task, "bace" | "bbbp" | "hiv")
}

/// The body as JSON, or the error a client should see (413 when too large).
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status().as_u16();
        let mut e = ApiError::new(
            status,
            "invalid_request_error",
            if status == 413 {
                "body_too_large"
            } else {
                "bad_body"
            },
            rejection.body_text(),
        );
        if status == 413 {
            e.message = format!("the request body is too large ({})", rejection.body_text());
        }
        e
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid("body", format!("the body is not valid JSON: {e}"))
            .with_code("invalid_json")
    })
}

/// A molecule read as the model reads it: SMILES (SELFIES decoded first).
fn read_molecule(m: &MoleculeInput, param: &str) -> Result<(String, chem::Mol), ApiError> {
    let smiles = match m {
        MoleculeInput::Smiles(s) => s.clone(),
        MoleculeInput::Selfies(s) => {
            selfies::decode(s).map_err(|e| chem_error(param, "SELFIES", &e))?
        }
    };
    let mol = chem::mol_from_smiles(&smiles).map_err(|e| chem_error(param, "SMILES", &e))?;
    Ok((smiles, mol))
}

fn chem_error(param: &str, what: &str, e: &ChemError) -> ApiError {
    let at = e
        .position
        .map(|p| format!(" (at position {p}, counting from 0)"))
        .unwrap_or_default();
    ApiError::invalid(param, format!("invalid {what}: {}{at}", e.message))
        .with_code("invalid_molecule")
}

async fn molecules(body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let input = api::parse_molecule(&json_body(body)?)?;
    let checked = tokio::task::spawn_blocking(move || molecule_report(&input))
        .await
        .map_err(|e| internal(&e.to_string()))?;
    Ok(Json(checked))
}

/// The `/v1/molecules` answer: canonical SMILES, SELFIES and atom count, or the error with
/// its character position.
fn molecule_report(input: &MoleculeInput) -> Value {
    let fail = |e: &ChemError| json!({"valid": false, "error": {"message": e.message, "position": e.position}});
    let smiles = match input {
        MoleculeInput::Smiles(s) => s.clone(),
        MoleculeInput::Selfies(s) => match selfies::decode(s) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        },
    };
    let mol = match chem::mol_from_smiles(&smiles) {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    if let Err(e) = chem::featurize(&mol) {
        return fail(&e);
    }
    let selfies = selfies::encode(&smiles).ok();
    json!({
        "valid": true,
        "canonical_smiles": canon::canonical_smiles(&mol, true),
        "selfies": selfies,
        "atoms": mol.atoms.len(),
    })
}

fn internal(message: &str) -> ApiError {
    ApiError::new(500, "server_error", "internal", message.to_string())
}

async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let queued = Instant::now();
    let req = api::parse_chat(&json_body(body)?)?;
    let index = match &req.model {
        None => 0,
        Some(name) => state
            .models
            .iter()
            .position(|m| &m.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = state.models.iter().map(|m| m.name.as_str()).collect();
                let mut e = ApiError::invalid(
                    "model",
                    format!(
                        "the model `{name}` does not exist; loaded: {}",
                        known.join(", ")
                    ),
                );
                e.status = 404;
                e.code = Some("model_not_found");
                e
            })?,
    };
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-{n:08}");
    let model = state.models[index].name.clone();
    let wants_yes_no = req.prob_yes;
    if wants_yes_no && state.models[index].yes_no.is_none() {
        return Err(ApiError::invalid(
            "prob_yes",
            "this model's vocabulary has no single tokens for Yes and No",
        ));
    }
    let (tx, rx) = unbounded_channel();
    let prep_state = state.clone();
    let prep_req = req.clone();
    let prompt = tokio::task::spawn_blocking(move || prompt_embeds(&prep_state, index, &prep_req))
        .await
        .map_err(|e| internal(&e.to_string()))??;
    let job = Job {
        id: id.clone(),
        model: index,
        model_name: model.clone(),
        prompt,
        settings: JobSettings {
            max_tokens: req.max_tokens,
            sampling: SamplingConfig {
                temperature: req.temperature,
                top_p: req.top_p,
                seed: req.seed.unwrap_or(n),
                repetition_penalty: req.repetition_penalty,
                frequency_penalty: req.frequency_penalty,
                presence_penalty: req.presence_penalty,
            },
            stop: req.stop.clone(),
            logprobs: req.logprobs,
            prob_yes: req.prob_yes,
        },
        events: tx,
        queued,
    };
    state.engine.submit(job).map_err(|e| match e {
        SubmitError::Full => ApiError::new(
            429,
            "rate_limit_error",
            "queue_full",
            "the server's queue is full: retry later".into(),
        ),
        SubmitError::Stopped => internal("the scheduler has stopped"),
    })?;
    let meta = Meta {
        id,
        model,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        logprobs: req.logprobs.is_some(),
        prob_yes: wants_yes_no,
        usage: req.stream_usage,
        tokenizer: state.clone(),
        index,
    };
    if req.stream {
        Ok(stream_response(meta, rx))
    } else {
        Ok(Json(collect(meta, rx).await?).into_response())
    }
}

/// The prompt of a request: its molecule (checked, with the position of any error), the
/// conversation in the run's template, the length against the model's context.
fn prompt_embeds(state: &AppState, index: usize, req: &ChatRequest) -> Result<Prompt, ApiError> {
    let (_, mol) = read_molecule(&req.molecule, "molecule")?;
    let graph = chem::featurize(&mol).map_err(|e| chem_error("molecule", "SMILES", &e))?;
    let assistant = &state.models[index].assistant;
    let prompt = assistant
        .followup(&graph, &req.history, &req.question)
        .map_err(|e| match e {
            InferError::Input(m) => ApiError::invalid("messages", m),
            InferError::PromptTooLong(m) => {
                ApiError::invalid("messages", m).with_code("context_length_exceeded")
            }
            other => internal(&other.to_string()),
        })?;
    let s = prompt.embeds.dim(1).map_err(|e| internal(&e.to_string()))?;
    let context = crate::model::Decode::context_len(&assistant.model);
    if s >= context {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "the prompt takes {s} positions (graph tokens included), but the model's context \
                 is {context}: shorten the conversation"
            ),
        )
        .with_code("context_length_exceeded"));
    }
    Ok(prompt)
}

/// What the response builders need to know about a request.
struct Meta {
    id: String,
    model: String,
    created: u64,
    logprobs: bool,
    prob_yes: bool,
    usage: bool,
    tokenizer: Arc<AppState>,
    index: usize,
}

impl Meta {
    fn token_text(&self, id: u32) -> String {
        self.tokenizer.models[self.index]
            .assistant
            .tokenizer
            .decode(&[id], false)
            .unwrap_or_default()
    }

    /// OpenAI's `logprobs.content` entry of one token.
    fn logprob_entry(&self, lp: &TokenLogprobs) -> Value {
        let entry = |id: u32, logprob: f32| {
            let token = self.token_text(id);
            json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
        };
        let mut e = entry(lp.id, lp.logprob);
        e["top_logprobs"] = lp.top.iter().map(|&(i, l)| entry(i, l)).collect();
        e
    }

    fn usage(f: &Finish) -> Value {
        json!({
            "prompt_tokens": f.prompt_tokens,
            "completion_tokens": f.completion_tokens,
            "total_tokens": f.prompt_tokens + f.completion_tokens,
        })
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        })
    }
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// Server-sent events: a role chunk, one chunk per piece of text, the finish chunk (with
/// `prob_yes` when asked), the usage chunk when asked, then `data: [DONE]`. The stream ends
/// when the scheduler drops the request; a client that goes away drops the receiver, which
/// frees the request's slot at the next step.
fn stream_response(meta: Meta, rx: UnboundedReceiver<Event>) -> Response {
    let first = sse(&meta.chunk(json!([{
        "index": 0, "delta": {"role": "assistant", "content": ""},
        "logprobs": null, "finish_reason": null}])));
    let events = UnboundedReceiverStream::new(rx).map(move |ev| -> Result<Bytes, std::io::Error> {
        Ok(match ev {
            Event::Text { text, logprob } => {
                let logprobs = match (&logprob, meta.logprobs) {
                    (Some(lp), true) => json!({"content": [meta.logprob_entry(lp)]}),
                    _ => Value::Null,
                };
                sse(&meta.chunk(json!([{
                    "index": 0, "delta": {"content": text},
                    "logprobs": logprobs, "finish_reason": null}])))
            }
            Event::Done(f) => {
                let mut choice = json!({"index": 0, "delta": {}, "logprobs": null,
                                        "finish_reason": f.reason.as_str()});
                if meta.prob_yes {
                    choice["prob_yes"] = json!(f.prob_yes);
                }
                let mut out = sse(&meta.chunk(json!([choice]))).to_vec();
                if meta.usage {
                    let mut u = meta.chunk(json!([]));
                    u["usage"] = Meta::usage(&f);
                    out.extend_from_slice(&sse(&u));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                Bytes::from(out)
            }
            Event::Failed(message) => {
                let mut out = sse(&internal(&message).body()).to_vec();
                out.extend_from_slice(b"data: [DONE]\n\n");
                Bytes::from(out)
            }
        })
    });
    let body = tokio_stream::once(Ok(first)).chain(events);
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The whole answer as one `chat.completion`.
async fn collect(meta: Meta, mut rx: UnboundedReceiver<Event>) -> Result<Value, ApiError> {
    let mut text = String::new();
    let mut logprobs = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text { text: t, logprob } => {
                text.push_str(&t);
                if let Some(lp) = logprob {
                    logprobs.push(meta.logprob_entry(&lp));
                }
            }
            Event::Done(f) => {
                let mut choice = json!({
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": if meta.logprobs { json!({"content": logprobs}) } else { Value::Null },
                    "finish_reason": f.reason.as_str(),
                });
                if meta.prob_yes {
                    choice["prob_yes"] = json!(f.prob_yes);
                }
                return Ok(json!({
                    "id": meta.id,
                    "object": "chat.completion",
                    "created": meta.created,
                    "model": meta.model,
                    "system_fingerprint": null,
                    "choices": [choice],
                    "usage": Meta::usage(&f),
                }));
            }
            Event::Failed(message) => return Err(internal(&message)),
        }
    }
    Err(internal("the scheduler dropped the request"))
}
