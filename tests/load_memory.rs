//! Load time and peak resident memory of a big checkpoint (issue 15: at most 1.1x the weight
//! bytes in bf16). Not run by default: it needs a model made by `scripts/make_vicuna7b_shaped.py`.
//!
//!     INSTRUCTMOL_LOAD_DIR=/path/vicuna7b/safetensors \
//!       /usr/bin/time -v cargo test --release --test load_memory -- --ignored --nocapture
//!
//! Without `INSTRUCTMOL_LOAD_DIR` it prints "skipped: ..." and passes.

use std::time::Instant;

use candle_core::{DType, Device};
use instructmol::model::load_model;

/// Peak resident set size of this process (`VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
#[ignore = "needs a 7B-shaped model (scripts/make_vicuna7b_shaped.py) and ~15 GB of memory"]
fn a_7b_checkpoint_loads_within_1_1x_its_weight_bytes() {
    let Some(dir) = std::env::var_os("INSTRUCTMOL_LOAD_DIR") else {
        println!("skipped: set INSTRUCTMOL_LOAD_DIR to a model directory");
        return;
    };
    let dir = dir.to_string_lossy().to_string();
    let start = Instant::now();
    let model = load_model(&dir, DType::BF16, &Device::Cpu).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = model
        .weights
        .values()
        .map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
        .sum();
    let peak = peak_rss().unwrap();
    let ratio = peak as f64 / bytes as f64;
    println!(
        "{dir}: {} tensors, {:.2} GB of weights, loaded in {secs:.1} s, peak RSS {:.2} GB = {ratio:.3}x",
        model.weights.len(),
        bytes as f64 / 1e9,
        peak as f64 / 1e9
    );
    assert!(ratio <= 1.1, "peak RSS {ratio:.3}x the weight bytes");
}
