//! The attribute sets of an inference request's metric points, built once per series and
//! reused: a request of a series seen before costs one map lookup instead of a dozen
//! `Vec<KeyValue>`s, and its instruments are bound to those sets ([`Bound`]), so the SDK
//! does not hash the set again on every measurement. The values are already bounded (models, tenants and copied attributes
//! through `metrics::Bounded`, `error.type` through `bounded_error_type`), and so is the
//! cache: past [`MAX_CACHED`] series a request's sets are built for it alone, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};
use opentelemetry::{Key, KeyValue};

use super::semconv as sc;

/// Series whose attribute sets are kept (a few KB each).
pub const MAX_CACHED: usize = 512;

/// What tells one inference series from another: every value its points carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub operation: &'static str,
    /// Provider (`gen_ai.provider.name`), `server.address`, `server.port`.
    pub upstream: Option<(&'static str, Arc<str>, u16)>,
    pub request_model: Option<Arc<str>>,
    pub response_model: Option<Arc<str>>,
    /// Baggage and header attributes copied onto metrics, bounded.
    pub extra: Vec<(Key, Arc<str>)>,
    pub tenant: Option<Arc<str>>,
    /// `error.type`, bounded.
    pub error: Option<String>,
    /// The usage is llmtap's estimate, reported under the standard names.
    pub estimated: bool,
}

/// The sets one series' points carry, in the order the instruments were always given them.
#[derive(Debug)]
pub struct SeriesAttributes {
    /// Operation, provider, address, port, models, copied attributes, tenant.
    pub base: Vec<KeyValue>,
    /// `base` and `error.type` on a failure.
    pub with_error: Vec<KeyValue>,
    /// `base`, flagged `llmtap.usage.estimated` when the usage is an estimate.
    pub flagged: Vec<KeyValue>,
    /// `flagged` with `gen_ai.token.type` input and output.
    pub tokens: [Vec<KeyValue>; 2],
    /// `flagged` with `gen_ai.token.modality` `unknown` (genai `main`'s usage counters).
    pub counted: Vec<KeyValue>,
    /// `with_error`, flagged (genai `main`'s per-operation token histograms).
    pub per_op: Vec<KeyValue>,
    /// `llmtap.cost`'s set with `gen_ai.token.type` input and output: provider, models
    /// (empty when unknown), the flag, the tenant.
    pub cost: [Vec<KeyValue>; 2],
    /// `llmtap.tenant`, for the conversation counters.
    pub tenant: Option<KeyValue>,
    /// The instruments this series recorded into, bound to its sets.
    pub bound: Bound,
}

/// An instrument bound to one of a series' sets on its first measurement. A bound instrument
/// writes straight to its data point (the SDK resolves the set once, at binding); binding
/// only when a measurement comes keeps an instrument that never sees the series from
/// exporting a zero point for it (cumulative collection exports every bound set).
pub struct Slot<B>(OnceLock<B>);

impl<B> Default for Slot<B> {
    fn default() -> Slot<B> {
        Slot(OnceLock::new())
    }
}

impl<B> std::fmt::Debug for Slot<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Slot(bound)"
        } else {
            "Slot(unbound)"
        })
    }
}

impl<T> Slot<BoundCounter<T>> {
    pub fn add(&self, counter: &Counter<T>, attributes: &[KeyValue], value: T) {
        self.0.get_or_init(|| counter.bind(attributes)).add(value);
    }
}

impl<T> Slot<BoundHistogram<T>> {
    pub fn record(&self, histogram: &Histogram<T>, attributes: &[KeyValue], value: T) {
        self.0
            .get_or_init(|| histogram.bind(attributes))
            .record(value);
    }
}

/// Every (instrument, set) pair an inference series records into. The operation is part of
/// the series, so `duration` is whichever duration histogram the operation records.
#[derive(Debug, Default)]
pub struct Bound {
    pub requests: Slot<BoundCounter<u64>>,
    pub duration: Slot<BoundHistogram<f64>>,
    pub ttfc: Slot<BoundHistogram<f64>>,
    pub per_chunk: Slot<BoundHistogram<f64>>,
    /// v1.41.1's token histogram, input and output.
    pub tokens: [Slot<BoundHistogram<u64>>; 2],
    /// genai `main`: input, output, cache read, cache write, reasoning counters.
    pub usage: [Slot<BoundCounter<u64>>; 5],
    /// genai `main`: per-operation input and output token histograms.
    pub per_op_tokens: [Slot<BoundHistogram<u64>>; 2],
    pub embeddings_tokens: Slot<BoundHistogram<u64>>,
    /// `llmtap.cost` input and output.
    pub cost: [Slot<BoundCounter<f64>>; 2],
    /// `llmtap.cost.estimated` input and output.
    pub cost_estimated: [Slot<BoundCounter<f64>>; 2],
    pub unpriced: Slot<BoundCounter<u64>>,
}

impl SeriesAttributes {
    pub fn new(k: &SeriesKey) -> SeriesAttributes {
        let mut base = vec![KeyValue::new(sc::GEN_AI_OPERATION_NAME, k.operation)];
        if let Some((provider, address, port)) = &k.upstream {
            base.push(KeyValue::new(sc::GEN_AI_PROVIDER_NAME, *provider));
            // server.port is conditionally required wherever server.address is set.
            base.push(KeyValue::new(sc::SERVER_ADDRESS, address.clone()));
            base.push(KeyValue::new(sc::SERVER_PORT, i64::from(*port)));
        }
        if let Some(m) = &k.request_model {
            base.push(KeyValue::new(sc::GEN_AI_REQUEST_MODEL, m.clone()));
        }
        if let Some(m) = &k.response_model {
            base.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, m.clone()));
        }
        for (key, v) in &k.extra {
            base.push(KeyValue::new(key.clone(), v.clone()));
        }
        let tenant = k
            .tenant
            .as_ref()
            .map(|t| KeyValue::new(sc::LLMTAP_TENANT, t.clone()));
        base.extend(tenant.clone());
        let mut with_error = base.clone();
        if let Some(e) = &k.error {
            with_error.push(KeyValue::new(sc::ERROR_TYPE, e.clone()));
        }
        let flag = |attrs: &[KeyValue]| {
            let mut a = attrs.to_vec();
            if k.estimated {
                a.push(KeyValue::new(sc::LLMTAP_USAGE_ESTIMATED, true));
            }
            a
        };
        let with = |attrs: &[KeyValue], kv: KeyValue| {
            let mut a = attrs.to_vec();
            a.push(kv);
            a
        };
        let flagged = flag(&base);
        let token_type = |t: &'static str| KeyValue::new(sc::GEN_AI_TOKEN_TYPE, t);
        let mut cost = Vec::new();
        if let Some((provider, _, _)) = &k.upstream {
            cost.push(KeyValue::new(sc::GEN_AI_PROVIDER_NAME, *provider));
        }
        let text = |m: &Option<Arc<str>>| m.clone().unwrap_or_else(|| Arc::from(""));
        cost.push(KeyValue::new(
            sc::GEN_AI_REQUEST_MODEL,
            text(&k.request_model),
        ));
        cost.push(KeyValue::new(
            sc::GEN_AI_RESPONSE_MODEL,
            text(&k.response_model),
        ));
        if k.estimated {
            cost.push(KeyValue::new(sc::LLMTAP_USAGE_ESTIMATED, true));
        }
        // Cost per tenant is what a shared gateway is asked for first.
        cost.extend(tenant.clone());
        SeriesAttributes {
            tokens: [
                with(&flagged, token_type("input")),
                with(&flagged, token_type("output")),
            ],
            counted: with(
                &flagged,
                KeyValue::new(sc::GEN_AI_TOKEN_MODALITY, "unknown"),
            ),
            per_op: flag(&with_error),
            cost: [
                with(&cost, token_type("input")),
                with(&cost, token_type("output")),
            ],
            flagged,
            base,
            with_error,
            tenant,
            bound: Bound::default(),
        }
    }
}

/// The attribute sets of the series seen so far, at most [`MAX_CACHED`].
#[derive(Default)]
pub struct SeriesCache {
    sets: Mutex<HashMap<SeriesKey, Arc<SeriesAttributes>>>,
}

impl SeriesCache {
    /// The sets of `key`'s series: kept ones, or built now (and kept while there is room).
    pub fn get(&self, key: SeriesKey) -> Arc<SeriesAttributes> {
        let Ok(mut sets) = self.sets.lock() else {
            return Arc::new(SeriesAttributes::new(&key));
        };
        if let Some(s) = sets.get(&key) {
            return s.clone();
        }
        let s = Arc::new(SeriesAttributes::new(&key));
        if sets.len() < MAX_CACHED {
            sets.insert(key, s.clone());
        }
        s
    }

    pub fn len(&self) -> usize {
        self.sets.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: &str) -> SeriesKey {
        SeriesKey {
            operation: "chat",
            upstream: Some(("openai", Arc::from("api.openai.com"), 443)),
            request_model: Some(Arc::from(model)),
            response_model: None,
            extra: vec![(Key::from("team"), Arc::from("search"))],
            tenant: Some(Arc::from("acme")),
            error: Some("timeout".into()),
            estimated: true,
        }
    }

    #[test]
    fn sets_are_shared_per_series_and_the_cache_is_bounded() {
        let cache = SeriesCache::default();
        let a = cache.get(key("m"));
        assert!(Arc::ptr_eq(&a, &cache.get(key("m"))));
        let fresh = SeriesAttributes::new(&key("m"));
        assert_eq!(
            (&a.base, &a.with_error, &a.cost),
            (&fresh.base, &fresh.with_error, &fresh.cost)
        );
        assert!(!Arc::ptr_eq(&a, &cache.get(key("n"))));
        for i in 0..MAX_CACHED + 10 {
            cache.get(key(&format!("model-{i}")));
        }
        assert_eq!(cache.len(), MAX_CACHED);
        // Past the bound a set is still right, only not kept.
        let late = cache.get(key("late"));
        assert_eq!(late.base, SeriesAttributes::new(&key("late")).base);
        assert_eq!(cache.len(), MAX_CACHED);
    }

    #[test]
    fn each_set_carries_what_its_instruments_were_given() {
        let s = SeriesAttributes::new(&key("m"));
        let keys = |a: &[KeyValue]| a.iter().map(|kv| kv.key.to_string()).collect::<Vec<_>>();
        let base = [
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "server.address",
            "server.port",
            "gen_ai.request.model",
            "team",
            "llmtap.tenant",
        ];
        assert_eq!(keys(&s.base), base);
        assert_eq!(keys(&s.with_error)[7..], ["error.type"]);
        assert_eq!(
            keys(&s.tokens[1])[7..],
            ["llmtap.usage.estimated", "gen_ai.token.type"]
        );
        assert_eq!(s.tokens[1][8].value.as_str(), "output");
        assert_eq!(
            keys(&s.per_op)[7..],
            ["error.type", "llmtap.usage.estimated"]
        );
        assert_eq!(
            keys(&s.cost[0]),
            [
                "gen_ai.provider.name",
                "gen_ai.request.model",
                "gen_ai.response.model",
                "llmtap.usage.estimated",
                "llmtap.tenant",
                "gen_ai.token.type"
            ]
        );
        assert_eq!(s.cost[0][2].value.as_str(), "", "an unknown model is empty");
    }

    /// A bound slot's points are those the plain instrument records for the same set, with
    /// cumulative and delta collection, over rounds with and without measurements.
    #[test]
    fn bound_slots_record_what_unbound_instruments_do() {
        use super::super::metrics::{provider, SharedReader};
        use opentelemetry::metrics::MeterProvider as _;
        use opentelemetry_sdk::metrics::Temporality;
        let (meters, delta, cumulative) = provider(
            opentelemetry_sdk::Resource::builder_empty().build(),
            Some(Temporality::Delta),
            true,
        );
        let (delta, cumulative) = (delta.unwrap(), cumulative.unwrap());
        let m = meters.meter("test");
        let (bound_c, plain_c) = (
            m.u64_counter("bound_c").build(),
            m.u64_counter("plain_c").build(),
        );
        let bound_h = m.f64_histogram("bound_h").build();
        let plain_h = m.f64_histogram("plain_h").build();
        let attrs = [KeyValue::new("b", "2"), KeyValue::new("a", "1")];
        let (c, h) = (Slot::default(), Slot::default());
        // The points of `bound_*`, renamed, and of `plain_*`.
        let points = |r: &SharedReader| {
            let text = super::super::prometheus::render(&r.collect().unwrap());
            let of = |prefix: &str| -> Vec<String> {
                text.lines()
                    .filter(|l| l.contains(prefix))
                    .map(|l| l.replace(prefix, "x_"))
                    .collect()
            };
            (of("bound_"), of("plain_"))
        };
        for (round, values) in [vec![1u64, 5, 7], vec![2], vec![]].into_iter().enumerate() {
            for v in values {
                c.add(&bound_c, &attrs, v);
                plain_c.add(v, &attrs);
                h.record(&bound_h, &attrs, v as f64 / 10.0);
                plain_h.record(v as f64 / 10.0, &attrs);
            }
            for (name, r) in [("delta", &delta), ("cumulative", &cumulative)] {
                let (bound, plain) = points(r);
                assert_eq!(bound, plain, "{name}, round {round}");
                if round < 2 || name == "cumulative" {
                    assert!(
                        bound.iter().any(|l| l.contains("a=\"1\"")),
                        "{name} {round}: {bound:?}"
                    );
                }
            }
        }
    }
}
