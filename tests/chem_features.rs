//! Golden test: `featurize_smiles` against the reference InstructMol featurization
//! (drugchat `smiles2graph` on RDKit `Chem.MolFromSmiles`), row by row over the committed sample
//! of every dataset plus the hand-made edge cases (tests/data/golden/features.jsonl).
//!
//! Run with `cargo test --test chem_features -- --nocapture` to see the per-source summary.

mod chem_common;

use chem_common::{assert_all, category, describe_error, golden_rows, int_array, str_field, Tally};
use instructmol::chem::features::{featurize_smiles, GraphFeatures};
use serde_json::Value;

/// How many differing atoms / bonds one disagreement lists.
const DIFF_LINES: usize = 6;

/// The reference graph of one golden row: node_feat, edge_index, edge_feat.
struct Expected {
    node_feat: Vec<[i64; 2]>,
    edge_index: [Vec<i64>; 2],
    edge_feat: Vec<[i64; 2]>,
}

/// Expands the golden's compact form (flat atoms [z,chi,...], flat bonds [i,j,t,d,...]) into the
/// reference layout: per bond the two directed edges (i,j) then (j,i) with the same features.
fn expected(row: &Value) -> Expected {
    let atoms = int_array(row, "atoms");
    let bonds = int_array(row, "bonds");
    assert!(
        atoms.len().is_multiple_of(2) && bonds.len().is_multiple_of(4),
        "bad golden row {row}"
    );
    let node_feat = atoms.chunks(2).map(|a| [a[0], a[1]]).collect();
    let mut edge_index = [Vec::new(), Vec::new()];
    let mut edge_feat = Vec::new();
    for b in bonds.chunks(4) {
        edge_index[0].extend([b[0], b[1]]);
        edge_index[1].extend([b[1], b[0]]);
        edge_feat.extend([[b[2], b[3]], [b[2], b[3]]]);
    }
    Expected {
        node_feat,
        edge_index,
        edge_feat,
    }
}

/// A readable account of how `ours` differs from `want`, or Ok when identical.
fn compare(smiles: &str, want: &Expected, ours: &GraphFeatures) -> Result<(), String> {
    let mut lines = Vec::new();
    if want.node_feat.len() != ours.node_feat.len() {
        lines.push(format!(
            "atom count: rdkit {} ours {}",
            want.node_feat.len(),
            ours.node_feat.len()
        ));
    }
    for (i, (w, o)) in want.node_feat.iter().zip(&ours.node_feat).enumerate() {
        if w != o {
            lines.push(format!("atom {i}: rdkit [z-1,chi]={w:?} ours {o:?}"));
        }
    }
    let want_edges = want.edge_feat.len();
    let our_edges = ours.edge_feat.len();
    if want_edges != our_edges
        || ours.edge_index[0].len() != our_edges
        || ours.edge_index[1].len() != our_edges
    {
        lines.push(format!(
            "edge count: rdkit {want_edges} ours {our_edges} (edge_index {}x{})",
            ours.edge_index[0].len(),
            ours.edge_index[1].len()
        ));
    }
    let n = want_edges.min(our_edges);
    for e in 0..n {
        let w = (
            want.edge_index[0][e],
            want.edge_index[1][e],
            want.edge_feat[e],
        );
        let o = (
            ours.edge_index[0].get(e).copied().unwrap_or(-1),
            ours.edge_index[1].get(e).copied().unwrap_or(-1),
            ours.edge_feat[e],
        );
        if w != o {
            lines.push(format!(
                "edge {e} (bond {}): rdkit {}->{} [type,dir]={:?} ours {}->{} {:?}",
                e / 2,
                w.0,
                w.1,
                w.2,
                o.0,
                o.1,
                o.2
            ));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    let more = lines.len().saturating_sub(DIFF_LINES);
    lines.truncate(DIFF_LINES);
    if more > 0 {
        lines.push(format!("... and {more} more differences"));
    }
    Err(format!("{smiles}\n{}", lines.join("\n")))
}

#[test]
fn features_match_rdkit_reference() {
    let rows = golden_rows("features.jsonl");
    assert!(rows.len() > 5000, "golden file too small: {}", rows.len());
    let mut verdict = Tally::new("featurize verdict + features", "features");
    let mut kinds = Tally::new(
        "error category of rejected molecules",
        "features_error_kind",
    );
    for row in &rows {
        let smiles = str_field(row, "smiles");
        let source = str_field(row, "source");
        let ours = featurize_smiles(smiles);
        match (row.get("error").and_then(Value::as_str), ours) {
            (None, Ok(graph)) => {
                verdict.record(source, smiles, compare(smiles, &expected(row), &graph))
            }
            (None, Err(err)) => verdict.fail(
                source,
                smiles,
                format!(
                    "{smiles}\nrdkit accepts, ours rejects: {}",
                    describe_error(&err)
                ),
            ),
            (Some(want), Ok(graph)) => verdict.fail(
                source,
                smiles,
                format!(
                    "{smiles}\nrdkit rejects ({want}: {}), ours accepts with {} atoms",
                    row["message"].as_str().unwrap_or(""),
                    graph.node_feat.len()
                ),
            ),
            (Some(want), Err(err)) => {
                verdict.pass(source, smiles);
                if category(err.kind) == want {
                    kinds.pass(source, smiles);
                } else {
                    kinds.fail(
                        source,
                        smiles,
                        format!(
                            "{smiles}\nrdkit {want}: {}\nours  {}",
                            row["message"].as_str().unwrap_or(""),
                            describe_error(&err)
                        ),
                    );
                }
            }
        }
    }
    assert_all(&[&verdict, &kinds]);
}
