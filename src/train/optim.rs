//! The optimizer of both stages: gradients accumulated over the micro-batches of an update,
//! global-norm clipping (`torch.nn.utils.clip_grad_norm_`), AdamW with decoupled weight decay
//! (`torch.optim.AdamW`), dynamic loss scaling for f16 models ([`LossScaler`],
//! `torch.cuda.amp.GradScaler`), and a state that is saved and restored exactly for `--resume`.

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
    /// The loss scale the update's gradients were computed with (f16 models only).
    pub loss_scale: Option<f64>,
    /// The gradients overflowed under loss scaling: nothing was changed, and the scale halved.
    pub skipped: bool,
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

/// Dynamic loss scaling for training an f16 model (PyTorch's `torch.cuda.amp.GradScaler`): the
/// loss is multiplied by the scale before the backward pass, so that small gradients do not
/// underflow f16, and the gradients are divided by it before clipping. An update whose
/// gradients are not finite is skipped and the scale halved; after `growth_interval` updates
/// in a row with finite gradients the scale doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaler {
    scale: f64,
    /// Finite updates since the scale last changed.
    good_steps: u64,
    growth_interval: u64,
}

impl LossScaler {
    /// PyTorch's initial scale, 2^16.
    pub const INIT_SCALE: f64 = 65536.0;
    /// PyTorch's number of finite updates before the scale doubles.
    pub const GROWTH_INTERVAL: u64 = 2000;
    /// Gradients that overflow at this scale overflow f16 without any scaling: the run has
    /// diverged, and the update is refused as a non-finite gradient.
    pub const MIN_SCALE: f64 = 1.0;

    /// A scaler starting at `init_scale` that doubles after `growth_interval` finite updates.
    pub fn new(init_scale: f64, growth_interval: u64) -> Self {
        Self {
            scale: init_scale,
            good_steps: 0,
            growth_interval: growth_interval.max(1),
        }
    }

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Records an update with finite gradients (`true`) or a skipped one (`false`).
    fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
    }
}

fn sum_sq(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// Key of the number of applied updates in the saved state.
const STEPS_KEY: &str = "adamw.steps";
/// Key of the loss scale in the saved state.
const SCALE_KEY: &str = "scaler.scale";
/// Key of the loss scaler's finite updates since its last change.
const GOOD_STEPS_KEY: &str = "scaler.good_steps";

/// AdamW over a fixed set of named variables, with gradient accumulation and clipping.
pub struct AdamW {
    config: AdamWConfig,
    params: BTreeMap<String, Var>,
    /// Gradients summed over the micro-batches of the update in progress, by name.
    pending: BTreeMap<String, Tensor>,
    /// First and second moments per parameter, created on the first step.
    moments: HashMap<String, (Tensor, Tensor)>,
    /// Updates applied (skipped ones not counted, as PyTorch's AdamW does not see them).
    steps: u64,
    /// Dynamic loss scaling (f16 models).
    scaler: Option<LossScaler>,
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
            scaler: None,
        }
    }

    /// The same optimizer with dynamic loss scaling (for an f16 model).
    pub fn with_loss_scaler(mut self, scaler: LossScaler) -> Self {
        self.scaler = Some(scaler);
        self
    }

    /// The factor to multiply the loss by before the backward pass: the loss scale, or 1.
    pub fn loss_scale(&self) -> f64 {
        self.scaler.map_or(1.0, |s| s.scale())
    }

    /// The variables being optimised.
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// Number of updates applied (skipped ones not counted).
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

    /// Ends the update in progress: divides the accumulated gradients by the loss scale (when
    /// scaling), clips them to the configured norm, applies one AdamW update at learning rate
    /// `lr` and clears them. A gradient that is not finite is refused before anything changes
    /// ([`StepError::Gradient`]); under loss scaling such an update is skipped instead and the
    /// scale halved (refused only when the scale is already [`LossScaler::MIN_SCALE`]).
    /// Parameters that are not finite after the update are reported
    /// ([`StepError::Parameters`]): either way the caller must not save them.
    pub fn step(&mut self, lr: f64) -> Result<StepStats> {
        let mut grads = std::mem::take(&mut self.pending);
        let loss_scale = self.scaler.map(|s| s.scale());
        if let Some(scale) = loss_scale {
            for g in grads.values_mut() {
                *g = (&*g * (1.0 / scale))?;
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, self.config.max_grad_norm)?;
        if let Some(scaler) = self.scaler.as_mut() {
            let finite = grad_norm.is_finite();
            if !finite && scaler.scale() > LossScaler::MIN_SCALE {
                scaler.update(false);
                return Ok(StepStats {
                    grad_norm,
                    update_norm: 0.0,
                    param_norm: 0.0,
                    loss_scale,
                    skipped: true,
                });
            }
            if finite {
                scaler.update(true);
            }
        }
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
            loss_scale,
            skipped: false,
        })
    }

    /// Saves the moments (safetensors, keys `m.NAME` / `v.NAME`), the number of updates applied
    /// (`adamw.steps`) and the loss scaler's state (`scaler.scale`, `scaler.good_steps`), each
    /// a one-element f64 tensor.
    pub fn save(&self, path: &Path) -> crate::run::Result<()> {
        let err = |e: candle_core::Error| RunError::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut map = HashMap::new();
        for (name, (m, v)) in &self.moments {
            map.insert(format!("m.{name}"), m.clone());
            map.insert(format!("v.{name}"), v.clone());
        }
        let mut scalars = vec![(STEPS_KEY, self.steps as f64)];
        if let Some(s) = &self.scaler {
            scalars.push((SCALE_KEY, s.scale));
            scalars.push((GOOD_STEPS_KEY, s.good_steps as f64));
        }
        for (key, value) in scalars {
            let t = Tensor::new(&[value], &candle_core::Device::Cpu).map_err(err)?;
            map.insert(key.to_string(), t);
        }
        candle_core::safetensors::save(&map, path).map_err(err)
    }

    /// Restores what [`AdamW::save`] wrote; `steps` is the run's update count, the number of
    /// applied updates when the file does not say (written before updates could be skipped).
    /// Every parameter's moments must be present with the parameter's shape (or none at all
    /// for step 0). A scaler keeps its initial state when the file has none.
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
        let mut scalar = |key: &str| -> crate::run::Result<Option<f64>> {
            let Some(t) = map.remove(key) else {
                return Ok(None);
            };
            let v = t
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| bad(format!("`{key}`: {e}")))?;
            match v[..] {
                [x] if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(bad(format!("`{key}` holds {v:?}, not one number >= 0"))),
            }
        };
        let applied = scalar(STEPS_KEY)?;
        let scale = scalar(SCALE_KEY)?;
        let good_steps = scalar(GOOD_STEPS_KEY)?;
        if let (Some(s), Some(scale), Some(good)) = (self.scaler.as_mut(), scale, good_steps) {
            if scale <= 0.0 {
                return Err(bad(format!("the loss scale is {scale}")));
            }
            s.scale = scale;
            s.good_steps = good as u64;
        }
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
        self.steps = applied.map_or(steps, |a| a as u64);
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

    /// An optimizer over one variable `[1, -2]` and a loss `sum(k * w)` with gradient `k`.
    fn one_var(c: AdamWConfig) -> (Var, AdamW) {
        let var = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), var.clone());
        (var.clone(), AdamW::new(params, c))
    }

    /// Accumulates the gradient of `sum(k * w) * factor`.
    fn accumulate(opt: &mut AdamW, var: &Var, k: [f32; 2], factor: f64) {
        let k = Tensor::new(&k, &Device::Cpu).unwrap();
        let loss = ((var.as_tensor() * k).unwrap().sum_all().unwrap() * factor).unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
    }

    #[test]
    fn loss_scaler_halves_on_overflow_and_doubles_after_the_growth_interval() {
        let mut s = LossScaler::new(LossScaler::INIT_SCALE, 3);
        s.update(false);
        assert_eq!(s.scale(), 32768.0);
        for _ in 0..2 {
            s.update(true);
        }
        assert_eq!(s.scale(), 32768.0);
        // A skip restarts the count.
        s.update(false);
        assert_eq!(s.scale(), 16384.0);
        for _ in 0..3 {
            s.update(true);
        }
        assert_eq!(s.scale(), 32768.0);
    }

    #[test]
    fn scaled_updates_equal_unscaled_ones_and_overflows_are_skipped() {
        // Clipping on: the gradients must be unscaled before they are clipped.
        let c = AdamWConfig {
            max_grad_norm: 0.5,
            ..Default::default()
        };
        let (plain_var, mut plain) = one_var(c);
        let (var, opt) = one_var(c);
        let mut opt = opt.with_loss_scaler(LossScaler::new(1024.0, 2));
        for (step, k) in [[3.0f32, -1.0], [0.5, 2.0], [1.5, 1.0]]
            .into_iter()
            .enumerate()
        {
            accumulate(&mut plain, &plain_var, k, 1.0);
            let plain_stats = plain.step(1e-2).unwrap();
            let scale = opt.loss_scale();
            accumulate(&mut opt, &var, k, scale);
            let stats = opt.step(1e-2).unwrap();
            assert!(!stats.skipped && stats.loss_scale == Some(scale));
            assert!((stats.grad_norm - plain_stats.grad_norm).abs() < 1e-6 * stats.grad_norm);
            let (a, b) = (
                var.as_tensor().to_vec1::<f32>().unwrap(),
                plain_var.as_tensor().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(a, b, "step {step}");
        }
        // Two finite updates at 1024 doubled the scale; the third ran at 2048.
        assert_eq!(opt.loss_scale(), 2048.0);
        // An overflow: nothing changes but the scale, and AdamW does not count the update.
        let before = var.as_tensor().to_vec1::<f32>().unwrap();
        accumulate(&mut opt, &var, [f32::INFINITY, 1.0], 1.0);
        let stats = opt.step(1e-2).unwrap();
        assert!(stats.skipped && !stats.grad_norm.is_finite());
        assert_eq!(var.as_tensor().to_vec1::<f32>().unwrap(), before);
        assert_eq!(opt.loss_scale(), 1024.0);
        assert_eq!(opt.steps(), 3);
        // The state, saved and restored, carries the scale and the applied-update count.
        let dir = std::env::temp_dir().join(format!("adamw-scaler-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("opt.safetensors");
        opt.save(&path).unwrap();
        let (_, fresh) = one_var(c);
        let mut fresh = fresh.with_loss_scaler(LossScaler::new(1024.0, 2));
        accumulate(&mut fresh, &var, [1.0, 1.0], 1.0);
        fresh.step(1e-2).unwrap();
        fresh.load(&path, 4).unwrap();
        assert_eq!(fresh.loss_scale(), 1024.0);
        assert_eq!(fresh.steps(), 3, "the run's step 4 was a skipped update");
        assert_eq!(fresh.scaler, opt.scaler);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn non_finite_gradients_stop_runs_without_scaling_and_at_the_smallest_scale() {
        let (var, mut opt) = one_var(AdamWConfig::default());
        accumulate(&mut opt, &var, [f32::NAN, 1.0], 1.0);
        assert!(matches!(
            opt.step(1e-2),
            Err(crate::train::TrainError::Step(StepError::Gradient(_)))
        ));
        let (var, opt) = one_var(AdamWConfig::default());
        let mut opt = opt.with_loss_scaler(LossScaler::new(2.0, 2000));
        accumulate(&mut opt, &var, [f32::INFINITY, 1.0], 1.0);
        assert!(opt.step(1e-2).unwrap().skipped);
        assert_eq!(opt.loss_scale(), LossScaler::MIN_SCALE);
        accumulate(&mut opt, &var, [f32::INFINITY, 1.0], 1.0);
        assert!(matches!(
            opt.step(1e-2),
            Err(crate::train::TrainError::Step(StepError::Gradient(_)))
        ));
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
