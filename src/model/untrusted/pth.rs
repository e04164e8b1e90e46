//! PyTorch zip archive check: every `data.pkl` is run through a mirror of candle's pickle
//! machine (`candle_core::pickle::Stack`) that shares instead of copying and counts what
//! candle would allocate, and every tensor candle would load is checked against the bytes
//! of its storage entry.
//!
//! The mirror follows candle 0.11.1's `pickle.rs` opcode by opcode (the same opcodes, the
//! same errors, `d` read as an empty dict as candle does, `collections.OrderedDict` reduced to
//! an empty dict), and its `read_pth_tensor_info` / `into_tensor_info` / `rebuild_args`
//! branch by branch, so that the tensors checked here are exactly the tensors candle reads.
//! Where candle would panic (a tensor record tuple too short for its `Vec::remove`, an offset
//! that overflows) the archive is refused instead.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use candle_core::pickle::Object;

use super::{elem_count, UntrustedError};

/// Deepest nesting of pickled objects (candle clones, compares and drops them recursively).
/// Torch state dicts nest about 6 deep.
const MAX_DEPTH: u32 = 64;
/// Memory candle's objects may take while a pickle is read, per byte of the pickle, as
/// estimated here (candle's real peak is about 1.5 times the estimate: vectors grow by
/// doubling). Every opcode of one or two bytes makes a 56-byte `Object`, and `torch.save`
/// memoizes every object, which candle then holds twice: the GIN golden's state dict is
/// estimated at 21 bytes per pickle byte (candle's real peak: 33). A pickle that gets one
/// memo entry over and over is refused once past this.
const PICKLE_PER_BYTE: u64 = 40;
/// Object allowance whatever the pickle size.
const PICKLE_FLOOR: u64 = 1 << 20;
/// Bytes of the tensors once read and converted to f32, per byte of the archive. One
/// tensor per storage byte is 1; tied weights (two tensors on one storage) are 2.
const TENSOR_PER_BYTE: u64 = 4;

/// Refuses a zip-format PyTorch file that candle's reader would turn into more memory than
/// its size justifies, or on which it would panic.
///
/// Checked, for every `*data.pkl` entry: each opcode's arguments against the bytes left
/// (a string length), the nesting depth and the bytes of objects candle's machine holds
/// (memo gets copy); for every tensor record candle would load: its storage entry exists,
/// the tensor's bytes (shape x element size, after the storage offset) lie inside that
/// entry's bytes in the file, and all tensors together, as f32, stay within a few times the
/// file size.
pub fn check_pth(path: &Path) -> Result<(), UntrustedError> {
    let refuse = |reason: String| UntrustedError::Pth {
        path: path.to_path_buf(),
        reason,
    };
    let (file, size) = super::open_sized(path)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| refuse(format!("not a zip archive: {e}")))?;
    let names = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| refuse(format!("an entry name cannot be read: {e}")))?;
    let mut tensor_bytes = 0u64;
    let tensor_limit = size.saturating_mul(TENSOR_PER_BYTE);
    for pkl in names.iter().filter(|n| n.ends_with("data.pkl")) {
        let dir = pkl.strip_suffix(".pkl").unwrap_or(pkl);
        let bytes = {
            let entry = zip
                .by_name(pkl)
                .map_err(|e| refuse(format!("entry `{pkl}`: {e}")))?;
            let readable = entry.size().min(entry.compressed_size()).min(size);
            let mut bytes = Vec::new();
            entry
                .take(readable)
                .read_to_end(&mut bytes)
                .map_err(|e| refuse(format!("entry `{pkl}`: {e}")))?;
            bytes
        };
        let root = Machine::new(bytes.len())
            .run(&bytes)
            .map_err(|e| refuse(format!("`{pkl}`: {e}")))?;
        let Some(pairs) = state_dict(root) else {
            continue;
        };
        for (key, value) in &pairs {
            let t = match tensor_record(key, value) {
                Record::Skip => continue,
                Record::Bad(reason) => return Err(refuse(format!("`{pkl}`: {reason}"))),
                Record::Tensor(t) => t,
            };
            let storage = format!("{dir}/{}", t.file);
            let readable = match zip.by_name(&storage) {
                Ok(entry) => entry.size().min(entry.compressed_size()).min(size),
                Err(e) => {
                    return Err(refuse(format!(
                        "tensor `{}` is stored in `{storage}`: {e}",
                        t.name
                    )))
                }
            };
            let elems = elem_count(t.shape.iter().copied()).ok_or_else(|| {
                refuse(format!(
                    "tensor `{}`: the shape {:?} overflows",
                    t.name, t.shape
                ))
            })?;
            let end = elems
                .checked_mul(t.elem_bytes)
                .and_then(|n| n.checked_add(t.start));
            if end.is_none_or(|end| end > readable) {
                return Err(refuse(format!(
                    "tensor `{}` of shape {:?} at element {} needs more than the {readable} bytes of `{storage}`",
                    t.name, t.shape, t.offset
                )));
            }
            tensor_bytes = tensor_bytes.saturating_add(elems.saturating_mul(t.elem_bytes.max(4)));
            if tensor_bytes > tensor_limit {
                return Err(refuse(format!(
                    "the tensors would take more than {tensor_limit} bytes as f32 ({TENSOR_PER_BYTE} \
                     times the file): several tensors read the same storage bytes"
                )));
            }
        }
    }
    Ok(())
}

/// A tensor candle would read.
struct TensorRecord {
    name: String,
    /// Storage file, relative to the pickle's directory.
    file: String,
    shape: Vec<u64>,
    /// Offset into the storage, in elements (as pickled).
    offset: i64,
    /// Offset into the storage, in bytes.
    start: u64,
    elem_bytes: u64,
}

/// What candle's `into_tensor_info` makes of one state-dict entry.
enum Record {
    /// Not a tensor, or a malformed one candle skips (`Ok(None)` or an `Err` it prints).
    Skip,
    /// A record on which candle would panic.
    Bad(String),
    Tensor(TensorRecord),
}

/// The entries candle looks for tensors in (`read_pth_tensor_info`): the dict itself, or
/// the dict built into a TorchScript `__torch__.Module`; `None` when candle skips the pickle.
fn state_dict(root: Node) -> Option<Vec<(Rc<Node>, Rc<Node>)>> {
    let obj = match root.obj {
        Obj::Build(callable, args) => match &callable.obj {
            Obj::Reduce(inner, _) if class_of(inner) == Some(("__torch__", "Module")) => {
                args.obj.clone()
            }
            _ => return None,
        },
        obj => obj,
    };
    match obj {
        Obj::Dict(pairs) => Some(pairs),
        _ => None,
    }
}

fn class_of(node: &Node) -> Option<(&str, &str)> {
    match &node.obj {
        Obj::Class { module, name } => Some((module, name)),
        _ => None,
    }
}

/// candle's `into_tensor_info` and `rebuild_args`, branch by branch.
fn tensor_record(key: &Node, value: &Node) -> Record {
    let Obj::Unicode(name) = &key.obj else {
        return Record::Skip;
    };
    let Obj::Reduce(callable, args) = &value.obj else {
        return Record::Skip;
    };
    let short = |what: &str, n: usize| {
        Record::Bad(format!(
            "the record of tensor `{name}` has a {what} of {n} items, too few"
        ))
    };
    let (callable, args): (&Node, &Node) = match class_of(callable) {
        Some(("torch._tensor", "_rebuild_from_type_v2")) => {
            let Obj::Tuple(items) = &args.obj else {
                return Record::Skip;
            };
            if items.len() < 3 {
                return short("_rebuild_from_type_v2 argument tuple", items.len());
            }
            (&items[0], &items[2])
        }
        Some(("torch._utils", "_rebuild_parameter")) => {
            let Obj::Tuple(items) = &args.obj else {
                return Record::Skip;
            };
            let Some(first) = items.first() else {
                return short("_rebuild_parameter argument tuple", 0);
            };
            let Obj::Reduce(c, a) = &first.obj else {
                return Record::Skip;
            };
            (c, a)
        }
        _ => (callable, args),
    };
    if class_of(callable) != Some(("torch._utils", "_rebuild_tensor_v2")) {
        return Record::Skip;
    }
    let Obj::Tuple(items) = &args.obj else {
        return Record::Skip;
    };
    if items.len() < 4 {
        return short("_rebuild_tensor_v2 argument tuple", items.len());
    }
    let (Some(_stride), Some(shape), Some(offset)) = (
        usize_tuple(&items[3]),
        usize_tuple(&items[2]),
        int_or_long(&items[1]),
    ) else {
        return Record::Skip;
    };
    let Obj::PersistentLoad(storage) = &items[0].obj else {
        return Record::Skip;
    };
    let Obj::Tuple(storage) = &storage.obj else {
        return Record::Skip;
    };
    if storage.len() < 5 {
        return short("storage tuple", storage.len());
    }
    let (Some(_size), Obj::Unicode(file), Some((_, class))) = (
        int_or_long(&storage[4]),
        &storage[2].obj,
        class_of(&storage[1]),
    ) else {
        return Record::Skip;
    };
    let elem_bytes = match class {
        "FloatStorage" => 4,
        "DoubleStorage" => 8,
        "HalfStorage" => 2,
        "BFloat16Storage" => 2,
        "ByteStorage" => 1,
        "LongStorage" => 8,
        _ => return Record::Skip,
    };
    // candle multiplies the offset, cast to usize, by the element size.
    let Some(start) = (offset as u64).checked_mul(elem_bytes) else {
        return Record::Bad(format!(
            "tensor `{name}` starts at element {offset} of its storage, an overflowing byte offset"
        ));
    };
    Record::Tensor(TensorRecord {
        name: name.to_string(),
        file: file.to_string(),
        shape,
        offset,
        start,
        elem_bytes,
    })
}

/// candle's `Vec<usize>::try_from(Object)`: a tuple of non-negative 32-bit ints.
fn usize_tuple(node: &Node) -> Option<Vec<u64>> {
    match &node.obj {
        Obj::Tuple(items) => items
            .iter()
            .map(|i| match i.obj {
                Obj::Int(v) if v >= 0 => Some(v as u64),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn int_or_long(node: &Node) -> Option<i64> {
    match node.obj {
        Obj::Int(v) => Some(i64::from(v)),
        Obj::Long(v) => Some(v),
        _ => None,
    }
}

/// A pickled object as candle's `Object` holds it, children shared instead of copied.
#[derive(Debug, Clone)]
enum Obj {
    Class {
        module: Rc<str>,
        name: Rc<str>,
    },
    Int(i32),
    Long(i64),
    Unicode(Rc<str>),
    Mark,
    Tuple(Vec<Rc<Node>>),
    List(Vec<Rc<Node>>),
    Dict(Vec<(Rc<Node>, Rc<Node>)>),
    Reduce(Rc<Node>, Rc<Node>),
    Build(Rc<Node>, Rc<Node>),
    PersistentLoad(Rc<Node>),
    /// Float, Bool, None: nothing candle's tensor reader looks into.
    Scalar,
}

/// An object with what candle's copy of it costs: bytes (its `Object` slots and strings)
/// and nesting depth.
#[derive(Debug, Clone)]
struct Node {
    obj: Obj,
    cost: u64,
    depth: u32,
}

/// Size of one candle `Object`.
fn slot() -> u64 {
    std::mem::size_of::<Object>() as u64
}

impl Node {
    fn leaf(obj: Obj, extra: u64) -> Self {
        Self {
            obj,
            cost: slot() + extra,
            depth: 1,
        }
    }

    /// A container of `children`, costed and nested as candle's value holding copies of them.
    fn of<'a>(obj: Obj, children: impl IntoIterator<Item = &'a Rc<Node>>) -> Self {
        let (mut cost, mut depth) = (slot(), 0);
        for c in children {
            cost = cost.saturating_add(c.cost);
            depth = depth.max(c.depth);
        }
        Self {
            obj,
            cost,
            depth: depth + 1,
        }
    }
}

type Res<T> = std::result::Result<T, String>;

/// The mirror of candle's pickle `Stack`.
struct Machine {
    stack: Vec<Node>,
    memo: HashMap<u32, Rc<Node>>,
    /// Bytes candle's stack and memo hold now (estimate).
    live: u64,
    /// Highest `live` so far.
    peak: u64,
    limit: u64,
}

impl Machine {
    fn new(pickle_len: usize) -> Self {
        Self {
            stack: Vec::new(),
            memo: HashMap::new(),
            live: 0,
            peak: 0,
            limit: (pickle_len as u64)
                .saturating_mul(PICKLE_PER_BYTE)
                .saturating_add(PICKLE_FLOOR),
        }
    }

    fn charge(&mut self, bytes: u64) -> Res<()> {
        self.live = self.live.saturating_add(bytes);
        self.peak = self.peak.max(self.live);
        if self.live > self.limit {
            return Err(format!(
                "reading it would hold more than {} bytes of objects (memo entries are copied on \
                 every get; a pickle this size needs far less)",
                self.limit
            ));
        }
        Ok(())
    }

    fn push(&mut self, node: Node) -> Res<()> {
        if node.depth > MAX_DEPTH {
            return Err(format!("objects nested more than {MAX_DEPTH} deep"));
        }
        self.charge(node.cost)?;
        self.stack.push(node);
        Ok(())
    }

    fn pop(&mut self) -> Res<Node> {
        let node = self.stack.pop().ok_or("unexpected empty stack")?;
        self.live = self.live.saturating_sub(node.cost);
        Ok(node)
    }

    fn pop_rc(&mut self) -> Res<Rc<Node>> {
        self.pop().map(Rc::new)
    }

    fn pop_to_marker(&mut self) -> Res<Vec<Rc<Node>>> {
        let mark = self
            .stack
            .iter()
            .rposition(|n| matches!(n.obj, Obj::Mark))
            .ok_or("marker object not found")?;
        let objs: Vec<Node> = self.stack.split_off(mark + 1);
        let marker = self.stack.pop().ok_or("marker object not found")?;
        let freed = objs.iter().fold(marker.cost, |acc, n| acc + n.cost);
        self.live = self.live.saturating_sub(freed);
        Ok(objs.into_iter().map(Rc::new).collect())
    }

    /// Adds `added` (popped before) to the list or dict on top of the stack (`kind` says
    /// which candle expects there): APPEND(S), SETITEM(S).
    fn grow_top(&mut self, added: &[Rc<Node>], kind: &str) -> Res<()> {
        let top = self.stack.last_mut().ok_or("unexpected empty stack")?;
        let ok = matches!(
            (&top.obj, kind),
            (Obj::List(_), "list") | (Obj::Dict(_), "dict")
        );
        if !ok {
            return Err(format!("expected a {kind}, got another object"));
        }
        let mut extra = 0u64;
        for n in added {
            extra = extra.saturating_add(n.cost);
            top.depth = top.depth.max(n.depth + 1);
        }
        if top.depth > MAX_DEPTH {
            return Err(format!("objects nested more than {MAX_DEPTH} deep"));
        }
        top.cost = top.cost.saturating_add(extra);
        match (&mut top.obj, kind) {
            (Obj::List(items), _) => items.extend(added.iter().cloned()),
            (Obj::Dict(pairs), _) => {
                for pair in added.chunks(2) {
                    if let [k, v] = pair {
                        pairs.push((k.clone(), v.clone()));
                    }
                }
            }
            _ => {}
        }
        self.charge(extra)
    }

    /// Runs the pickle to its STOP; returns the object candle's `finalize` pops.
    fn run(self, bytes: &[u8]) -> Res<Node> {
        self.run_peak(bytes).map(|(root, _)| root)
    }

    /// [`Self::run`], and the most bytes held at once.
    fn run_peak(mut self, bytes: &[u8]) -> Res<(Node, u64)> {
        let mut r = Bytes { bytes, pos: 0 };
        loop {
            let op = r.u8()?;
            match op {
                0x80 => {
                    r.u8()?;
                }
                b'c' => {
                    let module = r.line();
                    let name = r.line();
                    let extra = (module.len() + name.len()) as u64;
                    self.push(Node::leaf(
                        Obj::Class {
                            module: module.into(),
                            name: name.into(),
                        },
                        extra,
                    ))?;
                }
                b'K' => {
                    let v = r.u8()?;
                    self.push(Node::leaf(Obj::Int(i32::from(v)), 0))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(r.take::<2>()?);
                    self.push(Node::leaf(Obj::Int(i32::from(v)), 0))?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(r.take::<4>()?);
                    self.push(Node::leaf(Obj::Int(v), 0))?;
                }
                b'G' => {
                    r.take::<8>()?;
                    self.push(Node::leaf(Obj::Scalar, 0))?;
                }
                b'X' => {
                    let len = u64::from(u32::from_le_bytes(r.take::<4>()?));
                    let left = r.left();
                    if len > left {
                        return Err(format!(
                            "a string of {len} bytes at byte {}, only {left} remain",
                            r.pos
                        ));
                    }
                    let text = std::str::from_utf8(r.slice(len as usize))
                        .map_err(|e| format!("a string that is not UTF-8: {e}"))?;
                    self.push(Node::leaf(Obj::Unicode(text.into()), len))?;
                }
                b'Q' => {
                    let id = self.pop_rc()?;
                    self.push(Node::of(Obj::PersistentLoad(id.clone()), [&id]))?;
                }
                b't' => {
                    let objs = self.pop_to_marker()?;
                    self.push(Node::of(Obj::Tuple(objs.clone()), &objs))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut objs = Vec::with_capacity(n);
                    for _ in 0..n {
                        objs.push(self.pop_rc()?);
                    }
                    objs.reverse();
                    self.push(Node::of(Obj::Tuple(objs.clone()), &objs))?;
                }
                0x88 | 0x89 | b'N' => self.push(Node::leaf(Obj::Scalar, 0))?,
                b'a' => {
                    let value = self.pop_rc()?;
                    self.grow_top(&[value], "list")?;
                }
                b'e' => {
                    let objs = self.pop_to_marker()?;
                    self.grow_top(&objs, "list")?;
                }
                b's' => {
                    let value = self.pop_rc()?;
                    let key = self.pop_rc()?;
                    self.grow_top(&[key, value], "dict")?;
                }
                b'u' => {
                    let objs = self.pop_to_marker()?;
                    if !matches!(self.stack.last().map(|n| &n.obj), Some(Obj::Dict(_))) {
                        return Err("expected a dict, got another object".into());
                    }
                    if objs.len() % 2 != 0 {
                        return Err("setitems: not an even number of objects".into());
                    }
                    self.grow_top(&objs, "dict")?;
                }
                b'.' => return Ok((self.pop()?, self.peak)),
                b'b' => {
                    let args = self.pop_rc()?;
                    let obj = self.pop_rc()?;
                    let node = match (&obj.obj, &args.obj) {
                        (Obj::Dict(a), Obj::Dict(b)) => {
                            let pairs: Vec<_> = a.iter().chain(b).cloned().collect();
                            Node {
                                cost: (obj.cost + args.cost).saturating_sub(slot()),
                                depth: obj.depth.max(args.depth),
                                obj: Obj::Dict(pairs),
                            }
                        }
                        _ => Node::of(Obj::Build(obj.clone(), args.clone()), [&obj, &args]),
                    };
                    self.push(node)?;
                }
                b'}' | b'd' => self.push(Node::leaf(Obj::Dict(Vec::new()), 0))?,
                b'(' => self.push(Node::leaf(Obj::Mark, 0))?,
                b'R' => {
                    let args = self.pop_rc()?;
                    let callable = self.pop_rc()?;
                    let dict = matches!(
                        class_of(&callable),
                        Some(("collections", "OrderedDict" | "defaultdict"))
                    );
                    let node = if dict {
                        Node::leaf(Obj::Dict(Vec::new()), 0)
                    } else {
                        Node::of(
                            Obj::Reduce(callable.clone(), args.clone()),
                            [&callable, &args],
                        )
                    };
                    self.push(node)?;
                }
                0x81 => {
                    let args = self.pop_rc()?;
                    let class = self.pop_rc()?;
                    self.push(Node::of(
                        Obj::Reduce(class.clone(), args.clone()),
                        [&class, &args],
                    ))?;
                }
                b')' => self.push(Node::leaf(Obj::Tuple(Vec::new()), 0))?,
                b']' => self.push(Node::leaf(Obj::List(Vec::new()), 0))?,
                b'h' | b'j' => {
                    let id = if op == b'h' {
                        u32::from(r.u8()?)
                    } else {
                        u32::from_le_bytes(r.take::<4>()?)
                    };
                    let node = self
                        .memo
                        .get(&id)
                        .ok_or_else(|| format!("missing object in memo {id}"))?;
                    let copy = Node::clone(node);
                    self.push(copy)?;
                }
                b'q' | b'r' => {
                    let id = if op == b'q' {
                        u32::from(r.u8()?)
                    } else {
                        u32::from_le_bytes(r.take::<4>()?)
                    };
                    let top = self.stack.last().ok_or("unexpected empty stack")?.clone();
                    let cost = top.cost;
                    self.charge(cost)?;
                    if let Some(old) = self.memo.insert(id, Rc::new(top)) {
                        self.live = self.live.saturating_sub(old.cost);
                    }
                }
                0x8a => {
                    let n = r.u8()?;
                    if n > 8 {
                        return Err(format!(
                            "a LONG1 of {n} bytes at byte {} (at most 8 fit the 64-bit integer it is read into)",
                            r.pos - 1
                        ));
                    }
                    let mut v = 0i64;
                    for i in 0..n {
                        v |= i64::from(r.u8()?) << (8 * u32::from(i));
                    }
                    self.push(Node::leaf(Obj::Long(v), 0))?;
                }
                other => return Err(format!("unknown op-code {other} at byte {}", r.pos - 1)),
            }
        }
    }
}

/// The pickle bytes and a position in them.
struct Bytes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn left(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take<const N: usize>(&mut self) -> Res<[u8; N]> {
        let b = self
            .bytes
            .get(self.pos..self.pos + N)
            .ok_or_else(|| format!("the pickle ends inside an opcode at byte {}", self.pos))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u8(&mut self) -> Res<u8> {
        self.take::<1>().map(|[b]| b)
    }

    /// `len` bytes (the caller checked they are there).
    fn slice(&mut self, len: usize) -> &[u8] {
        let s = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        s
    }

    /// candle's `read_to_newline`: up to and without the newline (a missing newline at the
    /// end drops the last byte, as candle does), then without a trailing `\r`.
    fn line(&mut self) -> String {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let mut line = &rest[..end];
        self.pos += end;
        line = line.split_last().map_or(line, |(_, l)| l);
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        String::from_utf8_lossy(line).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_bomb_is_refused() {
        // A tuple of two copies of memo 0, stored back as memo 0, forty times: 2^40 objects.
        let mut p = b"\x80\x02N".to_vec();
        p.extend(b"q\x00");
        for _ in 0..40 {
            p.extend(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        let err = Machine::new(p.len()).run(&p).expect_err("bomb");
        assert!(err.contains("more than"), "{err}");
        // The mirror itself shares what candle would copy: without a limit it runs through.
        let mut unlimited = Machine::new(p.len());
        unlimited.limit = u64::MAX;
        let root = unlimited.run(&p).expect("shared, cheap");
        assert!(root.cost > 1 << 40);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = b"N".to_vec();
        p.extend(std::iter::repeat_n(0x85u8, 100));
        p.push(b'.');
        let err = Machine::new(p.len()).run(&p).expect_err("deep");
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn string_longer_than_the_pickle_is_refused() {
        let err = Machine::new(9)
            .run(b"X\xff\xff\xff\x7fab.")
            .expect_err("long string");
        assert!(err.contains("2147483647 bytes"), "{err}");
    }

    #[test]
    fn lines_are_read_as_candle_reads_them() {
        let mut b = Bytes {
            bytes: b"torch\r\nFloatStorage\nab",
            pos: 0,
        };
        assert_eq!(b.line(), "torch");
        assert_eq!(b.line(), "FloatStorage");
        assert_eq!(b.line(), "a");
    }

    /// The state dicts `torch.save` wrote for the goldens pass, well inside the budget.
    #[test]
    fn torch_pickles_fit_the_budget() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
        for name in [
            "gin_model.pth",
            "gin_projector_linear.pth",
            "gin_projector_mlp2x_gelu.pth",
        ] {
            let path = dir.join(name);
            check_pth(&path).expect("golden archive");
            let file = std::fs::File::open(&path).expect("golden");
            let mut zip = zip::ZipArchive::new(BufReader::new(file)).expect("zip");
            let pkl = (0..zip.len())
                .find(|&i| {
                    zip.by_index(i)
                        .is_ok_and(|e| e.name().is_ok_and(|n| n.ends_with("data.pkl")))
                })
                .expect("data.pkl");
            let mut bytes = Vec::new();
            zip.by_index(pkl)
                .expect("entry")
                .read_to_end(&mut bytes)
                .expect("read");
            let (root, peak) = Machine::new(bytes.len()).run_peak(&bytes).expect("pickle");
            let pairs = state_dict(root).expect("a state dict");
            let ratio = peak as f64 / bytes.len() as f64;
            println!(
                "{name}: {} bytes of pickle, {} entries, peak {peak} bytes ({ratio:.1} per byte)",
                bytes.len(),
                pairs.len()
            );
            assert!(ratio < PICKLE_PER_BYTE as f64 / 1.5, "{name}: {ratio}");
        }
    }
}
