//! Which upstream serves a request, what URL it goes to, and which gen_ai operation it is.

use crate::config::{Config, UpstreamConfig};

pub use crate::dialect::Operation;
use crate::dialect::{self, ApiPath, Dialect};
use crate::vocab::text::glob_match;

/// What the inbound path tells us before the body is read.
#[derive(Debug, Clone)]
pub struct Target {
    /// Path appended to the upstream base URL (starts with `/`), or to its origin when
    /// `from_origin` is set.
    pub upstream_path: String,
    /// Ollama's native `/api/...` paths sit at the server's root, not under the base path.
    pub from_origin: bool,
    pub operation: Option<Operation>,
    /// The API's dialect for inference paths.
    pub dialect: Option<&'static dyn Dialect>,
    /// The model the path names, which stands in for the model when the body has none:
    /// Azure's deployment name, Gemini's `models/{model}`.
    pub path_model: Option<String>,
    /// Azure: the model is a deployment (the upstream rejects injected usage per deployment).
    pub azure_deployment: bool,
    /// The path itself asks for a stream (Gemini's `:streamGenerateContent`).
    pub path_stream: bool,
}

/// For a path that would be valid under `/v1` (`/chat/completions`), what to tell the caller:
/// the usual cause is a base URL configured without its `/v1`.
pub fn missing_v1_hint(path: &str) -> Option<String> {
    let rest = path.trim_start_matches('/');
    let known = [
        "chat/completions",
        "completions",
        "embeddings",
        "models",
        "responses",
        "messages",
        "moderations",
        "images/generations",
        "audio/transcriptions",
        "audio/speech",
        "files",
        "batches",
    ];
    let valid = known
        .iter()
        .any(|k| rest == *k || rest.strip_prefix(k).is_some_and(|t| t.starts_with('/')));
    valid.then(|| format!("did you mean /v1/{rest}? (the base URL usually ends in /v1)"))
}

/// For `/v1/v1/messages` and the like: an SDK whose base URL already ends in `/v1` added its
/// own `/v1` (Anthropic's SDKs take a base URL without it). `None` for other paths.
pub fn doubled_v1_hint(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v1/v1/")?;
    let known = missing_v1_hint(rest).is_some();
    known.then(|| {
        format!(
            "did you mean /v1/{rest}? (this SDK adds /v1 itself: give it a base URL without /v1)"
        )
    })
}

/// Maps an inbound path to its upstream path, dialect and operation; `None` for paths llmtap
/// does not proxy.
///
/// `/v1/<rest>` goes to `<base>/<rest>` (the base URL carries its own `/v1`), Azure's
/// `/openai/<rest>` to `<base>/openai/<rest>` (an Azure base URL is the resource root), and
/// Ollama's `/api/<rest>` to `<origin of base>/api/<rest>`.
pub fn target(path: &str, method: &http::Method) -> Option<Target> {
    // APIs that name their own version and model in the path (Gemini): forwarded whole.
    if let Some((dialect, claim)) = dialect::claim(path, method) {
        return Some(Target {
            upstream_path: path.to_string(),
            from_origin: false,
            operation: claim.operation,
            dialect: Some(dialect),
            path_model: claim.model,
            azure_deployment: false,
            path_stream: claim.stream,
        });
    }
    let (upstream_path, rest, from_origin) = if let Some(rest) = path.strip_prefix("/v1/") {
        (format!("/{rest}"), rest, false)
    } else if let Some(rest) = path.strip_prefix("/openai/") {
        (path.to_string(), rest, false)
    } else if path.starts_with("/api/") {
        (path.to_string(), &path[1..], true)
    } else {
        return None;
    };
    let mut deployment = None;
    let mut op_path = rest;
    let azure_prefix = path.starts_with("/openai/");
    if azure_prefix {
        if let Some(after) = rest.strip_prefix("deployments/") {
            if let Some((name, tail)) = after.split_once('/') {
                deployment = Some(name.to_string());
                op_path = tail;
            }
        } else if let Some(tail) = rest.strip_prefix("v1/") {
            // Azure's newer `/openai/v1/...` surface.
            op_path = tail;
        }
    }
    let api = ApiPath {
        path: op_path,
        azure: azure_prefix,
    };
    let (dialect, operation) = match dialect::recognise(api, method) {
        Some((d, op)) => (Some(d), Some(op)),
        None => (None, None),
    };
    Some(Target {
        upstream_path,
        from_origin,
        operation,
        dialect,
        azure_deployment: deployment.is_some(),
        path_model: deployment,
        path_stream: false,
    })
}

/// Picks the upstream for a model: the first matching route, else the default.
pub fn upstream_for<'c>(config: &'c Config, model: Option<&str>) -> &'c UpstreamConfig {
    let routed = model.and_then(|m| {
        config
            .routes
            .iter()
            .find(|r| glob_match(&r.model, m))
            .and_then(|r| config.upstream(&r.upstream))
    });
    routed
        .or_else(|| config.default_upstream())
        // `validate` guarantees the default exists; the first upstream is a safe fallback.
        .unwrap_or(&config.upstreams[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn targets() {
        let t = target("/v1/chat/completions", &Method::POST).unwrap();
        assert_eq!(t.upstream_path, "/chat/completions");
        assert_eq!(t.operation, Some(Operation::Chat));
        let t = target("/v1/models", &Method::GET).unwrap();
        assert_eq!(t.operation, None);
        let t = target("/openai/deployments/my-gpt/chat/completions", &Method::POST).unwrap();
        assert_eq!(
            t.upstream_path,
            "/openai/deployments/my-gpt/chat/completions"
        );
        assert_eq!(t.path_model.as_deref(), Some("my-gpt"));
        assert_eq!(t.operation, Some(Operation::Chat));
        assert!(target("/v2/x", &Method::GET).is_none());
        let t = target("/api/chat", &Method::POST).unwrap();
        assert!(t.from_origin);
        assert_eq!(t.upstream_path, "/api/chat");
        assert_eq!(t.dialect.map(|d| d.name()), Some("ollama_native"));
        let t = target("/v1/messages", &Method::POST).unwrap();
        assert_eq!(t.dialect.map(|d| d.name()), Some("anthropic_messages"));
        assert_eq!(t.upstream_path, "/messages");
        let t = target("/v1/responses", &Method::POST).unwrap();
        assert_eq!(t.dialect.map(|d| d.name()), Some("openai_responses"));
        assert_eq!(
            target("/v1/embeddings", &Method::POST).unwrap().operation,
            Some(Operation::Embeddings)
        );
        let t = target(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            &Method::POST,
        )
        .unwrap();
        assert_eq!(t.dialect.map(|d| d.name()), Some("gemini"));
        assert_eq!(
            t.upstream_path,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        );
        assert_eq!(t.path_model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(t.operation, Some(Operation::GenerateContent));
        assert!(t.path_stream && !t.from_origin);
        assert_eq!(
            doubled_v1_hint("/v1/v1/messages").as_deref(),
            Some("did you mean /v1/messages? (this SDK adds /v1 itself: give it a base URL without /v1)")
        );
        assert!(doubled_v1_hint("/v1/v1/unknown").is_none());
        assert!(doubled_v1_hint("/v1/messages").is_none());
    }
}
