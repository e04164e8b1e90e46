//! The optimizer of both stages: gradients accumulated over the micro-batches of an update,
//! global-norm clipping (`torch.nn.utils.clip_grad_norm_`), AdamW with decoupled weight decay
//! (`torch.optim.AdamW`), and a state that is saved and restored exactly for `--resume`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::Result;
use crate::run::RunError;

/// AdamW hyperparameters (PyTorch defaults but for the learning rate) and the clipping norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Coefficient of the first moment.
    pub beta1: f64,
    /// Coefficient of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip applied before each update (0: off).
    pub max_grad_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 0.0,
        }
    }
}

/// What one update did (global L2 norms over all parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Norm of the change applied to the parameters.
    pub update_norm: f64,
    /// Parameter norm before the update.
    pub param_norm: f64,
}

impl StepStats {
    /// Size of the update relative to the parameters: far below 1 in healthy training; above
    /// 1 the update is larger than the weights themselves (a learning rate far too high).
    pub fn update_ratio(&self) -> f64 {
        self.update_norm / self.param_norm.max(1e-12)
    }
}

/// An update that would leave the model unusable.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The accumulated gradient is NaN or infinite (the update was not applied).
    #[error("the gradient norm is {0}")]
    Gradient(f64),
    /// The update made parameters NaN or infinite.
    #[error("the update made parameters NaN or infinite")]
    Parameters,
}

fn sum_sq(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// AdamW over a fixed set of named variables, with gradient accumulation and clipping.
pub struct AdamW {
    config: AdamWConfig,
    params: BTreeMap<String, Var>,
    /// Gradients summed over the micro-batches of the update in progress, by name.
    pending: BTreeMap<String, Tensor>,
    /// First and second moments per parameter, created on the first step.
    moments: HashMap<String, (Tensor, Tensor)>,
    steps: u64,
}

impl AdamW {
    /// An optimizer for `params` (name -> variable); names key the saved state.
    pub fn new(params: BTreeMap<String, Var>, config: AdamWConfig) -> Self {
        Self {
            config,
            params,
            pending: BTreeMap::new(),
            moments: HashMap::new(),
            steps: 0,
        }
    }

    /// The variables being optimised.
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// Number of optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Adds the gradients of one micro-batch to the update in progress (parameters without
    /// a gradient in `grads` are left out, as PyTorch does for `grad is None`).
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<()> {
        for (name, var) in &self.params {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let sum = match self.pending.remove(name) {
                Some(old) => (old + g)?,
                None => g.clone(),
            };
            self.pending.insert(name.clone(), sum);
        }
        Ok(())
    }

    /// Ends the update in progress: clips the accumulated gradients to the configured norm,
    /// applies one AdamW update at learning rate `lr` and clears them. A gradient that is not
    /// finite is refused before anything changes ([`StepError::Gradient`]); parameters that are
    /// not finite after the update are reported ([`StepError::Parameters`]): either way the
    /// caller must not save them.
    pub fn step(&mut self, lr: f64) -> Result<StepStats> {
        let mut grads = std::mem::take(&mut self.pending);
        let grad_norm = clip_grad_norm(&mut grads, self.config.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(StepError::Gradient(grad_norm).into());
        }
        self.steps += 1;
        let (mut update_sq, mut before_sq, mut after_sq) = (0f64, 0f64, 0f64);
        let c = self.config;
        let t = self.steps as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (name, var) in &self.params {
            let Some(g) = grads.get(name) else {
                continue;
            };
            let g = g.to_dtype(DType::F32)?;
            let p = var.as_tensor().to_dtype(DType::F32)?;
            before_sq += sum_sq(&p)?;
            let (m, v) = match self.moments.remove(name) {
                Some(mv) => mv,
                None => (p.zeros_like()?, p.zeros_like()?),
            };
            let m = ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let p = if c.weight_decay != 0.0 {
                (p * (1.0 - lr * c.weight_decay))?
            } else {
                p
            };
            let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
            let update = ((&m / denom)? * (lr / bc1))?;
            let p = (p - &update)?;
            update_sq += sum_sq(&update)?;
            after_sq += sum_sq(&p)?;
            var.set(&p.to_dtype(var.dtype())?)?;
            self.moments.insert(name.clone(), (m, v));
        }
        if !after_sq.is_finite() {
            return Err(StepError::Parameters.into());
        }
        Ok(StepStats {
            grad_norm,
            update_norm: update_sq.sqrt(),
            param_norm: before_sq.sqrt(),
        })
    }

    /// Saves the moments (safetensors, keys `m.NAME` / `v.NAME`); the step count is kept by
    /// the caller's trainer state.
    pub fn save(&self, path: &Path) -> crate::run::Result<()> {
        let mut map = HashMap::new();
        for (name, (m, v)) in &self.moments {
            map.insert(format!("m.{name}"), m.clone());
            map.insert(format!("v.{name}"), v.clone());
        }
        candle_core::safetensors::save(&map, path).map_err(|e| RunError::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Restores moments written by [`AdamW::save`] and the step count; every parameter's
    /// moments must be present with the parameter's shape (or none at all for step 0).
    pub fn load(&mut self, path: &Path, steps: u64) -> crate::run::Result<()> {
        let bad = |reason: String| RunError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let device = self
            .params
            .values()
            .next()
            .map(|v| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let mut map =
            candle_core::safetensors::load(path, &device).map_err(|e| bad(e.to_string()))?;
        self.moments.clear();
        for (name, var) in &self.params {
            match (map.remove(&format!("m.{name}")), map.remove(&format!("v.{name}"))) {
                (Some(m), Some(v)) => {
                    if m.dims() != var.dims() || v.dims() != var.dims() {
                        return Err(bad(format!(
                            "optimizer moments of `{name}` have shape {:?}, the parameter has {:?}",
                            m.dims(),
                            var.dims()
                        )));
                    }
                    self.moments.insert(name.clone(), (m, v));
                }
                (None, None) if steps == 0 => {}
                _ => {
                    return Err(bad(format!(
                        "optimizer state has no moments for parameter `{name}` (checkpoint from another configuration?)"
                    )))
                }
            }
        }
        if let Some(extra) = map.keys().next() {
            return Err(bad(format!(
                "optimizer state holds `{extra}`, which is not a parameter of this run (checkpoint from another configuration?)"
            )));
        }
        self.steps = steps;
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)`, applied only when below 1; 0: no
/// clipping). Returns the norm before clipping.
fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        total += g
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm.is_finite() {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.values_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reference values by hand-iterating PyTorch's AdamW formulas in f64.
    fn reference(p0: f64, grads: &[f64], lr: f64, c: AdamWConfig) -> f64 {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        for (i, g) in grads.iter().enumerate() {
            let t = (i + 1) as i32;
            p *= 1.0 - lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            let denom = (v / (1.0 - c.beta2.powi(t))).sqrt() + c.eps;
            p -= lr / (1.0 - c.beta1.powi(t)) * m / denom;
        }
        p
    }

    #[test]
    fn matches_the_adamw_recurrence_and_resumes_exactly() {
        let c = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), var.clone());
        let mut opt = AdamW::new(params.clone(), c);
        // loss = sum(k * w^2) with k = [0.5, 3]: grad = 2 k w.
        let step = |opt: &mut AdamW| {
            let k = Tensor::new(&[0.5f32, 3.0], &Device::Cpu).unwrap();
            let loss = (var.as_tensor().sqr().unwrap() * k)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.accumulate(&loss.backward().unwrap()).unwrap();
            opt.step(0.05).unwrap();
        };
        step(&mut opt);
        step(&mut opt);
        let dir = std::env::temp_dir().join(format!("adamw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        opt.save(&dir.join("opt.safetensors")).unwrap();
        let mut resumed = AdamW::new(params, c);
        resumed
            .load(&dir.join("opt.safetensors"), opt.steps())
            .unwrap();
        step(&mut resumed);
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        // Replay in f64: gradients depend on the parameter, so iterate the recurrence.
        for (i, (&p0, k)) in [1.0f64, -2.0].iter().zip([0.5f64, 3.0]).enumerate() {
            let (mut p, mut gs) = (p0, Vec::new());
            for _ in 0..3 {
                gs.push(2.0 * k * p);
                p = reference(p0, &gs, 0.05, c);
            }
            assert!((got[i] as f64 - p).abs() < 1e-5, "{i}: {} vs {p}", got[i]);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let a = Var::from_slice(&[3.0f32], 1, &Device::Cpu).unwrap();
        let b = Var::from_slice(&[4.0f32], 1, &Device::Cpu).unwrap();
        let loss = ((a.as_tensor() * 3.0).unwrap() + (b.as_tensor() * 4.0).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let store = loss.backward().unwrap();
        let mut grads = BTreeMap::new();
        grads.insert("a".to_string(), store.get(a.as_tensor()).unwrap().clone());
        grads.insert("b".to_string(), store.get(b.as_tensor()).unwrap().clone());
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let ga = grads["a"].to_vec1::<f32>().unwrap()[0];
        let gb = grads["b"].to_vec1::<f32>().unwrap()[0];
        assert!(
            (ga - 0.6).abs() < 1e-5 && (gb - 0.8).abs() < 1e-5,
            "{ga} {gb}"
        );
    }

    #[test]
    fn refuses_state_of_another_configuration() {
        let var = Var::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu).unwrap();
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), var.clone());
        let mut opt = AdamW::new(params, AdamWConfig::default());
        let loss = var.as_tensor().sum_all().unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        opt.step(0.1).unwrap();
        let dir = std::env::temp_dir().join(format!("adamw-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        opt.save(&dir.join("opt.safetensors")).unwrap();
        let other = Var::from_slice(&[1.0f32, 2.0, 3.0], 3, &Device::Cpu).unwrap();
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), other);
        let mut opt2 = AdamW::new(params, AdamWConfig::default());
        let err = opt2
            .load(&dir.join("opt.safetensors"), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shape"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
