//! Model loading: Hugging Face directories (single and sharded safetensors), the local Hugging
//! Face cache, GGUF files (renaming, q/k un-permutation, tied embeddings, tokenizer from
//! metadata), tokenizers and chat templates, and clear errors for broken inputs.
//!
//! The tiny fixture (`tests/data/tiny_model`) makes every test here run without downloads; the
//! SmolLM2 tests run when `models/SmolLM2-135M-Instruct.Q4_1.gguf` (or `$INSTRUCTMOL_SMOLLM2`)
//! is present and print "skipped: ..." otherwise.

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use common::{max_abs_diff, smollm2, temp_dir};
use instructmol::model::loader::{load_gguf, load_hf_dir, LoadError};
use instructmol::model::{load_model, ChatMessage, ModelTokenizer};
use serde_json::Value as Json;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_model")
}

fn golden(name: &str) -> Json {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn copy_tiny(to: &Path, skip: &[&str]) {
    for e in std::fs::read_dir(tiny_dir()).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if !skip.contains(&name.as_str()) {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn loads_a_hugging_face_directory() {
    let m = load_model(tiny_dir().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.config.hidden_size, 64);
    assert!(m.config.tie_word_embeddings);
    assert_eq!(m.weights["model.embed_tokens.weight"].dims(), &[512, 64]);
    assert_eq!(
        m.weights["model.layers.1.self_attn.k_proj.weight"].dims(),
        &[32, 64]
    );
    assert_eq!(m.tokenizer.bos_id(), Some(1));
    assert_eq!(m.tokenizer.eos_id(), Some(2));
    let raw =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    for (k, v) in &raw {
        assert_eq!(max_abs_diff(v, &m.weights[k]), 0.0, "{k}");
    }
    let bf = load_model(tiny_dir().to_str().unwrap(), DType::BF16, &Device::Cpu).unwrap();
    assert!(bf.weights.values().all(|t| t.dtype() == DType::BF16));
    let q = "model.layers.0.self_attn.q_proj.weight";
    assert!(max_abs_diff(&bf.weights[q], &m.weights[q]) < 1e-2);
}

#[test]
fn sharded_checkpoint_equals_the_single_file() {
    let dir = temp_dir("sharded");
    copy_tiny(&dir, &["model.safetensors"]);
    let raw =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let (mut map, a) = common::write_two_shards(&dir, &raw);
    let m = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.weights.len(), raw.len());
    for (k, v) in &raw {
        assert_eq!(max_abs_diff(v, &m.weights[k]), 0.0, "{k}");
    }
    // A shard that lacks a tensor its index promises.
    let first = a[0].clone();
    map.insert(
        first.clone(),
        Json::String("model-00002-of-00002.safetensors".into()),
    );
    let index = serde_json::json!({"weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&first) && err.contains("model-00002-of-00002"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resolves_a_repository_in_the_hugging_face_cache() {
    let cache = temp_dir("hfcache");
    let repo = cache.join("models--tiny-org--tiny-llama");
    let snap = repo.join("snapshots/0123456789abcdef");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    copy_tiny(&snap, &[]);
    // Only this test sets HF_HUB_CACHE.
    std::env::set_var("HF_HUB_CACHE", &cache);
    let m = load_model("tiny-org/tiny-llama", DType::F32, &Device::Cpu).unwrap();
    assert_eq!(m.config.num_hidden_layers, 2);
    assert!(m.source.contains("tiny-org/tiny-llama"), "{}", m.source);
    let err = load_model("tiny-org/absent-model", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("models--tiny-org--absent-model") && err.contains("HF_HUB_CACHE"),
        "{err}"
    );
    std::env::remove_var("HF_HUB_CACHE");
    std::fs::remove_dir_all(&cache).unwrap();
}

#[test]
fn broken_directories_give_clear_errors() {
    let dir = temp_dir("broken");
    copy_tiny(&dir, &["tokenizer.json"]);
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, LoadError::Missing { ref path, .. } if path.ends_with("tokenizer.json")),
        "{err}"
    );

    copy_tiny(&dir, &["model.safetensors"]);
    std::fs::remove_file(dir.join("model.safetensors")).ok();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("index.json"),
        "{err}"
    );

    // Truncated weights.
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();

    // Bad JSON: the error names the file, line and column.
    std::fs::write(
        dir.join("config.json"),
        "{\n  \"hidden_size\": 64,\n  oops\n}",
    )
    .unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("line 3"),
        "{err}"
    );

    // Another architecture.
    let cfg = std::fs::read_to_string(tiny_dir().join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"llama\"", "\"mistral\""),
    )
    .unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, LoadError::Architecture { .. }), "{err}");
    assert!(err.to_string().contains("mistral"));

    // A configuration the weights do not fit.
    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"intermediate_size\": 128", "\"intermediate_size\": 96"),
    )
    .unwrap();
    let err = load_hf_dir(&dir, DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, LoadError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("mlp.gate_proj.weight"), "{err}");

    let err = load_model(dir.join("nope").to_str().unwrap(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// llama.cpp's q/k row permutation (the inverse of what the loader undoes).
fn permute(w: &Tensor, n_head: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((n_head, 2, out / n_head / 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

/// The tiny fixture written as a llama.cpp-style GGUF: GGUF tensor names, permuted q/k, and the
/// byte-level BPE vocabulary of its tokenizer.json as `tokenizer.ggml.*` metadata.
fn write_tiny_gguf(path: &Path, architecture: &str) {
    let raw =
        candle_core::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap();
    let tok: Json =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let special: Vec<u64> = tok["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m {
            Json::Array(p) => Value::String(format!(
                "{} {}",
                p[0].as_str().unwrap(),
                p[1].as_str().unwrap()
            )),
            other => Value::String(other.as_str().unwrap().to_string()),
        })
        .collect();
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| Value::I32(if special.contains(&(i as u64)) { 3 } else { 1 }))
        .collect();
    let template = std::fs::read_to_string(tiny_dir().join("tokenizer_config.json")).unwrap();
    let template: Json = serde_json::from_str(&template).unwrap();
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String(architecture.into())),
        ("general.name", Value::String("tiny".into())),
        ("llama.block_count", Value::U32(2)),
        ("llama.context_length", Value::U32(2048)),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.feed_forward_length", Value::U32(128)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.rope.dimension_count", Value::U32(16)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| Value::String(t.clone())).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(merges)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.padding_token_id", Value::U32(2)),
        (
            "tokenizer.chat_template",
            Value::String(template["chat_template"].as_str().unwrap().into()),
        ),
    ];
    let mut qt: Vec<(String, QTensor)> = Vec::new();
    for (name, t) in &raw {
        let gg = if name == "model.embed_tokens.weight" {
            "token_embd.weight".to_string()
        } else if name == "model.norm.weight" {
            "output_norm.weight".to_string()
        } else {
            let rest = name.strip_prefix("model.layers.").unwrap();
            let (i, part) = rest.split_once('.').unwrap();
            let part = match part {
                "self_attn.q_proj.weight" => "attn_q.weight",
                "self_attn.k_proj.weight" => "attn_k.weight",
                "self_attn.v_proj.weight" => "attn_v.weight",
                "self_attn.o_proj.weight" => "attn_output.weight",
                "mlp.gate_proj.weight" => "ffn_gate.weight",
                "mlp.up_proj.weight" => "ffn_up.weight",
                "mlp.down_proj.weight" => "ffn_down.weight",
                "input_layernorm.weight" => "attn_norm.weight",
                "post_attention_layernorm.weight" => "ffn_norm.weight",
                other => panic!("unexpected tensor {other}"),
            };
            format!("blk.{i}.{part}")
        };
        let t = if gg.ends_with("attn_q.weight") {
            permute(t, 4)
        } else if gg.ends_with("attn_k.weight") {
            permute(t, 2)
        } else {
            t.clone()
        };
        qt.push((gg, QTensor::quantize(&t, GgmlDType::F32).unwrap()));
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qt.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

#[test]
fn gguf_loads_like_the_hugging_face_checkpoint() {
    let dir = temp_dir("gguf");
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, "llama");
    let g = load_model(path.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    let hf = load_hf_dir(&tiny_dir(), DType::F32, &Device::Cpu).unwrap();
    assert!(g.config.tie_word_embeddings);
    assert_eq!(g.config.kv_heads(), 2);
    assert_eq!(g.config.head_dim(), 16);
    assert_eq!(g.config.vocab_size, 512);
    let mut keys: Vec<_> = g.weights.keys().collect();
    keys.sort();
    let mut hf_keys: Vec<_> = hf.weights.keys().collect();
    hf_keys.sort();
    assert_eq!(keys, hf_keys);
    for (k, v) in &hf.weights {
        assert_eq!(max_abs_diff(v, &g.weights[k]), 0.0, "{k}");
    }
    // The tokenizer built from GGUF metadata gives the ids of the tokenizer.json it came from.
    let tokens = golden("tokenizer_smollm2.json");
    for case in tokens["cases"].as_array().unwrap().iter().step_by(7) {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            g.tokenizer.encode(text, false).unwrap(),
            hf.tokenizer.encode(text, false).unwrap(),
            "{text:?}"
        );
    }
    assert_eq!(g.tokenizer.bos_id(), Some(1));
    assert_eq!(g.tokenizer.eos_id(), Some(2));
    let msgs = [ChatMessage::new("user", "hi")];
    assert_eq!(
        g.tokenizer.apply_chat_template(&msgs, true).unwrap(),
        hf.tokenizer.apply_chat_template(&msgs, true).unwrap()
    );

    // Truncated: the error names the file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.gguf");
    for len in [10, bytes.len() / 3, bytes.len() - 100] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = load_gguf(&cut, DType::F32, &Device::Cpu, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.gguf"), "{err}");
    }
    // Another architecture.
    let other = dir.join("other.gguf");
    write_tiny_gguf(&other, "gpt2");
    let err = load_gguf(&other, DType::F32, &Device::Cpu, false).unwrap_err();
    assert!(matches!(err, LoadError::Architecture { .. }), "{err}");
    assert!(err.to_string().contains("gpt2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chat_template_renders_like_transformers() {
    // The tiny fixture carries SmolLM2's template; the golden was rendered by transformers'
    // apply_chat_template from the SmolLM2 GGUF.
    let tok = load_hf_dir(&tiny_dir(), DType::F32, &Device::Cpu)
        .unwrap()
        .tokenizer;
    let g = golden("tokenizer_smollm2.json");
    for case in g["chat"].as_array().unwrap() {
        let msgs: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            tok.apply_chat_template(&msgs, gen).unwrap(),
            case["rendered"].as_str().unwrap()
        );
    }
}

#[test]
fn chat_templates_with_python_methods_and_exceptions() {
    let mut tok = load_hf_dir(&tiny_dir(), DType::F32, &Device::Cpu)
        .unwrap()
        .tokenizer;
    tok.set_chat_template(Some(
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}\
         [{{ m['role'].upper() }}] {{ m['content'].strip() }}{% if m['content'].startswith('Q') %}?{% endif %}\n{% endfor %}"
            .to_string(),
    ));
    // Expected strings as Jinja2 (trim_blocks, lstrip_blocks) renders them.
    let msgs = [
        ChatMessage::new("user", "Q1  "),
        ChatMessage::new("assistant", "  Q2"),
    ];
    let out = tok.apply_chat_template(&msgs, false).unwrap();
    assert_eq!(out, "<|im_start|>[USER] Q1?[ASSISTANT] Q2");
    let err = tok
        .apply_chat_template(&[ChatMessage::new("tool", "x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no tools"), "{err}");
    tok.set_chat_template(None);
    assert!(tok
        .apply_chat_template(&[], true)
        .unwrap_err()
        .to_string()
        .contains("--raw"));
}

fn check_stream(tok: &ModelTokenizer, text: &str) {
    let ids = tok.encode(text, false).unwrap();
    let mut stream = tok.stream(false);
    let mut out = String::new();
    for &id in &ids {
        if let Some(piece) = tok_step(&mut stream, tok, id) {
            out.push_str(&piece);
        }
    }
    assert_eq!(out, tok.decode(&ids, false).unwrap(), "{text:?}");
    assert_eq!(out, text, "decode(encode(s)) != s");
}

fn tok_step(
    stream: &mut instructmol::model::TextStream,
    tok: &ModelTokenizer,
    id: u32,
) -> Option<String> {
    stream.step(tok, id).unwrap()
}

#[test]
fn streaming_decode_keeps_multibyte_characters_whole() {
    let tok = load_hf_dir(&tiny_dir(), DType::F32, &Device::Cpu)
        .unwrap()
        .tokenizer;
    for text in [
        "emoji 🧪🧬 and 漢字 and café",
        "plain ASCII text",
        "Ω≈ç√ 한국어",
    ] {
        check_stream(&tok, text);
    }
    // A 4-byte character split over byte tokens yields nothing until it is complete.
    let ids = tok.encode("🧪", false).unwrap();
    assert!(ids.len() > 1, "expected byte tokens, got {ids:?}");
    let mut stream = tok.stream(false);
    let pieces: Vec<Option<String>> = ids
        .iter()
        .map(|&id| tok_step(&mut stream, &tok, id))
        .collect();
    assert!(
        pieces[..ids.len() - 1].iter().all(Option::is_none),
        "{pieces:?}"
    );
    assert_eq!(pieces[ids.len() - 1].as_deref(), Some("🧪"));
}

#[test]
fn smollm2_tokenizer_matches_transformers() {
    let Some(path) = smollm2() else { return };
    let m = load_gguf(&path, DType::F32, &Device::Cpu, false).unwrap();
    let tok = &m.tokenizer;
    let g = golden("tokenizer_smollm2.json");
    assert_eq!(tok.bos_id(), g["bos_token_id"].as_u64().map(|v| v as u32));
    assert_eq!(tok.eos_id(), g["eos_token_id"].as_u64().map(|v| v as u32));
    assert_eq!(tok.vocab_size(), g["vocab_size"].as_u64().unwrap() as usize);
    let mut n = 0;
    for case in g["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text);
        n += 1;
    }
    assert!(n >= 1000);
    for case in g["cases"].as_array().unwrap().iter().rev().take(15) {
        check_stream(tok, case["text"].as_str().unwrap());
    }
    for case in g["chat"].as_array().unwrap() {
        let msgs: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let gen = case["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            tok.apply_chat_template(&msgs, gen).unwrap(),
            case["rendered"].as_str().unwrap()
        );
    }
    assert_eq!(m.config.num_hidden_layers, 30);
    assert_eq!(m.config.kv_heads(), 3);
    assert_eq!(m.config.rope_theta, 100000.0);
    assert!(m.config.tie_word_embeddings);
}

fn ids_of(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn smollm2_logits_and_greedy_text_match_transformers() {
    use instructmol::infer::{generate, GenerationConfig, Prompt, SamplingConfig, StopReason};
    use instructmol::model::llama::Llama;
    use instructmol::model::Decode;
    let Some(path) = smollm2() else { return };
    let m = load_gguf(&path, DType::F32, &Device::Cpu, false).unwrap();
    let llama = Llama::from_weights(&m.config, m.weights, DType::F32, &Device::Cpu).unwrap();
    let g = golden("smollm2_logits.json");
    let embed = |ids: &[u32]| {
        let ids = candle_core::Tensor::new(ids, &Device::Cpu).unwrap();
        llama.embed_ids(&ids.unsqueeze(0).unwrap()).unwrap()
    };
    for case in g["logits"].as_array().unwrap() {
        let ids = m
            .tokenizer
            .encode(case["prompt"].as_str().unwrap(), false)
            .unwrap();
        assert_eq!(ids, ids_of(&case["ids"]));
        let mut cache = llama.new_cache(1);
        let logits: Vec<f32> = llama
            .forward_cached(&embed(&ids), None, &mut cache)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut worst = 0f64;
        for (id, want) in ids_of(&case["top_ids"])
            .iter()
            .zip(case["top_values"].as_array().unwrap())
        {
            worst = worst.max((f64::from(logits[*id as usize]) - want.as_f64().unwrap()).abs());
        }
        let stride = case["stride"].as_u64().unwrap() as usize;
        for (k, want) in case["strided_values"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            worst = worst.max((f64::from(logits[k * stride]) - want.as_f64().unwrap()).abs());
        }
        assert!(
            worst < 1e-3,
            "max |logit diff| {worst} for {:?}",
            case["prompt"]
        );
        assert_eq!(
            instructmol::infer::sampling::argmax(&logits),
            Some(ids_of(&case["top_ids"])[0])
        );
    }
    let greedy = &g["greedy"];
    let msgs = [ChatMessage::new(
        "user",
        greedy["messages"][0]["content"].as_str().unwrap(),
    )];
    let text = m.tokenizer.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(text, greedy["rendered"].as_str().unwrap());
    let prompt = m.tokenizer.encode(&text, false).unwrap();
    assert_eq!(prompt, ids_of(&greedy["prompt_ids"]));
    let cfg = GenerationConfig {
        max_new_tokens: greedy["max_new_tokens"].as_u64().unwrap() as usize,
        sampling: SamplingConfig::default(),
        stop_ids: vec![m.tokenizer.eos_id().unwrap()],
        ..Default::default()
    };
    let mut streamed = Vec::new();
    let prompt = Prompt {
        embeds: embed(&prompt),
        text_ids: prompt,
    };
    let out = generate(&llama, &m.tokenizer, &prompt, &cfg, |t| {
        streamed.push(t.id);
        Ok(())
    })
    .unwrap();
    assert_eq!(out.tokens, ids_of(&greedy["new_ids"]));
    if out.stop == StopReason::Eos {
        assert_eq!(&streamed[..], &out.tokens[..out.tokens.len() - 1]);
    }
    assert_eq!(
        m.tokenizer.decode(&out.tokens, true).unwrap(),
        greedy["new_text"].as_str().unwrap()
    );
    assert_eq!(out.text, greedy["new_text"].as_str().unwrap());
}
