//! The attribute sets of an inference request's metric points, built once per series and
//! reused: a request of a series seen before costs one map lookup instead of a dozen
//! `Vec<KeyValue>`s. The values are already bounded (models, tenants and copied attributes
//! through `metrics::Bounded`, `error.type` through `bounded_error_type`), and so is the
//! cache: past [`MAX_CACHED`] series a request's sets are built for it alone, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
#[derive(Debug, PartialEq)]
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
        assert_eq!(*a, SeriesAttributes::new(&key("m")));
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
}
