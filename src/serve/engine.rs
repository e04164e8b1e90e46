//! The scheduler: one thread owns the decoding of every loaded run and batches requests
//! continuously. A request is prefilled alone as soon as there is room (at most `max_batch`
//! rows decode at once), then its KV cache joins the running batch of its run
//! ([`KvCache::append_rows`]); every step decodes one token for every row of a run in one
//! forward pass, and a row leaves the batch ([`KvCache::retain_rows`]) when it is done or its
//! client has gone. Requests wait in a bounded queue; a full queue is refused at once.
//!
//! Rows of different runs decode in separate batches (their adapters differ), one after the
//! other within a step.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use tokio::sync::mpsc::UnboundedSender;

use crate::infer::assistant::Assistant;
use crate::infer::{
    token_logprobs, AnswerStream, Prompt, Sampler, SamplingConfig, TokenLogprobs, YesNoIds,
};
use crate::model::{Decode, KvCache};

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
    /// Token choice (penalties, temperature, top-p, seed).
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
    /// The prompt: embeddings `[1, s, d]` (graph tokens spliced in) and its text's ids (for
    /// the repetition penalty).
    pub prompt: Prompt,
    /// Decoding settings.
    pub settings: JobSettings,
    /// Where the answer goes; the request is dropped when its receiver is gone.
    pub events: UnboundedSender<Event>,
    /// When the request was queued.
    pub queued: Instant,
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
        /// The log-probabilities of the token that completed it, when asked.
        logprob: Option<TokenLogprobs>,
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
    load: Arc<Load>,
}

/// How busy the scheduler is, as `/health` reports it.
#[derive(Debug, Default)]
struct Load {
    /// Requests submitted and not yet taken by the scheduler.
    queued: AtomicUsize,
    /// Requests decoding (prefilled and in a batch).
    running: AtomicUsize,
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
        let load = Arc::new(Load::default());
        let scheduler = Scheduler::new(models, max_batch, load.clone());
        let thread = std::thread::Builder::new()
            .name("instructmol-scheduler".into())
            .spawn(move || scheduler.run(rx))?;
        Ok(Self {
            tx,
            thread: Some(thread),
            load,
        })
    }

    /// Queues a job; refused at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        // Counted before sending, so the scheduler's decrement never comes first.
        self.load.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.try_send(job).map_err(|e| {
            self.load.queued.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            }
        })
    }

    /// `(running, queued)`: requests decoding now, and requests waiting for a slot.
    pub fn load(&self) -> (usize, usize) {
        (
            self.load.running.load(Ordering::SeqCst),
            self.load.queued.load(Ordering::SeqCst),
        )
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
    /// Its token choice, with the state of its penalties.
    sampler: Sampler,
    /// Its answer text, stop strings held back and cut.
    stream: AnswerStream,
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
    load: Arc<Load>,
}

impl Scheduler {
    fn new(models: Arc<Vec<ServedModel>>, max_batch: usize, load: Arc<Load>) -> Self {
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
            load,
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
                    Ok(job) => self.take(job),
                    Err(_) => return,
                }
            }
            while open && self.active() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => self.take(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            for m in 0..self.groups.len() {
                if !self.groups[m].rows.is_empty() {
                    self.step(m);
                }
            }
            self.load.running.store(self.active(), Ordering::SeqCst);
        }
    }

    /// A job leaves the queue and is admitted.
    fn take(&mut self, job: Job) {
        self.load.queued.fetch_sub(1, Ordering::SeqCst);
        self.admit(job);
        self.load.running.store(self.active(), Ordering::SeqCst);
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
            let (_, s, _) = job.prompt.embeds.dims3()?;
            let mut cache = assistant.model.new_cache(1);
            let logits = assistant
                .model
                .forward_cached(&job.prompt.embeds, None, &mut cache)?;
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
            sampler: Sampler::with_prompt_ids(job.settings.sampling, &job.prompt.text_ids),
            stream: AnswerStream::new(&assistant.tokenizer, &job.settings.stop),
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
            .and_then(|k| token_logprobs(logits, id, k));
        let text = match self.stream.push(&model.assistant.tokenizer, id) {
            Ok(text) => text,
            Err(e) => return self.fail(&e.to_string()),
        };
        self.send_text(text, logprob);
        if self.stream.is_stopped() {
            return self.finish(model, FinishReason::Stop);
        }
        if self.generated >= self.job.settings.max_tokens || self.generated >= self.room {
            return self.finish(model, FinishReason::Length);
        }
        false
    }

    /// Sends new answer text (the stream holds back what may begin a stop string), or a
    /// log-probability alone.
    fn send_text(&mut self, text: String, logprob: Option<TokenLogprobs>) {
        if !text.is_empty() || logprob.is_some() {
            let _ = self.job.events.send(Event::Text { text, logprob });
        }
    }

    fn finish(&mut self, model: &ServedModel, reason: FinishReason) -> bool {
        // What was held back for stop strings, and bytes of an unfinished character.
        let rest = self
            .stream
            .finish(&model.assistant.tokenizer)
            .unwrap_or_default();
        self.send_text(rest, None);
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
