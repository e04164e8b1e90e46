//! The GIN encoder and projector against PyTorch goldens (scripts/golden/gin_golden.py):
//! node embeddings and projector outputs within 1e-5, gradients within 1e-4 relative,
//! loading / saving round trips and typed errors for bad weight files.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use instructmol::model::gin::MOLECULE_NODE_PREFIX;
use instructmol::model::{
    Gin, GinConfig, GraphBatch, GraphInput, ModelError, Projector, ProjectorKind, Weights,
};
use serde::Deserialize;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

#[derive(Deserialize)]
struct Molecule {
    smiles: String,
    node_feat: Vec<[i64; 2]>,
    edge_index: [Vec<i64>; 2],
    edge_feat: Vec<[i64; 2]>,
}

impl Molecule {
    fn input(&self) -> GraphInput<'_> {
        GraphInput {
            node_feat: &self.node_feat,
            edge_index: [&self.edge_index[0], &self.edge_index[1]],
            edge_feat: &self.edge_feat,
        }
    }
}

#[derive(Deserialize)]
struct GinGolden {
    hidden: usize,
    num_layers: usize,
    num_params_300: usize,
    molecules: Vec<Molecule>,
    embeddings: Vec<Vec<f32>>,
    loss: f64,
    grads: std::collections::BTreeMap<String, Vec<f32>>,
}

#[derive(Deserialize)]
struct ProjectorCase {
    output: Vec<Vec<f32>>,
    loss: f64,
    grad_first_weight: Vec<f32>,
}

#[derive(Deserialize)]
struct ProjectorGolden {
    input: Vec<Vec<f32>>,
    linear: ProjectorCase,
    mlp2x_gelu: ProjectorCase,
}

fn gin_golden() -> GinGolden {
    let text = std::fs::read_to_string(golden_dir().join("gin_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn gin_pth() -> PathBuf {
    golden_dir().join("gin_model.pth")
}

fn batch_of(g: &GinGolden) -> GraphBatch {
    GraphBatch::new(g.molecules.iter().map(Molecule::input), &Device::Cpu).unwrap()
}

fn max_abs_diff(t: &Tensor, expected: &[Vec<f32>]) -> f32 {
    let got = t.to_vec2::<f32>().unwrap();
    assert_eq!(got.len(), expected.len(), "row count");
    got.iter()
        .zip(expected)
        .flat_map(|(a, b)| {
            assert_eq!(a.len(), b.len(), "row width");
            a.iter().zip(b).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f32::max)
}

/// max |got - expected| / max |expected|
fn rel_err(got: &Tensor, expected: &[f32]) -> f32 {
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got.len(), expected.len());
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "a zero reference gradient checks nothing");
    let diff = got
        .iter()
        .zip(expected)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("instructmol-{}-{name}", std::process::id()))
}

#[test]
fn gin_matches_pytorch_on_a_batch() {
    let g = gin_golden();
    let gin = Gin::load(gin_pth(), None).unwrap();
    assert_eq!(gin.config().hidden, g.hidden);
    assert_eq!(gin.config().num_layers, g.num_layers);
    assert_eq!(
        gin.config().atom_vocab,
        vec![119, 5, 12, 12, 10, 6, 6, 2, 2]
    );
    assert_eq!(gin.config().bond_vocab, vec![5, 6, 2]);
    let out = gin.forward(&batch_of(&g)).unwrap();
    assert!(
        !out.track_op(),
        "a frozen encoder must not record a gradient graph"
    );
    let err = max_abs_diff(&out, &g.embeddings);
    assert!(err <= 1e-5, "max |ours - torch| = {err}");
}

#[test]
fn gin_one_graph_at_a_time_matches_the_batch() {
    let g = gin_golden();
    let gin = Gin::load(gin_pth(), None).unwrap();
    let mut row = 0;
    for m in &g.molecules {
        let b = GraphBatch::new([m.input()], &Device::Cpu).unwrap();
        let out = gin.forward(&b).unwrap();
        let n = m.node_feat.len();
        let err = max_abs_diff(&out, &g.embeddings[row..row + n]);
        assert!(err <= 1e-5, "{}: max diff {err}", m.smiles);
        row += n;
    }
    assert_eq!(row, g.embeddings.len());
    let batch = batch_of(&g);
    let parts = batch.split(&gin.forward(&batch).unwrap()).unwrap();
    assert_eq!(parts.len(), g.molecules.len());
    assert_eq!(parts[3].dims(), &[g.molecules[3].node_feat.len(), g.hidden]);
}

#[test]
fn gin_featurized_by_our_chem_layer_matches() {
    let g = gin_golden();
    let gin = Gin::load(gin_pth(), None).unwrap();
    let mut row = 0;
    let mut checked = 0;
    for m in &g.molecules {
        let n = m.node_feat.len();
        if let Ok(f) = instructmol::chem::featurize_smiles(&m.smiles) {
            if f.node_feat == m.node_feat && f.edge_feat == m.edge_feat {
                let b = GraphBatch::from_features([&f], &Device::Cpu).unwrap();
                let err = max_abs_diff(&gin.forward(&b).unwrap(), &g.embeddings[row..row + n]);
                assert!(err <= 1e-5, "{}: max diff {err}", m.smiles);
                checked += 1;
            }
        }
        row += n;
    }
    assert!(
        checked >= 25,
        "only {checked} molecules featurized like RDKit"
    );
}

#[test]
fn trainable_gin_matches_forward_and_torch_gradients() {
    let g = gin_golden();
    let varmap = VarMap::new();
    let gin = Gin::load(gin_pth(), Some(&varmap)).unwrap();
    let out = gin.forward(&batch_of(&g)).unwrap();
    let err = max_abs_diff(&out, &g.embeddings);
    assert!(err <= 1e-5, "trainable forward: max diff {err}");
    let loss = out.sqr().unwrap().sum_all().unwrap();
    let l = f64::from(loss.to_scalar::<f32>().unwrap());
    assert!(
        (l - g.loss).abs() <= 1e-5 * g.loss.abs(),
        "loss {l} vs {}",
        g.loss
    );
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    // Running statistics are buffers, not trainable variables.
    assert!(!vars.keys().any(|k| k.contains("running_")));
    assert_eq!(vars.len(), 9 + g.num_layers * (3 + 1 + 4 + 2 + 2));
    let mut worst = (0.0f32, "");
    for (key, expected) in &g.grads {
        let var: &Var = &vars[&format!("{MOLECULE_NODE_PREFIX}{key}")];
        let grad = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {key}"));
        let e = rel_err(grad, expected);
        if e >= worst.0 {
            worst = (e, key);
        }
    }
    assert!(
        worst.0 <= 1e-4,
        "{}: relative gradient error {}",
        worst.1,
        worst.0
    );
}

#[test]
fn frozen_gin_records_no_gradients() {
    let g = gin_golden();
    let gin = Gin::load(gin_pth(), None).unwrap();
    let loss = gin.forward(&batch_of(&g)).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let w = gin.to_weights(true);
    let table = w
        .get("molecule_node_model.atom_encoder.atom_embedding_list.0.weight")
        .unwrap();
    assert!(grads.get(table).is_none());
}

#[test]
fn gin_safetensors_round_trip_with_and_without_prefix() {
    let g = gin_golden();
    let gin = Gin::load(gin_pth(), None).unwrap();
    let path = temp_path("gin.safetensors");
    gin.save(&path).unwrap();
    let back = Gin::load(&path, None).unwrap();
    let err = max_abs_diff(&back.forward(&batch_of(&g)).unwrap(), &g.embeddings);
    assert!(err <= 1e-5);
    let bare = temp_path("gin-bare.safetensors");
    gin.to_weights(false).save_safetensors(&bare).unwrap();
    let back = Gin::load(&bare, None).unwrap();
    assert!(max_abs_diff(&back.forward(&batch_of(&g)).unwrap(), &g.embeddings) <= 1e-5);
    std::fs::remove_file(path).ok();
    std::fs::remove_file(bare).ok();
}

#[test]
fn fresh_gin_has_moleculestm_size_and_registers_parameters() {
    let g = gin_golden();
    let gin = Gin::new(GinConfig::default(), 0, None).unwrap();
    assert_eq!(gin.num_params(), g.num_params_300);
    let varmap = VarMap::new();
    let small = GinConfig {
        hidden: 8,
        num_layers: 2,
        ..GinConfig::default()
    };
    let gin = Gin::new(small, 1, Some(&varmap)).unwrap();
    assert_eq!(varmap.all_vars().len(), 9 + 2 * 12);
    let out = gin.forward(&batch_of(&g)).unwrap();
    assert_eq!(out.dims(), &[g.embeddings.len(), 8]);
    let grads = out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    // Only the first two atom tables and bond tables are looked up (two feature columns).
    let vars = varmap.data().lock().unwrap();
    for (key, var) in vars.iter() {
        let unused = ["atom_embedding_list.", "bond_embedding_list."]
            .iter()
            .any(|t| {
                key.contains(t)
                    && !key.contains(&format!("{t}0."))
                    && !key.contains(&format!("{t}1."))
            });
        assert_eq!(grads.get(var).is_none(), unused, "{key}");
    }
}

#[test]
fn bad_weight_files_give_typed_errors() {
    let full = Weights::load(gin_pth()).unwrap();
    let key = "molecule_node_model.gnns.3.mlp.3.weight";

    let mut missing = Weights::default();
    for k in full.keys().filter(|k| *k != key) {
        missing.insert(k, full.get(k).unwrap().clone());
    }
    match Gin::from_weights(&missing, MOLECULE_NODE_PREFIX, None) {
        Err(ModelError::MissingKey(k)) => assert_eq!(k, key),
        other => panic!("expected MissingKey, got {other:?}"),
    }

    let mut wrong = full.clone();
    wrong.insert(
        key,
        Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    match Gin::from_weights(&wrong, MOLECULE_NODE_PREFIX, None) {
        Err(ModelError::Shape {
            key: k,
            expected,
            found,
        }) => {
            assert_eq!(k, key);
            assert_eq!(expected, vec![16, 32]);
            assert_eq!(found, vec![3, 3]);
        }
        other => panic!("expected Shape, got {other:?}"),
    }

    let bytes = std::fs::read(gin_pth()).unwrap();
    let truncated = temp_path("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Gin::load(&truncated, None),
        Err(ModelError::Read { .. })
    ));

    let garbage = temp_path("garbage.bin");
    std::fs::write(&garbage, b"this is not a weight file at all").unwrap();
    assert!(matches!(
        Gin::load(&garbage, None),
        Err(ModelError::Read { .. })
    ));

    let st = temp_path("cut.safetensors");
    Gin::load(gin_pth(), None).unwrap().save(&st).unwrap();
    let st_bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &st_bytes[..st_bytes.len() - 100]).unwrap();
    assert!(matches!(Gin::load(&st, None), Err(ModelError::Read { .. })));

    assert!(matches!(
        Gin::load(temp_path("does-not-exist.pth"), None),
        Err(ModelError::Read { .. })
    ));
    for p in [truncated, garbage, st] {
        std::fs::remove_file(p).ok();
    }
}

#[test]
fn out_of_table_features_are_errors() {
    let gin = Gin::load(gin_pth(), None).unwrap();
    let nodes = [[5, 0], [5, 7]];
    let g = GraphInput {
        node_feat: &nodes,
        edge_index: [&[0, 1], &[1, 0]],
        edge_feat: &[[0, 0], [0, 0]],
    };
    let batch = GraphBatch::new([g], &Device::Cpu).unwrap();
    match gin.forward(&batch) {
        Err(ModelError::FeatureRange {
            what: "atom",
            column: 1,
            value: 7,
            size: 5,
        }) => {}
        other => panic!("expected FeatureRange, got {other:?}"),
    }
    let bond = GraphInput {
        node_feat: &nodes[..1],
        edge_index: [&[0], &[0]],
        edge_feat: &[[5, 0]],
    };
    let batch = GraphBatch::new([bond], &Device::Cpu).unwrap();
    assert!(matches!(
        gin.forward(&batch),
        Err(ModelError::FeatureRange { what: "bond", .. })
    ));
}

#[test]
fn empty_batch_gives_empty_output() {
    let gin = Gin::load(gin_pth(), None).unwrap();
    let batch = GraphBatch::new(std::iter::empty(), &Device::Cpu).unwrap();
    let out = gin.forward(&batch).unwrap();
    assert_eq!(out.dims(), &[0, 16]);
}

fn projector_golden() -> ProjectorGolden {
    let text = std::fs::read_to_string(golden_dir().join("gin_projector_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn projectors_match_pytorch() {
    let g = projector_golden();
    let x = Tensor::new(g.input.clone(), &Device::Cpu).unwrap();
    for (kind, case) in [
        (ProjectorKind::Linear, &g.linear),
        (ProjectorKind::Mlp2xGelu, &g.mlp2x_gelu),
    ] {
        let path = golden_dir().join(format!("gin_projector_{}.pth", kind.name()));
        let p = Projector::load(&path, None).unwrap();
        assert_eq!(p.kind(), kind);
        assert_eq!((p.in_dim(), p.out_dim()), (16, 24));
        let y = p.forward(&x).unwrap();
        let err = max_abs_diff(&y, &case.output);
        assert!(err <= 1e-5, "{}: max diff {err}", kind.name());

        let varmap = VarMap::new();
        let p = Projector::load(&path, Some(&varmap)).unwrap();
        let loss = p.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
        let l = f64::from(loss.to_scalar::<f32>().unwrap());
        assert!((l - case.loss).abs() <= 1e-5 * case.loss.abs());
        let grads = loss.backward().unwrap();
        let first = match kind {
            ProjectorKind::Linear => "model.mm_projector.weight",
            ProjectorKind::Mlp2xGelu => "model.mm_projector.0.weight",
        };
        let vars = varmap.data().lock().unwrap();
        let e = rel_err(grads.get(&vars[first]).unwrap(), &case.grad_first_weight);
        assert!(e <= 1e-4, "{}: gradient error {e}", kind.name());

        let saved = temp_path(&format!("proj-{}.safetensors", kind.name()));
        p.save(&saved).unwrap();
        let back = Projector::load(&saved, None).unwrap();
        assert_eq!(back.kind(), kind);
        assert!(max_abs_diff(&back.forward(&x).unwrap(), &case.output) <= 1e-5);
        std::fs::remove_file(saved).ok();
    }
}

#[test]
fn projector_kind_names_and_fresh_projector() {
    assert_eq!(
        "mlp2x_gelu".parse::<ProjectorKind>().unwrap(),
        ProjectorKind::Mlp2xGelu
    );
    assert!("mlp3x_gelu".parse::<ProjectorKind>().is_err());
    let varmap = VarMap::new();
    let p = Projector::new(ProjectorKind::Mlp2xGelu, 300, 576, 2, Some(&varmap)).unwrap();
    assert_eq!(varmap.all_vars().len(), 4);
    let x = Tensor::ones((3, 300), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(p.forward(&x).unwrap().dims(), &[3, 576]);
    let no_projector = Weights::default();
    assert!(matches!(
        Projector::from_weights(&no_projector, None),
        Err(ModelError::MissingKey(_))
    ));
}

#[test]
fn corrupted_weight_files_never_panic() {
    let original = std::fs::read(gin_pth()).unwrap();
    let st = temp_path("flip.safetensors");
    Gin::load(gin_pth(), None).unwrap().save(&st).unwrap();
    let st_original = std::fs::read(&st).unwrap();
    let path = temp_path("flip.bin");
    for bytes in [&original, &st_original] {
        for pos in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            let mut b = bytes.clone();
            b[pos] ^= 0x5a;
            std::fs::write(&path, &b).unwrap();
            // Either a typed error or (for a flipped weight value) a loaded model.
            if let Err(e) = Gin::load(&path, None) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    std::fs::remove_file(path).ok();
    std::fs::remove_file(st).ok();
}
