//! OpenAI Chat Completions, legacy Completions and Embeddings (also Azure OpenAI's
//! deployment paths, vLLM, Ollama's `/v1` surface and every OpenAI-compatible server).
//! Reference: the OpenAI API reference, "Chat", "Completions", "Embeddings".
//!
//! The wire parsing itself lives in `stream::openai` (it predates the dialects and is the hot
//! path); this file adapts it to the [`Dialect`] trait.

use serde_json::{Map, Value};

use crate::request::{self, PromptHasher, RequestInfo};
use crate::stream::openai::{summarize_json_body, StreamAccumulator};
use crate::summary::{FeedOutcome, ResponseSummary};

use super::{ApiPath, Dialect, Operation, StreamWatcher};

#[derive(Debug)]
pub struct OpenAiChat;

impl Dialect for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai_chat"
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

    fn injects_usage(&self, op: Operation) -> bool {
        op != Operation::Embeddings
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(if count_only {
            StreamAccumulator::counting_only()
        } else {
            StreamAccumulator::new()
        })
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        summarize_json_body(body)
    }

    /// `[DONE]`, or a finish reason on some choice (servers that end without `[DONE]`).
    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.saw_done || s.finish_reasons.iter().any(Option::is_some)
    }
}

impl StreamWatcher for StreamAccumulator {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        StreamAccumulator::feed(self, bytes)
    }

    fn feed_event(&mut self, event: Option<&str>, data: &[u8]) -> Option<FeedOutcome> {
        Some(StreamAccumulator::feed_event(self, event, data))
    }

    fn takes_events(&self) -> bool {
        true
    }

    fn framing_failed(&mut self) {
        self.mark_parse_failed();
    }

    fn summary(&self) -> &ResponseSummary {
        StreamAccumulator::summary(self)
    }

    fn finish(self: Box<Self>) -> ResponseSummary {
        StreamAccumulator::finish(*self)
    }
}
