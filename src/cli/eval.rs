//! `instructmol eval`: scores a predictions file on one of the paper's benchmarks.
//!
//! `--predictions FILE.jsonl` holds one `{"id", "prediction", "reference"}` object per line
//! (plus `prob_yes` for yes/no tasks, `property` for QM9). The metrics go to stdout as JSON,
//! or with `--out DIR` to `DIR/metrics.json` and `DIR/report.md` (Markdown table with the
//! paper's rows beside ours, also printed to stdout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::eval::{self, report, Task, TextResources, TextTokenizer, WordNet};

/// Arguments of `instructmol eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Benchmark: chebi20, bace, bbbp, hiv, qm9, retrosynthesis, forward or reagent.
    #[arg(long)]
    pub task: String,
    /// Predictions to score (JSON lines with id, prediction, reference).
    #[arg(long)]
    pub predictions: PathBuf,
    /// Folder for metrics.json and report.md (created if missing).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// WordNet 3.0 dict folder for METEOR (default: $INSTRUCTMOL_WORDNET, ./assets/wordnet,
    /// the source tree's assets/wordnet, /usr/share/wordnet). Install: scripts/setup_wordnet.sh
    #[arg(long)]
    pub wordnet: Option<PathBuf>,
    /// Compute METEOR without its WordNet synonym stage instead of failing when no WordNet is found.
    #[arg(long)]
    pub no_wordnet: bool,
    /// WordPiece vocab.txt to use instead of the embedded SciBERT uncased vocabulary.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
}

/// Where WordNet is looked for when `--wordnet` is not given.
fn wordnet_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(env) = std::env::var_os("INSTRUCTMOL_WORDNET") {
        dirs.push(PathBuf::from(env));
    }
    dirs.push(PathBuf::from("assets/wordnet"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/wordnet"));
    dirs.push(PathBuf::from("/usr/share/wordnet"));
    dirs
}

fn load_wordnet(args: &Args) -> Result<Option<WordNet>> {
    if let Some(dir) = &args.wordnet {
        return Ok(Some(WordNet::load(dir)?));
    }
    if args.no_wordnet {
        return Ok(None);
    }
    for dir in wordnet_candidates() {
        if dir.join("index.noun").is_file() {
            eprintln!("eval: WordNet from {}", dir.display());
            return Ok(Some(WordNet::load(&dir)?));
        }
    }
    bail!(
        "METEOR needs WordNet 3.0 and none was found (looked in $INSTRUCTMOL_WORDNET, ./assets/wordnet, \
         the source tree's assets/wordnet, /usr/share/wordnet): run `bash scripts/setup_wordnet.sh`, \
         pass --wordnet DIR, or pass --no-wordnet to score METEOR without synonyms"
    )
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let task: Task = args.task.parse()?;
    let rows = eval::read_predictions(&args.predictions)?;
    eprintln!("eval: {} predictions for {task}", rows.len());
    let text = if task == Task::Chebi20 {
        let tokenizer = match &args.vocab {
            Some(path) => TextTokenizer::from_vocab_file(path)?,
            None => TextTokenizer::scibert()?,
        };
        Some(TextResources::new(tokenizer, load_wordnet(&args)?))
    } else {
        None
    };
    let metrics = eval::score(task, &rows, text.as_ref())?;
    let json = serde_json::to_string_pretty(&report::metrics_json(&metrics))?;
    match &args.out {
        None => println!("{json}"),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let label = args
                .predictions
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "ours".into());
            let md = report::markdown(&metrics, &label);
            let json_path = dir.join("metrics.json");
            let md_path = dir.join("report.md");
            std::fs::write(&json_path, json + "\n")
                .with_context(|| format!("cannot write {}", json_path.display()))?;
            std::fs::write(&md_path, &md)
                .with_context(|| format!("cannot write {}", md_path.display()))?;
            print!("{md}");
            eprintln!(
                "eval: wrote {} and {}",
                json_path.display(),
                md_path.display()
            );
        }
    }
    Ok(())
}
