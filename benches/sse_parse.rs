//! Per-chunk cost of what the relay does to every streamed chunk, on an OpenAI-shaped stream
//! built from our fixture `tests/fixtures/openai-chat-text.sse` (its content events repeated
//! to 300-odd `chat.completion.chunk` events with `"usage":null`, as a real gpt-4.1-nano
//! recording has, then the finish chunk, the usage chunk and `[DONE]`), fed one event per read
//! as the network usually delivers them.
//!
//! Every benchmark reports time **per chunk** (per request for `request_parse`): an iteration
//! runs whole streams through fresh state and the elapsed time is divided by the number of
//! events, so per-stream set-up is amortised the way a real stream amortises it.
//!
//! ```sh
//! cargo bench --bench sse_parse -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use llmtap::dialect::{Dialect, OpenAiChat, StreamWatcher};
use llmtap::stream::sse::SseParser;
use llmtap::stream::strip::EventStripper;
use llmtap::vocab::operation::Operation;

const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai-chat-text.sse"
));

/// Content events in the benchmarked stream: the length of the recording this bench was
/// first measured on, so figures stay comparable.
const CONTENT_EVENTS: usize = 300;

/// The fixture with its content events repeated to `CONTENT_EVENTS`: first event (role),
/// content events cycled, then the fixture's last three (finish, usage, `[DONE]`).
fn long_stream() -> Vec<u8> {
    let ev = events(FIXTURE);
    assert!(ev.len() >= 6, "fixture has {} events", ev.len());
    let (head, rest) = ev.split_at(1);
    let (content, tail) = rest.split_at(rest.len() - 3);
    let mut out = head.concat();
    for e in content.iter().cycle().take(CONTENT_EVENTS) {
        out.extend_from_slice(e);
    }
    out.extend(tail.concat());
    out
}

/// A chat request as SDKs send it: system + user message, a few sampling parameters.
const REQUEST: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},{"role":"user","content":"Invent a new holiday and describe its traditions in three short paragraphs, including the date, the purpose and what people eat."}],"temperature":0.7,"max_tokens":512,"stream":true}"#;

/// The recording cut into its events (each with its blank line), one slice per read.
fn events(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.windows(2).position(|w| w == b"\n\n") {
        out.push(&rest[..at + 2]);
        rest = &rest[at + 2..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

mod support;
use support::per_item as per_chunk;

/// The usage stripper the relay puts on a stream llmtap injected `include_usage` into.
fn stripper() -> EventStripper {
    let injection = OpenAiChat.usage_injection(Operation::Chat);
    EventStripper::new(injection.expect("chat injects usage").strip_rule())
}

/// A watcher as the record gets it: a new stream of `count_only` false.
fn watcher() -> Box<dyn StreamWatcher> {
    OpenAiChat.stream_watcher(false)
}

fn benches(c: &mut Criterion) {
    let recording = long_stream();
    let chunks = events(&recording);
    let n = chunks.len();
    assert!(n > 100, "recording has {n} events");

    let mut group = c.benchmark_group("per_chunk");
    group.bench_function("sse_parse", |b| {
        b.iter_custom(|iters| {
            per_chunk(iters, n, || {
                let mut parser = SseParser::new();
                for chunk in &chunks {
                    parser.feed(black_box(chunk), |event| {
                        black_box(event.data);
                    });
                }
                black_box(parser.position());
            })
        })
    });
    group.bench_function("sse_parse_and_record_update", |b| {
        b.iter_custom(|iters| {
            per_chunk(iters, n, || {
                let mut acc = watcher();
                for chunk in &chunks {
                    black_box(acc.feed(black_box(chunk)));
                }
                black_box(acc.finish());
            })
        })
    });
    // What the relay does on a stream where llmtap injected `include_usage`: the record update
    // plus the stripper that removes `"usage":null` and the usage chunk for the client.
    group.bench_function("record_update_and_usage_strip", |b| {
        b.iter_custom(|iters| {
            per_chunk(iters, n, || {
                let mut acc = watcher();
                let mut stripper = stripper();
                for chunk in &chunks {
                    black_box(acc.feed(black_box(chunk)));
                    black_box(stripper.process(chunk));
                }
                black_box(stripper.finish());
                black_box(acc.finish());
            })
        })
    });
    // The relay's path since the stripper's framing feeds the record: one framing per chunk.
    group.bench_function("record_update_and_usage_strip_one_framing", |b| {
        b.iter_custom(|iters| {
            per_chunk(iters, n, || {
                let mut acc = watcher();
                let mut stripper = stripper();
                for chunk in &chunks {
                    black_box(stripper.process_with(black_box(chunk), |event, data| {
                        black_box(acc.feed_event(event, data));
                    }));
                }
                black_box(stripper.finish());
                black_box(acc.finish());
            })
        })
    });
    group.bench_function("usage_strip", |b| {
        b.iter_custom(|iters| {
            per_chunk(iters, n, || {
                let mut stripper = stripper();
                for chunk in &chunks {
                    black_box(stripper.process(black_box(chunk)));
                }
                black_box(stripper.finish());
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("per_request");
    let hasher = llmtap::vocab::prompt::PromptHasher::from_secret(b"bench");
    group.bench_function("request_parse", |b| {
        b.iter(|| {
            black_box(llmtap::dialect::parse_request(
                &OpenAiChat,
                black_box(REQUEST),
                Operation::Chat,
                false,
                &hasher,
            ))
        })
    });
    group.finish();
}

criterion_group!(sse_parse, benches);
criterion_main!(sse_parse);
