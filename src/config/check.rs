//! Checks of single values, shared by the file (`de`, `validate`) and the flags
//! (`cli::ProxyArgs::apply`). Each returns the message without the key: the caller knows
//! what the user typed the value under (a YAML path, a flag or an `LLMTAP_*` variable).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Env, Secret};

/// Seconds as a duration: non-negative and below ~31 years (so `Duration` cannot overflow).
pub fn secs(v: f64) -> Result<Duration, String> {
    if (0.0..1e9).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("must be a non-negative number of seconds, got {v}"))
    }
}

/// Threads serving connections: 1 to 1024.
pub fn threads(v: usize) -> Result<usize, String> {
    if (1..=1024).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from 1 to 1024 threads, got {v}"))
    }
}

pub fn socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("not a socket address (host:port): {v:?}"))
}

/// An http(s) URL with a host: an upstream's base URL, an MCP server's endpoint.
pub fn http_url(v: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(v).map_err(|e| format!("{e}: {v:?}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("must be an http(s) URL with a host: {v:?}"));
    }
    Ok(())
}

/// A Redis URL for the shared state.
pub fn state_url(v: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(v).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err("must be redis://HOST:PORT[/DB] or rediss://... (TLS)".into());
    }
    Ok(())
}

/// A client key's SHA-256 as 64 hex characters (either case; spaces around ignored).
pub fn sha256(v: &str) -> Result<[u8; 32], String> {
    let hex = v.trim();
    parse_hex32(hex).ok_or_else(|| {
        let what = if hex.starts_with("sk-") {
            "looks like a key itself; put its SHA-256 here"
        } else {
            "must be 64 hex characters, the SHA-256 of the key"
        };
        format!("{what} (`llmtap hash-key` prints the line)")
    })
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The upstream key held by the environment variable `var`. A literal key pasted where the
/// variable's name goes is refused rather than used, because keys must never live in a file
/// or on a command line.
pub fn api_key(var: &str, env: &dyn Env) -> Result<Secret, String> {
    if var.starts_with("sk-") || var.contains(char::is_whitespace) {
        return Err("must name an environment variable, not contain the key itself".into());
    }
    env.get(var)
        .map(Secret)
        .ok_or_else(|| format!("environment variable {var} is not set"))
}

/// Inbound TLS needs both files or neither; `names` are what the user calls them.
pub fn tls_pair<T>(
    cert: Option<&T>,
    key: Option<&T>,
    (cert_name, key_name): (&str, &str),
) -> Result<(), String> {
    match (cert, key) {
        (Some(_), None) => Err(format!("{key_name}: required with {cert_name}")),
        (None, Some(_)) => Err(format!("{cert_name}: required with {key_name}")),
        _ => Ok(()),
    }
}
