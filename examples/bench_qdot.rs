//! Quantized matrix products at 7B shapes, as decoding runs them (on a rayon pool thread):
//! weight bytes read per second by `qdot::matmul_t` (GGML blocks as stored) and by the packed
//! Q4_K layout, for one activation row (decode) and four. Each timing reads enough copies of the
//! matrix to come from memory, not the cache, as a model's layers do.
//!
//! `cargo run --release --example bench_qdot`; `SHAPE=NxK` measures one shape, `COPIES=c` sets the copies
//! (`COPIES=1` with a small shape measures the kernels on cached weights).

use instructmol::model::device::on_cpu_pool;
use instructmol::model::ops::q4k_x8::PackedQ4K;
use instructmol::model::ops::qdot::{matmul_t, Kind};
use std::time::Instant;

/// Random blocks with small positive f16 scales (`bytes` per block of `len`, `scales` f16 at
/// the start of each).
fn random(n: usize, k: usize, (bytes, len, scales): (usize, usize, usize), seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as u8
    };
    let mut data = vec![0u8; n * k / len * bytes];
    for b in data.chunks_exact_mut(bytes) {
        for v in b.iter_mut() {
            *v = next();
        }
        for j in 0..scales {
            b[2 * j + 1] = 0x20 | (next() & 0x3);
        }
    }
    data
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// The best time per call of `f` over each of `copies` matrices, at least 100 calls in all.
fn time(copies: usize, mut f: impl FnMut(usize)) -> f64 {
    let rounds = 100usize.div_ceil(copies);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..rounds {
            for c in 0..copies {
                f(c);
            }
        }
        best = best.min(t.elapsed().as_secs_f64() / (copies * rounds) as f64);
    }
    best
}

/// A weight format under test: its name, block layout, and product `x [m, k] @ W^T` on one
/// matrix's bytes.
type Product = Box<dyn Fn(&[f32], usize) -> Option<Vec<f32>>>;

fn run() {
    let shapes = match std::env::var("SHAPE").ok().and_then(|s| {
        let (n, k) = s.split_once('x')?;
        Some((n.parse().ok()?, k.parse().ok()?))
    }) {
        Some(s) => vec![s],
        None => vec![(11008usize, 4096usize), (4096, 11008), (4096, 4096)],
    };
    let formats: [(&str, (usize, usize, usize)); 3] = [
        ("Q4_K packed", (144, 256, 2)),
        ("Q4_1", (20, 32, 2)),
        ("Q8_0", (34, 32, 1)),
    ];
    for (name, layout) in formats {
        for &(n, k) in &shapes {
            let copies = env("COPIES").unwrap_or((512 << 20) / (n * k / 2));
            let mut bytes = 0;
            let products: Vec<Product> = (0..copies)
                .filter_map(|c| {
                    let data = random(n, k, layout, 7 + c as u64);
                    bytes = data.len();
                    Some(match name {
                        "Q4_1" => {
                            Box::new(move |x: &[f32], m| matmul_t(Kind::Q4_1, &data, n, k, x, m))
                                as Product
                        }
                        "Q8_0" => {
                            Box::new(move |x: &[f32], m| matmul_t(Kind::Q8_0, &data, n, k, x, m))
                        }
                        _ => {
                            let p = PackedQ4K::pack(&data, n, k)?;
                            Box::new(move |x: &[f32], m| p.matmul_t(x, m))
                        }
                    })
                })
                .collect();
            if products.is_empty() {
                println!("{name}: no kernel on this CPU");
                continue;
            }
            for m in [1usize, 4] {
                let xs: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let t = time(products.len(), |c| {
                    std::hint::black_box(products[c](&xs, m));
                });
                println!(
                    "{name} [{n}x{k}] m={m}: {:.3} ms, {:.1} GB/s of weights",
                    t * 1e3,
                    bytes as f64 / t / 1e9
                );
            }
        }
    }
}

fn main() {
    // On a pool thread, as decoding runs its steps.
    on_cpu_pool(run);
}
