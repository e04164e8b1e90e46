//! MoleculeSTM's GIN graph encoder (OGB-style GINConv with bond embeddings), node-level output.
//!
//! Module and tensor names follow the PyTorch original, so a MoleculeSTM state dict loads
//! directly: `atom_encoder.atom_embedding_list.{c}.weight`, and per layer `l`
//! `gnns.{l}.eps`, `gnns.{l}.bond_encoder.bond_embedding_list.{c}.weight`,
//! `gnns.{l}.mlp.{0,3}.{weight,bias}` (linears), `gnns.{l}.mlp.1.*` (BatchNorm) and
//! `batch_norms.{l}.*`, all under the prefix `molecule_node_model.`.

use std::path::Path;

use candle_core::Tensor;
use candle_nn::{Init, VarMap};

use super::graph_batch::{GraphBatch, COLUMNS};
use super::weights::{Builder, Source, Weights};
use super::{ModelError, Result};

/// Key prefix of the GIN inside MoleculeSTM's `molecule_model.pth`.
pub const MOLECULE_NODE_PREFIX: &str = "molecule_node_model.";

/// BatchNorm epsilon (PyTorch's default).
const BN_EPS: f64 = 1e-5;

/// Sizes of the GIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GinConfig {
    /// Node embedding width (300 in MoleculeSTM).
    pub hidden: usize,
    /// Number of GINConv layers (5 in MoleculeSTM).
    pub num_layers: usize,
    /// Rows of each atom embedding table (OGB: `[119, 5, 12, 12, 10, 6, 6, 2, 2]`).
    pub atom_vocab: Vec<usize>,
    /// Rows of each bond embedding table (OGB: `[5, 6, 2]`).
    pub bond_vocab: Vec<usize>,
}

impl Default for GinConfig {
    /// MoleculeSTM's configuration.
    fn default() -> Self {
        Self {
            hidden: 300,
            num_layers: 5,
            atom_vocab: vec![119, 5, 12, 12, 10, 6, 6, 2, 2],
            bond_vocab: vec![5, 6, 2],
        }
    }
}

impl GinConfig {
    /// Reads the sizes from the tensor shapes found under `prefix`.
    pub fn from_weights(weights: &Weights, prefix: &str) -> Result<Self> {
        let table_rows = |key: String| weights.get(&key).map(|t| t.dims().to_vec());
        let mut atom_vocab = Vec::new();
        let mut hidden = None;
        while let Some(dims) = table_rows(format!(
            "{prefix}atom_encoder.atom_embedding_list.{}.weight",
            atom_vocab.len()
        )) {
            let [rows, h] = dims[..] else {
                return Err(ModelError::Config(format!(
                    "atom embedding table {} has shape {dims:?}",
                    atom_vocab.len()
                )));
            };
            if *hidden.get_or_insert(h) != h {
                return Err(ModelError::Config(format!(
                    "atom embedding table {} is {h} wide, table 0 is {}",
                    atom_vocab.len(),
                    hidden.unwrap_or(h)
                )));
            }
            atom_vocab.push(rows);
        }
        let hidden = hidden.ok_or_else(|| {
            ModelError::MissingKey(format!("{prefix}atom_encoder.atom_embedding_list.0.weight"))
        })?;
        let mut num_layers = 0;
        while weights
            .get(&format!("{prefix}gnns.{num_layers}.eps"))
            .is_some()
        {
            num_layers += 1;
        }
        if num_layers == 0 {
            return Err(ModelError::MissingKey(format!("{prefix}gnns.0.eps")));
        }
        let mut bond_vocab = Vec::new();
        while let Some(dims) = table_rows(format!(
            "{prefix}gnns.0.bond_encoder.bond_embedding_list.{}.weight",
            bond_vocab.len()
        )) {
            bond_vocab.push(dims.first().copied().unwrap_or(0));
        }
        let config = Self {
            hidden,
            num_layers,
            atom_vocab,
            bond_vocab,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.hidden == 0 || self.num_layers == 0 {
            return Err(ModelError::Config(format!(
                "hidden size {} and layer count {} must be positive",
                self.hidden, self.num_layers
            )));
        }
        if self.atom_vocab.len() < COLUMNS || self.bond_vocab.len() < COLUMNS {
            return Err(ModelError::Config(format!(
                "need at least {COLUMNS} atom and {COLUMNS} bond embedding tables, found {} and {}",
                self.atom_vocab.len(),
                self.bond_vocab.len()
            )));
        }
        Ok(())
    }
}

/// Eval-mode BatchNorm1d: `(x - running_mean) / sqrt(running_var + eps) * weight + bias`.
#[derive(Debug, Clone)]
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    mean: Tensor,
    var: Tensor,
}

impl BatchNorm {
    fn build(b: &mut Builder, key: &str, n: usize) -> Result<Self> {
        Ok(Self {
            weight: b.param(&format!("{key}.weight"), &[n], Init::Const(1.0))?,
            bias: b.param(&format!("{key}.bias"), &[n], Init::Const(0.0))?,
            mean: b.buffer(&format!("{key}.running_mean"), &[n], 0.0)?,
            var: b.buffer(&format!("{key}.running_var"), &[n], 1.0)?,
        })
    }

    /// The per-channel affine map `(scale, shift)` it amounts to.
    fn affine(&self) -> Result<(Tensor, Tensor)> {
        let scale = self.weight.div(&(&self.var + BN_EPS)?.sqrt()?)?;
        let shift = self.bias.sub(&self.mean.mul(&scale)?)?;
        Ok((scale, shift))
    }
}

/// `y = x W^T + b`.
#[derive(Debug, Clone)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn build(b: &mut Builder, key: &str, inp: usize, out: usize) -> Result<Self> {
        // PyTorch's default nn.Linear initialisation.
        let bound = 1.0 / (inp as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: b.param(&format!("{key}.weight"), &[out, inp], init)?,
            bias: b.param(&format!("{key}.bias"), &[out], init)?,
        })
    }

    /// Composes `BatchNorm(Linear(x))` into one linear map `x A + c` (A stored `[in, out]`).
    fn fuse(&self, bn: &BatchNorm) -> Result<Fused> {
        let (scale, shift) = bn.affine()?;
        let a = self
            .weight
            .broadcast_mul(&scale.unsqueeze(1)?)?
            .t()?
            .contiguous()?;
        let c = self.bias.mul(&scale)?.add(&shift)?;
        Ok(Fused { a, c })
    }
}

/// A linear map with a following eval-mode BatchNorm folded in (frozen networks only).
#[derive(Debug, Clone)]
struct Fused {
    a: Tensor,
    c: Tensor,
}

impl Fused {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.a)?.broadcast_add(&self.c)?)
    }
}

/// The precomputed form of a frozen layer.
#[derive(Debug, Clone)]
struct Frozen {
    /// `bn1 . lin1` folded.
    f1: Fused,
    /// `bn2 . lin2` folded.
    f2: Fused,
    /// `1 + eps`.
    one_plus_eps: Tensor,
    /// Sum of the first two bond tables for every value pair: row `a * rows_1 + b` is
    /// `table_0[a] + table_1[b]`, so an edge's embedding is one lookup.
    bond_pairs: Tensor,
}

/// One GINConv plus the BatchNorm that follows it.
#[derive(Debug, Clone)]
struct Layer {
    eps: Tensor,
    bond_tables: Vec<Tensor>,
    lin1: Linear,
    bn1: BatchNorm,
    lin2: Linear,
    bn2: BatchNorm,
    /// Present for frozen networks.
    frozen: Option<Frozen>,
}

impl Layer {
    fn freeze(&mut self) -> Result<()> {
        let [t0, t1] = [&self.bond_tables[0], &self.bond_tables[1]];
        let (r0, h) = t0.dims2()?;
        let r1 = t1.dim(0)?;
        let bond_pairs = t0
            .unsqueeze(1)?
            .broadcast_add(&t1.unsqueeze(0)?)?
            .reshape((r0 * r1, h))?;
        self.frozen = Some(Frozen {
            f1: self.lin1.fuse(&self.bn1)?,
            f2: self.lin2.fuse(&self.bn2)?,
            one_plus_eps: (&self.eps + 1.0)?,
            bond_pairs,
        });
        Ok(())
    }

    /// `MLP((1 + eps) x_i + sum_{j->i} ReLU(x_j + bond_emb(e_ji)))`, then the layer's BatchNorm.
    /// `pairs` holds each edge's row of the frozen pair table.
    fn forward(&self, h: &Tensor, batch: &GraphBatch, pairs: Option<&Tensor>) -> Result<Tensor> {
        // The messages are added straight onto the scaled self term: no zero tensor, one pass.
        match (&self.frozen, pairs) {
            (Some(fr), Some(pairs)) => {
                let edge = fr.bond_pairs.index_select(pairs, 0)?;
                let msg = (h.index_select(&batch.src, 0)? + edge)?.relu()?;
                let z = h
                    .broadcast_mul(&fr.one_plus_eps)?
                    .index_add(&batch.dst, &msg, 0)?;
                let z = fr.f1.forward(&z)?.relu()?;
                fr.f2.forward(&z)
            }
            _ => {
                let mut edge = self.bond_tables[0].index_select(&batch.bond_cols[0], 0)?;
                for c in 1..COLUMNS {
                    edge = (edge + self.bond_tables[c].index_select(&batch.bond_cols[c], 0)?)?;
                }
                let msg = (h.index_select(&batch.src, 0)? + edge)?.relu()?;
                let z = h
                    .broadcast_mul(&(&self.eps + 1.0)?)?
                    .index_add(&batch.dst, &msg, 0)?;
                let (s1, t1) = self.bn1.affine()?;
                let z = z
                    .matmul(&self.lin1.weight.t()?)?
                    .broadcast_add(&self.lin1.bias)?
                    .broadcast_mul(&s1)?
                    .broadcast_add(&t1)?
                    .relu()?;
                let (s2, t2) = self.bn2.affine()?;
                Ok(z.matmul(&self.lin2.weight.t()?)?
                    .broadcast_add(&self.lin2.bias)?
                    .broadcast_mul(&s2)?
                    .broadcast_add(&t2)?)
            }
        }
    }
}

/// The GIN encoder in eval mode (BatchNorm with running statistics, no dropout), JK = last.
#[derive(Debug, Clone)]
pub struct Gin {
    config: GinConfig,
    atom_tables: Vec<Tensor>,
    layers: Vec<Layer>,
    /// Every tensor under its key, for saving.
    named: Vec<(String, Tensor)>,
}

impl Gin {
    /// Builds the encoder from weights whose keys start with `prefix` (e.g.
    /// [`MOLECULE_NODE_PREFIX`], or `""`), sizes read from the tensor shapes. With a
    /// `varmap` the parameters become trainable variables registered there under their full keys.
    pub fn from_weights(weights: &Weights, prefix: &str, varmap: Option<&VarMap>) -> Result<Self> {
        let config = GinConfig::from_weights(weights, prefix)?;
        Self::build(config, Source::Load { weights, prefix }, varmap)
    }

    /// Loads a MoleculeSTM `molecule_model.pth` (or any file [`Weights::load`] reads) with keys
    /// under [`MOLECULE_NODE_PREFIX`] or unprefixed; other keys (e.g. `graph_pred_linear`) are ignored.
    pub fn load(path: impl AsRef<Path>, varmap: Option<&VarMap>) -> Result<Self> {
        let weights = Weights::load(path)?;
        let key0 = "atom_encoder.atom_embedding_list.0.weight";
        let prefix = if weights
            .get(&format!("{MOLECULE_NODE_PREFIX}{key0}"))
            .is_some()
        {
            MOLECULE_NODE_PREFIX
        } else {
            ""
        };
        Self::from_weights(&weights, prefix, varmap)
    }

    /// A freshly initialised encoder (PyTorch's initialisation: Xavier-uniform embeddings as in
    /// OGB, uniform linears, identity BatchNorms, eps 0), for training without a pretrained GIN.
    /// The same `seed` always gives the same weights.
    pub fn new(config: GinConfig, seed: u64, varmap: Option<&VarMap>) -> Result<Self> {
        Self::build(config, Source::Init(seed), varmap)
    }

    fn build(config: GinConfig, source: Source, varmap: Option<&VarMap>) -> Result<Self> {
        config.check()?;
        let h = config.hidden;
        let trainable = varmap.is_some();
        let mut b = Builder::new(source, varmap);
        let table_init = |rows: usize| {
            let bound = (6.0 / (rows + h) as f64).sqrt();
            Init::Uniform {
                lo: -bound,
                up: bound,
            }
        };
        let mut atom_tables = Vec::with_capacity(config.atom_vocab.len());
        for (c, &rows) in config.atom_vocab.iter().enumerate() {
            let key = format!("atom_encoder.atom_embedding_list.{c}.weight");
            atom_tables.push(b.param(&key, &[rows, h], table_init(rows))?);
        }
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let g = format!("gnns.{l}");
            let mut bond_tables = Vec::with_capacity(config.bond_vocab.len());
            for (c, &rows) in config.bond_vocab.iter().enumerate() {
                let key = format!("{g}.bond_encoder.bond_embedding_list.{c}.weight");
                bond_tables.push(b.param(&key, &[rows, h], table_init(rows))?);
            }
            let eps = b.param(&format!("{g}.eps"), &[1], Init::Const(0.0))?;
            let lin1 = Linear::build(&mut b, &format!("{g}.mlp.0"), h, 2 * h)?;
            let bn1 = BatchNorm::build(&mut b, &format!("{g}.mlp.1"), 2 * h)?;
            let lin2 = Linear::build(&mut b, &format!("{g}.mlp.3"), 2 * h, h)?;
            let bn2 = BatchNorm::build(&mut b, &format!("batch_norms.{l}"), h)?;
            let mut layer = Layer {
                eps,
                bond_tables,
                lin1,
                bn1,
                lin2,
                bn2,
                frozen: None,
            };
            if !trainable {
                layer.freeze()?;
            }
            layers.push(layer);
        }
        Ok(Self {
            config,
            atom_tables,
            layers,
            named: b.built,
        })
    }

    /// The encoder's sizes.
    pub fn config(&self) -> &GinConfig {
        &self.config
    }

    /// Node embeddings `[num_nodes, hidden]` of a batch, rows in the batch's node order
    /// (split them with [`GraphBatch::split`]).
    pub fn forward(&self, batch: &GraphBatch) -> Result<Tensor> {
        for c in 0..COLUMNS {
            check_range(
                "atom",
                c,
                batch.atom_max[c],
                &self.config.atom_vocab,
                batch.num_nodes(),
            )?;
            check_range(
                "bond",
                c,
                batch.bond_max[c],
                &self.config.bond_vocab,
                batch.num_edges(),
            )?;
        }
        // Frozen layers look each edge up once in their pair table.
        let pairs = match self.layers[0].frozen {
            Some(_) => {
                let stride = self.config.bond_vocab[1] as u32;
                let b0 = batch.bond_cols[0].to_vec1::<u32>()?;
                let b1 = batch.bond_cols[1].to_vec1::<u32>()?;
                let idx: Vec<u32> = b0.iter().zip(&b1).map(|(a, b)| a * stride + b).collect();
                Some(Tensor::from_vec(idx, b0.len(), batch.src.device())?)
            }
            None => None,
        };
        let mut h = self.atom_tables[0].index_select(&batch.atom_cols[0], 0)?;
        for c in 1..COLUMNS {
            h = (h + self.atom_tables[c].index_select(&batch.atom_cols[c], 0)?)?;
        }
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h, batch, pairs.as_ref())?;
            if l != last {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// All parameters and buffers under their keys, with [`MOLECULE_NODE_PREFIX`] prepended
    /// when `prefixed` (MoleculeSTM's layout). Trainable parameters give their current values.
    pub fn to_weights(&self, prefixed: bool) -> Weights {
        let mut w = Weights::default();
        for (key, t) in &self.named {
            let key = key.strip_prefix(MOLECULE_NODE_PREFIX).unwrap_or(key);
            let key = if prefixed {
                format!("{MOLECULE_NODE_PREFIX}{key}")
            } else {
                key.to_string()
            };
            w.insert(key, t.clone());
        }
        w
    }

    /// Saves to safetensors with MoleculeSTM's key names (prefix [`MOLECULE_NODE_PREFIX`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_weights(true).save_safetensors(path)
    }

    /// Number of scalar parameters (buffers excluded).
    pub fn num_params(&self) -> usize {
        self.named
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .map(|(_, t)| t.elem_count())
            .sum()
    }
}

fn check_range(
    what: &'static str,
    column: usize,
    max: u32,
    vocab: &[usize],
    rows: usize,
) -> Result<()> {
    let size = vocab[column];
    if rows > 0 && max as usize >= size {
        return Err(ModelError::FeatureRange {
            what,
            column,
            value: max,
            size,
        });
    }
    Ok(())
}
