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
use super::limits;
use super::record::FinishedRequest;
use super::semconv as sc;
use super::spans::{effective_usage, request_model};
use super::tools::PendingCall;
use crate::config::{Config, Price};

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
    known: HashSet<String>,
    seen: Mutex<HashSet<String>>,
    max: usize,
}

pub const OTHER: &str = "other";

impl Bounded {
    pub fn new(configured: impl IntoIterator<Item = String>, max: usize) -> Self {
        let known = configured
            .into_iter()
            .filter(|v| !v.contains(['*', '?']))
            .collect();
        Bounded {
            known,
            seen: Mutex::new(HashSet::new()),
            max,
        }
    }

    pub fn value(&self, v: &str) -> String {
        // Never a label of unbounded size, and never a slot taken by one.
        if !limits::fits(v) {
            return OTHER.into();
        }
        if self.known.contains(v) {
            return v.to_string();
        }
        let Ok(mut seen) = self.seen.lock() else {
            return OTHER.into();
        };
        if seen.contains(v) {
            return v.to_string();
        }
        if seen.len() < self.max {
            seen.insert(v.to_string());
            return v.to_string();
        }
        OTHER.into()
    }
}

pub struct Instruments {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    ttfc: Histogram<f64>,
    per_chunk: Histogram<f64>,
    requests: Counter<u64>,
    cost: Counter<f64>,
    unpriced: Counter<u64>,
    tool_calls: Counter<u64>,
    tool_duration: Histogram<f64>,
    pub active: UpDownCounter<i64>,
    pub dropped: Counter<u64>,
    /// Kept so its callback stays registered.
    _tasks: Option<ObservableGauge<i64>>,
    models: Bounded,
    tools: Bounded,
    /// `Some` when `metrics.tenant_attribute` is on.
    tenants: Option<Bounded>,
    extra: HashMap<String, Bounded>,
    prices: Vec<Price>,
    upstream_prices: HashMap<String, Vec<Price>>,
    warned_unpriced: Mutex<HashSet<String>>,
}

fn meter(provider: &SdkMeterProvider) -> Meter {
    provider.meter_with_scope(
        InstrumentationScope::builder("llmtap")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    )
}

impl Instruments {
    pub fn new(provider: &SdkMeterProvider, config: &Config) -> Instruments {
        let m = meter(provider);
        let hist = |name: &'static str, unit: &'static str, desc: &'static str, b: &[f64]| {
            m.f64_histogram(name)
                .with_unit(unit)
                .with_description(desc)
                .with_boundaries(b.to_vec())
                .build()
        };
        let configured_models = config
            .routes
            .iter()
            .map(|r| r.model.clone())
            .chain(config.metrics.prices.iter().map(|p| p.model.clone()));
        let extra = config
            .metrics
            .baggage_attributes
            .iter()
            .chain(&config.metrics.header_attributes)
            .map(|k| {
                (
                    k.clone(),
                    Bounded::new([], config.metrics.max_attribute_values),
                )
            })
            .collect();
        Instruments {
            duration: hist(
                sc::METRIC_OPERATION_DURATION,
                "s",
                "GenAI operation duration, from request arrival to the last byte sent to the client",
                sc::BUCKETS_DURATION,
            ),
            tokens: m
                .u64_histogram(sc::METRIC_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(sc::BUCKETS_TOKENS.to_vec())
                .build(),
            ttfc: hist(
                sc::METRIC_TIME_TO_FIRST_CHUNK,
                "s",
                "Time from request arrival to the first content chunk of a streamed response",
                sc::BUCKETS_TIME_TO_FIRST_CHUNK,
            ),
            per_chunk: hist(
                sc::METRIC_TIME_PER_OUTPUT_CHUNK,
                "s",
                "Time between consecutive chunks of a streamed response, recorded for each chunk after the first",
                sc::BUCKETS_TIME_PER_OUTPUT_CHUNK,
            ),
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
            tool_duration: hist(
                sc::METRIC_TOOL_DURATION,
                "s",
                "Application tool execution time: from the response requesting a call to the request carrying its result",
                sc::BUCKETS_DURATION,
            ),
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
            prices: config.metrics.prices.clone(),
            upstream_prices: config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), u.prices.clone()?)))
                .collect(),
            warned_unpriced: Mutex::new(HashSet::new()),
        }
    }

    fn model(&self, m: Option<&str>) -> String {
        match m {
            Some(m) => self.models.value(m),
            None => String::new(),
        }
    }

    /// Records one finished inference request into every instrument it touches.
    pub fn record(&self, f: &FinishedRequest) {
        let Some(op) = f.operation else { return };
        let req_model = self.model(request_model(f));
        let resp_model = self.model(f.response.model.as_deref());
        let mut base = vec![KeyValue::new(sc::GEN_AI_OPERATION_NAME, op.name())];
        if let Some(u) = &f.upstream {
            base.push(KeyValue::new(
                sc::GEN_AI_PROVIDER_NAME,
                u.provider.semconv_name(),
            ));
            base.push(KeyValue::new(sc::SERVER_ADDRESS, u.address.clone()));
        }
        if !req_model.is_empty() {
            base.push(KeyValue::new(sc::GEN_AI_REQUEST_MODEL, req_model.clone()));
        }
        if !resp_model.is_empty() {
            base.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, resp_model.clone()));
        }
        for (k, v) in &f.metric_attributes {
            if let Some(b) = self.extra.get(k) {
                base.push(KeyValue::new(k.clone(), b.value(v)));
            }
        }
        let tenant = match (&self.tenants, &f.tenant) {
            (Some(b), Some(t)) => Some(KeyValue::new(sc::LLMTAP_TENANT, b.value(t))),
            _ => None,
        };
        base.extend(tenant.clone());
        let mut with_error = base.clone();
        if let Some(e) = &f.error {
            // Upstream error codes become error.type: bounded in size like any value.
            let e = if limits::fits(e) { e.as_str() } else { OTHER };
            with_error.push(KeyValue::new(sc::ERROR_TYPE, e.to_string()));
        }
        let duration = f.ended.saturating_duration_since(f.started).as_secs_f64();
        self.duration.record(duration, &with_error);
        self.requests.add(1, &with_error);

        if f.streaming && f.error.is_none() {
            if let Some(first) = f.first_chunk_at {
                let ttfc = first.saturating_duration_since(f.started).as_secs_f64();
                self.ttfc.record(ttfc, &base);
            }
            // Per semconv: one observation per chunk after the first, the time since the
            // previous chunk.
            for gap in &f.chunk_gaps {
                self.per_chunk.record(f64::from(*gap), &base);
            }
        }

        let (usage, _) = effective_usage(f);
        let Some(usage) = usage else { return };
        let typed = |t: &'static str| {
            let mut a = base.clone();
            a.push(KeyValue::new(sc::GEN_AI_TOKEN_TYPE, t));
            a
        };
        if let Some(n) = usage.input_tokens {
            self.tokens.record(n, &typed("input"));
        }
        if let Some(n) = usage.output_tokens {
            self.tokens.record(n, &typed("output"));
        }
        let table = f
            .upstream
            .as_ref()
            .and_then(|u| self.upstream_prices.get(&u.name))
            .unwrap_or(&self.prices);
        match cost::find_price(table, f.response.model.as_deref(), request_model(f)) {
            Some(price) => {
                let c = cost::compute(price, &usage);
                let mut cost_attrs = vec![];
                if let Some(u) = &f.upstream {
                    cost_attrs.push(KeyValue::new(
                        sc::GEN_AI_PROVIDER_NAME,
                        u.provider.semconv_name(),
                    ));
                }
                cost_attrs.push(KeyValue::new(sc::GEN_AI_REQUEST_MODEL, req_model.clone()));
                cost_attrs.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, resp_model.clone()));
                // Cost per tenant is what a shared gateway is asked for first.
                cost_attrs.extend(tenant);
                let billed = [
                    ("input", c.input, usage.input_tokens),
                    ("output", c.output, usage.output_tokens),
                ];
                // Embeddings have no output tokens: no output cost series for them.
                for (t, v, _) in billed.into_iter().filter(|(_, _, n)| n.is_some()) {
                    let mut a = cost_attrs.clone();
                    a.push(KeyValue::new(sc::GEN_AI_TOKEN_TYPE, t));
                    self.cost.add(v, &a);
                }
            }
            None => {
                self.unpriced.add(1, &base);
                let name = request_model(f).unwrap_or("").to_string();
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

    pub fn tool_finished(&self, call: &PendingCall, secs: f64) {
        self.tool_duration.record(secs, &self.tool_attrs(call));
    }

    fn tool_attrs(&self, call: &PendingCall) -> Vec<KeyValue> {
        // Tool names come from the application's tool definitions: bounded too.
        vec![
            KeyValue::new(sc::GEN_AI_TOOL_NAME, self.tools.value(&call.name)),
            KeyValue::new(
                sc::GEN_AI_REQUEST_MODEL,
                self.model(call.request_model.as_deref()),
            ),
        ]
    }

    pub fn record_dropped(&self, signal: &'static str, n: u64) {
        self.dropped.add(n, &[KeyValue::new(sc::SIGNAL, signal)]);
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
    let prom_reader = prometheus.then(|| SharedReader::new(Temporality::Cumulative));
    if let Some(r) = &prom_reader {
        b = b.with_reader(r.clone());
    }
    (b.build(), otlp_reader, prom_reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_values() {
        let b = Bounded::new(["gpt-4o".to_string(), "gpt-5*".to_string()], 2);
        assert_eq!(b.value("gpt-4o"), "gpt-4o");
        assert_eq!(b.value("a"), "a");
        assert_eq!(b.value("b"), "b");
        assert_eq!(b.value("c"), OTHER);
        assert_eq!(b.value("a"), "a");
        assert_eq!(b.value("gpt-4o"), "gpt-4o");
        assert_eq!(b.value("gpt-5-mini"), OTHER);
        // An over-long value is `other` and takes no slot.
        let b = Bounded::new([], 1);
        assert_eq!(
            b.value(&"m".repeat(limits::MAX_IDENTIFIER_CHARS + 1)),
            OTHER
        );
        assert_eq!(b.value("short"), "short");
    }
}
