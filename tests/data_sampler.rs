//! The seeded length-grouped sampler.

use instructmol::data::sampler::LengthGroupedSampler;

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
