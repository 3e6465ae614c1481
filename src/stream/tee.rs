//! The response relay: upstream bytes go to the client the moment they are read, while the
//! `RequestRecord` watches each chunk. The relay also enforces the idle timeout and ends the
//! record exactly once: at the end of the body, on an upstream error, or (through the record's
//! `Drop`) when the client goes away and hyper drops this stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::decode::Decoder;
use super::strip::EventStripper;
use crate::vocab::error_type::ErrorType;
use crate::vocab::summary::FeedOutcome;

/// What the relay tells whoever watches the body (the request's record): a copy of each
/// chunk read, the bytes sent on, a failure, and the end. `finish` may be called once; a
/// watcher that is dropped unfinished must finish itself.
pub trait BodyWatcher: Send + Unpin {
    fn observe(&mut self, bytes: &[u8]);
    /// Whether the watcher takes events framed by the relay instead of bytes.
    fn takes_events(&self) -> bool {
        false
    }
    /// One event of the current read, framed by the relay; `read` accumulates the read.
    fn observe_event(&mut self, _event: Option<&str>, _data: &[u8], _read: &mut FeedOutcome) {}
    /// All events of one read were observed (or framing failed: `framing_failed`).
    fn observed_read(&mut self, _read: FeedOutcome, _framing_failed: bool) {}
    fn sent(&mut self, bytes: u64);
    /// The relay hit one of its bounds (counted and flagged on the span by the watcher).
    fn bound_hit(&mut self, _bound: RelayBound) {}
    /// Records the `error.type`; the first one wins.
    fn fail(&mut self, error_type: ErrorType);
    fn finish(&mut self);
}

/// A bound the relay enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayBound {
    /// One decoding step produced more than
    /// [`MAX_DECODED_PER_READ`](super::decode::MAX_DECODED_PER_READ).
    DecodedPerRead,
    /// The body ran past the upstream's `timeouts.max_stream_secs`.
    StreamDuration,
}

/// Why the relay cut the client's stream. Yielding an error makes hyper abort the response
/// (no terminating chunk), so the client sees a cut stream, never a fake clean end.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream stream failed: {0}")]
    Upstream(String),
    #[error("upstream was idle for {0:?}")]
    Idle(Duration),
    #[error("llmtap shut down before the stream ended")]
    Shutdown,
    #[error("stream ran past the longest allowed, {0:?}")]
    TooLong(Duration),
    #[error("upstream body decodes past llmtap's per-read bound (a decompression bomb)")]
    DecodedTooLarge,
}

type AbortSignal = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub struct Relay<S, W> {
    upstream: S,
    record: W,
    stripper: Option<EventStripper>,
    /// Decodes a compressed body before the stripper, when the client gets it uncompressed.
    decoder: Option<Decoder>,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// The whole body's deadline (`max_stream`), however active the upstream is.
    max_stream: Option<(Duration, Pin<Box<Sleep>>)>,
    /// Compressed bytes read but not decoded yet: decoded one bounded step per poll, so a
    /// small read that expands hugely never sits in memory whole.
    pending: Bytes,
    abort: AbortSignal,
    /// Bytes still due when the upstream declared a length: once all are relayed the response
    /// is complete, even if hyper never polls this stream again to see its end.
    remaining: Option<u64>,
    done: bool,
}

impl<S, W> Relay<S, W> {
    pub fn new(
        upstream: S,
        record: W,
        stripper: Option<EventStripper>,
        idle: Duration,
        mut abort: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let abort = Box::pin(async move {
            let _ = abort.wait_for(|v| *v).await;
        });
        Relay {
            abort,
            remaining: None,
            upstream,
            record,
            stripper,
            decoder: None,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            max_stream: None,
            pending: Bytes::new(),
            done: false,
        }
    }
}

impl<S, W> Relay<S, W> {
    /// The upstream's `content-length`, when the body is relayed unchanged.
    pub fn with_length(mut self, len: Option<u64>) -> Self {
        self.remaining = len;
        self
    }

    /// Cut the body `max` after it started, however active (a stream that only sends
    /// keep-alive comments is active, so the idle timeout never ends it).
    pub fn with_max_duration(mut self, max: Duration) -> Self {
        self.max_stream = Some((max, Box::pin(tokio::time::sleep(max))));
        self
    }

    /// Decode the upstream body (its `content-encoding`) before relaying it.
    pub fn with_decoder(mut self, decoder: Option<Decoder>) -> Self {
        self.decoder = decoder;
        self
    }
}

impl<S, E, W> Stream for Relay<S, W>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    W: BodyWatcher,
{
    type Item = Result<Bytes, RelayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some((max, deadline)) = &mut this.max_stream {
                if deadline.as_mut().poll(cx).is_ready() {
                    let max = *max;
                    this.done = true;
                    this.record.bound_hit(RelayBound::StreamDuration);
                    this.record.fail(ErrorType::Timeout);
                    this.record.finish();
                    return Poll::Ready(Some(Err(RelayError::TooLong(max))));
                }
            }
            if let (Some(d), false) = (&mut this.decoder, this.pending.is_empty()) {
                let piece = this
                    .pending
                    .split_to(this.pending.len().min(super::decode::DECODE_INPUT_STEP));
                match d.step(&piece) {
                    Ok(decoded) => match this.pass(Bytes::from(decoded)) {
                        Some(out) => return Poll::Ready(Some(Ok(out))),
                        None => continue,
                    },
                    Err(e) => {
                        // The client cannot be given a faithful stream.
                        this.done = true;
                        let bomb = e.kind() == std::io::ErrorKind::OutOfMemory;
                        if bomb {
                            this.record.bound_hit(RelayBound::DecodedPerRead);
                        }
                        this.record.fail(ErrorType::StreamTruncated);
                        this.record.finish();
                        return Poll::Ready(Some(Err(if bomb {
                            RelayError::DecodedTooLarge
                        } else {
                            RelayError::Upstream(format!("undecodable body: {e}"))
                        })));
                    }
                }
            }
            match Pin::new(&mut this.upstream).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    let deadline = Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                    if this.decoder.is_some() {
                        this.pending = bytes;
                        continue;
                    }
                    if let Some(out) = this.pass(bytes) {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.record.fail(ErrorType::StreamTruncated);
                    this.record.finish();
                    return Poll::Ready(Some(Err(RelayError::Upstream(e.to_string()))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let rest = this
                        .stripper
                        .as_mut()
                        .map(|s| s.finish())
                        .unwrap_or_default();
                    this.record.sent(rest.len() as u64);
                    this.record.finish();
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(rest)));
                }
                Poll::Pending => {
                    if this.abort.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.record.fail(ErrorType::Shutdown);
                        this.record.finish();
                        return Poll::Ready(Some(Err(RelayError::Shutdown)));
                    }
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.record.fail(ErrorType::Timeout);
                        this.record.finish();
                        return Poll::Ready(Some(Err(RelayError::Idle(this.idle))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S, W: BodyWatcher> Relay<S, W> {
    /// Plain (or decoded) body bytes: the record watches them, the stripper takes out what
    /// the injection added. Returns what goes to the client now, if anything.
    fn pass(&mut self, bytes: Bytes) -> Option<Bytes> {
        if bytes.is_empty() {
            return None;
        }
        let out = match &mut self.stripper {
            // Frame once: the stripper's events feed the record too.
            Some(s) if self.record.takes_events() => {
                let mut read = FeedOutcome::default();
                let record = &mut self.record;
                let out = s.process_with(&bytes, |event, data| {
                    record.observe_event(event, data, &mut read)
                });
                self.record.observed_read(read, s.framing_failed());
                out
            }
            Some(s) => {
                self.record.observe(&bytes);
                s.process(&bytes)
            }
            None => {
                self.record.observe(&bytes);
                bytes
            }
        };
        if out.is_empty() {
            return None;
        }
        self.record.sent(out.len() as u64);
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(out.len() as u64);
            if *r == 0 {
                self.done = true;
                self.record.finish();
            }
        }
        Some(out)
    }
}
