//! Padding, masks and the seeded length-grouped sampler.

use instructmol::data::batch::{collate, LengthGroupedSampler};
use instructmol::data::templates::{TokenizedExample, IGNORE_INDEX};

fn example(len: usize, image: Option<usize>) -> TokenizedExample {
    TokenizedExample {
        input_ids: (1..=len as u32).collect(),
        labels: (1..=len as i64)
            .map(|i| if i % 2 == 0 { i } else { IGNORE_INDEX })
            .collect(),
        image_position: image,
        truncated: false,
    }
}

#[test]
fn collate_pads_right_with_masks() {
    let a = example(3, Some(0));
    let b = example(5, None);
    let batch = collate(&[&a, &b], 99);
    assert_eq!((batch.batch_size, batch.seq_len), (2, 5));
    assert_eq!(batch.input_ids, [1, 2, 3, 99, 99, 1, 2, 3, 4, 5]);
    assert_eq!(batch.attention_mask, [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
    assert_eq!(
        batch.labels,
        [
            IGNORE_INDEX,
            2,
            IGNORE_INDEX,
            IGNORE_INDEX,
            IGNORE_INDEX,
            IGNORE_INDEX,
            2,
            IGNORE_INDEX,
            4,
            IGNORE_INDEX
        ]
    );
    assert_eq!(batch.image_positions, [Some(0), None]);
}

fn lengths(n: usize) -> Vec<usize> {
    // Deterministic spread of lengths 10..500.
    (0..n).map(|i| 10 + (i * 7919) % 490).collect()
}

#[test]
fn sampler_order_is_a_function_of_seed_and_epoch() {
    let s = LengthGroupedSampler::new(lengths(1000), 8);
    let e0 = s.batches(42, 0);
    assert_eq!(e0, s.batches(42, 0), "same (seed, epoch), same order");
    assert_ne!(e0, s.batches(42, 1), "a new epoch reshuffles");
    assert_ne!(e0, s.batches(43, 0), "a new seed reshuffles");
    assert_eq!(e0.len(), s.num_batches());
    let mut all: Vec<usize> = e0.concat();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "every example exactly once"
    );
}

#[test]
fn sampler_groups_lengths_and_puts_the_longest_first() {
    let lens = lengths(1000);
    let s = LengthGroupedSampler::new(lens.clone(), 8);
    let batches = s.batches(1, 0);
    let longest = *lens.iter().max().unwrap();
    assert!(batches[0].iter().any(|&i| lens[i] == longest));
    let padding = |bs: &[Vec<usize>]| -> usize {
        bs.iter()
            .map(|b| {
                let m = b.iter().map(|&i| lens[i]).max().unwrap_or(0);
                b.iter().map(|&i| m - lens[i]).sum::<usize>()
            })
            .sum()
    };
    // The same examples in plain shuffled batches of 8 pad far more.
    let random = LengthGroupedSampler::new(lens.clone(), 8).with_mega_batch_mult(1);
    let grouped = padding(&batches);
    let ungrouped = padding(&random.batches(1, 0));
    assert!(
        grouped * 5 < ungrouped,
        "grouped {grouped} vs ungrouped {ungrouped}"
    );
}
