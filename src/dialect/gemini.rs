//! Google's Gemini API: the Developer API (`generativelanguage.googleapis.com`) and Gemini on
//! Vertex AI (`{location}-aiplatform.googleapis.com`, publisher `google`). References: the
//! Gemini API reference ("Generating content", "Embeddings", "Tokens", `GenerateContentResponse`,
//! `UsageMetadata`) and Vertex AI's `projects.locations.publishers.models` REST reference.
//!
//! Paths carry their own API version and name the model and the method, so they are claimed
//! whole ([`Dialect::claim_path`]) and forwarded unchanged onto the upstream's base URL (the
//! origin, `https://generativelanguage.googleapis.com`):
//! - `/{v1beta|v1alpha}/models/{model}:{method}` (and `tunedModels/`), and every other path
//!   under those versions (list models, files, cached contents: passed through untraced);
//! - `/v1/models/{model}:{method}`, told apart from OpenAI's `/v1/models/{id}` by the `:`;
//! - Vertex: `/{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`
//!   (and the express-mode `/v1/publishers/google/models/...`).
//!
//! `:generateContent` and `:streamGenerateContent` are `generate_content` operations (the
//! conventions' value for Gemini's Generate Content); `:embedContent` and
//! `:batchEmbedContents` are `embeddings`; `:countTokens` and the rest pass through untraced.
//!
//! A response is one `GenerateContentResponse`; a stream is a sequence of them, framed as SSE
//! with `?alt=sse` (`data: {...}\r\n\r\n`, no event names, no `[DONE]`) or, without it, as
//! one JSON array sent element by element (`application/json`). Every chunk carries the
//! cumulative `usageMetadata`; a stream is complete once a candidate has a `finishReason`.
//! Function calls come whole (`functionCall: {name, args, id?}`) or, on Vertex with streamed
//! arguments, as `{name, willContinue}` then `partialArgs` pieces then an empty `{}`.
//! Errors are `{"error":{"code","message","status"}}`.

use serde_json::{Map, Value};

use crate::vocab::prompt::PromptHasher;
use crate::vocab::provider::Provider;
use crate::vocab::request::{RequestContent, RequestInfo};
use crate::vocab::summary::{FeedOutcome, ResponseSummary, Usage};

use super::watch::{EventReader, JsonArrayWatcher, SseWatcher};
use super::{Dialect, Operation, PathClaim, StreamWatcher};

/// Gemini, on one of Google's two surfaces: the same request, response and stream shapes
/// under different paths and provider names.
#[derive(Debug)]
pub struct Gemini {
    /// Vertex AI (`gen_ai.provider.name` `gcp.vertex_ai`) rather than the Developer API
    /// (`gcp.gemini`).
    vertex: bool,
}

/// The Gemini Developer API (`gen_ai.provider.name` `gcp.gemini`).
pub const GEMINI_API: Gemini = Gemini { vertex: false };

/// Gemini models on Vertex AI (`gen_ai.provider.name` `gcp.vertex_ai`).
pub const VERTEX_GEMINI: Gemini = Gemini { vertex: true };

impl Dialect for Gemini {
    fn name(&self) -> &'static str {
        if self.vertex {
            "vertex_gemini"
        } else {
            "gemini"
        }
    }

    /// Gemini paths are never under llmtap's `/v1/` prefix: see [`Dialect::claim_path`].
    fn claim_path(&self, path: &str, method: &http::Method) -> Option<PathClaim> {
        if self.vertex {
            let (publisher, under_project) = vertex_publisher_path(path)?;
            return match publisher.strip_prefix("publishers/google/") {
                Some(models) => Some(model_method(models, method).unwrap_or_default()),
                // Other Vertex paths under a project (endpoints, cached contents): passed
                // through, except other publishers' models, which their own dialects claim.
                None if under_project && !publisher.starts_with("publishers/") => {
                    Some(PathClaim::default())
                }
                None => None,
            };
        }
        let (version, rest) = path.strip_prefix('/')?.split_once('/')?;
        match version {
            "v1beta" | "v1alpha" => Some(model_method(rest, method).unwrap_or_default()),
            // `/v1/models/{id}` without a method is OpenAI's.
            "v1" => model_method(rest, method).filter(|c| c.model.is_some()),
            _ => None,
        }
    }

    fn provider(&self) -> Option<Provider> {
        Some(if self.vertex {
            Provider::VertexAi
        } else {
            Provider::Gemini
        })
    }

    fn request_facts(
        &self,
        obj: &Map<String, Value>,
        op: Operation,
        capture: bool,
        hasher: &PromptHasher,
    ) -> RequestInfo {
        request_facts(obj, op, capture, hasher)
    }

    fn stream_watcher(&self, count_only: bool) -> Box<dyn StreamWatcher> {
        Box::new(GeminiWatcher::new(count_only))
    }

    fn streams_json(&self) -> bool {
        true
    }

    fn summarize_body(&self, body: &[u8]) -> ResponseSummary {
        summarize_body(body)
    }

    fn stream_complete(&self, s: &ResponseSummary) -> bool {
        s.stream_ended
    }

    fn error_body(&self, message: &str, _kind: &str, _code: &str, status: u16) -> String {
        google_error_body(message, status)
    }
}

/// A Vertex AI path, `/{v1|v1beta1}/projects/{p}/locations/{l}/{rest}` or express mode's
/// `/{v1|v1beta1}/{rest}`: the `rest` and whether it was under a project.
pub(super) fn vertex_publisher_path(path: &str) -> Option<(&str, bool)> {
    let (version, rest) = path.strip_prefix('/')?.split_once('/')?;
    if !matches!(version, "v1" | "v1beta1") {
        return None;
    }
    match rest.strip_prefix("projects/") {
        Some(after) => {
            let mut segs = after.splitn(4, '/');
            let (_project, locations, _location, tail) =
                (segs.next()?, segs.next()?, segs.next()?, segs.next()?);
            (locations == "locations").then_some((tail, true))
        }
        None => Some((rest, false)),
    }
}

/// `models/{model}:{method}` (or `tunedModels/`): the model, the operation and whether the
/// method streams. `None` when `rest` does not name a model and a method.
fn model_method(rest: &str, method: &http::Method) -> Option<PathClaim> {
    let named = rest
        .strip_prefix("models/")
        .or_else(|| rest.strip_prefix("tunedModels/"))?;
    let (model, verb) = named.split_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let (operation, stream) = match (method == http::Method::POST, verb) {
        (true, "generateContent") => (Some(Operation::GenerateContent), false),
        (true, "streamGenerateContent") => (Some(Operation::GenerateContent), true),
        (true, "embedContent" | "batchEmbedContents") => (Some(Operation::Embeddings), false),
        _ => (None, false),
    };
    Some(PathClaim {
        operation,
        model: Some(model.to_owned()),
        stream,
    })
}

/// Google's error envelope with the canonical status for an HTTP status (google.rpc.Code's
/// HTTP mapping), so `google-genai` raises its usual `ClientError` / `ServerError`.
pub(crate) fn google_error_body(message: &str, status: u16) -> String {
    let name = match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    serde_json::json!({"error": {"code": status, "message": message, "status": name}}).to_string()
}

/// A key in either spelling: proto JSON accepts the lowerCamel name and the field's own.
fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(snake))
}

fn request_facts(
    obj: &Map<String, Value>,
    op: Operation,
    capture: bool,
    hasher: &PromptHasher,
) -> RequestInfo {
    let mut info = RequestInfo::default();
    if op == Operation::Embeddings {
        // embedContent: {content, outputDimensionality}; batchEmbedContents: {requests: [...]}.
        let requests: Vec<&Map<String, Value>> = match obj.get("requests") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_object).collect(),
            _ => vec![obj],
        };
        info.message_count = requests.len() as u64;
        for r in &requests {
            if let Some(c) = r.get("content") {
                info.prompt_chars += parts_text(c.get("parts")).chars().count() as u64;
            }
            if info.dimensions.is_none() {
                info.dimensions = field(r, "outputDimensionality", "output_dimensionality")
                    .and_then(Value::as_i64);
            }
        }
        info.prompt_hash = hasher.prompt_hash(&requests);
        return info;
    }
    if let Some(g) = field(obj, "generationConfig", "generation_config").and_then(Value::as_object)
    {
        let f = |camel, snake| field(g, camel, snake).and_then(Value::as_f64);
        let i = |camel, snake| field(g, camel, snake).and_then(Value::as_i64);
        info.temperature = f("temperature", "temperature");
        info.top_p = f("topP", "top_p");
        info.top_k = f("topK", "top_k");
        info.max_tokens = i("maxOutputTokens", "max_output_tokens");
        info.choice_count = i("candidateCount", "candidate_count");
        info.seed = i("seed", "seed");
        info.presence_penalty = f("presencePenalty", "presence_penalty");
        info.frequency_penalty = f("frequencyPenalty", "frequency_penalty");
        info.stop = match field(g, "stopSequences", "stop_sequences") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        info.output_type = field(g, "responseMimeType", "response_mime_type")
            .and_then(Value::as_str)
            .map(|m| match m {
                "application/json" => "json".to_owned(),
                "text/plain" => "text".to_owned(),
                other => other.to_owned(),
            });
        // Gemini 3's `thinkingLevel`, else 2.5's `thinkingBudget` (tokens) as sent.
        if let Some(t) = field(g, "thinkingConfig", "thinking_config").and_then(Value::as_object) {
            info.reasoning_level = match field(t, "thinkingLevel", "thinking_level") {
                Some(Value::String(l)) => Some(l.clone()),
                _ => field(t, "thinkingBudget", "thinking_budget")
                    .and_then(Value::as_i64)
                    .map(|b| b.to_string()),
            };
        }
    }
    info.tool_descriptions = tool_descriptions(obj);
    let system = field(obj, "systemInstruction", "system_instruction");
    let system_text = system
        .map(|s| parts_text(s.get("parts")))
        .unwrap_or_default();
    info.prompt_chars += system_text.chars().count() as u64;
    let contents = obj.get("contents").and_then(Value::as_array);
    for c in contents.into_iter().flatten() {
        info.message_count += 1;
        info.prompt_chars += parts_text(c.get("parts")).chars().count() as u64;
    }
    info.tool_results = tool_results(contents.map(Vec::as_slice).unwrap_or_default());
    if let Some(c) = obj.get("contents") {
        info.prompt_hash = hasher.prompt_hash(&(c, system));
    }
    if capture {
        info.content = Some(content(obj, &system_text));
    }
    info
}

/// The text of a content's parts, thoughts excluded.
fn parts_text(parts: Option<&Value>) -> String {
    parts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// `tools: [{functionDeclarations: [{name, description, parameters}]}]`.
fn tool_descriptions(obj: &Map<String, Value>) -> Vec<(String, String)> {
    let flat: Map<String, Value> = std::iter::once((
        "tools".to_owned(),
        Value::Array(declarations(obj).cloned().collect()),
    ))
    .collect();
    crate::vocab::request::tool_descriptions(&flat, |t| Some(t))
}

fn declarations(obj: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    obj.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            t.as_object()
                .and_then(|t| field(t, "functionDeclarations", "function_declarations"))
        })
        .filter_map(Value::as_array)
        .flatten()
}

/// The key of a function call that came without an `id`: its name and a hash of its
/// arguments' canonical JSON. The response that asks for the call and the next request, which
/// repeats the call in its history before the `functionResponse`, both compute it, so the
/// call's `execute_tool` span closes without an id. See [`crate::vocab::summary::unnamed_call_key`].
fn call_key(name: &str, args: Option<&Value>) -> String {
    let canonical = args.map(Value::to_string).unwrap_or_else(|| "{}".into());
    crate::vocab::summary::unnamed_call_key(name, &canonical)
}

/// `functionResponse` parts of the request: each closes the call with its `id`, else the
/// first not yet answered call of the same name in the latest model turn before it (whose
/// `id`, or name-and-arguments key, names the call).
fn tool_results(contents: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Calls of the latest model turn: (name, key), and whether each is answered.
    let mut open: Vec<(String, String, bool)> = Vec::new();
    for c in contents {
        let parts = c.get("parts").and_then(Value::as_array);
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        if role == "model" {
            open.clear();
            for p in parts.into_iter().flatten() {
                if let Some(call) = p.get("functionCall").or_else(|| p.get("function_call")) {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or("");
                    let key = match call.get("id").and_then(Value::as_str) {
                        Some(id) if !id.is_empty() => id.to_owned(),
                        _ => call_key(name, call.get("args")),
                    };
                    open.push((name.to_owned(), key, false));
                }
            }
            continue;
        }
        for p in parts.into_iter().flatten() {
            let Some(resp) = p
                .get("functionResponse")
                .or_else(|| p.get("function_response"))
            else {
                continue;
            };
            let name = resp.get("name").and_then(Value::as_str).unwrap_or("");
            let result = resp
                .get("response")
                .map(Value::to_string)
                .unwrap_or_default();
            let id = resp
                .get("id")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty());
            let slot = open
                .iter_mut()
                .find(|(n, key, done)| !done && (id.is_some_and(|i| i == key) || n == name));
            let key = match (id, slot) {
                (Some(i), slot) => {
                    if let Some(s) = slot {
                        s.2 = true;
                    }
                    i.to_owned()
                }
                (None, Some(s)) => {
                    s.2 = true;
                    s.1.clone()
                }
                (None, None) => continue,
            };
            out.push((key, result));
        }
    }
    out
}

/// Contents in the semconv message shape (`model` is the `assistant`); the system
/// instruction apart; function declarations as tool definitions. Thought parts are
/// `reasoning` parts: they are content, exported only with capture on like the rest.
fn content(obj: &Map<String, Value>, system: &str) -> RequestContent {
    let mut out = RequestContent::default();
    if !system.is_empty() {
        out.system_instructions = Some(serde_json::json!([{"type": "text", "content": system}]));
    }
    let messages: Vec<Value> = obj
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let role = match c.get("role").and_then(Value::as_str) {
                Some("model") => "assistant",
                Some(other) => other,
                None => "user",
            };
            let parts: Vec<Value> = c
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    if let Some(call) = p.get("functionCall") {
                        return Some(serde_json::json!({"type": "tool_call",
                            "id": call.get("id"), "name": call.get("name"),
                            "arguments": call.get("args")}));
                    }
                    if let Some(r) = p.get("functionResponse") {
                        return Some(serde_json::json!({"type": "tool_call_response",
                            "id": r.get("id"), "response": r.get("response")}));
                    }
                    let text = p.get("text").and_then(Value::as_str)?;
                    let kind = if p.get("thought").and_then(Value::as_bool) == Some(true) {
                        "reasoning"
                    } else {
                        "text"
                    };
                    Some(serde_json::json!({"type": kind, "content": text}))
                })
                .collect();
            serde_json::json!({"role": role, "parts": parts})
        })
        .collect();
    out.input_messages = Some(Value::Array(messages));
    let defs: Vec<Value> = declarations(obj)
        .map(|d| {
            serde_json::json!({"type": "function", "name": d.get("name"),
                "description": d.get("description"),
                "parameters": d.get("parameters").or_else(|| d.get("parametersJsonSchema"))})
        })
        .collect();
    if !defs.is_empty() {
        out.tool_definitions = Some(Value::Array(defs));
    }
    out
}

/// A whole response body: one response, an error, an embedding, or the array a
/// `streamGenerateContent` without `alt=sse` returns when it was not watched as a stream.
fn summarize_body(body: &[u8]) -> ResponseSummary {
    let mut s = ResponseSummary::default();
    let mut reader = GeminiReader::default();
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => {
            for v in &items {
                reader.response(v, &mut s, false);
            }
        }
        Ok(v @ Value::Object(_)) => {
            reader.response(&v, &mut s, false);
            embedding(&v, &mut s);
        }
        _ => s.parse_failed = true,
    }
    reader.finish(&mut s);
    s
}

/// `embedding.values` (embedContent) or `embeddings[0].values` (batchEmbedContents).
fn embedding(v: &Value, s: &mut ResponseSummary) {
    let values = v
        .pointer("/embedding/values")
        .or_else(|| v.pointer("/embeddings/0/values"))
        .and_then(Value::as_array);
    if let Some(values) = values {
        s.embedding_dimensions = Some(values.len() as u64);
    }
}

/// Vertex's `FinishReason` numbers (`enum-encoding=int`, aiplatform v1 `content.proto`);
/// numbers past the ones both APIs agree on are kept as numbers.
fn finish_reason_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            let names = [
                "FINISH_REASON_UNSPECIFIED",
                "STOP",
                "MAX_TOKENS",
                "SAFETY",
                "RECITATION",
                "OTHER",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "MALFORMED_FUNCTION_CALL",
            ];
            let i = n.as_u64()?;
            Some(
                names
                    .get(i as usize)
                    .map_or_else(|| i.to_string(), |s| (*s).to_owned()),
            )
        }
        _ => None,
    }
}

/// `usageMetadata` (cumulative on every chunk: the latest wins). The conventions count every
/// input token in `input_tokens` and every output token in `output_tokens`, so:
/// input = `promptTokenCount` (cached tokens included) + `toolUsePromptTokenCount` (the
/// results of Google's own tools fed back to the model); output = `candidatesTokenCount` +
/// `thoughtsTokenCount` (both billed as output); `cachedContentTokenCount` is the cache read
/// and `thoughtsTokenCount` the reasoning tokens.
fn usage(u: &Value, s: &mut ResponseSummary) {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    let (prompt, tool, candidates, thoughts, cached) = (
        n("promptTokenCount"),
        n("toolUsePromptTokenCount"),
        n("candidatesTokenCount"),
        n("thoughtsTokenCount"),
        n("cachedContentTokenCount"),
    );
    if [prompt, tool, candidates, thoughts, cached]
        .iter()
        .all(Option::is_none)
    {
        // Vertex sends `{trafficType}` alone until the last chunk.
        return;
    }
    let usage = s.usage.get_or_insert_with(Usage::default);
    if prompt.is_some() || tool.is_some() {
        usage.input_tokens = Some(prompt.unwrap_or(0) + tool.unwrap_or(0));
    }
    if candidates.is_some() || thoughts.is_some() {
        usage.output_tokens = Some(candidates.unwrap_or(0) + thoughts.unwrap_or(0));
    }
    if thoughts.is_some() {
        usage.reasoning_output_tokens = thoughts;
    }
    if cached.is_some() {
        usage.cache_read_input_tokens = cached;
    }
}

/// Reads `GenerateContentResponse` objects, one per chunk.
#[derive(Default)]
struct GeminiReader {
    /// A function call whose arguments are still streaming (`willContinue`): the call and its
    /// arguments so far, by JSON path.
    partial: Option<(usize, Map<String, Value>)>,
    /// Function calls seen per candidate (their `index` within the candidate).
    calls_per_candidate: Vec<u32>,
    /// Content capture is off: arguments are counted, not held (they still key a call
    /// without an id, computed before they are dropped).
    count_only: bool,
}

impl GeminiReader {
    fn response(&mut self, v: &Value, s: &mut ResponseSummary, count_only: bool) {
        self.count_only = count_only;
        if let Some(e) = v.get("error").filter(|e| e.is_object()) {
            let status = e.get("status").and_then(Value::as_str);
            let code = status
                .map(str::to_owned)
                .or_else(|| e.get("code").map(Value::to_string));
            s.set_error(
                e.get("message").and_then(Value::as_str),
                status,
                code.as_deref(),
            );
            return;
        }
        s.set_id_and_model(
            v.get("responseId").and_then(Value::as_str),
            v.get("modelVersion").and_then(Value::as_str),
        );
        for (pos, cand) in v
            .get("candidates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = cand
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64) as usize;
            for p in cand
                .pointer("/content/parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.part(p, index, s, count_only);
            }
            if let Some(r) = cand.get("finishReason").and_then(finish_reason_name) {
                s.set_finish_reason(index, &r);
                s.stream_ended = true;
            }
        }
        // A prompt refused before any candidate: visible as `error.type` `prompt_blocked`.
        if let Some(reason) = v
            .pointer("/promptFeedback/blockReason")
            .and_then(|r| finish_reason_name(r).or_else(|| Some(r.to_string())))
        {
            s.set_error(
                Some(&format!("the prompt was blocked: {reason}")),
                Some(&reason),
                Some("prompt_blocked"),
            );
            s.stream_ended = true;
        }
        if let Some(u) = v.get("usageMetadata") {
            usage(u, s);
        }
    }

    fn part(&mut self, p: &Value, index: usize, s: &mut ResponseSummary, count_only: bool) {
        if let Some(call) = p.get("functionCall") {
            self.function_call(call, index, s);
            return;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                // Thought summaries are reasoning: counted, never kept as output content.
                s.push_reasoning(t);
            } else {
                s.push_text(index, t, count_only);
            }
        }
        // `executableCode` / `codeExecutionResult` run on Google's side: not the app's tools.
    }

    fn function_call(&mut self, call: &Value, index: usize, s: &mut ResponseSummary) {
        let name = call.get("name").and_then(Value::as_str).unwrap_or("");
        let continues = call.get("willContinue").and_then(Value::as_bool) == Some(true);
        if let Some(pieces) = call.get("partialArgs").and_then(Value::as_array) {
            if let Some((_, args)) = &mut self.partial {
                for piece in pieces {
                    partial_arg(piece, args);
                }
            }
            if !continues {
                self.close_partial(s);
            }
            return;
        }
        if name.is_empty() {
            // `functionCall: {}` ends the call whose arguments streamed.
            self.close_partial(s);
            return;
        }
        self.close_partial(s);
        if self.calls_per_candidate.len() <= index {
            self.calls_per_candidate.resize(index + 1, 0);
        }
        let n = self.calls_per_candidate[index];
        self.calls_per_candidate[index] += 1;
        let id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let Some(k) = s.tool_call(n, id, name, "function") else {
            return;
        };
        if continues && call.get("args").is_none() {
            self.partial = Some((k, Map::new()));
            return;
        }
        let args = call
            .get("args")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        self.set_arguments(k, id, name, &args, s);
    }

    /// The streamed arguments are complete: they become the call's arguments.
    fn close_partial(&mut self, s: &mut ResponseSummary) {
        if let Some((k, args)) = self.partial.take() {
            let (id, name) = match s.tool_calls.get(k) {
                Some(c) => (c.id.clone(), c.name.clone()),
                None => return,
            };
            self.set_arguments(k, &id, &name, &Value::Object(args), s);
        }
    }

    /// Arguments as canonical JSON; a call without an id gets its name-and-arguments key.
    fn set_arguments(&self, k: usize, id: &str, name: &str, args: &Value, s: &mut ResponseSummary) {
        if let Some(c) = s.tool_calls.get_mut(k) {
            c.arguments.clear();
            if id.is_empty() {
                c.id = call_key(name, Some(args));
            }
        }
        s.push_arguments(k, &args.to_string(), self.count_only);
    }
}

/// One `partialArgs` piece: `{jsonPath: "$.a.b", stringValue | numberValue | boolValue |
/// nullValue, willContinue}`. Strings arrive in pieces and are appended.
fn partial_arg(piece: &Value, args: &mut Map<String, Value>) {
    let Some(path) = piece.get("jsonPath").and_then(Value::as_str) else {
        return;
    };
    let keys: Vec<&str> = path
        .trim_start_matches('$')
        .split('.')
        .filter(|k| !k.is_empty())
        .collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut target = args;
    for k in parents {
        let slot = target
            .entry((*k).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(m) = slot else { return };
        target = m;
    }
    if let Some(piece) = piece.get("stringValue").and_then(Value::as_str) {
        match target.get_mut(*last) {
            Some(Value::String(s)) => s.push_str(piece),
            _ => {
                target.insert((*last).to_owned(), Value::String(piece.to_owned()));
            }
        }
    } else if let Some(v) = piece
        .get("numberValue")
        .or_else(|| piece.get("boolValue"))
        .cloned()
    {
        target.insert((*last).to_owned(), v);
    } else if piece.get("nullValue").is_some() {
        target.insert((*last).to_owned(), Value::Null);
    }
}

impl EventReader for GeminiReader {
    fn event(
        &mut self,
        _event: Option<&str>,
        v: &Value,
        s: &mut ResponseSummary,
        count_only: bool,
    ) {
        if v.is_object() {
            self.response(v, s, count_only);
        } else {
            s.parse_failed = true;
        }
    }

    fn finish(&mut self, s: &mut ResponseSummary) {
        // A stream cut inside streamed arguments: keep what came.
        self.close_partial(s);
    }
}

/// Reads a stream in either framing: SSE (`?alt=sse`) or a JSON array, told apart by the
/// first byte that is not whitespace (`[` for the array).
struct GeminiWatcher {
    count_only: bool,
    inner: Option<Box<dyn StreamWatcher>>,
    /// The summary while nothing but whitespace came.
    empty: ResponseSummary,
}

impl GeminiWatcher {
    fn new(count_only: bool) -> Self {
        GeminiWatcher {
            count_only,
            inner: None,
            empty: ResponseSummary::default(),
        }
    }
}

impl StreamWatcher for GeminiWatcher {
    fn feed(&mut self, bytes: &[u8]) -> FeedOutcome {
        if self.inner.is_none() {
            let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
                return FeedOutcome::default();
            };
            self.inner = Some(if *first == b'[' {
                Box::new(JsonArrayWatcher::<GeminiReader>::new(self.count_only))
            } else {
                Box::new(SseWatcher::<GeminiReader>::new(self.count_only))
            });
        }
        match &mut self.inner {
            Some(w) => w.feed(bytes),
            None => FeedOutcome::default(),
        }
    }

    fn framing_failed(&mut self) {
        match &mut self.inner {
            Some(w) => w.framing_failed(),
            None => self.empty.parse_failed = true,
        }
    }

    fn summary(&self) -> &ResponseSummary {
        match &self.inner {
            Some(w) => w.summary(),
            None => &self.empty,
        }
    }

    fn finish(self: Box<Self>) -> ResponseSummary {
        match self.inner {
            Some(w) => w.finish(),
            None => self.empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    /// The stream fed in pieces of `split` bytes.
    fn watch(d: &dyn Dialect, stream: &[u8], split: usize) -> ResponseSummary {
        let mut w = d.stream_watcher(false);
        for piece in stream.chunks(split) {
            w.feed(piece);
        }
        w.finish()
    }

    /// Every split gives the same summary as the whole stream in one piece.
    fn golden(d: &dyn Dialect, name: &str) -> ResponseSummary {
        let s = fixture(name);
        let whole = watch(d, &s, s.len());
        for split in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(watch(d, &s, split), whole, "{name} split {split}");
        }
        assert!(!whole.parse_failed, "{name}");
        whole
    }

    fn claim(path: &str) -> Option<(&'static str, PathClaim)> {
        super::super::claim(path, &http::Method::POST).map(|(d, c)| (d.name(), c))
    }

    #[test]
    fn paths_are_claimed_with_model_operation_and_stream() {
        let (d, c) = claim("/v1beta/models/gemini-2.5-flash:streamGenerateContent").unwrap();
        assert_eq!(d, "gemini");
        assert_eq!(c.operation, Some(Operation::GenerateContent));
        assert_eq!(c.model.as_deref(), Some("gemini-2.5-flash"));
        assert!(c.stream);
        let (_, c) = claim("/v1/models/gemini-2.5-flash:generateContent").unwrap();
        assert_eq!(c.operation, Some(Operation::GenerateContent));
        assert!(!c.stream);
        let (_, c) = claim("/v1beta/models/gemini-embedding-001:batchEmbedContents").unwrap();
        assert_eq!(c.operation, Some(Operation::Embeddings));
        let (_, c) = claim("/v1beta/models/gemini-2.5-flash:countTokens").unwrap();
        assert_eq!(c.operation, None);
        assert_eq!(c.model.as_deref(), Some("gemini-2.5-flash"));
        // Other paths under v1beta pass through; OpenAI's /v1/models/{id} is not claimed.
        assert_eq!(claim("/v1beta/files").unwrap().1.operation, None);
        assert!(claim("/v1/models/gpt-4o").is_none());
        assert!(claim("/v1/chat/completions").is_none());
        let (d, c) = claim(
            "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent",
        )
        .unwrap();
        assert_eq!(d, "vertex_gemini");
        assert_eq!(c.model.as_deref(), Some("gemini-2.5-pro"));
        assert!(c.stream);
        let (d, _) = claim("/v1beta1/projects/p/locations/global/endpoints/e:predict").unwrap();
        assert_eq!(d, "vertex_gemini");
    }

    #[test]
    fn text_stream_with_crlf_framing() {
        let s = golden(&GEMINI_API, "gemini-stream-text.sse");
        assert_eq!(s.output_text, vec!["Ciel bleu, vent léger.\n".to_string()]);
        assert_eq!(s.chunk_count, 3);
        assert_eq!(s.finish_reasons, vec![Some("STOP".into())]);
        assert!(s.stream_ended && GEMINI_API.stream_complete(&s));
        assert_eq!(s.model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(s.id.as_deref(), Some("kq7rYm9xLlmtapA1"));
        // The last chunk's cumulative usage wins (the prompt count drops there, as recorded).
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(9), Some(7)));
    }

    #[test]
    fn thinking_stream_counts_thoughts_as_reasoning_not_text() {
        let s = golden(&GEMINI_API, "gemini-stream-thinking.sse");
        assert_eq!(s.output_text, vec!["Take the 7:42 train.".to_string()]);
        assert!(s.reasoning_chars > 0);
        let u = s.usage.unwrap();
        // 12 answer tokens + 140 thought tokens.
        assert_eq!(u.output_tokens, Some(152));
        assert_eq!(u.reasoning_output_tokens, Some(140));
        assert_eq!(u.input_tokens, Some(21));
    }

    #[test]
    fn parallel_function_calls_with_ids_and_signatures() {
        let s = golden(&GEMINI_API, "gemini-stream-function-call.sse");
        let calls: Vec<(&str, &str, &str)> = s
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("fc7q2x1a", "get_weather", r#"{"city":"Lyon"}"#),
                ("fc7q2x1b", "get_weather", r#"{"city":"Nantes"}"#)
            ]
        );
        assert_eq!(s.finish_reasons, vec![Some("STOP".into())]);
        assert_eq!(s.usage.unwrap().reasoning_output_tokens, Some(61));
    }

    #[test]
    fn tool_use_prompt_tokens_are_input() {
        let s = golden(&GEMINI_API, "gemini-stream-code-execution.sse");
        let u = s.usage.unwrap();
        // 20 prompt + 300 from the code tool's results; 90 candidates + 50 thoughts.
        assert_eq!(u.input_tokens, Some(320));
        assert_eq!(u.output_tokens, Some(140));
        assert!(s.tool_calls.is_empty(), "code execution is Google's tool");
    }

    #[test]
    fn vertex_array_stream_with_numeric_enums() {
        let s = golden(&VERTEX_GEMINI, "vertex-stream-array.json");
        assert_eq!(s.chunk_count, 3);
        assert_eq!(s.output_text, vec!["Un, deux, trois.".to_string()]);
        assert_eq!(s.finish_reasons, vec![Some("STOP".into())]);
        assert_eq!(s.usage.as_ref().unwrap().input_tokens, Some(6));
        assert!(VERTEX_GEMINI.stream_complete(&s));
        // The same bytes as a whole body (not watched as a stream) say the same.
        let body = VERTEX_GEMINI.summarize_body(&fixture("vertex-stream-array.json"));
        assert_eq!(body.output_text, s.output_text);
        assert_eq!(body.usage, s.usage);
    }

    #[test]
    fn vertex_streamed_arguments_are_reassembled() {
        let s = golden(
            &VERTEX_GEMINI,
            "vertex-stream-function-call-partial-args.sse",
        );
        assert_eq!(s.tool_calls.len(), 2);
        assert_eq!(s.tool_calls[0].name, "get_weather");
        assert_eq!(s.tool_calls[0].arguments, r#"{"city":"Saint-Malo"}"#);
        assert_eq!(s.tool_calls[1].arguments, r#"{"city":"Brest"}"#);
        // No ids: each gets its name-and-arguments key, distinct per call.
        assert!(s.tool_calls[0]
            .id
            .starts_with(crate::vocab::summary::UNNAMED_CALL_PREFIX));
        assert_ne!(s.tool_calls[0].id, s.tool_calls[1].id);
        // Vertex's `trafficType` is not OpenAI's service tier: not reported as one.
        assert_eq!(s.service_tier, None);
    }

    #[test]
    fn whole_bodies_errors_and_blocks() {
        let s = GEMINI_API.summarize_body(&fixture("gemini-generate-content-cached.json"));
        assert_eq!(s.output_text, vec!["Rennes.".to_string()]);
        let u = s.usage.unwrap();
        assert_eq!(u.cache_read_input_tokens, Some(2048));
        assert_eq!(u.input_tokens, Some(2060));
        assert_eq!(u.output_tokens, Some(3 + 25));
        let s = GEMINI_API.summarize_body(&fixture("gemini-error-429.json"));
        let e = s.error.unwrap();
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        let s = GEMINI_API
            .summarize_body(br#"{"promptFeedback":{"blockReason":"SAFETY"},"modelVersion":"m"}"#);
        assert_eq!(s.error.unwrap().code.as_deref(), Some("prompt_blocked"));
        let s = GEMINI_API.summarize_body(
            br#"{"candidates":[{"content":{"parts":[]},"finishReason":"SAFETY"}]}"#,
        );
        assert_eq!(s.finish_reasons, vec![Some("SAFETY".into())]);
        let s = GEMINI_API.summarize_body(&fixture("gemini-batch-embed-contents.json"));
        assert_eq!(s.embedding_dimensions, Some(8));
    }

    #[test]
    fn own_errors_in_googles_shape() {
        let body: Value =
            serde_json::from_str(&GEMINI_API.error_body("no route", "x", "not_found", 404))
                .unwrap();
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["status"], "NOT_FOUND");
        assert_eq!(body["error"]["message"], "no route");
    }

    #[test]
    fn function_responses_close_calls_by_id_else_by_name_in_order() {
        let body = serde_json::json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64, "topK": 40,
            "stopSequences": ["END"], "thinkingConfig": {"thinkingLevel": "low"}},
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather now"}]}],
        "contents": [
            {"role": "user", "parts": [{"text": "Lyon and Nantes?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}, "id": "fc1"}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Nantes"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Brest"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"t": 18}, "id": "fc1"}},
                {"functionResponse": {"name": "get_weather", "response": {"t": 15}}},
                {"functionResponse": {"name": "get_weather", "response": {"t": 12}}}]}
        ]});
        let info = GEMINI_API.request_facts(
            body.as_object().unwrap(),
            Operation::GenerateContent,
            true,
            &PromptHasher::from_secret(b"k"),
        );
        let nantes = call_key("get_weather", Some(&serde_json::json!({"city": "Nantes"})));
        let brest = call_key("get_weather", Some(&serde_json::json!({"city": "Brest"})));
        assert_eq!(
            info.tool_results,
            vec![
                ("fc1".to_string(), r#"{"t":18}"#.to_string()),
                (nantes, r#"{"t":15}"#.to_string()),
                (brest, r#"{"t":12}"#.to_string())
            ]
        );
        assert_eq!(info.temperature, Some(0.2));
        assert_eq!(info.max_tokens, Some(64));
        assert_eq!(info.top_k, Some(40.0));
        assert_eq!(info.stop, vec!["END".to_string()]);
        assert_eq!(info.reasoning_level.as_deref(), Some("low"));
        assert_eq!(info.message_count, 3);
        assert_eq!(
            info.tool_descriptions,
            vec![("get_weather".into(), "Weather now".into())]
        );
        let c = info.content.unwrap();
        assert_eq!(c.input_messages.unwrap()[1]["role"], "assistant");
        assert!(c.system_instructions.is_some());
        // The key a response gives an id-less call is the one its result names.
        let mut s = ResponseSummary::default();
        let mut r = GeminiReader::default();
        r.response(
            &serde_json::json!({"candidates": [{"content": {"parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Nantes"}}}]}}]}),
            &mut s,
            false,
        );
        assert_eq!(s.tool_calls[0].id, info.tool_results[1].0);
    }
}
