//! Follow-up prompts of the conversation templates (what `chat` sends), and batched greedy
//! decoding of the SmolLM2 default model (skipped when the GGUF file is absent), and a plain
//! model's prompt file answered through the binary at several batch sizes.

mod common;

use common::smollm2;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use instructmol::data::record::Turn;
use instructmol::data::templates::{Template, TemplateKind};
use instructmol::infer::{generate_batch, GenerationConfig, Prompt, RowPrompt, SamplingConfig};
use instructmol::model::llama::Llama;
use instructmol::model::{load_model, ChatMessage};

#[test]
fn followup_prompt_is_the_prefix_of_the_longer_conversation() {
    let history = vec![
        Turn::human("<image>\nWhat is this molecule?"),
        Turn::gpt("An alcohol."),
    ];
    let q = "Is it soluble in water?";
    for kind in [TemplateKind::VicunaV1, TemplateKind::Chatml] {
        let t = Template::new(kind);
        // Empty history: the single-question prompt.
        assert_eq!(
            t.render_followup(&[], "<image>\nWhat is this molecule?")
                .unwrap(),
            t.render_prompt("<image>\nWhat is this molecule?")
        );
        // With history: a prefix of the rendered conversation that continues with q and an
        // answer, and longer than the history's own rendering.
        let prompt = t.render_followup(&history, q).unwrap();
        let mut longer = history.clone();
        longer.push(Turn::human(q));
        longer.push(Turn::gpt("Yes."));
        let full = t.render(&longer).unwrap().text;
        assert!(
            full.starts_with(&prompt),
            "{kind:?}:\n{prompt}\n---\n{full}"
        );
        let past = t.render(&history).unwrap().text;
        assert!(prompt.starts_with(&past) && prompt.len() > past.len() + q.len());
        assert_eq!(
            full[prompt.len()..].trim_start(),
            "Yes.".to_string()
                + t.stop_text()
                + if kind == TemplateKind::Chatml {
                    "\n"
                } else {
                    ""
                }
        );
        assert_eq!(prompt.matches("<image>").count(), 1);
        // The graph slot must stay in the first turn only; half a turn is refused.
        assert!(t.render_followup(&history, "<image> again").is_err());
        assert!(t.render_followup(&history[..1], q).is_err());
    }
    // Plain has no turns: the slot alone.
    let plain = Template::new(TemplateKind::Plain);
    assert_eq!(plain.render_followup(&history, q).unwrap(), "<image>");
}

#[test]
fn smollm2_greedy_text_is_the_same_at_batch_1_and_4() {
    let Some(path) = smollm2() else { return };
    if cfg!(debug_assertions) {
        // About 4 minutes unoptimised on 2 cores; `cargo test --release` (CI) runs it.
        println!("skipped in a debug build: run `cargo test --release --test infer_text`");
        return;
    }
    let m = load_model(path.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let llama = Llama::from_weights(&m.config, m.weights, DType::F32, &Device::Cpu).unwrap();
    let prompts: Vec<RowPrompt> = ["Hi", "What is water?", "Name a gas.", "2+2="]
        .iter()
        .map(|p| {
            let text = m
                .tokenizer
                .apply_chat_template(&[ChatMessage::new("user", p)], true)
                .unwrap();
            let ids = m.tokenizer.encode(&text, false).unwrap();
            RowPrompt {
                prompt: Prompt::from_ids(&llama, ids).unwrap(),
                seed: 0,
            }
        })
        .collect();
    let cfg = GenerationConfig {
        max_new_tokens: 5,
        sampling: SamplingConfig::default(),
        stop_ids: m.tokenizer.eos_id().into_iter().collect(),
        ..Default::default()
    };
    let tok = &m.tokenizer;
    let mut one = Vec::new();
    for p in &prompts {
        let g =
            generate_batch(&llama, tok, std::slice::from_ref(p), &cfg, None, |_| Ok(())).unwrap();
        one.push(g.rows[0].tokens.clone());
    }
    let four = generate_batch(&llama, tok, &prompts, &cfg, None, |_| Ok(())).unwrap();
    let four: Vec<Vec<u32>> = four.rows.into_iter().map(|r| r.tokens).collect();
    assert_eq!(one, four);
    assert!(one.iter().any(|t| t != &one[0]), "{one:?}");
}

/// Sampled (seeded per input row), so that the rows differ: the batch size changes nothing.
#[test]
fn plain_model_prompt_file_is_answered_the_same_at_every_batch_size() {
    let dir = std::env::temp_dir().join(format!("im-infer-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("prompts.jsonl");
    let prompts = [
        "What is an acid?",
        "Name a gas",
        "Describe the molecule in detail, please.",
        "Hi",
        "Why?",
    ];
    let text: String = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{\"id\": {i}, \"prompt\": \"{p}\"}}\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_model");
    let answers = |batch: &str| -> Vec<serde_json::Value> {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_instructmol"))
            .arg("generate")
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&input)
            .args([
                "--batch-size",
                batch,
                "--max-new-tokens",
                "8",
                "--temperature",
                "1",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let one = answers("1");
    assert_eq!(one.len(), prompts.len());
    for (i, (row, p)) in one.iter().zip(&prompts).enumerate() {
        assert_eq!(row["id"], i.to_string());
        assert_eq!(row["prompt"], *p);
        assert!(row.get("reference").is_none());
    }
    assert_eq!(one, answers("3"));
    assert_eq!(one, answers("8"));
    assert!(
        one.iter().any(|r| r["prediction"] != one[0]["prediction"]),
        "{one:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn decoding_stops_at_the_context_length_whatever_the_token_budget() {
    use instructmol::infer::{generate, StopReason};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_model");
    let m = load_model(dir.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let mut cfg = m.config.clone();
    cfg.max_position_embeddings = 40;
    let llama = Llama::from_weights(&cfg, m.weights, DType::F32, &Device::Cpu).unwrap();
    let prompt = Prompt::from_ids(&llama, vec![1u32, 5, 9, 12, 7, 3]).unwrap();
    let budget = GenerationConfig {
        max_new_tokens: 1_000_000_000,
        ..Default::default()
    };
    let tok = &m.tokenizer;
    let g = generate(&llama, tok, &prompt, &budget, |_| Ok(())).unwrap();
    assert_eq!((g.tokens.len(), g.stop), (34, StopReason::Context));
    let rows = [RowPrompt {
        prompt: prompt.clone(),
        seed: 0,
    }];
    let b = generate_batch(&llama, tok, &rows, &budget, None, |_| Ok(())).unwrap();
    assert_eq!(b.rows[0].tokens, g.tokens);
    assert_eq!(b.rows[0].stop, StopReason::Context);
    // A prompt that fills the context is refused.
    let long = Prompt {
        embeds: Tensor::zeros((1, 40, cfg.hidden_size), DType::F32, &Device::Cpu).unwrap(),
        text_ids: Vec::new(),
    };
    let err = generate(&llama, tok, &long, &budget, |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("context"), "{err}");
}
