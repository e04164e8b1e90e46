//! Fuzz targets (proptest) for every reader of a file that may come from a stranger: the
//! JSONL / CSV / TSV readers of the data, eval and infer layers, and the model files
//! (safetensors, GGUF, PyTorch zip pickles, tokenizer.json and sentencepiece tokenizer.model,
//! Hugging Face directories in both layouts, LoRA adapters, the GIN and projector checkpoints).
//!
//! Each case writes the input to a file and calls the project's own reader. The check
//! (`Harness::run`): the reader returns `Ok` or `Err` and never panics (`catch_unwind`); an
//! `Err` names the file (or, for a directory, a file of it); and the bytes allocated while it
//! runs stay below a bound linear in the input size (a counting global allocator measures the
//! peak). A crafted length that makes a reader ask for an absurd allocation aborts the process
//! instead; the allocator prints the request to stderr first, so such a death is readable.
//! A failing input is copied to `target/fuzz-failures/<target>/`; `FUZZ_VERBOSE=1` prints
//! which GGUF fields a case overwrites.
//!
//! Model files start from small valid files (tests/data/tiny_model, the GIN/projector `.pth`
//! goldens, the llama_bin and llama_tied goldens, a GGUF written here with candle's writer) and
//! are mutated: bytes flipped, inserted, deleted, the file cut, and above all the length /
//! count / offset fields of each format overwritten with huge or off-by-one values (the
//! `*_fields` / `*_varints` / `*_numbers` functions find them); pickles get opcodes spliced in
//! and the archive rebuilt around them (so zip checksums hold), JSON files get nodes replaced.
//!
//! `PROPTEST_CASES=N` sets the number of cases per target (default [`DEFAULT_CASES`], sized so
//! the file runs in seconds in a release build); each target prints how many reads it ran,
//! how many were accepted and its largest allocation peak.
//!
//! The `regression_*` tests pin the inputs the fuzzing (and reading the readers) found; the
//! fixes are in `src/model/untrusted/`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use instructmol::model::loader::load_gguf;
use instructmol::model::{load_model, Gin, ModelTokenizer, Projector, Weights};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value as Json;

/// Default number of cases per target when PROPTEST_CASES is not set.
const DEFAULT_CASES: u32 = 500;

// ---------------------------------------------------------------------------------------
// Allocation accounting
// ---------------------------------------------------------------------------------------

/// Bytes currently allocated by the whole process.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// Highest value of [`CURRENT`] since the last [`Harness::run`] reset it.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// A single request at least this large is printed to stderr before it is forwarded: if the
/// system then refuses it, the process aborts and the message says why.
const LOUD_REQUEST: usize = 1 << 33;

/// The system allocator, counting.
struct Counting;

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

/// Writes "fuzz_files: allocation of N bytes requested" to stderr without allocating.
fn report_huge(size: usize) {
    if size < LOUD_REQUEST {
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = size;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut err = std::io::stderr();
    let _ = err.write_all(b"fuzz_files: allocation of ");
    let _ = err.write_all(&digits[i..]);
    let _ = err.write_all(b" bytes requested\n");
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        report_huge(layout.size());
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        report_huge(layout.size());
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        report_huge(new_size);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Targets run one at a time so that the allocation peak of a case is its own.
static SERIAL: Mutex<()> = Mutex::new(());

/// Fixed allowance on top of the linear bound: lazily built statics (regexes, thread pools),
/// the tokenizer's tables and the like, whatever the input.
const SLACK: usize = 24 << 20;

/// One fuzz target: its name, counters, and the allocation bound (bytes per input byte).
/// Methods take `&self` (proptest's test closure is `Fn`).
struct Harness {
    name: &'static str,
    per_byte: usize,
    cases: Cell<usize>,
    accepted: Cell<usize>,
    /// Largest peak seen, with the size of its input.
    largest: Cell<(usize, usize)>,
    _serial: MutexGuard<'static, ()>,
}

impl Harness {
    fn new(name: &'static str, per_byte: usize) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // With RUST_BACKTRACE=1, candle's errors capture a backtrace and their message prints
        // it; the first print loads the binary's symbols (tens of MB, cached for the process).
        // Load them now, outside any measurement.
        let _ = std::backtrace::Backtrace::capture().to_string();
        Self {
            name,
            per_byte,
            cases: Cell::new(0),
            accepted: Cell::new(0),
            largest: Cell::new((0, 0)),
            _serial: serial,
        }
    }

    /// Runs `read` on an input of `input_len` bytes stored under `path` and checks it: no
    /// panic, an error that names the file (`file_named` false for readers whose errors
    /// do not carry a path: the GIN / projector builders, `parse_predictions`), and at most
    /// `per_byte * input_len + SLACK` bytes allocated at the peak. Returns whether the reader
    /// accepted the input.
    fn run<T, E: std::fmt::Display>(
        &self,
        path: &Path,
        input_len: usize,
        file_named: bool,
        read: impl FnOnce() -> Result<T, E>,
    ) -> bool {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| read().map(drop)));
        let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        self.cases.set(self.cases.get() + 1);
        if peak > self.largest.get().0 {
            self.largest.set((peak, input_len));
        }
        let limit = self.per_byte * input_len + SLACK;
        if outcome.is_err() || peak > limit {
            save_failure(self.name, path);
        }
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "{}: the reader panicked on {} ({input_len} bytes): {message}",
                    self.name,
                    path.display()
                );
            }
        };
        assert!(
            peak <= limit,
            "{}: reading {} ({input_len} bytes) allocated {peak} bytes at the peak, over the bound {limit}",
            self.name,
            path.display()
        );
        match outcome {
            Ok(()) => {
                self.accepted.set(self.accepted.get() + 1);
                true
            }
            Err(e) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let message = e.to_string();
                assert!(
                    !file_named || message.contains(&name),
                    "{}: the error does not name the file `{name}`: {message}",
                    self.name
                );
                false
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let (peak, input) = self.largest.get();
        println!(
            "{}: {} reads, {} accepted, largest peak {peak} bytes (input of {input} bytes)",
            self.name,
            self.cases.get(),
            self.accepted.get()
        );
    }
}

/// Keeps a copy of an input that failed (a file, or every file of a directory) under
/// `target/fuzz-failures/<target>/` (the last one of a target is the shrunk one), to turn it
/// into a regression test.
fn save_failure(target: &str, path: &Path) {
    let stem: String = target
        .chars()
        .take_while(|c| *c != '(')
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = common::root()
        .join("target/fuzz-failures")
        .join(stem.trim_matches('_'));
    let _ = std::fs::create_dir_all(&dir);
    let files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    } else {
        vec![path.to_path_buf()]
    };
    for f in files {
        if let Some(name) = f.file_name() {
            let _ = std::fs::copy(&f, dir.join(name));
        }
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A directory for this test binary's scratch files (one per target, reused by every case).
fn scratch(name: &str) -> PathBuf {
    common::temp_dir(&format!("fuzz-{name}"))
}

fn data(rel: &str) -> PathBuf {
    common::root().join("tests/data").join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// Where a number sits in a file: byte offset and width (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    at: usize,
    width: usize,
}

/// One edit of a file.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte (position taken modulo the header span when `in_header`).
    Flip {
        pos: usize,
        mask: u8,
        in_header: bool,
    },
    /// Insert bytes.
    Insert { pos: usize, bytes: Vec<u8> },
    /// Delete up to `len` bytes.
    Delete { pos: usize, len: usize },
    /// Cut the file.
    Truncate { keep: usize },
    /// Overwrite a length / count / offset field (index modulo the field list).
    Field { index: usize, value: Number },
}

/// A value to write into a field: absolute, or relative to the old value or the file size.
#[derive(Debug, Clone, Copy)]
enum Number {
    Fixed(u64),
    Old(i64),
    FileLen(i64),
}

impl Number {
    fn resolve(self, old: u64, file_len: usize) -> u64 {
        match self {
            Number::Fixed(v) => v,
            Number::Old(d) => old.wrapping_add(d as u64),
            Number::FileLen(d) => (file_len as u64).wrapping_add(d as u64),
        }
    }
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            7,
            8,
            0x7f,
            0xff,
            0x100,
            0xffff,
            0x1_0000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            1 << 40,
            1 << 48,
            1 << 62,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ])
        .prop_map(Number::Fixed),
        (-3i64..=3).prop_map(Number::Old),
        (-64i64..=64).prop_map(Number::FileLen),
        any::<u64>().prop_map(Number::Fixed),
        (0u64..4096).prop_map(Number::Fixed),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<usize>(), 1u8..=255, any::<bool>()).prop_map(|(pos, mask, in_header)| {
            Mutation::Flip {
                pos,
                mask,
                in_header,
            }
        }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(pos, bytes)| Mutation::Insert { pos, bytes }),
        1 => (any::<usize>(), 1usize..16).prop_map(|(pos, len)| Mutation::Delete { pos, len }),
        1 => any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        5 => (any::<usize>(), number()).prop_map(|(index, value)| Mutation::Field { index, value }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn get_le(bytes: &[u8], f: Field) -> u64 {
    bytes[f.at..f.at + f.width]
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn put_le(bytes: &mut [u8], f: Field, value: u64) {
    for (i, b) in bytes[f.at..f.at + f.width].iter_mut().enumerate() {
        *b = (value >> (8 * i)) as u8;
    }
}

/// Applies `edits` to `seed`. Field edits address `fields` (found in the unmutated seed); they
/// are applied first, while the offsets still hold. `header` is the span where structure
/// lives (byte flips marked `in_header` land there).
fn apply(seed: &[u8], fields: &[Field], header: usize, edits: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    let len = seed.len();
    for edit in edits {
        if let Mutation::Field { index, value } = edit {
            if let Some(&f) = fields.get(index % fields.len().max(1)) {
                let old = get_le(&bytes, f);
                put_le(&mut bytes, f, value.resolve(old, len));
            }
        }
    }
    for edit in edits {
        let n = bytes.len();
        match edit {
            Mutation::Flip {
                pos,
                mask,
                in_header,
            } if n > 0 => {
                let span = if *in_header { header.clamp(1, n) } else { n };
                bytes[pos % span] ^= mask;
            }
            Mutation::Insert { pos, bytes: b } => {
                let at = pos % (n + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Delete { pos, len } if n > 0 => {
                let at = pos % n;
                let end = (at + len).min(n);
                bytes.drain(at..end);
            }
            Mutation::Truncate { keep } => bytes.truncate(keep % (n + 1)),
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// JSON mutations (tokenizer.json, config.json, tokenizer_config.json, safetensors headers)
// ---------------------------------------------------------------------------------------

/// A replacement for one node of a JSON document.
#[derive(Debug, Clone)]
enum JsonEdit {
    /// Replace node `index` (pre-order, modulo the count) with `value`.
    Replace { index: usize, value: Json },
    /// Remove node `index` from its parent.
    Remove { index: usize },
}

fn json_value() -> impl Strategy<Value = Json> {
    prop_oneof![
        prop::sample::select(vec![
            Json::Null,
            Json::Bool(true),
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1),
            serde_json::json!(2),
            serde_json::json!(4294967295u64),
            serde_json::json!(4294967296u64),
            serde_json::json!(1u64 << 40),
            serde_json::json!(u64::MAX),
            serde_json::json!(i64::MIN),
            serde_json::json!(1e300),
            serde_json::json!(-0.5),
            serde_json::json!(""),
            serde_json::json!("llama"),
            serde_json::json!("<unk>"),
            serde_json::json!("(a|b)*c"),
            serde_json::json!("BPE"),
            serde_json::json!("WordPiece"),
            serde_json::json!("Unigram"),
            serde_json::json!("ByteLevel"),
            serde_json::json!("Split"),
            serde_json::json!([]),
            serde_json::json!([0]),
            serde_json::json!([["a", 0.0]]),
            serde_json::json!({}),
            serde_json::json!({"type": "Sequence"}),
        ]),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[a-zA-Z0-9 <>|_.{}%-]{0,12}".prop_map(Json::String),
    ]
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<usize>(), json_value()).prop_map(|(index, value)| JsonEdit::Replace { index, value }),
        1 => any::<usize>().prop_map(|index| JsonEdit::Remove { index }),
    ]
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone)]
enum Step {
    Index(usize),
    Key(String),
}

/// Paths of every node but the root, in pre-order.
fn node_paths(v: &Json, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Step::Index(i));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Json::Object(o) => {
            for (k, child) in o {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                node_paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(mut v: &'a mut Json, path: &[Step]) -> Option<&'a mut Json> {
    for step in path {
        v = match (v, step) {
            (Json::Array(a), Step::Index(i)) => a.get_mut(*i)?,
            (Json::Object(o), Step::Key(k)) => o.get_mut(k)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Applies `edits`; half of the picks go to the shallow nodes (at most 3 steps deep), where
/// the structure of a tokenizer.json lives, the rest to any node.
fn mutate_json(doc: &Json, edits: &[JsonEdit]) -> Json {
    let mut doc = doc.clone();
    for edit in edits {
        let mut paths = Vec::new();
        node_paths(&doc, &mut Vec::new(), &mut paths);
        let shallow: Vec<&Vec<Step>> = paths.iter().filter(|p| p.len() <= 3).collect();
        let index = match edit {
            JsonEdit::Replace { index, .. } | JsonEdit::Remove { index } => *index,
        };
        let path = if index % 2 == 0 && !shallow.is_empty() {
            shallow[(index / 2) % shallow.len()].clone()
        } else if !paths.is_empty() {
            paths[(index / 2) % paths.len()].clone()
        } else {
            break;
        };
        let Some((last, parent)) = path.split_last() else {
            break;
        };
        let Some(parent) = node_mut(&mut doc, parent) else {
            continue;
        };
        match (edit, parent, last) {
            (JsonEdit::Replace { value, .. }, parent, _) => {
                if let Some(node) = node_mut(parent, std::slice::from_ref(last)) {
                    *node = value.clone();
                }
            }
            (JsonEdit::Remove { .. }, Json::Array(a), Step::Index(i)) if *i < a.len() => {
                a.remove(*i);
            }
            (JsonEdit::Remove { .. }, Json::Object(o), Step::Key(k)) => {
                o.remove(k);
            }
            _ => {}
        }
    }
    doc
}

// ---------------------------------------------------------------------------------------
// Seeds and their field maps
// ---------------------------------------------------------------------------------------

fn tiny_dir() -> PathBuf {
    data("tiny_model")
}

/// The tiny tokenizer's vocabulary (id order), merges and special-token ids.
fn tiny_vocab() -> (Vec<String>, Vec<String>, Vec<u64>) {
    let tok: Json = serde_json::from_slice(&read(&tiny_dir().join("tokenizer.json")))
        .expect("tokenizer.json is JSON");
    let vocab = tok["model"]["vocab"].as_object().expect("vocab");
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().expect("id") as usize] = t.clone();
    }
    let merges = tok["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|m| match m {
            Json::Array(p) => format!(
                "{} {}",
                p[0].as_str().expect("merge"),
                p[1].as_str().expect("merge")
            ),
            other => other.as_str().expect("merge").to_string(),
        })
        .collect();
    let special = tok["added_tokens"]
        .as_array()
        .expect("added_tokens")
        .iter()
        .map(|t| t["id"].as_u64().expect("id"))
        .collect();
    (tokens, merges, special)
}

/// A deterministic `[rows, cols]` tensor.
fn weight(rows: usize, cols: usize, salt: f64) -> Tensor {
    let n = rows * cols;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.37 + salt).sin() * 0.1) as f32)
        .collect();
    Tensor::from_vec(v, (rows, cols), &Device::Cpu).expect("tensor")
}

/// A small llama GGUF that `load_gguf` accepts: one layer, d = 32, 2 query heads and 1 kv
/// head, feed-forward 256, the tiny tokenizer's 512-token byte-level BPE vocabulary as
/// metadata, and tensors in seven GGML types (so dequantization is exercised).
fn tiny_gguf() -> &'static [u8] {
    static GGUF: OnceLock<Vec<u8>> = OnceLock::new();
    GGUF.get_or_init(|| {
        let (tokens, merges, special) = tiny_vocab();
        let (d, ff, vocab) = (32usize, 256usize, tokens.len());
        let types: Vec<Value> = (0..vocab)
            .map(|i| Value::I32(if special.contains(&(i as u64)) { 3 } else { 1 }))
            .collect();
        let md: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String("llama".into())),
            ("general.name", Value::String("fuzz".into())),
            ("general.alignment", Value::U32(32)),
            ("llama.block_count", Value::U32(1)),
            ("llama.context_length", Value::U32(256)),
            ("llama.embedding_length", Value::U32(d as u32)),
            ("llama.feed_forward_length", Value::U32(ff as u32)),
            ("llama.attention.head_count", Value::U32(2)),
            ("llama.attention.head_count_kv", Value::U32(1)),
            ("llama.rope.freq_base", Value::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            (
                "tokenizer.ggml.tokens",
                Value::Array(tokens.iter().cloned().map(Value::String).collect()),
            ),
            ("tokenizer.ggml.token_type", Value::Array(types)),
            (
                "tokenizer.ggml.merges",
                Value::Array(merges.into_iter().map(Value::String).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(2)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
            (
                "tokenizer.chat_template",
                Value::String("{% for m in messages %}{{ m['content'] }}{% endfor %}".into()),
            ),
        ];
        let q = |t: Tensor, ty: GgmlDType| QTensor::quantize(&t, ty).expect("quantize");
        let tensors: Vec<(&str, QTensor)> = vec![
            (
                "token_embd.weight",
                q(weight(vocab, d, 0.1), GgmlDType::Q8_0),
            ),
            (
                "output_norm.weight",
                q(weight(1, d, 0.2).reshape(d).expect("1-D"), GgmlDType::F32),
            ),
            (
                "blk.0.attn_norm.weight",
                q(weight(1, d, 0.3).reshape(d).expect("1-D"), GgmlDType::F32),
            ),
            (
                "blk.0.ffn_norm.weight",
                q(weight(1, d, 0.4).reshape(d).expect("1-D"), GgmlDType::F32),
            ),
            ("blk.0.attn_q.weight", q(weight(d, d, 0.5), GgmlDType::F16)),
            (
                "blk.0.attn_k.weight",
                q(weight(16, d, 0.6), GgmlDType::Q4_0),
            ),
            (
                "blk.0.attn_v.weight",
                q(weight(16, d, 0.7), GgmlDType::Q4_1),
            ),
            (
                "blk.0.attn_output.weight",
                q(weight(d, d, 0.8), GgmlDType::Q5_0),
            ),
            (
                "blk.0.ffn_gate.weight",
                q(weight(ff, d, 0.9), GgmlDType::Q8_0),
            ),
            ("blk.0.ffn_up.weight", q(weight(ff, d, 1.0), GgmlDType::F32)),
            (
                "blk.0.ffn_down.weight",
                q(weight(d, ff, 1.1), GgmlDType::Q4K),
            ),
        ];
        let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &md_refs, &t_refs).expect("write gguf");
        out.into_inner()
    })
}

/// The numeric fields of a (valid, version 2/3) GGUF file, grouped by kind, and where the
/// tensor data starts.
fn gguf_fields(bytes: &[u8]) -> (BTreeMap<&'static str, Vec<Field>>, usize) {
    let mut kinds: BTreeMap<&'static str, Vec<Field>> = BTreeMap::new();
    let mut at = 8usize;
    let field = |kinds: &mut BTreeMap<&'static str, Vec<Field>>, kind, at: &mut usize, width| {
        kinds
            .entry(kind)
            .or_default()
            .push(Field { at: *at, width });
        let v = get_le(bytes, Field { at: *at, width });
        *at += width;
        v
    };
    let tensors = field(&mut kinds, "tensor count", &mut at, 8);
    let kvs = field(&mut kinds, "metadata count", &mut at, 8);
    fn value(
        bytes: &[u8],
        ty: u64,
        at: &mut usize,
        kinds: &mut BTreeMap<&'static str, Vec<Field>>,
        in_array: bool,
    ) {
        let scalar = |kinds: &mut BTreeMap<&'static str, Vec<Field>>, at: &mut usize, w| {
            if !in_array {
                kinds
                    .entry("scalar value")
                    .or_default()
                    .push(Field { at: *at, width: w });
            }
            *at += w;
        };
        match ty {
            0 | 1 | 7 => scalar(kinds, at, 1),
            2 | 3 => scalar(kinds, at, 2),
            4..=6 => scalar(kinds, at, 4),
            10..=12 => scalar(kinds, at, 8),
            8 => {
                let f = Field { at: *at, width: 8 };
                kinds.entry("string length").or_default().push(f);
                *at += 8 + get_le(bytes, f) as usize;
            }
            9 => {
                let t = Field { at: *at, width: 4 };
                kinds.entry("array type").or_default().push(t);
                let n = Field {
                    at: *at + 4,
                    width: 8,
                };
                kinds.entry("array length").or_default().push(n);
                *at += 12;
                let elem = get_le(bytes, t);
                for _ in 0..get_le(bytes, n) {
                    value(bytes, elem, at, kinds, true);
                }
            }
            other => panic!("unexpected GGUF value type {other} in the seed"),
        }
    }
    for _ in 0..kvs {
        let len = field(&mut kinds, "key length", &mut at, 8);
        at += len as usize;
        let ty = field(&mut kinds, "value type", &mut at, 4);
        value(bytes, ty, &mut at, &mut kinds, false);
    }
    for _ in 0..tensors {
        let len = field(&mut kinds, "tensor name length", &mut at, 8);
        at += len as usize;
        let dims = field(&mut kinds, "dimension count", &mut at, 4);
        for _ in 0..dims {
            field(&mut kinds, "dimension", &mut at, 8);
        }
        field(&mut kinds, "tensor type", &mut at, 4);
        field(&mut kinds, "tensor offset", &mut at, 8);
    }
    (kinds, at)
}

/// Picks fields so that every kind is equally likely (a GGUF has hundreds of string lengths
/// and two counts): the list repeats each kind's fields round-robin up to a common length.
fn balanced(kinds: &BTreeMap<&'static str, Vec<Field>>) -> Vec<(&'static str, Field)> {
    let longest = kinds.values().map(Vec::len).max().unwrap_or(0).min(64);
    let mut out = Vec::new();
    for (kind, fields) in kinds {
        for i in 0..longest {
            out.push((*kind, fields[i % fields.len()]));
        }
    }
    out
}

/// With `FUZZ_VERBOSE` set, prints what each field edit of a case hits (to read a failure).
fn describe(edits: &[Mutation], fields: &[(&'static str, Field)], seed: &[u8]) {
    if std::env::var_os("FUZZ_VERBOSE").is_none() {
        return;
    }
    for e in edits {
        if let Mutation::Field { index, value } = e {
            let (kind, f) = fields[index % fields.len()];
            let old = get_le(seed, f);
            eprintln!(
                "  {kind} at byte {} ({} bytes): {old} -> {}",
                f.at,
                f.width,
                value.resolve(old, seed.len())
            );
        }
    }
}

// ---- zip (PyTorch archives) ----

/// CRC-32 (IEEE), as zip stores it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip archive with uncompressed (stored) entries, as `torch.save` writes them.
fn write_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes());
            }
            h.extend(20u16.to_le_bytes()); // version needed
            h.extend(0u16.to_le_bytes()); // flags
            h.extend(0u16.to_le_bytes()); // method: stored
            h.extend(0u16.to_le_bytes()); // time
            h.extend(0x21u16.to_le_bytes()); // date
            h.extend(crc.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend(size.to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra length
            if central {
                h.extend(0u16.to_le_bytes()); // comment length
                h.extend(0u16.to_le_bytes()); // disk
                h.extend(0u16.to_le_bytes()); // internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The entries of a valid zip archive with stored entries (the goldens), in order.
fn read_zip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let eocd = (0..=bytes.len() - 22)
        .rev()
        .find(|&i| bytes[i..i + 4] == 0x0605_4b50u32.to_le_bytes())
        .expect("end of central directory");
    let n = get_le(
        bytes,
        Field {
            at: eocd + 10,
            width: 2,
        },
    ) as usize;
    let mut at = get_le(
        bytes,
        Field {
            at: eocd + 16,
            width: 4,
        },
    ) as usize;
    let mut out = Vec::new();
    for _ in 0..n {
        let f = |off: usize, width: usize| {
            get_le(
                bytes,
                Field {
                    at: at + off,
                    width,
                },
            ) as usize
        };
        let (method, size, name_len, extra, comment, local) =
            (f(10, 2), f(20, 4), f(28, 2), f(30, 2), f(32, 2), f(42, 4));
        assert_eq!(method, 0, "golden zip entries are stored");
        let name = String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).expect("name");
        let lf = |off: usize| {
            get_le(
                bytes,
                Field {
                    at: local + off,
                    width: 2,
                },
            ) as usize
        };
        let start = local + 30 + lf(26) + lf(28);
        out.push((name, bytes[start..start + size].to_vec()));
        at += 46 + name_len + extra + comment;
    }
    out
}

/// The numeric fields of a zip archive written by [`write_zip`].
fn zip_fields(bytes: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let sig = get_le(bytes, Field { at: i, width: 4 });
        let fields: &[(usize, usize)] = match sig {
            0x0403_4b50 => &[(8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
            0x0201_4b50 => &[
                (10, 2),
                (16, 4),
                (20, 4),
                (24, 4),
                (28, 2),
                (30, 2),
                (32, 2),
                (34, 2),
                (42, 4),
            ],
            0x0605_4b50 => &[(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
            _ => &[],
        };
        for &(at, width) in fields {
            out.push(Field { at: i + at, width });
        }
        i += 1;
    }
    out
}

// ---- pickle ----

/// Length of the argument of a pickle opcode (those candle reads), `None` for newline-ended
/// arguments (GLOBAL) and unknown opcodes.
fn pickle_arg(op: u8, rest: &[u8]) -> Option<usize> {
    Some(match op {
        0x80 | b'K' | b'q' | b'h' => 1,
        b'M' => 2,
        b'J' | b'r' | b'j' => 4,
        b'G' => 8,
        b'X' => 4 + get_le(rest, Field { at: 0, width: 4 }) as usize,
        0x8a => 1 + rest[0] as usize,
        _ => 0,
    })
}

/// The numeric fields and the opcode positions of a pickle written by torch.
fn pickle_fields(bytes: &[u8]) -> (Vec<Field>, Vec<usize>) {
    let (mut fields, mut ops) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < bytes.len() {
        let op = bytes[i];
        ops.push(i);
        if op == b'c' {
            let lines = bytes[i + 1..]
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .nth(1)
                .map(|(p, _)| p + 1)
                .expect("GLOBAL has two lines");
            i += 1 + lines;
            continue;
        }
        let width = match op {
            0x80 | b'K' | b'q' | b'h' | 0x8a => 1,
            b'M' => 2,
            b'J' | b'r' | b'j' | b'X' => 4,
            _ => 0,
        };
        if width > 0 {
            fields.push(Field { at: i + 1, width });
        }
        i += 1 + pickle_arg(op, &bytes[i + 1..]).expect("known opcode");
        if op == b'.' {
            break;
        }
    }
    (fields, ops)
}

/// Short opcode sequences spliced into pickles.
const PICKLE_SNIPPETS: &[&[u8]] = &[
    b"(",
    b")",
    b"]",
    b"}",
    b"N",
    b"K\x05",
    b"M\xff\xff",
    b"J\xff\xff\xff\x7f",
    b"J\xff\xff\xff\xff",
    b"\x85",
    b"\x86",
    b"\x87",
    b"q\x00",
    b"h\x00",
    b"h\x07",
    b"r\x00\x00\x00\x00",
    b"j\x00\x00\x00\x00",
    b"t",
    b"a",
    b"e",
    b"s",
    b"u",
    b"d",
    b"b",
    b"R",
    b"\x81",
    b"Q",
    b"X\x01\x00\x00\x00a",
    b"X\xff\xff\xff\x7f",
    b"\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\xff",
    b"G\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\x88",
    b"\x89",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ccollections\nOrderedDict\n",
    b"ctorch\nFloatStorage\n",
    b".",
];

/// One edit of a pickle stream (kept valid as a zip entry: the archive is rebuilt around it).
#[derive(Debug, Clone)]
enum PickleEdit {
    /// Overwrite an opcode argument.
    Field { index: usize, value: Number },
    /// Insert opcode snippets before opcode `op`.
    Splice { op: usize, snippets: Vec<usize> },
    /// Delete opcodes `op..op + n`.
    Drop { op: usize, n: usize },
}

fn pickle_edit() -> impl Strategy<Value = PickleEdit> {
    prop_oneof![
        3 => (any::<usize>(), number()).prop_map(|(index, value)| PickleEdit::Field { index, value }),
        3 => (any::<usize>(), prop::collection::vec(0..PICKLE_SNIPPETS.len(), 1..6))
            .prop_map(|(op, snippets)| PickleEdit::Splice { op, snippets }),
        1 => (any::<usize>(), 1usize..4).prop_map(|(op, n)| PickleEdit::Drop { op, n }),
    ]
}

fn mutate_pickle(seed: &[u8], edits: &[PickleEdit]) -> Vec<u8> {
    let (fields, ops) = pickle_fields(seed);
    let mut bytes = seed.to_vec();
    for edit in edits {
        if let PickleEdit::Field { index, value } = edit {
            let f = fields[index % fields.len()];
            let old = get_le(&bytes, f);
            put_le(&mut bytes, f, value.resolve(old, seed.len()));
        }
    }
    // Splices and drops from the back, so earlier opcode offsets stay valid.
    let mut structural: Vec<(usize, &PickleEdit)> = edits
        .iter()
        .filter_map(|e| match e {
            PickleEdit::Splice { op, .. } | PickleEdit::Drop { op, .. } => {
                Some((ops[op % ops.len()], e))
            }
            PickleEdit::Field { .. } => None,
        })
        .collect();
    structural.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, edit) in structural {
        match edit {
            PickleEdit::Splice { snippets, .. } => {
                let insert: Vec<u8> = snippets
                    .iter()
                    .flat_map(|&s| PICKLE_SNIPPETS[s].iter().copied())
                    .collect();
                bytes.splice(at..at, insert);
            }
            PickleEdit::Drop { n, .. } => {
                let start = ops.iter().position(|&o| o == at).unwrap_or(0);
                let end = ops.get(start + n).copied().unwrap_or(bytes.len());
                bytes.drain(at..end.min(bytes.len()));
            }
            PickleEdit::Field { .. } => {}
        }
    }
    bytes
}

/// The entries of a golden `.pth` and the index of its `data.pkl`.
fn pth_seed(name: &str) -> (Vec<(String, Vec<u8>)>, usize) {
    let entries = read_zip(&read(&data(&format!("golden/{name}"))));
    let pkl = entries
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .expect("data.pkl");
    (entries, pkl)
}

// ---- safetensors ----

/// The header span of a safetensors file and the digit runs (numbers) inside it.
fn safetensors_numbers(bytes: &[u8]) -> (usize, Vec<(usize, usize)>) {
    let n = get_le(bytes, Field { at: 0, width: 8 }) as usize;
    let header = &bytes[8..8 + n];
    let mut runs = Vec::new();
    let mut i = 0;
    while i < header.len() {
        if header[i].is_ascii_digit() {
            let start = i;
            while i < header.len() && header[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((8 + start, i - start));
        } else {
            i += 1;
        }
    }
    (8 + n, runs)
}

/// One edit of a safetensors file.
#[derive(Debug, Clone)]
enum StEdit {
    /// Replace the `index`-th number of the JSON header with `value`, fixing the header length.
    Number { index: usize, value: Number },
    /// Raw edits of the file (the header length field is field 0).
    Raw(Vec<Mutation>),
}

fn st_edit() -> impl Strategy<Value = StEdit> {
    prop_oneof![
        3 => (any::<usize>(), number()).prop_map(|(index, value)| StEdit::Number { index, value }),
        2 => mutations().prop_map(StEdit::Raw),
    ]
}

fn mutate_safetensors(seed: &[u8], edit: &StEdit) -> Vec<u8> {
    let (header_end, runs) = safetensors_numbers(seed);
    match edit {
        StEdit::Number { index, value } => {
            let (at, len) = runs[index % runs.len()];
            let old: u64 = std::str::from_utf8(&seed[at..at + len])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let text = value.resolve(old, seed.len()).to_string();
            let mut out = Vec::with_capacity(seed.len() + text.len());
            let new_n = (header_end - 8) - len + text.len();
            out.extend((new_n as u64).to_le_bytes());
            out.extend(&seed[8..at]);
            out.extend(text.as_bytes());
            out.extend(&seed[at + len..]);
            out
        }
        StEdit::Raw(m) => apply(seed, &[Field { at: 0, width: 8 }], header_end, m),
    }
}

/// A small safetensors file: a linear projector (4 x 8) and extra tensors in f16, u8 and i64.
fn small_safetensors() -> &'static [u8] {
    static ST: OnceLock<Vec<u8>> = OnceLock::new();
    ST.get_or_init(|| {
        let dir = scratch("st-seed");
        let mut w = Weights::default();
        w.insert("mm_projector.weight", weight(4, 8, 0.1));
        w.insert(
            "mm_projector.bias",
            weight(1, 4, 0.2).reshape(4).expect("1-D"),
        );
        w.insert(
            "extra.half",
            weight(2, 3, 0.3).to_dtype(DType::F16).expect("f16"),
        );
        w.insert(
            "extra.bytes",
            Tensor::from_vec(vec![1u8, 2, 3], 3, &Device::Cpu).expect("u8"),
        );
        w.insert(
            "extra.long",
            Tensor::from_vec(vec![7i64, -1], 2, &Device::Cpu).expect("i64"),
        );
        let path = dir.join("seed.safetensors");
        w.save_safetensors(&path).expect("save");
        read(&path)
    })
}

// ---------------------------------------------------------------------------------------
// Targets: text readers
// ---------------------------------------------------------------------------------------

/// Lines of the committed fixtures, the material of the structured text inputs.
fn fixture_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let files = [
            "datasets/bace.csv",
            "datasets/bbbp.csv",
            "datasets/bbbp_bad.csv",
            "datasets/qm9.csv",
            "datasets/chebi20_test.txt",
            "datasets/pubchem_pairs.tsv",
            "golden/metrics_bace.jsonl",
            "golden/metrics_chebi20.jsonl",
            "golden/metrics_qm9.jsonl",
            "golden/metrics_forward.jsonl",
            "train/chebi20_tiny.txt",
        ];
        files
            .iter()
            .flat_map(|f| {
                String::from_utf8_lossy(&read(&data(f)))
                    .lines()
                    .take(40)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    })
}

/// Tokens text inputs are made of: JSON and CSV syntax, the field names the readers look
/// for, SMILES, and bytes that are not UTF-8.
const TEXT_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\\",
    "\\u0000",
    "\u{feff}",
    "\"id\"",
    "\"prediction\"",
    "\"reference\"",
    "\"prob_yes\"",
    "\"property\"",
    "\"prompt\"",
    "\"smiles\"",
    "\"conversations\"",
    "\"from\"",
    "\"value\"",
    "\"human\"",
    "\"gpt\"",
    "\"task\"",
    "\"image\"",
    "<image>",
    "null",
    "true",
    "1",
    "-1",
    "0.5",
    "1e999",
    "NaN",
    "CCO",
    "c1ccccc1",
    "[Na+]",
    "smiles",
    "p_np",
    "mol",
    "Class",
    "CID",
    "HIV_active",
    "homo",
    "\u{fffd}",
    "é",
    "\u{0}",
];

/// Arbitrary bytes, structured token soup, or a fixture line with random edits.
fn text_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(prop::sample::select(TEXT_TOKENS), 0..60)
            .prop_map(|t| t.concat().into_bytes()),
        (
            prop::collection::vec(any::<prop::sample::Index>(), 1..6),
            mutations()
        )
            .prop_map(|(lines, edits)| {
                let all = fixture_lines();
                let text: Vec<&str> = lines
                    .iter()
                    .map(|i| all[i.index(all.len())].as_str())
                    .collect();
                let seed = text.join("\n").into_bytes();
                apply(&seed, &[], seed.len(), &edits)
            }),
    ]
}

/// Text readers may build a value per input byte (a CSV line of commas is a field per comma,
/// a JSON `[[],[],...]` a value per 3 bytes): linear, with this factor.
const TEXT_PER_BYTE: usize = 64;

#[test]
fn text_readers_never_panic() {
    use instructmol::data::prepare::Task;
    use instructmol::data::prompts::Variant;
    use instructmol::data::{chebi20, mol_instructions, moleculenet, pubchem, qm9, record, table};
    use instructmol::eval::{parse_predictions, read_predictions};
    use instructmol::infer::rows::read_rows;

    let dir = scratch("text");
    let h = Harness::new("text readers", TEXT_PER_BYTE);
    proptest!(config(), |(bytes in text_input(), gz in any::<bool>())| {
        let len = bytes.len();
        let text = dir.join("in.txt");
        std::fs::write(&text, &bytes).unwrap();
        h.run(&text, len, true, || record::read_jsonl(&text));
        h.run(&text, len, true, || table::read_text(&text));
        h.run(&text, len, true, || table::read_lines(&text));
        h.run(&text, len, true, || table::read_csv(&text));
        h.run(&text, len, true, || read_predictions(&text));
        h.run(&text, len, true, || read_rows(&text));
        h.run(&text, len, true, || chebi20::read(&text, Variant::G, 1));
        h.run(&text, len, true, || pubchem::read(&text, Variant::Gs, 1));
        h.run(&text, len, true, || moleculenet::read(&text, Task::Bbbp, Variant::G, 1));
        h.run(&text, len, true, || qm9::read(&text, Variant::G, 1));
        h.run(&text, len, true, || mol_instructions::read(&text, Task::Forward, Variant::G, 1));
        let lossy = String::from_utf8_lossy(&bytes);
        h.run(&text, len, false, || parse_predictions(&lossy, "in.txt"));
        // The same bytes as a gzip member (valid, or the raw bytes under a .gz name).
        let gz_path = dir.join("in.csv.gz");
        let member = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&bytes).unwrap();
            e.finish().unwrap()
        } else {
            bytes.clone()
        };
        std::fs::write(&gz_path, &member).unwrap();
        h.run(&gz_path, len.max(member.len()), true, || table::read_csv(&gz_path));
    });
}

// ---------------------------------------------------------------------------------------
// Targets: model files
// ---------------------------------------------------------------------------------------

/// Model readers: the bound on the peak allocation, bytes per input byte (the brief: ~10x).
const MODEL_PER_BYTE: usize = 10;

#[test]
fn safetensors_never_panic() {
    let dir = scratch("safetensors");
    let seed = small_safetensors();
    let h = Harness::new(
        "safetensors (Weights::load, Projector::load)",
        MODEL_PER_BYTE,
    );
    proptest!(config(), |(edit in st_edit())| {
        let bytes = mutate_safetensors(seed, &edit);
        let path = dir.join("w.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        h.run(&path, bytes.len(), true, || Weights::load(&path));
        h.run(&path, bytes.len(), false, || Projector::load(&path, None));
    });
}

#[test]
fn hf_directory_never_panics() {
    let dir = scratch("hf");
    let files = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ];
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| read(&tiny_dir().join(f))).collect();
    let jsons: Vec<Option<Json>> = seeds
        .iter()
        .map(|b| serde_json::from_slice(b).ok())
        .collect();
    for (f, s) in files.iter().zip(&seeds) {
        std::fs::write(dir.join(f), s).unwrap();
    }
    let total: usize = seeds.iter().map(Vec::len).sum();
    let h = Harness::new("Hugging Face directory (load_model)", MODEL_PER_BYTE);
    let strategy = (
        0..files.len(),
        prop::collection::vec(json_edit(), 1..4),
        st_edit(),
        mutations(),
        any::<bool>(),
    );
    proptest!(config(), |((which, json_edits, st, raw, structured) in strategy)| {
        let bytes = match (&jsons[which], structured) {
            (Some(doc), true) => serde_json::to_vec(&mutate_json(doc, &json_edits)).unwrap(),
            (None, _) => mutate_safetensors(&seeds[which], &st),
            (Some(_), false) => apply(&seeds[which], &[], seeds[which].len(), &raw),
        };
        let path = dir.join(files[which]);
        std::fs::write(&path, &bytes).unwrap();
        let len = total - seeds[which].len() + bytes.len();
        // An error may name another file than the one mutated (config.json can make
        // model.safetensors lack a weight): it must name a file of the directory.
        h.run(&dir, len, true, || load_model(dir.to_str().unwrap(), DType::F32, &Device::Cpu));
        if which == 1 || which == 2 {
            let tok = dir.join(files[1]);
            let cfg = dir.join(files[2]);
            h.run(&path, len, true, || ModelTokenizer::from_hf_files(&tok, Some(&cfg)));
        }
        std::fs::write(&path, &seeds[which]).unwrap();
    });
}

#[test]
fn lora_adapter_never_panics() {
    use instructmol::model::{Llama, LlamaConfig};
    let golden = data("golden/llama_tied");
    let cfg =
        LlamaConfig::from_json(&String::from_utf8(read(&golden.join("config.json"))).unwrap())
            .unwrap();
    let base =
        candle_core::safetensors::load(golden.join("model.safetensors"), &Device::Cpu).unwrap();
    let files = ["adapter_config.json", "adapter_model.safetensors"];
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| read(&golden.join("adapter").join(f)))
        .collect();
    let adapter_config: Json = serde_json::from_slice(&seeds[0]).unwrap();
    let dir = scratch("lora");
    let total: usize = seeds.iter().map(Vec::len).sum();
    let h = Harness::new("LoRA adapter (Llama::load_peft)", MODEL_PER_BYTE);
    let strategy = (
        any::<bool>(),
        prop::collection::vec(json_edit(), 1..4),
        st_edit(),
    );
    proptest!(config(), |((on_config, json_edits, st) in strategy)| {
        let bytes = if on_config {
            serde_json::to_vec(&mutate_json(&adapter_config, &json_edits)).unwrap()
        } else {
            mutate_safetensors(&seeds[1], &st)
        };
        let which = usize::from(!on_config);
        std::fs::write(dir.join(files[which]), &bytes).unwrap();
        std::fs::write(dir.join(files[1 - which]), &seeds[1 - which]).unwrap();
        let len = total - seeds[which].len() + bytes.len();
        let mut llama = Llama::from_weights(&cfg, base.clone(), DType::F32, &Device::Cpu).unwrap();
        h.run(&dir, len, true, || llama.load_peft(&dir, &candle_nn::VarMap::new()));
    });
}

/// The varints of a protobuf message (values and the length prefixes of length-delimited
/// fields), recursing into length-delimited fields that parse as messages (sentencepiece's
/// `tokenizer.model`: pieces, trainer and normalizer specs).
fn protobuf_varints(bytes: &[u8], base: usize, depth: usize, out: &mut Vec<Field>) -> bool {
    let varint = |at: &mut usize| -> Option<(u64, Field)> {
        let start = *at;
        let mut v = 0u64;
        for i in 0..10 {
            let b = *bytes.get(*at)?;
            *at += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let f = Field {
                    at: base + start,
                    width: *at - start,
                };
                return Some((v, f));
            }
        }
        None
    };
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some((key, _)) = varint(&mut at) else {
            return false;
        };
        match key & 7 {
            0 => match varint(&mut at) {
                Some((_, f)) => found.push(f),
                None => return false,
            },
            1 => at += 8,
            5 => at += 4,
            2 => {
                let Some((len, f)) = varint(&mut at) else {
                    return false;
                };
                found.push(f);
                let end = at + len as usize;
                if end > bytes.len() {
                    return false;
                }
                if depth < 3 {
                    let mut inner = Vec::new();
                    if protobuf_varints(&bytes[at..end], base + at, depth + 1, &mut inner) {
                        found.extend(inner);
                    }
                }
                at = end;
            }
            _ => return false,
        }
    }
    out.extend(found);
    at == bytes.len()
}

/// Replaces the varint at `f` by `value` (minimally encoded: the message may change length).
fn replace_varint(bytes: &mut Vec<u8>, f: Field, value: u64) {
    let mut enc = Vec::new();
    let mut v = value;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            enc.push(b);
            break;
        }
        enc.push(b | 0x80);
    }
    bytes.splice(f.at..f.at + f.width, enc);
}

/// A Hugging Face directory in the PyTorch layout with a sentencepiece tokenizer (the
/// `llama_bin` golden, f32): `pytorch_model.bin` mutated at pickle level (the archive rebuilt
/// around it) or zip level, `tokenizer.model` at its protobuf varints or raw bytes,
/// `config.json` / `tokenizer_config.json` in their JSON structure.
#[test]
fn hf_pytorch_directory_never_panics() {
    let golden = data("golden/llama_bin");
    let files = [
        "config.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "pytorch_model.bin",
    ];
    let sources = [
        golden.join(files[0]),
        golden.join(files[1]),
        golden.join(files[2]),
        golden.join("f32").join(files[3]),
    ];
    let seeds: Vec<Vec<u8>> = sources.iter().map(|p| read(p)).collect();
    let jsons: Vec<Option<Json>> = seeds[..2]
        .iter()
        .map(|b| serde_json::from_slice(b).ok())
        .collect();
    let mut varints = Vec::new();
    assert!(
        protobuf_varints(&seeds[2], 0, 0, &mut varints),
        "tokenizer.model parses"
    );
    let bin = read_zip(&seeds[3]);
    let pkl = bin
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .expect("data.pkl");
    let dir = scratch("hf-bin");
    for (f, s) in files.iter().zip(&seeds) {
        std::fs::write(dir.join(f), s).unwrap();
    }
    let total: usize = seeds.iter().map(Vec::len).sum();
    let h = Harness::new(
        "Hugging Face PyTorch directory (load_model)",
        MODEL_PER_BYTE,
    );
    let strategy = (
        0..files.len(),
        prop::collection::vec(json_edit(), 1..4),
        prop::collection::vec((any::<usize>(), number()), 0..3),
        mutations(),
        prop::collection::vec(pickle_edit(), 1..4),
        0..3u8,
    );
    proptest!(config(), |((which, json_edits, varint_edits, raw, pickle_edits, mode) in strategy)| {
        let bytes = match which {
            0 | 1 => match (&jsons[which], mode) {
                (Some(doc), 0 | 1) => serde_json::to_vec(&mutate_json(doc, &json_edits)).unwrap(),
                _ => apply(&seeds[which], &[], seeds[which].len(), &raw),
            },
            2 if mode < 2 && !varint_edits.is_empty() => {
                let mut picked: Vec<(Field, Number)> = varint_edits
                    .iter()
                    .map(|(i, v)| (varints[i % varints.len()], *v))
                    .collect();
                picked.sort_by_key(|(f, _)| std::cmp::Reverse(f.at));
                picked.dedup_by_key(|(f, _)| f.at);
                let mut b = seeds[2].clone();
                for (f, v) in picked {
                    let old = get_le(&b, Field { at: f.at, width: 1 });
                    replace_varint(&mut b, f, v.resolve(old, seeds[2].len()));
                }
                b
            }
            3 if mode < 2 => {
                let mut entries = bin.clone();
                entries[pkl].1 = mutate_pickle(&entries[pkl].1, &pickle_edits);
                write_zip(&entries)
            }
            3 => {
                let zip = write_zip(&bin);
                let fields = zip_fields(&zip);
                apply(&zip, &fields, zip.len(), &raw)
            }
            _ => apply(&seeds[which], &[], seeds[which].len(), &raw),
        };
        let path = dir.join(files[which]);
        std::fs::write(&path, &bytes).unwrap();
        let len = total - seeds[which].len() + bytes.len();
        h.run(&dir, len, true, || load_model(dir.to_str().unwrap(), DType::F32, &Device::Cpu));
        std::fs::write(&path, &seeds[which]).unwrap();
    });
}

#[test]
fn gguf_never_panics() {
    let dir = scratch("gguf");
    let seed = tiny_gguf();
    let (kinds, header) = gguf_fields(seed);
    let named = balanced(&kinds);
    let fields: Vec<Field> = named.iter().map(|(_, f)| *f).collect();
    let h = Harness::new("GGUF (load_gguf)", MODEL_PER_BYTE);
    proptest!(config(), |(edits in mutations())| {
        describe(&edits, &named, seed);
        let bytes = apply(seed, &fields, header, &edits);
        let path = dir.join("m.gguf");
        std::fs::write(&path, &bytes).unwrap();
        h.run(&path, bytes.len(), true, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    });
}

#[test]
fn pytorch_zip_never_panics() {
    let dir = scratch("pth");
    let seeds = [
        pth_seed("gin_projector_linear.pth"),
        pth_seed("gin_projector_mlp2x_gelu.pth"),
        pth_seed("gin_model.pth"),
    ];
    let h = Harness::new(
        "PyTorch zip (Weights::load, Gin::load, Projector::load)",
        MODEL_PER_BYTE,
    );
    let strategy = (
        0..seeds.len(),
        any::<bool>(),
        prop::collection::vec(pickle_edit(), 1..4),
        mutations(),
    );
    proptest!(config(), |((which, pickle_level, pickle_edits, zip_edits) in strategy)| {
        let (entries, pkl) = &seeds[which];
        let bytes = if pickle_level {
            let mut entries = entries.clone();
            entries[*pkl].1 = mutate_pickle(&entries[*pkl].1, &pickle_edits);
            write_zip(&entries)
        } else {
            let zip = write_zip(entries);
            let fields = zip_fields(&zip);
            let header = zip.len();
            apply(&zip, &fields, header, &zip_edits)
        };
        let path = dir.join("m.pth");
        std::fs::write(&path, &bytes).unwrap();
        h.run(&path, bytes.len(), true, || Weights::load(&path));
        if which == 2 {
            h.run(&path, bytes.len(), false, || Gin::load(&path, None));
        } else {
            h.run(&path, bytes.len(), false, || Projector::load(&path, None));
        }
    });
}

#[test]
fn arbitrary_bytes_as_model_files_never_panic() {
    let dir = scratch("bytes");
    let h = Harness::new("arbitrary bytes (every model reader)", MODEL_PER_BYTE);
    let prefixes: [&[u8]; 4] = [
        b"",
        b"PK\x03\x04",
        b"GGUF\x03\x00\x00\x00",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{",
    ];
    proptest!(config(), |(prefix in 0..prefixes.len(), tail in prop::collection::vec(any::<u8>(), 0..300))| {
        let mut bytes = prefixes[prefix].to_vec();
        bytes.extend(tail);
        let path = dir.join("m.bin");
        std::fs::write(&path, &bytes).unwrap();
        h.run(&path, bytes.len(), true, || Weights::load(&path));
        h.run(&path, bytes.len(), true, || load_gguf(&path, DType::F32, &Device::Cpu, false));
        h.run(&path, bytes.len(), true, || load_model(path.to_str().unwrap(), DType::F32, &Device::Cpu));
        h.run(&path, bytes.len(), true, || ModelTokenizer::from_hf_files(&path, None));
    });
}

// ---------------------------------------------------------------------------------------
// The seeds are valid (else the targets above would fuzz nothing but the first check)
// ---------------------------------------------------------------------------------------

#[test]
fn seeds_load() {
    let dir = scratch("seeds");
    let h = Harness::new("seeds", MODEL_PER_BYTE);
    let gguf = dir.join("tiny.gguf");
    std::fs::write(&gguf, tiny_gguf()).unwrap();
    assert!(h.run(&gguf, tiny_gguf().len(), true, || load_gguf(
        &gguf,
        DType::F32,
        &Device::Cpu,
        false
    )));
    let st = dir.join("small.safetensors");
    std::fs::write(&st, small_safetensors()).unwrap();
    assert!(h.run(&st, small_safetensors().len(), true, || Weights::load(&st)));
    for name in [
        "gin_projector_linear.pth",
        "gin_projector_mlp2x_gelu.pth",
        "gin_model.pth",
    ] {
        let (entries, _) = pth_seed(name);
        let path = dir.join(name);
        let bytes = write_zip(&entries);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            h.run(&path, bytes.len(), true, || Weights::load(&path)),
            "{name}"
        );
        if name == "gin_model.pth" {
            assert!(h.run(&path, bytes.len(), false, || Gin::load(&path, None)));
        } else {
            assert!(h.run(&path, bytes.len(), false, || Projector::load(&path, None)));
        }
    }
    let tiny = tiny_dir();
    let total: usize = std::fs::read_dir(&tiny)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as usize)
        .sum();
    assert!(h.run(&tiny.join("model.safetensors"), total, true, || {
        load_model(tiny.to_str().unwrap(), DType::F32, &Device::Cpu)
    }));
    // The field maps find what they should.
    let (kinds, _) = gguf_fields(tiny_gguf());
    for kind in [
        "tensor count",
        "metadata count",
        "array length",
        "dimension",
        "tensor offset",
    ] {
        assert!(kinds.contains_key(kind), "{kind}");
    }
    let (entries, pkl) = pth_seed("gin_projector_linear.pth");
    assert_eq!(read_zip(&write_zip(&entries)), entries);
    let (fields, ops) = pickle_fields(&entries[pkl].1);
    assert!(fields.len() > 10 && ops.len() > 20);
}

// ---------------------------------------------------------------------------------------
// Regression inputs: what the fuzzing (and reading candle's readers) found. Each was a
// panic, an abort or an allocation far beyond the file size before src/model/untrusted.rs.
// ---------------------------------------------------------------------------------------

/// Writes `bytes` under a fresh scratch directory and returns the path.
fn crafted(target: &str, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(target).join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `read` on `path` in the harness (no panic, bounded memory) and returns its error.
fn refused<T, E: std::fmt::Display>(path: &Path, read: impl FnOnce() -> Result<T, E>) -> String {
    let len = std::fs::metadata(path)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let h = Harness::new("regression", MODEL_PER_BYTE);
    let mut message = None;
    let accepted = h.run(path, len, true, || {
        read().inspect_err(|e| message = Some(e.to_string()))
    });
    assert!(!accepted, "{} was accepted", path.display());
    message.unwrap_or_default()
}

// ---- GGUF ----

/// The `n`-th field of `kind` in the tiny GGUF.
fn gguf_field(kind: &str, n: usize) -> Field {
    let (kinds, _) = gguf_fields(tiny_gguf());
    kinds[kind][n]
}

/// The tiny GGUF with the u32 value of metadata `key` replaced.
fn gguf_with_u32(key: &str, value: u32) -> Vec<u8> {
    let mut bytes = tiny_gguf().to_vec();
    let needle = [
        &(key.len() as u64).to_le_bytes()[..],
        key.as_bytes(),
        &4u32.to_le_bytes(),
    ]
    .concat();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("no u32 metadata `{key}` in the seed"))
        + needle.len();
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// Found by `gguf_never_panics`: candle divides by `general.alignment` (panic: attempt to
/// divide by zero in `Content::read`).
#[test]
fn regression_gguf_alignment_zero() {
    let path = crafted(
        "reg-gguf-align",
        "align0.gguf",
        &gguf_with_u32("general.alignment", 0),
    );
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("general.alignment is 0"), "{err}");
}

/// Found by `gguf_never_panics`: dimensions whose product wraps (release) gave a tensor of
/// 2^62 x 32 elements over 0 bytes, and candle's CPU backend panicked slicing it ("range end
/// index 32 out of range for slice of length 0"); elsewhere a "capacity overflow" panic.
#[test]
fn regression_gguf_dimensions_overflow() {
    let mut bytes = tiny_gguf().to_vec();
    // The second dimension of blk.0.attn_q.weight (f16): 2^62 x 32 elements wrap to 0 bytes.
    put_le(&mut bytes, gguf_field("dimension", 6), 1 << 62);
    let path = crafted("reg-gguf-dims", "dims.gguf", &bytes);
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("overflow"), "{err}");
}

/// Found by `gguf_never_panics` in a debug build: a zero dimension gives an empty tensor whose
/// empty byte buffer candle casts to a slice of f16 with `slice::from_raw_parts` from a
/// pointer not aligned for it (undefined behaviour; a debug build aborts the process:
/// "unsafe precondition(s) violated").
#[test]
fn regression_gguf_zero_dimension() {
    let mut bytes = tiny_gguf().to_vec();
    put_le(&mut bytes, gguf_field("dimension", 6), 0);
    let path = crafted("reg-gguf-zero", "zero.gguf", &bytes);
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("has no elements"), "{err}");
}

/// A minimal llama GGUF, written byte by byte: `layers` decoder layers of width 32 whose
/// tensors all read the same f32 region of `region` floats (a real file never does this).
fn gguf_sharing_one_region(layers: usize, region: usize) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let kv_u32 = |out: &mut Vec<u8>, k: &str, v: u32| {
        string(out, k);
        out.extend(4u32.to_le_bytes());
        out.extend(v.to_le_bytes());
    };
    let kv_str = |out: &mut Vec<u8>, k: &str, v: &str| {
        string(out, k);
        out.extend(8u32.to_le_bytes());
        string(out, v);
    };
    let kv_strings = |out: &mut Vec<u8>, k: &str, v: &[&str]| {
        string(out, k);
        out.extend(9u32.to_le_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend((v.len() as u64).to_le_bytes());
        for s in v {
            string(out, s);
        }
    };
    let names = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    let side = (region as f64).sqrt() as u64;
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![side, side]),
        ("output_norm.weight".into(), vec![side]),
    ];
    for i in 0..layers {
        for n in names {
            tensors.push((format!("blk.{i}.{n}.weight"), vec![side, side]));
        }
        tensors.push((format!("blk.{i}.attn_norm.weight"), vec![side]));
        tensors.push((format!("blk.{i}.ffn_norm.weight"), vec![side]));
    }
    let mut out = Vec::new();
    out.extend(0x4655_4747u32.to_le_bytes());
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend(9u64.to_le_bytes());
    kv_str(&mut out, "general.architecture", "llama");
    kv_u32(&mut out, "llama.block_count", layers as u32);
    kv_u32(&mut out, "llama.embedding_length", side as u32);
    kv_u32(&mut out, "llama.feed_forward_length", side as u32);
    kv_u32(&mut out, "llama.attention.head_count", 2);
    kv_u32(&mut out, "llama.vocab_size", side as u32);
    kv_str(&mut out, "tokenizer.ggml.model", "gpt2");
    kv_strings(&mut out, "tokenizer.ggml.tokens", &["a", "b"]);
    kv_strings(&mut out, "tokenizer.ggml.merges", &[]);
    for (name, dims) in &tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // f32
        out.extend(0u64.to_le_bytes()); // every tensor at offset 0
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend(std::iter::repeat_n(0u8, side as usize * side as usize * 4));
    out
}

/// Found reading candle's GGUF reader: tensor byte ranges may overlap, so one region of the
/// file is dequantized once per tensor that names it: 290 tensors over one 256 KiB region
/// took 59 MB for a 280 KB file (quadratic in the file size).
#[test]
fn regression_gguf_tensors_sharing_bytes() {
    let bytes = gguf_sharing_one_region(32, 256 * 256);
    let path = crafted("reg-gguf-overlap", "shared.gguf", &bytes);
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("overlap"), "{err}");
}

/// Found reading candle's GGUF reader: every array element becomes a 32-byte `Value`, so a
/// 4 MiB array of bytes took 134 MB.
#[test]
fn regression_gguf_metadata_byte_array() {
    let n = 1usize << 22;
    let mut out = Vec::new();
    out.extend(0x4655_4747u32.to_le_bytes());
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend(1u64.to_le_bytes());
    out.extend(4u64.to_le_bytes());
    out.extend(b"blob");
    out.extend(9u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend((n as u64).to_le_bytes());
    out.extend(std::iter::repeat_n(7u8, n));
    let path = crafted("reg-gguf-bytes", "bytes.gguf", &out);
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("metadata would take more than"), "{err}");
}

/// Found reading the loader: `llama.block_count` (or `num_hidden_layers`) of 2^32 - 1 made
/// the loader list 9 x 2^32 expected tensor names before comparing them with the file (the
/// process died out of memory).
#[test]
fn regression_gguf_layer_count() {
    let path = crafted(
        "reg-gguf-layers",
        "layers.gguf",
        &gguf_with_u32("llama.block_count", u32::MAX),
    );
    let err = refused(&path, || load_gguf(&path, DType::F32, &Device::Cpu, false));
    assert!(err.contains("4294967295 decoder layers"), "{err}");
}

// ---- Hugging Face directory ----

#[test]
fn regression_config_layer_count() {
    let dir = scratch("reg-hf-layers");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        std::fs::copy(tiny_dir().join(f), dir.join(f)).unwrap();
    }
    let mut cfg: Json = serde_json::from_slice(&read(&tiny_dir().join("config.json"))).unwrap();
    cfg["num_hidden_layers"] = serde_json::json!(1u64 << 40);
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let err = refused(&dir, || {
        load_model(dir.to_str().unwrap(), DType::F32, &Device::Cpu)
    });
    assert!(err.contains("1099511627776 decoder layers"), "{err}");
}

/// Whether the tokenizers crate itself panics reading `path` (the upstream bug a check works
/// around; when this turns false after an upgrade, the check may go).
fn tokenizers_panics(path: &Path) -> bool {
    catch_unwind(|| tokenizers::Tokenizer::from_file(path).map(drop)).is_err()
}

/// Found by `hf_directory_never_panics`: the tokenizers crate panics (`expect("Helper")`)
/// when the `decoder` object of tokenizer.json is not well-formed JSON.
#[test]
fn regression_tokenizer_malformed_decoder() {
    let text = String::from_utf8(read(&tiny_dir().join("tokenizer.json"))).unwrap();
    let broken = text.replacen("\"decoder\": {\n    \"type\"", "\"decoder\": {type\"", 1);
    assert_ne!(broken, text, "the seed's decoder object moved");
    let path = crafted("reg-tok", "tokenizer.json", broken.as_bytes());
    assert!(
        tokenizers_panics(&path),
        "the tokenizers crate no longer panics on this"
    );
    let err = refused(&path, || ModelTokenizer::from_hf_files(&path, None));
    assert!(
        err.contains("invalid JSON") && err.contains("line"),
        "{err}"
    );
}

/// Found by `hf_directory_never_panics`: a `continuing_subword_prefix` longer than the second
/// token of a merge made the tokenizers crate's BPE builder panic (slice out of range).
#[test]
fn regression_tokenizer_bpe_prefix() {
    let mut doc: Json = serde_json::from_slice(&read(&tiny_dir().join("tokenizer.json"))).unwrap();
    doc["model"]["continuing_subword_prefix"] = serde_json::json!("llama");
    let path = crafted(
        "reg-tok-prefix",
        "tokenizer.json",
        &serde_json::to_vec(&doc).unwrap(),
    );
    let err = refused(&path, || ModelTokenizer::from_hf_files(&path, None));
    assert!(err.contains("continuing_subword_prefix `llama`"), "{err}");
}

/// Found reading the tokenizers crate's BPE builder (after the finding above): a merge of two
/// vocabulary tokens whose join is longer than every vocabulary entry panics the same way
/// (instead of "merge token out of vocabulary").
#[test]
fn regression_tokenizer_bpe_long_merge() {
    let mut doc: Json = serde_json::from_slice(&read(&tiny_dir().join("tokenizer.json"))).unwrap();
    let merges = doc["model"]["merges"].as_array_mut().unwrap();
    merges.insert(0, serde_json::json!(["<|endoftext|>", "<|im_start|>"]));
    let path = crafted(
        "reg-tok-long",
        "tokenizer.json",
        &serde_json::to_vec(&doc).unwrap(),
    );
    let err = refused(&path, || ModelTokenizer::from_hf_files(&path, None));
    assert!(err.contains("longer than any"), "{err}");
}

// ---- PyTorch zip archives ----

/// A pickled `_rebuild_tensor_v2` record as `torch.save` writes it (without the memo).
fn tensor_pickle(name: &str, storage: &str, numel: i32, offset: i32, shape: &[i32]) -> Vec<u8> {
    let mut p = Vec::new();
    let unicode = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: i32| {
        p.push(b'J');
        p.extend(v.to_le_bytes());
    };
    unicode(&mut p, name);
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'(');
    unicode(&mut p, "storage");
    p.extend(b"ctorch\nFloatStorage\n");
    unicode(&mut p, storage);
    unicode(&mut p, "cpu");
    int(&mut p, numel);
    p.extend(b"tQ");
    int(&mut p, offset);
    p.push(b'(');
    for &d in shape {
        int(&mut p, d);
    }
    p.extend(b"t(");
    let mut stride = 1i32;
    let mut strides: Vec<i32> = shape
        .iter()
        .rev()
        .map(|&d| {
            let s = stride;
            stride = stride.wrapping_mul(d.max(1));
            s
        })
        .collect();
    strides.reverse();
    for s in strides {
        int(&mut p, s);
    }
    p.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
    p
}

/// A zip archive holding a state dict of `records` and the given storages.
fn pth(records: &[Vec<u8>], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut pkl = b"\x80\x02}(".to_vec();
    for r in records {
        pkl.extend(r);
    }
    pkl.extend(b"u.");
    let mut entries = vec![("archive/data.pkl".to_string(), pkl)];
    for (key, bytes) in storages {
        entries.push((format!("archive/data/{key}"), bytes.clone()));
    }
    write_zip(&entries)
}

#[test]
fn crafted_state_dicts_load() {
    // The regression builders below make archives candle reads, when not crafted.
    let floats: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let bytes = pth(&[tensor_pickle("w", "0", 6, 0, &[2, 3])], &[("0", floats)]);
    let path = crafted("crafted-ok", "ok.pth", &bytes);
    let w = Weights::load(&path).unwrap();
    assert_eq!(w.get("w").unwrap().dims(), &[2, 3]);
}

/// Found by `pytorch_zip_never_panics`: a BINUNICODE length of 2^31 - 1 made candle allocate
/// 2 GiB before reading the string (a 387-byte file here; a 3 KB one in the fuzzing).
#[test]
fn regression_pth_string_length() {
    let mut record = tensor_pickle("w", "0", 1, 0, &[1]);
    record[1..5].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let bytes = pth(&[record], &[("0", vec![0; 4])]);
    let path = crafted("reg-pth-string", "string.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("a string of 2147483647 bytes"), "{err}");
}

/// Found reading candle's pickle reader: it deep-copies a memo entry on every get, so forty
/// "get it twice, pair it, put it back" steps (300 bytes) ask for 2^40 objects (out of memory).
#[test]
fn regression_pth_memo_bomb() {
    let mut pkl = b"\x80\x02Nq\x00".to_vec();
    for _ in 0..40 {
        pkl.extend(b"h\x00h\x00\x86q\x00");
    }
    pkl.push(b'.');
    let bytes = write_zip(&[("archive/data.pkl".to_string(), pkl)]);
    let path = crafted("reg-pth-bomb", "bomb.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(
        err.contains("more than") && err.contains("bytes of objects"),
        "{err}"
    );
}

/// Found reading candle's pickle reader: it nests as deep as the pickle says and clones and
/// drops recursively: 200 000 TUPLE1 opcodes overflow the stack (the process dies).
#[test]
fn regression_pth_deep_nesting() {
    let mut pkl = b"\x80\x02N".to_vec();
    pkl.extend(std::iter::repeat_n(0x85u8, 200_000));
    pkl.push(b'.');
    let bytes = write_zip(&[("archive/data.pkl".to_string(), pkl)]);
    let path = crafted("reg-pth-deep", "deep.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("nested more than"), "{err}");
}

/// Found reading candle's pickle reader: it allocates a tensor's declared shape before
/// reading its storage: 2^20 x 2^20 floats over a 4-byte storage asked for 4 TiB (abort).
#[test]
fn regression_pth_shape_beyond_storage() {
    let bytes = pth(
        &[tensor_pickle("w", "0", 1, 0, &[1 << 20, 1 << 20])],
        &[("0", vec![0; 4])],
    );
    let path = crafted("reg-pth-shape", "shape.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("needs more than the 4 bytes"), "{err}");
}

/// Found reading candle's pickle reader: any number of tensors may read one storage, each
/// into its own memory: 300 tensors over one 256 KiB storage took 79 MB for a 309 KB file.
#[test]
fn regression_pth_tensors_sharing_storage() {
    let n = 256 * 256;
    let records: Vec<Vec<u8>> = (0..300)
        .map(|i| tensor_pickle(&format!("w{i}"), "0", n, 0, &[256, 256]))
        .collect();
    let bytes = pth(&records, &[("0", vec![0; n as usize * 4])]);
    let path = crafted("reg-pth-shared", "shared.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(
        err.contains("several tensors read the same storage bytes"),
        "{err}"
    );
}

/// Found by `pytorch_zip_never_panics`: a `_rebuild_tensor_v2` argument tuple of 3 items made
/// candle's `rebuild_args` panic (`Vec::remove` index out of bounds; caught by
/// `Weights::from_pth`'s guard, reported as "malformed PyTorch archive").
#[test]
fn regression_pth_short_record() {
    let pkl =
        b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(K\x00K\x01K\x02tRu."
            .to_vec();
    let bytes = write_zip(&[("archive/data.pkl".to_string(), pkl)]);
    let path = crafted("reg-pth-short", "short.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("too few"), "{err}");
}

/// Found reading candle's pickle reader: a LONG1 of more than 8 bytes shifts an i64 by 64 or
/// more (a panic in debug builds).
#[test]
fn regression_pth_long1() {
    let pkl = b"\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.".to_vec();
    let bytes = write_zip(&[("archive/data.pkl".to_string(), pkl)]);
    let path = crafted("reg-pth-long1", "long1.pth", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("LONG1 of 9 bytes"), "{err}");
}

// ---- safetensors ----

/// Found probing the safetensors reader: a shape is a JSON list of any length; 500 000 ones
/// (a 1 MB header) took 22 MB in `Weights::load`.
#[test]
fn regression_safetensors_rank() {
    let shape = vec!["1"; 500_000].join(",");
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{shape}],"data_offsets":[0,4]}}}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(1f32.to_le_bytes());
    let path = crafted("reg-st-rank", "rank.safetensors", &bytes);
    let err = refused(&path, || Weights::load(&path));
    assert!(err.contains("500000 dimensions"), "{err}");
    let dir = scratch("reg-st-rank-hf");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny_dir().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
    let err = refused(&dir, || {
        load_model(dir.to_str().unwrap(), DType::F32, &Device::Cpu)
    });
    assert!(err.contains("500000 dimensions"), "{err}");
}
