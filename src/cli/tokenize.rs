//! `instructmol tokenize`: text -> token ids (or ids -> text with `--decode`) with a model's
//! tokenizer, one JSON line per input line, in input order. Only the tokenizer files are read
//! (a directory's tokenizer.json or sentencepiece tokenizer.model, or a GGUF file's metadata),
//! never the weights. A bad line becomes an error line naming its line number; the run goes on.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::lines::{open_input, to_json, Output};
use crate::model::loader::load_tokenizer;
use crate::model::ModelTokenizer;

/// Arguments of `instructmol tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose tokenizer to use: a Hugging Face directory (tokenizer.json, or a
    /// sentencepiece tokenizer.model with tokenizer_config.json), a .gguf file, or a repository id
    /// in the local Hugging Face cache. Weights are not needed.
    #[arg(long)]
    pub model: String,
    /// JSON lines `{"text": ...}` (with --decode: `{"ids": [...]}`); `-` for stdin.
    #[arg(long, short, default_value = "-")]
    pub input: PathBuf,
    /// JSON lines `{"text", "ids"}` (with --decode: `{"ids", "text"}`); `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// Decode ids to text (special tokens are left out, as in generated text).
    #[arg(long)]
    pub decode: bool,
    /// Encode without the special tokens the tokenizer adds for generation (BOS).
    #[arg(long)]
    pub no_special: bool,
}

#[derive(Serialize)]
struct Encoded<'a> {
    text: &'a str,
    ids: Vec<u32>,
}

#[derive(Serialize)]
struct Decoded<'a> {
    ids: &'a [u32],
    text: String,
}

#[derive(Serialize)]
struct ErrorLine {
    line: usize,
    error: String,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    let tok = load_tokenizer(&args.model)
        .with_context(|| format!("cannot load the tokenizer of `{}`", args.model))?;
    let mut input = open_input(&args.input)?;
    let mut out = Output::create(&args.output)?;
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut bytes = Vec::new();
    let mut line_no = 0usize;
    loop {
        bytes.clear();
        let n = input
            .read_until(b'\n', &mut bytes)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let result = match std::str::from_utf8(&bytes) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) if args.decode => decode_line(&tok, line),
            Ok(line) => encode_line(&tok, line.trim_end_matches(['\n', '\r']), !args.no_special),
            Err(e) => Err(format!(
                "not UTF-8: invalid byte at byte offset {} of the line",
                e.valid_up_to()
            )),
        };
        let json = match result {
            Ok(json) => {
                ok += 1;
                json
            }
            Err(error) => {
                failed += 1;
                to_json(&ErrorLine {
                    line: line_no,
                    error,
                })
            }
        };
        if !out.write_line(&json)? {
            return Ok(());
        }
    }
    if !out.commit()? {
        return Ok(());
    }
    eprintln!(
        "tokenize: {ok} lines {}, {failed} errors (see \"error\" lines)",
        if args.decode { "decoded" } else { "encoded" }
    );
    Ok(())
}

fn parse(line: &str) -> std::result::Result<Value, String> {
    serde_json::from_str(line).map_err(|e| format!("invalid JSON at column {}: {e}", e.column()))
}

/// `{"text": ...}` -> `{"text", "ids"}`.
fn encode_line(
    tok: &ModelTokenizer,
    line: &str,
    add_special: bool,
) -> std::result::Result<String, String> {
    let value = parse(line)?;
    let text = value
        .get("text")
        .ok_or("no \"text\" field")?
        .as_str()
        .ok_or("\"text\" is not a string")?;
    let ids = tok.encode(text, add_special).map_err(|e| e.to_string())?;
    Ok(to_json(&Encoded { text, ids }))
}

/// `{"ids": [...]}` -> `{"ids", "text"}`.
fn decode_line(tok: &ModelTokenizer, line: &str) -> std::result::Result<String, String> {
    let value = parse(line)?;
    let list = value
        .get("ids")
        .ok_or("no \"ids\" field")?
        .as_array()
        .ok_or("\"ids\" is not an array")?;
    let size = tok.vocab_size();
    let ids = list
        .iter()
        .enumerate()
        .map(|(k, v)| {
            v.as_u64()
                .filter(|&id| id < size as u64)
                .map(|id| id as u32)
                .ok_or_else(|| {
                    format!("ids[{k}] = {v} is not a token id (0..{size} for this tokenizer)")
                })
        })
        .collect::<std::result::Result<Vec<u32>, String>>()?;
    let text = tok.decode(&ids, true).map_err(|e| e.to_string())?;
    Ok(to_json(&Decoded { ids: &ids, text }))
}
