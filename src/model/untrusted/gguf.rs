//! GGUF header check: the structure candle's `Content::read` and `Content::tensor` will read,
//! walked without building it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;

use super::{elem_count, remaining, UntrustedError};

/// The alignment candle uses when `general.alignment` is absent or not a small integer.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest nesting of arrays candle reads.
const MAX_DEPTH: usize = 64;
/// Most dimensions a GGUF tensor has.
const MAX_DIMS: u64 = 4;
/// Memory the parsed metadata may take, per byte of the file, as estimated here (candle's
/// real peak can be up to twice the estimate: vectors grow by doubling). candle keeps every
/// array element as a 32-byte `Value`, so a header of byte arrays grows 32-fold; llama.cpp's
/// vocabulary-only GGUF files (all metadata, no tensors) take 2.9 to 5.3 times their size,
/// and in a model file the metadata is megabytes next to gigabytes of tensors.
const METADATA_PER_BYTE: u64 = 8;
/// Metadata allowance whatever the file size.
const METADATA_FLOOR: u64 = 1 << 20;
/// Longest key compared with `general.alignment` (longer keys are skipped, not read).
const KEY_CAPTURE: u64 = 64;

/// The GGUF value types, as numbered in the file.
const U8: u32 = 0;
const I8: u32 = 1;
const U16: u32 = 2;
const I16: u32 = 3;
const U32: u32 = 4;
const I32: u32 = 5;
const F32: u32 = 6;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const U64: u32 = 10;
const I64: u32 = 11;
const F64: u32 = 12;

/// Refuses a GGUF file whose header candle would read into more memory than the file
/// justifies, or whose tensors do not lie, disjoint, inside the file.
///
/// Checked: magic and version; tensor and metadata counts against the bytes left; every
/// string and array length against the bytes left; array nesting; the memory the parsed
/// metadata takes; `general.alignment` (a power of two); each tensor's dimension count, type,
/// element count (no overflow, whole blocks) and byte range (inside the file, after the
/// aligned header, overlapping no other tensor; not empty).
pub fn check_gguf(path: &Path) -> Result<(), UntrustedError> {
    let (file, size) = super::open_sized(path)?;
    let mut walk = Walk {
        r: BufReader::new(file),
        pos: 0,
        size,
        wide: true,
        metadata: 0,
        metadata_limit: size
            .saturating_mul(METADATA_PER_BYTE)
            .saturating_add(METADATA_FLOOR),
    };
    walk.header().map_err(|reason| UntrustedError::Gguf {
        path: path.to_path_buf(),
        reason,
    })
}

/// One tensor's byte range, relative to the start of the tensor data.
struct Range {
    name: String,
    offset: u64,
    bytes: u64,
}

/// A forward-only reader over the file that knows its position and what is left.
struct Walk {
    r: BufReader<File>,
    pos: u64,
    size: u64,
    /// Lengths and dimensions are u64 (versions 2 and 3), else u32 (version 1).
    wide: bool,
    /// Memory the parsed metadata will take so far (estimate).
    metadata: u64,
    metadata_limit: u64,
}

type Res<T> = std::result::Result<T, String>;

impl Walk {
    fn left(&self) -> u64 {
        remaining(self.size, self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Res<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|_| {
            format!(
                "the file ends inside {what} (at byte {}, {} bytes long)",
                self.pos, self.size
            )
        })?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Res<u32> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Res<u64> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    /// A length or count (u64, or u32 in version 1).
    fn len(&mut self, what: &str) -> Res<u64> {
        if self.wide {
            self.u64(what)
        } else {
            self.u32(what).map(u64::from)
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Res<()> {
        if n > self.left() {
            return Err(format!(
                "{what} needs {n} bytes at byte {}, only {} remain",
                self.pos,
                self.left()
            ));
        }
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| format!("{what}: {e}"))?;
        if copied != n {
            return Err(format!("the file ends inside {what}"));
        }
        self.pos += n;
        Ok(())
    }

    /// Reads a string; returns its text when it is at most `capture` bytes (else skips it).
    fn string(&mut self, what: &str, capture: u64) -> Res<Option<String>> {
        let n = self.len(what)?;
        if n > self.left() {
            return Err(format!(
                "{what} is {n} bytes long at byte {}, only {} remain",
                self.pos,
                self.left()
            ));
        }
        if n > capture {
            self.skip(n, what)?;
            return Ok(None);
        }
        let mut b = vec![0u8; n as usize];
        self.r
            .read_exact(&mut b)
            .map_err(|_| format!("the file ends inside {what}"))?;
        self.pos += n;
        Ok(Some(String::from_utf8_lossy(&b).into_owned()))
    }

    /// Adds `bytes` to the metadata's memory estimate.
    fn charge(&mut self, bytes: u64) -> Res<()> {
        self.metadata = self.metadata.saturating_add(bytes);
        if self.metadata > self.metadata_limit {
            return Err(format!(
                "the metadata would take more than {} bytes of memory once parsed (the file has {}); \
                 its arrays are too long for the file",
                self.metadata_limit, self.size
            ));
        }
        Ok(())
    }

    fn header(&mut self) -> Res<()> {
        let magic = self.u32("the magic number")?;
        if magic != 0x4655_4747 && magic != 0x4747_5546 {
            return Err(format!("the file starts with {magic:#010x}, not `GGUF`"));
        }
        let version = self.u32("the version")?;
        self.wide = match version {
            1 => false,
            2 | 3 => true,
            v => return Err(format!("version {v} (1, 2 or 3 are read)")),
        };
        let width = if self.wide { 8 } else { 4 };
        let tensors = self.len("the tensor count")?;
        let kvs = self.len("the metadata count")?;
        // Smallest entries: a key length, a type and a one-byte value; a name length, a
        // dimension count, a type and an offset.
        let needed = kvs
            .saturating_mul(width + 4 + 1)
            .saturating_add(tensors.saturating_mul(width + 4 + 4 + 8));
        if needed > self.left() {
            return Err(format!(
                "the header declares {tensors} tensors and {kvs} metadata entries, which need at least \
                 {needed} bytes; the file has {} after the counts",
                self.left()
            ));
        }
        let mut alignment = DEFAULT_ALIGNMENT;
        for i in 0..kvs {
            let key = self.string(&format!("the key of metadata entry {i}"), KEY_CAPTURE)?;
            let what = match &key {
                Some(k) => format!("metadata `{k}`"),
                None => format!("metadata entry {i}"),
            };
            self.charge(std::mem::size_of::<(String, Value)>() as u64 * 2)?;
            let ty = self.u32(&format!("the type of {what}"))?;
            let value = self.value(ty, 0, &what)?;
            if key.as_deref() == Some("general.alignment") {
                // candle takes the value when it is a non-negative 8/16/32-bit integer, the
                // default otherwise; the last entry of a repeated key wins.
                alignment = value.unwrap_or(DEFAULT_ALIGNMENT);
            }
        }
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(format!(
                "general.alignment is {alignment}; it must be a power of two"
            ));
        }
        let mut ranges = Vec::new();
        for i in 0..tensors {
            let name = self
                .string(&format!("the name of tensor {i}"), u64::MAX)?
                .unwrap_or_default();
            let what = format!("tensor `{name}`");
            let n_dims = self.u32(&format!("the dimension count of {what}"))?;
            if u64::from(n_dims) > MAX_DIMS {
                return Err(format!(
                    "{what} has {n_dims} dimensions (at most {MAX_DIMS})"
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(self.len(&format!("a dimension of {what}"))?);
            }
            let ty = self.u32(&format!("the type of {what}"))?;
            let dtype = ggml_dtype(ty).ok_or_else(|| format!("{what} has unknown type {ty}"))?;
            let offset = self.u64(&format!("the offset of {what}"))?;
            let elems = elem_count(dims.iter().copied())
                .ok_or_else(|| format!("{what}: the dimensions {dims:?} overflow"))?;
            // candle views the tensor's bytes as blocks with `slice::from_raw_parts`; the bytes of
            // an empty tensor are an empty `Vec<u8>`, whose pointer is not aligned for them
            // (undefined behaviour; a debug build aborts).
            if elems == 0 {
                return Err(format!("{what} has no elements (dimensions {dims:?})"));
            }
            let block = dtype.block_size() as u64;
            if elems % block != 0 {
                return Err(format!(
                    "{what} has {elems} elements, not a whole number of {block}-element blocks of {dtype:?}"
                ));
            }
            let bytes = (elems / block)
                .checked_mul(dtype.type_size() as u64)
                .ok_or_else(|| format!("{what}: the size of {elems} elements overflows"))?;
            ranges.push(Range {
                name,
                offset,
                bytes,
            });
        }
        let data_start = self
            .pos
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or("the aligned start of the tensor data overflows")?;
        check_ranges(&mut ranges, data_start, self.size)
    }

    /// Walks one value of type `ty`; returns it when it is what candle takes for an alignment.
    fn value(&mut self, ty: u32, depth: usize, what: &str) -> Res<Option<u64>> {
        if depth > MAX_DEPTH {
            return Err(format!("{what}: arrays nested more than {MAX_DEPTH} deep"));
        }
        self.charge(std::mem::size_of::<Value>() as u64)?;
        let fixed = |n: u64| Some(n);
        let size = match ty {
            U8 | I8 | BOOL => fixed(1),
            U16 | I16 => fixed(2),
            U32 | I32 | F32 => fixed(4),
            U64 | I64 | F64 => fixed(8),
            STRING | ARRAY => None,
            other => return Err(format!("{what} has unknown value type {other}")),
        };
        if let Some(n) = size {
            let raw = match n {
                1 => u64::from(self.bytes::<1>(what)?[0]),
                2 => u64::from(u16::from_le_bytes(self.bytes::<2>(what)?)),
                4 => u64::from(u32::from_le_bytes(self.bytes::<4>(what)?)),
                _ => {
                    self.u64(what)?;
                    0
                }
            };
            let signed_ok = match ty {
                I8 => raw < 0x80,
                I16 => raw < 0x8000,
                I32 => raw < 0x8000_0000,
                _ => true,
            };
            let alignment_type = matches!(ty, U8 | U16 | U32 | I8 | I16 | I32);
            return Ok((alignment_type && signed_ok).then_some(raw));
        }
        if ty == STRING {
            let n = self.len(what)?;
            self.charge(n)?;
            if n > self.left() {
                return Err(format!(
                    "{what}: a string of {n} bytes at byte {}, only {} remain",
                    self.pos,
                    self.left()
                ));
            }
            self.skip(n, what)?;
            return Ok(None);
        }
        let elem_ty = self.u32(&format!("the element type of {what}"))?;
        let n = self.len(&format!("the length of {what}"))?;
        let min = match elem_ty {
            U8 | I8 | BOOL => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            STRING => {
                if self.wide {
                    8
                } else {
                    4
                }
            }
            ARRAY => 4 + if self.wide { 8 } else { 4 },
            other => return Err(format!("{what} is an array of unknown type {other}")),
        };
        let needed = n.saturating_mul(min);
        if needed > self.left() {
            return Err(format!(
                "{what} is an array of {n} elements, at least {needed} bytes, only {} remain",
                self.left()
            ));
        }
        if elem_ty != STRING && elem_ty != ARRAY {
            self.charge(n.saturating_mul(std::mem::size_of::<Value>() as u64))?;
            self.skip(needed, what)?;
            return Ok(None);
        }
        for _ in 0..n {
            self.value(elem_ty, depth + 1, what)?;
        }
        Ok(None)
    }
}

/// Each tensor must lie inside the file after `data_start`, and no two may overlap (else one
/// region of the file could be dequantized into any number of tensors).
fn check_ranges(ranges: &mut [Range], data_start: u64, size: u64) -> Res<()> {
    for r in ranges.iter() {
        let end = data_start
            .checked_add(r.offset)
            .and_then(|s| s.checked_add(r.bytes));
        match end {
            Some(end) if end <= size => {}
            _ => {
                return Err(format!(
                "tensor `{}` needs {} bytes at offset {} of the tensor data (byte {data_start} of \
                     the file), past the end of the file ({size} bytes)",
                r.name, r.bytes, r.offset
            ))
            }
        }
    }
    ranges.sort_by_key(|r| r.offset);
    let mut last: Option<&Range> = None;
    for r in ranges.iter().filter(|r| r.bytes > 0) {
        if let Some(prev) = last {
            if prev.offset + prev.bytes > r.offset {
                return Err(format!(
                    "tensors `{}` and `{}` overlap (bytes {}..{} and {}..{} of the tensor data)",
                    prev.name,
                    r.name,
                    prev.offset,
                    prev.offset + prev.bytes,
                    r.offset,
                    r.offset + r.bytes
                ));
            }
        }
        last = Some(r);
    }
    Ok(())
}

/// The GGML type numbered `ty` in the file (the numbering candle reads).
fn ggml_dtype(ty: u32) -> Option<GgmlDType> {
    Some(match ty {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}
