//! The training loop of both stages.
//!
//! One SMILES travels: prepared JSONL record -> [`chem::featurize_smiles`] (graph) and the
//! conversation template (token ids + loss mask) -> GIN node embeddings -> projector ->
//! [`model::splice`] at the `<image>` slot -> LLaMA (+ LoRA in stage 2) -> causal-LM loss ->
//! backward -> AdamW on the trainable parts (projector; LoRA in stage 2; GIN when asked).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use super::checkpoint::{self, TrainerState};
use super::optim::{clip_grad_norm, AdamW, AdamWConfig};
use super::schedule::CosineSchedule;
use super::{plot, Result, RunConfig, TrainError};
use crate::chem::GraphFeatures;
use crate::data::batch::LengthGroupedSampler;
use crate::data::dataset::{Dataset, Example};
use crate::data::templates::{Template, TemplateKind};
use crate::model::loader::load_model;
use crate::model::rng::Rng;
use crate::model::splice::{splice, SpliceItem};
use crate::model::{Gin, GinConfig, GraphBatch, Llama, LoraConfig, Projector, ProjectorKind};

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

/// Files of a checkpoint.
const PROJECTOR_FILE: &str = "projector.safetensors";
const GIN_FILE: &str = "gin.safetensors";
const ADAPTER_DIR: &str = "adapter";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Per-run files.
pub const LOG_FILE: &str = "log.jsonl";
/// The loss curve written next to the log.
pub const CURVE_FILE: &str = "loss_curve.png";
/// The final evaluation's loss per example (`id`, `loss`, `tokens`), for paired comparisons
/// between runs.
pub const EVAL_EXAMPLES_FILE: &str = "eval_examples.jsonl";
/// Record of the examples that could not be used.
pub const DATA_REPORT_FILE: &str = "data_report.json";

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

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Named variables of a VarMap, prefixed.
fn named_vars(varmap: &VarMap, prefix: &str) -> BTreeMap<String, Var> {
    varmap
        .data()
        .lock()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the loop needs.
struct Parts {
    llama: Llama,
    gin: Gin,
    projector: Projector,
    params: BTreeMap<String, Var>,
    device: Device,
    zero_graph: bool,
}

impl Parts {
    /// Logits `[b, s, V]` and labels `[b, s]` of `batch` (graph tokens spliced in).
    fn logits(
        &self,
        batch: &[&Example],
        train: bool,
        dropout_seed: u64,
    ) -> Result<(Tensor, Tensor)> {
        let graphs: Vec<&GraphFeatures> = batch.iter().map(|e| &e.graph).collect();
        let gb = GraphBatch::from_features(graphs.iter().copied(), &Device::Cpu)?;
        let nodes = self.gin.forward(&gb)?;
        let projected = self.projector.forward(&nodes)?;
        let projected = if self.zero_graph {
            projected.zeros_like()?
        } else {
            projected
        };
        let per_graph = gb.split(&projected)?;
        let items: Vec<SpliceItem> = batch
            .iter()
            .zip(per_graph)
            .map(|(e, g)| {
                Ok(SpliceItem {
                    ids: &e.tokens.input_ids,
                    labels: &e.tokens.labels,
                    image_position: e.tokens.image_position,
                    graph: Some(g.to_device(&self.device)?),
                })
            })
            .collect::<Result<_>>()?;
        let mm = splice(&items, &self.device, |ids| {
            self.llama
                .embed(&ids.unsqueeze(0)?)?
                .squeeze(0)
                .map_err(Into::into)
        })?;
        let logits =
            self.llama
                .forward(&mm.embeds, Some(&mm.attention_mask), train, dropout_seed)?;
        Ok((logits, mm.labels))
    }

    /// Mean loss over the supervised tokens of `batch`.
    fn loss(&self, batch: &[&Example], train: bool, dropout_seed: u64) -> Result<Tensor> {
        let (logits, labels) = self.logits(batch, train, dropout_seed)?;
        Ok(Llama::loss(&logits, &labels)?)
    }
}

/// Runs a stage from its configuration; `resume` continues from a run or checkpoint directory.
pub fn run(stage: Stage, cfg: &RunConfig, resume: Option<&Path>) -> Result<RunSummary> {
    let run_dir = PathBuf::from(&cfg.output_dir);
    std::fs::create_dir_all(&run_dir).map_err(|e| io_err(&run_dir, e))?;
    let device =
        crate::model::device::parse_device(&cfg.model.device).map_err(|e| TrainError::Config {
            path: "model.device".into(),
            reason: e.to_string(),
        })?;
    let dtype =
        crate::model::device::parse_dtype(&cfg.model.dtype).map_err(|e| TrainError::Config {
            path: "model.dtype".into(),
            reason: e.to_string(),
        })?;
    let seed = cfg.train.seed;

    // Resume: verify the checkpoint first, so a bad one fails before any loading.
    let resume_from = match resume {
        Some(p) => {
            let dir = checkpoint::resolve(p)?;
            let state = checkpoint::load(&dir)?;
            check_same_config(&state, stage, cfg, &dir)?;
            Some((dir, state))
        }
        None => None,
    };

    eprintln!("loading {} ...", cfg.model.llm);
    let t0 = Instant::now();
    let loaded = load_model(&cfg.model.llm, dtype, &device).map_err(|e| TrainError::Config {
        path: "model.llm".into(),
        reason: e.to_string(),
    })?;
    let tokenizer = loaded.tokenizer;
    let mut llama = Llama::from_weights(&loaded.config, loaded.weights, dtype, &device)?;
    eprintln!(
        "loaded in {:.1}s: {}",
        t0.elapsed().as_secs_f64(),
        loaded.source
    );

    let kind: TemplateKind = cfg
        .model
        .template
        .parse()
        .map_err(|reason| TrainError::Config {
            path: "model.template".into(),
            reason,
        })?;
    let mut template =
        Template::for_tokenizer(kind, tokenizer.inner()).with_max_len(cfg.model.max_length);
    if matches!(kind, TemplateKind::Plain | TemplateKind::VicunaV1) {
        template = template.with_bos(tokenizer.bos_id());
    }

    // Data.
    let train_path = PathBuf::from(&cfg.data.train);
    let load = |path: &Path, limit: usize| {
        Dataset::load(path, limit, &template, tokenizer.inner()).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let train = load(&train_path, cfg.data.max_train_examples)?;
    let eval = match &cfg.data.eval {
        Some(p) => Some(load(Path::new(p), cfg.data.max_eval_examples)?),
        None => None,
    };
    report_data(&run_dir, &train, eval.as_ref())?;
    if train.examples.is_empty() {
        return Err(TrainError::Config {
            path: train_path,
            reason: "no usable training example (see data_report.json)".into(),
        });
    }

    // Trainable parts. Stage 2 starts from stage 1's projector and GIN when given.
    let init_dir = match (&resume_from, &cfg.model.init_from) {
        (Some((dir, _)), _) => Some(dir.clone()),
        (None, Some(p)) => Some(checkpoint::resolve(Path::new(p))?),
        (None, None) => None,
    };
    if let (None, Some(dir)) = (&resume_from, &init_dir) {
        checkpoint::load(dir)?;
        eprintln!("starting from {}", dir.display());
    }
    let gin_vars = VarMap::new();
    let gin_vm = cfg.model.train_gin.then_some(&gin_vars);
    let gin = match (&init_dir, &cfg.model.gin) {
        (Some(dir), _) if dir.join(GIN_FILE).exists() => Gin::load(dir.join(GIN_FILE), gin_vm)?,
        (_, Some(path)) => Gin::load(path, gin_vm)?,
        _ => Gin::new(GinConfig::default(), seed ^ 0x61, gin_vm)?,
    };
    let proj_vars = VarMap::new();
    let projector = match &init_dir {
        Some(dir) => Projector::load(dir.join(PROJECTOR_FILE), Some(&proj_vars))?,
        None => {
            let kind: ProjectorKind = cfg.model.projector.parse()?;
            Projector::new(
                kind,
                gin.config().hidden,
                loaded.config.hidden_size,
                seed ^ 0x70,
                Some(&proj_vars),
            )?
        }
    };
    let lora_vars = VarMap::new();
    if stage == Stage::Finetune {
        match &resume_from {
            Some((dir, _)) => llama.load_peft(dir.join(ADAPTER_DIR), &lora_vars)?,
            None => {
                let lc = LoraConfig {
                    r: cfg.lora.r,
                    alpha: cfg.lora.alpha,
                    dropout: cfg.lora.dropout,
                    target_modules: cfg.lora.targets.clone(),
                };
                llama.add_lora(&lc, &lora_vars, seed ^ 0x10)?;
            }
        }
    }
    let mut params = named_vars(&proj_vars, "projector.");
    params.extend(named_vars(&gin_vars, "gin."));
    params.extend(named_vars(&lora_vars, "lora."));
    let n_trainable: usize = params.values().map(|v| v.elem_count()).sum();
    eprintln!(
        "{}: {} trainable parameters ({} tensors); {} training examples{}",
        stage.name(),
        n_trainable,
        params.len(),
        train.examples.len(),
        eval.as_ref()
            .map(|e| format!(", {} evaluation examples", e.examples.len()))
            .unwrap_or_default()
    );
    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            weight_decay: cfg.train.weight_decay,
            ..Default::default()
        },
    );
    let parts = Parts {
        llama,
        gin,
        projector,
        params,
        device,
        zero_graph: cfg.model.zero_graph,
    };

    // Schedule.
    let sampler = LengthGroupedSampler::new(train.lengths(), cfg.train.batch_size);
    let sampler = if cfg.train.group_by_length {
        sampler
    } else {
        sampler.with_mega_batch_mult(1)
    };
    let accum = cfg.train.grad_accum;
    let updates_per_epoch = sampler.num_batches().div_ceil(accum) as u64;
    let total_steps = if cfg.train.max_steps > 0 {
        cfg.train.max_steps
    } else {
        cfg.train.epochs * updates_per_epoch
    };
    let schedule = CosineSchedule::new(cfg.train.lr, cfg.train.warmup_ratio, total_steps);

    let config_json = serde_json::to_value(cfg).map_err(|e| io_err(&run_dir, e))?;
    let mut state = TrainerState {
        stage: stage.name().into(),
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        examples_seen: 0,
        eval_loss: None,
        config: config_json,
        manifest: BTreeMap::new(),
    };
    if let Some((dir, st)) = &resume_from {
        opt.load(&dir.join(OPTIMIZER_FILE), st.step)?;
        state = st.clone();
        eprintln!(
            "resuming at step {} (epoch {}, batch {})",
            st.step, st.epoch, st.batch_in_epoch
        );
    }
    let log_path = run_dir.join(LOG_FILE);
    truncate_log(&log_path, state.step)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err(&log_path, e))?;

    let bar = indicatif::ProgressBar::new(total_steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(stage.name());
    bar.set_position(state.step);

    let save = |state: &TrainerState, parts: &Parts, opt: &AdamW| -> Result<PathBuf> {
        checkpoint::save(&run_dir, state, cfg.train.keep_checkpoints, |dir| {
            parts.projector.save(dir.join(PROJECTOR_FILE))?;
            parts.gin.save(dir.join(GIN_FILE))?;
            if stage == Stage::Finetune {
                parts
                    .llama
                    .save_peft(dir.join(ADAPTER_DIR), Some(&cfg.model.llm))?;
            }
            opt.save(&dir.join(OPTIMIZER_FILE))
        })
    };
    let mut last_good: Option<PathBuf> = resume_from.as_ref().map(|(d, _)| d.clone());
    let kill_after: Option<u64> = std::env::var("INSTRUCTMOL_KILL_AFTER_STEP")
        .ok()
        .and_then(|v| v.parse().ok());

    let started = Instant::now();
    let mut tokens_done = 0usize;
    let mut last_loss = f64::NAN;
    let mut epoch_batches = sampler.batches(seed, state.epoch);
    while state.step < total_steps {
        if state.batch_in_epoch as usize >= epoch_batches.len() {
            state.epoch += 1;
            state.batch_in_epoch = 0;
            epoch_batches = sampler.batches(seed, state.epoch);
        }
        let lr = schedule.lr(state.step);
        let t_step = Instant::now();
        let mut grads: Option<candle_core::backprop::GradStore> = None;
        let mut loss_sum = 0f64;
        let mut micro = 0usize;
        let mut step_tokens = 0usize;
        while micro < accum && (state.batch_in_epoch as usize) < epoch_batches.len() {
            let idx = &epoch_batches[state.batch_in_epoch as usize];
            let batch: Vec<&Example> = idx.iter().map(|&i| &train.examples[i]).collect();
            let dropout_seed = Rng::derive(seed, &[state.step, micro as u64]).next_u64();
            let loss = parts.loss(&batch, true, dropout_seed)?;
            let value = loss.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    loss: value,
                    step: state.step,
                    last_good: last_good
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "none".into()),
                });
            }
            loss_sum += value;
            let g = (loss / accum as f64)?.backward()?;
            grads = Some(match grads.take() {
                None => g,
                Some(mut acc) => {
                    for var in parts.params.values() {
                        if let Some(new) = g.get(var.as_tensor()) {
                            let sum = match acc.remove(var.as_tensor()) {
                                Some(old) => (old + new)?,
                                None => new.clone(),
                            };
                            acc.insert(var.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
            step_tokens += batch.iter().map(|e| e.expanded_len()).sum::<usize>();
            state.examples_seen += batch.len() as u64;
            state.batch_in_epoch += 1;
            micro += 1;
        }
        let Some(mut grads) = grads else { continue };
        let grad_norm = clip_grad_norm(&mut grads, &parts.params, cfg.train.max_grad_norm)?;
        opt.step(&grads, lr)?;
        state.step += 1;
        last_loss = loss_sum / micro as f64;
        tokens_done += step_tokens;
        let secs = t_step.elapsed().as_secs_f64();
        let line = serde_json::json!({
            "step": state.step, "epoch": state.epoch, "loss": last_loss, "lr": lr,
            "grad_norm": grad_norm, "tokens": step_tokens, "tokens_per_s": step_tokens as f64 / secs,
            "elapsed_s": started.elapsed().as_secs_f64(),
        });
        writeln!(log, "{line}").map_err(|e| io_err(&log_path, e))?;
        bar.set_message(format!(
            "loss {last_loss:.4} lr {lr:.2e} {:.0} tok/s",
            tokens_done as f64 / started.elapsed().as_secs_f64()
        ));
        bar.set_position(state.step);

        let at_end = state.step == total_steps;
        if let Some(ev) = &eval {
            if (cfg.train.eval_every > 0 && state.step.is_multiple_of(cfg.train.eval_every))
                || at_end
            {
                let (l, rows) = eval_loss(&parts, &ev.examples, cfg.train.batch_size)?;
                if at_end {
                    write_example_losses(&run_dir.join(EVAL_EXAMPLES_FILE), &rows)?;
                }
                state.eval_loss = Some(l);
                writeln!(
                    log,
                    "{}",
                    serde_json::json!({"step": state.step, "eval_loss": l})
                )
                .map_err(|e| io_err(&log_path, e))?;
                bar.println(format!("step {}: eval loss {l:.4}", state.step));
            }
        }
        if (cfg.train.save_every > 0 && state.step.is_multiple_of(cfg.train.save_every)) || at_end {
            last_good = Some(save(&state, &parts, &opt)?);
            let (train_hist, eval_hist) = read_history(&log_path)?;
            plot::loss_curve(&run_dir.join(CURVE_FILE), &train_hist, &eval_hist)?;
        }
        if kill_after == Some(state.step) {
            // Test hook: die like a killed process (no clean-up, no final checkpoint).
            std::process::exit(137);
        }
    }
    bar.finish();
    let checkpoint = match last_good {
        Some(p) => p,
        None => save(&state, &parts, &opt)?,
    };
    let summary = RunSummary {
        steps: state.step,
        final_loss: last_loss,
        eval_loss: state.eval_loss,
        tokens_per_s: tokens_done as f64 / started.elapsed().as_secs_f64(),
        skipped: train.skipped.clone(),
        checkpoint,
    };
    let text = serde_json::to_vec_pretty(&summary).map_err(|e| io_err(&run_dir, e))?;
    checkpoint::write_atomic(&run_dir.join("summary.json"), &text)?;
    Ok(summary)
}

/// Loss of one evaluation example: summed over its supervised tokens.
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
    parts: &Parts,
    examples: &[Example],
    batch_size: usize,
) -> Result<(f64, Vec<ExampleLoss>)> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].tokens.input_ids.len());
    let mut rows: Vec<Option<ExampleLoss>> = vec![None; examples.len()];
    let (mut total, mut count) = (0f64, 0usize);
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
        let (logits, labels) = parts.logits(&batch, false, 0)?;
        let per_row = Llama::row_losses(&logits.detach(), &labels)?;
        for (&i, (sum, n)) in chunk.iter().zip(per_row) {
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

/// Writes the final evaluation's per-example losses, one JSON line each.
fn write_example_losses(path: &Path, rows: &[ExampleLoss]) -> Result<()> {
    let mut text = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut text, r).map_err(|e| io_err(path, e))?;
        text.push(b'\n');
    }
    checkpoint::write_atomic(path, &text)
}

/// The configuration of a resumed run must be the one it was started with (the device and
/// thread count may change).
fn check_same_config(
    state: &TrainerState,
    stage: Stage,
    cfg: &RunConfig,
    dir: &Path,
) -> Result<()> {
    if state.stage != stage.name() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!("is a `{}` checkpoint, not `{}`", state.stage, stage.name()),
        });
    }
    let mut now = serde_json::to_value(cfg).map_err(|e| io_err(dir, e))?;
    let mut then = state.config.clone();
    for v in [&mut now, &mut then] {
        if let Some(m) = v.get_mut("model").and_then(|m| m.as_object_mut()) {
            m.remove("device");
        }
        if let Some(t) = v.get_mut("train").and_then(|m| m.as_object_mut()) {
            t.remove("threads");
        }
    }
    if now != then {
        let mut diffs = Vec::new();
        if let (Some(a), Some(b)) = (now.as_object(), then.as_object()) {
            for (section, va) in a {
                let vb = b.get(section);
                match (va.as_object(), vb.and_then(|v| v.as_object())) {
                    (Some(sa), Some(sb)) => {
                        for (k, x) in sa {
                            if sb.get(k) != Some(x) {
                                diffs.push(format!("{section}.{k}"));
                            }
                        }
                    }
                    _ if vb != Some(va) => diffs.push(section.clone()),
                    _ => {}
                }
            }
        }
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!(
                "was written with another configuration (differs in: {}); resume with the run's own config",
                diffs.join(", ")
            ),
        });
    }
    Ok(())
}

/// Keeps the log lines up to `step` (a resumed run rewrites what came after its checkpoint).
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s <= step)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    checkpoint::write_atomic(path, kept.as_bytes())
}

/// (step, loss) points.
pub type Curve = Vec<(u64, f64)>;

/// Training and evaluation losses from a log.
pub fn read_history(path: &Path) -> Result<(Curve, Curve)> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(s) = v.get("step").and_then(|s| s.as_u64()) else {
            continue;
        };
        if let Some(l) = v.get("loss").and_then(|l| l.as_f64()) {
            train.push((s, l));
        }
        if let Some(l) = v.get("eval_loss").and_then(|l| l.as_f64()) {
            eval.push((s, l));
        }
    }
    Ok((train, eval))
}

fn report_data(run_dir: &Path, train: &Dataset, eval: Option<&Dataset>) -> Result<()> {
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
    let report = serde_json::json!({
        "train": {"usable": train.examples.len(), "skipped": train.skipped, "first_errors": train.first_errors},
        "eval": eval.map(|e| serde_json::json!({"usable": e.examples.len(), "skipped": e.skipped, "first_errors": e.first_errors})),
    });
    let path = run_dir.join(DATA_REPORT_FILE);
    let text = serde_json::to_vec_pretty(&report).map_err(|e| io_err(&path, e))?;
    checkpoint::write_atomic(&path, &text)
}
