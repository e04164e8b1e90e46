//! safetensors header check: the rank of every tensor, read without building the shapes.
//!
//! The `safetensors` crate bounds the header by the file and the tensors' bytes by the data
//! (they must tile it exactly), but a shape is a JSON list of any length: `[1,1,1,...]`
//! costs 2 bytes of file per dimension and 8 bytes in the parsed header, and candle copies
//! the dimensions into shapes, strides and layouts again (a 1 MB header of ones took 22 MB).

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::UntrustedError;

/// Most dimensions a tensor may have (PyTorch allows 64; model weights use at most 5).
const MAX_RANK: usize = 16;

/// Refuses a safetensors file with a tensor of more than [`MAX_RANK`] dimensions. Reads the
/// 8-byte header length and the header; a header that is not JSON, or longer than the file,
/// is left to the `safetensors` crate to report.
pub fn check_safetensors(path: &Path) -> Result<(), UntrustedError> {
    let io = |source| UntrustedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    if file.read_exact(&mut len).is_err() {
        return Ok(());
    }
    let n = u64::from_le_bytes(len);
    if n > size.saturating_sub(8) {
        return Ok(());
    }
    let mut header = Vec::new();
    file.take(n).read_to_end(&mut header).map_err(io)?;
    refuse(path, header_problem(&header))
}

/// [`check_safetensors`] on a file already read into memory.
pub fn check_safetensors_bytes(path: &Path, bytes: &[u8]) -> Result<(), UntrustedError> {
    let header = bytes
        .get(..8)
        .and_then(|len| <[u8; 8]>::try_from(len).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?));
    match header {
        Some(header) => refuse(path, header_problem(header)),
        None => Ok(()),
    }
}

fn refuse(path: &Path, problem: Option<String>) -> Result<(), UntrustedError> {
    match problem {
        Some(reason) => Err(UntrustedError::Safetensors {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The first tensor of the header (the JSON after the length) with too many dimensions.
fn header_problem(header: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(header);
    // Not JSON, or not a map: the safetensors crate says so in its own words.
    de.deserialize_map(HeaderVisitor).ok().flatten()
}

/// Visits the header map; yields the first problem found.
struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a safetensors header")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The whole map is read (serde_json checks its end), the first problem kept.
        let mut problem = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if let Some(rank) = map.next_value_seed(EntrySeed)? {
                problem.get_or_insert_with(|| {
                    format!("tensor `{name}` has {rank} dimensions (at most {MAX_RANK})")
                });
            }
        }
        Ok(problem)
    }
}

/// One tensor entry; yields the rank when it is too high.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(EntrySeed)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut too_high = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "shape" {
                too_high = too_high.or(map.next_value_seed(ShapeSeed)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(too_high)
    }
}

/// A shape list, counted and not kept; yields the count when it is over [`MAX_RANK`].
struct ShapeSeed;

impl<'de> DeserializeSeed<'de> for ShapeSeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(ShapeSeed)
    }
}

impl<'de> Visitor<'de> for ShapeSeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of dimensions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rank = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            rank += 1;
        }
        Ok((rank > MAX_RANK).then_some(rank))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_bounded() {
        let ok = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;
        assert_eq!(header_problem(ok), None);
        let ones = vec!["1"; 40].join(",");
        let deep = format!(r#"{{"w":{{"dtype":"F32","shape":[{ones}],"data_offsets":[0,4]}}}}"#);
        let err = header_problem(deep.as_bytes()).expect("rank 40");
        assert!(err.contains("`w` has 40 dimensions"), "{err}");
        // Not JSON: left to the safetensors crate.
        assert_eq!(header_problem(b"{\"w\":"), None);
        // The check on bytes in memory finds the header after its length.
        let mut file = (deep.len() as u64).to_le_bytes().to_vec();
        file.extend(deep.as_bytes());
        file.extend([0u8; 4]);
        let err = check_safetensors_bytes(Path::new("w.safetensors"), &file)
            .expect_err("rank 40")
            .to_string();
        assert!(
            err.contains("w.safetensors") && err.contains("40 dimensions"),
            "{err}"
        );
    }
}
