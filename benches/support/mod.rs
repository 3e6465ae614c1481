//! What the benches share: per-item timing over whole streams.

use std::time::{Duration, Instant};

/// Runs `stream` (a whole stream through fresh state) enough times for `iters` items and
/// returns the time those `iters` items took: per-stream set-up is amortised the way a real
/// stream amortises it.
pub fn per_item(iters: u64, items: usize, mut stream: impl FnMut()) -> Duration {
    let streams = iters.div_ceil(items as u64).max(1);
    let start = Instant::now();
    for _ in 0..streams {
        stream();
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (streams * items as u64) as f64)
}
