//! The decode loop: feed the prompt's input embeddings once (prefill), then one token at a time
//! through the model's KV cache, choosing each next token with a [`Sampler`], until an end
//! token or the token budget. Each new token is handed to a callback as soon as it is chosen,
//! so callers can stream text.
//!
//! The loop takes input *embeddings*, not ids: the molecule path splices graph-token
//! embeddings into the prompt before calling it.

use std::time::{Duration, Instant};

use candle_core::Tensor;

use super::sampling::{Sampler, SamplingConfig};
use super::{InferError, Result};
use crate::model::llama::{KvCache, Llama};

/// A causal language model that can be run step by step with a KV cache.
pub trait CausalLm {
    /// Input embeddings of token ids: `[1, ids.len(), d]`.
    fn embed_ids(&self, ids: &[u32]) -> Result<Tensor>;
    /// Runs `embeds` (`[1, s, d]`) after the positions already cached, appends them to the cache
    /// and returns the logits of the last position (`[vocab]` or `[1, vocab]`).
    fn forward_step(&mut self, embeds: &Tensor) -> Result<Tensor>;
    /// Empties the KV cache.
    fn reset(&mut self);
}

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How tokens are chosen.
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

/// Generates from `prompt_embeds` (`[1, s, d]`), calling `on_token` with each new id as soon as
/// it is chosen (end tokens excluded). The model's cache is reset first.
pub fn generate<M: CausalLm + ?Sized>(
    model: &mut M,
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
    model.reset();
    let mut sampler = Sampler::new(cfg.sampling);
    let mut tokens = Vec::new();
    let start = Instant::now();
    let mut logits = if cfg.max_new_tokens > 0 {
        Some(model.forward_step(prompt_embeds)?)
    } else {
        None
    };
    let prompt_time = start.elapsed();
    let decode_start = Instant::now();
    let mut decode_steps = 0;
    let mut stop = StopReason::Length;
    while let Some(l) = logits.take() {
        let row: Vec<f32> = l
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let id = sampler
            .sample(&row)
            .ok_or_else(|| InferError::Input("the model produced no finite logit".to_string()))?;
        tokens.push(id);
        if cfg.stop_ids.contains(&id) {
            stop = StopReason::Eos;
            break;
        }
        on_token(id)?;
        if tokens.len() >= cfg.max_new_tokens {
            break;
        }
        let emb = model.embed_ids(&[id])?;
        logits = Some(model.forward_step(&emb)?);
        decode_steps += 1;
    }
    Ok(Generation {
        tokens,
        stop,
        prompt_len: s,
        prompt_time,
        decode_time: decode_start.elapsed(),
        decode_steps,
    })
}

/// A [`Llama`] with its own KV cache, generating one sequence.
pub struct LlamaLm<'a> {
    llama: &'a Llama,
    cache: KvCache,
}

impl<'a> LlamaLm<'a> {
    /// Wraps `llama` with an empty cache.
    pub fn new(llama: &'a Llama) -> Self {
        Self {
            llama,
            cache: llama.new_cache(1),
        }
    }
}

impl CausalLm for LlamaLm<'_> {
    fn embed_ids(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, self.llama.device())?.unsqueeze(0)?;
        Ok(self.llama.embed(&ids)?)
    }

    fn forward_step(&mut self, embeds: &Tensor) -> Result<Tensor> {
        Ok(self.llama.forward_cached(embeds, None, &mut self.cache)?)
    }

    fn reset(&mut self) {
        self.cache = self.llama.new_cache(1);
    }
}
