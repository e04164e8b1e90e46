//! `instructmol pretrain` and `instructmol finetune`: the two training stages.

use std::path::PathBuf;

use anyhow::Context;

use crate::run::RunConfig;
use crate::train::trainer::{self, Stage};

/// Arguments shared by both stages.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run configuration (TOML; see configs/).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config field, e.g. `--set train.lr=1e-4 --set model.device=cuda` (repeatable).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub overrides: Vec<String>,
    /// Continue a run from its latest checkpoint (run directory) or from a checkpoint directory.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Replace the run already in the config's output_dir (its checkpoints, log and reports
    /// are deleted first). Without --resume or --overwrite, output_dir must be empty.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
}

/// Runs one stage and prints its summary (JSON) on stdout.
pub fn run(stage: Stage, args: Args) -> anyhow::Result<()> {
    let cfg = RunConfig::load(&args.config, &args.overrides)?;
    if cfg.train.threads > 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if cfg.train.threads > cores {
            eprintln!(
                "train.threads = {} is more than the {cores} cores here; using {cores}",
                cfg.train.threads
            );
            cores
        } else {
            cfg.train.threads
        };
        // candle's CPU kernels size their thread pools from this variable at first use.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let summary = trainer::run(stage, &cfg, args.resume.as_deref(), args.overwrite)
        .with_context(|| format!("{} with {}", stage.name(), args.config.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
