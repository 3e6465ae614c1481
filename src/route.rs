//! Which upstream serves a request, what URL it goes to, and which gen_ai operation it is.

use crate::config::{Config, UpstreamConfig};

/// The gen_ai operation a path performs. Other paths are proxied without a gen_ai span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat,
    TextCompletion,
    Embeddings,
}

impl Operation {
    /// `gen_ai.operation.name`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }

    /// `openai.api.type`.
    pub fn api_type(self) -> &'static str {
        match self {
            Operation::Chat => "chat_completions",
            Operation::TextCompletion => "completions",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// What the inbound path tells us before the body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Path appended to the upstream base URL (starts with `/`).
    pub upstream_path: String,
    pub operation: Option<Operation>,
    /// Azure's deployment name, which stands in for the model when the body has none.
    pub deployment: Option<String>,
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

/// Maps an inbound path to its upstream path and operation; `None` for paths llmtap does not proxy.
///
/// `/v1/<rest>` goes to `<base>/<rest>` (the base URL carries its own `/v1`), and Azure's
/// `/openai/<rest>` goes to `<base>/openai/<rest>` (an Azure base URL is the resource root).
pub fn target(path: &str, method: &http::Method) -> Option<Target> {
    let (upstream_path, rest) = if let Some(rest) = path.strip_prefix("/v1/") {
        (format!("/{rest}"), rest)
    } else if let Some(rest) = path.strip_prefix("/openai/") {
        (path.to_string(), rest)
    } else {
        return None;
    };
    let mut deployment = None;
    let mut op_path = rest;
    if let Some(after) = rest.strip_prefix("deployments/") {
        if let Some((name, tail)) = after.split_once('/') {
            deployment = Some(name.to_string());
            op_path = tail;
        }
    } else if let Some(tail) = rest.strip_prefix("v1/") {
        // Azure's newer `/openai/v1/...` surface.
        op_path = tail;
    }
    let operation = if method == http::Method::POST {
        match op_path.trim_end_matches('/') {
            "chat/completions" => Some(Operation::Chat),
            "completions" => Some(Operation::TextCompletion),
            "embeddings" => Some(Operation::Embeddings),
            _ => None,
        }
    } else {
        None
    };
    Some(Target {
        upstream_path,
        operation,
        deployment,
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
        .or_else(|| config.upstream(&config.default_upstream))
        // `validate` guarantees the default exists; the first upstream is a safe fallback.
        .unwrap_or(&config.upstreams[0])
}

/// Glob match with `*` (any run) and `?` (one character), over characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn globs() {
        assert!(glob_match("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_match("*", ""));
        assert!(glob_match("llama-?-*b", "llama-3-70b"));
        assert!(!glob_match("gpt-4o", "gpt-4o-mini"));
        assert!(!glob_match("a*b", "acd"));
        assert!(glob_match("*mini*", "gpt-4o-mini-2024"));
    }

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
        assert_eq!(t.deployment.as_deref(), Some("my-gpt"));
        assert_eq!(t.operation, Some(Operation::Chat));
        assert!(target("/v2/x", &Method::GET).is_none());
        assert_eq!(
            target("/v1/embeddings", &Method::POST).unwrap().operation,
            Some(Operation::Embeddings)
        );
    }
}
