//! Conversation templates and loss masks, token by token, on tiny tokenizers built here: a
//! word-level one (one token per word or punctuation mark) and a byte-level BPE whose only
//! merges make ` Yes` one token (the case where a token straddles the mask boundary).

use instructmol::data::record::Turn;
use instructmol::data::templates::{
    tokenize, Template, TemplateKind, CHATML_SYSTEM, VICUNA_SYSTEM,
};
use instructmol::model::IGNORE_INDEX;
use tokenizers::Tokenizer;

const SPECIAL: [&str; 4] = ["</s>", "<s>", "<|im_start|>", "<|im_end|>"];

fn added_tokens(first_id: usize) -> Vec<serde_json::Value> {
    SPECIAL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": first_id + i, "content": t, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect()
}

/// Word-level tokenizer over every word of the test texts (`[UNK]` for the rest).
fn word_tokenizer() -> Tokenizer {
    let text = format!(
        "{VICUNA_SYSTEM} {CHATML_SYSTEM} USER: ASSISTANT: Is it toxic? Yes it is. Why? Because. \
         system user assistant The molecule is an acid"
    );
    let mut words: Vec<String> = vec!["[UNK]".into()];
    let mut cur = String::new();
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() && !words.contains(cur) {
            words.push(cur.clone());
        }
        cur.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            cur.push(c);
        } else {
            flush(&mut cur, &mut words);
            if !c.is_whitespace() && !words.contains(&c.to_string()) {
                words.push(c.to_string());
            }
        }
    }
    flush(&mut cur, &mut words);
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added_tokens(words.len()),
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    Tokenizer::from_bytes(json.to_string().as_bytes()).expect("word-level tokenizer")
}

/// Byte-level BPE: every byte is a token; merges only build `Ġ`+`Y`+`e`+`s` = ` Yes`.
fn byte_bpe_tokenizer() -> Tokenizer {
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    alphabet.sort_unstable();
    let mut vocab: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    vocab.extend(["ĠY", "ĠYe", "ĠYes"].map(String::from));
    let map: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), serde_json::json!(i)))
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added_tokens(vocab.len()),
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "vocab": map, "merges": ["Ġ Y", "ĠY e", "ĠYe s"]}
    });
    Tokenizer::from_bytes(json.to_string().as_bytes()).expect("byte-level BPE tokenizer")
}

fn conversation() -> Vec<Turn> {
    vec![
        Turn::human("Is it toxic?\n<image>"),
        Turn::gpt("Yes it is."),
        Turn::human("Why?"),
        Turn::gpt("Because."),
    ]
}

/// (token text, supervised) pairs; the image slot shows as `<IMG>`.
fn view(
    tok: &Tokenizer,
    ex: &instructmol::data::templates::TokenizedExample,
) -> Vec<(String, bool)> {
    ex.input_ids
        .iter()
        .zip(&ex.labels)
        .enumerate()
        .map(|(i, (&id, &label))| {
            let text = if Some(i) == ex.image_position {
                "<IMG>".to_string()
            } else {
                tok.id_to_token(id).unwrap_or_default()
            };
            if label != IGNORE_INDEX {
                assert_eq!(
                    label,
                    i64::from(id),
                    "a supervised label is the token itself"
                );
            }
            (text, label != IGNORE_INDEX)
        })
        .collect()
}

fn words(tok: &Tokenizer, text: &str) -> Vec<String> {
    let enc = tok.encode(text, false).unwrap();
    enc.get_ids()
        .iter()
        .map(|&i| tok.id_to_token(i).unwrap())
        .collect()
}

fn expect(tok: &Tokenizer, prefix_masked: &str, rest: &[(&str, bool)]) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = words(tok, prefix_masked)
        .into_iter()
        .map(|w| (w, false))
        .collect();
    v.extend(rest.iter().map(|(t, s)| (t.to_string(), *s)));
    v
}

#[test]
fn vicuna_masks_everything_but_answers_and_eos() {
    let tok = word_tokenizer();
    let t = Template::for_tokenizer(TemplateKind::VicunaV1, &tok);
    assert_eq!(t.bos_id, tok.token_to_id("<s>"));
    let ex = tokenize(&tok, &conversation(), &t).unwrap();
    let mut want = vec![("<s>".to_string(), false)];
    want.extend(expect(
        &tok,
        VICUNA_SYSTEM,
        &[
            ("USER", false),
            (":", false),
            ("<IMG>", false),
            ("Is", false),
            ("it", false),
            ("toxic", false),
            ("?", false),
            ("ASSISTANT", false),
            (":", false),
            ("Yes", true),
            ("it", true),
            ("is", true),
            (".", true),
            ("</s>", true),
            ("USER", false),
            (":", false),
            ("Why", false),
            ("?", false),
            ("ASSISTANT", false),
            (":", false),
            ("Because", true),
            (".", true),
            ("</s>", true),
        ],
    ));
    assert_eq!(view(&tok, &ex), want);
    assert!(!ex.truncated);
}

#[test]
fn chatml_supervises_answer_and_im_end_only() {
    let tok = word_tokenizer();
    let t = Template::for_tokenizer(TemplateKind::Chatml, &tok);
    assert_eq!(t.bos_id, None);
    let ex = tokenize(&tok, &conversation()[..2], &t).unwrap();
    let mut want = vec![("<|im_start|>".to_string(), false)];
    want.extend(expect(&tok, &format!("system {CHATML_SYSTEM}"), &[]));
    want.extend(
        [
            ("<|im_end|>", false),
            ("<|im_start|>", false),
            ("user", false),
            ("<IMG>", false),
            ("Is", false),
            ("it", false),
            ("toxic", false),
            ("?", false),
            ("<|im_end|>", false),
            ("<|im_start|>", false),
            ("assistant", false),
            ("Yes", true),
            ("it", true),
            ("is", true),
            (".", true),
            ("<|im_end|>", true),
        ]
        .map(|(a, b)| (a.to_string(), b)),
    );
    assert_eq!(view(&tok, &ex), want);
    assert_eq!(t.system_prompt(), CHATML_SYSTEM);
}

#[test]
fn plain_keeps_only_the_caption() {
    let tok = word_tokenizer();
    let bos = tok.token_to_id("<|im_start|>");
    let t = Template::new(TemplateKind::Plain).with_bos(bos);
    let conv = vec![
        Turn::human("<image>\nDescribe this molecule."),
        Turn::gpt("The molecule is an acid."),
    ];
    let ex = tokenize(&tok, &conv, &t).unwrap();
    let want: Vec<(String, bool)> = [
        ("<|im_start|>", false),
        ("<IMG>", false),
        ("The", true),
        ("molecule", true),
        ("is", true),
        ("an", true),
        ("acid", true),
        (".", true),
    ]
    .map(|(a, b)| (a.to_string(), b))
    .to_vec();
    assert_eq!(view(&tok, &ex), want);
    assert_eq!(ex.image_position, Some(1));
}

#[test]
fn byte_bpe_answer_token_that_carries_the_space_is_supervised() {
    let tok = byte_bpe_tokenizer();
    let t = Template::new(TemplateKind::VicunaV1);
    let conv = vec![Turn::human("<image>\nIs it toxic?"), Turn::gpt("Yes")];
    let ex = tokenize(&tok, &conv, &t).unwrap();
    let v = view(&tok, &ex);
    let n = v.len();
    // ... "A" "N" "T" ":" "ĠYes" "</s>": the colon is masked, " Yes" and "</s>" are not.
    assert_eq!(v[n - 3], (":".to_string(), false), "{v:?}");
    assert_eq!(v[n - 2], ("ĠYes".to_string(), true));
    assert_eq!(v[n - 1], ("</s>".to_string(), true));
    assert_eq!(v.iter().filter(|(_, s)| *s).count(), 2);
    // The text before the slot ends with "USER:" + " " and the slot is followed by "\n".
    let p = ex.image_position.unwrap();
    assert_eq!(v[p - 1].0, "Ġ");
    assert_eq!(v[p + 1].0, "Ċ");
}

#[test]
fn inference_prompt_is_the_training_prefix() {
    for tok in [word_tokenizer(), byte_bpe_tokenizer()] {
        for kind in [
            TemplateKind::VicunaV1,
            TemplateKind::Chatml,
            TemplateKind::Plain,
        ] {
            let t = Template::for_tokenizer(kind, &tok);
            let q = "<image>\nIs it toxic?";
            let ex = tokenize(&tok, &[Turn::human(q), Turn::gpt("Yes")], &t).unwrap();
            let prompt = t.tokenize_prompt(&tok, q).unwrap();
            let first_supervised = ex.labels.iter().position(|&l| l != IGNORE_INDEX).unwrap();
            assert_eq!(
                prompt.input_ids,
                ex.input_ids[..first_supervised],
                "{kind:?}"
            );
            assert_eq!(prompt.image_position, ex.image_position);
            assert!(prompt.labels.iter().all(|&l| l == IGNORE_INDEX));
            assert!(t.render_prompt(q).contains(t.system_prompt()));
        }
    }
}

#[test]
fn truncation_cuts_the_tail_and_keeps_the_image_slot() {
    let tok = word_tokenizer();
    let full = Template::new(TemplateKind::Chatml)
        .tokenize(&tok, &conversation(), 1)
        .unwrap();
    let max_len = full.input_ids.len() + 5;
    let t = Template::new(TemplateKind::Chatml).with_max_len(max_len);
    assert!(!t.tokenize(&tok, &conversation(), 6).unwrap().truncated);
    let ex = t.tokenize(&tok, &conversation(), 10).unwrap();
    assert!(ex.truncated);
    assert_eq!(ex.expanded_len(10), max_len);
    assert_eq!(ex.input_ids.len(), full.input_ids.len() - 4);
    assert_eq!(ex.input_ids[..], full.input_ids[..ex.input_ids.len()]);
    assert_eq!(ex.image_position, full.image_position);
    // Far more graph tokens than room: the slot still survives.
    let ex = t.tokenize(&tok, &conversation(), 500).unwrap();
    assert_eq!(ex.input_ids.len(), ex.image_position.unwrap() + 1);
}

#[test]
fn bad_conversations_are_refused() {
    let tok = word_tokenizer();
    let t = Template::new(TemplateKind::VicunaV1);
    let err = tokenize(&tok, &[Turn::gpt("Yes")], &t).unwrap_err();
    assert!(err.to_string().contains("expected Human"), "{err}");
    let err = tokenize(&tok, &[Turn::human("q"), Turn::gpt("<image> a")], &t).unwrap_err();
    assert!(err.to_string().contains("only the first"), "{err}");
}

#[derive(serde::Deserialize)]
struct ChatmlCase {
    turns: Vec<(String, String)>,
    ids: Vec<u32>,
    supervised: Vec<usize>,
    prompt_ids: Vec<u32>,
}

/// ChatML against SmolLM2's own chat template as Hugging Face renders it, on the tiny
/// byte-level tokenizer of tests/data/tiny_model (golden: scripts/golden/template_golden.py).
#[test]
fn chatml_matches_smollm2_chat_template() {
    #[derive(serde::Deserialize)]
    struct Golden {
        cases: Vec<ChatmlCase>,
    }
    let tok = Tokenizer::from_file("tests/data/tiny_model/tokenizer.json").unwrap();
    let golden: Golden = serde_json::from_str(
        &std::fs::read_to_string("tests/data/golden/chatml_template.json").unwrap(),
    )
    .unwrap();
    assert!(golden.cases.len() >= 5);
    let t = Template::for_tokenizer(TemplateKind::Chatml, &tok);
    for case in &golden.cases {
        let turns: Vec<Turn> = case
            .turns
            .iter()
            .map(|(who, text)| {
                if who == "human" {
                    Turn::human(text.as_str())
                } else {
                    Turn::gpt(text.as_str())
                }
            })
            .collect();
        let ex = tokenize(&tok, &turns, &t).unwrap();
        assert_eq!(ex.input_ids, case.ids);
        let sup: Vec<usize> = (0..ex.labels.len())
            .filter(|&i| ex.labels[i] != IGNORE_INDEX)
            .collect();
        assert_eq!(sup, case.supervised);
        let prompt = t.tokenize_prompt(&tok, &case.turns[0].1).unwrap();
        assert_eq!(prompt.input_ids, case.prompt_ids);
    }
}

#[test]
fn dataset_counts_truncations_and_skips() {
    use instructmol::data::dataset::{Dataset, TRUNCATED_KEPT};
    use instructmol::data::record::Record;
    let tok = word_tokenizer();
    let rec = |id: &str, smiles: &str, answer: &str| Record {
        id: id.into(),
        smiles: smiles.into(),
        conversations: vec![Turn::human("<image>\nIs it toxic?"), Turn::gpt(answer)],
        task: None,
        label: None,
    };
    let records = vec![
        rec("short", "CCO", "Yes"),
        rec(
            "long",
            "CCCCCCCC",
            "Yes it is. Because. Yes it is. Because.",
        ),
        rec("bad", "C1CC", "Yes"),
        rec("huge", &"C".repeat(40), "Yes"),
    ];
    let plain = Template::new(TemplateKind::Plain).with_max_len(12);
    let d = Dataset::from_records(records, &plain, &tok);
    let ids: Vec<&str> = d.examples.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["short", "long"]);
    assert_eq!(d.skipped.get(TRUNCATED_KEPT), Some(&1));
    // `short`: 3 atoms in place of `<image>`, then the answer; `long` is cut to the maximum.
    assert_eq!(d.lengths(), [2 - 1 + 3, 12]);
    assert_eq!(d.skipped.get("invalid molecule"), Some(&1));
    assert_eq!(d.skipped.get("nothing supervised"), Some(&1));
    assert_eq!(d.left_out(), 2);
    assert!(
        d.first_errors[0].starts_with("bad:"),
        "{:?}",
        d.first_errors
    );
    assert!(
        d.first_errors[1].starts_with("huge:"),
        "{:?}",
        d.first_errors
    );
}

#[test]
fn llava_v1_is_vicuna_v1_with_the_official_evaluation_prompt() {
    use instructmol::data::templates::LLAVA_SYSTEM;
    assert_eq!(
        LLAVA_SYSTEM,
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions."
    );
    let q = "<image>\nDescribe this molecule.";
    let vicuna = Template::new(TemplateKind::VicunaV1).render_prompt(q);
    let llava = Template::new("llava_v1".parse().unwrap()).render_prompt(q);
    assert_eq!(llava, vicuna.replace(VICUNA_SYSTEM, LLAVA_SYSTEM));
    assert_ne!(llava, vicuna);
}
