//! Per-event cost of watching an Amazon Bedrock stream (AWS event-stream frames): the framing
//! alone (prelude and message CRC32s, headers), and the framing plus the Bedrock dialect's
//! reading of each event into the record. The stream is ConverseStream-shaped as the real
//! recordings are (`messageStart`, 300 `contentBlockDelta` text events of a few words with a
//! `p` padding field, `contentBlockStop`, `messageStop`, `metadata`), built with llmtap's own
//! encoder and fed one frame per read, as the network usually delivers them.
//!
//! Reports time **per event**: an iteration runs whole streams through fresh state.
//!
//! ```sh
//! cargo bench --bench eventstream -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use llmtap::dialect::{Dialect, BEDROCK_CONVERSE};
use llmtap::stream::eventstream::{encode_event, EventStreamDecoder};

const DELTAS: usize = 300;

/// The stream, one frame per element.
fn frames() -> Vec<Vec<u8>> {
    let words = [
        " The",
        " capital",
        " of France",
        " is Paris,",
        " a city",
        " of light.",
    ];
    let pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = vec![encode_event(
        "messageStart",
        br#"{"p":"abcdefghijklmnopqr","role":"assistant"}"#,
    )];
    for i in 0..DELTAS {
        let json = format!(
            r#"{{"contentBlockIndex":0,"delta":{{"text":"{}"}},"p":"{}"}}"#,
            words[i % words.len()],
            &pad[..20 + i % 40]
        );
        out.push(encode_event("contentBlockDelta", json.as_bytes()));
    }
    out.push(encode_event(
        "contentBlockStop",
        br#"{"contentBlockIndex":0,"p":"abcdefghijklmnop"}"#,
    ));
    out.push(encode_event(
        "messageStop",
        br#"{"p":"abcdefghijklmno","stopReason":"end_turn"}"#,
    ));
    out.push(encode_event(
        "metadata",
        br#"{"metrics":{"latencyMs":522},"p":"abcdefgh","usage":{"inputTokens":13,"outputTokens":82,"serverToolUsage":{},"totalTokens":95}}"#,
    ));
    out
}

mod support;
use support::per_item as per_event;

fn benches(c: &mut Criterion) {
    let frames = frames();
    let n = frames.len();
    let body: Vec<u8> = frames.concat();
    let mut group = c.benchmark_group("per_event");
    group.bench_function("eventstream_framing", |b| {
        b.iter_custom(|iters| {
            per_event(iters, n, || {
                let mut d = EventStreamDecoder::new();
                for f in &frames {
                    d.feed(black_box(f), |frame| {
                        black_box(frame.str_header(":event-type"));
                        black_box(frame.payload);
                    });
                }
                black_box(d.failed());
            })
        })
    });
    // A read boundary inside every frame: the split frame is buffered and completed.
    group.bench_function("eventstream_framing_split_reads", |b| {
        b.iter_custom(|iters| {
            per_event(iters, n, || {
                let mut d = EventStreamDecoder::new();
                for piece in body.chunks(157) {
                    d.feed(black_box(piece), |frame| {
                        black_box(frame.payload);
                    });
                }
                black_box(d.failed());
            })
        })
    });
    group.bench_function("eventstream_framing_and_record_update", |b| {
        b.iter_custom(|iters| {
            per_event(iters, n, || {
                let mut w = BEDROCK_CONVERSE.stream_watcher(false);
                for f in &frames {
                    black_box(w.feed(black_box(f)));
                }
                black_box(w.finish());
            })
        })
    });
    group.finish();
}

criterion_group!(eventstream, benches);
criterion_main!(eventstream);
