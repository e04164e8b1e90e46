//! The molecular assistant: a trained run's [`InstructMol`] (base model + GIN + projector +
//! merged LoRA) with its tokenizer and conversation template, answering questions about a
//! molecule. The prompt is rendered with the run's own template and system prompt (the same
//! as in training); the model puts the molecule's graph tokens at `<image>`, and the decode
//! loop of [`super::generate`] streams the answer.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::rows::InputRow;
use super::{InferError, Result};
use crate::chem::{self, GraphFeatures};
use crate::data::record::{Turn, IMAGE_TOKEN};
use crate::data::templates::Template;
use crate::model::{load_model, InstructMol, Llama, ModelTokenizer, MolPrompt};
use crate::run::Checkpoint;

/// A loaded run, ready to answer.
pub struct Assistant {
    /// The model (frozen, LoRA merged).
    pub model: InstructMol,
    /// Its tokenizer.
    pub tokenizer: ModelTokenizer,
    /// The run's conversation template.
    pub template: Template,
    /// The checkpoint that was loaded.
    pub checkpoint: PathBuf,
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
        let ckpt = Checkpoint::open_model(run)?;
        let cfg = ckpt.config()?;
        let llm = model_override.unwrap_or(&cfg.model.llm);
        let loaded = load_model(llm, dtype, device).map_err(|e| {
            let hint = match model_override {
                Some(_) => "",
                None => " (the base model this run was trained on; if it moved, pass --model PATH)",
            };
            InferError::Input(format!("{e}{hint}"))
        })?;
        let decoder = Llama::from_weights(&loaded.config, loaded.weights, dtype, device)?;
        let model = InstructMol::load(&ckpt.dir, decoder)?;
        let template =
            Template::for_model(&cfg.model.template, &loaded.tokenizer, cfg.model.max_length)
                .map_err(InferError::Input)?;
        Ok(Self {
            model,
            tokenizer: loaded.tokenizer,
            template,
            checkpoint: ckpt.dir,
        })
    }

    /// The molecule `smiles` as the model reads it; [`InferError::InvalidSmiles`] (with the
    /// position) when it cannot be read.
    pub fn molecule(smiles: &str) -> Result<GraphFeatures> {
        chem::featurize_smiles(smiles).map_err(|e| InferError::InvalidSmiles(e.render()))
    }

    /// Prompt embeddings `[1, s, d]` for `question` about the molecule `smiles` (the graph
    /// tokens go where the template puts `<image>`: before the question).
    pub fn prompt_embeds(&self, smiles: &str, question: &str) -> Result<Tensor> {
        self.followup_embeds(&Self::molecule(smiles)?, &[], question)
    }

    /// Prompt embeddings `[1, s, d]` of a conversation about `molecule`: `history` (complete
    /// human/gpt pairs, see [`Template::render_followup`]) and the new `question`, the graph
    /// tokens at the first turn's `<image>`. With an empty history the question gets the
    /// `<image>` slot; later questions must not carry one.
    pub fn followup_embeds(
        &self,
        molecule: &GraphFeatures,
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
            .map_err(|e| InferError::Input(e.to_string()))?;
        Ok(self.model.prompt_embeds(MolPrompt {
            ids: &tokens.input_ids,
            labels: &tokens.labels,
            image_position: tokens.image_position,
            graph: molecule,
        })?)
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
        let mut ids: Vec<u32> = self.model.decoder().config().eos_ids();
        ids.extend(self.tokenizer.eos_id());
        ids.extend(self.tokenizer.token_id(self.template.stop_text()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
