//! WordNet 3.0 synonyms as nltk's `wordnet.synsets(word)` finds them, for METEOR.
//!
//! Reads the WordNet dict files (`index.{noun,verb,adj,adv}`, `data.*`, `*.exc`) and
//! reproduces nltk's lookup: the word is lowercased; for each part of speech (noun, verb,
//! adjective, adverb) nltk's `_morphy` lists the base forms (the exception list entry if the
//! word has one, otherwise the word plus one pass of the detachment rules), keeps those with
//! an index entry for that part of speech, and every synset of every kept form contributes
//! its lemma names (adjective markers such as `(a)` removed).
//!
//! Where the files come from: `scripts/setup_wordnet.sh` (Princeton WordNet 3.0, as in nltk_data).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Parts of speech in nltk's `POS_LIST` order, with their file names and detachment rules.
const POS: [(&str, &[(&str, &str)]); 4] = [
    (
        "noun",
        &[
            ("s", ""),
            ("ses", "s"),
            ("ves", "f"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ],
    ),
    (
        "verb",
        &[
            ("s", ""),
            ("ies", "y"),
            ("es", "e"),
            ("es", ""),
            ("ed", "e"),
            ("ed", ""),
            ("ing", "e"),
            ("ing", ""),
        ],
    ),
    ("adj", &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")]),
    ("adv", &[]),
];

/// A problem with the WordNet files.
#[derive(Debug, thiserror::Error)]
pub enum WordNetError {
    /// A file could not be read.
    #[error("cannot read WordNet file {path}: {error} (install it with scripts/setup_wordnet.sh)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A line does not have the WordNet format.
    #[error("{path}, line {line}: {message} (is this a WordNet 3.0 dict folder? see scripts/setup_wordnet.sh)")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One part of speech: lemma -> synset offsets, offset -> lemma names, exceptions.
#[derive(Debug, Default)]
struct PosData {
    index: HashMap<String, Vec<u32>>,
    synsets: HashMap<u32, Vec<String>>,
    exceptions: HashMap<String, Vec<String>>,
}

/// The WordNet data METEOR needs, loaded from a dict folder.
#[derive(Debug)]
pub struct WordNet {
    pos: Vec<PosData>,
    /// The folder it was read from.
    pub dir: PathBuf,
}

fn read(path: &Path) -> Result<String, WordNetError> {
    std::fs::read_to_string(path).map_err(|error| WordNetError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn format_err(path: &Path, line: usize, message: impl Into<String>) -> WordNetError {
    WordNetError::Format {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// `index.<pos>` lines: `lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset...`.
fn parse_index(path: &Path, text: &str) -> Result<HashMap<String, Vec<u32>>, WordNetError> {
    let mut index = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with(' ') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let num = |k: usize| -> Result<usize, WordNetError> {
            fields
                .get(k)
                .and_then(|f| f.parse::<usize>().ok())
                .ok_or_else(|| format_err(path, i + 1, format!("field {} is not a number", k + 1)))
        };
        let n_synsets = num(2)?;
        let n_pointers = num(3)?;
        let first = 4 + n_pointers + 2;
        let offsets = (first..first + n_synsets)
            .map(|k| {
                fields
                    .get(k)
                    .and_then(|f| f.parse::<u32>().ok())
                    .ok_or_else(|| format_err(path, i + 1, "missing synset offset"))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        index.insert(fields[0].to_string(), offsets);
    }
    Ok(index)
}

/// nltk strips a trailing syntactic marker such as `(a)` or `(ip)` from lemma names.
fn strip_marker(name: &str) -> &str {
    match name.find('(') {
        Some(p) if name.ends_with(')') => &name[..p],
        _ => name,
    }
}

/// `data.<pos>` lines: `offset lex_filenum ss_type w_cnt(hex) word lex_id ...`.
fn parse_data(path: &Path, text: &str) -> Result<HashMap<u32, Vec<String>>, WordNetError> {
    let mut synsets = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with(' ') || line.is_empty() {
            continue;
        }
        let mut fields = line.split(' ');
        let offset = fields
            .next()
            .and_then(|f| f.parse::<u32>().ok())
            .ok_or_else(|| format_err(path, i + 1, "line does not start with a synset offset"))?;
        let count = fields
            .nth(2)
            .and_then(|f| usize::from_str_radix(f, 16).ok())
            .ok_or_else(|| format_err(path, i + 1, "bad word count"))?;
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            let name = fields
                .next()
                .ok_or_else(|| format_err(path, i + 1, "fewer words than the word count says"))?;
            fields.next();
            names.push(strip_marker(name).to_string());
        }
        synsets.insert(offset, names);
    }
    Ok(synsets)
}

fn parse_exceptions(text: &str) -> HashMap<String, Vec<String>> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut terms = line.split_whitespace();
        if let Some(word) = terms.next() {
            map.insert(word.to_string(), terms.map(str::to_string).collect());
        }
    }
    map
}

impl WordNet {
    /// Loads the dict folder `dir` (index, data and exception files of the four parts of speech).
    pub fn load(dir: &Path) -> Result<Self, WordNetError> {
        let mut pos = Vec::with_capacity(4);
        for (name, _) in POS {
            let index_path = dir.join(format!("index.{name}"));
            let data_path = dir.join(format!("data.{name}"));
            let exc_path = dir.join(format!("{name}.exc"));
            pos.push(PosData {
                index: parse_index(&index_path, &read(&index_path)?)?,
                synsets: parse_data(&data_path, &read(&data_path)?)?,
                exceptions: parse_exceptions(&read(&exc_path)?),
            });
        }
        Ok(Self {
            pos,
            dir: dir.to_path_buf(),
        })
    }

    /// nltk `_morphy(form, pos)`: the base forms of `form` that have an index entry.
    fn morphy(&self, pos: usize, form: &str) -> Vec<String> {
        let data = &self.pos[pos];
        let mut candidates = vec![form.to_string()];
        if let Some(bases) = data.exceptions.get(form) {
            candidates.extend(bases.iter().cloned());
        } else {
            for (old, new) in POS[pos].1 {
                if let Some(stem) = form.strip_suffix(old) {
                    candidates.push(format!("{stem}{new}"));
                }
            }
        }
        let mut seen = HashSet::new();
        candidates
            .into_iter()
            .filter(|c| data.index.contains_key(c) && seen.insert(c.clone()))
            .collect()
    }

    /// Every lemma name of every synset `wordnet.synsets(word)` returns (all parts of speech).
    pub fn synonyms(&self, word: &str) -> HashSet<String> {
        let lower = word.to_lowercase();
        let mut out = HashSet::new();
        for (pos, data) in self.pos.iter().enumerate() {
            for form in self.morphy(pos, &lower) {
                for offset in data.index.get(&form).into_iter().flatten() {
                    if let Some(names) = data.synsets.get(offset) {
                        out.extend(names.iter().cloned());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::strip_marker;

    #[test]
    fn markers_are_stripped_like_nltk() {
        assert_eq!(strip_marker("galore(ip)"), "galore");
        assert_eq!(strip_marker("big"), "big");
        assert_eq!(strip_marker("a)"), "a)");
    }
}
