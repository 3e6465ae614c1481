//! `error.type` values llmtap produces itself (as opposed to an upstream's own error codes,
//! which spans keep as sent and metrics bound: `telemetry::metrics::bounded_error_type`).
//! One list feeds spans, metrics, access logs, the live view, the alert rules and
//! docs/telemetry.md's `error.type` row (tests/conformance.rs checks the doc against it).

use std::fmt;

/// An `error.type` llmtap writes on its own account. Spans and metrics carry
/// [`ErrorType::as_str`]; metrics keep every variant as it is (never the bare HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// No response headers within the first-byte timeout, or a stream silent past the idle
    /// timeout, or one running past `timeouts.max_stream_secs`.
    Timeout,
    /// The upstream could not be connected to (answered 502).
    UpstreamUnreachable,
    /// The client went away before the response ended.
    ClientDisconnected,
    /// A stream that ended without `[DONE]` or a finish reason.
    StreamTruncated,
    /// A mid-stream error event without a code.
    StreamError,
    /// The request body is over `max_body_bytes` (answered 413).
    RequestTooLarge,
    /// The request body could not be read (answered 400).
    InvalidRequestBody,
    /// The request body did not arrive within `body_read_timeout_secs` (answered 408).
    RequestTimeout,
    /// No route or upstream for the request (answered 404).
    NotFound,
    /// A path refused before routing: encoded separators, dot segments, control characters
    /// (answered 400).
    InvalidPath,
    /// Client keys are on and the request has none, or an unknown one (answered 401).
    InvalidApiKey,
    /// The client key is over its `requests_per_minute` (answered 429).
    RateLimitExceeded,
    /// The client key already has `max_concurrent` requests in flight (answered 429).
    ConcurrencyLimitExceeded,
    /// A request that was still arriving when the shutdown grace period ended (answered 503).
    ShuttingDown,
    /// A stream still running when the shutdown grace period ended, cut.
    Shutdown,
    /// An MCP `tools/call` whose result has `isError: true` (the MCP conventions' value).
    ToolError,
}

impl ErrorType {
    /// Every variant, in the order docs/telemetry.md lists them.
    pub const ALL: [ErrorType; 16] = [
        ErrorType::Timeout,
        ErrorType::UpstreamUnreachable,
        ErrorType::ClientDisconnected,
        ErrorType::StreamTruncated,
        ErrorType::StreamError,
        ErrorType::RequestTooLarge,
        ErrorType::InvalidRequestBody,
        ErrorType::RequestTimeout,
        ErrorType::NotFound,
        ErrorType::InvalidPath,
        ErrorType::InvalidApiKey,
        ErrorType::RateLimitExceeded,
        ErrorType::ConcurrencyLimitExceeded,
        ErrorType::ShuttingDown,
        ErrorType::Shutdown,
        ErrorType::ToolError,
    ];

    /// The attribute value (`stream_truncated`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::UpstreamUnreachable => "upstream_unreachable",
            ErrorType::ClientDisconnected => "client_disconnected",
            ErrorType::StreamTruncated => "stream_truncated",
            ErrorType::StreamError => "stream_error",
            ErrorType::RequestTooLarge => "request_too_large",
            ErrorType::InvalidRequestBody => "invalid_request_body",
            ErrorType::RequestTimeout => "request_timeout",
            ErrorType::NotFound => "not_found",
            ErrorType::InvalidPath => "invalid_path",
            ErrorType::InvalidApiKey => "invalid_api_key",
            ErrorType::RateLimitExceeded => "rate_limit_exceeded",
            ErrorType::ConcurrencyLimitExceeded => "concurrency_limit_exceeded",
            ErrorType::ShuttingDown => "shutting_down",
            ErrorType::Shutdown => "shutdown",
            ErrorType::ToolError => "tool_error",
        }
    }

    /// The variant whose value is `s`, if any.
    pub fn parse(s: &str) -> Option<ErrorType> {
        ErrorType::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorType> for String {
    fn from(e: ErrorType) -> String {
        e.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_and_all_lists_each_once() {
        let mut seen = std::collections::HashSet::new();
        for e in ErrorType::ALL {
            assert_eq!(ErrorType::parse(e.as_str()), Some(e));
            assert!(seen.insert(e.as_str()), "{e} listed twice");
            // Values are snake_case identifiers: safe as metric label values and in PromQL.
            assert!(e
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(ErrorType::parse("rate_limit_error"), None);
    }
}
