//! ChEBI-20 description metrics, as InstructMol's `eval_molcap.py` computes them.
//!
//! BLEU-2/BLEU-4 (corpus level) and METEOR (mean of per-sample scores) on SciBERT WordPiece
//! tokens; ROUGE-1/2/L F-measures (means) on the raw strings with rouge-score's tokenizer.

use super::bleu::corpus_bleu;
use super::meteor::meteor;
use super::wordnet::WordNet;
use super::wordpiece::TextTokenizer;
use super::{rouge, EvalError, Metric, Prediction, Task, TaskMetrics};

/// What the text metrics need: the WordPiece tokenizer and (for METEOR's synonym stage) WordNet.
#[derive(Debug)]
pub struct TextResources {
    /// SciBERT WordPiece tokenizer.
    pub tokenizer: TextTokenizer,
    /// WordNet 3.0; `None` runs METEOR without its synonym stage (noted in the report).
    pub wordnet: Option<WordNet>,
}

impl TextResources {
    /// Bundles a tokenizer and an optional WordNet.
    pub fn new(tokenizer: TextTokenizer, wordnet: Option<WordNet>) -> Self {
        Self { tokenizer, wordnet }
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Scores ChEBI-20 predictions (`prediction` = generated description, `reference` = ground truth).
pub fn score(rows: &[Prediction], res: &TextResources) -> Result<TaskMetrics, EvalError> {
    let mut hyps = Vec::with_capacity(rows.len());
    let mut refs = Vec::with_capacity(rows.len());
    let (mut meteors, mut r1, mut r2, mut rl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let h = res.tokenizer.tokenize(&row.prediction)?;
        let g = res.tokenizer.tokenize(&row.reference)?;
        meteors.push(meteor(&g, &h, res.wordnet.as_ref()));
        let r = rouge::score(&row.reference, &row.prediction);
        r1.push(r.rouge1);
        r2.push(r.rouge2);
        rl.push(r.rouge_l);
        hyps.push(h);
        refs.push(g);
    }
    let mut notes = vec![
        "BLEU and METEOR on SciBERT uncased WordPiece tokens (first 512; [PAD]/[CLS]/[SEP] dropped), as InstructMol's eval_molcap.py".to_string(),
    ];
    match &res.wordnet {
        Some(wn) => notes.push(format!("METEOR synonym stage: WordNet from {}", wn.dir.display())),
        None => notes.push(
            "METEOR WITHOUT the WordNet synonym stage (no WordNet given): slightly lower than the reference".to_string(),
        ),
    }
    Ok(TaskMetrics {
        task: Task::Chebi20,
        rows: rows.len(),
        metrics: vec![
            Metric::number("bleu2", corpus_bleu(&refs, &hyps, &[0.5, 0.5])),
            Metric::number("bleu4", corpus_bleu(&refs, &hyps, &[0.25; 4])),
            Metric::number("rouge1", mean(&r1)),
            Metric::number("rouge2", mean(&r2)),
            Metric::number("rougeL", mean(&rl)),
            Metric::number("meteor", mean(&meteors)),
        ],
        notes,
    })
}
