//! Line-oriented JSON tools: read one molecule per input line, write one JSON object per
//! non-empty line, in input order, never stopping on a bad line.
//!
//! Lines are read as bytes and decoded one at a time, so a line that is not UTF-8 becomes an
//! error line like any other bad line. A named output file is written under a temporary name
//! in its directory and renamed over the final name only when the run succeeds; standard
//! output streams. A closed standard output (`... | head -1`) ends the run quietly.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Opens `path` for reading, or standard input for `-`.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if is_std(path) {
        return Ok(Box::new(BufReader::new(io::stdin())));
    }
    let file =
        File::open(path).with_context(|| format!("cannot open input file {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// Whether `path` is `-` (standard input or output).
fn is_std(path: &Path) -> bool {
    path == Path::new("-")
}

/// Whether `e` says that the reader of our output went away (`EPIPE`): the way Unix tools end
/// quietly, with success, when piped into `head`.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Device and inode of an existing regular file: the identity two paths (or a path and a
/// standard stream) share when they name the same file, through links or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of `meta` when it describes a regular file (devices such as a terminal may
    /// well be both input and output).
    fn of(meta: &fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        meta.is_file().then(|| FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The file behind `path`, symlinks followed; for `-`, the file behind `stdio` (standard
    /// input or output). `None` when there is no such regular file.
    fn of_path(path: &Path, stdio: std::os::fd::BorrowedFd<'_>) -> Option<Self> {
        if is_std(path) {
            let file = File::from(stdio.try_clone_to_owned().ok()?);
            return Self::of(&file.metadata().ok()?);
        }
        Self::of(&fs::metadata(path).ok()?)
    }
}

/// Refuses to run when the output would overwrite the input: `--input F --output F`, through
/// a symlink or a hard link, or standard input/output redirected to or from that file.
fn check_distinct(input: &Path, output: &Path) -> Result<()> {
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let Some(out_id) = FileId::of_path(output, stdout.as_fd()) else {
        return Ok(());
    };
    if FileId::of_path(input, stdin.as_fd()) != Some(out_id) {
        return Ok(());
    }
    let name = |p: &Path, std: &str| {
        if is_std(p) {
            std.to_string()
        } else {
            p.display().to_string()
        }
    };
    bail!(
        "the input ({}) and the output ({}) are the same file; writing the output would destroy \
         the input. Write to another file, and rename it over the input afterwards if that is \
         what you want",
        name(input, "standard input"),
        name(output, "standard output"),
    )
}

/// Where a line tool writes: standard output (streamed), a special file such as a device or a
/// FIFO (written in place), or a regular file, written under a temporary name in the same
/// directory and renamed over the final name by [`Output::commit`]. Dropping an uncommitted
/// `Output` removes the temporary file, so a failed run leaves an existing output untouched.
pub struct Output {
    writer: BufWriter<Box<dyn Write>>,
    /// The name the user gave, for messages.
    name: String,
    /// `(temporary, final)` paths of a staged regular file.
    staged: Option<(PathBuf, PathBuf)>,
}

impl Output {
    /// Prepares the output `path` (`-` for standard output) without touching an existing file.
    pub fn create(path: &Path) -> Result<Self> {
        let (sink, name, staged): (Box<dyn Write>, _, _) = if is_std(path) {
            (
                Box::new(io::stdout().lock()),
                "standard output".to_string(),
                None,
            )
        } else {
            let name = format!("output file {}", path.display());
            match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => bail!("cannot write {name}: it is a directory"),
                // A device, FIFO or socket: the writes themselves are the point.
                Ok(meta) if !meta.is_file() => {
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .with_context(|| format!("cannot open {name}"))?;
                    (Box::new(file), name, None)
                }
                Ok(meta) => {
                    // Replace the file a symlink points to, not the symlink.
                    let dest =
                        fs::canonicalize(path).with_context(|| format!("cannot resolve {name}"))?;
                    let (file, tmp) =
                        create_temp(&dest, Some(meta.permissions())).with_context(|| {
                            format!(
                                "cannot create a temporary file for {name} (the output is \
                                 written beside it and renamed over it at the end)"
                            )
                        })?;
                    (Box::new(file), name, Some((tmp, dest)))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let (file, tmp) =
                        create_temp(path, None).with_context(|| format!("cannot create {name}"))?;
                    (Box::new(file), name, Some((tmp, path.to_path_buf())))
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {name}")),
            }
        };
        Ok(Output {
            writer: BufWriter::with_capacity(1 << 16, sink),
            name,
            staged,
        })
    }

    /// Writes one line and its newline. `Ok(false)`: the reader went away (a closed pipe),
    /// stop quietly.
    pub fn write_line(&mut self, line: &str) -> Result<bool> {
        let written = self
            .writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.write_all(b"\n"));
        self.check(written)
    }

    /// Flushes everything and, for a staged file, renames it over the final name.
    /// `Ok(false)`: the reader went away before the end.
    pub fn commit(mut self) -> Result<bool> {
        let flushed = self.writer.flush();
        if !self.check(flushed)? {
            return Ok(false);
        }
        if let Some((tmp, dest)) = self.staged.take() {
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_file(&tmp);
                return Err(e).with_context(|| {
                    format!("cannot rename {} to {}", tmp.display(), dest.display())
                });
            }
        }
        Ok(true)
    }

    /// A write's result: `Ok(true)` written, `Ok(false)` closed pipe, else the error naming
    /// the output.
    fn check(&self, result: io::Result<()>) -> Result<bool> {
        match result {
            Ok(()) => Ok(true),
            Err(e) if is_broken_pipe(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot write {}", self.name)),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.staged {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Creates a new temporary file beside `dest` (`.NAME.PID.N.tmp`), with `perms` if given.
fn create_temp(dest: &Path, perms: Option<fs::Permissions>) -> io::Result<(File, PathBuf)> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = dest
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let mut attempt = 0u32;
    loop {
        let tmp = dir.join(format!(".{base}.{}.{attempt}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => {
                if let Some(p) = perms {
                    if let Err(e) = file.set_permissions(p) {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
                return Ok((file, tmp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The input/output options shared by every line tool.
#[derive(Debug, Clone, clap::Args)]
pub struct LineIo {
    /// Input file with one molecule per line (only the first whitespace-separated field is read,
    /// so `.smi` files with a name column work); `-` for stdin.
    #[arg(long, short, default_value = "-")]
    pub input: PathBuf,
    /// Output JSON-lines file; `-` for stdout. A file is replaced only when the run succeeds.
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
    /// Lines that produced an error object (including lines that are not UTF-8).
    pub failed: usize,
    /// The reader of standard output (or of a pipe given as output) went away before the end;
    /// the run stopped there, and the tool should exit quietly with success.
    pub output_closed: bool,
}

impl Tally {
    /// Prints `summary` on stderr, unless the output was closed early (then a Unix tool says
    /// nothing).
    pub fn report(&self, summary: std::fmt::Arguments<'_>) {
        if !self.output_closed {
            eprintln!("{summary}");
        }
    }
}

/// Which part of a line the tool reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The first whitespace-separated field (a name column may follow).
    First,
    /// The whole line, trailing whitespace removed.
    Whole,
}

impl Field {
    /// The part of `line` the tool reads; `None` skips the line (blank).
    fn pick(self, line: &str) -> Option<&str> {
        match self {
            Field::First => line.split_whitespace().next(),
            Field::Whole => Some(line.trim_end()).filter(|l| !l.trim_start().is_empty()),
        }
    }

    /// For a line that is not UTF-8 from the end of `prefix` on: the field, when it lies
    /// wholly inside `prefix` and ends before it (a bad byte in an ignored name column).
    fn pick_before_bad_byte(self, prefix: &str) -> Option<&str> {
        match self {
            Field::First => {
                let f = self.pick(prefix)?;
                let end = f.as_ptr() as usize - prefix.as_ptr() as usize + f.len();
                (end < prefix.len()).then_some(f)
            }
            Field::Whole => None,
        }
    }
}

/// What one input line became before processing.
enum Item {
    /// The text to process.
    Text(String),
    /// A finished error line (the line is not UTF-8).
    Failed(String),
}

/// Reads `input` line by line, calls `process` on the first whitespace-separated field of every
/// non-empty line (so `.smi` files with a name column work), and writes one JSON line per input
/// line. Work is spread over `opts.threads` threads in chunks; output order equals input order.
///
/// `process` returns `Ok(json)` for a result line or `Err(json)` for an error line. A line that
/// is not UTF-8 gets the error line `error_line(text, message)` instead, where `text` is the
/// field with each bad byte replaced by U+FFFD and `message` gives the line number and the
/// offset of the first bad byte. Only reading the input or writing the output can fail.
pub fn run_lines<F, E>(opts: &LineIo, process: F, error_line: E) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
    E: Fn(&str, &str) -> String,
{
    run_lines_with(opts, Field::First, process, error_line)
}

/// Like [`run_lines`], but `process` gets the whole line (trailing whitespace removed), for
/// tools whose lines hold several fields (e.g. `SMILES_A<TAB>SMILES_B`). Blank lines are skipped.
pub fn run_whole_lines<F, E>(opts: &LineIo, process: F, error_line: E) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
    E: Fn(&str, &str) -> String,
{
    run_lines_with(opts, Field::Whole, process, error_line)
}

/// The shared loop: `field` picks what `process` sees of each line.
fn run_lines_with<F, E>(opts: &LineIo, field: Field, process: F, error_line: E) -> Result<Tally>
where
    F: Fn(&str) -> std::result::Result<String, String> + Sync,
    E: Fn(&str, &str) -> String,
{
    const CHUNK: usize = 2048;
    let input = opts.input.as_path();
    let input_name = if is_std(input) {
        "standard input".to_string()
    } else {
        input.display().to_string()
    };
    check_distinct(input, &opts.output)?;
    let mut reader = open_input(input)?;
    let mut out = Output::create(&opts.output)?;
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    let mut tally = Tally::default();
    let mut chunk: Vec<Item> = Vec::with_capacity(CHUNK);
    let mut buf: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut offset = 0u64;
    let mut eof = false;
    while !eof {
        chunk.clear();
        while chunk.len() < CHUNK {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("cannot read line {} of {input_name}", line_no + 1))?;
            if n == 0 {
                eof = true;
                break;
            }
            line_no += 1;
            let line_start = offset;
            offset += n as u64;
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            if let Some(item) = decode_line(&buf, field, line_no, line_start, &error_line) {
                chunk.push(item);
            }
        }
        let results = map_parallel(&chunk, threads, &|item: &Item| match item {
            Item::Text(text) => process(text),
            Item::Failed(line) => Err(line.clone()),
        });
        for r in results {
            let line = match r {
                Ok(s) => {
                    tally.ok += 1;
                    s
                }
                Err(s) => {
                    tally.failed += 1;
                    s
                }
            };
            if !out.write_line(&line)? {
                return Ok(closed(tally));
            }
        }
    }
    if out.commit()? {
        Ok(tally)
    } else {
        Ok(closed(tally))
    }
}

/// `tally` marked as stopped by a closed output.
fn closed(tally: Tally) -> Tally {
    Tally {
        output_closed: true,
        ..tally
    }
}

/// Turns one line's bytes (newline removed) into an [`Item`]; `None` for a line to skip.
/// `line_start` is the line's byte offset in the input, for the message about a bad byte.
fn decode_line(
    bytes: &[u8],
    field: Field,
    line_no: usize,
    line_start: u64,
    error_line: &dyn Fn(&str, &str) -> String,
) -> Option<Item> {
    let err = match std::str::from_utf8(bytes) {
        Ok(text) => return field.pick(text).map(|f| Item::Text(f.to_string())),
        Err(err) => err,
    };
    let at = err.valid_up_to();
    // The part before the bad byte is valid UTF-8 by definition; fall back to nothing.
    let prefix = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    if let Some(f) = field.pick_before_bad_byte(prefix) {
        return Some(Item::Text(f.to_string()));
    }
    let lossy = String::from_utf8_lossy(bytes);
    let text = field.pick(&lossy).unwrap_or_default();
    let message = format!(
        "line {line_no} is not valid UTF-8: byte 0x{:02X} at byte offset {at} of the line \
         (byte {} of the input)",
        bytes.get(at).copied().unwrap_or_default(),
        line_start + at as u64,
    );
    Some(Item::Failed(error_line(text, &message)))
}

/// Applies `f` to every item, splitting the slice over `threads` scoped threads, in order.
fn map_parallel<T, F, R>(items: &[T], threads: usize, f: &F) -> Vec<R>
where
    T: Sync,
    F: Fn(&T) -> R + Sync,
    R: Send,
{
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
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
