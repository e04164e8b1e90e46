//! Gradient checkpointing (PyTorch's `torch.utils.checkpoint`) for candle's autograd.
//!
//! [`checkpoint`] runs a segment (a decoder block) on its *detached* input and keeps only
//! that input: the graph of the segment's intermediate activations is dropped as soon as the
//! output exists. The output is tied back to the input by one gradient node whose backward
//! pass runs the segment again on a fresh variable copy of the input, back-propagates
//! `sum(output * grad_output)` through that second run, and returns the input's gradient.
//!
//! The same second run also gives the gradients of the segment's own variables (the LoRA
//! adapters). candle hands a node's backward pass only its inputs, so every variable gets a
//! *tie*: a scalar node on the variable (value 0) that feeds the segment's node. candle then
//! runs the segment's backward first (its output comes later in the graph) and each tie's
//! backward next, which hands its variable the gradient the segment's second run left for it.
//! The `GradStore` of `loss.backward()` is therefore complete: callers need no side channel.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, Var};

use super::{grad_node, Result};

/// A checkpointed segment: input -> output, differentiable in the input and in the segment's
/// variables. It runs twice (forward, then again in the backward pass) and must compute the
/// same function both times (e.g. dropout masks from a fixed seed).
pub type Segment = Arc<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// `segment(x)` without keeping its intermediate activations for the backward pass (see the
/// module documentation). `vars` are the variables the segment uses (the gradients they get
/// are those of `segment` itself). When neither `x` nor any variable needs a gradient the
/// segment simply runs.
pub fn checkpoint(x: &Tensor, vars: &[Var], segment: Segment) -> Result<Tensor> {
    let y = segment(&x.detach())?.detach();
    let x_tracks = x.track_op();
    if !x_tracks && vars.is_empty() {
        return Ok(y);
    }
    // The gradients the backward pass's second run leaves for the ties, one per variable.
    let slots: Arc<Mutex<Vec<Option<Tensor>>>> = Arc::new(Mutex::new(vec![None; vars.len()]));
    let mut ties: Option<Tensor> = None;
    for (i, var) in vars.iter().enumerate() {
        let slots = slots.clone();
        let zero = Tensor::zeros((), DType::F32, var.device())?;
        let tie = grad_node(
            &[var.as_tensor()],
            zero,
            "checkpoint-tie",
            Box::new(move |ins, _, _| {
                let g = take_slot(&slots, i)?;
                Ok(vec![Some(match g {
                    Some(g) => g,
                    None => ins[0].zeros_like()?,
                })])
            }),
        )?;
        ties = Some(match ties {
            Some(sum) => (sum + tie)?,
            None => tie,
        });
    }
    let vars = vars.to_vec();
    let bwd = move |ins: &[Tensor], _: &Tensor, g: &Tensor| -> Result<Vec<Option<Tensor>>> {
        // A variable copy of the input, so that the second run gives its gradient too.
        let input = match x_tracks {
            true => Var::from_tensor(&ins[0])?.as_tensor().clone(),
            false => ins[0].clone(),
        };
        let out = segment(&input)?;
        let grads = (out * g)?.sum_all()?.backward()?;
        {
            let mut slots = slots.lock().map_err(|_| {
                candle_core::Error::Msg("checkpoint: poisoned gradient slots".into())
            })?;
            for (slot, var) in slots.iter_mut().zip(&vars) {
                *slot = grads.get(var.as_tensor()).cloned();
            }
        }
        let gx = match x_tracks {
            true => Some(match grads.get(&input) {
                Some(g) => g.clone(),
                None => input.zeros_like()?,
            }),
            false => None,
        };
        let mut out = vec![gx];
        if ins.len() > 1 {
            out.push(Some(ins[1].zeros_like()?));
        }
        Ok(out)
    };
    match &ties {
        Some(t) => grad_node(&[x, t], y, "checkpoint", Box::new(bwd)),
        None => grad_node(&[x], y, "checkpoint", Box::new(bwd)),
    }
}

/// Takes the gradient left in slot `i`.
fn take_slot(slots: &Mutex<Vec<Option<Tensor>>>, i: usize) -> Result<Option<Tensor>> {
    let mut slots = slots
        .lock()
        .map_err(|_| candle_core::Error::Msg("checkpoint: poisoned gradient slots".into()))?;
    Ok(slots.get_mut(i).and_then(Option::take))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::tests::max_diff;
    use candle_core::Device;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `sum((tanh(x w) * w2)^2)`-like segment with two variables, counting its runs.
    fn segment(w: &Var, w2: &Var, runs: Arc<AtomicUsize>) -> Segment {
        let (w, w2) = (w.clone(), w2.clone());
        Arc::new(move |x: &Tensor| {
            runs.fetch_add(1, Ordering::SeqCst);
            x.matmul(w.as_tensor())?
                .tanh()?
                .broadcast_mul(w2.as_tensor())
        })
    }

    #[test]
    fn gives_the_gradients_of_the_plain_graph_and_runs_the_segment_again() {
        let rng = |seed, shape: &[usize]| {
            crate::rng::Rng::new(seed)
                .uniform(-1.0, 1.0, shape, &Device::Cpu)
                .unwrap()
        };
        let x = Var::from_tensor(&rng(1, &[5, 4])).unwrap();
        let w = Var::from_tensor(&rng(2, &[4, 3])).unwrap();
        let w2 = Var::from_tensor(&rng(3, &[3])).unwrap();
        let r = rng(4, &[5, 3]);
        let runs = Arc::new(AtomicUsize::new(0));
        let f = segment(&w, &w2, runs.clone());
        let loss = |y: Tensor| (y.sqr().unwrap() * &r).unwrap().sum_all().unwrap();
        let plain = loss(f(x.as_tensor()).unwrap()).backward().unwrap();
        assert_eq!(runs.swap(0, Ordering::SeqCst), 1);
        let y = checkpoint(x.as_tensor(), &[w.clone(), w2.clone()], f.clone()).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "forward runs once");
        let ckpt = loss(y).backward().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "backward runs it again");
        for t in [x.as_tensor(), w.as_tensor(), w2.as_tensor()] {
            let d = max_diff(plain.get(t).unwrap(), ckpt.get(t).unwrap());
            assert!(d < 1e-6, "gradient differs by {d}");
        }
        // An input that needs no gradient: the variables still get theirs, the input none.
        let frozen = x.as_tensor().detach();
        let y = checkpoint(&frozen, std::slice::from_ref(&w), f.clone()).unwrap();
        let g = loss(y).backward().unwrap();
        assert!(g.get(&frozen).is_none());
        assert!(g.get(w.as_tensor()).is_some());
        // Nothing to differentiate: no node at all.
        let y = checkpoint(&frozen, &[], f).unwrap();
        assert!(!y.track_op());
    }
}
