//! Quantized decoder matrices (src/model/quant.rs): the quantized decoder against the dense one
//! on the tiny test model, LoRA kept unmerged on a quantized base, and QLoRA gradients against
//! the f32 gradients. Deviations are printed (`cargo test -- --nocapture`) and bounded.

mod common;

use std::collections::HashMap;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::root;
use instructmol::model::{load_model, Llama};

fn tiny(quantize: Option<GgmlDType>) -> Llama {
    let m = load_model(
        root().join("tests/data/tiny_model").to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    Llama::from_parts(
        &m.config,
        m.weights,
        HashMap::new(),
        quantize,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn ids() -> Tensor {
    Tensor::new(&[[1u32, 17, 99, 250, 3, 42, 7, 300, 12, 5]], &Device::Cpu).unwrap()
}

/// ||a - b|| / ||b||.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
    let n = b.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f32>().unwrap() / n.to_scalar::<f32>().unwrap()).sqrt()
}

fn logits(m: &Llama) -> Tensor {
    let e = m.embed(&ids()).unwrap();
    m.forward(&e, None, false, 0).unwrap()
}

#[test]
fn quantized_decoder_follows_the_dense_one() {
    let dense = logits(&tiny(None));
    for (ty, bound) in [(GgmlDType::Q8_0, 0.02), (GgmlDType::Q4_0, 0.2)] {
        let q = tiny(Some(ty));
        // Seven matrices per block (2 blocks), the tied embedding/head counted twice.
        assert_eq!(q.weight_types(), vec![(format!("{ty:?}"), 16)]);
        let r = rel(&logits(&q), &dense);
        println!("{ty:?}: relative logit deviation {r:.4}");
        assert!(r < bound && r > 0.0, "{ty:?}: {r}");
    }
    // Q4_K blocks are 256 wide: the 64-wide rows fall back to q8_0 (as llama.cpp does).
    let k = tiny(Some(GgmlDType::Q4K));
    assert_eq!(k.weight_types(), vec![("Q8_0".to_string(), 16)]);
}

#[test]
fn lora_stays_unmerged_on_a_quantized_base() {
    let adapter = root().join("tests/data/official/ours/adapter");
    let mut dense = tiny(None);
    dense.load_peft(&adapter, &VarMap::new()).unwrap();
    dense.merge_lora().unwrap();
    assert!(dense.lora_config().is_none());
    let mut q = tiny(Some(GgmlDType::Q8_0));
    let plain = logits(&q);
    q.load_peft(&adapter, &VarMap::new()).unwrap();
    q.merge_lora().unwrap();
    assert!(
        q.lora_config().is_some(),
        "adapters on quantized weights stay attached"
    );
    let with = logits(&q);
    let (r, moved) = (rel(&with, &logits(&dense)), rel(&with, &plain));
    println!("q8_0 + LoRA vs merged f32: {r:.4} (the adapter moves the logits by {moved:.4})");
    assert!(r < 0.02 && moved > 5.0 * r, "{r} {moved}");
}

/// Gradients of the LoRA tensors for one loss on `model` (adapter loaded as variables).
fn lora_grads(mut model: Llama) -> Vec<(String, Tensor)> {
    let varmap = VarMap::new();
    model
        .load_peft(root().join("tests/data/official/ours/adapter"), &varmap)
        .unwrap();
    let e = model.embed(&ids()).unwrap();
    let logits = model.forward(&e, None, true, 0).unwrap();
    let labels = Tensor::new(
        &[[-100i64, 17, 99, 250, 3, 42, 7, 300, 12, 5]],
        &Device::Cpu,
    )
    .unwrap();
    let loss = Llama::loss(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let mut out: Vec<(String, Tensor)> = model
        .lora_tensors()
        .into_keys()
        .map(|k| {
            let var = varmap.data().lock().unwrap()[&k].clone();
            (k, grads.get(var.as_tensor()).unwrap().clone())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn qlora_gradients_follow_the_f32_gradients() {
    let f32_grads = lora_grads(tiny(None));
    let q_grads = lora_grads(tiny(Some(GgmlDType::Q8_0)));
    assert_eq!(f32_grads.len(), 12);
    let mut worst = 0f32;
    for ((k, g), (_, gq)) in f32_grads.iter().zip(&q_grads) {
        let r = rel(gq, g);
        worst = worst.max(r);
        assert!(r.is_finite(), "{k}");
    }
    // The same deviation the logits show: q8_0 weights move each output by ~0.5%.
    println!("q8_0 QLoRA gradients vs f32: worst relative deviation {worst:.4}");
    assert!(worst < 0.05, "{worst}");
}

/// A model whose rows are whole Q4_K blocks (256 wide): every matrix is kept as Q4_K (packed
/// eight rows at a time on CPUs with the kernels) and the decoder follows the dense one.
#[test]
fn q4k_decoder_follows_the_dense_one() {
    let cfg: instructmol::model::LlamaConfig = serde_json::from_str(
        r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 256,
            "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 320, "tie_word_embeddings": false}"#,
    )
    .unwrap();
    let dense = Llama::random(&cfg, 5, DType::F32, &Device::Cpu).unwrap();
    let weights: HashMap<String, Tensor> = dense
        .named_tensors()
        .into_iter()
        .map(|(k, w)| (k, w.to_dense(DType::F32).unwrap()))
        .collect();
    let q = Llama::from_parts(
        &cfg,
        weights,
        HashMap::new(),
        Some(GgmlDType::Q4K),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    // Seven matrices per block (2 blocks), the embedding table and the output head.
    assert_eq!(q.weight_types(), vec![("Q4K".to_string(), 16)]);
    // The same model with its Q4_K weights dequantized: what is left between the two is the
    // 8-bit quantization of the activations.
    let dequantized: HashMap<String, Tensor> = q
        .named_tensors()
        .into_iter()
        .map(|(k, w)| (k, w.to_dense(DType::F32).unwrap()))
        .collect();
    let deq = Llama::from_weights(&cfg, dequantized, DType::F32, &Device::Cpu).unwrap();
    let (lq, ld) = (logits(&q), logits(&deq));
    let (r_act, r_weights) = (rel(&lq, &ld), rel(&ld, &logits(&dense)));
    println!(
        "Q4K: logits vs its dequantized weights {r_act:.4}; those vs the f32 model {r_weights:.4}"
    );
    assert!(
        r_act > 0.0 && r_act < 0.03 && r_act < r_weights / 5.0,
        "{r_act} {r_weights}"
    );
}
