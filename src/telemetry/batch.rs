//! Bounded, batched export on the tokio runtime, one schedule for spans and log records: a
//! queue with a fixed capacity (a full queue drops and counts, never blocks a request), exports
//! of at most `max_batch` items every `delay` or as soon as a batch is full, at most
//! [`MAX_IN_FLIGHT`] exports at once, and a bounded drain at shutdown. The SDK's own batch
//! processors run a thread of their own that cannot drive the async OTLP clients.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many exports run at once; beyond it items wait in the queue.
pub const MAX_IN_FLIGHT: usize = 2;

/// Where a batch goes (an OTLP exporter, the console).
pub trait BatchSink<T>: Send + Sync + 'static {
    /// Exports one batch within `timeout`. A failure is reported to the operator by the sink
    /// (rate-limited) and returned, so the batcher counts the items as dropped.
    fn export(
        &self,
        batch: Vec<T>,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ()>> + Send;
}

/// The items waiting for export, at most `max`. Shared with whatever fills it from outside
/// the worker (the SDK's log processor).
#[derive(Debug)]
pub struct BatchQueue<T> {
    items: Mutex<Vec<T>>,
    max: usize,
    /// Items lost (queue full, export failed, left at the drain deadline).
    dropped: Arc<AtomicUsize>,
}

impl<T> BatchQueue<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock leaves a Vec that is still whole: keep using it.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether one more item fits.
    pub fn has_room(&self) -> bool {
        self.lock().len() < self.max
    }

    /// Queues `item`, or drops and counts it when the queue is full.
    pub fn push(&self, item: T) {
        let mut q = self.lock();
        if q.len() >= self.max {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            q.push(item);
        }
    }

    /// Counts one item lost without queueing it (a producer that found no room).
    pub fn count_lost(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The export schedule over a [`BatchQueue`] and its sinks. Owned by the telemetry worker.
pub struct Batcher<T, S> {
    sinks: Arc<Vec<S>>,
    queue: Arc<BatchQueue<T>>,
    max_batch: usize,
    delay: Duration,
    timeout: Duration,
    last_flush: Instant,
    in_flight: Arc<AtomicUsize>,
    /// Items dropped (queue full or export failed); read and reset by the worker for
    /// `llmtap.telemetry.dropped`.
    pub dropped: Arc<AtomicUsize>,
}

impl<T: Clone + Send + 'static, S: BatchSink<T>> Batcher<T, S> {
    /// `max_queue` items wait at most; exports carry at most `max_batch` (capped at
    /// `max_queue`), start every `delay`, and each may take `timeout`.
    pub fn new(
        sinks: Vec<S>,
        max_queue: usize,
        max_batch: usize,
        delay: Duration,
        timeout: Duration,
    ) -> Batcher<T, S> {
        let dropped = Arc::new(AtomicUsize::new(0));
        Batcher {
            sinks: Arc::new(sinks),
            queue: Arc::new(BatchQueue {
                items: Mutex::new(Vec::new()),
                max: max_queue,
                dropped: dropped.clone(),
            }),
            max_batch: max_batch.clamp(1, max_queue.max(1)),
            delay,
            timeout,
            last_flush: Instant::now(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            dropped,
        }
    }

    /// The queue, for a producer outside the worker.
    pub fn queue(&self) -> Arc<BatchQueue<T>> {
        self.queue.clone()
    }

    /// Queues the item `build` makes. Room is checked before building, so a collector that
    /// is down costs a counter increment per item, not an item built in vain.
    pub fn push_with(&mut self, build: impl FnOnce() -> Option<T>) {
        if self.sinks.is_empty() {
            return;
        }
        if !self.queue.has_room() {
            self.queue.count_lost();
            return;
        }
        let Some(item) = build() else { return };
        self.queue.push(item);
        self.pushed();
    }

    /// After items were queued from outside ([`Batcher::queue`]): exports at once when a
    /// batch is full.
    pub fn pushed(&mut self) {
        if self.queue.len() >= self.max_batch {
            self.flush();
        }
    }

    /// Called on every worker tick: exports when the schedule delay has passed.
    pub fn tick(&mut self) {
        if self.last_flush.elapsed() >= self.delay && !self.queue.is_empty() {
            self.flush();
        }
    }

    /// Starts exports for what is queued, as far as the in-flight limit allows.
    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        while self.in_flight.load(Ordering::Acquire) < MAX_IN_FLIGHT {
            let batch: Vec<T> = {
                let mut q = self.queue.lock();
                let n = q.len().min(self.max_batch);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            let sinks = self.sinks.clone();
            let in_flight = self.in_flight.clone();
            let dropped = self.dropped.clone();
            let timeout = self.timeout;
            tokio::spawn(async move {
                let len = batch.len();
                let mut failed = false;
                // The last sink takes the batch itself; only extra sinks pay for a copy.
                let mut batch = Some(batch);
                for (i, sink) in sinks.iter().enumerate() {
                    let items = if i + 1 == sinks.len() {
                        batch.take().unwrap_or_default()
                    } else {
                        batch.clone().unwrap_or_default()
                    };
                    failed |= sink.export(items, timeout).await.is_err();
                }
                if failed {
                    dropped.fetch_add(len, Ordering::Relaxed);
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
        }
    }

    /// Exports everything queued and waits for in-flight exports to finish, until `deadline`;
    /// what is still queued then is dropped and counted.
    pub async fn drain(&mut self, deadline: Instant) {
        loop {
            self.flush();
            if self.queue.is_empty() && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            if Instant::now() >= deadline {
                let mut q = self.queue.lock();
                self.dropped.fetch_add(q.len(), Ordering::Relaxed);
                q.clear();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Every batch a probe was given, in order.
    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// Records every batch it gets; fails when told to.
    struct Probe {
        batches: Batches,
        fail: Arc<AtomicBool>,
    }

    impl BatchSink<u32> for Probe {
        fn export(
            &self,
            batch: Vec<u32>,
            _timeout: Duration,
        ) -> impl Future<Output = Result<(), ()>> + Send {
            let batches = self.batches.clone();
            let fail = self.fail.load(Ordering::Relaxed);
            async move {
                batches.lock().unwrap().push(batch);
                if fail {
                    Err(())
                } else {
                    Ok(())
                }
            }
        }
    }

    fn probe() -> (Probe, Batches, Arc<AtomicBool>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicBool::new(false));
        let p = Probe {
            batches: batches.clone(),
            fail: fail.clone(),
        };
        (p, batches, fail)
    }

    #[tokio::test]
    async fn full_batches_go_at_once_a_full_queue_drops_and_the_drain_sends_the_rest() {
        let (p, batches, fail) = probe();
        let hour = Duration::from_secs(3600);
        let mut b = Batcher::new(vec![p], 5, 3, hour, hour);
        for i in 0..3 {
            b.push_with(|| Some(i));
        }
        // A full batch started an export without waiting for the delay.
        b.drain(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(*batches.lock().unwrap(), vec![vec![0, 1, 2]]);
        // Nothing in flight and a tick before the delay: items wait; past 5 they drop.
        let q = b.queue();
        for i in 10..17 {
            q.push(i);
        }
        b.tick();
        assert_eq!(q.len(), 5);
        assert_eq!(b.dropped.swap(0, Ordering::Relaxed), 2);
        b.push_with(|| panic!("built although the queue is full"));
        assert_eq!(b.dropped.swap(0, Ordering::Relaxed), 1);
        fail.store(true, Ordering::Relaxed);
        b.drain(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(
            batches.lock().unwrap()[1..],
            [vec![10, 11, 12], vec![13, 14]]
        );
        // The failed exports' items are counted as dropped.
        assert_eq!(b.dropped.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn without_sinks_nothing_is_built_or_queued() {
        let mut b: Batcher<u32, Probe> = Batcher::new(vec![], 5, 3, Duration::ZERO, Duration::ZERO);
        b.push_with(|| panic!("built without a sink"));
        assert!(b.queue().is_empty());
    }
}
