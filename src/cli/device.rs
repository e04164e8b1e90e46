//! `instructmol device`: opens a device and checks that it computes what the CPU computes.
//!
//! A quick test of a build and a machine (for a CUDA build: driver, kernels, cuBLAS) before a
//! long run: a small matrix product, softmax and reduction in the chosen dtype on the device,
//! compared with the same computation in f32 on the CPU. Prints one JSON line.
//!
//! With `--preset tiny|smollm2-135m` it checks the model instead: the same random decoder with
//! the same LoRA adapters (all seven modules), one forward pass, causal-LM loss and backward
//! pass on the CPU in f32 and on the device in the chosen dtype; it reports how far the loss
//! and the LoRA gradients are apart, against tolerances per dtype.

use crate::cli::bench::Preset;
use crate::model::{parse_dtype, DeviceSpec, Llama, LoraConfig};
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::Serialize;

/// Arguments of `instructmol device`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Device to check: `cpu`, `cuda` (the first GPU) or `cuda:N`.
    #[arg(long, default_value = "cuda")]
    pub device: DeviceSpec,
    /// Precision to compute in on that device: `f32`, `bf16` or `f16`.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// Check a decoder of these shapes instead of the small probe: forward, loss and LoRA
    /// gradients against the CPU in f32 (random weights from a fixed seed).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Rows of the model check's batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Tokens per row of the model check.
    #[arg(long, default_value_t = 64)]
    pub seq: usize,
    /// LoRA rank of the model check.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
}

#[derive(Serialize)]
struct Report {
    device: String,
    dtype: String,
    max_rel_diff: f32,
    tolerance: f32,
    ok: bool,
}

/// Largest difference accepted between the device in `dtype` and the CPU in f32, relative to
/// the largest reference value (bf16 keeps 8 significant bits, f16 11, f32 24).
fn tolerance(dtype: DType) -> f32 {
    match dtype {
        DType::BF16 => 3e-2,
        DType::F16 => 5e-3,
        _ => 1e-5,
    }
}

/// softmax(a @ b + bias) summed over rows, computed in `dtype` on `device`, returned as f32 on
/// the CPU. Inputs are deterministic (no random generator, which differs between devices).
fn probe(device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
    let (m, k, n) = (48, 96, 80);
    let wave = |len: usize, f: f32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32) * f).sin() * 0.5 + ((i % 7) as f32) * 0.05)
            .collect()
    };
    let a = Tensor::from_vec(wave(m * k, 0.37), (m, k), device)?.to_dtype(dtype)?;
    let b = Tensor::from_vec(wave(k * n, 0.11), (k, n), device)?.to_dtype(dtype)?;
    let bias = Tensor::from_vec(wave(n, 0.9), n, device)?.to_dtype(dtype)?;
    let logits = a.matmul(&b)?.broadcast_add(&bias)?;
    let probs = candle_nn::ops::softmax_last_dim(&logits)?;
    let summary = (probs.sum(0)? + logits.sum(0)?)?;
    summary.to_dtype(DType::F32)?.to_device(&Device::Cpu)
}

/// Runs `instructmol device`.
pub fn run(args: Args) -> Result<()> {
    if let Some(preset) = args.preset {
        return model_check(&args, preset);
    }
    let device = args.device.open()?;
    let got = probe(&device, args.dtype)
        .with_context(|| format!("computing on {} in {:?}", args.device, args.dtype))?;
    let want = probe(&Device::Cpu, DType::F32).context("computing the CPU reference")?;
    let max_abs = |t: &Tensor| -> candle_core::Result<f32> {
        t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    };
    let max_rel_diff = max_abs(&(&got - &want)?)? / max_abs(&want)?.max(1.0);
    let tolerance = tolerance(args.dtype);
    let ok = max_rel_diff <= tolerance;
    let report = Report {
        device: args.device.to_string(),
        dtype: format!("{:?}", args.dtype).to_lowercase(),
        max_rel_diff,
        tolerance,
        ok,
    };
    println!("{}", serde_json::to_string(&report)?);
    if !ok {
        bail!(
            "{} in {} differs from the CPU by {max_rel_diff} (relative), more than {tolerance}",
            report.device,
            report.dtype
        );
    }
    Ok(())
}

/// One JSON line of the model check.
#[derive(Serialize)]
struct ModelReport {
    check: &'static str,
    preset: &'static str,
    device: String,
    dtype: String,
    batch: usize,
    seq: usize,
    rank: usize,
    loss_cpu_f32: f32,
    loss_device: f32,
    loss_rel_diff: f32,
    loss_tolerance: f32,
    /// Over the LoRA tensors, the largest `max|g_dev - g_cpu| / max|g_cpu|`.
    grad_max_rel_diff: f32,
    /// Over the LoRA tensors, the largest `||g_dev - g_cpu||_2 / ||g_cpu||_2`.
    grad_max_rel_l2: f32,
    grad_tolerance: f32,
    /// The LoRA tensor with the largest `grad_max_rel_diff`.
    worst_tensor: String,
    lora_tensors: usize,
    seconds_cpu: f64,
    seconds_device: f64,
    ok: bool,
}

/// Tolerances of the model check, `(loss, gradients)`, relative, for the device computing in
/// `dtype` against the CPU in f32. f32: only the order of summation differs (cuBLAS against
/// gemm), so a loss agrees to about 1e-7 and gradients to about 1e-6 of their largest entry;
/// the bounds leave two orders of magnitude. bf16 and f16 round weights and activations (8
/// and 11 significant bits); measured with `--device cpu` (the CPU's own half-precision
/// path), the largest gradient differences are 0.015 (tiny) and 0.049 (SmolLM2) in bf16,
/// 0.006 and 0.085 in f16 (small attention gradients lose bits without loss scaling), the
/// loss moves by at most 2.4e-5. The bounds are about 3x the gradient figures, because a GPU's
/// half-precision kernels round in other places than the CPU's, and 1e-3 for the loss.
fn model_tolerance(dtype: DType) -> (f32, f32) {
    match dtype {
        DType::BF16 => (1e-3, 0.15),
        DType::F16 => (1e-3, 0.25),
        _ => (1e-5, 1e-3),
    }
}

/// The loss and the LoRA gradients (by PEFT name, as f32 on the CPU) of one forward and
/// backward pass of the preset's random decoder in `dtype` on `device`. Every input is drawn
/// on the host from fixed seeds, so two devices compute from the same numbers.
fn model_step(
    preset: Preset,
    args: &Args,
    dtype: DType,
    device: &Device,
) -> Result<(f32, Vec<(String, Tensor)>)> {
    let cfg = preset.config()?;
    let mut model = Llama::random(&cfg, 7, dtype, device)?;
    let varmap = VarMap::new();
    let lcfg = LoraConfig {
        r: args.rank,
        alpha: 2.0 * args.rank as f64,
        dropout: 0.0,
        ..LoraConfig::default()
    };
    model.add_lora(&lcfg, &varmap, 1)?;
    // B starts at zero, which would leave A without a gradient: give it small values.
    let mut rng = Rng::new(3);
    let mut names: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("the LoRA variable map is poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in &names {
        if name.contains("lora_B") {
            let b = rng
                .normal(0.0, 0.02, var.dims(), device)?
                .to_dtype(var.dtype())?;
            var.set(&b)?;
        }
    }
    let mut ids_rng = Rng::new(42);
    let ids: Vec<u32> = (0..args.batch * args.seq)
        .map(|_| ids_rng.below(cfg.vocab_size) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (args.batch, args.seq), device)?;
    let logits = model.forward(&model.embed(&ids)?, None, true, 0)?;
    let loss = Llama::loss(&logits, &ids)?;
    let grads = loss.backward()?;
    let loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    let mut out = Vec::with_capacity(names.len());
    for (name, var) in names {
        let g = grads
            .get(var.as_tensor())
            .with_context(|| format!("no gradient for {name}"))?;
        out.push((name, g.to_dtype(DType::F32)?.to_device(&Device::Cpu)?));
    }
    Ok((loss, out))
}

/// `instructmol device --preset P`: the model check, one JSON line.
fn model_check(args: &Args, preset: Preset) -> Result<()> {
    if args.batch == 0 || args.seq < 2 || args.rank == 0 {
        bail!("--batch and --rank must be positive and --seq at least 2");
    }
    let device = args.device.open()?;
    let t = std::time::Instant::now();
    let (loss_ref, grads_ref) =
        model_step(preset, args, DType::F32, &Device::Cpu).context("the CPU reference")?;
    let seconds_cpu = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let (loss_dev, grads_dev) = model_step(preset, args, args.dtype, &device)
        .with_context(|| format!("computing on {} in {:?}", args.device, args.dtype))?;
    let seconds_device = t.elapsed().as_secs_f64();
    let max_abs = |t: &Tensor| -> candle_core::Result<f32> {
        t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    };
    let l2 = |t: &Tensor| -> candle_core::Result<f32> {
        Ok(t.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt())
    };
    let (mut worst, mut worst_l2, mut worst_name) = (0f32, 0f32, String::new());
    for ((name, r), (_, d)) in grads_ref.iter().zip(&grads_dev) {
        let diff = (d - r)?;
        let rel = max_abs(&diff)? / max_abs(r)?.max(f32::MIN_POSITIVE);
        let rel_l2 = l2(&diff)? / l2(r)?.max(f32::MIN_POSITIVE);
        // NaN compares false: keep it as the worst so that it fails the check.
        if rel.is_nan() || rel > worst {
            worst = rel;
            worst_name = name.clone();
        }
        if rel_l2.is_nan() || rel_l2 > worst_l2 {
            worst_l2 = rel_l2;
        }
    }
    let loss_rel_diff = (loss_dev - loss_ref).abs() / loss_ref.abs().max(f32::MIN_POSITIVE);
    let (loss_tolerance, grad_tolerance) = model_tolerance(args.dtype);
    let ok = loss_rel_diff <= loss_tolerance && worst <= grad_tolerance;
    let report = ModelReport {
        check: "model",
        preset: preset.name(),
        device: args.device.to_string(),
        dtype: format!("{:?}", args.dtype).to_lowercase(),
        batch: args.batch,
        seq: args.seq,
        rank: args.rank,
        loss_cpu_f32: loss_ref,
        loss_device: loss_dev,
        loss_rel_diff,
        loss_tolerance,
        grad_max_rel_diff: worst,
        grad_max_rel_l2: worst_l2,
        grad_tolerance,
        worst_tensor: worst_name,
        lora_tensors: grads_ref.len(),
        seconds_cpu,
        seconds_device,
        ok,
    };
    println!("{}", serde_json::to_string(&report)?);
    if !ok {
        bail!(
            "{} in {}: loss differs from the CPU's by {loss_rel_diff} (tolerance {loss_tolerance}), \
             LoRA gradients by {worst} (tolerance {grad_tolerance}, worst {})",
            report.device,
            report.dtype,
            report.worst_tensor
        );
    }
    Ok(())
}
