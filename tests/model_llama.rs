//! LLaMA decoder + LoRA against transformers/peft goldens (scripts/golden/llama_golden.py),
//! plus self-consistency: KV-cache decoding, left-padded batches, merged LoRA, PEFT round trip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use instructmol::model::{Llama, LlamaConfig, LoraConfig};

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/golden/llama_{name}"))
}

fn load(name: &str) -> (Llama, HashMap<String, Tensor>) {
    let dir = golden_dir(name);
    let cfg =
        LlamaConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let weights =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let model = Llama::from_weights(&cfg, weights, DType::F32, &Device::Cpu).unwrap();
    let golden =
        candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu).unwrap();
    (model, golden)
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_err(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims());
    let d = max_abs(&(ours.to_dtype(DType::F32).unwrap() - reference).unwrap());
    d / max_abs(reference).max(1e-12)
}

fn golden_step(name: &str) {
    let (mut model, g) = load(name);
    let varmap = VarMap::new();
    model
        .load_peft(golden_dir(name).join("adapter"), &varmap)
        .unwrap();
    let embeds = Var::from_tensor(&g["inputs_embeds"]).unwrap();
    let mask = &g["attention_mask"];
    let logits = model
        .forward(embeds.as_tensor(), Some(mask), true, 0)
        .unwrap();
    let d = max_abs(&(&logits - &g["logits"]).unwrap());
    assert!(d < 1e-4, "{name}: logits differ by {d}");
    let loss = Llama::loss(&logits, &g["labels"]).unwrap();
    let e = rel_err(&loss.reshape(1).unwrap(), &g["loss"]);
    assert!(e < 1e-4, "{name}: loss relative error {e}");
    let grads = loss.backward().unwrap();
    let ge = grads
        .get(embeds.as_tensor())
        .expect("no gradient for inputs_embeds");
    let e = rel_err(ge, &g["grad.inputs_embeds"]);
    assert!(
        e < 1e-4,
        "{name}: inputs_embeds gradient relative error {e}"
    );
    let tensors = model.lora_tensors();
    assert_eq!(tensors.len(), 28);
    for (key, t) in &tensors {
        let gr = grads
            .get(t)
            .unwrap_or_else(|| panic!("no gradient for {key}"));
        let e = rel_err(gr, &g[&format!("grad.{key}")]);
        assert!(e < 1e-4, "{name}: gradient of {key} relative error {e}");
    }
    let params = ParamsAdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut opt = AdamW::new(model.lora_vars(), params).unwrap();
    opt.step(&grads).unwrap();
    for (key, t) in model.lora_tensors() {
        let e = rel_err(&t, &g[&format!("after.{key}")]);
        assert!(e < 1e-4, "{name}: {key} after AdamW relative error {e}");
    }
}

#[test]
fn lora_step_matches_peft_tied() {
    golden_step("tied");
}

#[test]
fn lora_step_matches_peft_untied() {
    golden_step("untied");
}

fn tiny_cfg() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,
        "num_key_value_heads":2,"vocab_size":97,"rope_theta":10000.0,"rms_norm_eps":1e-5,
        "tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn ids(v: &[u32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

#[test]
fn kv_cache_decoding_matches_full_forward() {
    let model = Llama::random(&tiny_cfg(), 7, DType::F32, &Device::Cpu).unwrap();
    let toks = [5u32, 17, 3, 88, 42, 9, 60];
    let full = model
        .forward(&model.embed(&ids(&toks)).unwrap(), None, false, 0)
        .unwrap();
    let mut cache = model.new_cache(1);
    let mut step = |range: std::ops::Range<usize>| {
        let e = model.embed(&ids(&toks[range.clone()])).unwrap();
        let last = model.forward_cached(&e, None, &mut cache).unwrap();
        let want = full
            .narrow(1, range.end - 1, 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let d = max_abs(&(last - want).unwrap());
        assert!(d < 1e-4, "cached logits at {} differ by {d}", range.end - 1);
    };
    step(0..4);
    step(4..5);
    step(5..6);
    step(6..7);
}

fn greedy(model: &Llama, prompts: &[&[u32]], steps: usize) -> (Vec<Vec<u32>>, Vec<Tensor>) {
    let b = prompts.len();
    let width = prompts.iter().map(|p| p.len()).max().unwrap();
    let mut flat = Vec::new();
    let mut mask = Vec::new();
    for p in prompts {
        let pad = width - p.len();
        flat.extend(std::iter::repeat_n(0u32, pad).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0f32, pad).chain(std::iter::repeat_n(1f32, p.len())));
    }
    let x = Tensor::from_vec(flat, (b, width), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (b, width), &Device::Cpu).unwrap();
    let mut cache = model.new_cache(b);
    let mut logits = model
        .forward_cached(&model.embed(&x).unwrap(), Some(&mask), &mut cache)
        .unwrap();
    let mut out = vec![Vec::new(); b];
    let mut all = Vec::new();
    for _ in 0..steps {
        all.push(logits.clone());
        let next: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
        for (o, &t) in out.iter_mut().zip(&next) {
            o.push(t);
        }
        let x = Tensor::from_vec(next, (b, 1), &Device::Cpu).unwrap();
        logits = model
            .forward_cached(&model.embed(&x).unwrap(), None, &mut cache)
            .unwrap();
    }
    (out, all)
}

#[test]
fn left_padded_batch_matches_single_rows() {
    let model = Llama::random(&tiny_cfg(), 11, DType::F32, &Device::Cpu).unwrap();
    let a: &[u32] = &[5, 17, 3, 88, 42];
    let b: &[u32] = &[60, 9, 31];
    let (batched, blogits) = greedy(&model, &[a, b], 5);
    for (row, p) in [a, b].iter().enumerate() {
        let (single, slogits) = greedy(&model, &[p], 5);
        assert_eq!(
            batched[row], single[0],
            "row {row} decodes differently in a batch"
        );
        for (bl, sl) in blogits.iter().zip(&slogits) {
            let d = max_abs(&(bl.narrow(0, row, 1).unwrap() - sl).unwrap());
            assert!(d < 1e-4, "row {row}: batched logits differ by {d}");
        }
    }
}

#[test]
fn merged_lora_matches_unmerged_and_peft_round_trips() {
    let (mut model, g) = load("untied");
    let varmap = VarMap::new();
    model
        .load_peft(golden_dir("untied").join("adapter"), &varmap)
        .unwrap();
    assert_eq!(varmap.all_vars().len(), 28);
    let x = &g["inputs_embeds"];
    let mask = &g["attention_mask"];
    let before = model.forward(x, Some(mask), false, 0).unwrap();

    let dir = std::env::temp_dir().join(format!("instructmol-peft-{}", std::process::id()));
    model.save_peft(&dir, Some("tiny")).unwrap();
    let (mut fresh, _) = load("untied");
    fresh.load_peft(&dir, &VarMap::new()).unwrap();
    let theirs = fresh.lora_tensors();
    for (k, t) in model.lora_tensors() {
        assert_eq!(max_abs(&(&t - &theirs[&k]).unwrap()), 0.0, "{k} changed");
    }
    let cfg = fresh.lora_config().unwrap().clone();
    assert_eq!((cfg.r, cfg.alpha), (8, 16.0));
    std::fs::remove_dir_all(&dir).unwrap();

    model.merge_lora().unwrap();
    assert!(model.lora_tensors().is_empty());
    let after = model.forward(x, Some(mask), false, 0).unwrap();
    // The merged weights hold no gradient graph (it kept every f32 temporary of the merge
    // alive: a 7B model grew by ~10 GB).
    assert!(!after.track_op());
    let d = max_abs(&(before - after).unwrap());
    assert!(d < 1e-4, "merged logits differ by {d}");
}

#[test]
fn fresh_lora_is_a_no_op_and_trains_only_adapters() {
    let cfg = tiny_cfg();
    let base = Llama::random(&cfg, 3, DType::F32, &Device::Cpu).unwrap();
    let mut model = base.clone();
    let varmap = VarMap::new();
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        target_modules: vec!["q_proj".into(), "down_proj".into()],
    };
    model.add_lora(&lcfg, &varmap, 1).unwrap();
    assert_eq!(model.lora_vars().len(), 2 * 2 * 2);
    let e = model.embed(&ids(&[1, 2, 3, 4])).unwrap();
    let y0 = base.forward(&e, None, false, 0).unwrap();
    let y1 = model.forward(&e, None, false, 0).unwrap();
    assert!(max_abs(&(y0 - &y1).unwrap()) < 1e-6);
    // Dropout masks are reproducible from the seed and differ between seeds (B is zero;
    // B's gradient depends on the masked input of A).
    let labels = Tensor::new(&[[1i64, 2, 3, 4]], &Device::Cpu).unwrap();
    let grad_b = |seed: u64| {
        let l = Llama::loss(&model.forward(&e, None, true, seed).unwrap(), &labels).unwrap();
        let g = l.backward().unwrap();
        let b = model.lora_vars()[1].clone();
        g.get(b.as_tensor()).unwrap().clone()
    };
    let (g1, g2, g3) = (grad_b(5), grad_b(5), grad_b(6));
    assert_eq!(max_abs(&(&g1 - &g2).unwrap()), 0.0);
    assert!(max_abs(&(&g1 - &g3).unwrap()) > 0.0);
}

#[test]
fn clear_errors_for_bad_weights_and_adapters() {
    let cfg = tiny_cfg();
    let model = Llama::random(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let err = Llama::from_weights(&cfg, w.clone(), DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
    w.insert(
        "model.embed_tokens.weight".into(),
        Tensor::zeros((97, 31), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = Llama::from_weights(&cfg, w, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape") && err.contains("31"), "{err}");

    // An adapter for another model: shapes do not fit.
    let mut m = model.clone();
    let err = m
        .load_peft(golden_dir("tied").join("adapter"), &VarMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("adapter_model.safetensors") && err.contains("shape"),
        "{err}"
    );
    let err = m
        .load_peft(golden_dir("no_such_adapter"), &VarMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapter_config.json"), "{err}");
    let err = model.embed(&ids(&[1, 97])).unwrap_err().to_string();
    assert!(err.contains("97"), "{err}");
}

#[test]
fn row_losses_add_up_to_the_batch_loss() {
    let model = Llama::random(&tiny_cfg(), 11, DType::F32, &Device::Cpu).unwrap();
    // Two rows: the second has a masked prompt and right padding.
    let toks = Tensor::new(
        &[[5u32, 17, 3, 88, 42, 9], [7, 1, 2, 60, 0, 0]],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(
        &[[5i64, 17, 3, 88, 42, 9], [-100, -100, 2, 60, -100, -100]],
        &Device::Cpu,
    )
    .unwrap();
    let logits = model
        .forward(&model.embed(&toks).unwrap(), None, false, 0)
        .unwrap();
    let batch = Llama::loss(&logits, &labels)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    let rows = Llama::row_losses(&logits, &labels).unwrap();
    assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![5, 2]);
    let mean = rows.iter().map(|r| r.0).sum::<f64>() / 7.0;
    assert!((mean - batch).abs() < 1e-5, "{mean} vs {batch}");
    // Each row alone gives its own loss.
    for (r, &(sum, n)) in rows.iter().enumerate() {
        let one = Llama::loss(
            &logits.narrow(0, r, 1).unwrap(),
            &labels.narrow(0, r, 1).unwrap(),
        )
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
        assert!((sum / n as f64 - one).abs() < 1e-5);
    }
}

/// SmolLM2's widths (two layers): big enough that matrix kernels block their sums.
fn smollm2_widths() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"hidden_size":576,"intermediate_size":1536,"num_hidden_layers":2,"num_attention_heads":9,
        "num_key_value_heads":3,"vocab_size":512,"rope_theta":10000.0,"rms_norm_eps":1e-5,
        "tie_word_embeddings":true}"#,
    )
    .unwrap()
}

/// Greedy decoding of `prompt` alone: the logits of every step.
fn alone(model: &Llama, prompt: &[u32], steps: usize) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(1);
    let mut logits = model
        .forward_cached(&model.embed(&ids(prompt)).unwrap(), None, &mut cache)
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..steps {
        let row: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let next = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0 as u32;
        out.push(row);
        logits = model
            .forward_cached(&model.embed(&ids(&[next])).unwrap(), None, &mut cache)
            .unwrap();
    }
    out
}

/// Continuous batching: requests prefilled alone join a running batch at different steps
/// (`KvCache::append_rows`) and leave when done (`retain_rows`). Every row's logits must be
/// bit for bit those of decoding it alone, whatever the batch around it, so that a server's
/// greedy answers do not depend on its load.
#[test]
fn rows_joining_and_leaving_a_batch_decode_exactly_as_alone() {
    let mut model = Llama::random(&smollm2_widths(), 5, DType::F32, &Device::Cpu).unwrap();
    // Unmerged adapters with non-zero B, as a server holds them.
    let varmap = VarMap::new();
    let lcfg = LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    model.add_lora(&lcfg, &varmap, 2).unwrap();
    for (name, var) in varmap.data().lock().unwrap().iter() {
        if name.contains("lora_B") {
            let shape = var.as_tensor().shape().clone();
            var.set(&Tensor::randn(0f32, 0.05, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let prompts: [(&[u32], usize, usize); 4] = [
        (&[5, 17, 3, 88, 42, 9, 60, 31], 0, 9),
        (&[60, 9, 31], 1, 5),
        (&[7; 13], 3, 6),
        (&[100, 200, 300, 400, 11], 4, 4),
    ];
    let want: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .map(|(p, _, steps)| alone(&model, p, *steps))
        .collect();
    // (prompt index, logits so far, last token)
    let mut rows: Vec<(usize, Vec<Vec<f32>>, u32)> = Vec::new();
    let mut done: Vec<Option<Vec<Vec<f32>>>> = vec![None; prompts.len()];
    let mut cache = model.new_cache(0);
    let mut widest = 0;
    for step in 0..12 {
        for (i, (p, join, _)) in prompts.iter().enumerate() {
            if *join == step {
                let mut c = model.new_cache(1);
                let l = model
                    .forward_cached(&model.embed(&ids(p)).unwrap(), None, &mut c)
                    .unwrap();
                let row: Vec<f32> = l.flatten_all().unwrap().to_vec1().unwrap();
                let next = argmax(&row);
                rows.push((i, vec![row], next));
                cache.append_rows(c).unwrap();
            }
        }
        let keep: Vec<bool> = rows
            .iter()
            .map(|(i, got, _)| got.len() < prompts[*i].2)
            .collect();
        cache.retain_rows(&keep).unwrap();
        for (r, k) in rows.iter_mut().zip(&keep) {
            if !k {
                done[r.0] = Some(std::mem::take(&mut r.1));
            }
        }
        let mut k = keep.iter();
        rows.retain(|_| *k.next().unwrap());
        assert_eq!(cache.batch(), rows.len());
        if rows.is_empty() {
            continue;
        }
        widest = widest.max(rows.len());
        let next: Vec<u32> = rows.iter().map(|r| r.2).collect();
        let x = Tensor::from_vec(next, (rows.len(), 1), &Device::Cpu).unwrap();
        let logits = model
            .forward_cached(&model.embed(&x).unwrap(), None, &mut cache)
            .unwrap();
        // Decoding keeps no gradient graph, even with the adapters' variables in the model.
        assert!(!logits.track_op());
        for (r, l) in rows.iter_mut().zip(logits.to_vec2::<f32>().unwrap()) {
            r.2 = argmax(&l);
            r.1.push(l);
        }
    }
    assert!(widest >= 3, "the batch never held several rows ({widest})");
    for (i, w) in want.iter().enumerate() {
        let got = done[i]
            .as_ref()
            .unwrap_or_else(|| panic!("row {i} never finished"));
        assert_eq!(got.len(), w.len());
        for (step, (g, w)) in got.iter().zip(w).enumerate() {
            let d = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                d == 0.0,
                "row {i}, step {step}: logits differ from alone by {d}"
            );
        }
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0 as u32
}

#[test]
fn chunked_training_attention_gives_the_same_loss_and_lora_gradients() {
    // Blocks of 3 query positions over rows of 7 tokens with right padding in one row, with
    // gradient checkpointing on and off: the loss and every LoRA gradient as with the whole
    // sequence at once.
    let toks = Tensor::new(
        &[[5u32, 17, 3, 88, 42, 9, 60], [7, 1, 2, 60, 11, 0, 0]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(
        &[[1f32, 1., 1., 1., 1., 1., 1.], [1., 1., 1., 1., 1., 0., 0.]],
        &Device::Cpu,
    )
    .unwrap();
    let run = |block: Option<usize>, checkpointing: bool| {
        let mut model = Llama::random(&tiny_cfg(), 5, DType::F32, &Device::Cpu).unwrap();
        model.set_attention_block(block);
        model.set_gradient_checkpointing(checkpointing);
        let varmap = VarMap::new();
        let cfg = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            ..LoraConfig::default()
        };
        model.add_lora(&cfg, &varmap, 2).unwrap();
        // Non-zero B, so that A gets a gradient too.
        for (i, v) in model.lora_vars().iter().enumerate() {
            if i % 2 == 1 {
                let b = (Tensor::ones(v.dims(), DType::F32, &Device::Cpu).unwrap() * 0.01).unwrap();
                v.set(&b).unwrap();
            }
        }
        let logits = model
            .forward(&model.embed(&toks).unwrap(), Some(&mask), true, 0)
            .unwrap();
        let loss = Llama::loss(&logits, &toks).unwrap();
        let grads = loss.backward().unwrap();
        let g: Vec<Tensor> = model
            .lora_vars()
            .iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone())
            .collect();
        (loss.to_scalar::<f32>().unwrap(), g)
    };
    let (want_loss, want) = run(None, false);
    for (block, ckpt) in [(Some(3), false), (Some(3), true), (Some(1), false)] {
        let (loss, got) = run(block, ckpt);
        assert!((loss - want_loss).abs() < 1e-5, "{loss} vs {want_loss}");
        for (g, w) in got.iter().zip(&want) {
            assert!(max_abs(w) > 0.0);
            assert!(rel_err(g, w) < 1e-4, "{block:?} {ckpt}: {}", rel_err(g, w));
        }
    }
}
