//! Scripted response bodies: how a scenario turns an endpoint's events (or JSON) into a
//! sequence of sends, pauses, stalls and aborts, and the guard that records whether the body
//! ran to its end or was dropped by the client first.

use std::io::{self, Write};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;

use super::scenario::Scenario;
use super::wire::Step;
use super::{MockEvent, MockUpstream};

/// Pause between chunks in the `slow` scenario unless `x-mock-chunk-delay-ms` says otherwise.
const SLOW_CHUNK_DELAY: Duration = Duration::from_millis(300);
/// Events sent before `cut` aborts and before `midstream-error` reports: the role chunk and
/// two content chunks, enough for a parser to have started a record.
const EVENTS_BEFORE_FAILURE: usize = 3;

const DONE: &[u8] = b"data: [DONE]\n\n";
const MIDSTREAM_ERROR: &[u8] = b"data: {\"error\":{\"message\":\"The server had an error while \
    processing your request. Sorry about that!\",\"type\":\"server_error\",\"code\":\
    \"internal_error\"}}\n\n";
/// Bytes no SSE parser can make sense of: binary, a broken frame, then an HTML error page as
/// a misbehaving load balancer might splice in.
const GARBAGE: [&[u8]; 2] = [
    b"\x00\xff\xfenot an SSE frame {{{\r\n",
    b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
];

/// How a scenario shapes streamed bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shaping {
    pub scenario: Scenario,
    pub chunk_delay: Option<Duration>,
}

impl Shaping {
    pub(crate) fn plain() -> Self {
        Self {
            scenario: Scenario::Default,
            chunk_delay: None,
        }
    }
}

/// The script for a streamed endpoint reply; `events` excludes `[DONE]`, which ends a clean
/// stream when `done` is set (OpenAI's chat streams; typed streams end with their own event).
pub(crate) fn shape_sse(mut events: Vec<Bytes>, shaping: Shaping, done: bool) -> Vec<Step> {
    let delay = match (shaping.chunk_delay, shaping.scenario) {
        (Some(delay), _) => delay,
        (None, Scenario::Slow) => SLOW_CHUNK_DELAY,
        (None, _) => Duration::ZERO,
    };
    let mut tail = Vec::new();
    match shaping.scenario {
        Scenario::Idle => {
            events.truncate(1);
            tail.push(Step::Stall);
        }
        Scenario::Cut => {
            events.truncate(EVENTS_BEFORE_FAILURE);
            tail.push(Step::Abort(
                "llmtap mock: scripted cut of the response body",
            ));
        }
        Scenario::MidstreamError => {
            events.truncate(EVENTS_BEFORE_FAILURE);
            events.push(Bytes::from_static(MIDSTREAM_ERROR));
        }
        Scenario::Garbage => {
            events.truncate(2);
            events.extend(GARBAGE.iter().map(|g| Bytes::from_static(g)));
        }
        _ if done => events.push(Bytes::from_static(DONE)),
        _ => {}
    }
    let mut steps = Vec::with_capacity(events.len() * 2 + tail.len());
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 && !delay.is_zero() {
            steps.push(Step::Sleep(delay));
        }
        steps.push(Step::Send(event));
    }
    steps.extend(tail);
    steps
}

/// A non-streamed success body after the scenario had its say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shaped {
    Full(Bytes),
    Gzip(Bytes),
    Script(Vec<Step>),
}

pub(crate) fn shape_full(json: Bytes, scenario: Scenario) -> Shaped {
    match scenario {
        // Sent regardless of accept-encoding: the point is to test the proxy's decoding.
        Scenario::Gzip => match gzip(&json) {
            Ok(compressed) => Shaped::Gzip(Bytes::from(compressed)),
            Err(_) => Shaped::Full(json),
        },
        Scenario::Idle => Shaped::Script(vec![Step::Stall]),
        Scenario::Cut => {
            let half = json.slice(..json.len() / 2);
            Shaped::Script(vec![
                Step::Send(half),
                Step::Abort("llmtap mock: scripted cut of the response body"),
            ])
        }
        Scenario::Garbage => Shaped::Full(Bytes::from_static(GARBAGE[1])),
        _ => Shaped::Full(json),
    }
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // flate2 writes mtime 0 in the header, so the compressed bytes repeat too.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

/// Records how a scripted body ended. It lives inside the body stream, so hyper dropping the
/// body (client gone) drops the guard; `finished` tells that apart from a normal end.
pub(crate) struct StreamGuard {
    mock: MockUpstream,
    seq: u64,
    finished: bool,
}

impl StreamGuard {
    pub(crate) fn new(mock: MockUpstream, seq: u64) -> Self {
        Self {
            mock,
            seq,
            finished: false,
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let request_seq = self.seq;
        self.mock.push_event(if self.finished {
            MockEvent::StreamCompleted { request_seq }
        } else {
            MockEvent::StreamCancelled { request_seq }
        });
    }
}

/// Resolves when `serve`'s shutdown fires; never for a router whose sender is gone.
pub(crate) async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct Running {
    steps: std::vec::IntoIter<Step>,
    guard: StreamGuard,
    shutdown: watch::Receiver<bool>,
}

/// Play a script as a body stream. Ends with an error (aborting the connection) on `Abort`
/// and when the server shuts down during a pause or stall.
pub(crate) fn run(
    steps: Vec<Step>,
    guard: StreamGuard,
    shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let running = Running {
        steps: steps.into_iter(),
        guard,
        shutdown,
    };
    // The state is `None` after an error so the stream ends even if polled again; dropping
    // `Running` (at the end, or with the stream) is what records the event.
    futures_util::stream::unfold(Some(running), |state| async move {
        let mut running = state?;
        loop {
            match running.steps.next() {
                None => {
                    running.guard.finished = true;
                    return None;
                }
                Some(Step::Send(bytes)) => return Some((Ok(bytes), Some(running))),
                Some(Step::Sleep(delay)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown_signalled(&mut running.shutdown) => return Some((shutdown_error(), None)),
                    }
                }
                Some(Step::Stall) => {
                    shutdown_signalled(&mut running.shutdown).await;
                    return Some((shutdown_error(), None));
                }
                Some(Step::Abort(message)) => {
                    // hyper buffers frames polled back to back and only flushes when the body
                    // is pending; without this the client would get no bytes at all, not a
                    // truncated body.
                    tokio::task::yield_now().await;
                    running.guard.finished = true;
                    return Some((Err(io::Error::other(message)), None));
                }
            }
        }
    })
}

fn shutdown_error() -> io::Result<Bytes> {
    Err(io::Error::other("llmtap mock: server shutting down"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn events(n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(format!("data: {i}\n\n")))
            .collect()
    }

    fn sends(steps: &[Step]) -> Vec<&[u8]> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Send(b) => Some(&b[..]),
                _ => None,
            })
            .collect()
    }

    fn shaping(scenario: Scenario) -> Shaping {
        Shaping {
            scenario,
            chunk_delay: None,
        }
    }

    #[test]
    fn default_ends_with_done_and_slow_pauses() {
        let steps = shape_sse(events(3), Shaping::plain(), true);
        assert_eq!(sends(&steps).last(), Some(&DONE));
        assert_eq!(steps.len(), 4);
        let steps = shape_sse(events(3), shaping(Scenario::Slow), true);
        assert_eq!(steps.len(), 7);
        assert_eq!(steps[1], Step::Sleep(SLOW_CHUNK_DELAY));
    }

    #[test]
    fn failure_scenarios_never_send_done() {
        for scenario in [
            Scenario::Idle,
            Scenario::Cut,
            Scenario::MidstreamError,
            Scenario::Garbage,
        ] {
            let steps = shape_sse(events(10), shaping(scenario), true);
            assert!(!sends(&steps).contains(&DONE), "{scenario:?}");
        }
        let cut = shape_sse(events(10), shaping(Scenario::Cut), true);
        assert!(matches!(cut.last(), Some(Step::Abort(_))));
        let idle = shape_sse(events(10), shaping(Scenario::Idle), true);
        assert_eq!(idle.len(), 2);
    }

    #[test]
    fn gzip_round_trips() {
        let Shaped::Gzip(bytes) = shape_full(Bytes::from_static(b"{}"), Scenario::Gzip) else {
            panic!("gzip scenario compresses");
        };
        let mut out = String::new();
        let decoded =
            io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out);
        assert!(decoded.is_ok());
        assert_eq!(out, "{}");
    }

    #[tokio::test]
    async fn guard_records_completion_and_cancellation() {
        let mock = MockUpstream::new(super::super::MockConfig::default());
        let (_tx, rx) = watch::channel(false);
        let steps = vec![Step::Send(Bytes::from_static(b"a"))];
        let body = run(steps, StreamGuard::new(mock.clone(), 1), rx.clone());
        let items: Vec<_> = body.collect().await;
        assert_eq!(items.len(), 1);

        let steps = vec![Step::Send(Bytes::from_static(b"a")), Step::Stall];
        let mut body = Box::pin(run(steps, StreamGuard::new(mock.clone(), 2), rx));
        assert!(body.next().await.is_some());
        drop(body);
        assert_eq!(
            mock.events(),
            vec![
                MockEvent::StreamCompleted { request_seq: 1 },
                MockEvent::StreamCancelled { request_seq: 2 }
            ]
        );
    }

    #[tokio::test]
    async fn shutdown_ends_a_stall_with_an_error() {
        let mock = MockUpstream::new(super::super::MockConfig::default());
        let (tx, rx) = watch::channel(false);
        let mut body = Box::pin(run(vec![Step::Stall], StreamGuard::new(mock, 1), rx));
        let _ = tx.send(true);
        let item = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
        assert!(matches!(item, Ok(Some(Err(_)))));
    }
}
