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
use crate::data::templates::{Template, DEFAULT_MAX_LEN};
use crate::model::loader::load_decoder;
use crate::model::quant::QuantMode;
use crate::model::{llava_graph, InstructMol, Llama, ModelTokenizer, MolPrompt};
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
    /// The base model it runs on and how its matrices are stored, for logs.
    pub base: String,
}

impl Assistant {
    /// Loads the latest checkpoint of `run` (a run directory or a checkpoint directory): its
    /// configuration names the base model and template; GIN, projector and LoRA adapter come
    /// from the checkpoint. `model_override` replaces the base model path (e.g. moved files).
    ///
    /// `run` may also be an output folder of the official InstructMol code
    /// ([`crate::model::llava_graph`]): then the base model is `model_override` or the one its
    /// adapter config names, the GIN comes from the folder or from `graph_encoder` (MoleculeSTM's
    /// `molecule_model.pth`), and prompts use the official evaluation template (`llava_v1`).
    pub fn from_run(
        run: &Path,
        model_override: Option<&str>,
        graph_encoder: Option<&Path>,
        (dtype, device, quantize): (DType, &Device, QuantMode),
    ) -> Result<Self> {
        let place = (dtype, device, quantize);
        if llava_graph::is_official_dir(run) {
            return Self::from_official(run, model_override, graph_encoder, place);
        }
        let ckpt = Checkpoint::open_model(run)?;
        let cfg = ckpt.config()?;
        // A QLoRA run answers on the base it was trained on, unless told otherwise.
        let place = match place.2 {
            QuantMode::AsStored => (
                place.0,
                place.1,
                QuantMode::from_option(cfg.model.quantize.as_deref())?,
            ),
            _ => place,
        };
        let (decoder, tokenizer, base) = load_base(
            model_override.unwrap_or(&cfg.model.llm),
            model_override.is_some(),
            place,
        )?;
        let model = InstructMol::load(&ckpt.dir, decoder)?;
        let template = Template::for_model(&cfg.model.template, &tokenizer, cfg.model.max_length)
            .map_err(InferError::Input)?;
        Ok(Self {
            model,
            tokenizer,
            template,
            checkpoint: ckpt.dir,
            base,
        })
    }

    fn from_official(
        dir: &Path,
        model_override: Option<&str>,
        graph_encoder: Option<&Path>,
        place: (DType, &Device, QuantMode),
    ) -> Result<Self> {
        let base = match model_override {
            Some(m) => m.to_string(),
            None => crate::model::lora::adapter_base_model(dir).ok_or_else(|| {
                InferError::Input(format!(
                    "{}: an official InstructMol folder whose base model is not named: pass --model VICUNA_DIR",
                    dir.display()
                ))
            })?,
        };
        let (decoder, tokenizer, base) = load_base(&base, model_override.is_some(), place)?;
        let model = InstructMol::load_official(dir, decoder, graph_encoder)?;
        let template = Template::for_model("llava_v1", &tokenizer, DEFAULT_MAX_LEN)
            .map_err(InferError::Input)?;
        Ok(Self {
            model,
            tokenizer,
            template,
            checkpoint: dir.to_path_buf(),
            base,
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

/// The base decoder and its tokenizer; `overridden`: the user named it (no hint needed).
fn load_base(
    spec: &str,
    overridden: bool,
    (dtype, device, quantize): (DType, &Device, QuantMode),
) -> Result<(Llama, ModelTokenizer, String)> {
    let loaded = load_decoder(spec, dtype, device, quantize).map_err(|e| {
        let hint = if overridden {
            ""
        } else {
            " (the base model this run was trained on; if it moved, pass --model PATH)"
        };
        InferError::Input(format!("{e}{hint}"))
    })?;
    Ok((loaded.llama, loaded.tokenizer, loaded.source))
}
