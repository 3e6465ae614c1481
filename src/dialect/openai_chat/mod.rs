//! OpenAI Chat Completions, legacy Completions and Embeddings (also Azure OpenAI's deployment
//! paths, vLLM, Ollama's `/v1` surface and every OpenAI-compatible server). Reference: the
//! OpenAI API reference, "Chat", "Completions", "Embeddings".
//!
//! - [`request`]: what a request body says;
//! - [`response`] over [`wire`]: what a streamed or whole response says (the hot path), read by
//!   [`scan`] where it can and by serde where the scanner is not sure;
//! - [`usage`]: `stream_options.include_usage`, asked for on streams and hidden again.

mod request;
mod response;
mod scan;
#[cfg(test)]
mod tests;
mod usage;
mod wire;

use serde_json::{Map, Value};

use crate::vocab::operation::Operation;
use crate::vocab::prompt::PromptHasher;
use crate::vocab::request::RequestInfo;
use crate::vocab::summary::ResponseSummary;

use super::watch::SseWatcher;
use super::{ApiPath, Dialect, Mount, StreamWatcher, UsageInjection};

#[derive(Debug)]
pub struct OpenAiChat;

impl Dialect for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai_chat"
    }

    fn mounts(&self) -> &'static [Mount] {
        &[Mount::V1, Mount::Azure]
    }

    fn recognise(&self, path: ApiPath<'_>, method: &http::Method) -> Option<Operation> {
        if method != http::Method::POST {
            return None;
        }
        match path.path.trim_end_matches('/') {
            "chat/completions" => Some(Operation::Chat),
            "completions" => Some(Operation::TextCompletion),
            "embeddings" => Some(Operation::Embeddings),
            _ => None,
        }
    }

    fn openai_api_type(&self, op: Operation) -> Option<&'static str> {
        Some(match op {
            Operation::Chat | Operation::GenerateContent => "chat_completions",
            Operation::TextCompletion => "completions",
            Operation::Embeddings => "embeddings",
        })
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        request::facts(obj, op, capture, hasher)
    }

    /// Chat and completions streams carry usage only when asked; embeddings never stream.
    fn usage_injection(&self, op: Operation) -> Option<&'static dyn UsageInjection> {
        (op != Operation::Embeddings).then_some(&usage::IncludeUsage)
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(SseWatcher::<response::ChatReader>::new(count_only))
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        response::summarize_body(body)
    }

    /// `[DONE]`, or a finish reason on some choice (servers that end without `[DONE]`).
    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.saw_done || s.finish_reasons.iter().any(Option::is_some)
    }
}
