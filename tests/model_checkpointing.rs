//! Gradient checkpointing per decoder block on the tiny model (tests/data/tiny_model): the
//! same loss and the same gradients (LoRA A and B, projector, input embeddings) as the plain
//! backward pass, with LoRA dropout on (the recomputation must draw the same masks), on a
//! dense and on a quantized (QLoRA) base; and the graph keeps far fewer activations.

mod common;

use std::collections::BTreeMap;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor, Var};
use instructmol::model::loader::load_decoder;
use instructmol::model::quant::QuantMode;
use instructmol::model::{
    InstructMol, Llama, LoraConfig, LoraInit, MolPrompt, ProjectorKind, TrainInit,
};
use instructmol::rng::Rng;

fn tiny_decoder(mode: QuantMode) -> Llama {
    let path = common::root().join("tests/data/tiny_model");
    load_decoder(path.to_str().unwrap(), DType::F32, &Device::Cpu, mode)
        .unwrap()
        .llama
}

/// A stage-2 model: fresh LoRA on all seven layers with dropout, B made random so that every
/// adapter has a gradient (fresh B is zero, and A's gradient with it).
fn model(mode: QuantMode) -> InstructMol {
    let lora = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.2,
        ..LoraConfig::default()
    };
    let init = TrainInit {
        checkpoint: None,
        gin: None,
        projector: ProjectorKind::Linear,
        train_gin: false,
        lora: LoraInit::Fresh(lora),
        seed: 5,
    };
    let model = InstructMol::for_training(tiny_decoder(mode), &init).unwrap();
    let mut rng = Rng::new(9);
    for (name, var) in model.params() {
        if name.contains("lora_B") {
            let t = rng.normal(0.0, 0.05, var.dims(), &Device::Cpu).unwrap();
            var.set(&t).unwrap();
        }
    }
    model
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_diff(ours: &Tensor, reference: &Tensor) -> f32 {
    let scale = reference
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(scale > 0.0, "the reference gradient is zero");
    common::max_abs_diff(ours, reference) / scale
}

/// Elements held by the graph behind `t` (every tensor that tracks a gradient, the variables
/// left out), i.e. the activations a backward pass keeps alive.
fn graph_elements(t: &Tensor) -> usize {
    t.sorted_nodes()
        .iter()
        .filter(|n| !n.is_variable())
        .map(|n| n.elem_count())
        .sum()
}

/// Loss and parameter gradients of one training forward pass (dropout on).
fn loss_and_grads(
    model: &InstructMol,
    prompts: &[MolPrompt<'_>],
) -> (f32, BTreeMap<String, Tensor>, usize) {
    let loss = model.loss(prompts, true, 1234).unwrap();
    let kept = graph_elements(&loss);
    let grads = loss.backward().unwrap();
    let by_name = model
        .params()
        .iter()
        .map(|(k, v)| {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {k}"));
            (k.clone(), g.clone())
        })
        .collect();
    (loss.to_scalar::<f32>().unwrap(), by_name, kept)
}

fn check(mode: QuantMode, label: &str) {
    let caffeine = instructmol::chem::featurize_smiles("CN1C=NC2=C1C(=O)N(C(=O)N2C)C").unwrap();
    let ethanol = instructmol::chem::featurize_smiles("CCO").unwrap();
    let ids_a: Vec<u32> = (0..40).map(|i| (i * 37 + 11) % 500 + 3).collect();
    let lab_a: Vec<i64> = ids_a
        .iter()
        .enumerate()
        .map(|(i, &t)| if i < 8 { -100 } else { t as i64 })
        .collect();
    let ids_b: Vec<u32> = (0..17).map(|i| (i * 53 + 7) % 500 + 3).collect();
    let lab_b: Vec<i64> = ids_b.iter().map(|&t| t as i64).collect();
    let prompts = [
        MolPrompt {
            ids: &ids_a,
            labels: &lab_a,
            image_position: Some(3),
            graph: &caffeine,
        },
        MolPrompt {
            ids: &ids_b,
            labels: &lab_b,
            image_position: Some(0),
            graph: &ethanol,
        },
    ];
    let plain = model(mode);
    let (loss_p, grads_p, kept_p) = loss_and_grads(&plain, &prompts);
    let ckpt = model(mode).with_gradient_checkpointing(true);
    let (loss_c, grads_c, kept_c) = loss_and_grads(&ckpt, &prompts);
    assert_eq!(grads_p.len(), grads_c.len());
    let loss_rel = ((loss_c - loss_p) / loss_p).abs();
    let mut worst = (0f32, String::new());
    for (k, g) in &grads_p {
        let d = rel_diff(&grads_c[k], g);
        if d > worst.0 {
            worst = (d, k.clone());
        }
    }
    println!(
        "{label}: loss {loss_p} vs {loss_c} (relative {loss_rel:.1e}); worst gradient relative \
         difference {:.1e} ({}); {} parameter tensors; graph keeps {kept_p} -> {kept_c} elements",
        worst.0,
        worst.1,
        grads_p.len()
    );
    assert!(loss_rel <= 1e-5, "{label}: loss {loss_p} vs {loss_c}");
    assert!(
        worst.0 <= 1e-5,
        "{label}: {} differs by {}",
        worst.1,
        worst.0
    );
    // 14 adapters per block (2 blocks) and the projector's weight and bias.
    assert!(grads_p.keys().filter(|k| k.contains("lora_")).count() == 28);
    assert!(grads_p.keys().any(|k| k.starts_with("projector.")));
    assert!(kept_c < kept_p, "{label}: {kept_c} vs {kept_p}");
}

#[test]
fn checkpointed_blocks_give_the_same_loss_and_gradients() {
    check(QuantMode::Dense, "f32");
}

#[test]
fn checkpointed_blocks_give_the_same_gradients_on_a_quantized_base() {
    check(QuantMode::To(GgmlDType::Q8_0), "q8_0 (QLoRA)");
}

#[test]
fn checkpointed_blocks_give_the_same_input_embedding_gradients() {
    let model = model(QuantMode::Dense);
    let decoder = model.decoder();
    let mut with_ckpt = decoder.clone();
    with_ckpt.set_gradient_checkpointing(true);
    let d = decoder.config().hidden_size;
    let embeds = Var::from_tensor(
        &Rng::new(3)
            .normal(0.0, 0.5, &[2, 9, d], &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let mask = Tensor::new(&[[1u32; 9], [1, 1, 1, 1, 1, 1, 0, 0, 0]], &Device::Cpu).unwrap();
    let labels = Tensor::new(
        &[
            [-100i64, 4, 9, 33, 2, 7, 1, 8, 3],
            [5, 6, 7, 8, 9, 10, -100, -100, -100],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let grad = |m: &Llama| {
        let logits = m
            .forward(embeds.as_tensor(), Some(&mask), true, 77)
            .unwrap();
        let loss = Llama::loss(&logits, &labels).unwrap();
        let g = loss.backward().unwrap();
        (
            loss.to_scalar::<f32>().unwrap(),
            g.get(embeds.as_tensor()).unwrap().clone(),
        )
    };
    let (lp, gp) = grad(decoder);
    let (lc, gc) = grad(&with_ckpt);
    let diff = rel_diff(&gc, &gp);
    println!("input embeddings: loss {lp} vs {lc}; gradient relative difference {diff:.1e}");
    assert!(((lc - lp) / lp).abs() <= 1e-5, "{lp} vs {lc}");
    assert!(diff <= 1e-5, "input embedding gradient differs by {diff}");
    // The blocks' activations: the plain graph keeps every intermediate tensor of every
    // block, the checkpointed one each block's output (and the input embeddings).
    let kept = |m: &Llama| {
        let h = m.hidden(embeds.as_tensor(), Some(&mask), true, 77).unwrap();
        graph_elements(&h)
    };
    let (kept_p, kept_c) = (kept(decoder), kept(&with_ckpt));
    println!("hidden states: the graph keeps {kept_p} elements, checkpointed {kept_c}");
    assert!(kept_c * 5 < kept_p, "{kept_c} vs {kept_p}");
    // Without any variable to train and an input that needs no gradient, nothing is kept.
    let frozen = Tensor::zeros((1, 3, d), DType::F32, &Device::Cpu).unwrap();
    let mut base = tiny_decoder(QuantMode::Dense);
    base.set_gradient_checkpointing(true);
    let logits = base.forward(&frozen, None, true, 0).unwrap();
    assert!(!logits.track_op());
}
