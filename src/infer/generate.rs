//! The decode loop: feed the prompts' input embeddings once (prefill), then one token at a
//! time through the model's KV cache, choosing each next token with a [`Sampler`] per row
//! (which applies the penalties), until an end token, a stop string, or the token budget. Each
//! row's ids go through an [`AnswerStream`] (its text, with stop strings held back and cut);
//! each new token and the text it releases are handed to a callback as soon as it is chosen,
//! so callers can stream text or count progress.
//!
//! The loop takes input *embeddings*, not ids: the molecule path puts graph-token embeddings
//! into the prompt before calling it ([`crate::model::InstructMol::prompt_embeds`]). Both entry
//! points run over any [`Decode`] model (a plain LLaMA, or an InstructMol): [`generate`] one
//! sequence, [`generate_batch`] several prompts prefilled one by one, joined into one KV cache
//! and decoded together. Both share one loop, and a row decodes to the same bits alone or in a
//! batch.

use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

use super::logprobs::{token_logprobs, TokenLogprobs};
use super::sampling::{Sampler, SamplingConfig};
use super::stop::AnswerStream;
use super::yes_no::YesNoIds;
use super::{InferError, Result};
use crate::model::{Decode, KvCache, ModelTokenizer};

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How tokens are chosen (in a batch, each row's seed comes from its [`RowPrompt`]).
    pub sampling: SamplingConfig,
    /// Ids that end the generation (not passed on as text; kept in [`Generation::tokens`]).
    pub stop_ids: Vec<u32>,
    /// Texts that end the generation as soon as the answer contains one; the answer is the
    /// text before it (the token that completed it stays in the tokens).
    pub stop_strings: Vec<String>,
    /// Record every generated token's log-probability and those of the `k` most likely
    /// tokens at its step (`Some(0)`: the chosen token's only); `None` computes nothing.
    pub logprobs: Option<usize>,
}

impl Default for GenerationConfig {
    /// 256 new tokens, greedy, no stop ids or strings, no log-probabilities.
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            sampling: SamplingConfig::default(),
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
            logprobs: None,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end token was generated.
    Eos,
    /// The answer reached one of the stop strings.
    StopString,
    /// `max_new_tokens` tokens were generated.
    Length,
    /// The model's context length was reached (before `max_new_tokens`).
    Context,
}

/// The outcome of one generation, with timings.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated ids, the end token included when there was one.
    pub tokens: Vec<u32>,
    /// The answer's text: the ids decoded without special tokens, cut before a stop string.
    pub text: String,
    /// Log-probabilities of every generated id (aligned with `tokens`), when asked for.
    pub logprobs: Option<Vec<TokenLogprobs>>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Prompt length in positions.
    pub prompt_len: usize,
    /// Time to process the prompt (prefill, up to the first logits).
    pub prompt_time: Duration,
    /// Time of the single-token steps after the prefill.
    pub decode_time: Duration,
    /// Number of single-token steps (generated tokens fed back).
    pub decode_steps: usize,
}

impl Generation {
    /// Prompt positions per second.
    pub fn prompt_tokens_per_sec(&self) -> f64 {
        self.prompt_len as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }

    /// Generated tokens per second over the single-token steps.
    pub fn decode_tokens_per_sec(&self) -> f64 {
        self.decode_steps as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// A prompt ready to decode.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Prompt embeddings `[1, s, d]` (s > 0).
    pub embeds: Tensor,
    /// Token ids of the prompt's text (a molecule's graph tokens have none): the ids the
    /// repetition penalty counts as already seen.
    pub text_ids: Vec<u32>,
}

impl Prompt {
    /// The prompt of a token sequence: its embeddings from `model`'s embedding table.
    pub fn from_ids<D: Decode + ?Sized>(model: &D, ids: Vec<u32>) -> Result<Self> {
        let t = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
        Ok(Self {
            embeds: model.embed_ids(&t)?,
            text_ids: ids,
        })
    }
}

/// One prompt of a batch.
#[derive(Debug, Clone)]
pub struct RowPrompt {
    /// The prompt.
    pub prompt: Prompt,
    /// Seed of this row's sampler (e.g. the run's seed plus the row's index in its input file,
    /// so that a row's tokens do not depend on the batch it falls in).
    pub seed: u64,
}

/// A generated token as the decode loop hands it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewToken<'a> {
    /// Its row in the batch (0 for [`generate`]).
    pub row: usize,
    /// The id.
    pub id: u32,
    /// The answer text it releases (possibly empty: part of a character, special tokens, or
    /// text held back while it could be the start of a stop string). The row's pieces joined
    /// are a prefix of its final [`RowGeneration::text`].
    pub text: &'a str,
}

/// What one row of a batch generated.
#[derive(Debug, Clone, PartialEq)]
pub struct RowGeneration {
    /// Generated ids, the end token included when there was one.
    pub tokens: Vec<u32>,
    /// The answer's text: the ids decoded without special tokens, cut before a stop string.
    pub text: String,
    /// Log-probabilities of every generated id (aligned with `tokens`), when asked for.
    pub logprobs: Option<Vec<TokenLogprobs>>,
    /// Why the row stopped.
    pub stop: StopReason,
    /// Probability of "Yes" against "No" at the first answer position, when asked for.
    pub prob_yes: Option<f64>,
}

/// The outcome of a batch, with timings of the whole batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchGeneration {
    /// One entry per prompt, in the order given.
    pub rows: Vec<RowGeneration>,
    /// Real (unpadded) prompt positions over all rows.
    pub prompt_tokens: usize,
    /// Time of the prefill.
    pub prompt_time: Duration,
    /// Time of the single-token steps after the prefill.
    pub decode_time: Duration,
    /// Number of batched single-token steps.
    pub decode_steps: usize,
}

/// Per-row state of the shared decode loop.
struct RowState {
    sampler: Sampler,
    stream: AnswerStream,
    tokens: Vec<u32>,
    logprobs: Option<Vec<TokenLogprobs>>,
    stop: Option<StopReason>,
}

impl RowState {
    /// A row about to decode `prompt_ids`, sampled with `sampling`.
    fn new(
        sampling: SamplingConfig,
        prompt_ids: &[u32],
        tokenizer: &ModelTokenizer,
        cfg: &GenerationConfig,
    ) -> Self {
        Self {
            sampler: Sampler::with_prompt_ids(sampling, prompt_ids),
            stream: AnswerStream::new(tokenizer, &cfg.stop_strings),
            tokens: Vec::new(),
            logprobs: cfg.logprobs.map(|_| Vec::new()),
            stop: None,
        }
    }

    /// Ends the row for `reason`; the text still held back joins the answer.
    fn end(&mut self, reason: StopReason, tokenizer: &ModelTokenizer) -> Result<()> {
        self.stream.finish(tokenizer)?;
        self.stop = Some(reason);
        Ok(())
    }
}

/// The decode loop shared by [`generate`] and [`generate_batch`]: `first` holds the prefill
/// logits of every row (`[b, vocab]`, or `[vocab]` for one row); `step` gets the id each row
/// feeds back (`None` for finished rows) and returns the next logits. Returns the rows and the
/// number of steps.
fn decode_loop(
    first: Tensor,
    mut rows: Vec<RowState>,
    (cfg, tokenizer): (&GenerationConfig, &ModelTokenizer),
    room: usize,
    mut step: impl FnMut(&[Option<u32>]) -> Result<Tensor>,
    mut on_token: impl FnMut(&NewToken) -> Result<()>,
) -> Result<(Vec<RowState>, usize)> {
    let b = rows.len();
    let mut steps = 0;
    let mut logits = first;
    loop {
        let flat: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        if b == 0 || flat.is_empty() || !flat.len().is_multiple_of(b) {
            return Err(InferError::Input(format!(
                "the model returned logits of shape {:?} for {b} rows",
                logits.dims()
            )));
        }
        let vocab = flat.len() / b;
        let mut next = vec![None; b];
        for (r, (row, state)) in flat.chunks(vocab).zip(rows.iter_mut()).enumerate() {
            if state.stop.is_some() {
                continue;
            }
            let no_logit = || InferError::Input("the model produced no finite logit".to_string());
            let id = state.sampler.sample(row).ok_or_else(no_logit)?;
            if let (Some(k), Some(list)) = (cfg.logprobs, state.logprobs.as_mut()) {
                list.push(token_logprobs(row, id, k).ok_or_else(no_logit)?);
            }
            state.tokens.push(id);
            if cfg.stop_ids.contains(&id) {
                state.end(StopReason::Eos, tokenizer)?;
                continue;
            }
            let text = state.stream.push(tokenizer, id)?;
            on_token(&NewToken {
                row: r,
                id,
                text: &text,
            })?;
            if state.stream.is_stopped() {
                state.stop = Some(StopReason::StopString);
            } else if state.tokens.len() >= cfg.max_new_tokens {
                state.end(StopReason::Length, tokenizer)?;
            } else if state.tokens.len() >= room {
                state.end(StopReason::Context, tokenizer)?;
            } else {
                next[r] = Some(id);
            }
        }
        if next.iter().all(Option::is_none) {
            return Ok((rows, steps));
        }
        logits = step(&next)?;
        steps += 1;
    }
}

/// Positions left for new tokens after a prompt of `width` positions; an error when the prompt
/// fills the model's context.
fn room<D: Decode + ?Sized>(model: &D, width: usize) -> Result<usize> {
    let context = model.context_len();
    match context.checked_sub(width) {
        Some(room) if room > 0 => Ok(room),
        _ => Err(InferError::Input(format!(
            "the prompt has {width} positions, but the model's context is {context}: shorten it"
        ))),
    }
}

/// Generates from `prompt` with a fresh KV cache, calling `on_token` with each new id and the
/// text it releases as soon as it is chosen (end tokens excluded). The answer's text comes
/// from `tokenizer` (the model's).
pub fn generate<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    prompt: &Prompt,
    cfg: &GenerationConfig,
    on_token: impl FnMut(&NewToken) -> Result<()>,
) -> Result<Generation> {
    cfg.sampling.check()?;
    let prompt_embeds = &prompt.embeds;
    let (b, s, _) = prompt_embeds.dims3()?;
    if b != 1 || s == 0 {
        return Err(InferError::Input(format!(
            "the prompt must be one non-empty sequence, got embeddings of shape {:?}",
            prompt_embeds.dims()
        )));
    }
    let room = room(model, s)?;
    let mut cache = model.new_cache(1);
    let start = Instant::now();
    if cfg.max_new_tokens == 0 {
        return Ok(Generation {
            tokens: Vec::new(),
            text: String::new(),
            logprobs: cfg.logprobs.map(|_| Vec::new()),
            stop: StopReason::Length,
            prompt_len: s,
            prompt_time: Duration::ZERO,
            decode_time: Duration::ZERO,
            decode_steps: 0,
        });
    }
    let first = model.forward_cached(prompt_embeds, None, &mut cache)?;
    let prompt_time = start.elapsed();
    let decode_start = Instant::now();
    let (mut rows, decode_steps) = decode_loop(
        first,
        vec![RowState::new(
            cfg.sampling,
            &prompt.text_ids,
            tokenizer,
            cfg,
        )],
        (cfg, tokenizer),
        room,
        |next| {
            let Some(id) = next.first().copied().flatten() else {
                return Err(InferError::Input("no token to feed back".to_string()));
            };
            let ids = Tensor::new(&[[id]], model.device())?;
            let emb = model.embed_ids(&ids)?;
            Ok(model.forward_cached(&emb, None, &mut cache)?)
        },
        on_token,
    )?;
    let row = rows
        .pop()
        .ok_or_else(|| InferError::Input("no row".into()))?;
    Ok(Generation {
        tokens: row.tokens,
        text: row.stream.into_answer(),
        logprobs: row.logprobs,
        stop: row.stop.unwrap_or(StopReason::Length),
        prompt_len: s,
        prompt_time,
        decode_time: decode_start.elapsed(),
        decode_steps,
    })
}

/// Generates from several prompts at once: each prompt is prefilled alone, the caches are
/// joined into one left-padded batch ([`KvCache::append_rows`]), then decoded together with
/// [`Decode::forward_cached`] (a row's logits are bit for bit those of decoding it alone). Each row has its own sampler (seeded from [`RowPrompt::seed`]) and
/// stops on its own; a finished row is fed masked padding until the whole batch is done, and
/// its tokens are not extended. `yes_no` adds each row's probability of "Yes" at the first
/// answer position. `on_token` is called with each new id (end tokens excluded) and the text
/// it releases; `tokenizer` (the model's) decodes the answers.
pub fn generate_batch<D: Decode + ?Sized>(
    model: &D,
    tokenizer: &ModelTokenizer,
    prompts: &[RowPrompt],
    cfg: &GenerationConfig,
    yes_no: Option<&YesNoIds>,
    on_token: impl FnMut(&NewToken) -> Result<()>,
) -> Result<BatchGeneration> {
    cfg.sampling.check()?;
    let b = prompts.len();
    let d = model.hidden_size();
    let mut lens = Vec::with_capacity(b);
    for (r, p) in prompts.iter().enumerate() {
        match p.prompt.embeds.dims3()? {
            (1, s, dd) if s > 0 && dd == d => lens.push(s),
            _ => {
                return Err(InferError::Input(format!(
                    "prompt {r}: expected embeddings [1, s > 0, {d}], got {:?}",
                    p.prompt.embeds.dims()
                )))
            }
        }
    }
    let empty = |prompt_tokens| BatchGeneration {
        rows: vec![
            RowGeneration {
                tokens: Vec::new(),
                text: String::new(),
                logprobs: cfg.logprobs.map(|_| Vec::new()),
                stop: StopReason::Length,
                prob_yes: None,
            };
            b
        ],
        prompt_tokens,
        prompt_time: Duration::ZERO,
        decode_time: Duration::ZERO,
        decode_steps: 0,
    };
    let prompt_tokens = lens.iter().sum();
    if b == 0 || cfg.max_new_tokens == 0 {
        return Ok(empty(prompt_tokens));
    }
    let width = lens.iter().copied().max().unwrap_or(0);
    let room = room(model, width)?;
    let device = model.device();
    let dtype = model.dtype();
    // Each prompt is prefilled alone and its cache joins the batch (left-padded): a row's
    // numbers are then exactly those of decoding it alone, whatever the batch.
    let mut cache: KvCache = model.new_cache(0);
    let mut firsts = Vec::with_capacity(b);
    let start = Instant::now();
    for p in prompts {
        let mut one = model.new_cache(1);
        let e = p.prompt.embeds.to_dtype(dtype)?.to_device(device)?;
        firsts.push(model.forward_cached(&e, None, &mut one)?);
        cache.append_rows(one)?;
    }
    let first = Tensor::cat(&firsts, 0)?;
    let prompt_time = start.elapsed();
    let prob_yes: Vec<Option<f64>> = match yes_no {
        Some(yn) => first
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .iter()
            .map(|row| yn.prob_yes(row).map(Some))
            .collect::<Result<_>>()?,
        None => vec![None; b],
    };
    let states = prompts
        .iter()
        .map(|p| {
            let sampling = SamplingConfig {
                seed: p.seed,
                ..cfg.sampling
            };
            RowState::new(sampling, &p.prompt.text_ids, tokenizer, cfg)
        })
        .collect();
    let decode_start = Instant::now();
    let (rows, decode_steps) = decode_loop(
        first,
        states,
        (cfg, tokenizer),
        room,
        |next| {
            let ids: Vec<u32> = next.iter().map(|id| id.unwrap_or(0)).collect();
            let ids = Tensor::from_vec(ids, (b, 1), device)?;
            let x = model.embed_ids(&ids)?;
            let mask = if next.iter().all(Option::is_some) {
                None
            } else {
                let m: Vec<f32> = next
                    .iter()
                    .map(|id| if id.is_some() { 1.0 } else { 0.0 })
                    .collect();
                Some(Tensor::from_vec(m, (b, 1), device)?)
            };
            Ok(model.forward_cached(&x, mask.as_ref(), &mut cache)?)
        },
        on_token,
    )?;
    Ok(BatchGeneration {
        rows: rows
            .into_iter()
            .zip(prob_yes)
            .map(|(r, prob_yes)| RowGeneration {
                tokens: r.tokens,
                text: r.stream.into_answer(),
                logprobs: r.logprobs,
                stop: r.stop.unwrap_or(StopReason::Length),
                prob_yes,
            })
            .collect(),
        prompt_tokens,
        prompt_time,
        decode_time: decode_start.elapsed(),
        decode_steps,
    })
}
