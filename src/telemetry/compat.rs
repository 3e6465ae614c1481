//! Compatibility profiles (`telemetry.compat`, off by default): each adds one GenAI backend's
//! own attribute names to the inference and `execute_tool` spans, next to the `gen_ai.*` ones
//! and never instead of them. Every name llmtap writes for a profile is in [`NAMES`], with the
//! file in the backend's source it was checked against.

use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use serde_json::{json, Map, Value};

use super::record::FinishedRequest;
use crate::config::CompatProfile;
use crate::route::Operation;
use crate::stream::openai::Usage;

const OI: &str = "Arize-ai/openinference python/openinference-semantic-conventions/src/openinference/semconv/trace/__init__.py";
const LF_ATTRS: &str = "langfuse/langfuse packages/shared/src/server/otel/attributes.ts";
const LF_INGEST: &str =
    "langfuse/langfuse packages/shared/src/server/otel/OtelIngestionProcessor.ts";
const OPENLIT: &str = "openlit/openlit sdk/python/src/openlit/semcov/__init__.py";

// OpenInference (SpanAttributes, OpenInferenceSpanKindValues, OpenInferenceMimeTypeValues).
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";
pub const LLM_MODEL_NAME: &str = "llm.model_name";
pub const EMBEDDING_MODEL_NAME: &str = "embedding.model_name";
pub const LLM_PROVIDER: &str = "llm.provider";
pub const LLM_SYSTEM: &str = "llm.system";
pub const LLM_INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
pub const LLM_TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
pub const LLM_TOKEN_COUNT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
pub const LLM_TOKEN_COUNT_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
pub const LLM_TOKEN_COUNT_REASONING: &str = "llm.token_count.completion_details.reasoning";
pub const INPUT_VALUE: &str = "input.value";
pub const INPUT_MIME_TYPE: &str = "input.mime_type";
pub const OUTPUT_VALUE: &str = "output.value";
pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
pub const SESSION_ID: &str = "session.id";
pub const USER_ID: &str = "user.id";
pub const TOOL_NAME: &str = "tool.name";
pub const TOOL_DESCRIPTION: &str = "tool.description";
// Langfuse (LangfuseOtelSpanAttributes; extractCostDetails, extractUsageDetails).
pub const GEN_AI_USAGE_COST: &str = "gen_ai.usage.cost";
pub const LANGFUSE_COMPLETION_START_TIME: &str = "langfuse.observation.completion_start_time";
pub const LANGFUSE_USAGE_DETAILS: &str = "langfuse.observation.usage_details";
// OpenLIT (SemanticConvention).
pub const GEN_AI_USAGE_TOTAL_TOKENS: &str = "gen_ai.usage.total_tokens";
pub const GEN_AI_SERVER_TTFT: &str = "gen_ai.server.time_to_first_token";
pub const GEN_AI_SYSTEM: &str = "gen_ai.system";

/// Every name a profile adds: (name, profiles, source checked, what llmtap puts there).
pub const NAMES: &[(&str, &str, &str, &str)] = &[
    (OPENINFERENCE_SPAN_KIND, "openinference", OI, "`LLM`, `EMBEDDING` (embeddings), `TOOL` (execute_tool)"),
    (LLM_MODEL_NAME, "openinference", OI, "the response model, else the request model"),
    (EMBEDDING_MODEL_NAME, "openinference", OI, "embeddings: the same model"),
    (LLM_PROVIDER, "openinference", OI, "OpenInferenceLLMProviderValues: `openai`, `azure`, `anthropic`, `ollama`; else gen_ai.provider.name"),
    (LLM_SYSTEM, "openinference", OI, "OpenInferenceLLMSystemValues: `openai` (OpenAI, Azure), `anthropic`; absent otherwise"),
    (LLM_INVOCATION_PARAMETERS, "openinference", OI, "JSON of the request parameters llmtap read (model, temperature, max_tokens, ...)"),
    (LLM_TOKEN_COUNT_PROMPT, "openinference", OI, "gen_ai.usage.input_tokens"),
    (LLM_TOKEN_COUNT_COMPLETION, "openinference", OI, "gen_ai.usage.output_tokens"),
    (LLM_TOKEN_COUNT_TOTAL, "openinference", OI, "input + output"),
    (LLM_TOKEN_COUNT_CACHE_READ, "openinference", OI, "gen_ai.usage.cache_read.input_tokens"),
    (LLM_TOKEN_COUNT_CACHE_WRITE, "openinference", OI, "cache-write input tokens"),
    (LLM_TOKEN_COUNT_REASONING, "openinference", OI, "gen_ai.usage.reasoning.output_tokens"),
    (INPUT_VALUE, "openinference", OI, "content capture on spans only: gen_ai.input.messages (tool: the arguments)"),
    (INPUT_MIME_TYPE, "openinference", OI, "`application/json`, with input.value"),
    (OUTPUT_VALUE, "openinference", OI, "content capture on spans only: gen_ai.output.messages (tool: the result)"),
    (OUTPUT_MIME_TYPE, "openinference", OI, "`application/json` or `text/plain`, with output.value"),
    (SESSION_ID, "openinference", OI, "gen_ai.conversation.id"),
    (USER_ID, "openinference, langfuse", LF_ATTRS, "baggage `user.id` (OpenInference SpanAttributes.USER_ID too)"),
    (TOOL_NAME, "openinference", OI, "execute_tool: gen_ai.tool.name"),
    (TOOL_DESCRIPTION, "openinference", OI, "execute_tool: gen_ai.tool.description"),
    (GEN_AI_USAGE_COST, "langfuse, openlit", LF_INGEST, "total USD from the price table (llmtap.cost's numbers); absent when unpriced. OpenLIT: SemanticConvention.GEN_AI_USAGE_COST"),
    (LANGFUSE_COMPLETION_START_TIME, "langfuse", LF_ATTRS, "streams: start + time to first chunk, ISO 8601 UTC"),
    (LANGFUSE_USAGE_DETAILS, "langfuse", LF_INGEST, "JSON: `input` (uncached), `output` (without reasoning), `input_cached_tokens`, `input_cache_creation`, `output_reasoning_tokens`, `total`: read before the gen_ai.usage.* keys, so nothing is counted twice"),
    (GEN_AI_USAGE_TOTAL_TOKENS, "openlit", OPENLIT, "input + output"),
    (GEN_AI_SERVER_TTFT, "openlit", OPENLIT, "streams: seconds to the first chunk"),
    (GEN_AI_SYSTEM, "openlit", OPENLIT, "gen_ai.provider.name"),
];

/// Which profiles are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compat {
    pub openinference: bool,
    pub langfuse: bool,
    pub openlit: bool,
}

impl Compat {
    pub fn new(profiles: &[CompatProfile]) -> Compat {
        let has = |p| profiles.contains(&p);
        Compat {
            openinference: has(CompatProfile::Openinference),
            langfuse: has(CompatProfile::Langfuse),
            openlit: has(CompatProfile::Openlit),
        }
    }

    pub fn any(self) -> bool {
        self.openinference || self.langfuse || self.openlit
    }
}

/// What the inference span's compat names are made of, computed by the span builder.
pub struct InferenceFacts<'a> {
    pub f: &'a FinishedRequest,
    /// Standard usage (reported, or an estimate the user asked to report).
    pub usage: Option<&'a Usage>,
    /// Total USD of that usage, when the model is priced.
    pub cost: Option<f64>,
    /// Captured content as exported on the span (redacted, cut), when content is on spans.
    pub input_messages: Option<&'a str>,
    pub output_messages: Option<&'a str>,
}

/// The profiles' names for one inference span.
pub fn inference(c: Compat, x: &InferenceFacts<'_>, a: &mut Vec<KeyValue>) {
    if !c.any() {
        return;
    }
    let f = x.f;
    let Some(op) = f.operation else { return };
    let provider = f.upstream.as_ref().map(|_| f.provider().semconv_name());
    let ttft = f
        .first_chunk_at
        .filter(|_| f.streaming)
        .map(|t| t.saturating_duration_since(f.started));
    let total = x
        .usage
        .and_then(|u| match (u.input_tokens, u.output_tokens) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
        });
    let int = |a: &mut Vec<KeyValue>, k: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            a.push(KeyValue::new(k, v as i64));
        }
    };
    if c.openinference {
        let kind = if op == Operation::Embeddings {
            "EMBEDDING"
        } else {
            "LLM"
        };
        a.push(KeyValue::new(OPENINFERENCE_SPAN_KIND, kind));
        let model = f.response.model.as_deref().or_else(|| f.request_model());
        if let Some(m) = model {
            a.push(KeyValue::new(LLM_MODEL_NAME, m.to_string()));
            if op == Operation::Embeddings {
                a.push(KeyValue::new(EMBEDDING_MODEL_NAME, m.to_string()));
            }
        }
        if let Some(p) = provider {
            a.push(KeyValue::new(LLM_PROVIDER, openinference_provider(p)));
            if let Some(s) = openinference_system(p) {
                a.push(KeyValue::new(LLM_SYSTEM, s));
            }
        }
        if let Some(p) = invocation_parameters(f) {
            a.push(KeyValue::new(LLM_INVOCATION_PARAMETERS, p));
        }
        if let Some(u) = x.usage {
            int(a, LLM_TOKEN_COUNT_PROMPT, u.input_tokens);
            int(a, LLM_TOKEN_COUNT_COMPLETION, u.output_tokens);
            int(a, LLM_TOKEN_COUNT_TOTAL, total);
            int(a, LLM_TOKEN_COUNT_CACHE_READ, u.cache_read_input_tokens);
            int(a, LLM_TOKEN_COUNT_CACHE_WRITE, u.cache_write_input_tokens);
            int(a, LLM_TOKEN_COUNT_REASONING, u.reasoning_output_tokens);
        }
        if let Some(v) = x.input_messages {
            a.push(KeyValue::new(INPUT_VALUE, v.to_string()));
            a.push(KeyValue::new(INPUT_MIME_TYPE, "application/json"));
        }
        if let Some(v) = x.output_messages {
            a.push(KeyValue::new(OUTPUT_VALUE, v.to_string()));
            a.push(KeyValue::new(OUTPUT_MIME_TYPE, "application/json"));
        }
        let from_body = f.request.as_ref().and_then(|r| r.conversation_id.as_ref());
        if let Some(s) = f.conversation_id.as_ref().or(from_body) {
            a.push(KeyValue::new(SESSION_ID, s.clone()));
        }
    }
    if c.openinference || c.langfuse {
        user_id(f, a);
    }
    if c.langfuse || c.openlit {
        if let Some(cost) = x.cost {
            a.push(KeyValue::new(GEN_AI_USAGE_COST, cost));
        }
    }
    if c.langfuse {
        if let Some(t) = ttft {
            a.push(KeyValue::new(
                LANGFUSE_COMPLETION_START_TIME,
                iso8601(f.started_at + t),
            ));
        }
        if let Some(u) = x.usage {
            a.push(KeyValue::new(
                LANGFUSE_USAGE_DETAILS,
                langfuse_usage(u, total).to_string(),
            ));
        }
    }
    if c.openlit {
        int(a, GEN_AI_USAGE_TOTAL_TOKENS, total);
        if let Some(t) = ttft {
            a.push(KeyValue::new(GEN_AI_SERVER_TTFT, t.as_secs_f64()));
        }
        if let Some(p) = provider {
            a.push(KeyValue::new(GEN_AI_SYSTEM, p));
        }
    }
}

/// The profiles' names for one `execute_tool` span. `arguments` and `result` are the captured
/// content as exported on the span, when content is on spans.
pub fn tool(
    c: Compat,
    name: &str,
    description: Option<&str>,
    arguments: Option<&str>,
    result: Option<&str>,
    a: &mut Vec<KeyValue>,
) {
    if !c.openinference {
        return;
    }
    a.push(KeyValue::new(OPENINFERENCE_SPAN_KIND, "TOOL"));
    a.push(KeyValue::new(TOOL_NAME, name.to_string()));
    if let Some(d) = description {
        a.push(KeyValue::new(TOOL_DESCRIPTION, d.to_string()));
    }
    if let Some(v) = arguments {
        a.push(KeyValue::new(INPUT_VALUE, v.to_string()));
        a.push(KeyValue::new(INPUT_MIME_TYPE, mime(v)));
    }
    if let Some(v) = result {
        a.push(KeyValue::new(OUTPUT_VALUE, v.to_string()));
        a.push(KeyValue::new(OUTPUT_MIME_TYPE, mime(v)));
    }
}

fn mime(v: &str) -> &'static str {
    match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(_) | Value::Array(_)) => "application/json",
        _ => "text/plain",
    }
}

/// Baggage `user.id` as `user.id`, unless `telemetry.baggage_attributes` already copied it.
fn user_id(f: &FinishedRequest, a: &mut Vec<KeyValue>) {
    if f.extra_attributes.iter().any(|(k, _)| k == USER_ID) {
        return;
    }
    if let Some((_, v)) = f.trace.baggage.iter().find(|(k, _)| k == USER_ID) {
        a.push(KeyValue::new(USER_ID, v.clone()));
    }
}

/// OpenInferenceLLMProviderValues for the gen_ai.provider.name values llmtap emits.
fn openinference_provider(p: &'static str) -> &'static str {
    match p {
        "azure.ai.openai" => "azure",
        other => other,
    }
}

/// OpenInferenceLLMSystemValues: the AI product, for the providers that have one there.
fn openinference_system(p: &str) -> Option<&'static str> {
    match p {
        "openai" | "azure.ai.openai" => Some("openai"),
        "anthropic" => Some("anthropic"),
        _ => None,
    }
}

/// `llm.invocation_parameters`: the request parameters llmtap read, as JSON.
fn invocation_parameters(f: &FinishedRequest) -> Option<String> {
    let r = f.request.as_ref()?;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.to_string(), v);
        }
    };
    put("model", json!(r.model));
    put("temperature", json!(r.temperature));
    put("top_p", json!(r.top_p));
    put("top_k", json!(r.top_k));
    put("max_tokens", json!(r.max_tokens));
    put("frequency_penalty", json!(r.frequency_penalty));
    put("presence_penalty", json!(r.presence_penalty));
    put("seed", json!(r.seed));
    put("n", json!(r.choice_count));
    put("stream", json!(r.stream));
    put("reasoning_effort", json!(r.reasoning_level));
    put("service_tier", json!(r.service_tier));
    if !r.stop.is_empty() {
        put("stop", json!(r.stop));
    }
    put("dimensions", json!(r.dimensions));
    (!m.is_empty()).then(|| Value::Object(m).to_string())
}

/// Langfuse's usage types: its ingestion subtracts cached and cache-written tokens from
/// `input` and reasoning tokens from `output` (they are part of those counts) and sums the
/// types when no total is given; sent already split, with the total.
fn langfuse_usage(u: &Usage, total: Option<u64>) -> Value {
    let mut m = Map::new();
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let written = u.cache_write_input_tokens.unwrap_or(0);
    let reasoning = u.reasoning_output_tokens.unwrap_or(0);
    if let Some(i) = u.input_tokens {
        m.insert("input".into(), json!(i.saturating_sub(cached + written)));
    }
    if let Some(o) = u.output_tokens {
        m.insert("output".into(), json!(o.saturating_sub(reasoning)));
    }
    if let Some(v) = u.cache_read_input_tokens {
        m.insert("input_cached_tokens".into(), json!(v));
    }
    if let Some(v) = u.cache_write_input_tokens {
        m.insert("input_cache_creation".into(), json!(v));
    }
    if let Some(v) = u.reasoning_output_tokens {
        m.insert("output_reasoning_tokens".into(), json!(v));
    }
    if let Some(t) = total {
        m.insert("total".into(), json!(t));
    }
    Value::Object(m)
}

/// `2026-11-03T10:04:05.123456Z`: UTC, microseconds.
pub fn iso8601(t: SystemTime) -> String {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_is_utc_with_micros() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(
            iso8601(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert!(iso8601(leap).starts_with("2000-02-29T00:00:00"));
    }

    #[test]
    fn langfuse_usage_counts_nothing_twice() {
        let u = Usage {
            input_tokens: Some(100),
            output_tokens: Some(40),
            cache_read_input_tokens: Some(30),
            cache_write_input_tokens: Some(10),
            reasoning_output_tokens: Some(15),
        };
        let v = langfuse_usage(&u, Some(140));
        assert_eq!(
            v,
            json!({"input": 60, "output": 25, "input_cached_tokens": 30,
                "input_cache_creation": 10, "output_reasoning_tokens": 15, "total": 140})
        );
        // The parts add up to the total.
        let sum: u64 = [
            "input",
            "output",
            "input_cached_tokens",
            "input_cache_creation",
            "output_reasoning_tokens",
        ]
        .iter()
        .map(|k| v[k].as_u64().unwrap())
        .sum();
        assert_eq!(sum, 140);
    }

    #[test]
    fn profiles_parse_from_config_values() {
        let c = Compat::new(&[CompatProfile::Langfuse, CompatProfile::Openlit]);
        assert!(c.any() && c.langfuse && c.openlit && !c.openinference);
        assert!(!Compat::new(&[]).any());
    }
}
