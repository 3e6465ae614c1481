//! Reporting a bound that was hit ([`Limit`], defined with the bounds in `vocab::limits`):
//! serving and relaying go on unchanged, the hit is counted (`llmtap.limits.hit{limit}`) and a
//! WARN line is logged at most once a minute per bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::Counter;
use opentelemetry::KeyValue;

use crate::vocab::limits::{cut, Limit, ALL};

/// Least time between two WARN lines about the same bound.
const WARN_EVERY_SECS: u64 = 60;

/// Counts bound hits and rate-limits their WARN lines; one per process, on the telemetry
/// handle, so every layer that holds something reports the same way.
pub struct LimitHits {
    counter: Option<Counter<u64>>,
    /// Unix seconds of the last WARN per bound (0: never).
    warned: [AtomicU64; ALL.len()],
}

impl LimitHits {
    /// `counter`: `llmtap.limits.hit`, when metrics are on.
    pub fn new(counter: Option<Counter<u64>>) -> LimitHits {
        LimitHits {
            counter,
            warned: Default::default(),
        }
    }

    /// One hit of `limit`; `detail` says what was bounded, for the WARN line.
    pub fn hit(&self, limit: Limit, detail: &str) {
        if let Some(c) = &self.counter {
            c.add(1, &[KeyValue::new("limit", limit.name())]);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = &self.warned[limit.index()];
        let prev = last.load(Ordering::Relaxed);
        if (prev == 0 || now >= prev + WARN_EVERY_SECS)
            && last
                .compare_exchange(prev, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit = limit.name(),
                detail = cut(detail),
                "a bound was hit; serving goes on (counted in llmtap.limits.hit, at most one such line a minute per bound)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_its_own_slot() {
        for (i, l) in ALL.iter().enumerate() {
            assert_eq!(l.index(), i, "{}", l.name());
        }
        let hits = LimitHits::new(None);
        hits.hit(Limit::Decoded, "test");
        assert!(hits.warned[Limit::Decoded.index()].load(Ordering::Relaxed) > 0);
        assert_eq!(
            hits.warned[Limit::Identifier.index()].load(Ordering::Relaxed),
            0
        );
    }
}
