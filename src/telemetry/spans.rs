//! Builds the exported spans from a finished request, after the fact, with explicit ids and
//! timestamps. Building at the end lets the sampler see the outcome (error, latency).

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::compat::{self, Compat};
use super::content::Redactor;
use super::cost::{self, PriceTable};
use super::record::FinishedRequest;
use super::semconv as sc;
use crate::vocab::limits::cut;
use crate::vocab::pending::PendingCall;
use crate::vocab::summary::Usage;

/// What span building needs besides the request.
pub struct SpanContextInfo<'a> {
    pub scope: &'a InstrumentationScope,
    /// Redaction and truncation of captured content; `None` means content capture is off.
    pub redactor: Option<&'a Redactor>,
    /// Captured content goes on spans (`SPAN_ONLY`, `SPAN_AND_EVENT`), not only on the event.
    pub content_on_spans: bool,
    pub value_limit: Option<usize>,
    /// genai `main`'s names (`gen_ai_latest_experimental`) instead of v1.41.1's.
    pub latest: bool,
    /// llmtap's estimates are written to the standard usage names (flagged).
    pub report_estimated: bool,
    /// Backends whose own names are added (`telemetry.compat`).
    pub compat: Compat,
    /// For the compat profiles' cost.
    pub prices: &'a PriceTable,
    /// Which tool calls are structured output rather than tool executions.
    pub output_tools: &'a super::output_tools::OutputTools,
}

/// Token counts of a finished request: what the upstream reported, or llmtap's estimate from
/// the text it saw (4 characters per token, the rule of thumb for English with OpenAI
/// tokenizers) when it reported none, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenUsage {
    Reported(Usage),
    Estimated(Usage),
    None,
}

impl TokenUsage {
    /// What goes under the standard usage names (`gen_ai.usage.*`, the token metrics,
    /// `llmtap.cost`), and whether it is an estimate: reported usage always, an estimate only
    /// when the user opted in (`telemetry.report_estimated_usage`).
    pub fn standard(&self, report_estimated: bool) -> Option<(&Usage, bool)> {
        match self {
            TokenUsage::Reported(u) => Some((u, false)),
            TokenUsage::Estimated(u) if report_estimated => Some((u, true)),
            _ => None,
        }
    }

    pub fn is_estimate(&self) -> bool {
        matches!(self, TokenUsage::Estimated(_))
    }
}

/// The request's token usage (see [`TokenUsage`]).
pub fn token_usage(f: &FinishedRequest) -> TokenUsage {
    if let Some(u) = &f.response.usage {
        return TokenUsage::Reported(u.clone());
    }
    let op_ok = f.operation.is_some() && f.status.is_some_and(|s| (200..300).contains(&s));
    if !op_ok {
        return TokenUsage::None;
    }
    let prompt_chars = f.request.as_ref().map(|r| r.prompt_chars).unwrap_or(0);
    let output_chars = f.response.output_chars
        + f.response
            .tool_calls
            .iter()
            .map(|t| t.name.len() as u64 + t.arguments_len())
            .sum::<u64>();
    if prompt_chars == 0 && output_chars == 0 {
        return TokenUsage::None;
    }
    let est = |c: u64| c.div_ceil(4);
    let output = matches!(
        f.operation,
        Some(crate::vocab::operation::Operation::Embeddings)
    )
    .then_some(None)
    .unwrap_or(Some(est(output_chars)));
    TokenUsage::Estimated(Usage {
        input_tokens: Some(est(prompt_chars)),
        output_tokens: output,
        ..Usage::default()
    })
}

/// Wall-clock end: start plus the monotonic duration, so clock steps cannot make it negative.
pub fn end_time(f: &FinishedRequest) -> SystemTime {
    f.started_at + f.ended.saturating_duration_since(f.started)
}

/// The call's `gen_ai.conversation.id` before it is cut for the span: the one its headers
/// gave (see `exchange::session_id`), else the one in its body (the Responses API's
/// `conversation` / `previous_response_id`). Never a generated id.
pub fn conversation_id(f: &FinishedRequest) -> Option<&str> {
    let from_body = f
        .request
        .as_ref()
        .and_then(|r| r.conversation_id.as_deref());
    f.conversation_id.as_deref().or(from_body)
}

/// The context of the inference span that asked for `call`: the target of the span link
/// from the call that sends the tool's result back.
pub fn requesting_span_context(call: &PendingCall) -> SpanContext {
    let flags = if call.keep {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(
        call.trace_id,
        call.parent_span_id,
        flags,
        false,
        call.trace_state.clone(),
    )
}

/// The attributes of one inference call, computed once for its span and its
/// `gen_ai.client.inference.operation.details` log record. Content is kept raw (the semconv
/// JSON shapes): each destination redacts and truncates it its own way.
#[derive(Clone)]
pub struct InferenceAttributes {
    pub attributes: Vec<KeyValue>,
    pub content: Vec<(&'static str, serde_json::Value)>,
}

/// The keys whose values are captured content (JSON, or text for tool results).
pub const CONTENT_KEYS: [&str; 6] = [
    sc::GEN_AI_INPUT_MESSAGES,
    sc::GEN_AI_OUTPUT_MESSAGES,
    sc::GEN_AI_SYSTEM_INSTRUCTIONS,
    sc::GEN_AI_TOOL_DEFINITIONS,
    sc::GEN_AI_TOOL_CALL_ARGUMENTS,
    sc::GEN_AI_TOOL_CALL_RESULT,
];

/// The span name: `{operation} {request model}`.
pub fn inference_span_name(f: &FinishedRequest) -> Option<String> {
    let op = f.operation?;
    // Identifiers from the request (and the upstream) are cut to the documented length.
    Some(match f.request_model().map(cut) {
        Some(m) => format!("{} {m}", op.name()),
        None => op.name().to_string(),
    })
}

/// Everything the inference span says about a request, or `None` for requests that are not
/// inference calls.
pub fn inference_attributes(
    f: &FinishedRequest,
    cx: &SpanContextInfo<'_>,
) -> Option<InferenceAttributes> {
    let op = f.operation?;
    let model = f.request_model();
    let mut a: Vec<KeyValue> = Vec::with_capacity(48);
    let mut content = Vec::new();
    let s = |v: &str| Value::String(StringValue::from(v.to_string()));
    a.push(KeyValue::new(sc::GEN_AI_OPERATION_NAME, op.name()));
    if let Some(t) = f.dialect.and_then(|d| d.openai_api_type(op)) {
        a.push(KeyValue::new(sc::OPENAI_API_TYPE, t));
    }
    if let Some(u) = &f.upstream {
        a.push(KeyValue::new(
            sc::GEN_AI_PROVIDER_NAME,
            f.provider().semconv_name(),
        ));
        a.push(KeyValue::new(sc::SERVER_ADDRESS, u.address.clone()));
        a.push(KeyValue::new(sc::SERVER_PORT, u.port as i64));
        a.push(KeyValue::new(sc::LLMTAP_UPSTREAM, u.name.clone()));
    }
    if let Some(t) = &f.tenant {
        a.push(KeyValue::new(sc::LLMTAP_TENANT, cut(t).to_string()));
    }
    if let Some(m) = model {
        a.push(KeyValue::new(sc::GEN_AI_REQUEST_MODEL, cut(m).to_string()));
    }
    if let Some(r) = &f.request {
        let mut f64_attr = |k: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                a.push(KeyValue::new(k, v));
            }
        };
        f64_attr(sc::GEN_AI_REQUEST_TEMPERATURE, r.temperature);
        f64_attr(sc::GEN_AI_REQUEST_TOP_P, r.top_p);
        f64_attr(sc::GEN_AI_REQUEST_FREQUENCY_PENALTY, r.frequency_penalty);
        f64_attr(sc::GEN_AI_REQUEST_PRESENCE_PENALTY, r.presence_penalty);
        if let Some(k) = r.top_k {
            // A double in v1.41.1, an int in genai `main`.
            if !cx.latest {
                a.push(KeyValue::new(sc::GEN_AI_REQUEST_TOP_K, k));
            } else if k.fract() == 0.0 && k.is_finite() {
                a.push(KeyValue::new(sc::GEN_AI_REQUEST_TOP_K, k as i64));
            }
        }
        if let Some(v) = r.max_tokens {
            a.push(KeyValue::new(sc::GEN_AI_REQUEST_MAX_TOKENS, v));
        }
        if let Some(v) = r.seed {
            a.push(KeyValue::new(sc::GEN_AI_REQUEST_SEED, v));
        }
        // Conditionally required "if available, in the request, and != 1".
        if let Some(v) = r.choice_count.filter(|n| *n != 1) {
            a.push(KeyValue::new(sc::GEN_AI_REQUEST_CHOICE_COUNT, v));
        }
        if let Some(v) = r.stream {
            a.push(KeyValue::new(sc::GEN_AI_REQUEST_STREAM, v));
        }
        if let Some(v) = &r.reasoning_level {
            a.push(KeyValue::new(sc::GEN_AI_REQUEST_REASONING_LEVEL, s(v)));
        }
        if let Some(v) = &r.output_type {
            a.push(KeyValue::new(sc::GEN_AI_OUTPUT_TYPE, s(v)));
        }
        if let Some(v) = &r.service_tier {
            a.push(KeyValue::new(sc::OPENAI_REQUEST_SERVICE_TIER, s(v)));
        }
        if !r.encoding_formats.is_empty() {
            a.push(KeyValue::new(
                sc::GEN_AI_REQUEST_ENCODING_FORMATS,
                Value::Array(Array::String(
                    r.encoding_formats
                        .iter()
                        .map(|x| StringValue::from(x.clone()))
                        .collect(),
                )),
            ));
        }
        if !r.stop.is_empty() {
            a.push(KeyValue::new(
                sc::GEN_AI_REQUEST_STOP_SEQUENCES,
                Value::Array(Array::String(
                    r.stop
                        .iter()
                        .map(|x| StringValue::from(x.clone()))
                        .collect(),
                )),
            ));
        }
        a.push(KeyValue::new(
            sc::LLMTAP_PROMPT_LENGTH,
            r.prompt_chars as i64,
        ));
        a.push(KeyValue::new(
            sc::LLMTAP_PROMPT_MESSAGES,
            r.message_count as i64,
        ));
        if let Some(h) = &r.prompt_hash {
            a.push(KeyValue::new(sc::LLMTAP_PROMPT_HASH, h.clone()));
        }
        if let (Some(_), Some(c)) = (cx.redactor, &r.content) {
            for (k, v) in [
                (sc::GEN_AI_INPUT_MESSAGES, &c.input_messages),
                (sc::GEN_AI_SYSTEM_INSTRUCTIONS, &c.system_instructions),
                (sc::GEN_AI_TOOL_DEFINITIONS, &c.tool_definitions),
            ] {
                if let Some(v) = v {
                    content.push((k, v.clone()));
                }
            }
        }
    }
    if op == crate::vocab::operation::Operation::Embeddings {
        // The dimensions asked for, else the length of the vectors that came back.
        let dims = f
            .request
            .as_ref()
            .and_then(|r| r.dimensions)
            .or_else(|| f.response.embedding_dimensions.map(|d| d as i64));
        if let Some(d) = dims {
            a.push(KeyValue::new(sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT, d));
        }
    }
    if cx.latest {
        // genai `main`'s newer names (#179, #372), only with the opt-in.
        if let Some(v) = f
            .prompt_version
            .as_deref()
            .filter(|_| f.prompt_template.is_some())
        {
            a.push(KeyValue::new(sc::GEN_AI_PROMPT_VERSION, cut(v).to_string()));
        }
        if let Some(id) = f
            .request
            .as_ref()
            .and_then(|r| r.previous_response_id.as_deref())
        {
            a.push(KeyValue::new(
                sc::GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID,
                cut(id).to_string(),
            ));
        }
    }
    if let Some(t) = &f.prompt_template {
        a.push(KeyValue::new(sc::GEN_AI_PROMPT_NAME, cut(t).to_string()));
        a.push(KeyValue::new(
            sc::LLMTAP_PROMPT_TEMPLATE,
            cut(t).to_string(),
        ));
    }
    if let Some(c) = conversation_id(f) {
        a.push(KeyValue::new(
            sc::GEN_AI_CONVERSATION_ID,
            cut(c).to_string(),
        ));
    }
    let r = &f.response;
    if let Some(v) = &r.id {
        a.push(KeyValue::new(sc::GEN_AI_RESPONSE_ID, s(cut(v))));
    }
    if let Some(v) = &r.model {
        a.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, s(cut(v))));
    }
    if !r.finish_reasons.is_empty() {
        let reasons: Vec<StringValue> = r
            .finish_reasons
            .iter()
            // A choice whose reason never came (cut stream, error) reads `error`, as the
            // GenAI conventions define for gen_ai.response.finish_reasons.
            .map(|x| StringValue::from(x.clone().unwrap_or_else(|| "error".into())))
            .collect();
        a.push(KeyValue::new(
            sc::GEN_AI_RESPONSE_FINISH_REASONS,
            Value::Array(Array::String(reasons)),
        ));
    }
    if let Some(v) = &r.system_fingerprint {
        a.push(KeyValue::new(sc::OPENAI_RESPONSE_SYSTEM_FINGERPRINT, s(v)));
    }
    if let Some(v) = &r.service_tier {
        a.push(KeyValue::new(sc::OPENAI_RESPONSE_SERVICE_TIER, s(v)));
    }
    // Structured output that came as a tool call: the call is the answer, not an execution.
    let output_calls: Vec<StringValue> = r
        .tool_calls
        .iter()
        .filter(|c| cx.output_tools.is_output(c, f.request.as_ref()))
        .map(|c| StringValue::from(cut(&c.name).to_string()))
        .collect();
    if !output_calls.is_empty() {
        a.push(KeyValue::new(
            sc::LLMTAP_OUTPUT_TOOL,
            Value::Array(Array::String(output_calls)),
        ));
        if f.request.as_ref().is_none_or(|r| r.output_type.is_none()) {
            a.push(KeyValue::new(sc::GEN_AI_OUTPUT_TYPE, "json"));
        }
    }
    if f.streaming {
        a.push(KeyValue::new(sc::LLMTAP_CHUNK_COUNT, r.chunk_count as i64));
        if r.parse_failed {
            a.push(KeyValue::new(sc::LLMTAP_RESPONSE_PARSE_FAILED, true));
        }
        if let Some(t) = f.first_chunk_at {
            a.push(KeyValue::new(
                sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                t.saturating_duration_since(f.started).as_secs_f64(),
            ));
        }
    }
    if let Some(ms) = f.response.provider_latency_ms {
        a.push(KeyValue::new(
            sc::LLMTAP_RESPONSE_PROVIDER_LATENCY,
            ms.min(i64::MAX as u64) as i64,
        ));
    }
    let usage = token_usage(f);
    usage_attributes(&usage, cx, &mut a);
    if cx.latest && r.usage.is_some() {
        // Per-modality counts (#440), only where the provider reported them.
        let m = &r.usage_by_modality;
        for (k, v) in [
            (sc::GEN_AI_USAGE_TEXT_INPUT_TOKENS, m.text_input),
            (sc::GEN_AI_USAGE_IMAGE_INPUT_TOKENS, m.image_input),
            (sc::GEN_AI_USAGE_AUDIO_INPUT_TOKENS, m.audio_input),
            (sc::GEN_AI_USAGE_TEXT_OUTPUT_TOKENS, m.text_output),
            (sc::GEN_AI_USAGE_IMAGE_OUTPUT_TOKENS, m.image_output),
            (sc::GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS, m.audio_output),
        ] {
            if let Some(v) = v {
                a.push(KeyValue::new(k, v as i64));
            }
        }
    }
    // The same number `llmtap.cost` counts and the live view shows: one price lookup, one
    // computation (`cost::compute`), from the usage under the standard names.
    if let Some((u, _)) = usage.standard(cx.report_estimated) {
        if let Some(price) = cx.prices.price_for(f) {
            let c = cost::compute(price, u);
            a.push(KeyValue::new(sc::LLMTAP_COST_USD, c.input + c.output));
        }
    }
    if !f.limits_hit.is_empty() {
        let names: Vec<StringValue> = f.limits_hit.iter().map(|n| StringValue::from(*n)).collect();
        a.push(KeyValue::new(
            sc::LLMTAP_LIMITS_HIT,
            Value::Array(Array::String(names)),
        ));
    }
    if f.injection_refused {
        a.push(KeyValue::new(sc::LLMTAP_USAGE_INJECTION_REFUSED, true));
    }
    if f.usage_injected {
        a.push(KeyValue::new(sc::LLMTAP_USAGE_INJECTED, true));
    }
    if cx.redactor.is_some() {
        if let Some(out) = output_messages(f, cx.latest) {
            content.push((sc::GEN_AI_OUTPUT_MESSAGES, out));
        }
    }
    if let Some(st) = f.status {
        a.push(KeyValue::new(sc::HTTP_RESPONSE_STATUS_CODE, st as i64));
    }
    for (k, v) in &f.extra_attributes {
        a.push(KeyValue::new(k.clone(), cut(v).to_string()));
    }
    if let Some(e) = &f.error {
        a.push(KeyValue::new(sc::ERROR_TYPE, cut(e).to_string()));
    }
    Some(InferenceAttributes {
        attributes: a,
        content,
    })
}

/// Token counts: reported usage (and estimates the user opted to report) under
/// `gen_ai.usage.*`; other estimates under `llmtap.usage.estimated.*`. Either way an estimate
/// is flagged `llmtap.usage.estimated=true`.
fn usage_attributes(usage: &TokenUsage, cx: &SpanContextInfo<'_>, a: &mut Vec<KeyValue>) {
    let mut int = |k: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            a.push(KeyValue::new(k, v as i64));
        }
    };
    match usage.standard(cx.report_estimated) {
        Some((u, _)) => {
            int(sc::GEN_AI_USAGE_INPUT_TOKENS, u.input_tokens);
            int(sc::GEN_AI_USAGE_OUTPUT_TOKENS, u.output_tokens);
            int(
                sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                u.cache_read_input_tokens,
            );
            int(
                sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
                u.reasoning_output_tokens,
            );
            let cache_write = if cx.latest {
                sc::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
            } else {
                sc::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
            };
            int(cache_write, u.cache_write_input_tokens);
        }
        None => {
            if let TokenUsage::Estimated(u) = usage {
                int(sc::LLMTAP_USAGE_ESTIMATED_INPUT_TOKENS, u.input_tokens);
                int(sc::LLMTAP_USAGE_ESTIMATED_OUTPUT_TOKENS, u.output_tokens);
            }
        }
    }
    if usage.is_estimate() {
        a.push(KeyValue::new(sc::LLMTAP_USAGE_ESTIMATED, true));
    }
}

/// The gen_ai inference span of a request with its [`inference_attributes`], or `None` for
/// requests that are not inference calls. `links` are the spans of the calls whose tool calls
/// this request answers.
pub fn inference_span(
    f: &FinishedRequest,
    attrs: InferenceAttributes,
    cx: &SpanContextInfo<'_>,
    links: Vec<SpanContext>,
) -> Option<SpanData> {
    let name = inference_span_name(f)?;
    let InferenceAttributes {
        attributes: mut a,
        content,
    } = attrs;
    let (mut input, mut output) = (None, None);
    if let (Some(red), true) = (cx.redactor, cx.content_on_spans) {
        for (k, v) in &content {
            let text = red.content_string(v, cx.value_limit);
            match *k {
                sc::GEN_AI_INPUT_MESSAGES => input = Some(text.clone()),
                sc::GEN_AI_OUTPUT_MESSAGES => output = Some(text.clone()),
                _ => {}
            }
            a.push(KeyValue::new(*k, text));
        }
    }
    if cx.compat.any() {
        let usage = token_usage(f);
        let standard = usage.standard(cx.report_estimated).map(|(u, _)| u);
        let upstream = f.upstream.as_ref().map(|u| u.name.as_str());
        let cost = standard.and_then(|u| {
            let price = cx
                .prices
                .find(upstream, f.response.model.as_deref(), f.request_model())?;
            let c = cost::compute(price, u);
            Some(c.input + c.output)
        });
        let facts = compat::InferenceFacts {
            f,
            usage: standard,
            cost,
            input_messages: input.as_deref(),
            output_messages: output.as_deref(),
        };
        compat::inference(cx.compat, &facts, &mut a);
    }
    let status = match &f.error {
        Some(e) => {
            let msg = f
                .response
                .error
                .as_ref()
                .and_then(|x| x.message.clone())
                .unwrap_or_else(|| e.clone());
            Status::error(msg)
        }
        None => Status::Unset,
    };
    limit_values(&mut a, cx.value_limit);
    let (parent_span_id, parent_remote, state) = match &f.trace.parent {
        Some(p) => (p.span_id(), true, p.trace_state().clone()),
        None => (SpanId::INVALID, false, TraceState::default()),
    };
    Some(SpanData {
        span_context: SpanContext::new(
            f.trace.trace_id,
            f.trace.span_id,
            TraceFlags::SAMPLED,
            false,
            state,
        ),
        parent_span_id,
        parent_span_is_remote: parent_remote,
        span_kind: SpanKind::Client,
        name: Cow::Owned(name),
        start_time: f.started_at,
        end_time: end_time(f),
        attributes: a,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: span_links(links),
        status,
        instrumentation_scope: cx.scope.clone(),
    })
}

/// `SpanLinks` is non-exhaustive with a crate-private adder: start from the default, fill it.
fn span_links(contexts: Vec<SpanContext>) -> SpanLinks {
    let mut out = SpanLinks::default();
    out.links = contexts
        .into_iter()
        .map(|c| Link::new(c, Vec::new(), 0))
        .collect();
    out
}

/// `gen_ai.output.messages` in the semconv shape, reassembled from the stream. Each message
/// carries its `finish_reason` under v1.41.1, whose output-message schema requires it (Arize
/// Phoenix validates against that schema and drops every output message of a span when one
/// lacks it: tests/backends.rs). genai `main` deprecates it (#363) in favour of
/// `gen_ai.response.finish_reasons`, so `latest` leaves it out.
fn output_messages(f: &FinishedRequest, latest: bool) -> Option<serde_json::Value> {
    let r = &f.response;
    if r.output_text.is_empty() && r.tool_calls.is_empty() {
        return None;
    }
    let n = r.output_text.len().max(r.finish_reasons.len()).max(1);
    let msgs: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut parts = Vec::new();
            if let Some(t) = r.output_text.get(i).filter(|t| !t.is_empty()) {
                parts.push(serde_json::json!({"type": "text", "content": t}));
            }
            if i == 0 {
                for c in &r.tool_calls {
                    let args = crate::dialect::parts::arguments_value(&serde_json::Value::String(
                        c.arguments.clone(),
                    ));
                    let id = (!crate::vocab::summary::is_unnamed_call(&c.id)).then_some(&c.id);
                    parts.push(serde_json::json!({
                        "type": "tool_call", "id": id, "name": c.name, "arguments": args
                    }));
                }
            }
            let mut message = serde_json::json!({"role": "assistant", "parts": parts});
            if !latest {
                // As gen_ai.response.finish_reasons reads a choice whose reason never came.
                let reason = r.finish_reasons.get(i).cloned().flatten();
                message["finish_reason"] = reason.unwrap_or_else(|| "error".into()).into();
            }
            message
        })
        .collect();
    Some(serde_json::Value::Array(msgs))
}

/// The `execute_tool` span for one call: from the response that asked for it to the request
/// that carried its result (or to expiry/shutdown when the result never came).
pub fn tool_span(
    call: &PendingCall,
    end: SystemTime,
    result: Option<&str>,
    received: bool,
    span_id: SpanId,
    cx: &SpanContextInfo<'_>,
) -> SpanData {
    // The execute_tool span lists no gen_ai.request.model: the model asked for the call, it
    // does not run it (the metrics keep it, as llmtap's own attribute).
    let mut a = vec![
        KeyValue::new(sc::GEN_AI_OPERATION_NAME, "execute_tool"),
        KeyValue::new(sc::GEN_AI_TOOL_NAME, cut(&call.name).to_string()),
        KeyValue::new(sc::GEN_AI_TOOL_TYPE, cut(&call.kind).to_string()),
        KeyValue::new(sc::LLMTAP_TOOL_RESULT_RECEIVED, received),
    ];
    // A call that came without an id has llmtap's key, which is not the provider's id.
    if !crate::vocab::summary::is_unnamed_call(&call.call_id) {
        a.push(KeyValue::new(
            sc::GEN_AI_TOOL_CALL_ID,
            cut(&call.call_id).to_string(),
        ));
    }
    if let Some(d) = &call.description {
        a.push(KeyValue::new(sc::GEN_AI_TOOL_DESCRIPTION, d.clone()));
    }
    if let Some(t) = &call.tenant {
        a.push(KeyValue::new(sc::LLMTAP_TENANT, cut(t).to_string()));
    }
    let (mut args_out, mut result_out) = (None, None);
    if let (Some(red), true) = (cx.redactor, cx.content_on_spans) {
        if let Some(args) = &call.arguments {
            let v = tool_content(red, args, cx.value_limit);
            args_out = Some(v.clone());
            a.push(KeyValue::new(sc::GEN_AI_TOOL_CALL_ARGUMENTS, v));
        }
        if let Some(res) = result {
            let v = tool_content(red, res, cx.value_limit);
            result_out = Some(v.clone());
            a.push(KeyValue::new(sc::GEN_AI_TOOL_CALL_RESULT, v));
        }
    }
    compat::tool(
        cx.compat,
        &call.name,
        call.description.as_deref(),
        args_out.as_deref(),
        result_out.as_deref(),
        &mut a,
    );
    limit_values(&mut a, cx.value_limit);
    SpanData {
        span_context: SpanContext::new(
            call.trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            call.trace_state.clone(),
        ),
        parent_span_id: call.parent_span_id,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Owned(format!("execute_tool {}", cut(&call.name))),
        start_time: call.requested_at,
        end_time: end.max(call.requested_at),
        attributes: a,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: cx.scope.clone(),
    }
}

/// Tool-call arguments or a result: JSON when the text parses (redacted and cut by leaf, so
/// it still parses), else redacted and cut text.
fn tool_content(red: &Redactor, text: &str, limit: Option<usize>) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            red.content_string(&v, limit)
        }
        _ => {
            let t = red.apply(text);
            match limit {
                Some(n) => t.chars().take(n).collect(),
                None => t,
            }
        }
    }
}

/// Duration of a tool call as the metrics record it: the execute_tool span's duration.
pub fn tool_duration(call: &PendingCall, end: SystemTime) -> Duration {
    end.duration_since(call.requested_at).unwrap_or_default()
}

/// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`: string values cut to the limit. Captured JSON content
/// was already fitted to it leaf by leaf, so that it still parses.
pub fn limit_values(attrs: &mut [KeyValue], limit: Option<usize>) {
    let Some(limit) = limit else { return };
    for kv in attrs {
        if CONTENT_KEYS.contains(&kv.key.as_str()) {
            continue;
        }
        if let Value::String(s) = &kv.value {
            if s.as_str().chars().count() > limit {
                let cut: String = s.as_str().chars().take(limit).collect();
                kv.value = Value::String(cut.into());
            }
        }
    }
}
