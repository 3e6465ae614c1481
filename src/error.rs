//! Errors the proxy itself produces, each answered in OpenAI's error shape
//! (`{"error":{"message","type","param","code"}}`) so SDKs raise their usual exceptions.
//! Errors from the upstream are never rewritten: they pass through as the upstream sent them.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::vocab::error_type::ErrorType;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A path llmtap does not serve; `hint` suggests the path the caller probably meant.
    #[error("no route for {path}{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    NotFound { path: String, hint: Option<String> },
    /// A path refused before routing (it would leave the upstream's base, or is ambiguous).
    #[error("invalid path: {0}")]
    BadPath(crate::path::PathError),
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BadRequestBody(String),
    /// The request body did not arrive within `body_read_timeout_secs`.
    #[error("the request body did not arrive within {secs:.0} s")]
    BodyTimeout { secs: f64 },
    #[error("upstream {upstream} is unreachable: {detail}")]
    UpstreamUnreachable { upstream: String, detail: String },
    #[error("upstream {upstream} did not answer within {secs:.0} s")]
    UpstreamTimeout { upstream: String, secs: f64 },
    #[error("llmtap is shutting down")]
    ShuttingDown,
    /// Client keys are on and the request has none, or an unknown one.
    #[error("{}", if *missing {
        "no API key provided; send it as Authorization: Bearer <key>, api-key or x-api-key"
    } else {
        "invalid API key"
    })]
    InvalidApiKey { missing: bool },
    /// Over the key's `requests_per_minute`.
    #[error("rate limit reached for requests: {limit} per minute for this key; try again in {}",
        crate::auth::reset_text(*retry_after))]
    RateLimited { limit: u32, retry_after: Duration },
    /// The key already has `max_concurrent` requests in flight.
    #[error("too many concurrent requests: at most {limit} at once for this key")]
    TooManyConcurrent { limit: u32 },
}

impl From<crate::auth::Refusal> for ProxyError {
    fn from(r: crate::auth::Refusal) -> Self {
        use crate::auth::Refusal;
        match r {
            Refusal::MissingKey => ProxyError::InvalidApiKey { missing: true },
            Refusal::UnknownKey => ProxyError::InvalidApiKey { missing: false },
            Refusal::RateLimited {
                limit, retry_after, ..
            } => ProxyError::RateLimited { limit, retry_after },
            Refusal::TooManyConcurrent { limit, .. } => ProxyError::TooManyConcurrent { limit },
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequestBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::InvalidApiKey { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::RateLimited { .. } | ProxyError::TooManyConcurrent { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// OpenAI's `error.type` / `error.code`, and the span's and metrics' `error.type`.
    pub fn code(&self) -> ErrorType {
        match self {
            ProxyError::NotFound { .. } => ErrorType::NotFound,
            ProxyError::BadPath(_) => ErrorType::InvalidPath,
            ProxyError::BodyTooLarge { .. } => ErrorType::RequestTooLarge,
            ProxyError::BadRequestBody(_) => ErrorType::InvalidRequestBody,
            ProxyError::BodyTimeout { .. } => ErrorType::RequestTimeout,
            ProxyError::UpstreamUnreachable { .. } => ErrorType::UpstreamUnreachable,
            ProxyError::UpstreamTimeout { .. } => ErrorType::Timeout,
            ProxyError::ShuttingDown => ErrorType::ShuttingDown,
            ProxyError::InvalidApiKey { .. } => ErrorType::InvalidApiKey,
            ProxyError::RateLimited { .. } => ErrorType::RateLimitExceeded,
            ProxyError::TooManyConcurrent { .. } => ErrorType::ConcurrencyLimitExceeded,
        }
    }

    /// OpenAI's `error.type`: `invalid_request_error` for the caller's mistakes, else
    /// `proxy_error`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NotFound { .. }
            | ProxyError::BadPath(_)
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequestBody(_)
            | ProxyError::BodyTimeout { .. }
            | ProxyError::InvalidApiKey { .. } => "invalid_request_error",
            // OpenAI's own rate-limit errors say `requests` here.
            ProxyError::RateLimited { .. } | ProxyError::TooManyConcurrent { .. } => "requests",
            _ => "proxy_error",
        }
    }

    /// Headers this error is answered with besides `content-type`: how to authenticate, and
    /// OpenAI's rate-limit headers, which the SDKs read to back off.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        };
        match self {
            ProxyError::InvalidApiKey { .. } => put("www-authenticate", "Bearer".into()),
            ProxyError::RateLimited { limit, retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                put("retry-after", secs.to_string());
                put("retry-after-ms", retry_after.as_millis().max(1).to_string());
                put("x-ratelimit-limit-requests", limit.to_string());
                put("x-ratelimit-remaining-requests", "0".into());
                put(
                    "x-ratelimit-reset-requests",
                    crate::auth::reset_text(*retry_after),
                );
            }
            _ => {}
        }
        h
    }
}

/// The error and its causes on one line (reqwest's top-level message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl ProxyError {
    /// The JSON body this error is answered with.
    pub fn body(&self) -> String {
        crate::dialect::openai_error_body(&self.to_string(), self.kind(), self.code().as_str())
    }

    /// A JSON error response from a status and a body made by [`ProxyError::body`].
    pub fn response(status: StatusCode, body: String) -> Response {
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let mut resp = ProxyError::response(self.status(), self.body());
        resp.headers_mut().extend(self.headers());
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code llmtap answers with is a documented `error.type` (semconv.rs, docs/telemetry.md).
    #[test]
    fn every_code_is_a_documented_error_type() {
        // Every variant, so a new one fails to compile here until it is listed: a code
        // missing from the lists is recorded in metrics as its bare HTTP status.
        let all = [
            ProxyError::NotFound {
                path: "/x".into(),
                hint: None,
            },
            ProxyError::BadPath(crate::path::PathError::Backslash),
            ProxyError::BodyTooLarge { limit: 1 },
            ProxyError::BadRequestBody("x".into()),
            ProxyError::BodyTimeout { secs: 1.0 },
            ProxyError::UpstreamUnreachable {
                upstream: "u".into(),
                detail: "d".into(),
            },
            ProxyError::UpstreamTimeout {
                upstream: "u".into(),
                secs: 1.0,
            },
            ProxyError::ShuttingDown,
            ProxyError::InvalidApiKey { missing: true },
            ProxyError::RateLimited {
                limit: 1,
                retry_after: Duration::from_secs(1),
            },
            ProxyError::TooManyConcurrent { limit: 1 },
        ];
        for e in &all {
            match e {
                ProxyError::NotFound { .. }
                | ProxyError::BadPath(_)
                | ProxyError::BodyTooLarge { .. }
                | ProxyError::BadRequestBody(_)
                | ProxyError::BodyTimeout { .. }
                | ProxyError::UpstreamUnreachable { .. }
                | ProxyError::UpstreamTimeout { .. }
                | ProxyError::ShuttingDown
                | ProxyError::InvalidApiKey { .. }
                | ProxyError::RateLimited { .. }
                | ProxyError::TooManyConcurrent { .. } => {}
            }
            // The metrics keep the code itself, never the bare status.
            assert_eq!(
                crate::telemetry::metrics::bounded_error_type(
                    e.code().as_str(),
                    Some(e.status().as_u16())
                ),
                e.code().as_str(),
                "{} is recorded in metrics as something else",
                e.code()
            );
        }
    }
}
