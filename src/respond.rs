//! The answer to the client: the upstream's response relayed chunk by chunk with the record
//! watching a copy (the last phase of [`crate::exchange`]), or llmtap's own error in the
//! called API's shape (the one failure path). Either way the record is finished.

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::error::ProxyError;
use crate::stream::decode::Decoder;
use crate::stream::strip::EventStripper;
use crate::stream::tee::Relay;
use crate::telemetry::record::RequestRecord;
use crate::upstream;

/// A response body that holds a concurrency permit for as long as it lives.
pub(crate) struct HoldPermit {
    pub(crate) body: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl HoldPermit {
    pub(crate) fn new(body: Body, permit: tokio::sync::OwnedSemaphorePermit) -> HoldPermit {
        HoldPermit {
            body,
            _permit: permit,
        }
    }
}

impl http_body::Body for HoldPermit {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Answers with one of llmtap's own errors and finishes the record with what was sent, so the
/// access line and the span show the real status and size.
pub(crate) fn own_error(e: ProxyError, mut record: RequestRecord) -> Response {
    // In the error shape of the API that was called, so its SDK raises its usual exception.
    let body = match record.dialect {
        Some(d) => d.error_body(
            &e.to_string(),
            e.kind(),
            e.code().as_str(),
            e.status().as_u16(),
        ),
        None => e.body(),
    };
    let status = e.status();
    record.status = Some(status.as_u16());
    record.fail(e.code());
    record.bytes_out = body.len() as u64;
    record.finish();
    let mut resp = ProxyError::response(status, body);
    resp.headers_mut().extend(e.headers());
    resp
}

/// An upstream response body as a stream of data chunks (trailers are not relayed).
pub(crate) type UpstreamBody = BoxStream<'static, Result<Bytes, hyper::Error>>;

/// An upstream response whose body is still to be relayed.
pub(crate) struct UpstreamResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: http::HeaderMap,
    /// The body as it comes; its first bytes may already have been read (a 4xx checked for
    /// a refused injection) and are replayed in front.
    pub(crate) body: UpstreamBody,
    pub(crate) content_length: Option<u64>,
    pub(crate) inject: bool,
    pub(crate) timeouts: crate::config::Timeouts,
}

impl UpstreamResponse {
    pub(crate) fn new(
        resp: http::Response<hyper::body::Incoming>,
        inject: bool,
        timeouts: &crate::config::Timeouts,
    ) -> Self {
        let (parts, body) = resp.into_parts();
        UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            // What `Content-Length` declared (HTTP/1.1) or the stream's length (HTTP/2).
            content_length: http_body::Body::size_hint(&body).exact(),
            body: http_body_util::BodyDataStream::new(body).boxed(),
            inject,
            timeouts: timeouts.clone(),
        }
    }
}

/// Relays the upstream response; the record moves into the body stream, which finishes it.
pub(crate) fn relay(
    up: UpstreamResponse,
    mut record: RequestRecord,
    abort: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let UpstreamResponse {
        status,
        headers,
        body,
        content_length,
        inject,
        timeouts,
    } = up;
    let mut out_headers = upstream::response_headers(&headers);
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let encoding = header_str(&headers, header::CONTENT_ENCODING);
    let injected_stream =
        inject && status.is_success() && content_type.starts_with("text/event-stream");
    // llmtap asks for an uncompressed stream when it injects; an upstream that compresses
    // anyway is decoded here so the injection's effects can be hidden. The client then gets
    // the stream uncompressed, which HTTP allows a proxy to do (`identity` is always
    // acceptable unless the client refused it).
    let mut decoder = None;
    if injected_stream && !encoding.is_empty() {
        if let Some(Ok(d)) = Decoder::for_encoding(&encoding) {
            decoder = Some(d);
            out_headers.remove(header::CONTENT_ENCODING);
        }
    }
    let watched_encoding = if decoder.is_some() { "" } else { &encoding };
    record.response_started(status.as_u16(), &content_type, watched_encoding);
    record.response_headers(&headers);
    // Hide the injection's effects, as the dialect that injected says; an encoding we cannot
    // decode is relayed untouched.
    let usage_injection = record
        .dialect
        .zip(record.operation)
        .and_then(|(d, op)| d.usage_injection(op));
    let stripper = usage_injection
        .filter(|_| injected_stream && (encoding.is_empty() || decoder.is_some()))
        .map(|i| EventStripper::new(i.strip_rule()));
    if stripper.is_some() {
        out_headers.remove(header::CONTENT_LENGTH);
    }
    let length = match stripper {
        None => content_length,
        Some(_) => None,
    };
    let relay = Relay::new(body, record, stripper, timeouts.idle, abort)
        .with_length(length)
        .with_max_duration(timeouts.max_stream)
        .with_decoder(decoder);
    let mut response = Response::new(Body::from_stream(relay));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}

fn header_str(h: &http::HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
