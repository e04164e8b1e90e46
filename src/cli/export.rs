//! `instructmol export --format llava-graph RUN OUT`: a run (or checkpoint, or model folder) of
//! ours written in the layout of the official InstructMol code, so that its `builder.py` and
//! evaluation scripts load it (see [`crate::model::llava_graph::export`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::instructmol::PROJECTOR_FILE;
use crate::model::llava_graph::{self, ExportBase};
use crate::run::Checkpoint;

/// Output layouts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The official InstructMol (LLaVA) files: `mm_projector.bin` after stage 1; a PEFT folder
    /// with `adapter_model.bin` and `non_lora_trainables.bin` after stage 2; `config.json`.
    LlavaGraph,
}

/// Arguments of `instructmol export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layout to write.
    #[arg(long, value_enum, default_value = "llava-graph")]
    pub format: Format,
    /// A run directory (its latest checkpoint), a checkpoint directory, or a model folder
    /// (projector.safetensors, gin.safetensors, adapter/).
    pub run: PathBuf,
    /// The folder to write (created; must be empty if it exists).
    pub out: PathBuf,
    /// The base model (a Hugging Face directory with config.json). Default: the run's.
    #[arg(long)]
    pub base: Option<String>,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let Format::LlavaGraph = args.format;
    if args.out.is_file() {
        bail!(
            "{} is a file: give a directory to export into",
            args.out.display()
        );
    }
    if args
        .out
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!(
            "{} is not empty: give a new or empty directory",
            args.out.display()
        );
    }
    let plain_model = args.run.join(PROJECTOR_FILE).exists()
        && !args.run.join(crate::run::checkpoint::STATE_FILE).exists();
    let (model_dir, base, graph_tuned) = if plain_model {
        let base = args.base.clone().with_context(|| {
            format!(
                "{} is a model folder without a run configuration: pass --base BASE_MODEL_DIR",
                args.run.display()
            )
        })?;
        (args.run.clone(), base, true)
    } else {
        let ckpt = Checkpoint::open_model(&args.run)?;
        let cfg = ckpt.config()?;
        let base = args.base.clone().unwrap_or(cfg.model.llm.clone());
        (ckpt.dir, base, cfg.model.train_gin)
    };
    let config = base_config(&base)?;
    let written = llava_graph::export(
        &model_dir,
        &ExportBase {
            config: &config,
            name: &base,
            graph_tuned,
        },
        &args.out,
    )
    .with_context(|| format!("cannot export {}", model_dir.display()))?;
    eprintln!(
        "exported {} in the official InstructMol layout:",
        model_dir.display()
    );
    let stage2 = written.iter().any(|f| f.ends_with("adapter_model.bin"));
    for f in written {
        eprintln!("  {}", f.display());
    }
    // The official builder.py picks its loading path from the folder's name.
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let wanted: &[&str] = if stage2 {
        &["llava", "lora"]
    } else {
        &["llava"]
    };
    if !wanted.iter().all(|w| name.contains(w)) {
        eprintln!(
            "note: the official code loads this folder only if its name contains {} \
             (e.g. llava-moleculestm-vicuna-7b{}); rename it before using it there",
            wanted.join(" and "),
            if stage2 { "-lora" } else { "-pretrain" }
        );
    }
    Ok(())
}

/// The `config.json` of the base model `spec`.
fn base_config(spec: &str) -> Result<PathBuf> {
    let dir = Path::new(spec);
    if !dir.is_dir() {
        bail!(
            "the base model `{spec}` is not a directory: the official layout needs a Hugging Face \
             model directory (config.json); pass --base DIR"
        );
    }
    Ok(dir.join("config.json"))
}
