//! `instructmol featurize`: SMILES -> InstructMol graph features, one JSON line per molecule.

use super::lines::{run_lines, to_json, LineIo};
use crate::chem::features::featurize_smiles;
use anyhow::Result;
use serde::Serialize;

/// Arguments of `instructmol featurize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input, output and threads.
    #[command(flatten)]
    pub io: LineIo,
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
    let tally = run_lines(&args.io, featurize_line, |smiles, error| {
        to_json(&ErrorLine {
            smiles,
            error: error.to_string(),
        })
    })?;
    tally.report(format_args!(
        "featurize: {} molecules featurized, {} invalid (see \"error\" lines)",
        tally.ok, tally.failed
    ));
    Ok(())
}
