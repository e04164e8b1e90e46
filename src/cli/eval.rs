//! `instructmol eval`: scores a predictions file on one of the paper's benchmarks.
//!
//! `--predictions FILE.jsonl` holds one `{"id", "prediction", "reference"}` object per line
//! (plus `prob_yes` for yes/no tasks, `property` for QM9). The metrics go to stdout as JSON,
//! or with `--out DIR` to `DIR/metrics.json` and `DIR/report.md` (Markdown table with the
//! paper's rows beside ours, also printed to stdout).
//!
//! A generating mode (`--run DIR --data FILE`) can reuse [`ScoringOptions`] and
//! [`score_and_write`] on the rows it generates.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::eval::{self, report, Prediction, Task, TextResources, TextTokenizer, WordNet};

/// Options that change how predictions are scored (shared by every eval mode).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoringOptions {
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
    /// Scoring options.
    #[command(flatten)]
    pub scoring: ScoringOptions,
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

impl ScoringOptions {
    fn wordnet(&self) -> Result<Option<WordNet>> {
        if let Some(dir) = &self.wordnet {
            return Ok(Some(WordNet::load(dir)?));
        }
        if self.no_wordnet {
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

    /// The tokenizer and WordNet the text task needs; `None` for the other tasks.
    pub fn text_resources(&self, task: Task) -> Result<Option<TextResources>> {
        if task != Task::Chebi20 {
            return Ok(None);
        }
        let tokenizer = match &self.vocab {
            Some(path) => TextTokenizer::from_vocab_file(path)?,
            None => TextTokenizer::scibert()?,
        };
        Ok(Some(TextResources::new(tokenizer, self.wordnet()?)))
    }
}

/// Scores `rows` and writes the results: JSON to stdout, or with `out` `metrics.json` and
/// `report.md` there (the Markdown also to stdout). `label` names our row in the table.
pub fn score_and_write(
    task: Task,
    rows: &[Prediction],
    options: &ScoringOptions,
    out: Option<&Path>,
    label: &str,
) -> Result<()> {
    let text = options.text_resources(task)?;
    let metrics = eval::score(task, rows, text.as_ref())?;
    let json = serde_json::to_string_pretty(&report::metrics_json(&metrics))?;
    let Some(dir) = out else {
        println!("{json}");
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let md = report::markdown(&metrics, label);
    let json_path = dir.join("metrics.json");
    let md_path = dir.join("report.md");
    std::fs::write(&json_path, json + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    print!("{md}");
    eprintln!(
        "eval: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let task: Task = args.task.parse()?;
    let rows = eval::read_predictions(&args.predictions)?;
    eprintln!("eval: {} predictions for {task}", rows.len());
    let label = args
        .predictions
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ours".into());
    score_and_write(task, &rows, &args.scoring, args.out.as_deref(), &label)
}
