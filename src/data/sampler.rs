//! The seeded length-grouped sampler: which examples form each training batch.
//!
//! It follows LLaVA's `group_by_modality_length` idea:
//! shuffle, cut into mega-batches, sort each by length (longest first), cut into batches,
//! shuffle the batch order and put the batch with the longest example first (so memory
//! problems show up at step 1). Its order is a pure function of (seed, epoch), so a resumed
//! run sees exactly the batches an uninterrupted one would.

use crate::rng::Rng;

/// Seeded length-grouped batch order over a dataset.
#[derive(Debug, Clone)]
pub struct LengthGroupedSampler {
    lengths: Vec<usize>,
    batch_size: usize,
    mega_batch_mult: usize,
}

impl LengthGroupedSampler {
    /// A sampler over examples of the given lengths (tokens after graph expansion), batches of
    /// `batch_size` (at least 1), mega-batches of 50 batches (fewer for small datasets, as
    /// Hugging Face's `LengthGroupedSampler` does).
    pub fn new(lengths: Vec<usize>, batch_size: usize) -> Self {
        let batch_size = batch_size.max(1);
        let mega_batch_mult = (lengths.len() / (batch_size * 4)).clamp(1, 50);
        Self {
            lengths,
            batch_size,
            mega_batch_mult,
        }
    }

    /// The same sampler with mega-batches of `mult` batches.
    pub fn with_mega_batch_mult(mut self, mult: usize) -> Self {
        self.mega_batch_mult = mult.max(1);
        self
    }

    /// Number of batches per epoch (the last one may be smaller).
    pub fn num_batches(&self) -> usize {
        self.lengths.len().div_ceil(self.batch_size)
    }

    /// The batches of `epoch` as example indices: a pure function of (seed, epoch).
    pub fn batches(&self, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = Rng::derive(seed, &[epoch]);
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        rng.shuffle(&mut order);
        let mega = self.batch_size * self.mega_batch_mult;
        let mut batches: Vec<Vec<usize>> = Vec::with_capacity(self.num_batches());
        for chunk in order.chunks(mega) {
            let mut chunk = chunk.to_vec();
            chunk.sort_by(|&a, &b| self.lengths[b].cmp(&self.lengths[a]));
            batches.extend(chunk.chunks(self.batch_size).map(<[usize]>::to_vec));
        }
        rng.shuffle(&mut batches);
        let longest = batches
            .iter()
            .enumerate()
            .max_by_key(|(i, b)| {
                (
                    b.iter().map(|&j| self.lengths[j]).max(),
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, _)| i);
        if let Some(i) = longest {
            batches.swap(0, i);
        }
        batches
    }
}
