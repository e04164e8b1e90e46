//! The files the official InstructMol code (IDEA-XL/InstructMol, built on LLaVA) writes, read
//! as they are:
//!
//! - stage 1: `mm_projector.bin` (`model.mm_projector.weight` / `.bias`, or `.0.` / `.2.` for
//!   `mlp2x_gelu`) next to a `config.json` with `model_type: llava_graph`;
//! - stage 2: a PEFT folder (`adapter_config.json` + `adapter_model.bin` or `.safetensors`),
//!   `non_lora_trainables.bin` (the projector under `base_model.model.model.mm_projector.*`,
//!   and the graph tower under `...graph_tower.molecule_node_model.*` when it was tuned) and
//!   `config.json`.
//!
//! Keys are rewritten as the official `load_pretrained_model` does (`base_model.` dropped,
//! then `model.` when keys start with `model.model.`). The official code keeps MoleculeSTM's
//! GIN frozen and does not save it: unless the folder has graph-tower weights, the GIN comes
//! from MoleculeSTM's `molecule_model.pth` (`graph_encoder`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_nn::VarMap;

use super::gin::MOLECULE_NODE_PREFIX;
use super::instructmol::{ADAPTER_DIR, GIN_FILE, PROJECTOR_FILE, PROJECTOR_PREFIX};
use super::{lora, torch_save};
use super::{Gin, InstructMol, Llama, ModelError, Projector, Result, Weights};

/// Stage-1 output of the official code.
pub const MM_PROJECTOR_FILE: &str = "mm_projector.bin";
/// Stage-2 output of the official code (projector, and the graph tower when tuned).
pub const NON_LORA_FILE: &str = "non_lora_trainables.bin";
/// Where the graph tower's weights sit after the key rewrite.
const GRAPH_TOWER_PREFIX: &str = "model.graph_tower.";

/// Whether `dir` holds the output of the official code (rather than a run of ours).
pub fn is_official_dir(dir: &Path) -> bool {
    dir.join(MM_PROJECTOR_FILE).exists() || dir.join(NON_LORA_FILE).exists()
}

/// The tensors of a torch file with the official loader's key rewrite.
fn official_weights(path: &Path) -> Result<Weights> {
    let raw = Weights::load(path)?;
    let stripped: Vec<(String, String)> = raw
        .keys()
        .map(|k| {
            (
                k.to_string(),
                k.strip_prefix("base_model.").unwrap_or(k).to_string(),
            )
        })
        .collect();
    let nested = stripped.iter().any(|(_, k)| k.starts_with("model.model."));
    let mut out = Weights::default();
    for (from, to) in stripped {
        let to = match (nested, to.strip_prefix("model.")) {
            (true, Some(rest)) => rest.to_string(),
            _ => to,
        };
        if let Some(t) = raw.get(&from) {
            out.insert(to, t.clone());
        }
    }
    Ok(out)
}

impl InstructMol {
    /// Loads an official stage-1 or stage-2 folder on top of `decoder`, frozen, with its LoRA
    /// adapter (if any) attached unmerged (see [`InstructMol::merge_lora`]). `graph_encoder`
    /// is MoleculeSTM's `molecule_model.pth`, needed when the folder has no graph-tower weights.
    pub fn load_official(
        dir: &Path,
        mut decoder: Llama,
        graph_encoder: Option<&Path>,
    ) -> Result<Self> {
        let (file, weights) = match (dir.join(NON_LORA_FILE), dir.join(MM_PROJECTOR_FILE)) {
            (p, _) if p.exists() => (p.clone(), official_weights(&p)?),
            (_, p) if p.exists() => (p.clone(), official_weights(&p)?),
            _ => {
                return Err(ModelError::Read {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "neither {NON_LORA_FILE} nor {MM_PROJECTOR_FILE}: not an output folder of \
                         the official InstructMol code"
                    ),
                })
            }
        };
        let projector = Projector::from_weights(&weights, None).map_err(|e| ModelError::Read {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        let tower = format!("{GRAPH_TOWER_PREFIX}{MOLECULE_NODE_PREFIX}");
        let gin = if weights.keys().any(|k| k.starts_with(&tower)) {
            Gin::from_weights(&weights, &tower, None)?
        } else {
            let path = graph_encoder.ok_or_else(|| ModelError::Read {
                path: dir.to_path_buf(),
                reason: "the folder holds no graph-encoder weights (the official code keeps \
                         MoleculeSTM's GIN frozen and does not save it): pass --graph-encoder \
                         molecule_model.pth"
                    .into(),
            })?;
            Gin::load(path, None)?
        };
        if dir.join("adapter_config.json").exists() {
            decoder.load_peft(dir, &VarMap::new())?;
        }
        Self::new(gin, projector, decoder)
    }
}

/// Key prefix of our trainables in `non_lora_trainables.bin` (as the official code saves them
/// from the PEFT-wrapped model).
const PEFT_MODEL_PREFIX: &str = "base_model.model.model.";

/// What [`export`] needs besides the model folder.
#[derive(Debug, Clone)]
pub struct ExportBase<'a> {
    /// The base model's Hugging Face `config.json`, extended into the folder's `config.json`.
    pub config: &'a Path,
    /// The name recorded as the adapter's `base_model_name_or_path` (a path or a hub id).
    pub name: &'a str,
    /// Whether the graph encoder was trained (`tune_graph_tower` in the config).
    pub graph_tuned: bool,
}

/// Writes a model folder of ours (`projector.safetensors`, `gin.safetensors`, and `adapter/`
/// after stage 2) into `out` in the official code's layout:
///
/// - without an adapter (stage 1): `mm_projector.bin` (`model.mm_projector.*`);
/// - with one (stage 2): `adapter_config.json` + `adapter_model.bin` (PEFT 0.4/0.5 names) and
///   `non_lora_trainables.bin` (`base_model.model.model.mm_projector.*`);
/// - both: `config.json` (the base model's, with `model_type: llava_graph` and the `mm_*`
///   fields).
///
/// The graph encoder goes in too (`...graph_tower.molecule_node_model.*`), so the folder is
/// complete without MoleculeSTM's checkpoint; the official loader reads it into its graph tower
/// in stage 2 (non-strict `load_state_dict`) and keeps only `mm_projector` keys in stage 1.
/// Tensors stay f32. Returns the files written.
pub fn export(model_dir: &Path, base: &ExportBase<'_>, out: &Path) -> Result<Vec<PathBuf>> {
    let projector = Projector::load(model_dir.join(PROJECTOR_FILE), None)?;
    let gin = Weights::load(model_dir.join(GIN_FILE))?;
    let adapter_dir = model_dir.join(ADAPTER_DIR);
    let adapter = if adapter_dir.join("adapter_config.json").exists() {
        Some(lora::read_adapter(&adapter_dir)?)
    } else {
        None
    };
    let werr = |path: &Path, reason: String| ModelError::Write {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(out).map_err(|e| werr(out, e.to_string()))?;
    let mut written = Vec::new();

    let prefix = if adapter.is_some() {
        PEFT_MODEL_PREFIX
    } else {
        "model."
    };
    let mut trainables = sorted(&projector.to_weights(&format!("{prefix}{PROJECTOR_PREFIX}")));
    let tower = format!("{prefix}graph_tower.");
    for (key, t) in sorted(&gin) {
        let key = key.strip_prefix(MOLECULE_NODE_PREFIX).unwrap_or(&key);
        let t = if key.ends_with("num_batches_tracked") {
            t.to_dtype(DType::I64)?
        } else {
            t
        };
        trainables.push((format!("{tower}{MOLECULE_NODE_PREFIX}{key}"), t));
    }
    let file = match &adapter {
        None => out.join(MM_PROJECTOR_FILE),
        Some((cfg, tensors)) => {
            let peft = lora::PeftConfig::from_lora(cfg, Some(base.name));
            let path = out.join("adapter_config.json");
            let text =
                serde_json::to_string_pretty(&peft).map_err(|e| werr(&path, e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| werr(&path, e.to_string()))?;
            written.push(path);
            let mut lora_tensors: Vec<(String, Tensor)> = tensors
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect();
            lora_tensors.sort_by(|a, b| a.0.cmp(&b.0));
            let path = out.join("adapter_model.bin");
            torch_save::save(&path, &lora_tensors)?;
            written.push(path);
            out.join(NON_LORA_FILE)
        }
    };
    torch_save::save(&file, &trainables)?;
    written.push(file);

    let path = out.join("config.json");
    let gin_layers = gin
        .keys()
        .filter_map(|k| {
            k.split("gnns.")
                .nth(1)?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |l| l + 1);
    let config = llava_config(base, &projector, gin_layers, adapter.is_some())?;
    let text = serde_json::to_string_pretty(&config).map_err(|e| werr(&path, e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| werr(&path, e.to_string()))?;
    written.push(path);
    Ok(written)
}

/// Tensors of `w` sorted by name.
fn sorted(w: &Weights) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = w
        .keys()
        .filter_map(|k| w.get(k).map(|t| (k.to_string(), t.clone())))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The base model's config with the fields the official `LlavaGraphLlamaForCausalLM` saves.
fn llava_config(
    base: &ExportBase<'_>,
    projector: &Projector,
    gin_layers: usize,
    stage2: bool,
) -> Result<serde_json::Value> {
    let rerr = |reason: String| ModelError::Read {
        path: base.config.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(base.config).map_err(|e| {
        rerr(format!(
            "{e} (export needs the base model as a Hugging Face directory with config.json; \
             pass --base DIR)"
        ))
    })?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| rerr(format!("not JSON: {e}")))?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| rerr("not a JSON object".into()))?;
    let fields = serde_json::json!({
        "architectures": ["LlavaGraphLlamaForCausalLM"],
        "model_type": "llava_graph",
        "mm_graph_tower": "moleculestm",
        "mm_hidden_size": projector.in_dim(),
        "mm_projector_type": projector.kind().name(),
        "use_mm_proj": true,
        "mm_use_im_start_end": false,
        "mm_use_im_patch_token": false,
        "tune_mm_mlp_adapter": !stage2,
        "freeze_mm_mlp_adapter": false,
        "tune_graph_tower": base.graph_tuned,
        // What the official `build_graph_tower` reads (its evaluation scripts pass them as
        // `mm_encoder_cfg`); no init checkpoint: the folder holds the graph encoder.
        "gin_num_layers": gin_layers,
        "gin_hidden_dim": projector.in_dim(),
        "drop_ratio": 0.1,
        "graph_pooling": "mean",
        "init_checkpoint": null,
    });
    if let serde_json::Value::Object(f) = fields {
        obj.extend(f);
    }
    Ok(cfg)
}
