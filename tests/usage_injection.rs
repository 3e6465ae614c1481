//! Usage injection is never visible and never harmful: whatever an upstream does with the
//! injected `stream_options.include_usage`, the client receives what it would receive calling
//! that upstream with its own body, and the span's usage is the upstream's (or a flagged
//! estimate when there is none).
//!
//! The upstream here is scripted by a `Behaviour` carried in a request header, so one server
//! plays every member of the kind: a separate usage chunk or none, a running usage on every
//! chunk, `"usage":null` members, a usage the server always puts on its finish chunk, CRLF
//! framing, keep-alive comments, gzip (when asked, or always), arbitrary write splits, and a
//! 400/422 refusal of the parameter. The property test generates behaviours from a seeded
//! generator and compares, for each, the direct answer with the one through the real binary.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How the scripted upstream answers a streamed chat request, as a function of whether the
/// request carried `stream_options.include_usage` (the flag).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Behaviour {
    /// Content chunks.
    chunks: usize,
    prompt_tokens: u64,
    /// Flag set: a final `choices: []` usage chunk.
    usage_chunk: bool,
    /// Flag set: a running usage object on every chunk with choices.
    running: bool,
    /// Flag set and not running: `"usage":null` on every chunk with choices.
    null_usage: bool,
    /// Whatever the flag: the finish chunk carries the usage (the server's own habit).
    finish_usage_always: bool,
    crlf: bool,
    keepalive: bool,
    /// 0: never compressed; 1: gzip when the request accepts it; 2: gzip always.
    compress: u8,
    /// Bytes per write.
    split: usize,
    /// When the request carries `stream_options`: 0 accepts it, 1 answers Azure's 400, 2
    /// answers FastAPI's 422.
    refuse: u8,
    done: bool,
}

impl Behaviour {
    fn completion_tokens(&self) -> u64 {
        self.chunks as u64
    }

    /// Whether the span should carry the upstream's usage for a request without
    /// `stream_options` from the client.
    fn upstream_usage_reaches_llmtap(&self) -> bool {
        self.finish_usage_always || (self.refuse == 0 && (self.usage_chunk || self.running))
    }
}

/// What the scripted upstream saw: requests per case, and how many carried `stream_options`.
#[derive(Default)]
struct Seen {
    requests: HashMap<String, (u32, u32)>,
}

type SeenRef = Arc<Mutex<Seen>>;

async fn scripted(State(seen): State<SeenRef>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let behaviour: Behaviour = parts
        .headers
        .get("x-behaviour")
        .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
        .expect("x-behaviour header");
    let case = parts
        .headers
        .get("x-case")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let accepts_gzip = parts
        .headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let req: Value = serde_json::from_slice(&body).unwrap();
    let has_options = req.get("stream_options").is_some();
    let flag = req["stream_options"]["include_usage"] == true;
    {
        let mut s = seen.lock().unwrap();
        let e = s.requests.entry(case).or_default();
        e.0 += 1;
        e.1 += u32::from(has_options);
    }
    if has_options && behaviour.refuse == 1 {
        return json_response(
            400,
            r#"{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":null,"code":null}}"#,
        );
    }
    if has_options && behaviour.refuse == 2 {
        return json_response(
            422,
            r#"{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{"include_usage":true}}]}"#,
        );
    }
    let stream = sse_stream(&behaviour, flag);
    let gzip = match behaviour.compress {
        1 => accepts_gzip,
        2 => true,
        _ => false,
    };
    let bytes = if gzip { gzip_bytes(&stream) } else { stream };
    let pieces: Vec<Bytes> = bytes
        .chunks(behaviour.split.max(1))
        .map(Bytes::copy_from_slice)
        .collect();
    let body = futures_util::stream::iter(pieces).then(|p| async move {
        tokio::task::yield_now().await;
        Ok::<_, std::io::Error>(p)
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert("content-type", "text/event-stream".parse().unwrap());
    if gzip {
        h.insert("content-encoding", "gzip".parse().unwrap());
    }
    resp
}

fn json_response(status: u16, body: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// The event stream for `b`, with or without the flag.
fn sse_stream(b: &Behaviour, flag: bool) -> Vec<u8> {
    let nl = if b.crlf { "\r\n" } else { "\n" };
    let usage = |completion: u64| {
        json!({"prompt_tokens": b.prompt_tokens, "completion_tokens": completion,
               "total_tokens": b.prompt_tokens + completion})
    };
    let mut events: Vec<Value> = Vec::new();
    let base = |choices: Value| {
        json!({"id": "chatcmpl-prop", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4o-mini-2024-07-18", "choices": choices})
    };
    events.push(base(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
    ));
    for i in 0..b.chunks {
        events.push(base(
            json!([{"index": 0, "delta": {"content": format!("w{i} ")}, "finish_reason": null}]),
        ));
    }
    events.push(base(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ));
    let last = events.len() - 1;
    for (i, e) in events.iter_mut().enumerate() {
        let done_so_far = (i as u64).min(b.completion_tokens());
        if flag && b.running {
            e["usage"] = usage(done_so_far);
        } else if i == last && b.finish_usage_always {
            e["usage"] = usage(b.completion_tokens());
        } else if flag && b.null_usage {
            e["usage"] = Value::Null;
        }
    }
    if flag && b.usage_chunk {
        let mut u = base(json!([]));
        u["usage"] = usage(b.completion_tokens());
        events.push(u);
    }
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        if b.keepalive && i == 1 {
            out.push_str(&format!(": keep-alive{nl}{nl}"));
        }
        out.push_str(&format!("data: {e}{nl}{nl}"));
    }
    if b.done {
        out.push_str(&format!("data: [DONE]{nl}{nl}"));
    }
    out.into_bytes()
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut dec = flate2::write::GzDecoder::new(&mut out);
    dec.write_all(data).unwrap();
    dec.finish().unwrap();
    out
}

async fn start_scripted() -> (Served, SeenRef) {
    let seen: SeenRef = Arc::default();
    let app = axum::Router::new()
        .fallback(scripted)
        .with_state(seen.clone());
    (serve_router(app).await, seen)
}

/// The real binary in front of `upstream`, exporting spans to `rx`; stderr to `log`.
struct Llmtap {
    _proc: bin::Proc,
    base: String,
}

async fn start_llmtap(
    upstream: &str,
    provider: &str,
    rx: &OtlpReceiver,
    dir: &Path,
    log: &Path,
) -> Llmtap {
    let config = dir.join("llmtap.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: scripted\n    base_url: {upstream}\n    provider: {provider}\ntelemetry:\n  header_attributes: [x-case]\n"
        ),
    )
    .unwrap();
    let (proc, base) = bin::start(
        &["--config", config.to_str().unwrap()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.http_endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
        log,
    )
    .await;
    Llmtap { _proc: proc, base }
}

/// Status, content type and body after content decoding.
async fn call(
    url: &str,
    body: &Value,
    behaviour: &Behaviour,
    case: &str,
    accept_gzip: bool,
) -> (u16, String, Vec<u8>, bool) {
    let mut r = client()
        .post(url)
        .header("x-behaviour", serde_json::to_string(behaviour).unwrap())
        .header("x-case", case)
        .json(body);
    if accept_gzip {
        r = r.header("accept-encoding", "gzip");
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let gz = resp
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let decoded = if gz { gunzip(&bytes) } else { bytes };
    (status, ct, decoded, gz)
}

/// A small deterministic generator (an LCG), so a failing case is reproducible by its seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 1
    }

    fn behaviour(&mut self) -> Behaviour {
        let running = self.below(4) == 0;
        Behaviour {
            chunks: 1 + self.below(6) as usize,
            prompt_tokens: 3 + self.below(40),
            usage_chunk: self.below(4) != 0,
            running,
            null_usage: self.coin(),
            // A server does one or the other: a running usage, or its own finish-chunk usage.
            finish_usage_always: !running && self.below(5) == 0,
            crlf: self.coin(),
            keepalive: self.coin(),
            compress: self.below(3) as u8,
            split: [1, 2, 3, 7, 13, 60, 4096][self.below(7) as usize],
            refuse: [0, 0, 0, 1, 2][self.below(5) as usize],
            done: self.below(6) != 0,
        }
    }
}

#[tokio::test]
async fn whatever_the_upstream_does_with_the_flag_the_client_sees_the_direct_answer() {
    let dir = TempDir::new("usage-prop");
    let log = dir.path().join("stderr.log");
    let (scripted, seen) = start_scripted().await;
    let upstream = &scripted.base;
    let rx = OtlpReceiver::start().await;
    let proxy = start_llmtap(&format!("{upstream}/v1"), "openai", &rx, dir.path(), &log).await;
    const CASES: usize = 150;
    let mut g = Gen(0x11a7_7a90);
    let mut expected = HashMap::new();
    for n in 0..CASES {
        let b = g.behaviour();
        let accept_gzip = g.coin();
        let case = format!("case-{n}");
        // A model per case: refusals are remembered per model, and cases must not share one.
        let body = json!({"model": format!("m-{n}"), "stream": true,
            "messages": [{"role": "user", "content": "How many containers are up?"}]});
        let direct = call(
            &format!("{upstream}/v1/chat/completions"),
            &body,
            &b,
            &case,
            accept_gzip,
        )
        .await;
        let via = call(
            &format!("{}/v1/chat/completions", proxy.base),
            &body,
            &b,
            &case,
            accept_gzip,
        )
        .await;
        let what = format!("{case} {b:?} accept_gzip={accept_gzip}");
        assert_eq!(direct.0, 200, "{what}");
        assert_eq!(via.0, direct.0, "{what}");
        assert_eq!(via.1, direct.1, "{what}");
        assert!(
            via.2 == direct.2,
            "{what}\ndirect:\n{}\nvia llmtap:\n{}",
            String::from_utf8_lossy(&direct.2),
            String::from_utf8_lossy(&via.2)
        );
        expected.insert(case, b);
    }
    // Refusals: each refusing case was retried exactly once (2 upstream requests through
    // llmtap plus the direct one), and the retry carried no stream_options.
    {
        let s = seen.lock().unwrap();
        for (case, b) in &expected {
            let (requests, with_options) = s.requests[case];
            if b.refuse != 0 {
                assert_eq!((requests, with_options), (3, 1), "{case} {b:?}");
            } else {
                assert_eq!((requests, with_options), (2, 1), "{case} {b:?}");
            }
        }
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= CASES, Duration::from_secs(20))
        .await;
    assert_eq!(spans.len(), CASES, "one span per call, retried or not");
    for span in &spans {
        let case = span
            .str_attr("http.request.header.x-case")
            .expect("case attribute");
        let b = &expected[case];
        let what = format!(
            "{case} {b:?}\n{}",
            serde_json::to_string_pretty(&span.to_json()).unwrap()
        );
        assert_eq!(span.status_code, "unset", "{what}");
        assert_eq!(
            span.bool_attr("llmtap.usage.injection_refused")
                .unwrap_or(false),
            b.refuse != 0,
            "{what}"
        );
        let estimated = span.bool_attr("llmtap.usage.estimated").unwrap_or(false);
        if b.upstream_usage_reaches_llmtap() {
            assert!(!estimated, "{what}");
            assert_eq!(
                span.int_attr("gen_ai.usage.input_tokens"),
                Some(b.prompt_tokens as i64),
                "{what}"
            );
            assert_eq!(
                span.int_attr("gen_ai.usage.output_tokens"),
                Some(b.completion_tokens() as i64),
                "{what}"
            );
        } else {
            assert!(
                estimated,
                "no usage from the upstream: a flagged estimate. {what}"
            );
        }
    }
    drop(proxy);
}

/// Input 1 of the issue, through the real binary: an Azure deployment on an old api-version
/// refuses `stream_options`; the client's call works as it does direct.
#[tokio::test]
async fn azure_refusing_stream_options_streams_as_direct_and_is_remembered() {
    let dir = TempDir::new("usage-azure");
    let log = dir.path().join("stderr.log");
    let (scripted, seen) = start_scripted().await;
    let upstream = &scripted.base;
    let rx = OtlpReceiver::start().await;
    let proxy = start_llmtap(upstream, "azure", &rx, dir.path(), &log).await;
    let b = Behaviour {
        chunks: 2,
        prompt_tokens: 17,
        usage_chunk: true,
        running: false,
        null_usage: true,
        finish_usage_always: false,
        crlf: false,
        keepalive: false,
        compress: 0,
        split: 4096,
        refuse: 1,
        done: true,
    };
    let path = "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2023-05-15";
    let body = json!({"messages":[{"role":"user","content":"Add one and one; reply with a single word."}],"temperature":0,"stream":true});
    let direct = call(&format!("{upstream}{path}"), &body, &b, "direct", false).await;
    for attempt in ["first", "second"] {
        let via = call(&format!("{}{path}", proxy.base), &body, &b, attempt, false).await;
        assert_eq!(via.0, 200, "{attempt}: {}", String::from_utf8_lossy(&via.2));
        assert_eq!(via.2, direct.2, "{attempt}");
    }
    {
        let s = seen.lock().unwrap();
        assert_eq!(
            s.requests["first"],
            (2, 1),
            "refused, then the client's own body"
        );
        assert_eq!(
            s.requests["second"],
            (1, 0),
            "remembered: not injected again"
        );
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
        .await;
    assert_eq!(spans.len(), 2);
    for span in &spans {
        let dump = serde_json::to_string_pretty(&span.to_json()).unwrap();
        assert_eq!(span.status_code, "unset", "{dump}");
        assert_eq!(span.name, "chat gpt-35-turbo");
        assert_eq!(
            span.bool_attr("llmtap.usage.injection_refused"),
            Some(true),
            "{dump}"
        );
        assert_eq!(
            span.bool_attr("llmtap.usage.estimated"),
            Some(true),
            "{dump}"
        );
        assert_eq!(span.int_attr("http.response.status_code"), Some(200));
        assert!(span.attr("error.type").is_none(), "{dump}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let infos: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("upstream refused the injected stream_options"))
        .collect();
    assert_eq!(infos.len(), 1, "logged once: {text}");
    assert!(infos[0].contains("INFO") && infos[0].contains("api-version=2023-05-15"));
}

/// Input 2 of the issue, through the real binary: the client accepts gzip and the upstream
/// compresses its stream (whether asked or not); after decoding, the client reads exactly the
/// direct stream, with none of the injection's usage.
#[tokio::test]
async fn a_compressed_stream_hides_the_injection_too() {
    let dir = TempDir::new("usage-gzip");
    let log = dir.path().join("stderr.log");
    let (scripted, _seen) = start_scripted().await;
    let upstream = &scripted.base;
    let rx = OtlpReceiver::start().await;
    let proxy = start_llmtap(&format!("{upstream}/v1"), "openai", &rx, dir.path(), &log).await;
    let body = json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"How many containers are up?"}],"stream":true});
    for (i, compress) in [1u8, 2].into_iter().enumerate() {
        let b = Behaviour {
            chunks: 5,
            prompt_tokens: 12,
            usage_chunk: true,
            running: false,
            null_usage: true,
            finish_usage_always: false,
            crlf: false,
            keepalive: false,
            compress,
            split: 60,
            refuse: 0,
            done: true,
        };
        let case = format!("gzip-{i}");
        let direct = call(
            &format!("{upstream}/v1/chat/completions"),
            &body,
            &b,
            &case,
            true,
        )
        .await;
        assert!(direct.3, "the direct answer is compressed");
        let via = call(
            &format!("{}/v1/chat/completions", proxy.base),
            &body,
            &b,
            &case,
            true,
        )
        .await;
        assert_eq!(via.0, 200);
        assert_eq!(
            String::from_utf8_lossy(&via.2),
            String::from_utf8_lossy(&direct.2),
            "compress={compress}"
        );
        assert!(!String::from_utf8_lossy(&via.2).contains("usage"));
    }
    let spans = rx
        .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
        .await;
    for span in &spans {
        assert_eq!(span.int_attr("gen_ai.usage.input_tokens"), Some(12));
        assert_eq!(span.int_attr("gen_ai.usage.output_tokens"), Some(5));
        assert_eq!(span.bool_attr("llmtap.usage.injected"), Some(true));
        assert!(span.bool_attr("llmtap.usage.estimated").is_none());
    }
}

/// A client that sent its own `stream_options` is never retried: the upstream's refusal is
/// the answer it would get direct.
#[tokio::test]
async fn a_client_that_sent_stream_options_gets_the_refusal_as_direct() {
    let dir = TempDir::new("usage-own");
    let log = dir.path().join("stderr.log");
    let (scripted, seen) = start_scripted().await;
    let upstream = &scripted.base;
    let rx = OtlpReceiver::start().await;
    let proxy = start_llmtap(&format!("{upstream}/v1"), "openai", &rx, dir.path(), &log).await;
    let b = Behaviour {
        chunks: 2,
        prompt_tokens: 5,
        usage_chunk: true,
        running: false,
        null_usage: false,
        finish_usage_always: false,
        crlf: false,
        keepalive: false,
        compress: 0,
        split: 4096,
        refuse: 1,
        done: true,
    };
    let body =
        json!({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]});
    let direct = call(
        &format!("{upstream}/v1/chat/completions"),
        &body,
        &b,
        "d",
        false,
    )
    .await;
    let via = call(
        &format!("{}/v1/chat/completions", proxy.base),
        &body,
        &b,
        "own",
        false,
    )
    .await;
    assert_eq!((via.0, &via.2), (400, &direct.2));
    assert_eq!(seen.lock().unwrap().requests["own"], (1, 1), "not retried");
}
