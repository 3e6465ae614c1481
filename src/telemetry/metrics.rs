//! Every metric instrument llmtap exports, how a finished request is recorded into them, and
//! the cardinality guard that keeps attribute values bounded whatever clients send.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::metrics::{
    Counter, Histogram, Meter, MeterProvider as _, ObservableGauge, UpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::Resource;

use super::cost;
use super::record::FinishedRequest;
use super::semconv as sc;
use super::series::{SeriesAttributes, SeriesCache, SeriesKey};
use super::spans::{self, token_usage, TokenUsage};
use crate::config::Config;
use crate::vocab::error_type::ErrorType;
use crate::vocab::limits;
use crate::vocab::operation::Operation;
use crate::vocab::pending::PendingCall;
use crate::vocab::summary::Usage;

/// A `ManualReader` the meter provider and llmtap's own export loop share: the provider
/// registers it, llmtap collects from it on its own schedule (OTLP interval or a scrape).
#[derive(Debug, Clone)]
pub struct SharedReader(Arc<ManualReader>);

impl SharedReader {
    pub fn new(temporality: Temporality) -> Self {
        SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(temporality)
                .build(),
        ))
    }

    pub fn collect(&self) -> Option<ResourceMetrics> {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm).ok().map(|_| rm)
    }
}

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Keeps a metric attribute's values bounded: exact values named in the config are always
/// kept; other values are kept while fewer than `max` have been seen, then become `other`.
/// Globs in the config do not admit values on their own, since `*` would admit everything.
pub struct Bounded {
    known: HashSet<Arc<str>>,
    seen: Mutex<HashSet<Arc<str>>>,
    max: usize,
    other: Arc<str>,
}

pub const OTHER: &str = "other";

impl Bounded {
    pub fn new(configured: impl IntoIterator<Item = String>, max: usize) -> Self {
        let known = configured
            .into_iter()
            .filter(|v| !v.contains(['*', '?']))
            .map(Arc::from)
            .collect();
        Bounded {
            known,
            seen: Mutex::new(HashSet::new()),
            max,
            other: Arc::from(OTHER),
        }
    }

    /// The value to put on a metric point: `v` itself, or `other`. Shared (`Arc<str>`), so
    /// the attribute sets of every request point at one copy of each model name.
    pub fn value(&self, v: &str) -> Arc<str> {
        // Never a label of unbounded size, and never a slot taken by one.
        if !limits::fits(v) {
            return self.other.clone();
        }
        if let Some(k) = self.known.get(v) {
            return k.clone();
        }
        let Ok(mut seen) = self.seen.lock() else {
            return self.other.clone();
        };
        if let Some(s) = seen.get(v) {
            return s.clone();
        }
        if seen.len() < self.max {
            let s: Arc<str> = Arc::from(v);
            seen.insert(s.clone());
            return s;
        }
        self.other.clone()
    }
}

/// The `llmtap.conversation.*` counters: per `gen_ai.conversation.id`, kept apart from the
/// other instruments so the conversation label multiplies only their few series (the id, the
/// tenant when `metrics.tenant_attribute` is on, the token type), never the model, provider
/// and error series of `llmtap.requests`.
struct ConversationInstruments {
    requests: Counter<u64>,
    tokens: Counter<u64>,
    cost: Counter<f64>,
    /// The first `metrics.max_conversations` ids seen keep their own series; later ones are
    /// `other` (cumulative series cannot be forgotten, so a slot is held for the process's life).
    ids: Bounded,
}

/// v1.41.1's GenAI client metrics (the default).
struct StandardInstruments {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    ttfc: Histogram<f64>,
    per_chunk: Histogram<f64>,
}

/// genai `main`'s client metrics (`gen_ai_latest_experimental`).
struct LatestInstruments {
    inference_duration: Histogram<f64>,
    embeddings_duration: Histogram<f64>,
    usage_input: Counter<u64>,
    usage_output: Counter<u64>,
    usage_cache_read: Counter<u64>,
    usage_cache_write: Counter<u64>,
    usage_reasoning: Counter<u64>,
    input_tokens: Histogram<u64>,
    output_tokens: Histogram<u64>,
    embeddings_input_tokens: Histogram<u64>,
    ttfc: Histogram<f64>,
    per_chunk: Histogram<f64>,
    execute_tool: Histogram<f64>,
}

/// The GenAI metric names of one mode; llmtap's own metrics are the same in both.
enum GenAi {
    Standard(StandardInstruments),
    Latest(Box<LatestInstruments>),
}

pub struct Instruments {
    gen_ai: GenAi,
    requests: Counter<u64>,
    cost: Counter<f64>,
    cost_estimated: Counter<f64>,
    unpriced: Counter<u64>,
    tool_calls: Counter<u64>,
    /// `Some` unless `metrics.max_conversations` is 0.
    conversations: Option<ConversationInstruments>,
    tool_duration: Histogram<f64>,
    mcp: McpInstruments,
    pub active: UpDownCounter<i64>,
    pub dropped: Counter<u64>,
    pub state_errors: Counter<u64>,
    pub limits_hit: Counter<u64>,
    /// Kept so its callback stays registered.
    _tasks: Option<ObservableGauge<i64>>,
    models: Bounded,
    tools: Bounded,
    /// `Some` when `metrics.tenant_attribute` is on.
    tenants: Option<Bounded>,
    /// Baggage and header attributes copied onto metrics: the attribute key, built once,
    /// and the bound on its values.
    extra: HashMap<String, (opentelemetry::Key, Bounded)>,
    prices: cost::PriceTable,
    warned_unpriced: Mutex<HashSet<String>>,
    report_estimated: bool,
    /// Attribute sets per inference series, built once.
    series: SeriesCache,
}

/// The MCP client metrics, and the bounds on the request-made values they carry.
struct McpInstruments {
    duration: Histogram<f64>,
    session: Histogram<f64>,
    tool_calls: Counter<u64>,
    /// JSON-RPC method names come from clients: the spec's are kept, a few others, then `other`.
    methods: Bounded,
    prompts: Bounded,
    versions: Bounded,
}

/// MCP methods of the 2025-11-25 and 2026-07-28 revisions, always kept as they are on metrics.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
];

fn meter(provider: &SdkMeterProvider) -> Meter {
    provider.meter_with_scope(
        InstrumentationScope::builder("llmtap")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

/// `error.type` as metrics carry it, bounded whatever upstreams send: llmtap's own values
/// and the known upstream codes ([`sc::KNOWN_UPSTREAM_ERROR_CODES`] and Bedrock's
/// [`crate::dialect::BEDROCK_EXCEPTIONS`], matched without regard
/// to case) as they are; a numeric code as it is (an HTTP status); any other code becomes the
/// response's HTTP status, or `stream_error` inside a stream that started fine.
pub fn bounded_error_type(error: &str, status: Option<u16>) -> String {
    if ErrorType::parse(error).is_some() {
        return error.to_string();
    }
    if let Some(known) = sc::KNOWN_UPSTREAM_ERROR_CODES
        .iter()
        .chain(crate::dialect::BEDROCK_EXCEPTIONS)
        .find(|k| k.eq_ignore_ascii_case(error))
    {
        return (*known).to_string();
    }
    if error.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n)) {
        return error.to_string();
    }
    match status {
        Some(s) if s >= 400 => s.to_string(),
        _ => "stream_error".to_string(),
    }
}

impl Instruments {
    pub fn new(provider: &SdkMeterProvider, config: &Config, latest: bool) -> Instruments {
        let m = meter(provider);
        let hist = |name: &'static str, unit: &'static str, desc: &'static str, b: &[f64]| {
            m.f64_histogram(name)
                .with_unit(unit)
                .with_description(desc)
                .with_boundaries(b.to_vec())
                .build()
        };
        let token_hist = |name: &'static str, desc: &'static str| {
            m.u64_histogram(name)
                .with_unit("{token}")
                .with_description(desc)
                .with_boundaries(sc::BUCKETS_TOKENS.to_vec())
                .build()
        };
        let token_counter = |name: &'static str, desc: &'static str| {
            m.u64_counter(name)
                .with_unit("{token}")
                .with_description(desc)
                .build()
        };
        let duration_desc =
            "GenAI operation duration, from request arrival to the last byte sent to the client";
        let ttfc_desc =
            "Time from request arrival to the first content chunk of a streamed response";
        let per_chunk_desc = "Time between consecutive chunks of a streamed response, recorded for each chunk after the first";
        let configured_models = config
            .routes
            .iter()
            .map(|r| r.model.clone())
            .chain(config.metrics.price_list().into_iter().map(|p| p.model));
        let extra = config
            .metrics
            .baggage_attributes
            .iter()
            .chain(&config.metrics.header_attributes)
            .map(|k| {
                (
                    k.clone(),
                    (
                        opentelemetry::Key::from(k.clone()),
                        Bounded::new([], config.metrics.max_attribute_values),
                    ),
                )
            })
            .collect();
        let gen_ai = if latest {
            GenAi::Latest(Box::new(LatestInstruments {
                inference_duration: hist(
                    sc::METRIC_INFERENCE_DURATION,
                    "s",
                    duration_desc,
                    sc::BUCKETS_DURATION,
                ),
                embeddings_duration: hist(
                    sc::METRIC_EMBEDDINGS_DURATION,
                    "s",
                    duration_desc,
                    sc::BUCKETS_DURATION,
                ),
                usage_input: token_counter(
                    sc::METRIC_INFERENCE_USAGE_INPUT,
                    "Input tokens used, including cached tokens",
                ),
                usage_output: token_counter(
                    sc::METRIC_INFERENCE_USAGE_OUTPUT,
                    "Output tokens used, including reasoning tokens",
                ),
                usage_cache_read: token_counter(
                    sc::METRIC_INFERENCE_USAGE_CACHE_READ,
                    "Input tokens served from a provider-managed cache",
                ),
                usage_cache_write: token_counter(
                    sc::METRIC_INFERENCE_USAGE_CACHE_WRITE,
                    "Input tokens written to a provider-managed cache",
                ),
                usage_reasoning: token_counter(
                    sc::METRIC_INFERENCE_USAGE_REASONING,
                    "Output tokens used for reasoning",
                ),
                input_tokens: token_hist(
                    sc::METRIC_INFERENCE_INPUT_TOKENS,
                    "Input tokens per inference operation",
                ),
                output_tokens: token_hist(
                    sc::METRIC_INFERENCE_OUTPUT_TOKENS,
                    "Output tokens per inference operation",
                ),
                embeddings_input_tokens: token_hist(
                    sc::METRIC_EMBEDDINGS_INPUT_TOKENS,
                    "Input tokens per embeddings operation",
                ),
                ttfc: hist(
                    sc::METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
                    "s",
                    ttfc_desc,
                    sc::BUCKETS_DURATION,
                ),
                per_chunk: hist(
                    sc::METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK,
                    "s",
                    per_chunk_desc,
                    sc::BUCKETS_DURATION,
                ),
                execute_tool: hist(
                    sc::METRIC_EXECUTE_TOOL_DURATION,
                    "s",
                    "Tool execution time, as the execute_tool span: from the response requesting a call to the request carrying its result",
                    sc::BUCKETS_DURATION,
                ),
            }))
        } else {
            GenAi::Standard(StandardInstruments {
                duration: hist(
                    sc::METRIC_OPERATION_DURATION,
                    "s",
                    duration_desc,
                    sc::BUCKETS_DURATION,
                ),
                tokens: token_hist(
                    sc::METRIC_TOKEN_USAGE,
                    "Number of input and output tokens used",
                ),
                ttfc: hist(
                    sc::METRIC_TIME_TO_FIRST_CHUNK,
                    "s",
                    ttfc_desc,
                    sc::BUCKETS_DURATION,
                ),
                per_chunk: hist(
                    sc::METRIC_TIME_PER_OUTPUT_CHUNK,
                    "s",
                    per_chunk_desc,
                    sc::BUCKETS_DURATION,
                ),
            })
        };
        Instruments {
            gen_ai,
            requests: m
                .u64_counter(sc::METRIC_REQUESTS)
                .with_unit("{request}")
                .with_description("Inference requests, with error.type on failures")
                .build(),
            cost: m
                .f64_counter(sc::METRIC_COST)
                .with_unit("USD")
                .with_description("Estimated cost from the configured price table")
                .build(),
            cost_estimated: m
                .f64_counter(sc::METRIC_COST_ESTIMATED)
                .with_unit("USD")
                .with_description("Cost from the price table of token counts llmtap estimated (the upstream reported no usage)")
                .build(),
            unpriced: m
                .u64_counter(sc::METRIC_COST_UNPRICED)
                .with_unit("{request}")
                .with_description("Requests with usage but no known price (no cost recorded)")
                .build(),
            tool_calls: m
                .u64_counter(sc::METRIC_TOOL_CALLS)
                .with_unit("{call}")
                .with_description("Tool calls requested by the model")
                .build(),
            conversations: (config.metrics.max_conversations > 0).then(|| {
                ConversationInstruments {
                    requests: m
                        .u64_counter(sc::METRIC_CONVERSATION_REQUESTS)
                        .with_unit("{request}")
                        .with_description("Inference requests per conversation (gen_ai.conversation.id, the first metrics.max_conversations ids, others as `other`)")
                        .build(),
                    tokens: m
                        .u64_counter(sc::METRIC_CONVERSATION_TOKENS)
                        .with_unit("{token}")
                        .with_description("Input and output tokens per conversation, as reported by the upstream")
                        .build(),
                    cost: m
                        .f64_counter(sc::METRIC_CONVERSATION_COST)
                        .with_unit("USD")
                        .with_description("Estimated cost per conversation from the configured price table")
                        .build(),
                    ids: Bounded::new([], config.metrics.max_conversations),
                }
            }),
            tool_duration: hist(
                sc::METRIC_TOOL_DURATION,
                "s",
                "Application tool execution time: from the response requesting a call to the request carrying its result",
                sc::BUCKETS_DURATION,
            ),
            mcp: McpInstruments {
                duration: hist(
                    sc::METRIC_MCP_OPERATION_DURATION,
                    "s",
                    "MCP request or notification duration as observed by the sender, until its response or acknowledgement",
                    sc::BUCKETS_MCP,
                ),
                session: hist(
                    sc::METRIC_MCP_SESSION_DURATION,
                    "s",
                    "MCP session duration, from the initialize response to the session's end",
                    sc::BUCKETS_MCP,
                ),
                tool_calls: m
                    .u64_counter(sc::METRIC_MCP_TOOL_CALLS)
                    .with_unit("{call}")
                    .with_description("MCP tools/call requests, by server and tool")
                    .build(),
                methods: Bounded::new(
                    MCP_METHODS.iter().map(|s| s.to_string()),
                    MCP_METHODS.len() + 16,
                ),
                prompts: Bounded::new([], config.metrics.max_attribute_values),
                versions: Bounded::new([], 16),
            },
            active: m
                .i64_up_down_counter(sc::METRIC_REQUESTS_ACTIVE)
                .with_unit("{request}")
                .with_description("Requests in flight through the proxy")
                .build(),
            _tasks: tokio::runtime::Handle::try_current().ok().map(|rt| {
                m.i64_observable_gauge(sc::METRIC_RUNTIME_TASKS)
                    .with_unit("{task}")
                    .with_description("Tasks alive on llmtap's async runtime")
                    .with_callback(move |o| o.observe(rt.metrics().num_alive_tasks() as i64, &[]))
                    .build()
            }),
            dropped: m
                .u64_counter(sc::METRIC_TELEMETRY_DROPPED)
                .with_unit("{item}")
                .with_description("Telemetry dropped because the exporter or queue could not keep up")
                .build(),
            state_errors: m
                .u64_counter(sc::METRIC_STATE_ERRORS)
                .with_unit("{operation}")
                .with_description("Shared-state (Redis) operations that failed or timed out; local state was used instead")
                .build(),
            limits_hit: m
                .u64_counter(sc::METRIC_LIMITS_HIT)
                .with_unit("{hit}")
                .with_description("Bounds hit on what llmtap holds for a client or an upstream (docs/limits.md); serving went on")
                .build(),
            models: Bounded::new(configured_models, config.metrics.max_models),
            tools: Bounded::new([], config.metrics.max_attribute_values),
            tenants: config.metrics.tenant_attribute.then(|| {
                let configured = config.auth.iter().flat_map(|a| &a.keys);
                Bounded::new(
                    configured.map(|k| k.tenant.clone()),
                    config.metrics.max_attribute_values,
                )
            }),
            extra,
            prices: cost::PriceTable::new(config),
            warned_unpriced: Mutex::new(HashSet::new()),
            report_estimated: config.telemetry.report_estimated_usage,
            series: SeriesCache::default(),
        }
    }

    fn model(&self, m: Option<&str>) -> Option<Arc<str>> {
        m.map(|m| self.models.value(m)).filter(|m| !m.is_empty())
    }

    /// Records one finished inference request into every instrument it touches.
    pub fn record(&self, f: &FinishedRequest) {
        let Some(op) = f.operation else { return };
        let usage = token_usage(f);
        let standard = usage.standard(self.report_estimated);
        let req_model = self.model(f.request_model());
        let resp_model = self.model(f.response.model.as_deref());
        let key = SeriesKey {
            operation: op.name(),
            upstream: f.upstream.as_ref().map(|u| {
                let provider = f.provider().semconv_name();
                (provider, u.address.clone(), u.port)
            }),
            request_model: req_model,
            response_model: resp_model,
            extra: f
                .metric_attributes
                .iter()
                .filter_map(|(k, v)| {
                    let (key, b) = self.extra.get(k)?;
                    Some((key.clone(), b.value(v)))
                })
                .collect(),
            tenant: match (&self.tenants, &f.tenant) {
                (Some(b), Some(t)) => Some(b.value(t)),
                _ => None,
            },
            error: f.error.as_deref().map(|e| bounded_error_type(e, f.status)),
            // Points made from an estimate say so (only when estimates are reported as usage).
            estimated: standard.is_some_and(|(_, estimated)| estimated),
        };
        let s = self.series.get(key);
        let duration = f.ended.saturating_duration_since(f.started).as_secs_f64();
        let b = &s.bound;
        b.requests.add(&self.requests, &s.with_error, 1);

        let ttfc = f
            .first_chunk_at
            .filter(|_| f.streaming && f.error.is_none())
            .map(|first| first.saturating_duration_since(f.started).as_secs_f64());
        // Per semconv: one observation per chunk after the first, the time since the
        // previous chunk.
        let gaps: &[f32] = if f.streaming && f.error.is_none() {
            &f.chunk_gaps
        } else {
            &[]
        };
        match &self.gen_ai {
            GenAi::Standard(i) => {
                b.duration.record(&i.duration, &s.with_error, duration);
                if let Some(t) = ttfc {
                    b.ttfc.record(&i.ttfc, &s.base, t);
                }
                for gap in gaps {
                    b.per_chunk.record(&i.per_chunk, &s.base, f64::from(*gap));
                }
                if let Some((u, _)) = standard {
                    for (k, n) in [u.input_tokens, u.output_tokens].into_iter().enumerate() {
                        if let Some(n) = n {
                            b.tokens[k].record(&i.tokens, &s.tokens[k], n);
                        }
                    }
                }
            }
            GenAi::Latest(i) if op == Operation::Embeddings => {
                b.duration
                    .record(&i.embeddings_duration, &s.with_error, duration);
                if let Some(n) = standard.and_then(|(u, _)| u.input_tokens) {
                    b.embeddings_tokens
                        .record(&i.embeddings_input_tokens, &s.flagged, n);
                }
            }
            GenAi::Latest(i) => {
                b.duration
                    .record(&i.inference_duration, &s.with_error, duration);
                if let Some(t) = ttfc {
                    b.ttfc.record(&i.ttfc, &s.base, t);
                }
                for gap in gaps {
                    b.per_chunk.record(&i.per_chunk, &s.base, f64::from(*gap));
                }
                // Recorded for every inference operation, failed ones included: 0 when no
                // usage came, with the modality `unknown` (OpenAI-shaped usage is not broken
                // down by modality).
                let none = Usage::default();
                let u = standard.map(|(u, _)| u).unwrap_or(&none);
                let n = |v: Option<u64>| v.unwrap_or(0);
                let usage = [
                    (&i.usage_input, u.input_tokens),
                    (&i.usage_output, u.output_tokens),
                    (&i.usage_cache_read, u.cache_read_input_tokens),
                    (&i.usage_cache_write, u.cache_write_input_tokens),
                    (&i.usage_reasoning, u.reasoning_output_tokens),
                ];
                for (k, (counter, v)) in usage.into_iter().enumerate() {
                    b.usage[k].add(counter, &s.counted, n(v));
                }
                let per_op = [
                    (&i.input_tokens, u.input_tokens),
                    (&i.output_tokens, u.output_tokens),
                ];
                for (k, (histogram, v)) in per_op.into_iter().enumerate() {
                    b.per_op_tokens[k].record(histogram, &s.per_op, n(v));
                }
            }
        }
        self.record_cost(f, &usage, standard, &s);
        self.record_conversation(f, standard, s.tenant.clone());
    }

    /// The `llmtap.conversation.*` counters, for a call that carries a conversation id: one
    /// request; its input and output tokens by `gen_ai.token.type` (the usage
    /// `gen_ai.client.token.usage` records: reported, or estimated when estimates are reported
    /// as usage); its cost in USD from the price table, when priced. Calls without an id add
    /// nothing, so the counters have no series without sessions.
    fn record_conversation(
        &self,
        f: &FinishedRequest,
        standard: Option<(&Usage, bool)>,
        tenant: Option<KeyValue>,
    ) {
        let (Some(i), Some(id)) = (&self.conversations, spans::conversation_id(f)) else {
            return;
        };
        let mut attrs = vec![KeyValue::new(sc::GEN_AI_CONVERSATION_ID, i.ids.value(id))];
        attrs.extend(tenant);
        i.requests.add(1, &attrs);
        let Some((u, _)) = standard else { return };
        let typed = |t: &'static str| {
            let mut a = attrs.clone();
            a.push(KeyValue::new(sc::GEN_AI_TOKEN_TYPE, t));
            a
        };
        if let Some(n) = u.input_tokens {
            i.tokens.add(n, &typed("input"));
        }
        if let Some(n) = u.output_tokens {
            i.tokens.add(n, &typed("output"));
        }
        if let Some(price) = self.prices.price_for(f) {
            let c = cost::compute(price, u);
            i.cost.add(c.input + c.output, &attrs);
        }
    }

    /// Cost from the price table: of reported usage (and of estimates reported as usage,
    /// flagged) into `llmtap.cost`; of other estimates into `llmtap.cost.estimated`.
    fn record_cost(
        &self,
        f: &FinishedRequest,
        usage: &TokenUsage,
        standard: Option<(&Usage, bool)>,
        s: &SeriesAttributes,
    ) {
        let (usage, counter, slots) = match (standard, usage) {
            (Some((u, _)), _) => (u, &self.cost, &s.bound.cost),
            (None, TokenUsage::Estimated(u)) => (u, &self.cost_estimated, &s.bound.cost_estimated),
            (None, _) => return,
        };
        match self.prices.price_for(f) {
            Some(price) => {
                let c = cost::compute(price, usage);
                let billed = [
                    (c.input, usage.input_tokens),
                    (c.output, usage.output_tokens),
                ];
                for (k, (v, tokens)) in billed.into_iter().enumerate() {
                    // Embeddings have no output tokens: no output cost series for them.
                    if tokens.is_some() {
                        slots[k].add(counter, &s.cost[k], v);
                    }
                }
            }
            None => {
                s.bound.unpriced.add(&self.unpriced, &s.base, 1);
                let name = f.request_model().unwrap_or("").to_string();
                if let Ok(mut w) = self.warned_unpriced.lock() {
                    if w.len() < 1000 && w.insert(name.clone()) {
                        tracing::info!(
                            model = limits::cut(&name),
                            "no price known for model; no cost recorded"
                        );
                    }
                }
            }
        }
    }

    pub fn tool_requested(&self, call: &PendingCall) {
        self.tool_calls.add(1, &self.tool_attrs(call));
    }

    /// `secs` is the execute_tool span's duration.
    pub fn tool_finished(&self, call: &PendingCall, secs: f64) {
        self.tool_duration.record(secs, &self.tool_attrs(call));
        if let GenAi::Latest(i) = &self.gen_ai {
            let attrs = [
                KeyValue::new(sc::GEN_AI_TOOL_NAME, self.tools.value(&call.name)),
                KeyValue::new(sc::GEN_AI_TOOL_TYPE, call.kind.clone()),
            ];
            i.execute_tool.record(secs, &attrs);
        }
    }

    fn tool_attrs(&self, call: &PendingCall) -> Vec<KeyValue> {
        // Tool names come from the application's tool definitions: bounded too.
        vec![
            KeyValue::new(sc::GEN_AI_TOOL_NAME, self.tools.value(&call.name)),
            KeyValue::new(
                sc::GEN_AI_REQUEST_MODEL,
                self.model(call.request_model.as_deref())
                    .unwrap_or_else(|| Arc::from("")),
            ),
        ]
    }

    /// One MCP operation: `mcp.client.operation.duration`, and for `tools/call` the count
    /// by server and tool.
    pub fn record_mcp(&self, op: &super::mcp::McpOperation) {
        let i = &self.mcp;
        let mut a = Vec::with_capacity(12);
        a.push(KeyValue::new(
            sc::MCP_METHOD_NAME,
            i.methods.value(&op.method),
        ));
        if let Some(t) = &op.tool_name {
            a.push(KeyValue::new(sc::GEN_AI_TOOL_NAME, self.tools.value(t)));
        }
        if let Some(p) = &op.prompt_name {
            a.push(KeyValue::new(sc::GEN_AI_PROMPT_NAME, i.prompts.value(p)));
        }
        if let Some(v) = &op.protocol_version {
            a.push(KeyValue::new(sc::MCP_PROTOCOL_VERSION, i.versions.value(v)));
        }
        a.push(KeyValue::new(sc::NETWORK_TRANSPORT, op.transport));
        if let Some(v) = op.http_version {
            a.push(KeyValue::new(sc::NETWORK_PROTOCOL_NAME, "http"));
            a.push(KeyValue::new(sc::NETWORK_PROTOCOL_VERSION, v));
        }
        if !op.server.address.is_empty() {
            a.push(KeyValue::new(sc::SERVER_ADDRESS, op.server.address.clone()));
            a.push(KeyValue::new(sc::SERVER_PORT, i64::from(op.server.port)));
        }
        a.push(KeyValue::new(sc::LLMTAP_MCP_SERVER, op.server.name.clone()));
        if let Some(c) = op.rpc_code {
            let code = c.to_string();
            let bounded = super::mcp::bounded_error_type(&code).to_string();
            a.push(KeyValue::new(sc::RPC_RESPONSE_STATUS_CODE, bounded));
        }
        if let Some(e) = &op.error {
            let bounded = super::mcp::bounded_error_type(e).to_string();
            a.push(KeyValue::new(sc::ERROR_TYPE, bounded));
        }
        if let (Some(tenants), Some(t)) = (&self.tenants, &op.tenant) {
            a.push(KeyValue::new(sc::LLMTAP_TENANT, tenants.value(t)));
        }
        i.duration.record(op.duration_secs(), &a);
        if op.is_tool_call() {
            let mut c = vec![KeyValue::new(sc::LLMTAP_MCP_SERVER, op.server.name.clone())];
            if let Some(t) = &op.tool_name {
                c.push(KeyValue::new(sc::GEN_AI_TOOL_NAME, self.tools.value(t)));
            }
            if let Some(e) = &op.error {
                let bounded = super::mcp::bounded_error_type(e).to_string();
                c.push(KeyValue::new(sc::ERROR_TYPE, bounded));
            }
            i.tool_calls.add(1, &c);
        }
    }

    /// One ended MCP session (`mcp.client.session.duration`).
    pub fn mcp_session_ended(
        &self,
        server: &crate::vocab::provider::UpstreamInfo,
        transport: &'static str,
        protocol_version: Option<&str>,
        secs: f64,
        error: Option<&str>,
    ) {
        let mut a = vec![
            KeyValue::new(sc::NETWORK_TRANSPORT, transport),
            KeyValue::new(sc::LLMTAP_MCP_SERVER, server.name.clone()),
        ];
        if !server.address.is_empty() {
            a.push(KeyValue::new(sc::SERVER_ADDRESS, server.address.clone()));
            a.push(KeyValue::new(sc::SERVER_PORT, i64::from(server.port)));
        }
        if let Some(v) = protocol_version {
            a.push(KeyValue::new(
                sc::MCP_PROTOCOL_VERSION,
                self.mcp.versions.value(v),
            ));
        }
        if let Some(e) = error {
            let bounded = super::mcp::bounded_error_type(e).to_string();
            a.push(KeyValue::new(sc::ERROR_TYPE, bounded));
        }
        self.mcp.session.record(secs, &a);
    }

    pub fn record_dropped(&self, signal: &'static str, n: u64) {
        self.dropped.add(n, &[KeyValue::new(sc::SIGNAL, signal)]);
    }

    /// Failed shared-state (Redis) operations; llmtap fell back to local state for each.
    pub fn record_state_errors(&self, n: u64) {
        self.state_errors.add(n, &[]);
    }
}

/// The meter provider with its readers: one for OTLP push (temporality per env) and one for
/// Prometheus scrapes (always cumulative).
pub fn provider(
    resource: Resource,
    otlp: Option<Temporality>,
    prometheus: bool,
) -> (SdkMeterProvider, Option<SharedReader>, Option<SharedReader>) {
    let mut b = SdkMeterProvider::builder().with_resource(resource);
    let otlp_reader = otlp.map(SharedReader::new);
    if let Some(r) = &otlp_reader {
        b = b.with_reader(r.clone());
    }
    // Every reader is a pipeline that each measurement is aggregated into (attributes hashed
    // and looked up again): with cumulative OTLP export, scrapes read the same cumulative
    // state, so one reader serves both. Collecting cumulative data changes nothing, so the
    // export loop and a scrape may both collect from it. Delta export needs its own.
    let shared = otlp == Some(Temporality::Cumulative);
    let prom_reader = match &otlp_reader {
        Some(r) if prometheus && shared => Some(r.clone()),
        _ if prometheus => {
            let r = SharedReader::new(Temporality::Cumulative);
            b = b.with_reader(r.clone());
            Some(r)
        }
        _ => None,
    };
    (b.build(), otlp_reader, prom_reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_values() {
        let b = Bounded::new(["gpt-4o".to_string(), "gpt-5*".to_string()], 2);
        assert_eq!(&*b.value("gpt-4o"), "gpt-4o");
        assert_eq!(&*b.value("a"), "a");
        assert_eq!(&*b.value("b"), "b");
        assert_eq!(&*b.value("c"), OTHER);
        assert_eq!(&*b.value("a"), "a");
        assert_eq!(&*b.value("gpt-4o"), "gpt-4o");
        assert_eq!(&*b.value("gpt-5-mini"), OTHER);
        // An over-long value is `other` and takes no slot.
        let b = Bounded::new([], 1);
        assert_eq!(
            &*b.value(&"m".repeat(limits::MAX_IDENTIFIER_CHARS + 1)),
            OTHER
        );
        assert_eq!(&*b.value("short"), "short");
    }

    #[test]
    fn error_types_on_metrics_are_bounded() {
        assert_eq!(bounded_error_type("timeout", Some(504)), "timeout");
        assert_eq!(
            bounded_error_type("rate_limit_exceeded", Some(429)),
            "rate_limit_exceeded"
        );
        assert_eq!(
            bounded_error_type("RESOURCE_EXHAUSTED", Some(429)),
            "resource_exhausted"
        );
        assert_eq!(bounded_error_type("429", Some(429)), "429");
        assert_eq!(
            bounded_error_type("tenant-1234-over-quota", Some(429)),
            "429"
        );
        assert_eq!(bounded_error_type("weird_code", Some(200)), "stream_error");
        assert_eq!(bounded_error_type("weird_code", None), "stream_error");
        // Every value llmtap produces itself passes as it is.
        for e in ErrorType::ALL {
            assert_eq!(bounded_error_type(e.as_str(), Some(500)), e.as_str());
        }
    }
}
