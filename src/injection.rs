//! Usage injection's safety net: remembering an upstream that refused the injected
//! parameter, so later requests there are sent as the client wrote them.
//!
//! llmtap adds `stream_options.include_usage` to streamed chat and completions requests (the
//! OpenAI Chat dialect's `UsageInjection`, which also recognises a refusal). Some
//! OpenAI-compatible servers reject parameters they do not know: Azure OpenAI on older `api-version`s answers `400 Unrecognized request argument
//! supplied: stream_options`, FastAPI-based servers `422 extra_forbidden` with
//! `loc: ["body","stream_options"]`, others a 400 naming the field. The client never sent the
//! parameter, so it must never see that error: the proxy retries once with the client's own
//! body and remembers the refusal, per upstream and per what the refusal is tied to (the Azure
//! deployment and `api-version`, otherwise the model), for a bounded time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refusal is remembered. An upstream upgraded in the meantime gets injected
/// again after this, and a refusal then costs one more retry.
pub const REFUSAL_TTL: Duration = Duration::from_secs(3600);

/// Refusals remembered at most; the oldest goes first. Bounded so that a client cycling
/// through model names cannot grow memory.
pub const MAX_REFUSALS: usize = 1024;

/// Largest error body read to look for the refused parameter. Error bodies are small; a
/// larger body is relayed unread.
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// What a refusal is tied to: the upstream plus the Azure deployment and `api-version`, or
/// plus the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    pub upstream: String,
    pub scope: String,
}

impl RefusalKey {
    /// `deployment` and `api_version` from an Azure path and query; `model` otherwise.
    pub fn new(
        upstream: &str,
        deployment: Option<&str>,
        api_version: Option<&str>,
        model: Option<&str>,
    ) -> RefusalKey {
        let scope = match deployment {
            Some(d) => format!("deployment={d} api-version={}", api_version.unwrap_or("-")),
            None => format!("model={}", model.unwrap_or("-")),
        };
        RefusalKey {
            upstream: upstream.to_string(),
            scope,
        }
    }
}

/// The `api-version` query parameter of a request, if any.
pub fn api_version(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="))
}

/// Refusals seen, each until its deadline.
#[derive(Default)]
pub struct InjectionRefusals {
    seen: Mutex<HashMap<RefusalKey, Instant>>,
}

impl InjectionRefusals {
    pub fn new() -> InjectionRefusals {
        InjectionRefusals::default()
    }

    /// Whether `key` refused the parameter within the last `REFUSAL_TTL`.
    pub fn refused(&self, key: &RefusalKey) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(key).is_some_and(|t| t.elapsed() < REFUSAL_TTL)
    }

    /// Remembers a refusal; true when it is new (so the caller logs it once).
    pub fn remember(&self, key: RefusalKey) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, t| t.elapsed() < REFUSAL_TTL);
        if seen.len() >= MAX_REFUSALS && !seen.contains_key(&key) {
            if let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                seen.remove(&oldest);
            }
        }
        seen.insert(key, Instant::now()).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_what_the_refusal_is_tied_to() {
        let a = RefusalKey::new("azure", Some("gpt-35"), Some("2023-05-15"), Some("m"));
        let b = RefusalKey::new("azure", Some("gpt-35"), Some("2024-06-01"), Some("m"));
        assert_ne!(a, b, "a newer api-version is asked again");
        let m1 = RefusalKey::new("vllm", None, None, Some("llama"));
        let m2 = RefusalKey::new("vllm", None, None, Some("qwen"));
        assert_ne!(m1, m2);
        assert_eq!(
            api_version(Some("x=1&api-version=2023-05-15")),
            Some("2023-05-15")
        );
        assert_eq!(api_version(None), None);
    }

    #[test]
    fn remembered_once_and_bounded() {
        let r = InjectionRefusals::new();
        let k = RefusalKey::new("u", None, None, Some("m"));
        assert!(!r.refused(&k));
        assert!(r.remember(k.clone()));
        assert!(!r.remember(k.clone()), "second time is not new");
        assert!(r.refused(&k));
        for i in 0..(MAX_REFUSALS + 10) {
            r.remember(RefusalKey::new("u", None, None, Some(&format!("m{i}"))));
        }
        assert!(r.seen.lock().unwrap().len() <= MAX_REFUSALS);
    }
}
