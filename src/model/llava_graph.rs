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

use std::path::Path;

use candle_nn::VarMap;

use super::gin::MOLECULE_NODE_PREFIX;
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

/// The base model an official stage-2 folder was trained on, as its adapter config names it
/// (e.g. `lmsys/vicuna-7b-v1.3`).
pub fn base_model_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v.get("base_model_name_or_path")?.as_str()?.to_string())
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
    /// adapter (if any) merged. `graph_encoder` is MoleculeSTM's `molecule_model.pth`, needed
    /// when the folder has no graph-tower weights.
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
            decoder.merge_lora()?;
        }
        Self::new(gin, projector, decoder)
    }
}
