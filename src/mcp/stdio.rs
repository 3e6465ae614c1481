//! `llmtap mcp-stdio -- COMMAND ARGS...`: a local (stdio) MCP server run as a child, its
//! stdin and stdout relayed byte for byte (each read written on at once), while a copy of each
//! newline-delimited JSON-RPC message is read for the same spans and metrics as over HTTP
//! (`network.transport=pipe`). stderr is the child's own. llmtap exits with the child's status.
//!
//! Nothing is rewritten on a pipe, so no trace context goes into `params._meta` here; a
//! client's own `_meta` context is continued. A child that exits mid-call ends the calls still
//! waiting with `error.type=stream_truncated`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use opentelemetry_sdk::trace::RandomIdGenerator;
use std::io::{Read, Write};

use super::jsonrpc;
use super::watch::end_operation;
use super::Facts;
use crate::telemetry::mcp::McpOperation;
use crate::telemetry::Telemetry;
use crate::vocab::error_type::ErrorType;
use crate::vocab::provider::UpstreamInfo;

/// Longest message line read for telemetry; a longer one is relayed, not read.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Newline-delimited messages out of chunks (MCP's stdio framing), bounded.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// The current line outgrew [`MAX_LINE`]: skip to its end.
    skipping: bool,
}

impl Lines {
    /// Calls `on_line` for each line `bytes` completes (without its `\n` or `\r\n`).
    pub fn feed(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            if !self.skipping {
                let line = if self.buf.is_empty() {
                    &bytes[..i]
                } else {
                    self.buf.extend_from_slice(&bytes[..i]);
                    &self.buf[..]
                };
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    on_line(line);
                }
            }
            self.buf.clear();
            self.skipping = false;
            bytes = &bytes[i + 1..];
        }
        if !self.skipping {
            if self.buf.len() + bytes.len() > MAX_LINE {
                self.buf = Vec::new();
                self.skipping = true;
            } else {
                self.buf.extend_from_slice(bytes);
            }
        }
    }
}

/// What both directions share: requests waiting for their responses, and the session.
struct Session {
    facts: Facts,
    pending: HashMap<String, McpOperation>,
    /// The negotiated protocol version and when `initialize` was answered.
    version: Option<String>,
    initialized_at: Option<Instant>,
}

/// Runs `command` with `args` as a stdio MCP server relayed through this process's stdin and
/// stdout; returns the exit code to exit with (the child's; 128 + the signal that ended it).
/// `name` is the server's `llmtap.mcp.server` (default: the command's file name). The pipes
/// are served by blocking threads: two streams, for the life of the process.
pub async fn run(
    telemetry: Telemetry,
    name: Option<String>,
    command: String,
    args: Vec<String>,
) -> std::io::Result<i32> {
    tokio::task::spawn_blocking(move || run_blocking(telemetry, name, &command, &args))
        .await
        .map_err(std::io::Error::other)?
}

fn run_blocking(
    telemetry: Telemetry,
    name: Option<String>,
    command: &str,
    args: &[String],
) -> std::io::Result<i32> {
    let mut child = std::process::Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        return Err(std::io::Error::other("the child's pipes were not opened"));
    };
    let name = name.unwrap_or_else(|| {
        std::path::Path::new(command)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| command.to_string())
    });
    let server = Arc::new(UpstreamInfo {
        name,
        provider: crate::vocab::provider::Provider::OpenaiCompatible,
        address: Arc::from(""),
        port: 0,
    });
    let session = Arc::new(Mutex::new(Session {
        facts: Facts {
            server: server.clone(),
            transport: "pipe",
            session: None,
            version: None,
            tenant: None,
            started: Instant::now(),
            started_at: SystemTime::now(),
        },
        pending: HashMap::new(),
        version: None,
        initialized_at: None,
    }));
    {
        let (session, telemetry) = (session.clone(), telemetry.clone());
        // Not joined: it may sit in a read of our stdin after the child is gone.
        std::thread::Builder::new()
            .name("mcp-stdio-in".into())
            .spawn(move || {
                let ids = RandomIdGenerator::default();
                let _ = pump(std::io::stdin().lock(), child_in, |line| {
                    client_message(line, &session, &telemetry, &ids)
                });
            })?;
    }
    let from_child = pump(child_out, std::io::stdout().lock(), |line| {
        server_message(line, &session, &telemetry)
    });
    // The child's stdout is closed: it exited (or is exiting). Whatever still waits failed.
    let status = child.wait()?;
    let left: Vec<McpOperation> = session
        .lock()
        .map(|mut s| s.pending.drain().map(|(_, op)| op).collect())
        .unwrap_or_default();
    for mut op in left {
        end_operation(&mut op, None);
        op.error = Some(ErrorType::StreamTruncated.into());
        op.error_message = Some(format!("the MCP server exited ({status}) before answering"));
        telemetry.submit_mcp(op);
    }
    if let Ok(s) = session.lock() {
        if let Some(at) = s.initialized_at {
            let error = (!status.success()).then_some(ErrorType::StreamTruncated.as_str());
            telemetry.mcp_session_ended(
                &server,
                "pipe",
                s.version.as_deref(),
                at.elapsed().as_secs_f64(),
                error,
            );
        }
    }
    from_child?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

/// Copies `from` to `to` read by read (flushing each), handing each complete line to
/// `on_line`. At the end of `from`, `to` is dropped: the other side sees its input end.
fn pump(
    mut from: impl Read,
    mut to: impl Write,
    mut on_line: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut lines = Lines::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
        lines.feed(&buf[..n], &mut on_line);
    }
}

/// A line from the client: each request starts an operation; a notification is one at once
/// (nothing acknowledges it on a pipe).
fn client_message(
    line: &[u8],
    session: &Mutex<Session>,
    telemetry: &Telemetry,
    ids: &RandomIdGenerator,
) {
    let Ok(mut s) = session.lock() else { return };
    for msg in jsonrpc::messages(line) {
        let Some(sent) = jsonrpc::sent(&msg) else {
            continue;
        };
        let base = telemetry.propagation().extract(&http::HeaderMap::new());
        let trace = super::trace_for(&sent, &base, telemetry, ids);
        s.facts.started = Instant::now();
        s.facts.started_at = SystemTime::now();
        let version = s.version.clone();
        s.facts.version = version;
        let id_key = sent.id_key.clone();
        let mut op = s.facts.operation(sent, trace);
        super::claim_model_call(telemetry, None, &mut op);
        match id_key {
            Some(id) => {
                if s.pending.len() < 10_000 {
                    s.pending.insert(id, op);
                }
            }
            None => {
                end_operation(&mut op, None);
                telemetry.submit_mcp(op);
            }
        }
    }
}

/// A line from the server: a response ends the request it answers.
fn server_message(line: &[u8], session: &Mutex<Session>, telemetry: &Telemetry) {
    let Ok(mut s) = session.lock() else { return };
    let keep = telemetry.capture_content();
    for msg in jsonrpc::messages(line) {
        let Some(o) = jsonrpc::outcome(&msg, keep) else {
            continue;
        };
        let Some(mut op) = o.id_key.as_ref().and_then(|id| s.pending.remove(id)) else {
            continue;
        };
        end_operation(&mut op, Some(&o));
        if op.method == "initialize" && op.error.is_none() {
            s.version.clone_from(&op.protocol_version);
            s.initialized_at = Some(Instant::now());
        }
        telemetry.submit_mcp(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_reads_and_bounded() {
        let mut l = Lines::default();
        let mut got: Vec<String> = Vec::new();
        l.feed(b"{\"a\":1}\n{\"b\"", |x| {
            got.push(String::from_utf8_lossy(x).into())
        });
        l.feed(b":2}\r\n\n", |x| {
            got.push(String::from_utf8_lossy(x).into())
        });
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}"]);
        let big = vec![b'x'; MAX_LINE + 1];
        got.clear();
        l.feed(&big, |x| got.push(String::from_utf8_lossy(x).into()));
        l.feed(b"tail\n{}\n", |x| {
            got.push(String::from_utf8_lossy(x).into())
        });
        assert_eq!(got, ["{}"]);
    }
}
