//! `instructmol device`: opens a device and checks that it computes what the CPU computes.
//!
//! A quick test of a build and a machine (for a CUDA build: driver, kernels, cuBLAS) before a
//! long run: a small matrix product, softmax and reduction in the chosen dtype on the device,
//! compared with the same computation in f32 on the CPU. Prints one JSON line.

use crate::model::{parse_dtype, DeviceSpec};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
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
