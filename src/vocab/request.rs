//! What a request says, in words every API shares: the facts the dialects read from a request
//! body, and the content captured from it in the semconv shapes.

use serde_json::{Map, Value};

use super::limits::{Limit, MAX_STOP_SEQUENCES, MAX_TOOL_RESULTS};

/// Facts read from a request body. Content is kept only when capture is on.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub include_usage: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
    /// `n`, as sent (the span carries it only when it is not 1).
    pub choice_count: Option<i64>,
    /// `top_k` (vLLM, Ollama and other OpenAI-compatible servers accept it).
    pub top_k: Option<f64>,
    /// `reasoning_effort` (or `reasoning.effort`), the exact string sent.
    pub reasoning_level: Option<String>,
    /// `gen_ai.output.type` from `response_format.type`: `text`, `json` (`json_object`,
    /// `json_schema`), or the type as sent.
    pub output_type: Option<String>,
    /// `service_tier`, as sent (`auto` included).
    pub service_tier: Option<String>,
    /// Embeddings: `dimensions`, when sent.
    pub dimensions: Option<i64>,
    /// The request's function tools as (name, description), for `gen_ai.tool.description` on
    /// the `execute_tool` spans of the calls the response asks for. Bounded.
    pub tool_descriptions: Vec<(String, String)>,
    /// The one function the request forces the model to call, when it does (see
    /// `dialect::forced_tool`): its calls are the structured output.
    pub forced_tool: Option<String>,
    /// Characters of all message content (or prompt/input text).
    pub prompt_chars: u64,
    pub message_count: u64,
    /// Keyed hash (hex) of the canonical JSON of the messages/prompt/input; see [`PromptHasher`].
    pub prompt_hash: Option<String>,
    /// `encoding_format` of an embeddings request (`float`, `base64`).
    pub encoding_formats: Vec<String>,
    /// A conversation the request continues (Responses `conversation` / `previous_response_id`,
    /// the session in Claude Code's `metadata.user_id`).
    pub conversation_id: Option<String>,
    /// Responses `previous_response_id`: `gen_ai.request.previous_response.id` (genai `main`,
    /// #372).
    pub previous_response_id: Option<String>,
    /// `role: tool` messages: (tool_call_id, result text).
    pub tool_results: Vec<(String, String)>,
    /// Semconv-shaped content, filled only when capture is on.
    pub content: Option<RequestContent>,
}

impl RequestInfo {
    /// Applies the storage bounds (docs/limits.md) before the facts are kept anywhere:
    /// identifiers cut to [`MAX_IDENTIFIER_CHARS`](super::limits::MAX_IDENTIFIER_CHARS),
    /// at most [`MAX_TOOL_RESULTS`] tool results (the last ones: the new results of a long
    /// conversation) with their text kept only when `capture` is on, at most
    /// [`MAX_STOP_SEQUENCES`] stop sequences. Returns the bounds that were hit.
    pub fn bound(&mut self, capture: bool) -> Vec<Limit> {
        use super::limits::truncate;
        let mut cut = false;
        let mut hit = Vec::new();
        for s in [
            &mut self.model,
            &mut self.reasoning_level,
            &mut self.output_type,
            &mut self.service_tier,
            &mut self.conversation_id,
        ]
        .into_iter()
        .flatten()
        {
            cut |= truncate(s);
        }
        for (name, _) in &mut self.tool_descriptions {
            cut |= truncate(name);
        }
        if self.tool_results.len() > MAX_TOOL_RESULTS {
            let extra = self.tool_results.len() - MAX_TOOL_RESULTS;
            self.tool_results.drain(..extra);
            hit.push(Limit::ToolResults);
        }
        for (id, text) in &mut self.tool_results {
            cut |= truncate(id);
            if !capture {
                *text = String::new();
            }
        }
        self.tool_results.shrink_to_fit();
        if self.stop.len() > MAX_STOP_SEQUENCES {
            self.stop.truncate(MAX_STOP_SEQUENCES);
            cut = true;
        }
        for s in self.stop.iter_mut().chain(&mut self.encoding_formats) {
            cut |= truncate(s);
        }
        if cut {
            hit.push(Limit::Identifier);
        }
        hit
    }

    /// Counts a prompt given as text (completions' `prompt`, embeddings' `input`): a string is
    /// one message; an array is one message per item, its strings' characters counted. Other
    /// shapes (token arrays aside) count nothing.
    pub fn count_text_prompt(&mut self, prompt: &Value) {
        match prompt {
            Value::String(s) => {
                self.message_count = 1;
                self.prompt_chars = s.chars().count() as u64;
            }
            Value::Array(items) => {
                self.message_count = items.len() as u64;
                self.prompt_chars = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().count() as u64)
                    .sum();
            }
            _ => {}
        }
    }
}

/// Captured content in the semconv JSON shapes, not yet redacted or truncated (that happens
/// at export, per destination).
#[derive(Debug, Default, Clone)]
pub struct RequestContent {
    pub input_messages: Option<Value>,
    pub system_instructions: Option<Value>,
    pub tool_definitions: Option<Value>,
}

/// Tools whose description is kept, and the longest description kept (characters).
pub const MAX_TOOL_DESCRIPTIONS: usize = 128;
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 1024;

/// `(name, description)` of the tools a request offers, for `gen_ai.tool.description` on the
/// execute_tool spans of the calls the response asks for. `function` is the object holding
/// `name` and `description` in a tool entry (the entry itself for flat shapes).
pub fn tool_descriptions(
    obj: &Map<String, Value>,
    function: impl Fn(&Value) -> Option<&Value>,
) -> Vec<(String, String)> {
    obj.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let f = function(t)?;
            let name = f.get("name")?.as_str()?;
            let description = f.get("description")?.as_str()?;
            Some((
                name.to_owned(),
                description
                    .chars()
                    .take(MAX_TOOL_DESCRIPTION_CHARS)
                    .collect(),
            ))
        })
        .take(MAX_TOOL_DESCRIPTIONS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_facts_are_bounded() {
        let long = "m".repeat(10_000);
        let mut info = RequestInfo {
            model: Some(long.clone()),
            tool_results: (0..1000)
                .map(|i| (format!("{long}{i}"), "r".repeat(100)))
                .collect(),
            stop: vec![long.clone(); 40],
            ..Default::default()
        };
        assert_eq!(info.bound(false), [Limit::ToolResults, Limit::Identifier]);
        assert_eq!(info.model.as_deref().map(str::len), Some(257));
        assert_eq!(info.tool_results.len(), MAX_TOOL_RESULTS);
        assert!(info
            .tool_results
            .iter()
            .all(|(id, t)| id.len() == 257 && t.is_empty()));
        assert_eq!(info.stop.len(), MAX_STOP_SEQUENCES);
        let mut small = RequestInfo {
            model: Some("gpt-4o".into()),
            tool_results: vec![("call_1".into(), "42".into())],
            ..Default::default()
        };
        assert!(small.bound(true).is_empty());
        assert_eq!(small.tool_results[0].1, "42");
    }
}
