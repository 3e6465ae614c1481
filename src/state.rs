//! State shared by replicas through Redis (`--state-url`), optional: the tool calls a model
//! asked for and whose results have not come back yet, so that whichever replica receives the
//! result closes the call's `execute_tool` span, exactly once.
//!
//! Fail open: every operation has a short deadline; an error or a timeout is counted
//! (`llmtap.state.errors`), reported in a rate-limited WARN line, and the caller falls back to
//! its local state. The connection manager reconnects by itself; nothing here ever blocks or
//! fails a client's request (callers run these operations off the request path).
//!
//! Keys: `llmtap:tool:<call id>` (no client keys) or `llmtap:tool:t:<tenant length>:<tenant>:
//! <call id>` (client keys: a tenant's result can only reach its own tenant's calls) → the call
//! as JSON (`StoredCall`), with a TTL a little longer than the local one, so that the replica
//! that asked can still take it at its local expiry. Taking is `GETDEL`: atomic, so one
//! replica wins. The results of one request are taken in one round trip (a pipeline), at most
//! [`MAX_TOOL_RESULTS`](crate::vocab::limits::MAX_TOOL_RESULTS) of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId, TraceState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::vocab::pending::PendingCall;

/// Longest wait for one Redis operation; past it the caller uses local state.
pub const STATE_TIMEOUT: Duration = Duration::from_millis(250);

/// Extra life of a stored call past the local TTL, so the asking replica's expiry check still
/// finds it.
const TTL_MARGIN: Duration = Duration::from_secs(30);

/// Least time between two WARN lines about Redis.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A pending tool call as stored in Redis. Ids in hex, times in Unix nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCall {
    pub call_id: String,
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub parent_span_id: String,
    /// W3C `tracestate` header value.
    pub trace_state: String,
    pub keep: bool,
    pub requested_unix_nanos: u64,
    pub request_model: Option<String>,
    pub arguments: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The tenant of the request that asked (client keys), for the span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl StoredCall {
    pub fn from_pending(c: &PendingCall) -> StoredCall {
        StoredCall {
            call_id: c.call_id.clone(),
            name: c.name.clone(),
            kind: c.kind.clone(),
            trace_id: c.trace_id.to_string(),
            parent_span_id: c.parent_span_id.to_string(),
            trace_state: c.trace_state.header(),
            keep: c.keep,
            requested_unix_nanos: c
                .requested_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            request_model: c.request_model.as_deref().map(str::to_owned),
            arguments: c.arguments.clone(),
            description: c.description.clone(),
            tenant: c.tenant.as_deref().map(str::to_owned),
        }
    }

    /// Back to a pending call. `requested` (monotonic) is reconstructed from the wall clock:
    /// another replica's `Instant` means nothing here; only `requested_at` is used for the
    /// span's start and duration.
    pub fn into_pending(self) -> Option<PendingCall> {
        let requested_at = UNIX_EPOCH + Duration::from_nanos(self.requested_unix_nanos);
        let age = SystemTime::now()
            .duration_since(requested_at)
            .unwrap_or_default();
        Some(PendingCall {
            call_id: self.call_id,
            name: self.name,
            kind: self.kind,
            trace_id: TraceId::from_hex(&self.trace_id).ok()?,
            parent_span_id: SpanId::from_hex(&self.parent_span_id).ok()?,
            trace_state: TraceState::from_key_value(
                self.trace_state
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())),
            )
            .unwrap_or_default(),
            keep: self.keep,
            requested_at,
            requested: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            request_model: self.request_model.map(std::sync::Arc::from),
            arguments: self.arguments,
            description: self.description,
            tenant: self.tenant.map(std::sync::Arc::from),
            // MCP executions join calls of this replica only (docs/mcp.md).
            arguments_key: None,
            executed: false,
        })
    }
}

/// The key of a tenant's call. The tenant's length goes first, so no tenant and id can spell
/// another tenant's key.
fn key(tenant: Option<&str>, call_id: &str) -> String {
    match tenant {
        None => format!("llmtap:tool:{call_id}"),
        Some(t) => format!("llmtap:tool:t:{}:{t}:{call_id}", t.len()),
    }
}

/// The connection to the shared state, with its failure accounting.
pub struct SharedState {
    conn: ConnectionManager,
    /// Failed operations since start (read by the metrics reader through `take_errors`).
    errors: AtomicU64,
    warn: Mutex<Option<Instant>>,
    url_for_logs: String,
}

impl SharedState {
    /// The shared state `state_url` names, when set: connected lazily, and `None` (with a
    /// WARN line) when the URL is unusable, so llmtap runs on with per-replica state.
    pub fn from_config(config: &crate::config::Config) -> Option<std::sync::Arc<SharedState>> {
        let url = config.state_url.as_deref()?;
        SharedState::connect(url)
            .map_err(|e| tracing::warn!(error = %e, "shared state not used"))
            .ok()
            .map(std::sync::Arc::new)
    }

    /// Connects lazily: a Redis that is down at start is reconnected to later, never waited for.
    pub fn connect(url: &str) -> Result<SharedState, String> {
        let client = redis::Client::open(url).map_err(|e| format!("state_url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(STATE_TIMEOUT))
            .set_response_timeout(Some(STATE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("state_url: {e}"))?;
        Ok(SharedState {
            conn,
            errors: AtomicU64::new(0),
            warn: Mutex::new(None),
            url_for_logs: redact_url(url),
        })
    }

    /// Stores the calls one response asked for, in one round trip (a pipeline).
    pub async fn put_calls(&self, calls: &[StoredCall], local_ttl: Duration) -> Result<(), ()> {
        if calls.is_empty() {
            return Ok(());
        }
        let ttl_ms = (local_ttl + TTL_MARGIN).as_millis() as u64;
        let mut pipe = redis::pipe();
        for c in calls {
            let value = serde_json::to_string(c).map_err(|_| ())?;
            pipe.cmd("SET")
                .arg(key(c.tenant.as_deref(), &c.call_id))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let res = tokio::time::timeout(STATE_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
        self.outcome(
            res.map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        )
    }

    /// Takes a tenant's call (atomically: `GETDEL`); `Ok(None)` when no replica holds it any
    /// more.
    pub async fn take_call(
        &self,
        tenant: Option<&str>,
        call_id: &str,
    ) -> Result<Option<StoredCall>, ()> {
        let ids = [call_id.to_owned()];
        Ok(self.take_calls(tenant, &ids).await?.pop().flatten())
    }

    /// Takes a tenant's calls, one answer per id in order, in one round trip (a pipeline of
    /// `GETDEL`s): a request with many tool results costs one operation, not one per result.
    pub async fn take_calls(
        &self,
        tenant: Option<&str>,
        call_ids: &[String],
    ) -> Result<Vec<Option<StoredCall>>, ()> {
        if call_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in call_ids {
            pipe.cmd("GETDEL").arg(key(tenant, id));
        }
        let mut conn = self.conn.clone();
        let res = tokio::time::timeout(
            STATE_TIMEOUT,
            pipe.query_async::<Vec<Option<String>>>(&mut conn),
        )
        .await;
        let values = self.outcome(
            res.map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        )?;
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|v| serde_json::from_str(&v).ok()))
            .collect())
    }

    /// Counts one more request in a fixed window (`llmtap:<window>`), in one round trip:
    /// `INCR` and an `EXPIRE` of two minutes (set on the window's first request). Returns the
    /// count including this request.
    pub async fn count_in_window(&self, window: &str) -> Result<u64, ()> {
        let key = format!("llmtap:{window}");
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(120)
            .arg("NX")
            .ignore();
        let mut conn = self.conn.clone();
        let res = tokio::time::timeout(STATE_TIMEOUT, pipe.query_async::<(u64,)>(&mut conn)).await;
        self.outcome(
            res.map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
        )
        .map(|(n,)| n)
    }

    /// Errors since the last call (for the `llmtap.state.errors` counter).
    pub fn take_errors(&self) -> u64 {
        self.errors.swap(0, Ordering::Relaxed)
    }

    fn outcome<T>(&self, r: Result<T, String>) -> Result<T, ()> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut last = self.warn.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    *last = Some(Instant::now());
                    tracing::warn!(
                        state_url = %self.url_for_logs,
                        error = %e,
                        "shared state (Redis) unavailable; using this replica's own state (counted in llmtap.state.errors; next warning in 60 s at the earliest)"
                    );
                }
                Err(())
            }
        }
    }
}

/// The URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_calls_round_trip() {
        let c = PendingCall {
            call_id: "call_1".into(),
            name: "get_weather".into(),
            kind: "function".into(),
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            trace_state: TraceState::from_key_value([("vendor", "x")]).unwrap(),
            parent_span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            keep: true,
            requested_at: SystemTime::now() - Duration::from_millis(500),
            requested: Instant::now(),
            request_model: Some(std::sync::Arc::from("gpt-4o")),
            arguments: None,
            description: Some("Weather for a city".into()),
            tenant: Some("team-a".into()),
            arguments_key: Some(42),
            executed: false,
        };
        let stored = StoredCall::from_pending(&c);
        let json = serde_json::to_string(&stored).unwrap();
        let back: StoredCall = serde_json::from_str(&json).unwrap();
        let p = back.into_pending().unwrap();
        assert_eq!(p.trace_id, c.trace_id);
        assert_eq!(p.parent_span_id, c.parent_span_id);
        assert_eq!(p.trace_state.header(), "vendor=x");
        assert_eq!(p.name, "get_weather");
        assert_eq!(p.description.as_deref(), Some("Weather for a city"));
        assert_eq!(p.tenant.as_deref(), Some("team-a"));
        let drift = p
            .requested_at
            .duration_since(c.requested_at)
            .unwrap_or_else(|e| e.duration());
        assert!(drift < Duration::from_micros(1));
        assert!(p.requested.elapsed() >= Duration::from_millis(400));
    }

    #[test]
    fn keys_separate_tenants() {
        assert_eq!(key(None, "call_1"), "llmtap:tool:call_1");
        assert_eq!(
            key(Some("team-a"), "call_1"),
            "llmtap:tool:t:6:team-a:call_1"
        );
        // A tenant name and id that share a spelling still differ by the length prefix.
        assert_ne!(key(Some("a:b"), "c"), key(Some("a"), "b:c"));
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert!(SharedState::connect("not a url").is_err());
    }
}
