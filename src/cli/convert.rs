//! `instructmol convert`: SMILES <-> SELFIES and canonical SMILES, one JSON line per molecule.

use super::lines::{run_lines, to_json, LineIo};
use crate::chem::{canon, mol_from_smiles, selfies, ChemError};
use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

/// Output notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// SELFIES, identical to the `selfies` 2.1 package's encoder.
    Selfies,
    /// SMILES (from SELFIES input: the decoder's SMILES; from SMILES input: the input, validated).
    Smiles,
    /// Canonical isomeric SMILES (stereo and isotopes kept).
    Canonical,
    /// Canonical SMILES without stereo or isotopes.
    CanonicalNonisomeric,
}

/// Input notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// SMILES.
    Smiles,
    /// SELFIES.
    Selfies,
}

/// Arguments of `instructmol convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to convert to.
    #[arg(long)]
    pub to: Target,
    /// What the input lines are (default: selfies for `--to smiles`, smiles otherwise).
    #[arg(long)]
    pub from: Option<Source>,
    /// Input, output and threads.
    #[command(flatten)]
    pub io: LineIo,
}

#[derive(Serialize)]
struct OkLine<'a> {
    input: &'a str,
    output: String,
}

#[derive(Serialize)]
struct ErrLine<'a> {
    input: &'a str,
    error: String,
}

/// Converts one molecule written in `from` notation to `to` notation.
pub fn convert(text: &str, from: Source, to: Target) -> Result<String, ChemError> {
    let smiles = match from {
        Source::Smiles => text.to_string(),
        Source::Selfies => selfies::decode(text)?,
    };
    match to {
        Target::Selfies => match from {
            Source::Selfies => Ok(text.to_string()),
            Source::Smiles => selfies::encode(&smiles),
        },
        Target::Smiles => {
            mol_from_smiles(&smiles)?;
            Ok(smiles)
        }
        Target::Canonical => Ok(canon::canonical_smiles(&mol_from_smiles(&smiles)?, true)),
        Target::CanonicalNonisomeric => {
            Ok(canon::canonical_smiles(&mol_from_smiles(&smiles)?, false))
        }
    }
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let from = args.from.unwrap_or(match args.to {
        Target::Smiles => Source::Selfies,
        _ => Source::Smiles,
    });
    let to = args.to;
    let error_line = |input: &str, error: String| to_json(&ErrLine { input, error });
    let tally = run_lines(
        &args.io,
        |input| match convert(input, from, to) {
            Ok(output) => Ok(to_json(&OkLine { input, output })),
            Err(e) => Err(error_line(input, e.to_string())),
        },
        |input, error| error_line(input, error.to_string()),
    )?;
    tally.report(format_args!(
        "convert: {} converted, {} invalid (see \"error\" lines)",
        tally.ok, tally.failed
    ));
    Ok(())
}
