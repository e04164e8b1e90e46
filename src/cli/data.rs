//! `instructmol data prepare`: raw benchmark files -> LLaVA-style JSONL per split and
//! `prepare_report.json`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::data::prepare::{prepare, write, PrepareOptions, SplitMethod, Task};
use crate::data::prompts::Variant;

/// Arguments of `instructmol data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `instructmol data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Turn a raw dataset into training JSONL (one file per split) and a report of bad rows.
    Prepare(PrepareArgs),
}

/// Arguments of `instructmol data prepare`.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// Task: chebi20, bace, bbbp, hiv, qm9, retrosynthesis, forward, reagent, pubchem-pairs
    /// (a CID/SMILES/caption TSV, or the official stage-1 data, OpenMol/PubChemSFT `all_clean.json`).
    #[arg(long, value_parser = |s: &str| s.parse::<Task>())]
    pub task: Task,
    /// Raw input: ChEBI-20/caption TSV, MoleculeNet CSV(.gz), QM9 CSV, a USPTO Liu
    /// `*_sources` file or their folder, or a Mol-Instructions `.json` file.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// g: graph only; gs: graph plus the SELFIES text in the question.
    #[arg(long, default_value = "g", value_parser = |s: &str| s.parse::<Variant>())]
    pub variant: Variant,
    /// scaffold or random 80/10/10 split (default: scaffold for MoleculeNet, random for QM9,
    /// the input's own split otherwise).
    #[arg(long, value_parser = |s: &str| s.parse::<SplitMethod>())]
    pub split: Option<SplitMethod>,
    /// Seed of the random split and of the question choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `instructmol data ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        DataCommand::Prepare(a) => run_prepare(a),
    }
}

fn run_prepare(a: PrepareArgs) -> Result<()> {
    let opts = PrepareOptions {
        task: a.task,
        input: a.input,
        variant: a.variant,
        split: a.split,
        seed: a.seed,
    };
    let prepared = prepare(&opts).with_context(|| format!("preparing {}", opts.task.name()))?;
    let files = write(&prepared, &a.out)?;
    let r = &prepared.report;
    eprintln!(
        "{}: {} rows read, split {}, {} unusable, {} duplicates skipped, {} SELFIES from canonical SMILES",
        r.task, r.rows_read, r.split, r.invalid_total, r.duplicates, r.selfies_from_canonical
    );
    for (reason, c) in &r.invalid {
        let lines: Vec<String> = c.first.iter().map(|(l, _)| l.to_string()).collect();
        eprintln!(
            "  {reason}: {} (first at lines {})",
            c.count,
            lines.join(", ")
        );
    }
    if r.repeated_molecules > 0 {
        eprintln!(
            "  {} rows repeat a molecule of an earlier row (kept; each molecule's rows are in one split)",
            r.repeated_molecules
        );
    }
    if r.cross_split_molecules > 0 {
        eprintln!(
            "  warning: the input's own split puts {} molecules in more than one split",
            r.cross_split_molecules
        );
    }
    for (name, n) in &r.written {
        eprintln!("  {name}: {n} examples");
    }
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
