//! The Porter stemmer in nltk's default mode (`PorterStemmer()`, NLTK_EXTENSIONS), as used
//! by nltk's METEOR stem stage.
//!
//! Words are handled as sequences of Unicode scalar values, like Python strings; only the
//! ASCII vowels a e i o u (and y by position) count as vowels.

/// Irregular forms nltk maps directly (its `pool`).
const POOL: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

type Word = Vec<char>;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// nltk `_is_consonant`: a `y` run is walked back to the letter before it.
fn is_consonant(w: &[char], mut i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == 'y' {
        let mut negate = false;
        while i > 0 && w[i] == 'y' {
            negate = !negate;
            i -= 1;
        }
        // consonant when the letter before the run is not a vowel, flipped per `y`
        return is_vowel(w[i]) == negate;
    }
    true
}

/// nltk `_consonant_flags`: a `y` is a consonant when it starts the word or follows a vowel.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let flag = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

/// Number of vowel-consonant transitions ("VC" pairs) in `stem`.
fn measure(stem: &[char]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(stem: &[char]) -> bool {
    consonant_flags(stem).iter().any(|c| !c)
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.len() >= s.len() && w[w.len() - s.len()..] == s[..]
}

fn strip(w: &[char], suffix: &str) -> Word {
    w[..w.len() - suffix.chars().count()].to_vec()
}

fn concat(stem: &[char], tail: &str) -> Word {
    let mut out = stem.to_vec();
    out.extend(tail.chars());
    out
}

/// A condition on a stem written as a closure.
type StemTest = Box<dyn Fn(&[char]) -> bool>;

/// The condition of a rule on the stem left after removing the suffix.
enum Cond {
    Always,
    MeasurePositive,
    MeasureAbove1,
    Custom(StemTest),
}

impl Cond {
    fn holds(&self, stem: &[char]) -> bool {
        match self {
            Cond::Always => true,
            Cond::MeasurePositive => measure(stem) > 0,
            Cond::MeasureAbove1 => measure(stem) > 1,
            Cond::Custom(f) => f(stem),
        }
    }
}

/// nltk `_apply_rule_list`: the first rule whose suffix matches decides (`"*d"` is a double
/// consonant ending).
fn apply_rules(w: &[char], rules: &[(&str, String, Cond)]) -> Word {
    for (suffix, replacement, cond) in rules {
        if *suffix == "*d" && ends_double_consonant(w) {
            let stem = &w[..w.len() - 2];
            return if cond.holds(stem) {
                concat(stem, replacement)
            } else {
                w.to_vec()
            };
        }
        if ends_with(w, suffix) {
            let stem = strip(w, suffix);
            return if cond.holds(&stem) {
                concat(&stem, replacement)
            } else {
                w.to_vec()
            };
        }
    }
    w.to_vec()
}

fn rule(suffix: &'static str, replacement: &str, cond: Cond) -> (&'static str, String, Cond) {
    (suffix, replacement.to_string(), cond)
}

fn step1a(w: &[char]) -> Word {
    if ends_with(w, "ies") && w.len() == 4 {
        return concat(&strip(w, "ies"), "ie");
    }
    apply_rules(
        w,
        &[
            rule("sses", "ss", Cond::Always),
            rule("ies", "i", Cond::Always),
            rule("ss", "ss", Cond::Always),
            rule("s", "", Cond::Always),
        ],
    )
}

fn step1b(w: &[char]) -> Word {
    if ends_with(w, "ied") {
        let tail = if w.len() == 4 { "ie" } else { "i" };
        return concat(&strip(w, "ied"), tail);
    }
    if ends_with(w, "eed") {
        let stem = strip(w, "eed");
        return if measure(&stem) > 0 {
            concat(&stem, "ee")
        } else {
            w.to_vec()
        };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(w, suffix) {
            let stem = strip(w, suffix);
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return w.to_vec();
    };
    let last = stem.last().copied();
    let last_str: String = last.map(String::from).unwrap_or_default();
    apply_rules(
        &stem,
        &[
            rule("at", "ate", Cond::Always),
            rule("bl", "ble", Cond::Always),
            rule("iz", "ize", Cond::Always),
            (
                "*d",
                last_str,
                Cond::Custom(Box::new(move |_| !matches!(last, Some('l' | 's' | 'z')))),
            ),
            rule(
                "",
                "e",
                Cond::Custom(Box::new(|s| measure(s) == 1 && ends_cvc(s))),
            ),
        ],
    )
}

fn step1c(w: &[char]) -> Word {
    apply_rules(
        w,
        &[rule(
            "y",
            "i",
            Cond::Custom(Box::new(|s| s.len() > 1 && is_consonant(s, s.len() - 1))),
        )],
    )
}

fn step2(w: &[char]) -> Word {
    if ends_with(w, "alli") && measure(&strip(w, "alli")) > 0 {
        return step2(&concat(&strip(w, "alli"), "al"));
    }
    let word = w.to_vec();
    let rules = vec![
        rule("ational", "ate", Cond::MeasurePositive),
        rule("tional", "tion", Cond::MeasurePositive),
        rule("enci", "ence", Cond::MeasurePositive),
        rule("anci", "ance", Cond::MeasurePositive),
        rule("izer", "ize", Cond::MeasurePositive),
        rule("bli", "ble", Cond::MeasurePositive),
        rule("alli", "al", Cond::MeasurePositive),
        rule("entli", "ent", Cond::MeasurePositive),
        rule("eli", "e", Cond::MeasurePositive),
        rule("ousli", "ous", Cond::MeasurePositive),
        rule("ization", "ize", Cond::MeasurePositive),
        rule("ation", "ate", Cond::MeasurePositive),
        rule("ator", "ate", Cond::MeasurePositive),
        rule("alism", "al", Cond::MeasurePositive),
        rule("iveness", "ive", Cond::MeasurePositive),
        rule("fulness", "ful", Cond::MeasurePositive),
        rule("ousness", "ous", Cond::MeasurePositive),
        rule("aliti", "al", Cond::MeasurePositive),
        rule("iviti", "ive", Cond::MeasurePositive),
        rule("biliti", "ble", Cond::MeasurePositive),
        rule("fulli", "ful", Cond::MeasurePositive),
        rule(
            "logi",
            "log",
            Cond::Custom(Box::new(move |_| measure(&word[..word.len() - 3]) > 0)),
        ),
    ];
    apply_rules(w, &rules)
}

fn step3(w: &[char]) -> Word {
    apply_rules(
        w,
        &[
            rule("icate", "ic", Cond::MeasurePositive),
            rule("ative", "", Cond::MeasurePositive),
            rule("alize", "al", Cond::MeasurePositive),
            rule("iciti", "ic", Cond::MeasurePositive),
            rule("ical", "ic", Cond::MeasurePositive),
            rule("ful", "", Cond::MeasurePositive),
            rule("ness", "", Cond::MeasurePositive),
        ],
    )
}

fn step4(w: &[char]) -> Word {
    let mut rules: Vec<_> = [
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
    ]
    .into_iter()
    .map(|s| rule(s, "", Cond::MeasureAbove1))
    .collect();
    rules.push(rule(
        "ion",
        "",
        Cond::Custom(Box::new(|s| {
            measure(s) > 1 && matches!(s.last(), Some('s' | 't'))
        })),
    ));
    rules.extend(
        ["ou", "ism", "ate", "iti", "ous", "ive", "ize"]
            .into_iter()
            .map(|s| rule(s, "", Cond::MeasureAbove1)),
    );
    apply_rules(w, &rules)
}

fn step5a(w: &[char]) -> Word {
    if ends_with(w, "e") {
        let stem = strip(w, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w.to_vec()
}

fn step5b(w: &[char]) -> Word {
    let word = w.to_vec();
    apply_rules(
        w,
        &[rule(
            "ll",
            "l",
            Cond::Custom(Box::new(move |_| measure(&word[..word.len() - 1]) > 1)),
        )],
    )
}

/// `PorterStemmer().stem(word)`: lowercases, then the five steps with nltk's extensions.
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, base)) = POOL.iter().find(|(form, _)| *form == lower) {
        return (*base).to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Word = lower.chars().collect();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(&w);
    }
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::stem;

    /// Examples from the Porter paper (as nltk stems them).
    #[test]
    fn paper_examples() {
        for (word, want) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("hopping", "hop"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("oscillators", "oscil"),
            ("skies", "sky"),
            ("dying", "die"),
            ("controlling", "control"),
            ("is", "is"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }
}
