//! Named tensors read from PyTorch zip files (`.pth` / `.bin`) or safetensors, and the
//! parameter builder the networks use to take them (frozen or as trainable variables).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarMap};

use super::{ModelError, Result};

/// A set of named f32 tensors on the CPU.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Reads a file, choosing the format from its first bytes: a zip archive is a PyTorch
    /// file (`torch.save` since PyTorch 1.6), anything else is tried as safetensors.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut magic = [0u8; 4];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
            f.read(&mut magic).map_err(|e| read_err(path, e))?
        };
        if n == 4 && &magic == b"PK\x03\x04" {
            Self::from_pth(path)
        } else {
            Self::from_safetensors(path)
        }
    }

    /// Reads a zip-format PyTorch state dict (the format of MoleculeSTM's `molecule_model.pth`).
    /// Entries that are not tensors are skipped; integer tensors are converted to f32.
    pub fn from_pth(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        super::untrusted::check_pth(path)?;
        // candle's pickle reader is not hardened against every malformed archive; a panic in
        // it must not take the caller down, so it becomes a read error like any other.
        let read = std::panic::catch_unwind(|| candle_core::pickle::read_all(path))
            .map_err(|_| read_err(path, "malformed PyTorch archive"))?;
        let list = read.map_err(|e| read_err(path, e))?;
        if list.is_empty() {
            return Err(read_err(path, "no tensors found (not a state dict?)"));
        }
        let tensors = list
            .into_iter()
            .map(|(k, t)| Ok((k, to_f32(t).map_err(|e| read_err(path, e))?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self { tensors })
    }

    /// Reads a safetensors file.
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        super::untrusted::check_safetensors(path)?;
        let map =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| read_err(path, e))?;
        let tensors = map
            .into_iter()
            .map(|(k, t)| Ok((k, to_f32(t).map_err(|e| read_err(path, e))?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self { tensors })
    }

    /// Writes all tensors to a safetensors file.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        candle_core::safetensors::save(&self.tensors, path).map_err(|e| ModelError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, key: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(key.into(), tensor);
    }

    /// The tensor stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.tensors.get(key)
    }

    /// The tensor stored under `key`, which must have shape `shape`.
    pub fn get_shaped(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| ModelError::MissingKey(key.to_string()))?;
        if t.dims() != shape {
            return Err(ModelError::Shape {
                key: key.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// All tensor names.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

fn to_f32(t: Tensor) -> candle_core::Result<Tensor> {
    if t.dtype() == DType::F32 {
        Ok(t)
    } else {
        t.to_dtype(DType::F32)
    }
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Where a network's tensors come from when it is built.
pub(crate) enum Source<'a> {
    /// Read from weights, each key prefixed.
    Load {
        /// The weights.
        weights: &'a Weights,
        /// Prepended to every key.
        prefix: &'a str,
    },
    /// Freshly initialised from a seed (parameters randomly as PyTorch does, buffers to their defaults).
    Init(u64),
}

/// Builds the tensors of a network: parameters become [`Var`]s registered in a [`VarMap`]
/// when training is requested, and stay plain tensors otherwise. Buffers (BatchNorm running
/// statistics) are never trainable.
pub(crate) struct Builder<'a> {
    source: Source<'a>,
    varmap: Option<&'a VarMap>,
    /// Random stream for [`Source::Init`].
    rng: crate::rng::Rng,
    /// Every tensor built, under its full (prefixed) key, for saving.
    pub(crate) built: Vec<(String, Tensor)>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(source: Source<'a>, varmap: Option<&'a VarMap>) -> Self {
        let seed = match source {
            Source::Init(seed) => seed,
            Source::Load { .. } => 0,
        };
        Self {
            rng: crate::rng::Rng::new(seed),
            source,
            varmap,
            built: Vec::new(),
        }
    }

    fn full_key(&self, key: &str) -> String {
        match &self.source {
            Source::Load { prefix, .. } => format!("{prefix}{key}"),
            Source::Init(_) => key.to_string(),
        }
    }

    /// A trainable parameter: loaded, or initialised with `init`.
    pub(crate) fn param(&mut self, key: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let full = self.full_key(key);
        let t = match &self.source {
            Source::Load { weights, .. } => weights.get_shaped(&full, shape)?,
            Source::Init(_) => match init {
                Init::Uniform { lo, up } => self.rng.uniform(lo, up, shape, &Device::Cpu)?,
                Init::Randn { mean, stdev } => self.rng.normal(mean, stdev, shape, &Device::Cpu)?,
                other => other
                    .var(shape, DType::F32, &Device::Cpu)?
                    .as_tensor()
                    .detach(),
            },
        };
        let t = match self.varmap {
            Some(vm) => {
                let var = Var::from_tensor(&t)?;
                let t = var.as_tensor().clone();
                vm.data()
                    .lock()
                    .map_err(|_| ModelError::Config("VarMap lock poisoned".into()))?
                    .insert(full.clone(), var);
                t
            }
            None => t,
        };
        self.built.push((full, t.clone()));
        Ok(t)
    }

    /// A buffer (not trainable): loaded, or filled with `value`.
    pub(crate) fn buffer(&mut self, key: &str, shape: &[usize], value: f32) -> Result<Tensor> {
        let full = self.full_key(key);
        let t = match &self.source {
            Source::Load { weights, .. } => weights.get_shaped(&full, shape)?,
            Source::Init(_) => Tensor::full(value, shape, &Device::Cpu)?,
        };
        self.built.push((full, t.clone()));
        Ok(t)
    }
}
