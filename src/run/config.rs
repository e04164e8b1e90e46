//! Run configuration: a TOML file (see `configs/`) whose every field can be overridden on the
//! command line with `--set section.field=value`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Result, RunError};
use crate::model::LoraConfig;

/// Which networks come from where and how they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The language model: a Hugging Face directory, a repo id in the local HF cache, or a GGUF file.
    pub llm: String,
    /// Weight dtype of the language model: `f32`, `bf16` or `f16`.
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// MoleculeSTM GIN weights (`molecule_model.pth` or our safetensors); absent or empty: random
    /// initialisation.
    #[serde(default)]
    pub gin: Option<String>,
    /// Train the GIN too (needed when no pretrained GIN exists).
    #[serde(default)]
    pub train_gin: bool,
    /// Projector architecture: `linear` or `mlp2x_gelu`.
    #[serde(default = "default_projector")]
    pub projector: String,
    /// Conversation template: `plain` (stage 1), `vicuna_v1`, `chatml`.
    pub template: String,
    /// Longest tokenised example (graph tokens included).
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// Stage 2: the stage-1 run (directory or checkpoint) whose projector (and GIN) to start from;
    /// absent or empty: a fresh projector (stage 2 alone).
    #[serde(default)]
    pub init_from: Option<String>,
    /// Ablation: replace every graph token by zeros (the "no graph" control run).
    #[serde(default)]
    pub zero_graph: bool,
    /// QLoRA: the base decoder's matrices quantized (q8_0, q4_k, q4_0, ...) and frozen, LoRA
    /// and optimizer in f32; `as-stored` trains on a GGUF's own blocks. Absent or `none`: a
    /// dense base (a GGUF dequantized).
    #[serde(default)]
    pub quantize: Option<String>,
}

/// Training and evaluation data (prepared JSONL from `instructmol data prepare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training examples.
    pub train: String,
    /// Held-out examples for the evaluation loss.
    #[serde(default)]
    pub eval: Option<String>,
    /// Use only the first N training examples (0: all).
    #[serde(default)]
    pub max_train_examples: usize,
    /// Use only the first N evaluation examples (0: all).
    #[serde(default)]
    pub max_eval_examples: usize,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training data.
    pub epochs: u64,
    /// Stop after this many optimizer updates (0: no limit).
    #[serde(default)]
    pub max_steps: u64,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per optimizer update.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Fraction of updates spent warming up.
    #[serde(default = "default_warmup")]
    pub warmup_ratio: f64,
    /// Global gradient-norm clip (0: off).
    #[serde(default = "one_f")]
    pub max_grad_norm: f64,
    /// Seed of shuffling, dropout and initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Evaluation loss every N updates (0: only before the first update of a fresh run and at
    /// the end, which are always evaluated).
    #[serde(default)]
    pub eval_every: u64,
    /// Checkpoint every N updates (0: only at the end).
    #[serde(default)]
    pub save_every: u64,
    /// Checkpoints to keep.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Batch examples of similar length together (LLaVA's length grouping).
    #[serde(default = "yes")]
    pub group_by_length: bool,
    /// CPU threads for the math (0: all cores).
    #[serde(default)]
    pub threads: usize,
    /// Gradient checkpointing per decoder block: the backward pass recomputes each block's
    /// activations from its input instead of keeping them (same loss and gradients, less
    /// memory, one more forward pass of compute). May change when a run resumes.
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// f16 models: the initial dynamic loss scale (PyTorch GradScaler's `init_scale`).
    #[serde(default = "default_loss_scale")]
    pub loss_scale_init: f64,
    /// f16 models: finite updates in a row after which the loss scale doubles (GradScaler's
    /// `growth_interval`).
    #[serde(default = "default_growth_interval")]
    pub loss_scale_growth_interval: u64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Where checkpoints, logs and the loss curve go.
    pub output_dir: String,
    /// Networks.
    pub model: ModelSection,
    /// Data.
    pub data: DataSection,
    /// Optimisation.
    pub train: TrainSection,
    /// LoRA (stage 2 only).
    #[serde(default)]
    pub lora: LoraConfig,
}

fn default_dtype() -> String {
    "f32".into()
}
fn default_device() -> String {
    "cpu".into()
}
fn default_projector() -> String {
    "linear".into()
}
fn default_max_length() -> usize {
    2048
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_warmup() -> f64 {
    0.03
}
fn default_keep() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn default_loss_scale() -> f64 {
    65536.0
}
fn default_growth_interval() -> u64 {
    2000
}

impl RunConfig {
    /// Reads `path` and applies `overrides` (`section.field=value`, value in TOML syntax or a
    /// bare string), then checks the result. Relative paths inside the file are kept as
    /// written (relative to the working directory, like every other path on the command line).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RunError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, path, overrides)
    }

    /// Parses TOML text (`origin` names it in errors) and applies overrides.
    pub fn from_toml(text: &str, origin: &Path, overrides: &[String]) -> Result<Self> {
        let bad = |reason: String| RunError::Config {
            path: origin.to_path_buf(),
            reason,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let from_file = table.clone();
        let bad_set = |reason: String| RunError::Config {
            path: PathBuf::from("--set"),
            reason,
        };
        for item in overrides {
            apply_override(&mut table, item).map_err(bad_set)?;
        }
        let mut cfg: RunConfig = match toml::Value::Table(table).try_into() {
            Ok(cfg) => cfg,
            Err(e) => {
                let e: toml::de::Error = e;
                // Blame the overrides when the file alone is fine.
                let file_ok = toml::Value::Table(from_file)
                    .try_into::<RunConfig>()
                    .is_ok();
                return Err(if file_ok && !overrides.is_empty() {
                    bad_set(format!("{} (in {})", e.message(), overrides.join(" ")))
                } else {
                    bad(e.to_string())
                });
            }
        };
        // An empty path means none (so `--set model.init_from=` can switch stage 1 off).
        for path in [&mut cfg.model.gin, &mut cfg.model.init_from] {
            if path.as_deref().is_some_and(|p| p.trim().is_empty()) {
                *path = None;
            }
        }
        // Paths that exist are stored absolute, so that a run (whose checkpoints keep this
        // configuration) works from any working directory.
        for path in [
            &mut cfg.model.gin,
            &mut cfg.model.init_from,
            &mut cfg.data.eval,
        ]
        .into_iter()
        .flatten()
        .chain([&mut cfg.model.llm, &mut cfg.data.train])
        {
            absolute_if_present(path);
        }
        if let Ok(abs) = std::path::absolute(&cfg.output_dir) {
            cfg.output_dir = abs.to_string_lossy().into_owned();
        }
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.train;
        if t.batch_size == 0 || t.grad_accum == 0 {
            return Err("train.batch_size and train.grad_accum must be at least 1".into());
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(format!("train.lr must be a positive number, got {}", t.lr));
        }
        if !(0.0..1.0).contains(&t.warmup_ratio) {
            return Err(format!(
                "train.warmup_ratio must be in [0, 1), got {}",
                t.warmup_ratio
            ));
        }
        if t.epochs == 0 && t.max_steps == 0 {
            return Err("set train.epochs or train.max_steps".into());
        }
        if !(0.0..1.0).contains(&self.lora.dropout) {
            return Err(format!(
                "lora.dropout must be in [0, 1), got {}",
                self.lora.dropout
            ));
        }
        if self.lora.r == 0 {
            return Err("lora.r must be at least 1".into());
        }
        for (name, v) in [
            ("train.weight_decay", t.weight_decay),
            ("train.max_grad_norm", t.max_grad_norm),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be a number >= 0, got {v}"));
            }
        }
        if !(t.loss_scale_init.is_finite() && t.loss_scale_init >= 1.0) {
            return Err(format!(
                "train.loss_scale_init must be a number >= 1, got {}",
                t.loss_scale_init
            ));
        }
        if t.loss_scale_growth_interval == 0 {
            return Err("train.loss_scale_growth_interval must be at least 1".into());
        }
        if !(self.lora.alpha.is_finite() && self.lora.alpha > 0.0) {
            return Err(format!(
                "lora.alpha must be a positive number, got {}",
                self.lora.alpha
            ));
        }
        self.lora.validate().map_err(|e| format!("[lora]: {e}"))?;
        if t.threads > MAX_THREADS {
            return Err(format!(
                "train.threads = {} is not a thread count this machine can run; use 0 (all cores) or at most {MAX_THREADS}",
                t.threads
            ));
        }
        Ok(())
    }
}

/// The most CPU threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

/// Replaces a relative path that exists with its absolute form (a Hugging Face repository id
/// such as `org/name`, which is not a local path, is kept).
fn absolute_if_present(path: &mut String) {
    let p = Path::new(path.as_str());
    if p.is_relative() && p.exists() {
        if let Ok(abs) = std::path::absolute(p) {
            *path = abs.to_string_lossy().into_owned();
        }
    }
}

/// Sets `section.field=value` in a TOML table. The value is read as TOML (`1e-4`, `true`,
/// `"text"`, `[1, 2]`) and, failing that, taken as a bare string.
fn apply_override(table: &mut toml::Table, item: &str) -> std::result::Result<(), String> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| format!("`{item}`: expected section.field=value"))?;
    let key = key.trim();
    let value = match format!("v = {}", raw.trim()).parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let (last, sections) = parts
        .split_last()
        .ok_or_else(|| format!("`{item}`: empty key"))?;
    let mut cur = table;
    for s in sections {
        let entry = cur
            .entry(s.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{item}`: `{s}` is not a section"))?;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
output_dir = "runs/x"
[model]
llm = "models/m.gguf"
template = "chatml"
[data]
train = "train.jsonl"
[train]
epochs = 1
batch_size = 4
lr = 2e-3
"#;

    #[test]
    fn defaults_and_overrides() {
        let cfg = RunConfig::from_toml(
            BASE,
            Path::new("x.toml"),
            &[
                "train.lr=1e-4".into(),
                "model.device=cuda".into(),
                "lora.r=8".into(),
                "lora.alpha=16.0".into(),
                "lora.dropout=0.0".into(),
                "lora.targets=[\"q_proj\"]".into(),
                "data.eval=valid.jsonl".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.train.lr, 1e-4);
        assert_eq!(cfg.model.device, "cuda");
        assert_eq!(cfg.train.grad_accum, 1);
        assert_eq!(cfg.train.warmup_ratio, 0.03);
        assert_eq!(cfg.lora.target_modules, vec!["q_proj"]);
        assert_eq!(cfg.data.eval.as_deref(), Some("valid.jsonl"));
        let with_init = format!("{BASE}\n");
        let with_init = with_init.replace("[data]", "init_from = \"runs/s1\"\n[data]");
        let cfg = RunConfig::from_toml(&with_init, Path::new("x.toml"), &[]).unwrap();
        assert_eq!(cfg.model.init_from.as_deref(), Some("runs/s1"));
        let cfg = RunConfig::from_toml(
            &with_init,
            Path::new("x.toml"),
            &["model.init_from=".into()],
        )
        .unwrap();
        assert_eq!(
            cfg.model.init_from, None,
            "an empty override switches stage 1 off"
        );
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err =
            RunConfig::from_toml(BASE, Path::new("x.toml"), &["train.learning_rate=1".into()])
                .unwrap_err()
                .to_string();
        assert!(err.contains("learning_rate"), "{err}");
        let err = RunConfig::from_toml(BASE, Path::new("x.toml"), &["train.lr=-1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("train.lr"), "{err}");
        let err = RunConfig::from_toml(BASE, Path::new("x.toml"), &["nonsense".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("section.field=value"), "{err}");
        let err = RunConfig::from_toml("output_dir = ", Path::new("bad.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.toml"), "{err}");
        // A bad override is blamed on --set, not on the file.
        let err = RunConfig::from_toml(BASE, Path::new("x.toml"), &["train.lr=\"fast\"".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--set") && !err.contains("x.toml"), "{err}");
        for (set, named) in [
            ("train.threads=100000", "train.threads"),
            ("train.weight_decay=-0.1", "train.weight_decay"),
            ("train.max_grad_norm=-1", "train.max_grad_norm"),
            ("train.loss_scale_init=0.5", "train.loss_scale_init"),
            (
                "train.loss_scale_growth_interval=0",
                "loss_scale_growth_interval",
            ),
            ("lora.alpha=-16.0", "lora.alpha"),
            ("lora.targets=[\"qkv\"]", "qkv"),
        ] {
            let err = RunConfig::from_toml(BASE, Path::new("x.toml"), &[set.into()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{set}: {err}");
        }
    }
}
