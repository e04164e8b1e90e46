//! The projector from graph-encoder node embeddings to the language model's embedding width:
//! LLaVA's `mm_projector`, either one linear map or `mlp2x_gelu` (Linear, exact GELU, Linear).
//!
//! Tensor names follow LLaVA: `mm_projector.{weight,bias}` for `linear`,
//! `mm_projector.{0,2}.{weight,bias}` for `mlp2x_gelu`, under any prefix (InstructMol saves
//! them as e.g. `model.mm_projector.0.weight`).

use std::path::Path;

use candle_core::Tensor;
use candle_nn::{Init, VarMap};

use super::weights::{Builder, Source, Weights};
use super::{ModelError, Result};

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
