//! Decoding that reads well: the penalties against transformers' `RepetitionPenaltyLogitsProcessor`
//! and vLLM's frequency/presence formula (`tests/data/golden/penalties.json`, from
//! `scripts/golden/penalties_golden.py`), greedy decoding with a repetition penalty against
//! transformers' `generate` (tiny model; SmolLM2 when models/ has it), stop strings over token
//! boundaries and split multi-byte characters, log-probabilities, and the CLI flags.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use common::{bin, root, smollm2};
use instructmol::infer::{
    generate, token_logprobs, AnswerStream, Generation, GenerationConfig, Prompt, Sampler,
    SamplingConfig, StopReason,
};
use instructmol::model::llama::Llama;
use instructmol::model::loader::{load_gguf, load_tokenizer};
use instructmol::model::{load_model, ChatMessage, ModelTokenizer};
use serde_json::Value as Json;

fn golden() -> Json {
    let p = root().join("tests/data/golden/penalties.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Json) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tiny_dir() -> PathBuf {
    root().join("tests/data/tiny_model")
}

/// The tiny random LLaMA and its tokenizer.
fn tiny() -> (Llama, ModelTokenizer) {
    let m = load_model(tiny_dir().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let llama = Llama::from_weights(&m.config, m.weights, DType::F32, &Device::Cpu).unwrap();
    (llama, m.tokenizer)
}

/// `question` in the model's chat template, as `generate --prompt` sends it.
fn chat_prompt(llama: &Llama, tok: &ModelTokenizer, question: &str) -> Prompt {
    let text = tok
        .apply_chat_template(&[ChatMessage::new("user", question)], true)
        .unwrap();
    Prompt::from_ids(llama, tok.encode(&text, false).unwrap()).unwrap()
}

fn greedy(repetition_penalty: f64) -> SamplingConfig {
    SamplingConfig {
        repetition_penalty,
        ..Default::default()
    }
}

/// Generates, collecting the streamed pieces (always the start of the answer; what they leave
/// out was held back until the end).
fn run(
    llama: &Llama,
    tok: &ModelTokenizer,
    prompt: &Prompt,
    cfg: &GenerationConfig,
) -> (Generation, String) {
    let mut streamed = String::new();
    let g = generate(llama, tok, prompt, cfg, |t| {
        streamed.push_str(t.text);
        Ok(())
    })
    .unwrap();
    assert!(g.text.starts_with(&streamed), "{streamed:?} / {:?}", g.text);
    (g, streamed)
}

#[test]
fn penalties_match_transformers_and_vllm_on_golden_logits() {
    let g = golden();
    for case in g["processor"].as_array().unwrap() {
        let cfg = SamplingConfig {
            repetition_penalty: case["repetition_penalty"].as_f64().unwrap(),
            frequency_penalty: case["frequency_penalty"].as_f64().unwrap(),
            presence_penalty: case["presence_penalty"].as_f64().unwrap(),
            ..Default::default()
        };
        let logits = floats(&case["logits"]);
        let mut sampler = Sampler::with_prompt_ids(cfg, &ids(&case["prompt_ids"]));
        // Make the sampler generate the golden ids: a logit far above the rest.
        for id in ids(&case["generated_ids"]) {
            let mut forced = vec![0f32; logits.len()];
            forced[id as usize] = 1e4;
            assert_eq!(sampler.sample(&forced), Some(id));
        }
        let mut got = logits.clone();
        sampler.apply_penalties(&mut got);
        let want = floats(&case["penalized"]);
        let mut changed = 0;
        for (i, ((g, w), raw)) in got.iter().zip(&want).zip(&logits).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{cfg:?}: id {i}: {g} vs {w}"
            );
            changed += usize::from(w != raw);
        }
        assert!(
            changed >= 5,
            "{cfg:?}: the golden changes only {changed} logits"
        );
        // Greedy picks the argmax of the penalized logits.
        let best = instructmol::infer::sampling::argmax(&want);
        assert_eq!(sampler.sample(&logits), best);
    }
}

#[test]
fn greedy_with_repetition_penalty_matches_transformers_generate() {
    let (llama, tok) = tiny();
    let eos: Vec<u32> = tok.eos_id().into_iter().chain([2]).collect();
    for case in golden()["generate"].as_array().unwrap() {
        let prompt = chat_prompt(&llama, &tok, case["question"].as_str().unwrap());
        assert_eq!(prompt.text_ids, ids(&case["prompt_ids"]));
        let want = ids(&case["new_ids"]);
        let plain = ids(&case["plain_new_ids"]);
        assert_ne!(want, plain, "the golden penalty changes nothing");
        for (penalty, want) in [
            (case["repetition_penalty"].as_f64().unwrap(), &want),
            (1.0, &plain),
        ] {
            let cfg = GenerationConfig {
                max_new_tokens: want.len(),
                sampling: greedy(penalty),
                stop_ids: eos.clone(),
                ..Default::default()
            };
            let (g, _) = run(&llama, &tok, &prompt, &cfg);
            assert_eq!(&g.tokens, want, "repetition_penalty {penalty}");
        }
    }
}

#[test]
fn smollm2_greedy_with_repetition_penalty_matches_transformers_generate() {
    let Some(path) = smollm2() else { return };
    if cfg!(debug_assertions) {
        println!("skipped in a debug build: run `cargo test --release --test infer_decode`");
        return;
    }
    let g = golden();
    let Some(case) = g["smollm2"].as_array().and_then(|c| c.first()) else {
        panic!("the golden has no SmolLM2 case: rerun scripts/golden/penalties_golden.py with the model");
    };
    let m = load_gguf(&path, DType::F32, &Device::Cpu, false).unwrap();
    let llama = Llama::from_weights(&m.config, m.weights, DType::F32, &Device::Cpu).unwrap();
    let prompt = chat_prompt(&llama, &m.tokenizer, case["question"].as_str().unwrap());
    assert_eq!(prompt.text_ids, ids(&case["prompt_ids"]));
    let want = ids(&case["new_ids"]);
    let cfg = GenerationConfig {
        max_new_tokens: want.len(),
        sampling: greedy(case["repetition_penalty"].as_f64().unwrap()),
        stop_ids: m.tokenizer.eos_id().into_iter().collect(),
        ..Default::default()
    };
    let (out, _) = run(&llama, &m.tokenizer, &prompt, &cfg);
    assert_eq!(out.tokens, want);
    assert_ne!(out.tokens, ids(&case["plain_new_ids"]));
}

/// Byte length of the text of the first `n` ids.
fn text_len(tok: &ModelTokenizer, tokens: &[u32], n: usize) -> usize {
    tok.decode(&tokens[..n], true).unwrap().len()
}

#[test]
fn a_stop_string_across_two_tokens_ends_the_answer_before_it() {
    let (llama, tok) = tiny();
    let prompt = chat_prompt(&llama, &tok, "What is water?");
    let base = GenerationConfig {
        max_new_tokens: 24,
        sampling: greedy(10.0),
        ..Default::default()
    };
    let (full, _) = run(&llama, &tok, &prompt, &base);
    assert_eq!(full.stop, StopReason::Length);
    assert_eq!(full.text, tok.decode(&full.tokens, true).unwrap());
    // The last character of token 5's text and the first of token 6's.
    let (a, b) = (
        text_len(&tok, &full.tokens, 6),
        text_len(&tok, &full.tokens, 7),
    );
    assert!(a > 0 && b > a, "{:?}", full.text);
    let left = full.text[..a].chars().last().unwrap();
    let right = full.text[a..].chars().next().unwrap();
    let stop = format!("{left}{right}");
    let cut = full.text.find(&stop).unwrap();
    let cfg = GenerationConfig {
        stop_strings: vec!["never generated".into(), stop.clone()],
        ..base.clone()
    };
    let (g, streamed) = run(&llama, &tok, &prompt, &cfg);
    assert_eq!(g.stop, StopReason::StopString);
    assert_eq!(g.text, full.text[..cut]);
    assert_eq!(
        streamed, g.text,
        "the stream showed text of the stop string"
    );
    // Generation ended with the token that completed the stop string.
    let n = g.tokens.len();
    assert_eq!(g.tokens, full.tokens[..n]);
    assert!(tok.decode(&g.tokens, true).unwrap().contains(&stop));
    assert!(!tok
        .decode(&g.tokens[..n - 1], true)
        .unwrap()
        .contains(&stop));

    // The answer's end is the start of a stop string: held back while streaming, then part of
    // the answer when generation ends without it.
    let tail: String = {
        let chars: Vec<char> = full.text.chars().collect();
        chars[chars.len() - 2..].iter().collect()
    };
    let cfg = GenerationConfig {
        stop_strings: vec![format!("{tail}\u{1}never")],
        ..base
    };
    let (g, streamed) = run(&llama, &tok, &prompt, &cfg);
    assert_eq!(
        (g.stop, &g.tokens, &g.text),
        (StopReason::Length, &full.tokens, &full.text)
    );
    assert_eq!(streamed, full.text[..full.text.len() - tail.len()]);
}

#[test]
fn multibyte_characters_split_over_byte_tokens_meet_stop_strings_whole() {
    // Sentencepiece byte fallback: "Hello" then the four byte tokens of U+1F9EA.
    let spm = load_tokenizer(root().join("tests/data/llama_spm").to_str().unwrap()).unwrap();
    let ids = [15043u32, 243, 162, 170, 173];
    let push_all = |stops: &[&str], ids: &[u32]| {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = AnswerStream::new(&spm, &stops);
        let pieces: Vec<String> = ids.iter().map(|&id| s.push(&spm, id).unwrap()).collect();
        let rest = s.finish(&spm).unwrap();
        (pieces, rest, s.is_stopped(), s.into_answer())
    };
    let (pieces, rest, stopped, answer) = push_all(&[], &ids);
    assert_eq!(
        (pieces.concat() + &rest, stopped),
        ("Hello🧪".to_string(), false)
    );
    assert_eq!(answer, "Hello🧪");
    // The character completes with its last byte: then it is a stop string.
    let (pieces, _, stopped, answer) = push_all(&["🧪"], &ids);
    assert_eq!(pieces, ["Hello", "", "", "", ""]);
    assert_eq!((stopped, answer.as_str()), (true, "Hello"));
    // A stop string that starts in "Hello" and ends in the character.
    let (pieces, _, stopped, answer) = push_all(&["o🧪"], &ids);
    assert_eq!(pieces, ["Hell", "", "", "", ""]);
    assert_eq!((stopped, answer.as_str()), (true, "Hell"));
    // The answer ends with the start of a stop string: released at the end.
    let (pieces, rest, stopped, answer) = push_all(&["🧪!"], &ids);
    assert_eq!(
        (pieces.concat(), rest.as_str()),
        ("Hello".to_string(), "🧪")
    );
    assert_eq!((stopped, answer.as_str()), (false, "Hello🧪"));
    // An unfinished character at the end comes out as U+FFFD, through the stop strings too.
    let (_, rest, stopped, answer) = push_all(&["\u{fffd}"], &ids[..3]);
    assert_eq!(
        (rest.as_str(), stopped, answer.as_str()),
        ("", true, "Hello")
    );

    // Byte-level BPE (the tiny model's): "é" is two byte tokens.
    let (_, tok) = tiny();
    let text = "café au lait, crème";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    for (stop, want) in [
        ("fé", "ca"),
        ("è", "café au lait, cr"),
        ("é au", "caf"),
        ("x", text),
    ] {
        let mut s = AnswerStream::new(&tok, &[stop.to_string()]);
        let mut shown = String::new();
        for &id in &ids {
            shown.push_str(&s.push(&tok, id).unwrap());
        }
        shown.push_str(&s.finish(&tok).unwrap());
        assert_eq!((shown.as_str(), s.answer()), (want, want), "stop {stop:?}");
    }
}

#[test]
fn logprobs_are_the_log_softmax_of_the_raw_logits_and_change_nothing() {
    let (llama, tok) = tiny();
    let prompt = chat_prompt(&llama, &tok, "Describe the molecule.");
    let base = GenerationConfig {
        max_new_tokens: 8,
        sampling: greedy(10.0),
        ..Default::default()
    };
    let (plain, _) = run(&llama, &tok, &prompt, &base);
    assert_eq!(plain.logprobs, None);
    let (g, _) = run(
        &llama,
        &tok,
        &prompt,
        &GenerationConfig {
            logprobs: Some(3),
            ..base
        },
    );
    assert_eq!((&g.tokens, &g.text), (&plain.tokens, &plain.text));
    let lps = g.logprobs.unwrap();
    assert_eq!(lps.len(), g.tokens.len());
    // The first step against the prefill logits computed here; raw logits, so the penalized
    // choices further on are not the most likely raw tokens.
    let mut cache = llama.new_cache(1);
    let first: Vec<f32> = llama
        .forward_cached(&prompt.embeds, None, &mut cache)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(lps[0], token_logprobs(&first, g.tokens[0], 3).unwrap());
    assert!(lps.iter().any(|lp| lp.top[0].0 != lp.id));
    for (lp, &id) in lps.iter().zip(&g.tokens) {
        assert_eq!((lp.id, lp.top.len()), (id, 3));
        assert!(lp.logprob <= lp.top[0].1 && lp.top[0].1 <= 0.0);
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

fn tiny_generate(args: &[&str]) -> std::process::Output {
    bin()
        .args(["generate", "--model"])
        .arg(tiny_dir())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_flags_out_of_range_are_refused_by_name() {
    let nowhere = Path::new("/nonexistent/run");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--prompt", "hi", "--repetition-penalty", "0"],
            "--repetition-penalty must be > 0",
        ),
        (
            vec!["--prompt", "hi", "--frequency-penalty", "2.5"],
            "--frequency-penalty must be in [-2, 2]",
        ),
        (
            vec!["--prompt", "hi", "--presence-penalty", "-3"],
            "--presence-penalty must be in [-2, 2]",
        ),
        (
            vec!["--prompt", "hi", "--stop", ""],
            "--stop needs a non-empty text",
        ),
    ]
    .into_iter()
    .map(|(a, e)| (a.into_iter().map(String::from).collect(), e))
    .collect();
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = tiny_generate(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    // The same flags on the molecule commands, refused before anything is loaded.
    let commands: [Vec<&str>; 3] = [
        vec!["generate", "--smiles", "C", "--run"],
        vec!["chat", "--smiles", "C", "--run"],
        vec![
            "eval", "--task", "bbbp", "--data", "x.jsonl", "--out", "o", "--run",
        ],
    ];
    for command in commands {
        for (flag, value, want) in [
            (
                "--repetition-penalty",
                "-1",
                "--repetition-penalty must be > 0",
            ),
            (
                "--presence-penalty",
                "2.01",
                "--presence-penalty must be in [-2, 2]",
            ),
            ("--stop", "", "--stop needs a non-empty text"),
        ] {
            let o = bin()
                .args(&command)
                .arg(nowhere)
                .args([flag, value])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success() && err.contains(want),
                "{command:?} {flag}: {err}"
            );
        }
    }
}

#[test]
fn cli_generate_applies_penalties_and_stop_strings_alone_and_in_batches() {
    let (llama, tok) = tiny();
    let question = "What is water?";
    let prompt = chat_prompt(&llama, &tok, question);
    let cfg = GenerationConfig {
        max_new_tokens: 16,
        sampling: greedy(10.0),
        stop_ids: tok.eos_id().into_iter().collect(),
        ..Default::default()
    };
    let (full, _) = run(&llama, &tok, &prompt, &cfg);
    let stop: String = full.text.chars().skip(5).take(2).collect();
    let cut = full.text.find(&stop).unwrap();
    let o = tiny_generate(&[
        "--prompt",
        question,
        "--max-new-tokens",
        "16",
        "--repetition-penalty",
        "10",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", full.text)
    );
    let o = tiny_generate(&[
        "--prompt",
        question,
        "--max-new-tokens",
        "16",
        "--repetition-penalty",
        "10",
        "--stop",
        &stop,
        "--stop",
        "\u{1}\u{2}",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", &full.text[..cut])
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("stopped at a --stop text"));

    // --input: every row with the penalties and the stop string, whatever the batch size.
    let dir = common::temp_dir("decode-input");
    let input = dir.join("q.jsonl");
    let questions = [
        question,
        "Name a gas.",
        "Describe the molecule in detail.",
        "Hi",
    ];
    let lines: String = questions
        .iter()
        .enumerate()
        .map(|(i, q)| format!("{{\"id\": {i}, \"prompt\": \"{q}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let answers = |batch: &str| -> Vec<String> {
        let o = tiny_generate(&[
            "--input",
            input.to_str().unwrap(),
            "--batch-size",
            batch,
            "--max-new-tokens",
            "16",
            "--repetition-penalty",
            "10",
            "--stop",
            &stop,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Json>(l).unwrap()["prediction"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let one = answers("1");
    assert_eq!(one.len(), questions.len());
    assert_eq!(one[0], full.text[..cut].trim());
    assert!(one.iter().all(|a| !a.contains(&stop)), "{one:?}");
    assert_eq!(one, answers("4"));
    std::fs::remove_dir_all(&dir).ok();
}
