//! LoRA adapters on the decoder's linear layers, in PEFT's format.
//!
//! A LoRA layer adds `scale * B (A dropout(x))` to a frozen `W x`, with `A [r, in]`,
//! `B [out, r]` and `scale = alpha / r` (PEFT's `LoraLayer` with `use_rslora = false`).
//! `A` starts as PEFT's default (Kaiming-uniform with `a = sqrt(5)`, i.e. uniform in
//! `±1/sqrt(in)`), `B` as zeros, so a fresh adapter leaves the model unchanged.
//!
//! On disk an adapter is a PEFT directory: `adapter_config.json` and
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` and so on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{ModelError, Result};
use crate::rng::Rng;

/// The seven linear layers of a LLaMA block that LoRA can adapt, in block order.
pub const LORA_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Where a module lives inside a block (`self_attn` or `mlp`).
pub fn module_parent(module: &str) -> &'static str {
    match module {
        "gate_proj" | "up_proj" | "down_proj" => "mlp",
        _ => "self_attn",
    }
}

/// LoRA hyperparameters (also the `[lora]` section of a run config, where the modules are
/// called `targets`; a missing field takes InstructMol's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scaling numerator: the update is multiplied by `alpha / r`.
    pub alpha: f64,
    /// Dropout probability on the LoRA branch's input (training only).
    pub dropout: f64,
    /// Adapted modules, a subset of [`LORA_MODULES`].
    #[serde(rename = "targets")]
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    /// InstructMol's setting: r 64, alpha 16, dropout 0.05, all seven modules.
    fn default() -> Self {
        Self {
            r: 64,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: LORA_MODULES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// Checks rank, dropout and module names.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(ModelError::Config("LoRA rank r must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!(
                "LoRA dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        if self.target_modules.is_empty() {
            return Err(ModelError::Config("LoRA target_modules is empty".into()));
        }
        for m in &self.target_modules {
            if !LORA_MODULES.contains(&m.as_str()) {
                return Err(ModelError::Config(format!(
                    "unknown LoRA target module `{m}` (expected some of {})",
                    LORA_MODULES.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// `alpha / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }

    /// Whether `module` (e.g. `"q_proj"`) is adapted.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|m| m == module)
    }
}

/// One LoRA adapter: `A [r, in]`, `B [out, r]` (trainable variables), scale and dropout.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// Down projection, `[r, in]`.
    pub a: Var,
    /// Up projection, `[out, r]`.
    pub b: Var,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout probability on the input of `A`.
    pub dropout: f64,
}

/// PEFT's `adapter_config.json` (the fields we read and write).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeftConfig {
    /// Always `"LORA"`.
    pub peft_type: String,
    /// `"CAUSAL_LM"`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// Rank.
    pub r: usize,
    /// Scaling numerator.
    pub lora_alpha: f64,
    /// Dropout.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Adapted module names (a list; PEFT may also write a regex string, which we reject).
    pub target_modules: serde_json::Value,
    /// `"none"` (biases are not adapted).
    #[serde(default = "default_bias")]
    pub bias: String,
    /// The base model the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Must be false for LLaMA's `nn.Linear` layers.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Rank-stabilised scaling (`alpha / sqrt(r)`), not supported.
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA, not supported.
    #[serde(default)]
    pub use_dora: bool,
    /// Whether the adapter is for inference only.
    #[serde(default)]
    pub inference_mode: bool,
    /// Per-module rank overrides, not supported when non-empty.
    #[serde(default)]
    pub rank_pattern: serde_json::Value,
    /// Per-module alpha overrides, not supported when non-empty.
    #[serde(default)]
    pub alpha_pattern: serde_json::Value,
    /// Fully trained extra modules, not supported when set.
    #[serde(default)]
    pub modules_to_save: serde_json::Value,
    /// Layers the adapter is restricted to, not supported when set.
    #[serde(default)]
    pub layers_to_transform: serde_json::Value,
}

fn default_bias() -> String {
    "none".to_string()
}

fn is_empty_json(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl PeftConfig {
    /// The PEFT config describing `cfg`.
    pub fn from_lora(cfg: &LoraConfig, base_model: Option<&str>) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: cfg.r,
            lora_alpha: cfg.alpha,
            lora_dropout: cfg.dropout,
            target_modules: serde_json::Value::Array(
                cfg.target_modules
                    .iter()
                    .map(|m| serde_json::Value::String(m.clone()))
                    .collect(),
            ),
            bias: "none".into(),
            base_model_name_or_path: base_model.map(str::to_string),
            fan_in_fan_out: false,
            use_rslora: false,
            use_dora: false,
            inference_mode: true,
            rank_pattern: serde_json::Value::Object(Default::default()),
            alpha_pattern: serde_json::Value::Object(Default::default()),
            modules_to_save: serde_json::Value::Null,
            layers_to_transform: serde_json::Value::Null,
        }
    }

    /// The LoRA config this PEFT config describes, or a clear error for what we cannot run.
    pub fn to_lora(&self, path: &Path) -> Result<LoraConfig> {
        let bad = |reason: String| ModelError::Read {
            path: path.to_path_buf(),
            reason,
        };
        if self.peft_type != "LORA" {
            return Err(bad(format!(
                "peft_type is `{}`, only LORA adapters are supported",
                self.peft_type
            )));
        }
        if self.bias != "none" {
            return Err(bad(format!(
                "bias `{}` is not supported (only \"none\")",
                self.bias
            )));
        }
        if self.fan_in_fan_out {
            return Err(bad("fan_in_fan_out = true is not supported".into()));
        }
        if self.use_rslora || self.use_dora {
            return Err(bad("use_rslora / use_dora are not supported".into()));
        }
        for (name, v) in [
            ("rank_pattern", &self.rank_pattern),
            ("alpha_pattern", &self.alpha_pattern),
            ("modules_to_save", &self.modules_to_save),
            ("layers_to_transform", &self.layers_to_transform),
        ] {
            if !is_empty_json(v) {
                return Err(bad(format!("{name} is set ({v}); this is not supported")));
            }
        }
        let target_modules = match &self.target_modules {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|m| {
                    m.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("target_modules entry {m} is not a string")))
                })
                .collect::<Result<Vec<_>>>()?,
            other => {
                return Err(bad(format!(
                    "target_modules must be a list of module names, found {other}"
                )))
            }
        };
        let cfg = LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules,
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }
}

/// PEFT's tensor name of one LoRA matrix (`which` is `"A"` or `"B"`).
pub fn peft_tensor_name(layer: usize, module: &str, which: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{module}.lora_{which}.weight",
        module_parent(module)
    )
}

/// A fresh adapter for the frozen weight `w [out, in]` (same dtype and device), registered in
/// `varmap` under its PEFT names.
pub(crate) fn new_adapter(
    cfg: &LoraConfig,
    layer: usize,
    module: &str,
    (out, inp): (usize, usize),
    (dtype, device): (DType, &Device),
    varmap: &VarMap,
    rng: &mut Rng,
) -> Result<LoraAdapter> {
    let bound = 1.0 / (inp as f64).sqrt();
    let a = rng
        .uniform(-bound, bound, &[cfg.r, inp], device)?
        .to_dtype(dtype)?;
    let b = Tensor::zeros((out, cfg.r), dtype, device)?;
    register(cfg, layer, module, a, b, varmap)
}

/// Wraps `a`, `b` as variables registered in `varmap` under their PEFT names.
pub(crate) fn register(
    cfg: &LoraConfig,
    layer: usize,
    module: &str,
    a: Tensor,
    b: Tensor,
    varmap: &VarMap,
) -> Result<LoraAdapter> {
    let a = Var::from_tensor(&a)?;
    let b = Var::from_tensor(&b)?;
    let mut data = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Config("the VarMap lock is poisoned".into()))?;
    data.insert(peft_tensor_name(layer, module, "A"), a.clone());
    data.insert(peft_tensor_name(layer, module, "B"), b.clone());
    Ok(LoraAdapter {
        a,
        b,
        scale: cfg.scale(),
        dropout: cfg.dropout,
    })
}

/// Paths of an adapter directory's two files: the config and the tensors
/// (`adapter_model.safetensors`, or the PyTorch `adapter_model.bin` that peft 0.4/0.5 write
/// when only that one is there).
pub fn adapter_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let st = dir.join("adapter_model.safetensors");
    let bin = dir.join("adapter_model.bin");
    let tensors = if !st.exists() && bin.exists() {
        bin
    } else {
        st
    };
    (dir.join("adapter_config.json"), tensors)
}

/// The base model an adapter directory was trained on, as its `adapter_config.json` names it
/// (`base_model_name_or_path`, e.g. `lmsys/vicuna-7b-v1.3`).
pub fn adapter_base_model(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v.get("base_model_name_or_path")?.as_str()?.to_string())
}

/// Reads an adapter directory: its LoRA config and tensors (f32 on the CPU as stored).
pub fn read_adapter(dir: &Path) -> Result<(LoraConfig, HashMap<String, Tensor>)> {
    let (cfg_path, st_path) = adapter_paths(dir);
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::Read {
        path: cfg_path.clone(),
        reason: format!("{e} (a PEFT adapter directory needs adapter_config.json)"),
    })?;
    let peft: PeftConfig = serde_json::from_str(&text).map_err(|e| ModelError::Read {
        path: cfg_path.clone(),
        reason: e.to_string(),
    })?;
    let cfg = peft.to_lora(&cfg_path)?;
    if !st_path.exists() {
        return Err(ModelError::Read {
            path: st_path,
            reason: "file not found (a PEFT adapter directory needs adapter_model.safetensors \
                     or adapter_model.bin)"
                .into(),
        });
    }
    let tensors = if st_path.extension().is_some_and(|e| e == "bin") {
        let w = super::Weights::load(&st_path)?;
        w.keys()
            .filter_map(|k| w.get(k).map(|t| (k.to_string(), t.clone())))
            .collect()
    } else {
        super::untrusted::check_safetensors(&st_path)?;
        candle_core::safetensors::load(&st_path, &Device::Cpu).map_err(|e| ModelError::Read {
            path: st_path.clone(),
            reason: e.to_string(),
        })?
    };
    Ok((cfg, tensors))
}

/// Writes an adapter directory (creating it).
pub fn write_adapter(
    dir: &Path,
    cfg: &LoraConfig,
    base_model: Option<&str>,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let werr = |path: &Path, reason: String| ModelError::Write {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, e.to_string()))?;
    let (cfg_path, st_path) = adapter_paths(dir);
    let peft = PeftConfig::from_lora(cfg, base_model);
    let text = serde_json::to_string_pretty(&peft).map_err(|e| werr(&cfg_path, e.to_string()))?;
    std::fs::write(&cfg_path, text).map_err(|e| werr(&cfg_path, e.to_string()))?;
    candle_core::safetensors::save(tensors, &st_path).map_err(|e| werr(&st_path, e.to_string()))
}
