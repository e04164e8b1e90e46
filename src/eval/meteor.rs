//! METEOR with nltk `meteor_score` semantics (nltk 3.10).
//!
//! Words are lowercased, then aligned in three stages, each on what the previous left
//! unmatched: exact match, Porter-stem match (later stages see the stemmed words), WordNet
//! synonym match. In each stage hypothesis words are visited from the last to the first and
//! take the last still-free reference position. Score: `Fmean = PR / (alpha P + (1-alpha) R)`
//! times `1 - gamma (chunks / matches)^beta`, with alpha 0.9, beta 3, gamma 0.5; 0 without
//! matches or for an empty side.

use std::collections::HashMap;

use super::porter;
use super::wordnet::WordNet;

const ALPHA: f64 = 0.9;
const BETA: f64 = 3.0;
const GAMMA: f64 = 0.5;

/// Word position in the original sequence and its current (possibly stemmed) form.
type Enum = Vec<(usize, String)>;

fn positions(list: &Enum) -> HashMap<&str, Vec<usize>> {
    let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, (_, w)) in list.iter().enumerate() {
        map.entry(w.as_str()).or_default().push(j);
    }
    map
}

/// Removes the matched list indices, keeping order.
fn without(list: Enum, matched: &[bool]) -> Enum {
    list.into_iter()
        .zip(matched)
        .filter(|(_, &m)| !m)
        .map(|(x, _)| x)
        .collect()
}

/// nltk `_match_enums`: exact equality of the current forms.
fn match_enums(hyp: Enum, reference: Enum, out: &mut Vec<(usize, usize)>) -> (Enum, Enum) {
    let mut hyp_done = vec![false; hyp.len()];
    let mut ref_done = vec![false; reference.len()];
    {
        let mut free = positions(&reference);
        for i in (0..hyp.len()).rev() {
            if let Some(j) = free.get_mut(hyp[i].1.as_str()).and_then(Vec::pop) {
                hyp_done[i] = true;
                ref_done[j] = true;
                out.push((hyp[i].0, reference[j].0));
            }
        }
    }
    (without(hyp, &hyp_done), without(reference, &ref_done))
}

/// nltk `_enum_wordnetsyn_match`: a hypothesis word matches the reference word that is one of
/// its WordNet synonyms (or itself) at the latest free position.
fn synonym_match(hyp: Enum, reference: Enum, wordnet: &WordNet, out: &mut Vec<(usize, usize)>) {
    let mut free = positions(&reference);
    for i in (0..hyp.len()).rev() {
        let word = hyp[i].1.as_str();
        let mut syns = wordnet.synonyms(word);
        syns.retain(|s| !s.contains('_'));
        syns.insert(word.to_string());
        let best = syns
            .iter()
            .filter_map(|s| free.get(s.as_str()).and_then(|p| p.last()).map(|&j| (j, s)))
            .max_by_key(|(j, _)| *j);
        if let Some((j, s)) = best {
            let key = s.clone();
            if let Some(p) = free.get_mut(key.as_str()) {
                p.pop();
            }
            out.push((hyp[i].0, reference[j].0));
        }
    }
}

fn count_chunks(matches: &[(usize, usize)]) -> usize {
    1 + matches
        .windows(2)
        .filter(|m| !(m[1].0 == m[0].0 + 1 && m[1].1 == m[0].1 + 1))
        .count()
}

/// nltk `single_meteor_score(reference, hypothesis)` on pre-tokenized words; `wordnet: None`
/// skips the synonym stage.
pub fn meteor(reference: &[String], hypothesis: &[String], wordnet: Option<&WordNet>) -> f64 {
    let hyp: Enum = hypothesis
        .iter()
        .map(|w| w.to_lowercase())
        .enumerate()
        .collect();
    let reference: Enum = reference
        .iter()
        .map(|w| w.to_lowercase())
        .enumerate()
        .collect();
    let (hyp_len, ref_len) = (hyp.len(), reference.len());
    let mut matches = Vec::new();
    let (hyp, reference) = match_enums(hyp, reference, &mut matches);
    let stem = |list: Enum| -> Enum {
        list.into_iter()
            .map(|(i, w)| (i, porter::stem(&w)))
            .collect()
    };
    let (hyp, reference) = match_enums(stem(hyp), stem(reference), &mut matches);
    if let Some(wn) = wordnet {
        synonym_match(hyp, reference, wn, &mut matches);
    }
    let m = matches.len();
    if m == 0 || hyp_len == 0 || ref_len == 0 {
        return 0.0;
    }
    matches.sort_by_key(|&(h, _)| h);
    let precision = m as f64 / hyp_len as f64;
    let recall = m as f64 / ref_len as f64;
    let fmean = (precision * recall) / (ALPHA * precision + (1.0 - ALPHA) * recall);
    let frag = count_chunks(&matches) as f64 / m as f64;
    let penalty = GAMMA * frag.powf(BETA);
    (1.0 - penalty) * fmean
}

#[cfg(test)]
mod tests {
    use super::meteor;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn identical_and_disjoint() {
        let r = words("the cat sat on the mat");
        // one chunk of 6: 1 - 0.5 (1/6)^3
        let want = 1.0 - 0.5 * (1.0f64 / 6.0).powi(3);
        assert!((meteor(&r, &r, None) - want).abs() < 1e-12);
        assert_eq!(meteor(&r, &words("dog runs"), None), 0.0);
        assert_eq!(meteor(&r, &[], None), 0.0);
    }

    #[test]
    fn stems_match_after_exact_stage() {
        // "cats" ~ "cat" through the stemmer: two matches in one chunk
        let s = meteor(&words("the cat"), &words("The cats"), None);
        let want = 1.0 - 0.5 * (0.5f64).powi(3);
        assert!((s - want).abs() < 1e-12);
    }
}
