//! Line-oriented JSON tools: read one molecule per input line, write one JSON object per
//! non-empty line, in input order, never stopping on a bad line.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Opens `path` for reading, or standard input for `-`.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file =
        File::open(path).with_context(|| format!("cannot open input file {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// Creates `path` for writing, or standard output for `-`.
pub fn open_output(path: &Path) -> Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(
            1 << 16,
            io::stdout().lock(),
        )));
    }
    let file = File::create(path)
        .with_context(|| format!("cannot create output file {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

/// The input/output options shared by every line tool.
#[derive(Debug, Clone, clap::Args)]
pub struct LineIo {
    /// Input file with one molecule per line (only the first whitespace-separated field is read,
    /// so `.smi` files with a name column work); `-` for stdin.
    #[arg(long, short, default_value = "-")]
    pub input: PathBuf,
    /// Output JSON-lines file; `-` for stdout.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Counts of what a line tool did, reported on stderr at the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Lines that produced a result.
    pub ok: usize,
    /// Lines that produced an error object.
    pub failed: usize,
}

/// Reads `input` line by line, calls `process` on the first whitespace-separated field of every
/// non-empty line (so `.smi` files with a name column work), and writes one JSON line per input
/// line. Work is spread over `opts.threads` threads in chunks; output order equals input order.
///
/// `process` returns `Ok(json)` for a result line or `Err(json)` for an error line.
pub fn run_lines<F>(opts: &LineIo, process: F) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
{
    run_lines_with(opts, |line| line.split_whitespace().next(), process)
}

/// Like [`run_lines`], but `process` gets the whole line (trailing whitespace removed), for
/// tools whose lines hold several fields (e.g. `SMILES_A<TAB>SMILES_B`). Blank lines are skipped.
pub fn run_whole_lines<F>(opts: &LineIo, process: F) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
{
    run_lines_with(
        opts,
        |line| Some(line.trim_end()).filter(|l| !l.trim_start().is_empty()),
        process,
    )
}

/// The shared loop: `field` picks what `process` sees of each line (`None` skips the line).
fn run_lines_with<F>(opts: &LineIo, field: fn(&str) -> Option<&str>, process: F) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
{
    const CHUNK: usize = 2048;
    let input = opts.input.as_path();
    let reader = open_input(input)?;
    let mut out = open_output(&opts.output)?;
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    let mut tally = Tally::default();
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK);
    let mut line_no = 0usize;
    let mut lines = reader.lines();
    loop {
        chunk.clear();
        while chunk.len() < CHUNK {
            match lines.next() {
                None => break,
                Some(line) => {
                    line_no += 1;
                    let line = line.with_context(|| {
                        format!("cannot read line {line_no} of {}", input.display())
                    })?;
                    if let Some(f) = field(&line) {
                        chunk.push(f.to_string());
                    }
                }
            }
        }
        if chunk.is_empty() {
            break;
        }
        let results = map_parallel(&chunk, threads, &process);
        for r in results {
            match r {
                Ok(s) => {
                    tally.ok += 1;
                    out.write_all(s.as_bytes())?;
                }
                Err(s) => {
                    tally.failed += 1;
                    out.write_all(s.as_bytes())?;
                }
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush().context("cannot write output")?;
    Ok(tally)
}

/// Applies `f` to every item, splitting the slice over `threads` scoped threads, in order.
fn map_parallel<F, R>(items: &[String], threads: usize, f: &F) -> Vec<R>
where
    F: Fn(&str) -> R + Sync,
    R: Send,
{
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(|s| f(s)).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(|s| f(s)).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                // A panic is a bug in the library: surface it rather than drop lines.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Serializes one output line. The line types are plain structs of strings and numbers, for
/// which serialization cannot fail; should it ever, the failure itself becomes the line.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(
            "{{\"error\":{:?}}}",
            format!("cannot serialize output: {e}")
        )
    })
}

/// Number of worker threads to use when the user did not say.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
