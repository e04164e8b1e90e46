//! `tokenizer.json` checks: the document is JSON, and a BPE model's merges can be built.
//!
//! The `tokenizers` crate (0.23.2) panics instead of returning an error on two kinds of files:
//! a malformed `decoder` object (`expect("Helper")` in `decoders/mod.rs`), and a BPE merge
//! `a b` whose joined token (`a` + `b` without the `continuing_subword_prefix`) is longer than
//! every vocabulary entry, or whose `b` is shorter than that prefix (a slice out of range in
//! `BpeBuilder::build`; with a prefix that ends inside a character of `b`, it would also build
//! a `str` that is not UTF-8). Both are refused here, reading the document without building it.

use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::UntrustedError;

/// Refuses a file that is not well-formed JSON (only parsed, nothing built; serde_json's
/// nesting limit applies).
pub fn check_json(path: &Path) -> Result<(), UntrustedError> {
    let bytes = read(path)?;
    json_syntax(path, &bytes)
}

/// [`check_json`], then the BPE merges of the `model` (when it is a BPE model): each must
/// join into a token no longer than the longest vocabulary entry, and its second token must
/// hold the `continuing_subword_prefix` the joiner strips.
pub fn check_tokenizer_json(path: &Path) -> Result<(), UntrustedError> {
    let bytes = read(path)?;
    json_syntax(path, &bytes)?;
    let refuse = |reason: String| UntrustedError::Json {
        path: path.to_path_buf(),
        reason,
    };
    // First pass: the model's type, prefix and longest vocabulary entry (merges skipped).
    let mut shape = ModelShape::default();
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    if de.deserialize_map(Top(Pass::Shape(&mut shape))).is_err() {
        return Ok(()); // not an object: the tokenizers crate says so
    }
    if shape.kind.as_deref().is_some_and(|k| k != "BPE") {
        return Ok(());
    }
    // Second pass: every merge against what the first found.
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let _ = de.deserialize_map(Top(Pass::Merges(&shape, &mut problem)));
    match problem {
        Some(reason) => Err(refuse(reason)),
        None => Ok(()),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, UntrustedError> {
    std::fs::read(path).map_err(|source| UntrustedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json_syntax(path: &Path, bytes: &[u8]) -> Result<(), UntrustedError> {
    serde_json::from_slice::<IgnoredAny>(bytes)
        .map(drop)
        .map_err(|e| UntrustedError::Json {
            path: path.to_path_buf(),
            reason: format!("line {}, column {}: {e}", e.line(), e.column()),
        })
}

/// What the first pass learns of the `model` object.
#[derive(Debug, Default)]
struct ModelShape {
    kind: Option<String>,
    prefix: Option<String>,
    /// Byte length of the longest vocabulary entry.
    longest: usize,
}

impl ModelShape {
    /// Why tokenizers' BPE builder would panic on merge `a b`, if it would.
    fn merge_problem(&self, a: &str, b: &str) -> Option<String> {
        let prefix = self.prefix.as_deref().unwrap_or("");
        if b.len() < prefix.len() || !b.is_char_boundary(prefix.len()) {
            return Some(format!(
                "model.merges: in `{a} {b}` the second token does not hold the \
                 continuing_subword_prefix `{prefix}`"
            ));
        }
        let joined = a.len() + b.len() - prefix.len();
        if joined > self.longest {
            return Some(format!(
                "model.merges: `{a} {b}` joins into a token of {joined} bytes, longer than any \
                 in model.vocab ({} bytes); it cannot be in the vocabulary",
                self.longest
            ));
        }
        None
    }
}

enum Pass<'a> {
    Shape(&'a mut ModelShape),
    Merges(&'a ModelShape, &'a mut Option<String>),
}

/// The top-level object: only `model` is looked into.
struct Top<'a>(Pass<'a>);

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tokenizer.json object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "model" {
                map.next_value_seed(ModelSeed(&mut self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ModelSeed<'a, 'b>(&'a mut Pass<'b>);

impl<'de> DeserializeSeed<'de> for ModelSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ModelSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match (&mut *self.0, key.as_str()) {
                (Pass::Shape(s), "type") => s.kind = map.next_value::<Option<String>>()?,
                (Pass::Shape(s), "continuing_subword_prefix") => {
                    s.prefix = map.next_value::<Option<String>>()?
                }
                (Pass::Shape(s), "vocab") => s.longest = map.next_value_seed(LongestKey)?,
                (Pass::Merges(shape, problem), "merges") => {
                    map.next_value_seed(MergesSeed(shape, problem))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // Anything else (null, a string): nothing to check.
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The byte length of the longest key of the vocabulary map.
struct LongestKey;

impl<'de> DeserializeSeed<'de> for LongestKey {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LongestKey {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a vocabulary object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut longest = 0;
        while let Some(key) = map.next_key::<String>()? {
            longest = longest.max(key.len());
            map.next_value::<IgnoredAny>()?;
        }
        Ok(longest)
    }
}

/// The merges list: `"a b"` strings or `["a", "b"]` pairs, each checked and dropped.
struct MergesSeed<'a>(&'a ModelShape, &'a mut Option<String>);

impl<'de> DeserializeSeed<'de> for MergesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MergesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a merges list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(merge) = seq.next_element::<Merge>()? {
            let pair = match &merge {
                // tokenizers skips "#version" lines and needs exactly one space.
                Merge::Line(l) if l.starts_with("#version") => None,
                Merge::Line(l) => match l.split(' ').collect::<Vec<_>>()[..] {
                    [a, b] => Some((a, b)),
                    _ => None,
                },
                Merge::Pair(a, b) => Some((a.as_str(), b.as_str())),
                Merge::Other => None,
            };
            if let Some((a, b)) = pair {
                if self.1.is_none() {
                    *self.1 = self.0.merge_problem(a, b);
                }
            }
        }
        Ok(())
    }
}

/// One element of the merges list.
enum Merge {
    Line(String),
    Pair(String, String),
    /// Anything else: tokenizers refuses it itself.
    Other,
}

impl<'de> serde::Deserialize<'de> for Merge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MergeVisitor)
    }
}

struct MergeVisitor;

impl<'de> Visitor<'de> for MergeVisitor {
    type Value = Merge;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a merge")
    }

    fn visit_str<E>(self, v: &str) -> Result<Merge, E> {
        Ok(Merge::Line(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge, A::Error> {
        let a = seq.next_element::<MaybeStr>()?.and_then(|m| m.0);
        let b = seq.next_element::<MaybeStr>()?.and_then(|m| m.0);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(match (a, b) {
            (Some(a), Some(b)) => Merge::Pair(a, b),
            _ => Merge::Other,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Merge, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Merge::Other)
    }

    fn visit_unit<E>(self) -> Result<Merge, E> {
        Ok(Merge::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Merge, E> {
        Ok(Merge::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Merge, E> {
        Ok(Merge::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Merge, E> {
        Ok(Merge::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Merge, E> {
        Ok(Merge::Other)
    }
}

/// Any JSON value, kept when it is a string.
struct MaybeStr(Option<String>);

impl<'de> serde::Deserialize<'de> for MaybeStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeStrVisitor)
    }
}

struct MaybeStrVisitor;

impl<'de> Visitor<'de> for MaybeStrVisitor {
    type Value = MaybeStr;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_str<E>(self, v: &str) -> Result<MaybeStr, E> {
        Ok(MaybeStr(Some(v.to_string())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeStr, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MaybeStr(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeStr, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(MaybeStr(None))
    }

    fn visit_unit<E>(self) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<MaybeStr, E> {
        Ok(MaybeStr(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(model: &str) -> Option<String> {
        let dir = std::env::temp_dir().join(format!("untrusted-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, format!(r#"{{"version":"1.0","model":{model}}}"#)).expect("write");
        check_tokenizer_json(&path).err().map(|e| e.to_string())
    }

    #[test]
    fn merges_that_make_tokenizers_panic_are_refused() {
        let ok = r#"{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}"#;
        assert_eq!(problem(ok), None);
        let pairs = r#"{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]}"#;
        assert_eq!(problem(pairs), None);
        // "ab" + "cd" = 4 bytes, the longest entry has 2.
        let long = r#"{"type":"BPE","vocab":{"ab":0,"cd":1},"merges":["ab cd"]}"#;
        assert!(problem(long).is_some_and(|e| e.contains("longer than any")));
        // Prefix after the merges in the document, longer than the second token.
        let prefix = r###"{"merges":[["a","b"]],"vocab":{"a":0,"b":1,"ab":2},"continuing_subword_prefix":"##","type":"BPE"}"###;
        assert!(problem(prefix).is_some_and(|e| e.contains("continuing_subword_prefix")));
        // A prefix ending inside a character of the second token.
        let split = r#"{"type":"BPE","vocab":{"a":0,"é":1,"aé":2},"merges":["a é"],"continuing_subword_prefix":"x"}"#;
        assert!(problem(split).is_some());
        // Other models are not looked into.
        let wp = r#"{"type":"WordPiece","vocab":{"ab":0},"merges":["ab cd"]}"#;
        assert_eq!(problem(wp), None);
    }
}
