//! The molecular assistant: a trained run (base model + GIN + projector + LoRA) that answers a
//! question about a molecule. The prompt is rendered with the run's own conversation
//! template and system prompt (the same as in training), the molecule's projected graph
//! tokens are spliced in at `<image>`, and the decode loop of [`super::generate`] streams
//! the answer.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::batch::InputRow;
use super::{InferError, Result};
use crate::chem;
use crate::data::record::{Turn, IMAGE_TOKEN};
use crate::data::templates::{Template, TemplateKind};
use crate::model::splice::{splice, SpliceItem};
use crate::model::{load_model, Gin, GraphBatch, Llama, ModelTokenizer, Projector};
use crate::train::checkpoint;
use crate::train::RunConfig;

/// A loaded run, ready to answer.
pub struct Assistant {
    /// The language model, LoRA merged in.
    pub llama: Llama,
    /// Its tokenizer.
    pub tokenizer: ModelTokenizer,
    /// The run's conversation template.
    pub template: Template,
    gin: Gin,
    projector: Projector,
    device: Device,
    /// The checkpoint that was loaded.
    pub checkpoint: PathBuf,
}

fn input_err(e: impl std::fmt::Display) -> InferError {
    InferError::Input(e.to_string())
}

impl Assistant {
    /// Loads the latest checkpoint of `run` (a run directory or a checkpoint directory): its
    /// configuration names the base model and template; GIN, projector and LoRA adapter come
    /// from the checkpoint. `model_override` replaces the base model path (e.g. moved files).
    pub fn from_run(
        run: &Path,
        model_override: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let dir = checkpoint::resolve(run).map_err(input_err)?;
        let state = checkpoint::load(&dir).map_err(input_err)?;
        let cfg: RunConfig = serde_json::from_value(state.config.clone()).map_err(|e| {
            input_err(format!(
                "{}: the checkpoint's configuration is unreadable: {e}",
                dir.display()
            ))
        })?;
        let llm = model_override.unwrap_or(&cfg.model.llm);
        let loaded = load_model(llm, dtype, device).map_err(input_err)?;
        let mut llama = Llama::from_weights(&loaded.config, loaded.weights, dtype, device)?;
        let adapter = dir.join("adapter");
        if adapter.exists() {
            llama.load_peft(&adapter, &candle_nn::VarMap::new())?;
            llama.merge_lora()?;
        }
        let gin = Gin::load(dir.join("gin.safetensors"), None)?;
        let projector = Projector::load(dir.join("projector.safetensors"), None)?;
        let kind: TemplateKind = cfg.model.template.parse().map_err(InferError::Input)?;
        let mut template = Template::for_tokenizer(kind, loaded.tokenizer.inner())
            .with_max_len(cfg.model.max_length);
        if matches!(kind, TemplateKind::Plain | TemplateKind::VicunaV1) {
            template = template.with_bos(loaded.tokenizer.bos_id());
        }
        Ok(Self {
            llama,
            tokenizer: loaded.tokenizer,
            template,
            gin,
            projector,
            device: device.clone(),
            checkpoint: dir,
        })
    }

    /// The molecule's projected graph tokens `[n_atoms, d]` on the model's device.
    /// [`InferError::InvalidSmiles`] when `smiles` cannot be read.
    pub fn graph_tokens(&self, smiles: &str) -> Result<Tensor> {
        let graph =
            chem::featurize_smiles(smiles).map_err(|e| InferError::InvalidSmiles(e.render()))?;
        let gb = GraphBatch::from_features([&graph], &Device::Cpu)?;
        let nodes = self.projector.forward(&self.gin.forward(&gb)?)?;
        Ok(nodes.to_device(&self.device)?)
    }

    /// Prompt embeddings `[1, s, d]` for `question` about the molecule `smiles` (the graph
    /// tokens go where the template puts `<image>`: before the question).
    pub fn prompt_embeds(&self, smiles: &str, question: &str) -> Result<Tensor> {
        let graph = self.graph_tokens(smiles)?;
        self.followup_embeds(&graph, &[], question)
    }

    /// Prompt embeddings `[1, s, d]` of a conversation: `history` (complete human/gpt pairs,
    /// see [`Template::render_followup`]) and the new `question`, with `graph`
    /// ([`Self::graph_tokens`]) spliced at the first turn's `<image>`. With an empty history
    /// the question gets the `<image>` slot; later questions must not carry one.
    pub fn followup_embeds(
        &self,
        graph: &Tensor,
        history: &[Turn],
        question: &str,
    ) -> Result<Tensor> {
        let stripped = question.replace(IMAGE_TOKEN, "");
        let question = if history.is_empty() {
            format!("{IMAGE_TOKEN}\n{}", stripped.trim())
        } else {
            stripped.trim().to_string()
        };
        let tokens = self
            .template
            .tokenize_followup(self.tokenizer.inner(), history, &question)
            .map_err(input_err)?;
        let item = SpliceItem {
            ids: &tokens.input_ids,
            labels: &tokens.labels,
            image_position: tokens.image_position,
            graph: Some(graph.clone()),
        };
        let batch = splice(&[item], &self.device, |ids| {
            Ok(self.llama.embed(&ids.unsqueeze(0)?)?.squeeze(0)?)
        })?;
        Ok(batch.embeds)
    }

    /// Prompt embeddings for a row of an input file: its question about its molecule.
    pub fn row_embeds(&self, row: &InputRow) -> Result<Tensor> {
        let smiles = row.smiles.as_deref().ok_or_else(|| {
            InferError::InvalidSmiles(format!(
                "line {} has no \"smiles\" (--run answers about molecules)",
                row.line
            ))
        })?;
        self.prompt_embeds(smiles, &row.question)
    }

    /// Ids that end an answer: the tokenizer's end token and the template's stop text.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.llama.config().eos_ids();
        ids.extend(self.tokenizer.eos_id());
        ids.extend(self.tokenizer.token_id(self.template.stop_text()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
