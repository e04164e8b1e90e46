//! `instructmol featurize`: SMILES -> InstructMol graph features, one JSON line per molecule.

use super::lines::{default_threads, run_lines, to_json};
use crate::chem::features::featurize_smiles;
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `instructmol featurize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input file with one SMILES per line (extra whitespace-separated columns are ignored); `-` for stdin.
    #[arg(long, short, default_value = "-")]
    pub input: PathBuf,
    /// Output JSON-lines file; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Serialize)]
struct FeatureLine<'a> {
    smiles: &'a str,
    #[serde(flatten)]
    features: crate::chem::features::GraphFeatures,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    smiles: &'a str,
    error: String,
}

/// Featurizes one SMILES into its output JSON line (`Err` holds the error line).
pub fn featurize_line(smiles: &str) -> std::result::Result<String, String> {
    match featurize_smiles(smiles) {
        Ok(features) => Ok(to_json(&FeatureLine { smiles, features })),
        Err(e) => Err(to_json(&ErrorLine {
            smiles,
            error: e.to_string(),
        })),
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let threads = args.threads.unwrap_or_else(default_threads);
    let tally = run_lines(&args.input, &args.output, threads, featurize_line)?;
    eprintln!(
        "featurize: {} molecules featurized, {} invalid (see \"error\" lines)",
        tally.ok, tally.failed
    );
    Ok(())
}
