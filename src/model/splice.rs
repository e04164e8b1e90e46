//! The multimodal splice: text token embeddings with a molecule's projected graph tokens put
//! in place of the `<image>` slot (LLaVA's `prepare_inputs_labels_for_multimodal`), batched
//! with right padding.
//!
//! Each example is token ids with at most one image slot. The slot's id is dropped and the
//! molecule's N projected node embeddings take its place; their labels are -100 (never
//! supervised). Rows are right-padded to the longest example with zero embeddings, attention
//! mask 0 and label -100. Gradients flow from the spliced embeddings back to the graph tokens.

use candle_core::{DType, Device, Tensor};

use super::{ModelError, Result};

/// Label value that is never supervised (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One example to splice.
#[derive(Debug, Clone)]
pub struct SpliceItem<'a> {
    /// Token ids, including the image slot.
    pub ids: &'a [u32],
    /// One label per id (`IGNORE_INDEX` where not supervised).
    pub labels: &'a [i64],
    /// Index of the image slot in `ids`, if the example has a molecule.
    pub image_position: Option<usize>,
    /// Projected graph tokens `[n, d]` for the slot (required when `image_position` is set).
    pub graph: Option<Tensor>,
}

/// A padded batch ready for the decoder.
#[derive(Debug, Clone)]
pub struct MultimodalBatch {
    /// Input embeddings `[b, L, d]`.
    pub embeds: Tensor,
    /// `[b, L]` u32: 1 for real positions, 0 for padding.
    pub attention_mask: Tensor,
    /// `[b, L]` i64 labels (`IGNORE_INDEX` on graph tokens, masked text and padding).
    pub labels: Tensor,
    /// Real length of each row.
    pub lengths: Vec<usize>,
}

/// Splices and pads `items`. `embed` maps ids `[n]` (u32) to embeddings `[n, d]`.
pub fn splice(
    items: &[SpliceItem<'_>],
    device: &Device,
    embed: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<MultimodalBatch> {
    if items.is_empty() {
        return Err(ModelError::Config("cannot splice an empty batch".into()));
    }
    // Embed every text token of the batch in one call.
    let mut all_ids = Vec::new();
    let mut starts = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if it.ids.len() != it.labels.len() {
            return Err(ModelError::Config(format!(
                "example {i}: {} ids but {} labels",
                it.ids.len(),
                it.labels.len()
            )));
        }
        match (it.image_position, &it.graph) {
            (Some(p), Some(_)) if p < it.ids.len() => {}
            (None, _) => {}
            (Some(p), Some(_)) => {
                return Err(ModelError::Config(format!(
                    "example {i}: image slot {p} is past the end of its {} tokens",
                    it.ids.len()
                )))
            }
            (Some(_), None) => {
                return Err(ModelError::Config(format!(
                    "example {i}: has an image slot but no graph tokens"
                )))
            }
        }
        starts.push(all_ids.len());
        all_ids.extend_from_slice(it.ids);
    }
    let n_ids = all_ids.len();
    let text = embed(&Tensor::from_vec(all_ids, n_ids, device)?)?;
    let d = text.dim(1)?;
    let dtype = text.dtype();

    let mut rows = Vec::with_capacity(items.len());
    let mut labels = Vec::with_capacity(items.len());
    for (it, &start) in items.iter().zip(&starts) {
        let mut pieces = Vec::with_capacity(3);
        let mut lab = Vec::with_capacity(it.ids.len() + 64);
        match (it.image_position, &it.graph) {
            (Some(p), Some(g)) => {
                if g.dims().len() != 2 || g.dim(1)? != d {
                    return Err(ModelError::Config(format!(
                        "graph tokens have shape {:?}, expected [n, {d}]",
                        g.dims()
                    )));
                }
                if p > 0 {
                    pieces.push(text.narrow(0, start, p)?);
                }
                pieces.push(g.to_dtype(dtype)?);
                let after = it.ids.len() - p - 1;
                if after > 0 {
                    pieces.push(text.narrow(0, start + p + 1, after)?);
                }
                lab.extend_from_slice(&it.labels[..p]);
                lab.extend(std::iter::repeat_n(IGNORE_INDEX, g.dim(0)?));
                lab.extend_from_slice(&it.labels[p + 1..]);
            }
            _ => {
                pieces.push(text.narrow(0, start, it.ids.len())?);
                lab.extend_from_slice(it.labels);
            }
        }
        rows.push(Tensor::cat(&pieces, 0)?);
        labels.push(lab);
    }
    let max_len = labels.iter().map(Vec::len).max().unwrap_or(0);
    let lengths: Vec<usize> = labels.iter().map(Vec::len).collect();
    let mut padded = Vec::with_capacity(rows.len());
    let mut mask = Vec::with_capacity(rows.len() * max_len);
    let mut flat_labels = Vec::with_capacity(rows.len() * max_len);
    for (row, mut lab) in rows.into_iter().zip(labels) {
        let len = lab.len();
        let row = if len < max_len {
            let pad = Tensor::zeros((max_len - len, d), dtype, device)?;
            Tensor::cat(&[row, pad], 0)?
        } else {
            row
        };
        padded.push(row);
        mask.extend(std::iter::repeat_n(1u32, len));
        mask.extend(std::iter::repeat_n(0u32, max_len - len));
        lab.resize(max_len, IGNORE_INDEX);
        flat_labels.extend(lab);
    }
    let b = padded.len();
    Ok(MultimodalBatch {
        embeds: Tensor::stack(&padded, 0)?,
        attention_mask: Tensor::from_vec(mask, (b, max_len), device)?,
        labels: Tensor::from_vec(flat_labels, (b, max_len), device)?.to_dtype(DType::I64)?,
        lengths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn graph_tokens_replace_the_slot_and_get_gradients() {
        let dev = Device::Cpu;
        // Embedding table: id k -> [k, k] (d = 2).
        let table: Vec<f32> = (0..10).flat_map(|k| [k as f32, k as f32]).collect();
        let table = Tensor::from_vec(table, (10, 2), &dev).unwrap();
        let embed = |ids: &Tensor| Ok(table.index_select(ids, 0)?);
        let g = Var::from_slice(&[0.5f32, 0.5, 0.25, 0.25, 0.125, 0.125], (3, 2), &dev).unwrap();
        let ids_a = [1u32, 9, 2, 3];
        let lab_a = [-100i64, -100, 2, 3];
        let ids_b = [4u32, 5];
        let lab_b = [-100i64, 5];
        let items = [
            SpliceItem {
                ids: &ids_a,
                labels: &lab_a,
                image_position: Some(1),
                graph: Some(g.as_tensor().clone()),
            },
            SpliceItem {
                ids: &ids_b,
                labels: &lab_b,
                image_position: None,
                graph: None,
            },
        ];
        let batch = splice(&items, &dev, embed).unwrap();
        assert_eq!(batch.embeds.dims(), &[2, 6, 2]);
        assert_eq!(batch.lengths, vec![6, 2]);
        let e = batch.embeds.to_vec3::<f32>().unwrap();
        let col0: Vec<f32> = e[0].iter().map(|r| r[0]).collect();
        assert_eq!(col0, vec![1.0, 0.5, 0.25, 0.125, 2.0, 3.0]);
        let col1: Vec<f32> = e[1].iter().map(|r| r[0]).collect();
        assert_eq!(col1, vec![4.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            batch.labels.to_vec2::<i64>().unwrap(),
            vec![
                vec![-100, -100, -100, -100, 2, 3],
                vec![-100, 5, -100, -100, -100, -100]
            ]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1, 1, 1, 1], vec![1, 1, 0, 0, 0, 0]]
        );
        // d(sum of row-0 embeddings)/d(graph) = 1 everywhere.
        let grads = batch.embeds.sum_all().unwrap().backward().unwrap();
        let gg = grads.get(g.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(gg, vec![vec![1.0, 1.0]; 3]);
    }

    #[test]
    fn inconsistent_items_are_errors() {
        let dev = Device::Cpu;
        let embed = |ids: &Tensor| Ok(ids.to_dtype(DType::F32)?.unsqueeze(1)?);
        let ids = [1u32, 2];
        let labels = [1i64];
        let bad = [SpliceItem {
            ids: &ids,
            labels: &labels,
            image_position: None,
            graph: None,
        }];
        assert!(splice(&bad, &dev, embed).is_err());
        let labels = [1i64, 2];
        let no_graph = [SpliceItem {
            ids: &ids,
            labels: &labels,
            image_position: Some(0),
            graph: None,
        }];
        assert!(splice(&no_graph, &dev, embed).is_err());
        assert!(splice(&[], &dev, embed).is_err());
    }
}
