//! `instructmol similarity`: Tanimoto similarity of molecule pairs, one JSON line per pair.

use super::lines::{run_whole_lines, to_json, LineIo};
use crate::chem::fingerprints::{similarity, FpKind, FpOptions};
use crate::chem::mol_from_smiles;
use anyhow::{bail, Result};
use clap::ValueEnum;
use serde::Serialize;

/// Fingerprint choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fp {
    /// Morgan environments (counts, as RDKit `GetMorganFingerprint`; hashed bits with `--bits`).
    Morgan,
    /// MACCS keys (RDKit `GenMACCSKeys`).
    Maccs,
    /// RDKit topological fingerprint (`RDKFingerprint`, 2048 bits unless `--bits`).
    Rdkit,
}

/// Arguments of `instructmol similarity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fingerprint to compare with.
    #[arg(long, value_enum, default_value = "morgan")]
    pub fp: Fp,
    /// Morgan radius.
    #[arg(long, default_value_t = 2)]
    pub radius: u32,
    /// Bit-vector length: Morgan hashed into this many bits instead of counts; RDKit
    /// fingerprint size. Not used by MACCS.
    #[arg(long)]
    pub bits: Option<usize>,
    /// Input (`SMILES_A<TAB>SMILES_B` per line), output and threads.
    #[command(flatten)]
    pub io: LineIo,
}

#[derive(Serialize)]
struct OkLine<'a> {
    a: &'a str,
    b: &'a str,
    tanimoto: f64,
}

#[derive(Serialize)]
struct ErrLine<'a> {
    a: &'a str,
    b: &'a str,
    error: String,
}

/// Splits a pair line into its two SMILES: tab-separated, or failing that whitespace-separated.
fn split_pair(line: &str) -> Option<(&str, &str)> {
    let mut fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    if fields.len() == 1 {
        fields = line.split_whitespace().collect();
    }
    match fields.as_slice() {
        [a, b] => Some((a, b)),
        _ => None,
    }
}

/// The similarity of one pair line, or the error text.
fn score(line: &str, opts: &FpOptions) -> std::result::Result<String, String> {
    let Some((a, b)) = split_pair(line) else {
        return Err(to_json(&ErrLine {
            a: line,
            b: "",
            error: "expected two SMILES separated by a tab".into(),
        }));
    };
    let fail = |which: &str, e: &dyn std::fmt::Display| {
        to_json(&ErrLine {
            a,
            b,
            error: format!("SMILES {which}: {e}"),
        })
    };
    let ma = mol_from_smiles(a).map_err(|e| fail("a", &e))?;
    let mb = mol_from_smiles(b).map_err(|e| fail("b", &e))?;
    Ok(to_json(&OkLine {
        a,
        b,
        tanimoto: similarity(&ma, &mb, opts),
    }))
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    if args.bits == Some(0) {
        bail!("--bits must be at least 1");
    }
    let kind = match args.fp {
        Fp::Morgan => FpKind::Morgan,
        Fp::Maccs => FpKind::Maccs,
        Fp::Rdkit => FpKind::Rdkit,
    };
    if kind == FpKind::Maccs && args.bits.is_some() {
        bail!("--bits does not apply to MACCS keys (always 166 keys)");
    }
    let opts = FpOptions {
        kind,
        radius: args.radius,
        bits: args.bits,
    };
    let tally = run_whole_lines(
        &args.io,
        |line| score(line, &opts),
        |line, error| {
            to_json(&ErrLine {
                a: line,
                b: "",
                error: error.to_string(),
            })
        },
    )?;
    tally.report(format_args!(
        "similarity: {} pairs scored, {} invalid (see \"error\" lines)",
        tally.ok, tally.failed
    ));
    Ok(())
}
