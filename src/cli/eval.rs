//! `instructmol eval`: scores a predictions file on one of the paper's benchmarks.
//!
//! `--predictions FILE.jsonl` holds one `{"id", "prediction", "reference"}` object per line
//! (plus `prob_yes` for yes/no tasks, `property` for QM9). The metrics go to stdout as JSON,
//! or with `--out DIR` to `DIR/metrics.json` and `DIR/report.md` (Markdown table with the
//! paper's rows beside ours, also printed to stdout).
//!
//! `--run DIR --data FILE --out DIR` first answers every question of a prepared test file
//! with the trained run (greedy by default, batched), writes `DIR/predictions.jsonl` (with
//! `prob_yes` for the yes/no tasks and `property` for QM9), then scores it the same way.

use crate::model::quant::QuantMode;
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
    #[arg(long, conflicts_with = "run", required_unless_present = "run")]
    pub predictions: Option<PathBuf>,
    /// A trained run directory (or checkpoint) to answer --data with before scoring; decoding is
    /// greedy unless --temperature is given.
    #[arg(long, requires = "data", requires = "out")]
    pub run: Option<PathBuf>,
    /// With --run: the prepared test file (JSON lines as `data prepare` writes them).
    #[arg(long, requires = "run")]
    pub data: Option<PathBuf>,
    /// Folder for metrics.json and report.md (and predictions.jsonl with --run); created if missing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Generation settings of --run.
    #[command(flatten)]
    pub generation: EvalGeneration,
    /// Scoring options.
    #[command(flatten)]
    pub scoring: ScoringOptions,
}

/// How `eval --run` generates.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalGeneration {
    /// Rows decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Answer only the first N rows of --data.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most tokens per answer (default: 16 for bace/bbbp/hiv, 32 for qm9, 256 otherwise).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Sampling temperature (default 0: greedy, so scores are reproducible).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Nucleus sampling threshold (1 keeps every token).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampler (row i uses seed + i).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Penalties and stop strings (default: none, as the reference evaluation decodes).
    #[command(flatten)]
    pub decoding: super::generate::DecodingArgs,
    /// Replaces the run's base model path.
    #[arg(long)]
    pub model: Option<String>,
    /// MoleculeSTM's `molecule_model.pth`, for a --run folder of the official InstructMol
    /// code that holds no graph-encoder weights.
    #[arg(long)]
    pub graph_encoder: Option<PathBuf>,
    /// Weight and compute dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Decoder matrices: quantize at load to q8_0, q4_k, q4_0, q4_1, q5_0, q5_1, q5_k, q6_k,
    /// q3_k or q2_k, or `none` to dequantize a GGUF. Default: as the file stores them (a GGUF
    /// stays quantized, on the CPU; LoRA adapters stay unmerged on quantized matrices).
    #[arg(long)]
    pub quantize: Option<String>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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
    out_dir(dir)?;
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
    let task = eval::parse_task(&args.task)?;
    let predictions = match (&args.predictions, &args.run, &args.data, &args.out) {
        (Some(p), _, _, _) => p.clone(),
        (None, Some(run), Some(data), Some(out)) => {
            generate_predictions(task, run, data, out, &args.generation)?
        }
        _ => bail!("give --predictions FILE.jsonl, or --run DIR --data FILE.jsonl --out DIR"),
    };
    let rows = eval::read_predictions(&predictions)?;
    eprintln!("eval: {} predictions for {task}", rows.len());
    let label = match &args.run {
        Some(run) => run.display().to_string(),
        None => predictions
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ours".into()),
    };
    score_and_write(task, &rows, &args.scoring, args.out.as_deref(), &label)
}

/// `--run`: answers every row of `data` and writes `out/predictions.jsonl`; returns its path.
fn generate_predictions(
    task: Task,
    run: &Path,
    data: &Path,
    out: &Path,
    g: &EvalGeneration,
) -> Result<PathBuf> {
    use crate::infer::assistant::Assistant;
    use crate::infer::rows::{read_rows, BatchOptions};
    use crate::infer::{GenerationConfig, YesNoIds};

    if g.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let yes_no_task = matches!(task, Task::Bace | Task::Bbbp | Task::Hiv);
    let max_new_tokens = g.max_new_tokens.unwrap_or(match task {
        Task::Bace | Task::Bbbp | Task::Hiv => 16,
        Task::Qm9 => 32,
        _ => 256,
    });
    let sampling = g.decoding.sampling(
        g.temperature,
        g.top_p,
        g.seed,
        super::generate::Penalties::OFF,
    )?;
    let stop_strings = g.decoding.stop.clone();
    let mut rows = read_rows(data)?;
    if let Some(n) = g.limit {
        rows.truncate(n);
    }
    if rows.is_empty() {
        bail!("{}: no rows to answer", data.display());
    }
    if let Some(row) = rows.iter().find(|r| r.reference.is_none()) {
        bail!(
            "{}, line {}: no reference answer (a gpt turn) to score against",
            data.display(),
            row.line
        );
    }
    let device = crate::model::parse_device(&g.device)?;
    let dtype = crate::model::parse_dtype(&g.dtype)?;
    let start = std::time::Instant::now();
    let assistant = Assistant::from_run(
        run,
        g.model.as_deref(),
        g.graph_encoder.as_deref(),
        (
            dtype,
            &device,
            QuantMode::from_option(g.quantize.as_deref())?,
        ),
    )?;
    eprintln!(
        "eval: loaded {} on {} in {:.2} s; answering {} rows of {}",
        assistant.checkpoint.display(),
        assistant.base,
        start.elapsed().as_secs_f64(),
        rows.len(),
        data.display()
    );
    let yes_no = match yes_no_task.then(|| YesNoIds::from_tokenizer(&assistant.tokenizer)) {
        Some(Ok(ids)) => Some(ids),
        Some(Err(e)) => {
            eprintln!("eval: no prob_yes, only hard labels are scored: {e}");
            None
        }
        None => None,
    };
    let options = BatchOptions {
        generation: GenerationConfig {
            max_new_tokens,
            sampling,
            stop_ids: assistant.stop_ids(),
            stop_strings,
            logprobs: None,
        },
        batch_size: g.batch_size,
        yes_no,
    };
    let answered = super::generate::answer_rows(
        &assistant.model,
        &assistant.tokenizer,
        &rows,
        &options,
        |row| assistant.row_prompt(row),
    )?;
    out_dir(out)?;
    let path = out.join("predictions.jsonl");
    let mut text = String::new();
    for row in &answered {
        let mut v = serde_json::to_value(row)?;
        if yes_no_task && row.prob_yes.is_none() {
            // A refused row (invalid molecule) has no logits: it ranks as undecided.
            v["prob_yes"] = serde_json::json!(0.5);
        }
        if task == Task::Qm9 {
            if let Some(p) = crate::data::qm9::PROPERTIES
                .iter()
                .find(|p| row.id.ends_with(&format!("-{p}")))
            {
                v["property"] = serde_json::json!(p);
            }
        }
        text.push_str(&serde_json::to_string(&v)?);
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("eval: wrote {}", path.display());
    Ok(path)
}

/// Creates the `--out` directory; a file of that name is refused.
fn out_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--out {} is a file: give a directory for the results",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create --out {}", dir.display()))
}
