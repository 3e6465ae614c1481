//! Holds `--streams` streamed chat completions open at once through a proxy on 127.0.0.1,
//! checks each one ends with `data: [DONE]` and the chunked terminator, and samples the
//! proxy's VmRSS (`--pid`) every 200 ms. Prints one JSON line, the same shape as
//! `bench/bench.py streams-client` (which it replaces in `bench/run`: that asyncio client
//! could not open 9,950 streams of 100 chunks before the first ones ended).
//!
//! One thread, one task per stream, a 4 KB read buffer per stream: the client's own cost
//! stays small next to the proxy's on a 2-core machine.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

struct Args {
    url: String,
    streams: usize,
    chunks: u32,
    delay_ms: u64,
    connect_concurrency: usize,
    pid: Option<u32>,
    label: String,
    body: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: llmtap-streams-client --url http://127.0.0.1:PORT/v1/chat/completions --body FILE \
         [--streams N] [--chunks N] [--delay-ms MS] [--connect-concurrency N] [--pid PID] [--label L]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        url: String::new(),
        streams: 10_000,
        chunks: 20,
        delay_ms: 1500,
        connect_concurrency: 256,
        pid: None,
        label: "target".into(),
        body: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--url" => a.url = v,
            "--streams" => a.streams = num(&v) as usize,
            "--chunks" => a.chunks = num(&v) as u32,
            "--delay-ms" => a.delay_ms = num(&v),
            "--connect-concurrency" => a.connect_concurrency = num(&v).max(1) as usize,
            "--pid" => a.pid = Some(num(&v) as u32),
            "--label" => a.label = v,
            "--body" => a.body = v,
            _ => usage(),
        }
    }
    if a.url.is_empty() || a.body.is_empty() {
        usage()
    }
    a
}

/// `(host:port, path)` of an `http://127.0.0.1:PORT/path` URL; other hosts are refused
/// (the bench only talks to loopback).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| usage());
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    if host != "127.0.0.1" && host != "localhost" {
        eprintln!("bench clients only talk to 127.0.0.1");
        std::process::exit(2);
    }
    (authority.to_string(), if path.is_empty() { "/".into() } else { path.into() })
}

fn vm_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[derive(Default)]
struct State {
    open: AtomicUsize,
    peak: AtomicUsize,
    rss_peak_kb: AtomicU64,
    all_open_at: Mutex<Option<f64>>,
    durations: Mutex<Vec<f64>>,
    failures: Mutex<std::collections::BTreeMap<String, usize>>,
}

impl State {
    fn fail(&self, kind: &str) {
        *self.failures.lock().unwrap().entry(kind.into()).or_default() += 1;
    }
}

/// One stream: connect, send, read the head, then read to EOF (the request says
/// `connection: close`) keeping the last 64 bytes to check the ending.
async fn one(
    addr: &str,
    request: &[u8],
    connect: &Semaphore,
    state: &State,
    total: usize,
    t0: Instant,
    deadline: Duration,
) -> Result<(), &'static str> {
    let mut tcp = {
        let _permit = connect.acquire().await.map_err(|_| "closed")?;
        let mut tcp = tokio::time::timeout(Duration::from_secs(60), TcpStream::connect(addr))
            .await
            .map_err(|_| "connect-timeout")?
            .map_err(|_| "connect")?;
        tcp.write_all(request).await.map_err(|_| "write")?;
        tcp
    };
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::with_capacity(128);
    let end = Instant::now() + deadline;
    let mut began = None;
    for _ in 0..10_000_000u64 {
        let left = end.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, tcp.read(&mut buf))
            .await
            .map_err(|_| "timeout")?
            .map_err(|_| "read")?;
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if began.is_none() {
            head.extend_from_slice(data);
            let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                if head.len() > 65536 {
                    return Err("head-too-large");
                }
                continue;
            };
            if !head.starts_with(b"HTTP/1.1 200") {
                return Err("status");
            }
            began = Some(Instant::now());
            let open = state.open.fetch_add(1, Ordering::Relaxed) + 1;
            if state.peak.fetch_max(open, Ordering::Relaxed) < open && open == total {
                *state.all_open_at.lock().unwrap() = Some(t0.elapsed().as_secs_f64());
            }
            tail.extend_from_slice(&head[i + 4..]);
            head = Vec::new();
            data = &[];
        }
        tail.extend_from_slice(data);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    let Some(began) = began else {
        return Err("no-head");
    };
    state.open.fetch_sub(1, Ordering::Relaxed);
    let ends_well = tail.windows(12).any(|w| w == b"data: [DONE]") && tail.ends_with(b"0\r\n\r\n");
    if !ends_well {
        return Err("truncated");
    }
    state.durations.lock().unwrap().push(began.elapsed().as_secs_f64());
    Ok(())
}

fn main() {
    let args = parse_args();
    let body = std::fs::read(&args.body).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args.body);
        std::process::exit(2)
    });
    let (addr, path) = split_url(&args.url);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer sk-bench\r\ncontent-length: {}\r\nx-mock-chunks: {}\r\n\
         x-mock-chunk-delay-ms: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        args.chunks,
        args.delay_ms
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let stream_secs = (args.chunks as f64 + 1.0) * args.delay_ms as f64 / 1000.0;
    let deadline = Duration::from_secs_f64(stream_secs + 120.0);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let state = Arc::new(State::default());
    let t0 = Instant::now();
    rt.block_on(async {
        let request: Arc<[u8]> = request.into();
        let addr: Arc<str> = addr.into();
        let connect = Arc::new(Semaphore::new(args.connect_concurrency));
        let sampler = args.pid.map(|pid| {
            let state = state.clone();
            tokio::spawn(async move {
                for _ in 0..100_000_000u64 {
                    if let Some(rss) = vm_kb(pid, "VmRSS") {
                        state.rss_peak_kb.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.streams {
            let (request, addr, connect, state) =
                (request.clone(), addr.clone(), connect.clone(), state.clone());
            let total = args.streams;
            tasks.spawn(async move {
                if let Err(kind) = one(&addr, &request, &connect, &state, total, t0, deadline).await {
                    state.fail(kind);
                }
            });
        }
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline + Duration::from_secs(180), all).await.is_err() {
            state.fail("overall-timeout");
        }
        if let Some(s) = sampler {
            s.abort();
        }
    });
    let ok = state.durations.lock().unwrap().len();
    let mut d = state.durations.lock().unwrap().clone();
    d.sort_by(f64::total_cmp);
    let median = d.get(d.len() / 2).copied().unwrap_or(stream_secs);
    let out = serde_json::json!({
        "type": "streams", "label": args.label, "chunks": args.chunks, "streams": args.streams,
        "completed": ok, "failed": args.streams - ok,
        "failures": *state.failures.lock().unwrap(),
        "peak_open": state.peak.load(Ordering::Relaxed),
        "all_open_after_s": *state.all_open_at.lock().unwrap(),
        "stream_seconds": (median * 10.0).round() / 10.0,
        "wall_s": (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "rss_peak_kb": state.rss_peak_kb.load(Ordering::Relaxed),
        "vmhwm_kb": args.pid.and_then(|p| vm_kb(p, "VmHWM")),
        "client": "rust",
    });
    println!("{out}");
}
