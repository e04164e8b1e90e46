//! The answer's text as it is generated, with stop strings (OpenAI semantics): generation ends
//! as soon as the text contains one of them, and the answer is the text before it.
//!
//! [`StopMatcher`] works on text: it receives pieces and gives back what is safe to show now,
//! holding back any end of the text that could still grow into a stop string. [`AnswerStream`]
//! puts it behind the tokenizer's incremental decoder: push each generated id, get text that
//! is whole UTF-8 characters (a character split over byte tokens comes out once complete) and
//! never part of a stop string. The decode loop keeps one per row; a server that drives its own
//! steps can do the same.

use super::Result;
use crate::model::{ModelTokenizer, TextStream};

/// Finds stop strings in text that arrives in pieces.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not released: a suffix that is the start of some stop string.
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop strings (empty strings are ignored: they would match before
    /// the first character).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string was found (everything pushed afterwards is dropped).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Adds `piece`; returns the text that can be shown now. When the text received so far
    /// contains a stop string, returns what comes before the earliest one and stops.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(piece);
        // Released text never ends with the start of a stop string, so a stop string that is
        // now complete begins inside the held text.
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.stopped = true;
            let mut text = std::mem::take(&mut self.held);
            text.truncate(at);
            return text;
        }
        let keep_from = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let kept = self.held.split_off(keep_from);
        std::mem::replace(&mut self.held, kept)
    }

    /// Ends the text: returns what was held back (nothing after a stop).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Generated ids in, answer text out: the tokenizer's incremental decoder (special tokens
/// skipped) followed by a [`StopMatcher`]. It keeps the whole answer released so far.
#[derive(Debug, Clone)]
pub struct AnswerStream {
    decoder: TextStream,
    matcher: StopMatcher,
    answer: String,
}

impl AnswerStream {
    /// A stream for one answer of a model with `tokenizer`, ending at any of `stop_strings`.
    pub fn new(tokenizer: &ModelTokenizer, stop_strings: &[String]) -> Self {
        Self {
            decoder: tokenizer.stream(true),
            matcher: StopMatcher::new(stop_strings),
            answer: String::new(),
        }
    }

    /// Adds one generated id; returns the text that is safe to show now (possibly empty).
    /// After a stop string, [`AnswerStream::is_stopped`] is true and the text ends before it.
    pub fn push(&mut self, tokenizer: &ModelTokenizer, id: u32) -> Result<String> {
        if self.matcher.is_stopped() {
            return Ok(String::new());
        }
        let piece = self.decoder.step(tokenizer, id)?.unwrap_or_default();
        let text = self.matcher.push(&piece);
        self.answer.push_str(&text);
        Ok(text)
    }

    /// Whether the answer reached a stop string.
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Ends the answer (no more ids): returns the text still held back, bytes of an unfinished
    /// character as U+FFFD included (as a whole decode shows them).
    pub fn finish(&mut self, tokenizer: &ModelTokenizer) -> Result<String> {
        if self.matcher.is_stopped() {
            return Ok(String::new());
        }
        let rest = self.decoder.finish(tokenizer)?.unwrap_or_default();
        let mut text = self.matcher.push(&rest);
        text.push_str(&self.matcher.finish());
        self.answer.push_str(&text);
        Ok(text)
    }

    /// The answer released so far (all of it after [`AnswerStream::finish`] or a stop).
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// The answer, consuming the stream.
    pub fn into_answer(self) -> String {
        self.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// Pushes the pieces; returns what was released after each and the final text.
    fn run(matcher: &mut StopMatcher, pieces: &[&str]) -> (Vec<String>, String) {
        let released: Vec<String> = pieces.iter().map(|p| matcher.push(p)).collect();
        let mut all: String = released.concat();
        all.push_str(&matcher.finish());
        (released, all)
    }

    #[test]
    fn a_stop_string_over_two_pieces_is_held_back_then_dropped() {
        let mut m = StopMatcher::new(&stops(&["\nQ:"]));
        let (released, all) = run(&mut m, &["It is", " caffeine.\n", "Q:", " more"]);
        assert_eq!(released, ["It is", " caffeine.", "", ""]);
        assert_eq!(all, "It is caffeine.");
        assert!(m.is_stopped());
    }

    #[test]
    fn a_held_prefix_that_does_not_complete_is_released() {
        let mut m = StopMatcher::new(&stops(&["###"]));
        let (released, all) = run(&mut m, &["a #", "# b", " c ##"]);
        assert_eq!(released, ["a ", "## b", " c "]);
        // The answer ends with a prefix of the stop string: released at the end.
        assert_eq!(all, "a ## b c ##");
        assert!(!m.is_stopped());
    }

    #[test]
    fn the_earliest_stop_string_wins_and_the_text_never_contains_one() {
        let mut m = StopMatcher::new(&stops(&["cd", "bcx", ""]));
        assert_eq!(m.push("ab"), "a");
        assert_eq!(m.push("c"), "");
        // "bcd!" holds "cd" after "b" ("bcx" can no longer match).
        assert_eq!(m.push("d!"), "b");
        assert!(m.is_stopped());
        assert_eq!(m.push("more"), "");
        assert_eq!(m.finish(), "");
        // Two stop strings complete in one piece: the earlier one cuts.
        let mut m = StopMatcher::new(&stops(&["yz", "x"]));
        assert_eq!(m.push("wxyz"), "w");
        // A stop string at the very start leaves nothing.
        let mut m = StopMatcher::new(&stops(&["Answer"]));
        assert_eq!(run(&mut m, &["Ans", "wer: 4"]).1, "");
    }

    #[test]
    fn multibyte_characters_are_held_whole() {
        // "é" starts the stop string "éé": a lone "é" is held, "ét" is released.
        let mut m = StopMatcher::new(&stops(&["éé", "→"]));
        assert_eq!(m.push("café"), "caf");
        assert_eq!(m.push("t"), "ét");
        assert_eq!(m.push("a → b"), "a ");
        assert!(m.is_stopped());
    }

    #[test]
    fn no_stop_strings_release_everything_at_once() {
        let mut m = StopMatcher::new(&[]);
        assert_eq!(m.push("abc"), "abc");
        assert_eq!(m.push(""), "");
        assert_eq!(m.finish(), "");
    }
}
