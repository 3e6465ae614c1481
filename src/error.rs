//! Errors the proxy itself produces, each answered in OpenAI's error shape
//! (`{"error":{"message","type","param","code"}}`) so SDKs raise their usual exceptions.
//! Errors from the upstream are never rewritten: they pass through as the upstream sent them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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
    #[error("upstream {upstream} is unreachable: {detail}")]
    UpstreamUnreachable { upstream: String, detail: String },
    #[error("upstream {upstream} did not answer within {secs:.0} s")]
    UpstreamTimeout { upstream: String, secs: f64 },
    #[error("llmtap is shutting down")]
    ShuttingDown,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotFound { .. } => StatusCode::NOT_FOUND,
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequestBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::UpstreamUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// OpenAI's `error.type` / `error.code`, and the span's `error.type`.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NotFound { .. } => "not_found",
            ProxyError::BadPath(_) => "invalid_path",
            ProxyError::BodyTooLarge { .. } => "request_too_large",
            ProxyError::BadRequestBody(_) => "invalid_request_body",
            ProxyError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ProxyError::UpstreamTimeout { .. } => "timeout",
            ProxyError::ShuttingDown => "shutting_down",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ProxyError::NotFound { .. }
            | ProxyError::BadPath(_)
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequestBody(_) => "invalid_request_error",
            _ => "proxy_error",
        }
    }
}

/// The JSON body of an OpenAI-shaped error.
pub fn error_body(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    })
    .to_string()
}

impl ProxyError {
    /// The JSON body this error is answered with.
    pub fn body(&self) -> String {
        error_body(&self.to_string(), self.kind(), self.code())
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
        ProxyError::response(self.status(), self.body())
    }
}
