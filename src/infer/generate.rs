//! The decode loop: feed the prompts' input embeddings once (prefill), then one token at a
//! time through the model's KV cache, choosing each next token with a [`Sampler`] per row,
//! until an end token or the token budget. Each new token is handed to a callback as soon as
//! it is chosen, so callers can stream text or count progress.
//!
//! The loop takes input *embeddings*, not ids: the molecule path puts graph-token embeddings
//! into the prompt before calling it ([`crate::model::InstructMol::prompt_embeds`]). Both entry
//! points run over any [`Decode`] model (a plain LLaMA, or an InstructMol): [`generate`] one
//! sequence, [`generate_batch`] several prompts prefilled one by one, joined into one KV cache
//! and decoded together. Both share one loop, and a row decodes to the same bits alone or in a
//! batch.

use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

use super::sampling::{Sampler, SamplingConfig};
use super::yes_no::YesNoIds;
use super::{InferError, Result};
use crate::model::{Decode, KvCache};

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How tokens are chosen (in a batch, each row's seed comes from its [`RowPrompt`]).
    pub sampling: SamplingConfig,
    /// Ids that end the generation (not passed on as text; kept in [`Generation::tokens`]).
    pub stop_ids: Vec<u32>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end token was generated.
    Eos,
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

/// One prompt of a batch.
#[derive(Debug, Clone)]
pub struct RowPrompt {
    /// Prompt embeddings `[1, s, d]` (s > 0).
    pub embeds: Tensor,
    /// Seed of this row's sampler (e.g. the run's seed plus the row's index in its input file,
    /// so that a row's tokens do not depend on the batch it falls in).
    pub seed: u64,
}

/// What one row of a batch generated.
#[derive(Debug, Clone, PartialEq)]
pub struct RowGeneration {
    /// Generated ids, the end token included when there was one.
    pub tokens: Vec<u32>,
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
    tokens: Vec<u32>,
    stop: Option<StopReason>,
}

/// The decode loop shared by [`generate`] and [`generate_batch`]: `first` holds the prefill
/// logits of every row (`[b, vocab]`, or `[vocab]` for one row); `step` gets the id each row
/// feeds back (`None` for finished rows) and returns the next logits. Returns the rows and the
/// number of steps.
fn decode_loop(
    first: Tensor,
    samplers: Vec<Sampler>,
    cfg: &GenerationConfig,
    room: usize,
    mut step: impl FnMut(&[Option<u32>]) -> Result<Tensor>,
    mut on_token: impl FnMut(usize, u32) -> Result<()>,
) -> Result<(Vec<RowState>, usize)> {
    let b = samplers.len();
    let mut rows: Vec<RowState> = samplers
        .into_iter()
        .map(|sampler| RowState {
            sampler,
            tokens: Vec::new(),
            stop: None,
        })
        .collect();
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
            let id = state.sampler.sample(row).ok_or_else(|| {
                InferError::Input("the model produced no finite logit".to_string())
            })?;
            state.tokens.push(id);
            if cfg.stop_ids.contains(&id) {
                state.stop = Some(StopReason::Eos);
                continue;
            }
            on_token(r, id)?;
            if state.tokens.len() >= cfg.max_new_tokens {
                state.stop = Some(StopReason::Length);
            } else if state.tokens.len() >= room {
                state.stop = Some(StopReason::Context);
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

/// Generates from `prompt_embeds` (`[1, s, d]`) with a fresh KV cache, calling `on_token` with
/// each new id as soon as it is chosen (end tokens excluded).
pub fn generate<D: Decode + ?Sized>(
    model: &D,
    prompt_embeds: &Tensor,
    cfg: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
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
        vec![Sampler::new(cfg.sampling)],
        cfg,
        room,
        |next| {
            let Some(id) = next.first().copied().flatten() else {
                return Err(InferError::Input("no token to feed back".to_string()));
            };
            let ids = Tensor::new(&[[id]], model.device())?;
            let emb = model.embed_ids(&ids)?;
            Ok(model.forward_cached(&emb, None, &mut cache)?)
        },
        |_, id| on_token(id),
    )?;
    let row = rows
        .pop()
        .ok_or_else(|| InferError::Input("no row".into()))?;
    Ok(Generation {
        tokens: row.tokens,
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
/// answer position. `on_token(row, id)` is called with each new id (end tokens excluded).
pub fn generate_batch<D: Decode + ?Sized>(
    model: &D,
    prompts: &[RowPrompt],
    cfg: &GenerationConfig,
    yes_no: Option<&YesNoIds>,
    on_token: impl FnMut(usize, u32) -> Result<()>,
) -> Result<BatchGeneration> {
    let b = prompts.len();
    let d = model.hidden_size();
    let mut lens = Vec::with_capacity(b);
    for (r, p) in prompts.iter().enumerate() {
        match p.embeds.dims3()? {
            (1, s, dd) if s > 0 && dd == d => lens.push(s),
            _ => {
                return Err(InferError::Input(format!(
                    "prompt {r}: expected embeddings [1, s > 0, {d}], got {:?}",
                    p.embeds.dims()
                )))
            }
        }
    }
    let empty = |prompt_tokens| BatchGeneration {
        rows: vec![
            RowGeneration {
                tokens: Vec::new(),
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
        let e = p.embeds.to_dtype(dtype)?.to_device(device)?;
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
    let samplers = prompts
        .iter()
        .map(|p| {
            Sampler::new(SamplingConfig {
                seed: p.seed,
                ..cfg.sampling
            })
        })
        .collect();
    let decode_start = Instant::now();
    let (rows, decode_steps) = decode_loop(
        first,
        samplers,
        cfg,
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
