//! A team of threads that stay awake between jobs, for the hundreds of small parallel products
//! of one decoding step.
//!
//! A 7B decoding step is 225 quantized products of 0.3-1 ms each with a little serial work
//! between them. rayon's idle workers yield and then sleep on a futex; on a virtual machine a
//! sleeping CPU halts, and waking it again for each product cost about 80 us of the ~590 us a
//! product takes. The team's helper threads instead spin on a generation counter for a few
//! milliseconds after each job (yielding now and then, so that other runnable threads still get
//! the CPU) before they sleep.
//!
//! A job's chunks are split into one contiguous range per thread, which each thread works
//! through from the front, so that it reads its weights as one stream (a chunk taken from a
//! shared counter instead restarts the hardware prefetcher at every chunk). A thread done with
//! its range takes chunks from the back of the range with the most left, so the threads still
//! finish within one small chunk of each other, also when one of them is slowed down.
//!
//! One job runs at a time. A call made while the team is busy (another thread's job, or a call
//! from inside a chunk) gets `false` back and does the work its own way.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long a helper keeps spinning after its last job before it sleeps.
const SPIN_FOR: Duration = Duration::from_millis(3);

/// Spin-loop rounds between two checks of the clock (and yields of the CPU).
const SPINS_PER_YIELD: u32 = 64;

/// Set in [`Shared::joined`] while no job is open.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// A job: called once with each chunk index.
type Task = dyn Fn(usize) + Sync;

/// What the caller and the helpers share.
struct Shared {
    /// Bumped once per job; helpers wait for it to change.
    generation: AtomicU64,
    /// The current job. Written only by the caller while [`Self::joined`] is `CLOSED` with no
    /// helper counted, read only by helpers counted in an open job.
    task: UnsafeCell<Option<&'static Task>>,
    /// Per thread (the caller first), the chunks of the current job it has left: `front`
    /// in the high half, `back` (exclusive) in the low half.
    ranges: Box<[AtomicU64]>,
    /// Helpers inside the current job, plus `CLOSED` when there is none open.
    joined: AtomicUsize,
    /// Whether a chunk panicked on a helper.
    panicked: AtomicBool,
    /// Helpers asleep on [`Self::wake`].
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `task` is the only field that is not itself Sync; the `joined` protocol above keeps
// its writes (caller, no helper counted) and reads (counted helpers) apart, and the function it
// points to is `Sync`.
unsafe impl Sync for Shared {}

/// The team: `helpers` threads besides the caller of [`Team::run`].
pub struct Team {
    shared: &'static Shared,
    busy: Mutex<()>,
    helpers: usize,
}

impl Team {
    /// The process's team: one helper fewer than rayon's threads (the caller is the last),
    /// `None` with a single thread or when a helper cannot be started.
    pub fn get() -> Option<&'static Team> {
        static TEAM: OnceLock<Option<Team>> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(rayon::current_num_threads().saturating_sub(1)))
            .as_ref()
    }

    fn new(helpers: usize) -> Option<Team> {
        if helpers == 0 {
            return None;
        }
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            generation: AtomicU64::new(0),
            task: UnsafeCell::new(None),
            ranges: (0..=helpers).map(|_| AtomicU64::new(0)).collect(),
            joined: AtomicUsize::new(CLOSED),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }));
        for me in 1..=helpers {
            std::thread::Builder::new()
                .name(format!("instructmol-team-{me}"))
                .spawn(move || helper(shared, me))
                .ok()?;
        }
        Some(Team {
            shared,
            busy: Mutex::new(()),
            helpers,
        })
    }

    /// Threads that work on a job: the helpers and the caller.
    pub fn threads(&self) -> usize {
        self.helpers + 1
    }

    /// Calls `task(i)` for every `i < chunks`, spread over the helpers and the calling thread,
    /// and returns when all calls have returned. `false` (nothing called) if the team is busy
    /// with another job (or `chunks` does not fit 32 bits). A panic in a chunk is raised again
    /// here once no thread is in the job.
    pub fn run(&self, chunks: usize, task: &(dyn Fn(usize) + Sync)) -> bool {
        if chunks > u32::MAX as usize {
            return false;
        }
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let s = self.shared;
        // SAFETY: the lifetime is extended only for the time the job is open: before returning,
        // this call closes the job and waits until no helper is in it, and no helper reads the
        // task outside an open job. No helper is counted now (the previous job ended that way),
        // so nobody reads `task` while it is written.
        unsafe {
            *s.task.get() =
                Some(std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Task>(task));
        }
        let threads = s.ranges.len();
        for (t, range) in s.ranges.iter().enumerate() {
            let (front, back) = (t * chunks / threads, (t + 1) * chunks / threads);
            range.store(pack(front, back), Ordering::Relaxed);
        }
        s.panicked.store(false, Ordering::Relaxed);
        // Open the job (publishing the stores above to whoever joins), then announce it.
        s.joined.fetch_and(!CLOSED, Ordering::Release);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _lock = s.lock.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| take_chunks(s, 0, task)));
        // Close it, then wait for the helpers still inside (each at most one chunk from done).
        s.joined.fetch_or(CLOSED, Ordering::AcqRel);
        while s.joined.load(Ordering::Acquire) != CLOSED {
            std::hint::spin_loop();
        }
        // SAFETY: closed with no helper counted, as above.
        unsafe { *s.task.get() = None };
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if s.panicked.load(Ordering::Relaxed) {
            panic!("a chunk of a parallel product panicked on a team thread");
        }
        true
    }
}

/// `(front, back)` of a range as one word.
fn pack(front: usize, back: usize) -> u64 {
    ((front as u64) << 32) | back as u64
}

/// Takes the front chunk of `range` (`back` false) or its back chunk, if it has one left.
fn take(range: &AtomicU64, back: bool) -> Option<usize> {
    let mut v = range.load(Ordering::Relaxed);
    loop {
        let (f, b) = (v >> 32, v & u32::MAX as u64);
        if f >= b {
            return None;
        }
        let (new, got) = if back {
            (pack(f as usize, b as usize - 1), b - 1)
        } else {
            (pack(f as usize + 1, b as usize), f)
        };
        match range.compare_exchange_weak(v, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(got as usize),
            Err(now) => v = now,
        }
    }
}

/// Thread `me` works on the open job: its own range from the front, then chunks from the back
/// of the range with the most left, until no chunk is left.
fn take_chunks(s: &Shared, me: usize, task: &(dyn Fn(usize) + Sync + '_)) {
    while let Some(i) = take(&s.ranges[me], false) {
        task(i);
    }
    loop {
        let left = |r: &AtomicU64| {
            let v = r.load(Ordering::Relaxed);
            (v & u32::MAX as u64).saturating_sub(v >> 32)
        };
        let Some(most) = s
            .ranges
            .iter()
            .max_by_key(|r| left(r))
            .filter(|r| left(r) > 0)
        else {
            break;
        };
        if let Some(i) = take(most, true) {
            task(i);
        }
    }
}

/// A helper thread: waits for each new job (spinning, then asleep) and works on it.
fn helper(s: &'static Shared, me: usize) {
    let mut seen = s.generation.load(Ordering::Acquire);
    loop {
        let mut spins = 0u32;
        let mut idle_since: Option<Instant> = None;
        loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(SPINS_PER_YIELD) {
                std::hint::spin_loop();
                continue;
            }
            std::thread::yield_now();
            if idle_since.get_or_insert_with(Instant::now).elapsed() < SPIN_FOR {
                continue;
            }
            let mut lock = s.lock.lock().unwrap_or_else(|p| p.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            while s.generation.load(Ordering::SeqCst) == seen {
                lock = s.wake.wait(lock).unwrap_or_else(|p| p.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            idle_since = None;
        }
        // Join the job unless it has already closed (then it is not ours to touch).
        if s.joined.fetch_add(1, Ordering::Acquire) & CLOSED == 0 {
            // SAFETY: counted in an open job, so the caller keeps `task` alive and unchanged
            // until this thread leaves it.
            if let Some(task) = unsafe { *s.task.get() } {
                if catch_unwind(AssertUnwindSafe(|| take_chunks(s, me, task))).is_err() {
                    s.panicked.store(true, Ordering::Relaxed);
                }
            }
        }
        s.joined.fetch_sub(1, Ordering::Release);
    }
}

/// Calls `f(i, chunk)` for each `chunk_len` piece of `out` (the last may be shorter), on the
/// team when it is free and there is more than one piece, else on the calling thread in order.
pub fn for_chunks_mut<T: Send>(
    out: &mut [T],
    chunk_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk_len = chunk_len.max(1);
    let pieces = out.len().div_ceil(chunk_len);
    if pieces > 1 {
        if let Some(team) = Team::get() {
            let len = out.len();
            let base = SendPtr(out.as_mut_ptr());
            let task = |i: usize| {
                let start = i * chunk_len;
                let end = (start + chunk_len).min(len);
                // SAFETY: each index is handed out once per job, so the pieces `[start, end)`
                // given to different calls never overlap, and all lie inside `out`, which is
                // borrowed mutably for the whole job.
                let piece = unsafe { std::slice::from_raw_parts_mut(base.at(start), end - start) };
                f(i, piece);
            };
            if team.run(pieces, &task) {
                return;
            }
        }
    }
    for (i, piece) in out.chunks_mut(chunk_len).enumerate() {
        f(i, piece);
    }
}

/// Products smaller than this (weight bytes x activation rows) run on the calling thread.
/// SmolLM2's q, o and MLP products (207-553 KB in Q4_1) are split, its 69 KB k and v are not
/// (2 threads, decode tok/s by threshold: 60 KB 125, 150 KB 130, 250 KB 110).
const PARALLEL_MIN_BYTES: usize = 128 * 1024;

/// Chunks of a product per thread at most: small, so that the threads finish within one small
/// chunk of each other.
const CHUNKS_PER_THREAD: usize = 48;

/// Work of a chunk at least (weight bytes x activation rows), so that taking a chunk costs
/// little beside its work.
const MIN_CHUNK_BYTES: usize = 32 * 1024;

/// Runs `work(outputs, weights)` over matching chunks of `[n, m]` outputs and `n` weight rows
/// of `per_row` items (a product `x [m, k] @ W^T` computed row by row of `W`): on the calling
/// thread for a small product, else in chunks of at least 8 rows spread over the team.
pub(crate) fn for_row_chunks<W: Sync>(
    out_t: &mut [f32],
    m: usize,
    w: &[W],
    per_row: usize,
    work: impl Fn(&mut [f32], &[W]) + Sync,
) {
    let n = out_t.len() / m.max(1);
    let row_work = per_row * std::mem::size_of::<W>() * m;
    if n * row_work < PARALLEL_MIN_BYTES {
        work(out_t, w);
        return;
    }
    let threads = Team::get().map_or(1, Team::threads);
    let rows = n
        .div_ceil(CHUNKS_PER_THREAD * threads)
        .max(MIN_CHUNK_BYTES.div_ceil(row_work.max(1)))
        .max(8);
    for_chunks_mut(out_t, rows * m, |i, o| {
        let start = (i * rows * per_row).min(w.len());
        let end = (start + o.len() / m * per_row).min(w.len());
        work(o, &w[start..end])
    });
}

/// A pointer that may cross threads: [`for_chunks_mut`] hands out disjoint pieces of it.
struct SendPtr<T>(*mut T);

// SAFETY: used only to build the disjoint pieces of a slice whose elements are `Send`.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer `i` elements on.
    ///
    /// # Safety
    /// `i` must be within the slice the pointer came from.
    unsafe fn at(&self, i: usize) -> *mut T {
        self.0.add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk is called once, with its own piece, on however many threads there are;
    /// a busy team (a call from inside a chunk) falls back to the calling thread.
    #[test]
    fn every_piece_once_and_nested_calls_fall_back() {
        for len in [0usize, 1, 7, 64, 1000, 4097] {
            for chunk in [1usize, 3, 64, 5000] {
                let mut out = vec![0u32; len];
                for_chunks_mut(&mut out, chunk, |i, piece| {
                    let mut inner = vec![0u8; 3];
                    for_chunks_mut(&mut inner, 1, |_, p| p[0] += 1);
                    assert_eq!(inner, [1, 1, 1]);
                    for (j, v) in piece.iter_mut().enumerate() {
                        *v += (i * chunk + j) as u32 + 1;
                    }
                });
                let want: Vec<u32> = (1..=len as u32).collect();
                assert_eq!(out, want, "len {len} chunk {chunk}");
            }
        }
    }

    /// A team with two helpers does the work of many small jobs in a row (the helpers spin and
    /// sleep between them), and one chunk's panic reaches the caller after the job ends.
    #[test]
    fn many_jobs_and_a_panic() {
        let team = Team::new(2).expect("threads start");
        assert_eq!(team.threads(), 3);
        for job in 0..2000usize {
            let sum = AtomicUsize::new(0);
            assert!(team.run(job % 17, &|i| {
                sum.fetch_add(i + 1, Ordering::Relaxed);
            }));
            let n = job % 17;
            assert_eq!(sum.into_inner(), n * (n + 1) / 2);
            if job == 1000 {
                std::thread::sleep(SPIN_FOR * 2);
            }
        }
        let hit = catch_unwind(AssertUnwindSafe(|| {
            team.run(64, &|i| {
                if i == 40 {
                    panic!("chunk 40");
                }
            })
        }));
        assert!(hit.is_err());
        // The team still works after it.
        let sum = AtomicUsize::new(0);
        assert!(team.run(10, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        }));
        assert_eq!(sum.into_inner(), 45);
    }
}
