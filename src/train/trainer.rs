//! The training loop of both stages, read top to bottom like nanoGPT's `train.py`:
//!
//! ```text
//! run:    build -> evaluate (fresh run) -> while steps remain { update; log; evaluate every N;
//!         checkpoint every N } -> finish
//! update: grad_accum micro-batches of (batch -> InstructMol::loss -> backward -> accumulate),
//!         then clip + AdamW (optim.rs)
//! ```
//!
//! One SMILES travels: prepared JSONL record -> `data::Dataset` (graph features + template
//! tokens) -> [`InstructMol::loss`] (GIN -> projector -> graph tokens at `<image>` -> LLaMA with
//! LoRA -> causal-LM loss) -> backward -> [`AdamW`] on the trainable parts (projector; LoRA in
//! stage 2; the GIN when asked).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;

use super::optim::{AdamW, AdamWConfig, LossScaler, StepStats};
use super::schedule::CosineSchedule;
use super::{plot, Result, TrainError};
use crate::data::dataset::{Dataset, Example};
use crate::data::sampler::LengthGroupedSampler;
use crate::data::templates::Template;
use crate::model::loader::load_decoder as load_decoder_from;
use crate::model::quant::QuantMode;
use crate::model::{
    parse_device, parse_dtype, InstructMol, Llama, LoraInit, ModelTokenizer, MolPrompt, TrainInit,
};
use crate::rng::Rng;
use crate::run::{
    Checkpoint, RunConfig, RunDir, RunError, RunLog, Start, TrainerState, CURVE_STEM,
    DATA_REPORT_FILE, EVAL_EXAMPLES_FILE, OPTIMIZER_FILE, SUMMARY_FILE,
};

/// Which stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1: align the projector (plain template, LLM frozen).
    Pretrain,
    /// Stage 2: LoRA + projector instruction tuning.
    Finetune,
}

impl Stage {
    /// `"pretrain"` / `"finetune"`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Finetune => "finetune",
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// Updates done.
    pub steps: u64,
    /// Last training loss (mean of the last update's micro-batches).
    pub final_loss: f64,
    /// Last evaluation loss, if there is an evaluation split.
    pub eval_loss: Option<f64>,
    /// Text tokens per second over the run (graph tokens included).
    pub tokens_per_s: f64,
    /// Examples skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
}

/// Runs a stage from its configuration; `resume` continues from a run or checkpoint directory,
/// `overwrite` replaces the run already in `output_dir` (without either, it must be empty).
pub fn run(
    stage: Stage,
    cfg: &RunConfig,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<RunSummary> {
    let mut t = Trainer::build(stage, cfg, resume, overwrite)?;
    if t.state.step == 0 {
        // The held-out loss before training: where the evaluation curve starts.
        t.evaluate(false)?;
    }
    while t.state.step < t.total_steps {
        let update = t.update()?;
        t.log_update(&update)?;
        let at_end = t.state.step == t.total_steps;
        if at_end || every(cfg.train.eval_every, t.state.step) {
            t.evaluate(at_end)?;
        }
        if at_end || every(cfg.train.save_every, t.state.step) {
            t.checkpoint()?;
        }
    }
    t.finish()
}

/// Whether `step` is a multiple of a positive `n`.
fn every(n: u64, step: u64) -> bool {
    n > 0 && step.is_multiple_of(n)
}

/// Everything the loop holds.
struct Trainer<'a> {
    cfg: &'a RunConfig,
    run: RunDir,
    model: InstructMol,
    opt: AdamW,
    train: Dataset,
    eval: Option<Dataset>,
    sampler: LengthGroupedSampler,
    schedule: CosineSchedule,
    total_steps: u64,
    state: TrainerState,
    /// The batches of the epoch in progress (a pure function of seed and epoch).
    epoch_batches: Vec<Vec<usize>>,
    log: RunLog,
    bar: indicatif::ProgressBar,
    last_good: Option<PathBuf>,
    started: Instant,
    tokens_done: usize,
    last_loss: f64,
    /// Whether the "updates explode" warning was given.
    warned_explosion: bool,
}

/// What one update did.
struct Update {
    loss: f64,
    lr: f64,
    stats: StepStats,
    tokens: usize,
    seconds: f64,
}

fn config_err(field: &str, reason: impl std::fmt::Display) -> TrainError {
    RunError::Config {
        path: field.into(),
        reason: reason.to_string(),
    }
    .into()
}

impl<'a> Trainer<'a> {
    /// Build: resume point, decoder, template, data, model, optimizer, schedule, log.
    fn build(
        stage: Stage,
        cfg: &'a RunConfig,
        resume: Option<&Path>,
        overwrite: bool,
    ) -> Result<Self> {
        let start = match (resume, overwrite) {
            (Some(_), _) => Start::Resume,
            (None, true) => Start::Overwrite,
            (None, false) => Start::Fresh,
        };
        let run = RunDir::create(Path::new(&cfg.output_dir), start)?;
        // A checkpoint to resume from is verified before anything is loaded.
        let resume_from = resume.map(Checkpoint::open).transpose()?;
        if let Some(ckpt) = &resume_from {
            check_same_config(&ckpt.state, stage, cfg, &ckpt.dir)?;
        }
        let (decoder, tokenizer) = load_decoder(cfg)?;
        let template = Template::for_model(&cfg.model.template, &tokenizer, cfg.model.max_length)
            .map_err(|e| config_err("model.template", e))?;
        let (train, eval) = load_data(cfg, &template, &tokenizer)?;
        report_data(&run, &train, eval.as_ref())?;
        let model = build_model(stage, cfg, decoder, resume_from.as_ref())?;
        eprintln!(
            "{}: {} trainable parameters ({} tensors); {} training examples{}",
            stage.name(),
            model
                .params()
                .values()
                .map(|v| v.elem_count())
                .sum::<usize>(),
            model.params().len(),
            train.examples.len(),
            eval.as_ref()
                .map(|e| format!(", {} evaluation examples", e.examples.len()))
                .unwrap_or_default()
        );
        let mut opt = AdamW::new(
            model.params().clone(),
            AdamWConfig {
                weight_decay: cfg.train.weight_decay,
                max_grad_norm: cfg.train.max_grad_norm,
                ..Default::default()
            },
        );
        // f16's range is small: its gradients need dynamic loss scaling (bf16's do not).
        if model.decoder().dtype() == DType::F16 {
            opt = opt.with_loss_scaler(LossScaler::new(
                cfg.train.loss_scale_init,
                cfg.train.loss_scale_growth_interval,
            ));
        }
        let mut sampler = LengthGroupedSampler::new(train.lengths(), cfg.train.batch_size);
        if !cfg.train.group_by_length {
            sampler = sampler.with_mega_batch_mult(1);
        }
        let updates_per_epoch = sampler.num_batches().div_ceil(cfg.train.grad_accum) as u64;
        let total_steps = match cfg.train.max_steps {
            0 => cfg.train.epochs * updates_per_epoch,
            n => n,
        };
        let state = match &resume_from {
            Some(ckpt) => {
                opt.load(&ckpt.optimizer_file(), ckpt.state.step)?;
                eprintln!(
                    "resuming at step {} (epoch {}, batch {})",
                    ckpt.state.step, ckpt.state.epoch, ckpt.state.batch_in_epoch
                );
                ckpt.state.clone()
            }
            None => TrainerState::start(stage.name(), config_json(cfg)?),
        };
        let log = run.open_log(state.step)?;
        Ok(Self {
            cfg,
            epoch_batches: sampler.batches(cfg.train.seed, state.epoch),
            schedule: CosineSchedule::new(cfg.train.lr, cfg.train.warmup_ratio, total_steps),
            bar: progress_bar(stage, total_steps, state.step),
            last_good: resume_from.map(|c| c.dir),
            run,
            model,
            opt,
            train,
            eval,
            sampler,
            total_steps,
            state,
            log,
            started: Instant::now(),
            tokens_done: 0,
            last_loss: f64::NAN,
            warned_explosion: false,
        })
    }

    /// The next batch (example indices), moving to the next epoch when this one is done.
    fn next_batch(&mut self) -> Vec<usize> {
        if self.state.batch_in_epoch as usize >= self.epoch_batches.len() {
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.epoch_batches = self.sampler.batches(self.cfg.train.seed, self.state.epoch);
        }
        let idx = self.epoch_batches[self.state.batch_in_epoch as usize].clone();
        self.state.batch_in_epoch += 1;
        self.state.examples_seen += idx.len() as u64;
        idx
    }

    /// One optimizer update: `grad_accum` micro-batches (fewer at the end of an epoch), each
    /// forward + backward with the loss divided by `grad_accum` (and multiplied by the loss
    /// scale of an f16 model), then clip + AdamW (an f16 update whose gradients overflowed is
    /// skipped: it counts as a step, with a log line that says so).
    fn update(&mut self) -> Result<Update> {
        let started = Instant::now();
        let lr = self.schedule.lr(self.state.step);
        let accum = self.cfg.train.grad_accum;
        let (mut loss_sum, mut tokens, mut micro) = (0f64, 0usize, 0usize);
        loop {
            let seed =
                Rng::derive(self.cfg.train.seed, &[self.state.step, micro as u64]).next_u64();
            let batch: Vec<&Example> = self
                .next_batch()
                .into_iter()
                .map(|i| &self.train.examples[i])
                .collect();
            tokens += batch.iter().map(|e| e.expanded_len()).sum::<usize>();
            let prompts: Vec<MolPrompt> = batch.iter().map(|e| e.prompt()).collect();
            let loss = self.model.loss(&prompts, true, seed)?;
            let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(self.non_finite(format!("the loss is {value}")));
            }
            loss_sum += value;
            let scaled = ((loss * self.opt.loss_scale())? / accum as f64)?;
            self.opt.accumulate(&scaled.backward()?)?;
            micro += 1;
            let epoch_done = self.state.batch_in_epoch as usize >= self.epoch_batches.len();
            if micro == accum || epoch_done {
                break;
            }
        }
        let stats = match self.opt.step(lr) {
            Err(TrainError::Step(e)) => return Err(self.non_finite(e.to_string())),
            other => other?,
        };
        self.state.step += 1;
        self.last_loss = loss_sum / micro as f64;
        self.tokens_done += tokens;
        Ok(Update {
            loss: self.last_loss,
            lr,
            stats,
            tokens,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The error that stops a run whose update `state.step + 1` went NaN or infinite.
    fn non_finite(&self, what: String) -> TrainError {
        self.bar.abandon();
        TrainError::NonFinite {
            what,
            step: self.state.step + 1,
            last_good: self
                .last_good
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into()),
        }
    }

    /// One log line and the progress bar.
    fn log_update(&mut self, u: &Update) -> Result<()> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut line = serde_json::json!({
            "step": self.state.step, "epoch": self.state.epoch, "loss": u.loss, "lr": u.lr,
            "grad_norm": u.stats.grad_norm, "update_ratio": u.stats.update_ratio(), "tokens": u.tokens,
            "tokens_per_s": u.tokens as f64 / u.seconds, "elapsed_s": elapsed,
        });
        if let Some(scale) = u.stats.loss_scale {
            line["loss_scale"] = scale.into();
        }
        if u.stats.skipped {
            line["skipped"] = true.into();
            self.say(format!(
                "step {}: the f16 gradients overflowed at loss scale {}: update skipped, loss scale now {}",
                self.state.step,
                u.stats.loss_scale.unwrap_or(1.0),
                self.opt.loss_scale()
            ));
        }
        self.log.append(&line)?;
        self.bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            u.loss,
            u.lr,
            self.tokens_done as f64 / elapsed
        ));
        self.bar.set_position(self.state.step);
        let ratio = u.stats.update_ratio();
        if ratio > 1.0 && !self.warned_explosion {
            self.warned_explosion = true;
            self.say(format!(
                "warning: step {}: the update is {ratio:.1e} times the size of the weights (weight norm {:.3e}): \
                 the learning rate ({:.2e}) is far too high; `update_ratio` in log.jsonl shows every step",
                self.state.step, u.stats.param_norm, u.lr
            ));
        }
        Ok(())
    }

    /// A line for the user above the progress bar (or plain stderr when there is no bar).
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// The evaluation loss over the held-out examples (no dropout), logged; at the end of the
    /// run every example's own loss is written too.
    fn evaluate(&mut self, at_end: bool) -> Result<()> {
        let Some(eval) = &self.eval else {
            return Ok(());
        };
        let (loss, rows) = eval_loss(&self.model, &eval.examples, self.cfg.train.batch_size)?;
        if at_end {
            self.run.write_jsonl(EVAL_EXAMPLES_FILE, &rows)?;
        }
        self.state.eval_loss = Some(loss);
        self.log
            .append(&serde_json::json!({"step": self.state.step, "eval_loss": loss}))?;
        self.say(format!("step {}: eval loss {loss:.4}", self.state.step));
        Ok(())
    }

    /// A checkpoint (model directory + optimizer + state), then the loss curve.
    fn checkpoint(&mut self) -> Result<()> {
        let (model, opt) = (&self.model, &self.opt);
        let base = Some(self.cfg.model.llm.as_str());
        let dir =
            self.run
                .save_checkpoint(&self.state, self.cfg.train.keep_checkpoints, |dir| {
                    model.save(dir, base).map_err(|e| RunError::Checkpoint {
                        path: dir.to_path_buf(),
                        reason: e.to_string(),
                    })?;
                    opt.save(&dir.join(OPTIMIZER_FILE))
                })?;
        self.last_good = Some(dir);
        Ok(plot::loss_curve(
            &self.run.file(CURVE_STEM),
            &self.log.history()?,
        )?)
    }

    /// The summary (also written to the run), checkpointing first if nothing was saved yet.
    fn finish(mut self) -> Result<RunSummary> {
        self.bar.finish();
        if self.last_good.is_none() {
            self.checkpoint()?;
        }
        let summary = RunSummary {
            steps: self.state.step,
            final_loss: self.last_loss,
            eval_loss: self.state.eval_loss,
            tokens_per_s: self.tokens_done as f64 / self.started.elapsed().as_secs_f64(),
            skipped: self.train.skipped.clone(),
            checkpoint: self.last_good.clone().unwrap_or_default(),
        };
        self.run.write_json(SUMMARY_FILE, &summary)?;
        Ok(summary)
    }
}

/// The base decoder and its tokenizer, as the run's `model` section names them.
fn load_decoder(cfg: &RunConfig) -> Result<(Llama, ModelTokenizer)> {
    let device = parse_device(&cfg.model.device).map_err(|e| config_err("model.device", e))?;
    let dtype = parse_dtype(&cfg.model.dtype).map_err(|e| config_err("model.dtype", e))?;
    eprintln!("loading {} ...", cfg.model.llm);
    let t0 = Instant::now();
    // Training reads a GGUF base dense unless `model.quantize` asks for QLoRA ("as-stored"
    // keeps a GGUF's blocks, a type quantizes a dense base).
    let quantize = match cfg.model.quantize.as_deref() {
        None => QuantMode::Dense,
        Some(q) => q.parse().map_err(|e| config_err("model.quantize", e))?,
    };
    let loaded = load_decoder_from(&cfg.model.llm, dtype, &device, quantize)
        .map_err(|e| config_err("model.llm", e))?;
    eprintln!(
        "loaded in {:.1}s: {}",
        t0.elapsed().as_secs_f64(),
        loaded.source
    );
    Ok((loaded.llama, loaded.tokenizer))
}

/// The training and evaluation examples.
fn load_data(
    cfg: &RunConfig,
    template: &Template,
    tokenizer: &ModelTokenizer,
) -> Result<(Dataset, Option<Dataset>)> {
    let load = |path: &Path, limit: usize| {
        Dataset::load(path, limit, template, tokenizer.inner()).map_err(|e| RunError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let train_path = Path::new(&cfg.data.train);
    let train = load(train_path, cfg.data.max_train_examples)?;
    if train.examples.is_empty() {
        return Err(RunError::Config {
            path: train_path.to_path_buf(),
            reason: "no usable training example (see data_report.json)".into(),
        }
        .into());
    }
    let eval = match &cfg.data.eval {
        Some(p) => Some(load(Path::new(p), cfg.data.max_eval_examples)?),
        None => None,
    };
    Ok((train, eval))
}

/// The model to train: a resumed run continues its checkpoint (adapter included); otherwise
/// stage 2 starts from stage 1's projector and GIN (`model.init_from`) with fresh adapters.
fn build_model(
    stage: Stage,
    cfg: &RunConfig,
    decoder: Llama,
    resume: Option<&Checkpoint>,
) -> Result<InstructMol> {
    let init_from = match (resume, &cfg.model.init_from) {
        (Some(_), _) | (None, None) => None,
        (None, Some(p)) => {
            let ckpt = Checkpoint::open_model(Path::new(p))?;
            eprintln!("starting from {}", ckpt.dir.display());
            Some(ckpt)
        }
    };
    let lora = match (stage, resume) {
        (Stage::Pretrain, _) => LoraInit::None,
        (Stage::Finetune, Some(_)) => LoraInit::FromCheckpoint,
        (Stage::Finetune, None) => LoraInit::Fresh(cfg.lora.clone()),
    };
    let init = TrainInit {
        checkpoint: resume.or(init_from.as_ref()).map(|c| c.dir.as_path()),
        gin: cfg.model.gin.as_deref().map(Path::new),
        projector: cfg
            .model
            .projector
            .parse()
            .map_err(|e| config_err("model.projector", e))?,
        train_gin: cfg.model.train_gin,
        lora,
        seed: cfg.train.seed,
    };
    Ok(InstructMol::for_training(decoder, &init)?
        .with_zero_graph(cfg.model.zero_graph)
        .with_gradient_checkpointing(cfg.train.gradient_checkpointing))
}

/// The resolved configuration as saved in every checkpoint.
fn config_json(cfg: &RunConfig) -> Result<serde_json::Value> {
    serde_json::to_value(cfg).map_err(|e| config_err("config", e))
}

fn progress_bar(stage: Stage, total: u64, position: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(stage.name());
    bar.set_position(position);
    bar
}

/// Loss of one evaluation example.
#[derive(Debug, Clone, serde::Serialize)]
struct ExampleLoss {
    id: String,
    /// Mean loss over the example's supervised tokens.
    loss: f64,
    /// Supervised tokens.
    tokens: usize,
}

/// Token-weighted mean loss over `examples` (no dropout), in fixed length-sorted batches, and
/// every example's own loss (in `examples` order).
fn eval_loss(
    model: &InstructMol,
    examples: &[Example],
    batch_size: usize,
) -> Result<(f64, Vec<ExampleLoss>)> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].tokens.input_ids.len());
    let mut rows: Vec<Option<ExampleLoss>> = vec![None; examples.len()];
    let (mut total, mut count) = (0f64, 0usize);
    for chunk in order.chunks(batch_size.max(1)) {
        let prompts: Vec<MolPrompt> = chunk.iter().map(|&i| examples[i].prompt()).collect();
        for (&i, (sum, n)) in chunk.iter().zip(model.row_losses(&prompts)?) {
            total += sum;
            count += n;
            rows[i] = Some(ExampleLoss {
                id: examples[i].id.clone(),
                loss: if n == 0 { f64::NAN } else { sum / n as f64 },
                tokens: n,
            });
        }
    }
    let mean = if count == 0 {
        f64::NAN
    } else {
        total / count as f64
    };
    Ok((mean, rows.into_iter().flatten().collect()))
}

/// The configuration of a resumed run must be the one it was started with (the device, the
/// thread count and gradient checkpointing may change; keys added since the checkpoint was
/// written count with their defaults).
fn check_same_config(
    state: &TrainerState,
    stage: Stage,
    cfg: &RunConfig,
    dir: &Path,
) -> Result<()> {
    let refuse = |reason: String| -> TrainError {
        RunError::Checkpoint {
            path: dir.to_path_buf(),
            reason,
        }
        .into()
    };
    if state.stage != stage.name() {
        return Err(refuse(format!(
            "is a `{}` checkpoint, not `{}`",
            state.stage,
            stage.name()
        )));
    }
    let mut now = config_json(cfg)?;
    let mut then = match serde_json::from_value::<RunConfig>(state.config.clone()) {
        Ok(old) => config_json(&old)?,
        Err(_) => state.config.clone(),
    };
    for v in [&mut now, &mut then] {
        if let Some(m) = v.get_mut("model").and_then(|m| m.as_object_mut()) {
            m.remove("device");
        }
        if let Some(t) = v.get_mut("train").and_then(|m| m.as_object_mut()) {
            t.remove("threads");
            t.remove("gradient_checkpointing");
        }
    }
    if now == then {
        return Ok(());
    }
    let mut diffs = Vec::new();
    if let (Some(a), Some(b)) = (now.as_object(), then.as_object()) {
        for (section, va) in a {
            let vb = b.get(section);
            match (va.as_object(), vb.and_then(|v| v.as_object())) {
                (Some(sa), Some(sb)) => diffs.extend(
                    sa.iter()
                        .filter(|(k, x)| sb.get(*k) != Some(*x))
                        .map(|(k, _)| format!("{section}.{k}")),
                ),
                _ if vb != Some(va) => diffs.push(section.clone()),
                _ => {}
            }
        }
    }
    Err(refuse(format!(
        "was written with another configuration (differs in: {}); resume with the run's own config",
        diffs.join(", ")
    )))
}

/// Writes `data_report.json` and names the left-out examples on stderr.
fn report_data(run: &RunDir, train: &Dataset, eval: Option<&Dataset>) -> Result<()> {
    for (name, ds) in std::iter::once(("train", train)).chain(eval.map(|e| ("eval", e))) {
        if ds.left_out() > 0 || !ds.skipped.is_empty() {
            eprintln!(
                "{name} data: {} usable, {:?}",
                ds.examples.len(),
                ds.skipped
            );
            for e in &ds.first_errors {
                eprintln!("  {e}");
            }
        }
    }
    let section = |ds: &Dataset| serde_json::json!({"usable": ds.examples.len(), "skipped": ds.skipped, "first_errors": ds.first_errors});
    let report = serde_json::json!({"train": section(train), "eval": eval.map(section)});
    Ok(run.write_json(DATA_REPORT_FILE, &report)?)
}
