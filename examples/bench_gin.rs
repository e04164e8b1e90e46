//! GIN forward throughput, the Rust half of `scripts/bench/gin.py`.
//!
//!     cargo run --release --example bench_gin -- WEIGHTS GRAPHS.json BATCH SECONDS
//!
//! GRAPHS.json is a list of `{"node_feat", "edge_index", "edge_feat"}` objects. Graphs are
//! batched `BATCH` at a time (batch assembly included in the timing) and run through the
//! frozen encoder repeatedly for at least `SECONDS`. Prints one JSON line: graphs/s and the
//! sum of the first batch's embeddings (for a cross-check against PyTorch).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use instructmol::model::{Gin, GraphBatch, GraphInput};
use serde::Deserialize;

#[derive(Deserialize)]
struct Graph {
    node_feat: Vec<[i64; 2]>,
    edge_index: [Vec<i64>; 2],
    edge_feat: Vec<[i64; 2]>,
}

/// The allocator of the `instructmol` binary, so that both run alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    instructmol::model::device::init_cpu_runtime();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, graphs, batch, seconds] = &args[..] else {
        bail!("usage: bench_gin WEIGHTS GRAPHS.json BATCH SECONDS");
    };
    let batch: usize = batch.parse().context("BATCH")?;
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let gin = Gin::load(weights, None)?;
    let graphs: Vec<Graph> = serde_json::from_str(&std::fs::read_to_string(graphs)?)?;
    let inputs: Vec<GraphInput> = graphs
        .iter()
        .map(|g| GraphInput {
            node_feat: &g.node_feat,
            edge_index: [&g.edge_index[0], &g.edge_index[1]],
            edge_feat: &g.edge_feat,
        })
        .collect();
    let chunks: Vec<&[GraphInput]> = inputs.chunks(batch).filter(|c| c.len() == batch).collect();
    if chunks.is_empty() {
        bail!("fewer than {batch} graphs");
    }
    let first = GraphBatch::new(chunks[0].iter().copied(), &Device::Cpu)?;
    let first_sum: f32 = gin.forward(&first)?.sum_all()?.to_scalar()?;
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        for chunk in &chunks {
            let b = GraphBatch::new(chunk.iter().copied(), &Device::Cpu)?;
            let out = gin.forward(&b)?;
            std::hint::black_box(out);
            done += chunk.len();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"graphs_per_s\": {:.1}, \"graphs\": {done}, \"seconds\": {elapsed:.3}, \"first_batch_sum\": {first_sum}}}",
        done as f64 / elapsed
    );
    Ok(())
}
