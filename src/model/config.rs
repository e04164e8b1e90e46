//! The LLaMA architecture's hyperparameters, as Hugging Face's `config.json` spells them.
//!
//! Loaders fill a [`LlamaConfig`] from `config.json` (Hugging Face layout) or from GGUF
//! metadata (`llama.*` keys); the decoder is built from it.

use serde::{Deserialize, Serialize};

use super::{ModelError, Result};

/// `eos_token_id` is a single id in most configs and a list in some (LLaMA-3 style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids, any of which ends generation.
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Hyperparameters of a LLaMA-architecture decoder (field names as in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `architectures` from config.json, e.g. `["LlamaForCausalLM"]` (checked by [`Self::validate`]).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `model_type`, `"llama"` for the models we build.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Width of the residual stream (d_model).
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); equals the query heads when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Longest context the model was trained for.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the output projection shares the input embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token, when the checkpoint defines one.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// MLP activation; only `"silu"` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// RoPE scaling (LLaMA-3.1 style and others): not supported; rejected when present.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes `{"rope_theta": .., "rope_type": "default"}` here instead of
    /// a top-level `rope_theta`; [`Self::from_json`] folds it into `rope_theta`.
    #[serde(default, skip_serializing)]
    pub rope_parameters: Option<serde_json::Value>,
}

fn default_model_type() -> String {
    "llama".to_string()
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}
fn default_act() -> String {
    "silu".to_string()
}

impl LlamaConfig {
    /// Parses `config.json` text and validates it.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut cfg: LlamaConfig = serde_json::from_str(text)
            .map_err(|e| ModelError::Config(format!("config.json: {e}")))?;
        if let Some(params) = cfg.rope_parameters.take() {
            let rope_type = params.get("rope_type").and_then(|v| v.as_str());
            if rope_type.is_some_and(|t| t != "default") {
                return Err(ModelError::Config(format!(
                    "rope_parameters.rope_type `{}` is not supported (only default RoPE)",
                    rope_type.unwrap_or_default()
                )));
            }
            if let Some(theta) = params.get("rope_theta").and_then(|v| v.as_f64()) {
                cfg.rope_theta = theta;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// End-of-sequence ids (empty when the config names none).
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Checks that this describes a model the LLaMA decoder can run.
    pub fn validate(&self) -> Result<()> {
        let arch_ok = self.architectures.is_empty()
            || self
                .architectures
                .iter()
                .any(|a| a == "LlamaForCausalLM" || a == "LLaMAForCausalLM");
        if self.model_type != "llama" || !arch_ok {
            return Err(ModelError::Config(format!(
                "unsupported architecture (model_type `{}`, architectures {:?}): only LLaMA-architecture \
                 models (model_type \"llama\", LlamaForCausalLM) can be loaded",
                self.model_type, self.architectures
            )));
        }
        if self.hidden_act != "silu" {
            return Err(ModelError::Config(format!(
                "unsupported hidden_act `{}` (only silu)",
                self.hidden_act
            )));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ModelError::Config(
                "rope_scaling is not supported yet; remove it only if the checkpoint does not need it"
                    .to_string(),
            ));
        }
        let heads = self.num_attention_heads;
        let kv = self.kv_heads();
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return Err(ModelError::Config(format!(
                "num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv})"
            )));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(heads) {
            return Err(ModelError::Config(format!(
                "hidden_size ({}) is not divisible by num_attention_heads ({heads})",
                self.hidden_size
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim()
            )));
        }
        if self.hidden_size == 0 || self.intermediate_size == 0 || self.vocab_size == 0 {
            return Err(ModelError::Config(
                "hidden_size, intermediate_size and vocab_size must be positive".to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hugging_face_config() {
        let text = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":576,"intermediate_size":1536,
            "num_hidden_layers":30,"num_attention_heads":9,"num_key_value_heads":3,"vocab_size":49152,
            "rms_norm_eps":1e-5,"rope_theta":100000.0,"tie_word_embeddings":true,"bos_token_id":1,
            "eos_token_id":2,"model_type":"llama","rope_scaling":null}"#;
        let cfg = LlamaConfig::from_json(text).unwrap();
        assert_eq!(cfg.kv_heads(), 3);
        assert_eq!(cfg.head_dim(), 64);
        assert_eq!(cfg.eos_ids(), vec![2]);
    }

    #[test]
    fn rejects_other_architectures_and_bad_heads() {
        let text = r#"{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","hidden_size":8,
            "intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":10}"#;
        let err = LlamaConfig::from_json(text).unwrap_err().to_string();
        assert!(err.contains("unsupported architecture"), "{err}");
        let text = r#"{"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":4,"num_key_value_heads":3,"vocab_size":10}"#;
        let err = LlamaConfig::from_json(text).unwrap_err().to_string();
        assert!(err.contains("multiple"), "{err}");
        let text = r#"{"hidden_size":8,"num_hidden_layers":1}"#;
        let err = LlamaConfig::from_json(text).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn reads_transformers_5_rope_parameters() {
        let text = r#"{"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,
            "rope_parameters":{"rope_theta":500000.0,"rope_type":"default"}}"#;
        assert_eq!(LlamaConfig::from_json(text).unwrap().rope_theta, 500000.0);
        let text = r#"{"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,
            "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3"}}"#;
        assert!(LlamaConfig::from_json(text).is_err());
    }

    #[test]
    fn eos_may_be_a_list() {
        let text = r#"{"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,
            "num_attention_heads":2,"vocab_size":10,"eos_token_id":[2,7]}"#;
        assert_eq!(LlamaConfig::from_json(text).unwrap().eos_ids(), vec![2, 7]);
    }
}
