//! `instructmol serve`: trained runs behind an OpenAI-compatible API and a web page (see
//! [`crate::serve`]). Runs that share a base model share one loaded copy of it: each keeps
//! only its LoRA adapter (unmerged), projector and GIN.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::infer::assistant::{Assistant, LoadedBase, RunBase};
use crate::infer::YesNoIds;
use crate::model::quant::QuantMode;
use crate::model::{parse_device, parse_dtype};
use crate::run::Checkpoint;
use crate::serve::engine::{Engine, EngineConfig, ServedModel};
use crate::serve::http::{self, AppState, DEFAULT_BODY_LIMIT};

/// Arguments of `instructmol serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trained run to serve, as `NAME=RUN` or `RUN` (named after its directory); repeat for
    /// several (per-task adapters on one base model share the base). The first is the default.
    #[arg(long = "run", required = true)]
    pub runs: Vec<String>,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Most requests decoding at once (continuous batching).
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Most requests waiting for a slot; more are answered 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every /v1 request (also from INSTRUCTMOL_API_KEY).
    #[arg(long, env = "INSTRUCTMOL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Replaces the runs' base model path.
    #[arg(long)]
    pub model: Option<String>,
    /// MoleculeSTM's `molecule_model.pth`, for official InstructMol folders without GIN weights.
    #[arg(long)]
    pub graph_encoder: Option<PathBuf>,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Decoder matrices: quantize at load (q8_0, q4_k, ...), `none` to dequantize a GGUF;
    /// default as stored.
    #[arg(long)]
    pub quantize: Option<String>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `NAME=RUN` or `RUN`.
fn name_and_path(spec: &str) -> Result<(String, PathBuf)> {
    if let Some((name, path)) = spec.split_once('=') {
        if name.is_empty() || path.is_empty() {
            bail!("--run {spec}: expected NAME=RUN_DIR or RUN_DIR");
        }
        return Ok((name.to_string(), PathBuf::from(path)));
    }
    let path = PathBuf::from(spec);
    let name = path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| spec.to_string());
    Ok((name, path))
}

/// The task a run was trained on: the `task` of the first record of its training data.
fn run_task(run: &Path) -> Option<String> {
    let cfg = Checkpoint::open_model(run).ok()?.config().ok()?;
    let file = std::fs::File::open(&cfg.data.train).ok()?;
    let line = std::io::BufReader::new(file).lines().next()?.ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v.get("task")?.as_str().map(str::to_string)
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    if args.max_batch == 0 || args.queue == 0 {
        bail!("--max-batch and --queue must be at least 1");
    }
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let quantize = QuantMode::from_option(args.quantize.as_deref())?;
    let mut specs = Vec::new();
    for spec in &args.runs {
        let (name, path) = name_and_path(spec)?;
        if specs
            .iter()
            .any(|(n, _, _): &(String, PathBuf, RunBase)| *n == name)
        {
            bail!("--run: two runs are named `{name}`: name them with NAME=RUN");
        }
        let base = Assistant::base_of(&path, args.model.as_deref(), quantize)
            .with_context(|| format!("--run {spec}"))?;
        specs.push((name, path, base));
    }
    let start = Instant::now();
    // Each distinct base is loaded once; its clones share the weights.
    let mut bases: Vec<(RunBase, LoadedBase)> = Vec::new();
    let mut models = Vec::new();
    for (name, path, base) in &specs {
        let loaded = match bases.iter().find(|(b, _)| b == base) {
            Some((_, l)) => l.clone(),
            None => {
                let l = base.load(dtype, &device)?;
                bases.push((base.clone(), l.clone()));
                l
            }
        };
        // A base used by one run only: merge its adapter (no per-token adapter cost).
        let merge = specs.iter().filter(|(_, _, b)| b == base).count() == 1;
        let assistant = Assistant::on_base(path, loaded, args.graph_encoder.as_deref(), merge)
            .with_context(|| format!("--run {}", path.display()))?;
        let yes_no = YesNoIds::from_tokenizer(&assistant.tokenizer).ok();
        let stop_ids = assistant.stop_ids();
        eprintln!(
            "serve: `{name}` = {} on {}{}",
            assistant.checkpoint.display(),
            assistant.base,
            if merge {
                ""
            } else {
                " (shared base, adapter unmerged)"
            }
        );
        models.push(ServedModel {
            task: run_task(path),
            name: name.clone(),
            assistant,
            yes_no,
            stop_ids,
        });
    }
    eprintln!(
        "serve: {} run(s) on {} base model(s) loaded in {:.1} s",
        models.len(),
        bases.len(),
        start.elapsed().as_secs_f64()
    );
    drop(bases);
    let models = Arc::new(models);
    let engine = Engine::start(
        models.clone(),
        EngineConfig {
            max_batch: args.max_batch,
            queue: args.queue,
        },
    )?;
    let state = Arc::new(AppState {
        models,
        engine,
        api_key: args.api_key.filter(|k| !k.is_empty()),
        counter: AtomicU64::new(0),
    });
    let router = http::router(state, args.body_limit);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!("serve: listening on http://{local}");
        http::serve(router, listener).await?;
        Ok(())
    })
}
