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
}

/// Runs one stage and prints its summary (JSON) on stdout.
pub fn run(stage: Stage, args: Args) -> anyhow::Result<()> {
    let cfg = RunConfig::load(&args.config, &args.overrides)?;
    if cfg.train.threads > 0 {
        // candle's CPU kernels size their thread pools from this variable at first use.
        std::env::set_var("RAYON_NUM_THREADS", cfg.train.threads.to_string());
    }
    let summary = trainer::run(stage, &cfg, args.resume.as_deref())
        .with_context(|| format!("{} with {}", stage.name(), args.config.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
