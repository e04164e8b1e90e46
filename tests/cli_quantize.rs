//! `instructmol quantize` and the GGUF writer (src/model/gguf_write.rs): a model written as a
//! llama GGUF loads back as the same model (names, q/k row order, hyperparameters, tokenizer),
//! quantized matrices stay quantized, and bad requests get clear errors.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{bin, root, temp_dir};
use instructmol::model::gguf_write::tokenizer_metadata;
use instructmol::model::loader::{load_decoder, load_tokenizer};
use instructmol::model::quant::QuantMode;
use instructmol::model::{Llama, ModelTokenizer};

fn quantize(model: &str, kind: &str, out: &std::path::Path) -> std::process::Output {
    bin()
        .args(["quantize", "--model", model, "--type", kind, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

fn logits(m: &Llama) -> Tensor {
    let ids = Tensor::new(&[[1u32, 17, 99, 250, 3, 42, 7, 300]], &Device::Cpu).unwrap();
    m.forward(&m.embed(&ids).unwrap(), None, false, 0).unwrap()
}

fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
    let n = b.sqr().unwrap().sum_all().unwrap();
    (d.to_scalar::<f32>().unwrap() / n.to_scalar::<f32>().unwrap()).sqrt()
}

fn load(spec: &str) -> (Llama, ModelTokenizer) {
    let d = load_decoder(spec, DType::F32, &Device::Cpu, QuantMode::AsStored).unwrap();
    (d.llama, d.tokenizer)
}

#[test]
fn an_f32_gguf_is_the_same_model_and_a_q8_0_gguf_stays_quantized() {
    let tiny = root().join("tests/data/tiny_model");
    let (dense, tok) = load(tiny.to_str().unwrap());
    let dir = temp_dir("quantize");
    let f32_path = dir.join("tiny-f32.gguf");
    let o = quantize(tiny.to_str().unwrap(), "f32", &f32_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (back, back_tok) = load(f32_path.to_str().unwrap());
    // q/k rows went to llama.cpp's order and came back: the same logits.
    let d = rel(&logits(&back), &logits(&dense));
    assert!(d < 1e-6, "{d}");
    for text in [
        "hello world",
        "CC(=O)Oc1ccccc1C(=O)O is aspirin",
        "  two  spaces\n",
    ] {
        assert_eq!(
            back_tok.encode(text, true).unwrap(),
            tok.encode(text, true).unwrap(),
            "{text}"
        );
    }
    assert_eq!(back_tok.chat_template(), tok.chat_template());

    let q8_path = dir.join("tiny-q8_0.gguf");
    let o = quantize(tiny.to_str().unwrap(), "q8_0", &q8_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (q8, _) = load(q8_path.to_str().unwrap());
    assert_eq!(q8.weight_types(), vec![("Q8_0".to_string(), 16)]);
    let d = rel(&logits(&q8), &logits(&dense));
    assert!(d > 0.0 && d < 0.02, "{d}");
    // Requantizing a quantized GGUF goes through the dense weights.
    let q4_path = dir.join("tiny-q4_0.gguf");
    let o = quantize(q8_path.to_str().unwrap(), "q4_0", &q4_path);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        load(q4_path.to_str().unwrap()).0.weight_types(),
        vec![("Q4_0".to_string(), 16)]
    );
    // Dequantized on request: dense matrices, the quantized model's numbers.
    let dq = load_decoder(
        q8_path.to_str().unwrap(),
        DType::F32,
        &Device::Cpu,
        QuantMode::Dense,
    )
    .unwrap();
    assert_eq!(dq.llama.weight_types(), vec![("F32".to_string(), 16)]);
}

#[test]
fn a_sentencepiece_vocabulary_round_trips_through_gguf_metadata() {
    let dir = root().join("tests/data/llama_spm");
    let md: HashMap<_, _> = tokenizer_metadata(&dir).unwrap().into_iter().collect();
    let from_md = ModelTokenizer::from_gguf_metadata(&md).unwrap();
    let from_files = load_tokenizer(dir.to_str().unwrap()).unwrap();
    assert_eq!(from_md.vocab_size(), 32000);
    for text in [
        "The molecule is a purine alkaloid.",
        " leading space and\ttab",
        "digits 12345 and émigré, 日本語, 🧪",
    ] {
        assert_eq!(
            from_md.encode(text, true).unwrap(),
            from_files.encode(text, true).unwrap(),
            "{text}"
        );
    }
    assert_eq!(from_md.bos_id(), Some(1));
    assert_eq!(from_md.eos_id(), Some(2));
}

#[test]
fn bad_requests_are_refused_with_what_to_do() {
    let tiny = root().join("tests/data/tiny_model");
    let dir = temp_dir("quantize-bad");
    let o = quantize(tiny.to_str().unwrap(), "q3_q", &dir.join("x.gguf"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("unknown quantization type `q3_q`"),
        "{err}"
    );
    let o = quantize(tiny.to_str().unwrap(), "q8_0", &dir.join("x.bin"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(".gguf"), "{err}");
    // --quantize on generate with an unknown type.
    let o = bin()
        .args([
            "generate",
            "--model",
            tiny.to_str().unwrap(),
            "--quantize",
            "q9",
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("unknown quantization type `q9`"),
        "{err}"
    );
}
