//! The scheduler: one thread owns the decoding of every loaded run and batches requests
//! continuously. A request is prefilled alone as soon as there is room (at most `max_batch`
//! rows decode at once), then its KV cache joins the running batch of its run
//! ([`KvCache::append_rows`]); every step decodes one token for every row of a run in one
//! forward pass, and a row leaves the batch ([`KvCache::retain_rows`]) when it is done or its
//! client has gone. Requests wait in a bounded queue; a full queue is refused at once.
//!
//! Rows of different runs decode in separate batches (their adapters differ), one after the
//! other within a step.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use tokio::sync::mpsc::UnboundedSender;

use crate::infer::assistant::Assistant;
use crate::infer::{Sampler, SamplingConfig, YesNoIds};
use crate::model::{Decode, KvCache, TextStream};

/// A run the server answers with.
pub struct ServedModel {
    /// The name clients pick it by (`model`).
    pub name: String,
    /// The loaded run.
    pub assistant: Assistant,
    /// The task it was trained on, when its training data says (`chebi20`, `bbbp`, ...).
    pub task: Option<String>,
    /// The ids of "Yes"/"No", when the vocabulary has them (for `prob_yes`).
    pub yes_no: Option<YesNoIds>,
    /// Ids that end an answer.
    pub stop_ids: Vec<u32>,
}

/// How one request decodes.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Most new tokens.
    pub max_tokens: usize,
    /// Token choice (temperature, top-p, seed).
    pub sampling: SamplingConfig,
    /// Strings that end the answer (not part of it).
    pub stop: Vec<String>,
    /// Log-probabilities of the chosen tokens, with this many alternatives.
    pub logprobs: Option<usize>,
    /// Report p(Yes) at the first answer token.
    pub prob_yes: bool,
}

/// One request, ready to decode.
pub struct Job {
    /// Request id (for logs).
    pub id: String,
    /// Index of the run in the server's list.
    pub model: usize,
    /// Its name (for logs).
    pub model_name: String,
    /// Prompt embeddings `[1, s, d]` (graph tokens spliced in).
    pub prompt: Tensor,
    /// Decoding settings.
    pub settings: JobSettings,
    /// Where the answer goes; the request is dropped when its receiver is gone.
    pub events: UnboundedSender<Event>,
    /// When the request was queued.
    pub queued: Instant,
}

/// The log-probability of one generated token, with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The chosen id.
    pub id: u32,
    /// Its log-probability under the model.
    pub logprob: f32,
    /// The `k` most likely ids and their log-probabilities.
    pub top: Vec<(u32, f32)>,
}

/// Why an answer ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end token or a stop string.
    Stop,
    /// `max_tokens`, or the model's context, was reached.
    Length,
}

impl FinishReason {
    /// The OpenAI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// The end of an answer, with its counts and times.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// Why it ended.
    pub reason: FinishReason,
    /// Prompt positions (graph tokens included).
    pub prompt_tokens: usize,
    /// Generated tokens (the end token excluded).
    pub completion_tokens: usize,
    /// p(Yes) / (p(Yes) + p(No)) at the first answer token, when asked.
    pub prob_yes: Option<f64>,
    /// Time spent waiting for a slot.
    pub queue_time: Duration,
}

/// What the scheduler tells a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New answer text (possibly empty, when only a log-probability is new).
    Text {
        /// The text.
        text: String,
        /// The log-probability of the token that completed it, when asked.
        logprob: Option<TokenLogprob>,
    },
    /// The answer is complete.
    Done(Finish),
    /// Decoding failed.
    Failed(String),
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Most rows decoding at once, over all runs.
    pub max_batch: usize,
    /// Most requests waiting for a slot.
    pub queue: usize,
}

/// The handle of a running scheduler: submit jobs; dropping it ends the thread once all
/// running requests are done.
pub struct Engine {
    tx: SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Full,
    /// The scheduler has stopped.
    Stopped,
}

impl Engine {
    /// Starts the scheduler thread over `models`.
    pub fn start(models: Arc<Vec<ServedModel>>, cfg: EngineConfig) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(cfg.queue.max(1));
        let max_batch = cfg.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("instructmol-scheduler".into())
            .spawn(move || Scheduler::new(models, max_batch).run(rx))?;
        Ok(Self {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues a job; refused at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Stopped,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its running requests.
        let (dead, _) = mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.tx, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request being decoded.
struct Row {
    job: Job,
    sampler: Sampler,
    stream: TextStream,
    /// Answer text decoded so far, and how much of it was sent.
    text: String,
    sent: usize,
    generated: usize,
    prompt_len: usize,
    room: usize,
    last: u32,
    prob_yes: Option<f64>,
    started: Instant,
    /// The most rows its run decoded at once while it was in the batch.
    peak_batch: usize,
}

/// The decoding state of one run: its rows and their shared KV cache.
struct Group {
    rows: Vec<Row>,
    cache: Option<KvCache>,
}

struct Scheduler {
    models: Arc<Vec<ServedModel>>,
    groups: Vec<Group>,
    max_batch: usize,
}

impl Scheduler {
    fn new(models: Arc<Vec<ServedModel>>, max_batch: usize) -> Self {
        let groups = models
            .iter()
            .map(|_| Group {
                rows: Vec::new(),
                cache: None,
            })
            .collect();
        Self {
            models,
            groups,
            max_batch,
        }
    }

    fn active(&self) -> usize {
        self.groups.iter().map(|g| g.rows.len()).sum()
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut open = true;
        loop {
            if self.active() == 0 {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(job) => self.admit(job),
                    Err(_) => return,
                }
            }
            while open && self.active() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => self.admit(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            for m in 0..self.groups.len() {
                if !self.groups[m].rows.is_empty() {
                    self.step(m);
                }
            }
        }
    }

    /// Prefills a new request alone, takes its first token, and joins it to its run's batch.
    fn admit(&mut self, job: Job) {
        if job.events.is_closed() {
            log_line(&job, "disconnected", (0, 0, 0), job.queued.elapsed());
            return;
        }
        let model = &self.models[job.model];
        let assistant = &model.assistant;
        let started = Instant::now();
        let prefill = || -> crate::infer::Result<(KvCache, Vec<f32>, usize)> {
            let (_, s, _) = job.prompt.dims3()?;
            let mut cache = assistant.model.new_cache(1);
            let logits = assistant
                .model
                .forward_cached(&job.prompt, None, &mut cache)?;
            Ok((cache, logits.flatten_all()?.to_vec1::<f32>()?, s))
        };
        let (cache, logits, prompt_len) = match prefill() {
            Ok(x) => x,
            Err(e) => {
                log_line(&job, "failed", (0, 0, 0), job.queued.elapsed());
                let _ = job.events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        let prob_yes = match (job.settings.prob_yes, &model.yes_no) {
            (true, Some(yn)) => yn.prob_yes(&logits).ok(),
            _ => None,
        };
        let room = assistant
            .model
            .context_len()
            .saturating_sub(prompt_len)
            .max(1);
        let mut row = Row {
            sampler: Sampler::new(job.settings.sampling),
            stream: assistant.tokenizer.stream(true),
            text: String::new(),
            sent: 0,
            generated: 0,
            prompt_len,
            room,
            last: 0,
            prob_yes,
            started,
            peak_batch: 1,
            job,
        };
        if !row.consume(model, &logits) {
            let g = &mut self.groups[row.job.model];
            let joined = match g.cache.take() {
                None => Ok(cache),
                Some(mut c) => c.append_rows(cache).map(|()| c),
            };
            match joined {
                Ok(c) => {
                    g.cache = Some(c);
                    g.rows.push(row);
                }
                Err(e) => {
                    let _ = row.job.events.send(Event::Failed(e.to_string()));
                    self.fail_group(row.job.model, "the batch's KV cache broke");
                }
            }
        }
    }

    /// One decoding step of every row of run `m`.
    fn step(&mut self, m: usize) {
        let model = &self.models[m];
        let g = &mut self.groups[m];
        let ids: Vec<u32> = g.rows.iter().map(|r| r.last).collect();
        let b = ids.len();
        let Some(cache) = g.cache.as_mut() else {
            return;
        };
        let forward = || -> crate::infer::Result<Vec<Vec<f32>>> {
            let decoder = &model.assistant.model;
            let ids = Tensor::from_vec(ids, (b, 1), decoder.device())?;
            let x = decoder.embed_ids(&ids)?;
            Ok(decoder.forward_cached(&x, None, cache)?.to_vec2::<f32>()?)
        };
        let logits = match forward() {
            Ok(l) => l,
            Err(e) => {
                self.fail_group(m, &e.to_string());
                return;
            }
        };
        let keep: Vec<bool> = g
            .rows
            .iter_mut()
            .zip(&logits)
            .map(|(row, l)| {
                row.peak_batch = row.peak_batch.max(b);
                !row.consume(model, l)
            })
            .collect();
        if keep.iter().all(|&k| k) {
            return;
        }
        if let Err(e) = cache.retain_rows(&keep) {
            self.fail_group(m, &e.to_string());
            return;
        }
        let mut it = keep.iter();
        g.rows.retain(|_| it.next().copied().unwrap_or(false));
        if g.rows.is_empty() {
            g.cache = None;
        }
    }

    /// Ends every row of run `m` with an error (the batch cannot go on).
    fn fail_group(&mut self, m: usize, message: &str) {
        let g = &mut self.groups[m];
        for row in g.rows.drain(..) {
            log_line(
                &row.job,
                "failed",
                (row.prompt_len, row.generated, row.peak_batch),
                row.queue_time(),
            );
            let _ = row.job.events.send(Event::Failed(message.to_string()));
        }
        g.cache = None;
    }
}

impl Row {
    /// Time the request waited before its prefill.
    fn queue_time(&self) -> Duration {
        self.started.duration_since(self.job.queued)
    }

    /// Chooses the next token from this row's logits and sends what it adds to the answer.
    /// Returns true when the row is finished (done, failed, or its client has gone).
    fn consume(&mut self, model: &ServedModel, logits: &[f32]) -> bool {
        if self.job.events.is_closed() {
            log_line(
                &self.job,
                "disconnected",
                (self.prompt_len, self.generated, self.peak_batch),
                self.queue_time(),
            );
            return true;
        }
        let Some(id) = self.sampler.sample(logits) else {
            return self.fail("the model produced no finite logit");
        };
        if model.stop_ids.contains(&id) {
            return self.finish(model, FinishReason::Stop);
        }
        self.generated += 1;
        self.last = id;
        let logprob = self
            .job
            .settings
            .logprobs
            .map(|k| token_logprob(logits, id, k));
        let piece = match self.stream.step(&model.assistant.tokenizer, id) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => return self.fail(&e.to_string()),
        };
        self.text.push_str(&piece);
        if let Some(end) = stop_position(&self.text, self.sent, &self.job.settings.stop) {
            self.text.truncate(end);
            self.send_text(logprob, true);
            return self.finish(model, FinishReason::Stop);
        }
        self.send_text(logprob, false);
        if self.generated >= self.job.settings.max_tokens || self.generated >= self.room {
            return self.finish(model, FinishReason::Length);
        }
        false
    }

    /// Sends the answer text not sent yet, holding back a tail that may begin a stop string
    /// (unless `all`).
    fn send_text(&mut self, logprob: Option<TokenLogprob>, all: bool) {
        let end = if all {
            self.text.len()
        } else {
            self.text.len() - held_back(&self.text[self.sent..], &self.job.settings.stop)
        };
        let text = self.text[self.sent..end].to_string();
        self.sent = end;
        if !text.is_empty() || logprob.is_some() {
            let _ = self.job.events.send(Event::Text { text, logprob });
        }
    }

    fn finish(&mut self, model: &ServedModel, reason: FinishReason) -> bool {
        if let Ok(Some(rest)) = self.stream.finish(&model.assistant.tokenizer) {
            self.text.push_str(&rest);
        }
        if let Some(end) = stop_position(&self.text, self.sent, &self.job.settings.stop) {
            self.text.truncate(end);
        }
        self.send_text(None, true);
        log_line(
            &self.job,
            reason.as_str(),
            (self.prompt_len, self.generated, self.peak_batch),
            self.queue_time(),
        );
        let _ = self.job.events.send(Event::Done(Finish {
            reason,
            prompt_tokens: self.prompt_len,
            completion_tokens: self.generated,
            prob_yes: self.prob_yes,
            queue_time: self.queue_time(),
        }));
        true
    }

    fn fail(&mut self, message: &str) -> bool {
        log_line(
            &self.job,
            "failed",
            (self.prompt_len, self.generated, self.peak_batch),
            self.queue_time(),
        );
        let _ = self.job.events.send(Event::Failed(message.to_string()));
        true
    }
}

/// Byte offset where the first stop string found in `text` starts, looking only at matches
/// that end after `sent` (earlier text was checked before).
fn stop_position(text: &str, sent: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|s| {
            let from = floor_char_boundary(text, sent.saturating_sub(s.len()));
            text[from..].find(s.as_str()).map(|p| from + p)
        })
        .min()
}

/// Length of the longest tail of `text` that is the beginning of a stop string (that text
/// waits until the next token tells whether the stop string follows).
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            (1..s.len().min(text.len() + 1))
                .filter(|&n| text.is_char_boundary(text.len() - n) && s.is_char_boundary(n))
                .filter(|&n| text.ends_with(&s[..n]))
        })
        .max()
        .unwrap_or(0)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The log-softmax value of `id` in `logits`, with the `k` best ids.
fn token_logprob(logits: &[f32], id: u32, k: usize) -> TokenLogprob {
    let max = logits
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v - max).exp())
        .sum();
    let norm = f64::from(max) + sum.ln();
    let lp = |v: f32| (f64::from(v) - norm) as f32;
    let mut top: Vec<(u32, f32)> = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize])
        });
        idx.truncate(k);
        idx.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        top = idx
            .into_iter()
            .map(|i| (i, lp(logits[i as usize])))
            .collect();
    }
    TokenLogprob {
        id,
        logprob: logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&v| lp(v)),
        top,
    }
}

/// One JSON line per request on stderr.
fn log_line(job: &Job, outcome: &str, counts: (usize, usize, usize), queue: Duration) {
    let (prompt_tokens, completion_tokens, peak_batch) = counts;
    let line = serde_json::json!({
        "id": job.id,
        "model": job.model_name,
        "queue_ms": queue.as_secs_f64() * 1e3,
        "peak_batch": peak_batch,
        "outcome": outcome,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_ms": job.queued.elapsed().as_secs_f64() * 1e3,
    });
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_found_across_pieces_and_held_back() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(held_back("abc EN", &stops), 2);
        assert_eq!(held_back("abc\n", &stops), 1);
        assert_eq!(held_back("abc", &stops), 0);
        assert_eq!(stop_position("abc END more", 0, &stops), Some(4));
        // A match that ends before what was already sent is not looked at again.
        assert_eq!(stop_position("x\n\nabc", 3, &stops), Some(1));
        assert_eq!(stop_position("x\n\nabcdef", 9, &stops), None);
        assert_eq!(held_back("é", &["éa".to_string()]), 2);
    }

    #[test]
    fn logprobs_are_a_log_softmax() {
        let l = [1.0f32, 3.0, 2.0, f32::NEG_INFINITY];
        let t = token_logprob(&l, 2, 2);
        let z: f64 = [1.0f64, 3.0, 2.0].iter().map(|v| v.exp()).sum();
        assert!((f64::from(t.logprob) - (2.0 - z.ln())).abs() < 1e-6);
        assert_eq!(t.top.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((f64::from(t.top[0].1) - (3.0 - z.ln())).abs() < 1e-6);
    }
}
