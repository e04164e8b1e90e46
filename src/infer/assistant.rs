//! The molecular assistant: a trained run's [`InstructMol`] (base model + GIN + projector +
//! merged LoRA) with its tokenizer and conversation template, answering questions about a
//! molecule. The prompt is rendered with the run's own template and system prompt (the same
//! as in training); the model puts the molecule's graph tokens at `<image>`, and the decode
//! loop of [`super::generate`] streams the answer.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::generate::Prompt;
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

/// The base model a run answers on, found without loading anything (see [`Assistant::base_of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RunBase {
    /// The model spec to load (a folder, a GGUF file or a hub name).
    pub spec: String,
    /// How its matrices are to be stored.
    pub quantize: QuantMode,
    /// The user named it (`--model`), so a load error needs no hint about moved files.
    pub overridden: bool,
}

/// A loaded base decoder with its tokenizer; cloning shares the weights.
#[derive(Clone)]
pub struct LoadedBase {
    /// The decoder (no adapter).
    pub decoder: Llama,
    /// Its tokenizer.
    pub tokenizer: ModelTokenizer,
    /// What was loaded and how its matrices are stored, for logs.
    pub source: String,
}

impl RunBase {
    /// Loads the decoder and its tokenizer.
    pub fn load(&self, dtype: DType, device: &Device) -> Result<LoadedBase> {
        let loaded = load_decoder(&self.spec, dtype, device, self.quantize).map_err(|e| {
            let hint = if self.overridden {
                ""
            } else {
                " (the base model this run was trained on; if it moved, pass --model PATH)"
            };
            InferError::Input(format!("{e}{hint}"))
        })?;
        Ok(LoadedBase {
            decoder: loaded.llama,
            tokenizer: loaded.tokenizer,
            source: loaded.source,
        })
    }
}

impl Assistant {
    /// Loads the latest checkpoint of `run` (a run directory or a checkpoint directory): its
    /// configuration names the base model and template; GIN, projector and LoRA adapter come
    /// from the checkpoint, and the adapter is merged. `model_override` replaces the base model
    /// path (e.g. moved files).
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
        let base = Self::base_of(run, model_override, quantize)?.load(dtype, device)?;
        Self::on_base(run, base, graph_encoder, true)
    }

    /// The base model `run` answers on (see [`Assistant::from_run`]): the run's own base, or
    /// `model_override`; a QLoRA run keeps its quantization unless `quantize` says otherwise.
    pub fn base_of(
        run: &Path,
        model_override: Option<&str>,
        quantize: QuantMode,
    ) -> Result<RunBase> {
        if llava_graph::is_official_dir(run) {
            let spec = match model_override {
                Some(m) => m.to_string(),
                None => crate::model::lora::adapter_base_model(run).ok_or_else(|| {
                    InferError::Input(format!(
                        "{}: an official InstructMol folder whose base model is not named: pass --model VICUNA_DIR",
                        run.display()
                    ))
                })?,
            };
            return Ok(RunBase {
                spec,
                quantize,
                overridden: model_override.is_some(),
            });
        }
        let cfg = Checkpoint::open_model(run)?.config()?;
        // A QLoRA run answers on the base it was trained on, unless told otherwise.
        let quantize = match quantize {
            QuantMode::AsStored => QuantMode::from_option(cfg.model.quantize.as_deref())?,
            other => other,
        };
        Ok(RunBase {
            spec: model_override.unwrap_or(&cfg.model.llm).to_string(),
            quantize,
            overridden: model_override.is_some(),
        })
    }

    /// The assistant of `run` on an already loaded base (see [`Assistant::base_of`]). With
    /// `merge`, the LoRA adapter is folded into the weights (fastest, but the merged matrices
    /// are the run's own copies); without, it stays a separate term, so runs on clones of one
    /// base share its weights.
    pub fn on_base(
        run: &Path,
        base: LoadedBase,
        graph_encoder: Option<&Path>,
        merge: bool,
    ) -> Result<Self> {
        let LoadedBase {
            decoder,
            tokenizer,
            source,
        } = base;
        let (mut model, template, checkpoint) = if llava_graph::is_official_dir(run) {
            let model = InstructMol::load_official(run, decoder, graph_encoder)?;
            let template = Template::for_model("llava_v1", &tokenizer, DEFAULT_MAX_LEN)
                .map_err(InferError::Input)?;
            (model, template, run.to_path_buf())
        } else {
            let ckpt = Checkpoint::open_model(run)?;
            let cfg = ckpt.config()?;
            let model = InstructMol::load(&ckpt.dir, decoder)?;
            let template =
                Template::for_model(&cfg.model.template, &tokenizer, cfg.model.max_length)
                    .map_err(InferError::Input)?;
            (model, template, ckpt.dir)
        };
        if merge {
            model.merge_lora()?;
        }
        Ok(Self {
            model,
            tokenizer,
            template,
            checkpoint,
            base: source,
        })
    }

    /// The molecule `smiles` as the model reads it; [`InferError::InvalidSmiles`] (with the
    /// position) when it cannot be read.
    pub fn molecule(smiles: &str) -> Result<GraphFeatures> {
        chem::featurize_smiles(smiles).map_err(|e| InferError::InvalidSmiles(e.render()))
    }

    /// The prompt for `question` about the molecule `smiles` (the graph tokens go where the
    /// template puts `<image>`: before the question).
    pub fn prompt(&self, smiles: &str, question: &str) -> Result<Prompt> {
        self.followup(&Self::molecule(smiles)?, &[], question)
    }

    /// The prompt of a conversation about `molecule`: `history` (complete human/gpt pairs, see
    /// [`Template::render_followup`]) and the new `question`, the graph tokens at the first
    /// turn's `<image>` (embeddings `[1, s, d]`; the text ids leave the slot out). With an
    /// empty history the question gets the `<image>` slot; later questions must not carry one.
    pub fn followup(
        &self,
        molecule: &GraphFeatures,
        history: &[Turn],
        question: &str,
    ) -> Result<Prompt> {
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
        if tokens.truncated {
            return Err(InferError::PromptTooLong(format!(
                "the prompt is longer than the {} tokens this model takes (the run's max_length, graph tokens included): shorten the question or the conversation",
                self.template.max_len
            )));
        }
        let embeds = self.model.prompt_embeds(MolPrompt {
            ids: &tokens.input_ids,
            labels: &tokens.labels,
            image_position: tokens.image_position,
            graph: molecule,
        })?;
        let text_ids = tokens
            .input_ids
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != tokens.image_position)
            .map(|(_, &id)| id)
            .collect();
        Ok(Prompt { embeds, text_ids })
    }

    /// The prompt of a row of an input file: its question about its molecule.
    pub fn row_prompt(&self, row: &InputRow) -> Result<Prompt> {
        let smiles = row.smiles.as_deref().ok_or_else(|| {
            InferError::InvalidSmiles(format!(
                "line {} has no \"smiles\" (--run answers about molecules)",
                row.line
            ))
        })?;
        self.prompt(smiles, &row.question)
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
