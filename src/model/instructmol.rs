//! The InstructMol model: one type that owns the graph encoder (MoleculeSTM GIN), the
//! [`Projector`] (defined here: it exists only to join the two) and the LLaMA decoder with its
//! LoRA adapters, and the one place where a molecule's graph tokens enter the decoder (LLaVA's
//! `prepare_inputs_labels_for_multimodal`).
//!
//! A SMILES becomes [`GraphFeatures`] (chem), a conversation becomes token ids with one
//! `<image>` slot (data); [`InstructMol::embed_prompt`] runs GIN -> projector and puts the
//! molecule's N projected node embeddings in place of the slot's id (their labels are
//! [`IGNORE_INDEX`]), right-padding the batch. [`InstructMol::loss`] is the training objective,
//! [`Decode`] the entry of the decoding loop.
//!
//! On disk a model is a directory (a checkpoint of a run) with [`GIN_FILE`], [`PROJECTOR_FILE`]
//! and, after stage 2, the PEFT adapter folder [`ADAPTER_DIR`]; the base decoder is loaded
//! separately (it is never copied into a run).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};

use super::llama::{KvCache, Llama, IGNORE_INDEX};
use super::weights::{Builder, Source, Weights};
use super::{Gin, GinConfig, GraphBatch, LoraConfig, ModelError, Result};
use crate::chem::GraphFeatures;

/// The graph encoder's weights inside a model directory.
pub const GIN_FILE: &str = "gin.safetensors";
/// The projector's weights inside a model directory.
pub const PROJECTOR_FILE: &str = "projector.safetensors";
/// The PEFT LoRA adapter folder inside a model directory (stage 2 only).
pub const ADAPTER_DIR: &str = "adapter";

/// One conversation for the model: token ids with at most one `<image>` slot, a label per id,
/// and the molecule whose graph tokens fill the slot.
#[derive(Debug, Clone, Copy)]
pub struct MolPrompt<'a> {
    /// Token ids, the slot included (its id is never embedded).
    pub ids: &'a [u32],
    /// One label per id ([`IGNORE_INDEX`] where nothing is supervised).
    pub labels: &'a [i64],
    /// Index of the slot in `ids`; `None`: the molecule is not shown to the decoder.
    pub image_position: Option<usize>,
    /// The molecule.
    pub graph: &'a GraphFeatures,
}

/// A right-padded batch of prompt embeddings, ready for the decoder.
#[derive(Debug, Clone)]
pub struct PromptBatch {
    /// Input embeddings `[b, L, d]`.
    pub embeds: Tensor,
    /// `[b, L]` u32: 1 for real positions, 0 for padding.
    pub attention_mask: Tensor,
    /// `[b, L]` i64 labels ([`IGNORE_INDEX`] on graph tokens, masked text and padding).
    pub labels: Tensor,
    /// Real length of each row.
    pub lengths: Vec<usize>,
}

/// Where the LoRA adapters of a model being trained come from.
#[derive(Debug, Clone)]
pub enum LoraInit {
    /// No adapters (stage 1).
    None,
    /// Fresh adapters (A random from the seed, B zeros).
    Fresh(LoraConfig),
    /// The adapter folder of the checkpoint the model is built from (resuming stage 2).
    FromCheckpoint,
}

/// How a model to be trained is put together.
#[derive(Debug, Clone)]
pub struct TrainInit<'a> {
    /// A model directory (a checkpoint) to take the GIN (when it has one) and the projector from.
    pub checkpoint: Option<&'a Path>,
    /// Pretrained GIN weights (`molecule_model.pth` or ours), used when `checkpoint` has none;
    /// neither: a random GIN from `seed`.
    pub gin: Option<&'a Path>,
    /// Projector architecture of a fresh projector (no `checkpoint`).
    pub projector: ProjectorKind,
    /// Whether the GIN trains too (the projector always does).
    pub train_gin: bool,
    /// The LoRA adapters.
    pub lora: LoraInit,
    /// Seed of every fresh initialisation.
    pub seed: u64,
}

/// What the decoding loop needs from a model: embeddings of token ids and an incremental
/// forward pass over a KV cache. [`Llama`] implements it, and [`InstructMol`] by handing the
/// calls to its decoder, so the loop does not depend on which decoder runs underneath.
pub trait Decode {
    /// Width of the input embeddings.
    fn hidden_size(&self) -> usize;
    /// Device of the decoder's weights.
    fn device(&self) -> &Device;
    /// Compute dtype of the decoder.
    fn dtype(&self) -> DType;
    /// Most positions (prompt and generated tokens) the decoder was trained for.
    fn context_len(&self) -> usize;
    /// Token embeddings: `ids [b, s]` (u32) -> `[b, s, d]`.
    fn embed_ids(&self, ids: &Tensor) -> Result<Tensor>;
    /// Appends `embeds [b, s, d]` to `cache` and returns the last position's logits `[b, vocab]`
    /// (f32); `attention_mask [b, s]` marks left padding with 0.
    fn forward_cached(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor>;
    /// An empty cache for `batch` rows.
    fn new_cache(&self, batch: usize) -> KvCache;
}

impl Decode for Llama {
    fn hidden_size(&self) -> usize {
        self.config().hidden_size
    }
    fn device(&self) -> &Device {
        Llama::device(self)
    }
    fn dtype(&self) -> DType {
        Llama::dtype(self)
    }
    fn context_len(&self) -> usize {
        self.config().max_position_embeddings
    }
    fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed(ids)
    }
    fn forward_cached(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        Llama::forward_cached(self, embeds, attention_mask, cache)
    }
    fn new_cache(&self, batch: usize) -> KvCache {
        Llama::new_cache(self, batch)
    }
}

// ---------------------------------------------------------------------------------------
// The projector: LLaVA's `mm_projector` from node embeddings to the decoder's width, either one
// linear map or `mlp2x_gelu` (Linear, exact GELU, Linear). Tensor names follow LLaVA:
// `mm_projector.{weight,bias}` for `linear`, `mm_projector.{0,2}.{weight,bias}` for
// `mlp2x_gelu`, under any prefix (the official code saves e.g. `model.mm_projector.0.weight`).
// ---------------------------------------------------------------------------------------

/// Default key prefix of the projector in our files.
pub const PROJECTOR_PREFIX: &str = "mm_projector.";

/// Projector architecture (`mm_projector_type` in LLaVA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectorKind {
    /// `Linear(in, out)` with bias (InstructMol's default).
    Linear,
    /// `Linear(in, out) -> GELU (erf) -> Linear(out, out)`.
    Mlp2xGelu,
}

impl ProjectorKind {
    /// LLaVA's name of the architecture.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Mlp2xGelu => "mlp2x_gelu",
        }
    }
}

impl std::str::FromStr for ProjectorKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Self::Linear),
            "mlp2x_gelu" => Ok(Self::Mlp2xGelu),
            other => Err(ModelError::Config(format!(
                "unknown projector type `{other}` (expected linear or mlp2x_gelu)"
            ))),
        }
    }
}

/// The projector, frozen or trainable, f32.
#[derive(Debug, Clone)]
pub struct Projector {
    kind: ProjectorKind,
    /// `(weight [out, in], bias [out])` per linear layer.
    layers: Vec<(Tensor, Tensor)>,
}

impl Projector {
    /// A freshly initialised projector (PyTorch's `nn.Linear` initialisation distribution);
    /// the same `seed` always gives the same weights.
    pub fn new(
        kind: ProjectorKind,
        inp: usize,
        out: usize,
        seed: u64,
        varmap: Option<&VarMap>,
    ) -> Result<Self> {
        let b = Builder::new(Source::Init(seed), varmap);
        Self::build(kind, inp, out, PROJECTOR_PREFIX, b)
    }

    /// Builds from weights, finding the projector under any prefix: the architecture is
    /// `mlp2x_gelu` if a key ends in `mm_projector.0.weight`, `linear` if one ends in
    /// `mm_projector.weight`; sizes come from the shapes.
    pub fn from_weights(weights: &Weights, varmap: Option<&VarMap>) -> Result<Self> {
        let find = |suffix: &str| {
            let mut hits: Vec<&str> = weights.keys().filter(|k| k.ends_with(suffix)).collect();
            hits.sort_unstable();
            hits.first()
                .map(|k| k[..k.len() - suffix.len()].to_string())
        };
        let (kind, prefix) = match (find("mm_projector.0.weight"), find("mm_projector.weight")) {
            (Some(p), _) => (ProjectorKind::Mlp2xGelu, format!("{p}mm_projector.")),
            (None, Some(p)) => (ProjectorKind::Linear, format!("{p}mm_projector.")),
            (None, None) => return Err(ModelError::MissingKey("mm_projector.weight".into())),
        };
        let first = match kind {
            ProjectorKind::Linear => format!("{prefix}weight"),
            ProjectorKind::Mlp2xGelu => format!("{prefix}0.weight"),
        };
        let dims = weights
            .get(&first)
            .map(|t| t.dims().to_vec())
            .unwrap_or_default();
        let [out, inp] = dims[..] else {
            return Err(ModelError::Config(format!(
                "`{first}` has shape {dims:?}, expected 2-D"
            )));
        };
        let b = Builder::new(
            Source::Load {
                weights,
                prefix: &prefix,
            },
            varmap,
        );
        Self::build(kind, inp, out, "", b)
    }

    /// Loads from a safetensors or zip-format PyTorch file (see [`Projector::from_weights`]).
    pub fn load(path: impl AsRef<Path>, varmap: Option<&VarMap>) -> Result<Self> {
        Self::from_weights(&Weights::load(path)?, varmap)
    }

    fn build(
        kind: ProjectorKind,
        inp: usize,
        out: usize,
        key_prefix: &str,
        mut b: Builder,
    ) -> Result<Self> {
        if inp == 0 || out == 0 {
            return Err(ModelError::Config(format!(
                "projector sizes {inp} -> {out} must be positive"
            )));
        }
        let names: &[(&str, usize)] = match kind {
            ProjectorKind::Linear => &[("", inp)],
            ProjectorKind::Mlp2xGelu => &[("0.", inp), ("2.", out)],
        };
        let mut layers = Vec::with_capacity(names.len());
        for &(name, fan_in) in names {
            let bound = 1.0 / (fan_in as f64).sqrt();
            let init = Init::Uniform {
                lo: -bound,
                up: bound,
            };
            let w = b.param(&format!("{key_prefix}{name}weight"), &[out, fan_in], init)?;
            let bias = b.param(&format!("{key_prefix}{name}bias"), &[out], init)?;
            layers.push((w, bias));
        }
        Ok(Self { kind, layers })
    }

    /// The architecture.
    pub fn kind(&self) -> ProjectorKind {
        self.kind
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.layers[0].0.dims()[1]
    }

    /// Output width (the language model's embedding size).
    pub fn out_dim(&self) -> usize {
        self.layers[0].0.dims()[0]
    }

    /// Projects `[..., in]` to `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            if i > 0 {
                h = h.gelu_erf()?;
            }
            h = h.broadcast_matmul(&w.t()?)?.broadcast_add(b)?;
        }
        Ok(h)
    }

    /// All parameters under LLaVA's names with the given prefix (e.g. `"mm_projector."`).
    pub fn to_weights(&self, prefix: &str) -> Weights {
        let mut w = Weights::default();
        for (i, (weight, bias)) in self.layers.iter().enumerate() {
            let layer = match self.kind {
                ProjectorKind::Linear => String::new(),
                ProjectorKind::Mlp2xGelu => format!("{}.", 2 * i),
            };
            w.insert(format!("{prefix}{layer}weight"), weight.clone());
            w.insert(format!("{prefix}{layer}bias"), bias.clone());
        }
        w
    }

    /// Saves to safetensors under [`PROJECTOR_PREFIX`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_weights(PROJECTOR_PREFIX).save_safetensors(path)
    }
}

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

/// Graph encoder -> projector -> LLaMA decoder (+ LoRA).
pub struct InstructMol {
    gin: Gin,
    projector: Projector,
    decoder: Llama,
    /// Trainable variables by name (`gin.*`, `projector.*`, `lora.*`); empty when frozen.
    params: BTreeMap<String, Var>,
    /// Ablation: every graph token replaced by zeros.
    zero_graph: bool,
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

impl InstructMol {
    /// Assembles a model from its parts (frozen unless the parts hold variables of their own).
    pub fn new(gin: Gin, projector: Projector, decoder: Llama) -> Result<Self> {
        let model = Self {
            gin,
            projector,
            decoder,
            params: BTreeMap::new(),
            zero_graph: false,
        };
        model.check_widths()?;
        Ok(model)
    }

    /// Loads a trained model directory (see [`InstructMol::save`]) on top of `decoder`, frozen,
    /// with its LoRA adapter (if any) attached unmerged: a decoder cloned from one loaded base
    /// shares the base's weights, so several runs can be served from one copy. Call
    /// [`InstructMol::merge_lora`] when only this model uses the base.
    pub fn load(dir: &Path, mut decoder: Llama) -> Result<Self> {
        let adapter = dir.join(ADAPTER_DIR);
        if adapter.exists() {
            decoder.load_peft(&adapter, &VarMap::new())?;
        }
        let gin = Gin::load(dir.join(GIN_FILE), None)?;
        let projector = Projector::load(dir.join(PROJECTOR_FILE), None)?;
        Self::new(gin, projector, decoder)
    }

    /// Builds a model for training on top of `decoder`: the projector trains, the GIN when
    /// asked, and the LoRA adapters `init.lora` describes.
    pub fn for_training(mut decoder: Llama, init: &TrainInit<'_>) -> Result<Self> {
        let gin_vars = VarMap::new();
        let gin_vm = init.train_gin.then_some(&gin_vars);
        let saved_gin = init.checkpoint.map(|d| d.join(GIN_FILE));
        let gin = match (saved_gin.filter(|p| p.exists()), init.gin) {
            (Some(path), _) => Gin::load(path, gin_vm)?,
            (None, Some(path)) => Gin::load(path, gin_vm)?,
            (None, None) => Gin::new(GinConfig::default(), init.seed ^ 0x61, gin_vm)?,
        };
        let proj_vars = VarMap::new();
        let projector = match init.checkpoint {
            Some(dir) => Projector::load(dir.join(PROJECTOR_FILE), Some(&proj_vars))?,
            None => Projector::new(
                init.projector,
                gin.config().hidden,
                decoder.config().hidden_size,
                init.seed ^ 0x70,
                Some(&proj_vars),
            )?,
        };
        let lora_vars = VarMap::new();
        match (&init.lora, init.checkpoint) {
            (LoraInit::None, _) => {}
            (LoraInit::Fresh(cfg), _) => decoder.add_lora(cfg, &lora_vars, init.seed ^ 0x10)?,
            (LoraInit::FromCheckpoint, Some(dir)) => {
                decoder.load_peft(dir.join(ADAPTER_DIR), &lora_vars)?
            }
            (LoraInit::FromCheckpoint, None) => {
                return Err(ModelError::Config(
                    "LoRA adapters from a checkpoint need a checkpoint".into(),
                ))
            }
        }
        let mut model = Self::new(gin, projector, decoder)?;
        model.params = named_vars(&proj_vars, "projector.");
        model.params.extend(named_vars(&gin_vars, "gin."));
        model.params.extend(named_vars(&lora_vars, "lora."));
        Ok(model)
    }

    /// Folds the LoRA adapter into the decoder's dense weights (same outputs, no adapter cost
    /// per token; the merged matrices are new copies, no longer shared with other models).
    pub fn merge_lora(&mut self) -> Result<()> {
        self.decoder.merge_lora()
    }

    /// The same model with every graph token replaced by zeros (the "no graph" ablation).
    pub fn with_zero_graph(mut self, zero: bool) -> Self {
        self.zero_graph = zero;
        self
    }

    /// The same model with gradient checkpointing of the decoder's blocks on or off (see
    /// [`Llama::set_gradient_checkpointing`]).
    pub fn with_gradient_checkpointing(mut self, on: bool) -> Self {
        self.decoder.set_gradient_checkpointing(on);
        self
    }

    fn check_widths(&self) -> Result<()> {
        let (gin, d) = (self.gin.config().hidden, self.decoder.config().hidden_size);
        if self.projector.in_dim() != gin || self.projector.out_dim() != d {
            return Err(ModelError::Config(format!(
                "the projector maps {} -> {}, but the GIN gives {gin} and the decoder takes {d}: \
                 the projector was trained for another graph encoder or base model",
                self.projector.in_dim(),
                self.projector.out_dim()
            )));
        }
        Ok(())
    }

    /// Writes the model directory: GIN, projector and (with LoRA) the PEFT adapter folder, whose
    /// config names `base_model` (the decoder is not written).
    pub fn save(&self, dir: &Path, base_model: Option<&str>) -> Result<()> {
        self.projector.save(dir.join(PROJECTOR_FILE))?;
        self.gin.save(dir.join(GIN_FILE))?;
        if self.decoder.lora_config().is_some() {
            self.decoder.save_peft(dir.join(ADAPTER_DIR), base_model)?;
        }
        Ok(())
    }

    /// The trainable variables by name (empty for a loaded, frozen model).
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// The decoder.
    pub fn decoder(&self) -> &Llama {
        &self.decoder
    }

    /// The graph encoder.
    pub fn gin(&self) -> &Gin {
        &self.gin
    }

    /// Projected graph tokens of each molecule (`[n_atoms, d]`, on the decoder's device).
    pub fn graph_tokens(&self, graphs: &[&GraphFeatures]) -> Result<Vec<Tensor>> {
        let gb = GraphBatch::from_features(graphs.iter().copied(), &Device::Cpu)?;
        let projected = self.projector.forward(&self.gin.forward(&gb)?)?;
        let projected = if self.zero_graph {
            projected.zeros_like()?
        } else {
            projected
        };
        gb.split(&projected)?
            .into_iter()
            .map(|g| Ok(g.to_device(self.decoder.device())?))
            .collect()
    }

    /// Input embeddings of `prompts`: each row's text tokens embedded, the molecule's graph
    /// tokens in place of its `<image>` slot, rows right-padded with zero embeddings (mask 0,
    /// label [`IGNORE_INDEX`]). Gradients flow back to the graph tokens.
    pub fn embed_prompt(&self, prompts: &[MolPrompt<'_>]) -> Result<PromptBatch> {
        if prompts.is_empty() {
            return Err(ModelError::Config("cannot embed an empty batch".into()));
        }
        let mut all_ids = Vec::new();
        let mut starts = Vec::with_capacity(prompts.len());
        for (i, p) in prompts.iter().enumerate() {
            check_prompt(i, p)?;
            starts.push(all_ids.len());
            all_ids.extend_from_slice(p.ids);
        }
        let device = self.decoder.device().clone();
        let n_ids = all_ids.len();
        let text = self
            .decoder
            .embed(&Tensor::from_vec(all_ids, (1, n_ids), &device)?)?
            .squeeze(0)?;
        let graphs: Vec<&GraphFeatures> = prompts.iter().map(|p| p.graph).collect();
        let graph_tokens = self.graph_tokens(&graphs)?;
        let dtype = text.dtype();
        let mut rows = Vec::with_capacity(prompts.len());
        let mut labels = Vec::with_capacity(prompts.len());
        for ((p, &start), g) in prompts.iter().zip(&starts).zip(graph_tokens) {
            let mut pieces = Vec::with_capacity(3);
            let mut lab = Vec::with_capacity(p.ids.len() + g.dim(0)?);
            match p.image_position {
                Some(at) => {
                    if at > 0 {
                        pieces.push(text.narrow(0, start, at)?);
                    }
                    lab.extend_from_slice(&p.labels[..at]);
                    lab.extend(std::iter::repeat_n(IGNORE_INDEX, g.dim(0)?));
                    pieces.push(g.to_dtype(dtype)?);
                    let after = p.ids.len() - at - 1;
                    if after > 0 {
                        pieces.push(text.narrow(0, start + at + 1, after)?);
                    }
                    lab.extend_from_slice(&p.labels[at + 1..]);
                }
                None => {
                    pieces.push(text.narrow(0, start, p.ids.len())?);
                    lab.extend_from_slice(p.labels);
                }
            }
            rows.push(Tensor::cat(&pieces, 0)?);
            labels.push(lab);
        }
        pad_right(rows, labels, &device)
    }

    /// Logits `[b, L, vocab]` and labels `[b, L]` of `prompts`. With `train`, LoRA dropout
    /// masks come from `dropout_seed`.
    pub fn logits(
        &self,
        prompts: &[MolPrompt<'_>],
        train: bool,
        dropout_seed: u64,
    ) -> Result<(Tensor, Tensor)> {
        let batch = self.embed_prompt(prompts)?;
        let logits = self.decoder.forward(
            &batch.embeds,
            Some(&batch.attention_mask),
            train,
            dropout_seed,
        )?;
        Ok((logits, batch.labels))
    }

    /// The causal-LM loss (mean over the supervised tokens of the batch), an f32 scalar.
    pub fn loss(
        &self,
        prompts: &[MolPrompt<'_>],
        train: bool,
        dropout_seed: u64,
    ) -> Result<Tensor> {
        let (logits, labels) = self.logits(prompts, train, dropout_seed)?;
        Llama::loss(&logits, &labels)
    }

    /// Each prompt's summed loss over its supervised tokens and their count (no dropout, no
    /// gradient), for per-example evaluation.
    pub fn row_losses(&self, prompts: &[MolPrompt<'_>]) -> Result<Vec<(f64, usize)>> {
        let (logits, labels) = self.logits(prompts, false, 0)?;
        Llama::row_losses(&logits.detach(), &labels)
    }

    /// Prompt embeddings `[1, s, d]` of one generation prompt (what [`Decode::forward_cached`]
    /// starts from).
    pub fn prompt_embeds(&self, prompt: MolPrompt<'_>) -> Result<Tensor> {
        Ok(self.embed_prompt(&[prompt])?.embeds)
    }
}

impl Decode for InstructMol {
    fn hidden_size(&self) -> usize {
        self.decoder.config().hidden_size
    }
    fn device(&self) -> &Device {
        self.decoder.device()
    }
    fn dtype(&self) -> DType {
        self.decoder.dtype()
    }
    fn context_len(&self) -> usize {
        self.decoder.config().max_position_embeddings
    }
    fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        self.decoder.embed(ids)
    }
    fn forward_cached(
        &self,
        embeds: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.decoder.forward_cached(embeds, attention_mask, cache)
    }
    fn new_cache(&self, batch: usize) -> KvCache {
        self.decoder.new_cache(batch)
    }
}

/// Ids and labels must pair up and the slot must lie inside the ids.
fn check_prompt(i: usize, p: &MolPrompt<'_>) -> Result<()> {
    if p.ids.len() != p.labels.len() {
        return Err(ModelError::Config(format!(
            "example {i}: {} ids but {} labels",
            p.ids.len(),
            p.labels.len()
        )));
    }
    if let Some(at) = p.image_position.filter(|&at| at >= p.ids.len()) {
        return Err(ModelError::Config(format!(
            "example {i}: image slot {at} is past the end of its {} tokens",
            p.ids.len()
        )));
    }
    Ok(())
}

/// Stacks rows `[len_i, d]` into `[b, max_len, d]` with zero padding on the right.
fn pad_right(rows: Vec<Tensor>, labels: Vec<Vec<i64>>, device: &Device) -> Result<PromptBatch> {
    let max_len = labels.iter().map(Vec::len).max().unwrap_or(0);
    let lengths: Vec<usize> = labels.iter().map(Vec::len).collect();
    let mut padded = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len() * max_len);
    let mut flat_labels = Vec::with_capacity(rows.len() * max_len);
    for (row, mut lab) in rows.into_iter().zip(labels) {
        let len = lab.len();
        let (_, d) = row.dims2()?;
        padded.push(if len < max_len {
            let pad = Tensor::zeros((max_len - len, d), row.dtype(), device)?;
            Tensor::cat(&[row, pad], 0)?
        } else {
            row
        });
        mask.extend(std::iter::repeat_n(1u32, len));
        mask.extend(std::iter::repeat_n(0u32, max_len - len));
        lab.resize(max_len, IGNORE_INDEX);
        flat_labels.extend(lab);
    }
    let b = padded.len();
    Ok(PromptBatch {
        embeds: Tensor::stack(&padded, 0)?,
        attention_mask: Tensor::from_vec(mask, (b, max_len), device)?,
        labels: Tensor::from_vec(flat_labels, (b, max_len), device)?.to_dtype(DType::I64)?,
        lengths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LlamaConfig;

    fn tiny() -> InstructMol {
        let cfg = LlamaConfig::from_json(
            r#"{"hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,
            "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":40,
            "rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true}"#,
        )
        .unwrap();
        let decoder = Llama::random(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
        let init = TrainInit {
            checkpoint: None,
            gin: None,
            projector: ProjectorKind::Linear,
            train_gin: false,
            lora: LoraInit::None,
            seed: 3,
        };
        InstructMol::for_training(decoder, &init).unwrap()
    }

    #[test]
    fn graph_tokens_replace_the_slot_and_get_gradients() {
        let model = tiny();
        let ethanol = crate::chem::featurize_smiles("CCO").unwrap();
        let water = crate::chem::featurize_smiles("O").unwrap();
        let (ids_a, lab_a) = ([1u32, 9, 2, 3], [-100i64, -100, 2, 3]);
        let (ids_b, lab_b) = ([4u32, 5], [-100i64, 5]);
        let prompts = [
            MolPrompt {
                ids: &ids_a,
                labels: &lab_a,
                image_position: Some(1),
                graph: &ethanol,
            },
            MolPrompt {
                ids: &ids_b,
                labels: &lab_b,
                image_position: None,
                graph: &water,
            },
        ];
        let batch = model.embed_prompt(&prompts).unwrap();
        assert_eq!(batch.embeds.dims(), &[2, 6, 16]);
        assert_eq!(batch.lengths, vec![6, 2]);
        let e = batch.embeds.to_vec3::<f32>().unwrap();
        let text = |id: u32| {
            let ids = Tensor::new(&[[id]], &Device::Cpu).unwrap();
            model
                .decoder
                .embed(&ids)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let graph = model.graph_tokens(&[&ethanol]).unwrap()[0]
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(e[0][0], text(1));
        assert_eq!(e[0][1..4], graph[..]);
        assert_eq!(e[0][4], text(2));
        assert_eq!(e[0][5], text(3));
        assert_eq!(e[1][0], text(4));
        assert_eq!(e[1][1], text(5));
        assert!(
            e[1][2..].iter().flatten().all(|&v| v == 0.0),
            "padding is zeros"
        );
        assert_eq!(
            batch.labels.to_vec2::<i64>().unwrap(),
            vec![
                vec![-100, -100, -100, -100, 2, 3],
                vec![-100, 5, -100, -100, -100, -100]
            ]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1, 1, 1, 1], vec![1, 1, 0, 0, 0, 0]]
        );
        // The projector's bias gets d(sum of the graph tokens)/d(bias) = number of atoms (3).
        let grads = batch.embeds.sum_all().unwrap().backward().unwrap();
        let bias = model
            .params()
            .iter()
            .find(|(k, _)| k.ends_with("bias"))
            .map(|(_, v)| v.clone())
            .unwrap();
        let g = grads
            .get(bias.as_tensor())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(g.iter().all(|&v| (v - 3.0).abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn inconsistent_prompts_are_errors() {
        let model = tiny();
        let g = crate::chem::featurize_smiles("C").unwrap();
        let bad = [MolPrompt {
            ids: &[1, 2],
            labels: &[1],
            image_position: None,
            graph: &g,
        }];
        assert!(model.embed_prompt(&bad).is_err());
        let past_end = [MolPrompt {
            ids: &[1, 2],
            labels: &[1, 2],
            image_position: Some(2),
            graph: &g,
        }];
        assert!(model.embed_prompt(&past_end).is_err());
        assert!(model.embed_prompt(&[]).is_err());
    }
}
