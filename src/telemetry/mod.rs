//! Telemetry: the handle the request path uses (cheap: a gauge update and a `try_send`), and
//! the worker task that turns finished requests into spans and metrics and exports them.
//!
//! Nothing here is global: every `Telemetry` owns its providers and exporters, so tests can
//! run several proxies in one process, each exporting to its own receiver.

pub mod batch;
pub mod compat;
pub mod console;
pub mod content;
pub mod cost;
pub mod events;
pub mod export;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod otlp_http;
pub mod output_tools;
pub mod prometheus;
pub mod propagation;
pub mod recent;
pub mod record;
pub mod semconv;
pub mod series;
pub mod settings;
pub mod spans;
pub mod tools;
pub mod trace_proto;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, Env};
use crate::vocab::pending::PendingCall;
use content::Redactor;
use events::EventPipeline;
use export::{MetricSink, SpanBatcher, SpanSink};
use metrics::{Instruments, SharedReader};
use propagation::{Propagation, TraceParent};
use recent::{RecentCalls, RecentTool};
use record::FinishedRequest;
use settings::{ContentCapture, Settings};
use spans::SpanContextInfo;
use tools::PendingToolCalls;

enum Msg {
    Finished(Box<FinishedRequest>),
    Mcp(Box<mcp::McpOperation>),
    /// Answered once every message queued before it is handled.
    Sync(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// How often the telemetry thread takes finished requests off the queue, and at most how
/// many at a time (other work, like ticks and exports, runs between batches).
const DRAIN_EVERY: Duration = Duration::from_millis(10);
const MAX_DRAINED: usize = 4096;

/// How long a replica waits before looking a second time for a tool call it received the
/// result of but did not find in the shared state.
const LATE_STORE_GRACE: Duration = Duration::from_millis(300);

/// A tool call closed through the shared state (its result reached this replica, or its
/// expiry was confirmed there), handed back to the worker to emit.
struct Closed {
    call: PendingCall,
    end: SystemTime,
    result: Option<String>,
    /// The span of the request that carried the result (`None`: expired unanswered).
    closed_by: Option<SpanId>,
}

#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    settings: Settings,
    propagation: Propagation,
    instruments: Option<Arc<Instruments>>,
    prometheus: Option<SharedReader>,
    /// Where captured content goes; anything but `NoContent` makes the request path keep it.
    content: ContentCapture,
    /// The content event's log pipeline started.
    events: bool,
    /// The live view's ring of recent calls, when the view is on.
    recent: Option<Arc<RecentCalls>>,
    /// Redaction and truncation of captured content; `None` when capture is off.
    redactor: Option<Arc<Redactor>>,
    report_estimated: bool,
    /// Tool calls models asked for, claimable by MCP executions on the request path.
    tool_index: std::sync::Mutex<mcp::ToolIndex>,
    /// Backend compatibility profiles and prices, for views that rebuild span attributes.
    compat: compat::Compat,
    prices: cost::PriceTable,
    output_tools: output_tools::OutputTools,
    /// Bound hits: counted, flagged, warned about.
    limits: Arc<limits::LimitHits>,
    // Kept so the provider (and its readers) live as long as the handle.
    _meter_provider: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Builds exporters from the config and `OTEL_*` settings and spawns the worker on the
    /// current tokio runtime. Never fails for an unreachable collector: export errors are
    /// counted later, at export time.
    ///
    /// `state`: the Redis shared by replicas (`SharedState::from_config`), where pending tool
    /// calls are kept so another replica can close them.
    pub fn start(
        config: &Config,
        env: &dyn Env,
        state: Option<Arc<crate::state::SharedState>>,
    ) -> Telemetry {
        // The OTLP/HTTP exporter builds a reqwest client, which needs the TLS provider.
        crate::vocab::crypto::install_crypto_provider();
        let settings = Settings::from_env(env);
        let content = settings
            .capture_content
            .unwrap_or(if config.telemetry.capture_content {
                ContentCapture::SpanOnly
            } else {
                ContentCapture::NoContent
            });
        let resource = resource(&settings);
        let propagation = Propagation::from_env(settings.propagators.as_deref());
        let (tx, rx) = mpsc::channel(config.telemetry.queue_size.max(1));

        let mut span_sinks = Vec::new();
        let mut metric_sinks = Vec::new();
        let mut meter_provider = None;
        let mut instruments = None;
        let mut prometheus = None;
        let mut otlp_reader = None;
        let mut events = None;
        if !settings.sdk_disabled {
            if content.on_events() {
                events = EventPipeline::start(&settings, &resource);
            }
            if let Some(t) = &settings.traces_otlp {
                match export::otlp_span_sink(t, &resource) {
                    Ok(sink) => span_sinks.push(sink),
                    Err(e) => tracing::warn!(error = %e, "OTLP span exporter not started"),
                }
            }
            if settings.traces_console {
                span_sinks.push(SpanSink::Console);
            }
            if let Some(t) = &settings.metrics_otlp {
                match export::otlp_metric_exporter(t, settings.temporality) {
                    Ok(e) => metric_sinks.push(MetricSink::otlp(e, &t.endpoint)),
                    Err(e) => tracing::warn!(error = %e, "OTLP metric exporter not started"),
                }
            }
            if settings.metrics_console {
                metric_sinks.push(MetricSink::Console);
            }
            let push =
                (!metric_sinks.is_empty()).then(|| export::sdk_temporality(settings.temporality));
            let prom = config.metrics.prometheus || settings.metrics_prometheus;
            let (provider, otlp_r, prom_r) = metrics::provider(resource.clone(), push, prom);
            instruments = Some(Arc::new(Instruments::new(
                &provider,
                config,
                settings.genai_latest,
            )));
            meter_provider = Some(provider);
            prometheus = prom_r;
            otlp_reader = otlp_r;
        }
        let redactor = content.any().then(|| {
            Arc::new(Redactor::new(
                &config.telemetry.redaction_rules(),
                config.telemetry.content_max_chars,
            ))
        });
        // The view keeps content only when it goes on spans: it shows what spans export.
        let recent = config
            .ui_enabled()
            .then(|| Arc::new(RecentCalls::new(config.ui.max_calls, content.on_spans())));
        let (closed_tx, closed_rx) = mpsc::channel(4096);
        let events_on = events.is_some();
        let limits = Arc::new(limits::LimitHits::new(
            instruments.as_ref().map(|i| i.limits_hit.clone()),
        ));
        let worker = Worker {
            rx,
            batcher: export::span_batcher(&settings, span_sinks),
            metric_sinks: Arc::new(metric_sinks),
            otlp_reader,
            instruments: instruments.clone(),
            tools: PendingToolCalls::new(
                config.telemetry.tool_call_ttl,
                config.telemetry.max_pending_tool_calls,
                config.telemetry.max_pending_tool_calls_per_tenant,
            ),
            tool_ttl: config.telemetry.tool_call_ttl,
            state,
            closed_tx,
            closed_rx,
            scope: InstrumentationScope::builder("llmtap")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            redactor: redactor.clone(),
            events,
            content_on_spans: content.on_spans(),
            latest: settings.genai_latest,
            report_estimated: config.telemetry.report_estimated_usage,
            compat: compat::Compat::new(&config.telemetry.compat),
            prices: cost::PriceTable::new(config),
            output_tools: output_tools::OutputTools::new(&config.telemetry.output_tools),
            value_limit: settings.attribute_value_limit,
            sample_ratio: settings.sample_ratio,
            parent_based: settings.parent_based,
            slow: config.telemetry.slow_request,
            metric_interval: settings.metric_interval,
            metric_timeout: settings
                .metrics_otlp
                .as_ref()
                .map(|t| t.timeout)
                .unwrap_or(Duration::from_secs(10)),
            ids: RandomIdGenerator::default(),
            recent: recent.clone(),
            limits: limits.clone(),
        };
        // Its own OS thread and single-threaded runtime, apart from the serving threads:
        // encoding and sending a batch of 512 spans takes about a millisecond, which a
        // request on the same thread would wait behind.
        let started = std::thread::Builder::new()
            .name("llmtap-telemetry".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker.run()),
                    Err(e) => tracing::error!(error = %e, "telemetry runtime not started; telemetry is off"),
                }
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "telemetry thread not started; telemetry is off");
        }
        Telemetry {
            inner: Arc::new(Inner {
                tx,
                settings,
                propagation,
                instruments,
                prometheus,
                content,
                events: events_on,
                recent,
                redactor,
                report_estimated: config.telemetry.report_estimated_usage,
                tool_index: std::sync::Mutex::new(mcp::ToolIndex::new(
                    config.telemetry.tool_call_ttl,
                    config.telemetry.max_pending_tool_calls,
                )),
                compat: compat::Compat::new(&config.telemetry.compat),
                prices: cost::PriceTable::new(config),
                output_tools: output_tools::OutputTools::new(&config.telemetry.output_tools),
                limits,
                _meter_provider: meter_provider,
            }),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Where telemetry goes, for the start-up log line.
    pub fn describe(&self) -> String {
        self.inner
            .settings
            .describe(self.inner.prometheus.is_some(), self.inner.events)
    }

    pub fn propagation(&self) -> &Propagation {
        &self.inner.propagation
    }

    /// Whether the request path keeps message content (for spans, the event, or both).
    pub fn capture_content(&self) -> bool {
        self.inner.content.any()
    }

    /// The recent calls the live view shows; `None` when the view is off.
    pub fn recent(&self) -> Option<&Arc<RecentCalls>> {
        self.inner.recent.as_ref()
    }

    /// How spans are built (content redaction when it goes on spans, value limit, names), for
    /// views that show attributes as exported.
    pub fn span_context<'a>(&'a self, scope: &'a InstrumentationScope) -> SpanContextInfo<'a> {
        SpanContextInfo {
            scope,
            redactor: self.inner.redactor.as_deref(),
            content_on_spans: self.inner.content.on_spans(),
            value_limit: self.inner.settings.attribute_value_limit,
            latest: self.inner.settings.genai_latest,
            report_estimated: self.inner.report_estimated,
            compat: self.inner.compat,
            prices: &self.inner.prices,
            output_tools: &self.inner.output_tools,
        }
    }

    /// Where bound hits are counted (`llmtap.limits.hit`) and warned about.
    pub fn limits(&self) -> &limits::LimitHits {
        &self.inner.limits
    }

    /// The head sampling decision, sent upstream in `traceparent`.
    pub fn head_sampled(&self, trace: &TraceParent) -> bool {
        let s = &self.inner.settings;
        if s.sdk_disabled {
            return false;
        }
        match &trace.parent {
            Some(p) if s.parent_based => p.is_sampled(),
            _ => ratio_hit(trace.trace_id, s.sample_ratio),
        }
    }

    pub(crate) fn request_started(&self) {
        if let Some(i) = &self.inner.instruments {
            i.active.add(1, &[]);
        }
    }

    pub(crate) fn request_ended(&self) {
        if let Some(i) = &self.inner.instruments {
            i.active.add(-1, &[]);
        }
    }

    /// Hands a finished request to the worker without waiting. A full queue drops it (counted).
    pub(crate) fn submit(&self, f: FinishedRequest) {
        match self.inner.tx.try_send(Msg::Finished(Box::new(f))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(i) = &self.inner.instruments {
                    i.record_dropped("requests", 1);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Makes the tool calls of a model answer that just ended claimable by MCP executions
    /// (called on the request path, before the answer's last bytes reach the app).
    pub(crate) fn index_tool_calls(
        &self,
        facts: &record::RequestFacts,
        calls: &[crate::vocab::summary::ToolCall],
    ) {
        if calls.is_empty() || facts.operation.is_none() {
            return;
        }
        let sampled = self.head_sampled(&facts.trace);
        if let Ok(mut idx) = self.inner.tool_index.lock() {
            for c in calls {
                idx.add(facts.tenant.clone(), c, &facts.trace, sampled);
            }
        }
    }

    /// The model's pending tool call an MCP `tools/call` of `name` with `arguments` from
    /// `tenant` (in `trace` when given) executes, taken (see [`mcp::ToolIndex`]).
    pub fn claim_tool_call(
        &self,
        tenant: Option<&Arc<str>>,
        name: &str,
        arguments: &serde_json::Value,
        trace: Option<TraceId>,
    ) -> Option<mcp::Claimable> {
        self.inner
            .tool_index
            .lock()
            .ok()?
            .claim(tenant, name, arguments, trace)
    }

    /// Hands a finished MCP operation to the worker without waiting (as [`Self::submit`]).
    pub fn submit_mcp(&self, op: mcp::McpOperation) {
        match self.inner.tx.try_send(Msg::Mcp(Box::new(op))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(i) = &self.inner.instruments {
                    i.record_dropped("requests", 1);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Records one ended MCP session (`mcp.client.session.duration`, seconds).
    pub fn mcp_session_ended(
        &self,
        server: &crate::vocab::provider::UpstreamInfo,
        transport: &'static str,
        protocol_version: Option<&str>,
        secs: f64,
        error: Option<&str>,
    ) {
        if let Some(i) = &self.inner.instruments {
            i.mcp_session_ended(server, transport, protocol_version, secs, error);
        }
    }

    /// Whether spans are made at all (`OTEL_SDK_DISABLED` off).
    pub fn enabled(&self) -> bool {
        !self.inner.settings.sdk_disabled
    }

    /// The Prometheus scrape body, or `None` when the endpoint is off.
    pub fn prometheus_text(&self) -> Option<String> {
        let rm = self.inner.prometheus.as_ref()?.collect()?;
        Some(prometheus::render(&rm))
    }

    /// Waits (at most `timeout`) until the telemetry thread has handled every request that
    /// finished before this call, so a scrape right after a response includes it. Returns at
    /// once when the queue is full: a scrape never waits behind a backlog.
    pub async fn sync(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.try_send(Msg::Sync(tx)).is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
    }

    /// Drains the queue, emits pending tool calls, exports what is left (bounded by `timeout`).
    pub async fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(timeout + Duration::from_secs(1), rx).await;
        }
    }
}

/// The trace-id ratio rule of the OTel `TraceIdRatioBased` sampler, on the low 64 bits.
fn ratio_hit(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let x = u64::from_be_bytes(low) >> 1;
    (x as f64) < ratio * (1u64 << 63) as f64
}

fn resource(s: &Settings) -> Resource {
    let mut attrs: Vec<KeyValue> = s
        .resource_attributes
        .iter()
        .filter(|(k, _)| k != "service.name")
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    attrs.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    Resource::builder_empty()
        .with_service_name(s.service_name.clone())
        .with_attributes(attrs)
        .with_attributes([
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
            KeyValue::new("telemetry.sdk.language", "rust"),
        ])
        .build()
}

/// What span building needs, borrowed from the worker's fields (a macro rather than a method,
/// so the batcher and the event pipeline can be borrowed mutably beside it).
macro_rules! span_cx {
    ($w:expr) => {
        SpanContextInfo {
            scope: &$w.scope,
            redactor: $w.redactor.as_deref(),
            content_on_spans: $w.content_on_spans,
            value_limit: $w.value_limit,
            latest: $w.latest,
            report_estimated: $w.report_estimated,
            compat: $w.compat,
            prices: &$w.prices,
            output_tools: &$w.output_tools,
        }
    };
}

struct Worker {
    rx: mpsc::Receiver<Msg>,
    batcher: SpanBatcher,
    metric_sinks: Arc<Vec<MetricSink>>,
    otlp_reader: Option<SharedReader>,
    instruments: Option<Arc<Instruments>>,
    tools: PendingToolCalls,
    tool_ttl: Duration,
    /// Redis, when `--state-url` is set: tool calls shared between replicas.
    state: Option<Arc<crate::state::SharedState>>,
    closed_tx: mpsc::Sender<Closed>,
    closed_rx: mpsc::Receiver<Closed>,
    scope: InstrumentationScope,
    redactor: Option<Arc<Redactor>>,
    /// The `gen_ai.client.inference.operation.details` log records, when asked for.
    events: Option<EventPipeline>,
    content_on_spans: bool,
    latest: bool,
    report_estimated: bool,
    compat: compat::Compat,
    prices: cost::PriceTable,
    output_tools: output_tools::OutputTools,
    value_limit: Option<usize>,
    sample_ratio: f64,
    parent_based: bool,
    slow: Duration,
    metric_interval: Duration,
    metric_timeout: Duration,
    ids: RandomIdGenerator,
    recent: Option<Arc<RecentCalls>>,
    limits: Arc<limits::LimitHits>,
}

impl Worker {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut metric_tick = tokio::time::interval(self.metric_interval);
        metric_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; skip it.
        metric_tick.tick().await;
        // Finished requests are drained on a short tick rather than awaited one by one: a
        // receiver waiting on the queue is woken by every send, a cross-thread wake-up per
        // request that cost the serving thread more than the send itself at low load. Idle,
        // the tick is 100 wake-ups a second on this thread alone.
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = drain.tick() => {
                    for _ in 0..MAX_DRAINED {
                        match self.rx.try_recv() {
                            Ok(Msg::Finished(f)) => self.handle(*f),
                            Ok(Msg::Mcp(op)) => self.handle_mcp(*op),
                            Ok(Msg::Sync(ack)) => {
                                let _ = ack.send(());
                            }
                            Ok(Msg::Shutdown(ack)) => {
                                self.shutdown().await;
                                let _ = ack.send(());
                                return;
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                self.shutdown().await;
                                return;
                            }
                        }
                    }
                },
                Some(c) = self.closed_rx.recv() => {
                    self.emit_tool(c.call, c.end, c.result.as_deref(), c.closed_by);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    for call in self.tools.expire(now) {
                        self.expire_tool(call);
                    }
                    self.report_state_errors();
                    self.batcher.tick();
                    if let Some(e) = &mut self.events {
                        e.tick();
                    }
                    self.report_dropped();
                }
                _ = metric_tick.tick() => self.export_metrics(false).await,
            }
        }
    }

    fn handle(&mut self, f: FinishedRequest) {
        log_access(&f);
        if f.operation.is_none() {
            return;
        }
        if let Some(i) = &self.instruments {
            i.record(&f);
        }
        // Tool results in this request close the calls a previous response asked for. This
        // call's span links to the span of each call that asked for them, so a trace viewer
        // can walk a tool loop even when the app has no tracing of its own (two traces).
        let mut asked_by: Vec<opentelemetry::trace::SpanContext> = Vec::new();
        if let Some(req) = &f.request {
            // Only the tenant's own calls: a result naming another tenant's call id closes
            // nothing (`PendingToolCalls` and the shared state key calls by tenant).
            let tenant = f.tenant.as_ref();
            let mut remote = Vec::new();
            for (id, result) in &req.tool_results {
                let res = self.redactor.is_some().then_some(result.as_str());
                if let Some(call) = self.tools.take(tenant, id) {
                    if !asked_by.iter().any(|c| c.span_id() == call.parent_span_id) {
                        asked_by.push(spans::requesting_span_context(&call));
                    }
                    match self.state.clone() {
                        // Taken here: removed from the shared state so no replica emits it
                        // again. An MCP execution on another replica may have claimed it: the
                        // shared copy says so, and then its span is out already.
                        Some(state) if !call.executed => {
                            let (tx, tenant) = (self.closed_tx.clone(), tenant.cloned());
                            let closed_by = Some(f.trace.span_id);
                            let (end, result) = (f.started_at, res.map(str::to_owned));
                            tokio::spawn(async move {
                                let mut call = call;
                                let stored = state.take_call(tenant.as_deref(), &call.call_id);
                                if let Ok(Some(s)) = stored.await {
                                    call.executed |= s.executed;
                                }
                                let closed = Closed {
                                    call,
                                    end,
                                    result,
                                    closed_by,
                                };
                                let _ = tx.send(closed).await;
                            });
                        }
                        Some(state) => {
                            let (id, tenant) = (id.clone(), tenant.cloned());
                            tokio::spawn(async move {
                                let _ = state.take_call(tenant.as_deref(), &id).await;
                            });
                        }
                        None => self.emit_tool(call, f.started_at, res, Some(f.trace.span_id)),
                    }
                } else if self.state.is_some() {
                    remote.push((id.clone(), res.map(str::to_owned)));
                }
            }
            // Asked for through another replica: whoever takes it from Redis emits it. One
            // task and one round trip for all of this request's results.
            if let (Some(state), false) = (self.state.clone(), remote.is_empty()) {
                let (tx, end, tenant) = (self.closed_tx.clone(), f.started_at, tenant.cloned());
                let closed_by = Some(f.trace.span_id);
                tokio::spawn(async move {
                    let tenant = tenant.as_deref();
                    let ids: Vec<String> = remote.iter().map(|(id, _)| id.clone()).collect();
                    let Ok(mut taken) = state.take_calls(tenant, &ids).await else {
                        return;
                    };
                    let missing: Vec<String> = ids
                        .iter()
                        .zip(&taken)
                        .filter(|(_, t)| t.is_none())
                        .map(|(id, _)| id.clone())
                        .collect();
                    if !missing.is_empty() {
                        // The asking replica stores its calls right after its response; an
                        // app that runs its tool in a millisecond can beat that write.
                        tokio::time::sleep(LATE_STORE_GRACE).await;
                        if let Ok(late) = state.take_calls(tenant, &missing).await {
                            let mut late = late.into_iter();
                            for slot in taken.iter_mut().filter(|t| t.is_none()) {
                                *slot = late.next().flatten();
                            }
                        }
                    }
                    for ((_, result), stored) in remote.into_iter().zip(taken) {
                        if let Some(call) = stored.and_then(|s| s.into_pending()) {
                            let closed = Closed {
                                call,
                                end,
                                result,
                                closed_by,
                            };
                            let _ = tx.send(closed).await;
                        }
                    }
                });
            }
        }
        let keep = self.keep(&f);
        let cx = span_cx!(self);
        // Computed once for the span and the log record when both are made.
        let attrs = self
            .events
            .is_some()
            .then(|| spans::inference_attributes(&f, &cx))
            .flatten();
        if keep {
            self.batcher.push_with(|| {
                let a = attrs
                    .clone()
                    .or_else(|| spans::inference_attributes(&f, &cx))?;
                spans::inference_span(&f, a, &cx, asked_by)
            });
        }
        if let (Some(ev), Some(a), Some(red)) = (&mut self.events, &attrs, &self.redactor) {
            ev.inference_details(&f, a, red, self.value_limit, keep);
        }
        // Calls this response asks for start waiting for their results now.
        let requested_at = spans::end_time(&f);
        let mut shared = Vec::new();
        let descriptions = f
            .request
            .as_ref()
            .map(|r| r.tool_descriptions.as_slice())
            .unwrap_or_default();
        // One copy of the model for all the calls of this response.
        let request_model: Option<Arc<str>> = f.request_model().map(Arc::from);
        for c in &f.response.tool_calls {
            // A call with no id cannot be answered; an output tool's call is the answer
            // itself (structured output), never executed: neither waits for a result.
            if c.id.is_empty() || self.output_tools.is_output(c, f.request.as_ref()) {
                continue;
            }
            let call = PendingCall {
                call_id: c.id.clone(),
                name: c.name.clone(),
                kind: if c.kind.is_empty() {
                    "function".into()
                } else {
                    c.kind.clone()
                },
                trace_id: f.trace.trace_id,
                trace_state: f
                    .trace
                    .parent
                    .as_ref()
                    .map(|p| p.trace_state().clone())
                    .unwrap_or_default(),
                parent_span_id: f.trace.span_id,
                keep,
                requested_at,
                requested: f.ended,
                request_model: request_model.clone(),
                description: descriptions
                    .iter()
                    .find(|(name, _)| *name == c.name)
                    .map(|(_, d)| d.clone()),
                tenant: f.tenant.clone(),
                arguments: self.redactor.as_ref().map(|_| c.arguments.clone()),
                arguments_key: Some(mcp::arguments_key_text(&c.arguments)),
                executed: false,
            };
            if let Some(i) = &self.instruments {
                i.tool_requested(&call);
            }
            if self.state.is_some() {
                shared.push(crate::state::StoredCall::from_pending(&call));
            }
            let inserted = self.tools.insert(call);
            if inserted.total_full {
                self.limits.hit(
                    crate::vocab::limits::Limit::PendingTotal,
                    "telemetry.max_pending_tool_calls",
                );
            }
            if let Some(refused) = inserted.refused {
                // Not tracked: its result will close nothing; the Redis copy goes too.
                shared.retain(|s| s.call_id != refused.call_id);
                self.limits.hit(
                    crate::vocab::limits::Limit::PendingPerTenant,
                    "telemetry.max_pending_tool_calls_per_tenant",
                );
            }
            for old in inserted.evicted {
                self.emit_tool(old, SystemTime::now(), None, None);
            }
        }
        // One round trip for all the calls of this response, off the request path.
        if let (Some(state), false) = (self.state.clone(), shared.is_empty()) {
            let ttl = self.tool_ttl;
            tokio::spawn(async move {
                let _ = state.put_calls(&shared, ttl).await;
            });
        }
        if let Some(r) = &self.recent {
            // With content on spans, the view keeps the span's attributes as exported
            // (content redacted and truncated once, here) rather than the raw content.
            let exported = (self.redactor.is_some() && self.content_on_spans)
                .then(|| {
                    let cx = span_cx!(self);
                    let a = attrs.or_else(|| spans::inference_attributes(&f, &cx))?;
                    spans::inference_span(&f, a, &cx, Vec::new()).map(|s| s.attributes)
                })
                .flatten();
            r.push(f, keep, exported);
        }
    }

    /// One MCP operation: a `tools/call` that executes a tool call a model asked for (same
    /// tool, arguments equal as JSON, same tenant, and the same trace when the app sent one)
    /// becomes that call's `execute_tool` span; every operation is one client span.
    fn handle_mcp(&mut self, mut op: mcp::McpOperation) {
        log_mcp(&op);
        let shared = op.shared_call.take().map(|c| *c);
        let local = match (&op.tool_name, op.is_tool_call(), &op.joined_call) {
            (_, _, Some(id)) => self.tools.execute_by_id(op.tenant.as_ref(), id),
            (Some(name), true, None) => {
                let key =
                    mcp::arguments_key(op.arguments.as_ref().unwrap_or(&serde_json::Value::Null));
                let trace = op.trace.parent.as_ref().map(|p| p.trace_id());
                self.tools
                    .execute_matching(op.tenant.as_deref(), name, key, trace)
            }
            _ => None,
        };
        // A call claimed in the shared state is marked executed there; one joined here is
        // marked now, for the replica that may receive its result.
        if let (Some(c), Some(state)) = (&local, self.state.clone()) {
            let (tenant, id, ttl) = (c.tenant.clone(), c.call_id.clone(), self.tool_ttl);
            tokio::spawn(async move {
                let _ = state.mark_executed(tenant.as_deref(), &id, ttl).await;
            });
        }
        let joined = local.or(shared);
        if let Some(i) = &self.instruments {
            i.record_mcp(&op);
            if let Some(c) = &joined {
                i.tool_finished(c, op.duration_secs());
            }
        }
        // A joined span follows the model call's sampling, so it is never orphaned.
        let keep = match &joined {
            Some(c) => c.keep,
            None => {
                op.error.is_some()
                    || op.ended.saturating_duration_since(op.started) >= self.slow
                    || match &op.trace.parent {
                        Some(p) if self.parent_based => p.is_sampled(),
                        _ => ratio_hit(op.trace.trace_id, self.sample_ratio),
                    }
            }
        };
        if keep {
            let cx = span_cx!(self);
            self.batcher
                .push_with(|| Some(mcp::mcp_span(&op, joined.as_ref(), &cx)));
        }
        // The live view lists every MCP request, and shows a joined execution in the asking
        // call's tool timeline, with its real start and end (and, with content on spans, the
        // MCP span's attributes).
        if let Some(r) = &self.recent {
            let exported = (self.redactor.is_some() && self.content_on_spans).then(|| {
                let cx = span_cx!(self);
                mcp::mcp_attributes(&op, joined.as_ref(), &cx)
            });
            let (start, end) = (op.started_at, op.end_time());
            let id = r.push_mcp(op, joined.clone(), keep, exported.clone());
            if let Some(mut call) = joined {
                call.requested_at = start;
                r.push_tool(RecentTool {
                    call,
                    end,
                    received: false,
                    closed_by: None,
                    exported_attributes: exported,
                    mcp: Some(id),
                });
            }
        }
    }

    /// A call this replica asked for reached its TTL unanswered here. With shared state, it is
    /// emitted as unanswered only if it is still in Redis (no other replica closed it); Redis
    /// unavailable means this replica's view is all there is.
    fn expire_tool(&mut self, call: PendingCall) {
        let Some(state) = self.state.clone() else {
            self.emit_tool(call, SystemTime::now(), None, None);
            return;
        };
        let tx = self.closed_tx.clone();
        tokio::spawn(async move {
            match state.take_call(call.tenant.as_deref(), &call.call_id).await {
                Ok(None) => {}
                Ok(Some(stored)) if stored.executed => {}
                Ok(Some(_)) | Err(()) => {
                    let closed = Closed {
                        call,
                        end: SystemTime::now(),
                        result: None,
                        closed_by: None,
                    };
                    let _ = tx.send(closed).await;
                }
            }
        });
    }

    fn report_state_errors(&self) {
        if let (Some(state), Some(i)) = (&self.state, &self.instruments) {
            let n = state.take_errors();
            if n > 0 {
                i.record_state_errors(n);
            }
        }
    }

    /// Tail sampling with the outcome known: errors and slow requests always; otherwise the
    /// caller's decision (parent-based) or the trace-id ratio.
    fn keep(&self, f: &FinishedRequest) -> bool {
        if f.error.is_some() || f.ended.saturating_duration_since(f.started) >= self.slow {
            return true;
        }
        match &f.trace.parent {
            Some(p) if self.parent_based => p.is_sampled(),
            _ => ratio_hit(f.trace.trace_id, self.sample_ratio),
        }
    }

    /// Ends a tool call: `closed_by` is the span of the request that carried its result
    /// (`None` when it expired or was pushed out without one).
    fn emit_tool(
        &mut self,
        call: PendingCall,
        end: SystemTime,
        result: Option<&str>,
        closed_by: Option<SpanId>,
    ) {
        let received = closed_by.is_some();
        if call.executed {
            // Its execute_tool span and duration came from the MCP execution; the view's
            // record of that execution links the request that carried the result.
            if let (Some(r), Some(by)) = (&self.recent, closed_by) {
                r.tool_answered(&call.call_id, call.parent_span_id, by);
            }
            return;
        }
        if let Some(i) = &self.instruments {
            i.tool_finished(&call, spans::tool_duration(&call, end).as_secs_f64());
        }
        if call.keep {
            let cx = span_cx!(self);
            let span_id = self.ids.new_span_id();
            self.batcher
                .push_with(|| Some(spans::tool_span(&call, end, result, received, span_id, &cx)));
        }
        if let Some(r) = &self.recent {
            // With content on spans, the attributes as exported (arguments and result
            // redacted and truncated); the record itself keeps no content.
            let exported = (self.redactor.is_some() && self.content_on_spans).then(|| {
                let cx = span_cx!(self);
                spans::tool_span(&call, end, result, received, SpanId::INVALID, &cx).attributes
            });
            r.push_tool(RecentTool {
                call,
                end,
                received,
                closed_by,
                exported_attributes: exported,
                mcp: None,
            });
        }
    }

    fn report_dropped(&self) {
        let n = self.batcher.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            if let Some(i) = &self.instruments {
                i.record_dropped("spans", n as u64);
            }
        }
        let n = self
            .events
            .as_ref()
            .map(|e| e.dropped().swap(0, Ordering::Relaxed))
            .unwrap_or(0);
        if n > 0 {
            if let Some(i) = &self.instruments {
                i.record_dropped("logs", n as u64);
            }
        }
    }

    async fn export_metrics(&self, wait: bool) {
        if self.metric_sinks.is_empty() {
            return;
        }
        let Some(rm) = self.otlp_reader.as_ref().and_then(|r| r.collect()) else {
            return;
        };
        let sinks = self.metric_sinks.clone();
        let instruments = self.instruments.clone();
        let timeout = self.metric_timeout;
        let job = async move {
            for s in sinks.iter() {
                if s.export(&rm, timeout).await.is_err() {
                    let points: usize = rm.scope_metrics().map(|sm| sm.metrics().count()).sum();
                    if let Some(i) = &instruments {
                        i.record_dropped("metrics", points as u64);
                    }
                }
            }
        };
        if wait {
            job.await
        } else {
            // Off the worker, so a slow collector never delays span building.
            tokio::spawn(job);
        }
    }

    async fn shutdown(&mut self) {
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Finished(f) => self.handle(*f),
                Msg::Mcp(op) => self.handle_mcp(*op),
                _ => {}
            }
        }
        let now = SystemTime::now();
        let pending = self.tools.drain();
        if self.state.is_none() {
            for call in pending {
                self.emit_tool(call, now, None, None);
            }
        }
        // With shared state, calls still pending stay in Redis: another replica may receive
        // their results after this one is gone, and closes them then.
        while let Ok(c) = self.closed_rx.try_recv() {
            self.emit_tool(c.call, c.end, c.result.as_deref(), c.closed_by);
        }
        self.report_state_errors();
        let deadline = Instant::now() + Duration::from_secs(5);
        self.batcher.drain(deadline).await;
        if let Some(e) = &mut self.events {
            e.tick();
            e.drain(deadline).await;
        }
        self.report_dropped();
        self.export_metrics(true).await;
    }
}

/// The access line of one MCP operation.
fn log_mcp(op: &mcp::McpOperation) {
    tracing::info!(
        target: "llmtap::access",
        mcp_server = %crate::vocab::limits::cut(&op.server.name),
        method = %crate::vocab::limits::cut(&op.method),
        tool = crate::vocab::limits::cut(op.tool_name.as_deref().unwrap_or("-")),
        status = op.http_status.unwrap_or(0),
        duration_ms = format_args!("{:.1}", op.duration_secs() * 1e3),
        error = crate::vocab::limits::cut(op.error.as_deref().unwrap_or("-")),
        "mcp"
    );
}

fn log_access(f: &FinishedRequest) {
    let duration_ms = f.ended.saturating_duration_since(f.started).as_secs_f64() * 1e3;
    // `hint` appears only when there is one, so ordinary lines stay short.
    macro_rules! access {
        ($($hint:tt)*) => {
            tracing::info!(
                target: "llmtap::access",
                method = %f.method,
                path = %crate::vocab::limits::cut(&f.path),
                status = f.status.unwrap_or(0),
                model = crate::vocab::limits::cut(f.request_model().unwrap_or("-")),
                upstream = f.upstream.as_ref().map(|u| u.name.as_str()).unwrap_or("-"),
                duration_ms = format_args!("{duration_ms:.1}"),
                bytes_out = f.bytes_out,
                error = crate::vocab::limits::cut(f.error.as_deref().unwrap_or("-")),
                $($hint)*
                "request"
            )
        };
    }
    // `tenant` only with client keys on, so lines without them stay as they were.
    let tenant = f.tenant.as_deref().map(crate::vocab::limits::cut);
    match (&f.hint, tenant) {
        (Some(h), Some(t)) => access!(tenant = t, hint = %crate::vocab::limits::cut(h),),
        (Some(h), None) => access!(hint = %crate::vocab::limits::cut(h),),
        (None, Some(t)) => access!(tenant = t,),
        (None, None) => access!(),
    }
}
