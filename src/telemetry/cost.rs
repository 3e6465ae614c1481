//! Estimated cost in USD from a price table (USD per million tokens, by model glob).
//! Cost is only ever computed from a known price: no price, no number.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::config::{Config, Price};
use crate::vocab::summary::Usage;
use crate::vocab::text::glob_match;

use super::record::FinishedRequest;

/// The configured prices: the global table and the upstreams that have their own.
#[derive(Debug)]
pub struct PriceTable {
    global: Vec<Price>,
    per_upstream: HashMap<String, Vec<Price>>,
    /// The last lookups and what they found: a request's price is asked for by its metrics,
    /// its span and the live view, and glob matching down a table of ~100 patterns is the
    /// expensive part.
    recent: Mutex<VecDeque<Lookup>>,
}

/// Lookups remembered (most recent first).
const RECENT_LOOKUPS: usize = 8;

/// One remembered lookup: its arguments, and the index of the price found in the table they
/// select.
#[derive(Debug)]
struct Lookup {
    upstream: Option<String>,
    response_model: Option<String>,
    request_model: Option<String>,
    found: Option<usize>,
}

impl Lookup {
    fn is(&self, upstream: Option<&str>, response: Option<&str>, request: Option<&str>) -> bool {
        self.upstream.as_deref() == upstream
            && self.response_model.as_deref() == response
            && self.request_model.as_deref() == request
    }
}

impl Clone for PriceTable {
    fn clone(&self) -> PriceTable {
        PriceTable {
            global: self.global.clone(),
            per_upstream: self.per_upstream.clone(),
            recent: Mutex::default(),
        }
    }
}

impl PriceTable {
    pub fn new(config: &Config) -> PriceTable {
        PriceTable {
            global: config.metrics.price_list(),
            per_upstream: config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), u.prices.clone()?)))
                .collect(),
            recent: Mutex::default(),
        }
    }

    /// The price of a finished request: from its upstream's own table when it has one. One
    /// lookup for the cost metric, the span's cost attributes and the live view, so they
    /// cannot disagree.
    pub fn price_for(&self, f: &FinishedRequest) -> Option<&Price> {
        let upstream = f.upstream.as_ref().map(|u| u.name.as_str());
        self.find(upstream, f.response.model.as_deref(), f.request_model())
    }

    /// The price for a call through `upstream` (its own table when it has one).
    pub fn find(
        &self,
        upstream: Option<&str>,
        response_model: Option<&str>,
        request_model: Option<&str>,
    ) -> Option<&Price> {
        let table = upstream
            .and_then(|u| self.per_upstream.get(u))
            .unwrap_or(&self.global);
        let Ok(mut recent) = self.recent.lock() else {
            return find_price(table, response_model, request_model);
        };
        if let Some(l) = recent
            .iter()
            .find(|l| l.is(upstream, response_model, request_model))
        {
            return l.found.map(|i| &table[i]);
        }
        let found = find_index(table, response_model, request_model);
        if recent.len() == RECENT_LOOKUPS {
            recent.pop_back();
        }
        recent.push_front(Lookup {
            upstream: upstream.map(str::to_owned),
            response_model: response_model.map(str::to_owned),
            request_model: request_model.map(str::to_owned),
            found,
        });
        found.map(|i| &table[i])
    }
}

/// Cost split by token type, USD.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
}

/// First matching price: the response model (the real version) first, then the request model.
pub fn find_price<'p>(
    prices: &'p [Price],
    response_model: Option<&str>,
    request_model: Option<&str>,
) -> Option<&'p Price> {
    find_index(prices, response_model, request_model).map(|i| &prices[i])
}

/// [`find_price`]'s answer as an index into `prices`.
fn find_index(
    prices: &[Price],
    response_model: Option<&str>,
    request_model: Option<&str>,
) -> Option<usize> {
    [response_model, request_model]
        .into_iter()
        .flatten()
        .find_map(|m| prices.iter().position(|p| glob_match(&p.model, m)))
}

/// Input tokens read from the cache are billed at the cached price and those written to it
/// at the cache-write price (both are part of the input count); reasoning tokens are already
/// part of the output count, so they are billed as output.
pub fn compute(price: &Price, usage: &Usage) -> Cost {
    let input = usage.input_tokens.unwrap_or(0) as f64;
    let cached = (usage.cache_read_input_tokens.unwrap_or(0) as f64).min(input);
    let written = (usage.cache_write_input_tokens.unwrap_or(0) as f64).min(input - cached);
    let output = usage.output_tokens.unwrap_or(0) as f64;
    let cached_price = price.cached_input.unwrap_or(price.input);
    let write_price = price.cache_write_input.unwrap_or(price.input);
    Cost {
        input: ((input - cached - written) * price.input
            + cached * cached_price
            + written * write_price)
            / 1e6,
        output: output * price.output / 1e6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::prices::default_prices;

    #[test]
    fn hand_computed() {
        let prices = default_prices();
        let p = find_price(&prices, Some("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini")).unwrap();
        assert_eq!(p.model, "gpt-4o-mini*");
        // 1000 input of which 400 cached, 500 output (incl. reasoning):
        // input = 600 * 0.15/1e6 + 400 * 0.075/1e6 = 0.00009 + 0.00003 = 0.00012
        // output = 500 * 0.60/1e6 = 0.0003
        let c = compute(
            p,
            &Usage {
                input_tokens: Some(1000),
                output_tokens: Some(500),
                cache_read_input_tokens: Some(400),
                reasoning_output_tokens: Some(100),
                cache_write_input_tokens: None,
            },
        );
        assert!((c.input - 0.00012).abs() < 1e-12, "{c:?}");
        assert!((c.output - 0.0003).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn bedrock_model_ids_with_region_prefixes_and_arns() {
        let prices = default_prices();
        for (model, row) in [
            ("us.amazon.nova-micro-v1:0", "*amazon.nova-micro*"),
            ("amazon.nova-pro-v1:0", "*amazon.nova-pro*"),
            (
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
                "*anthropic.claude-sonnet-4*",
            ),
            ("meta.llama3-2-1b-instruct-v1:0", "*meta.llama3-2-1b*"),
        ] {
            assert_eq!(find_price(&prices, None, Some(model)).unwrap().model, row, "{model}");
        }
        // Nova Micro: 1M input of which 400k cached, 1M output.
        let p = find_price(&prices, None, Some("us.amazon.nova-micro-v1:0")).unwrap();
        let c = compute(
            p,
            &Usage {
                input_tokens: Some(1_000_000),
                cache_read_input_tokens: Some(400_000),
                output_tokens: Some(1_000_000),
                ..Default::default()
            },
        );
        assert!((c.input - (0.6 * 0.035 + 0.4 * 0.00875)).abs() < 1e-12);
        assert!((c.output - 0.14).abs() < 1e-12);
    }

    #[test]
    fn gemini_cached_and_thinking_tokens() {
        let prices = default_prices();
        let p = find_price(&prices, Some("gemini-2.5-flash"), None).unwrap();
        assert_eq!(p.model, "gemini-2.5-flash*");
        let lite = find_price(&prices, Some("gemini-2.5-flash-lite"), None).unwrap();
        assert_eq!(lite.model, "gemini-2.5-flash-lite*");
        // The cached-tokens recording: 2060 input of which 2048 cached; 3 + 25 thinking out.
        let c = compute(
            p,
            &Usage {
                input_tokens: Some(2060),
                output_tokens: Some(28),
                cache_read_input_tokens: Some(2048),
                reasoning_output_tokens: Some(25),
                cache_write_input_tokens: None,
            },
        );
        let want_in = (12.0 * 0.30 + 2048.0 * 0.03) / 1e6;
        assert!((c.input - want_in).abs() < 1e-12, "{c:?}");
        assert!((c.output - 28.0 * 2.50 / 1e6).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn remembered_lookups_answer_as_the_table_does() {
        let mut config = Config::with_upstream(
            "http://127.0.0.1:1/v1",
            crate::vocab::provider::Provider::Openai,
        );
        config.upstreams[0].prices = Some(vec![Price {
            model: "gpt-4o*".into(),
            input: 9.0,
            cached_input: None,
            cache_write_input: None,
            output: 9.0,
        }]);
        let own = config.upstreams[0].name.clone();
        let table = PriceTable::new(&config);
        // Round after round, past the number remembered, each answer is the uncached one.
        let asks = [
            (
                Some(own.as_str()),
                Some("gpt-4o-2024-08-06"),
                Some("gpt-4o"),
            ),
            (None, Some("gpt-4o-2024-08-06"), Some("gpt-4o")),
            (None, None, Some("gpt-4o-mini")),
            (None, Some("llama-3-70b"), None),
            (Some("elsewhere"), None, Some("claude-haiku-4-5")),
            (Some(own.as_str()), None, Some("claude-haiku-4-5")),
        ];
        for round in 0..3 {
            for (i, &(u, resp, req)) in asks.iter().chain(&asks).enumerate() {
                let plain = u
                    .and_then(|u| table.per_upstream.get(u))
                    .unwrap_or(&table.global);
                let want = find_price(plain, resp, req).map(|p| (p.model.clone(), p.input));
                let got = table.find(u, resp, req).map(|p| (p.model.clone(), p.input));
                assert_eq!(got, want, "round {round}, ask {i}");
            }
        }
        assert_eq!(
            table
                .find(Some(&own), None, Some("gpt-4o"))
                .map(|p| p.input),
            Some(9.0),
            "the upstream's own table"
        );
        assert!(table.recent.lock().unwrap().len() <= RECENT_LOOKUPS);
    }

    #[test]
    fn unknown_model_has_no_price() {
        assert!(find_price(&default_prices(), Some("llama-3-70b"), None).is_none());
    }

    #[test]
    fn anthropic_cache_reads_and_writes() {
        let prices = default_prices();
        let p = find_price(&prices, Some("claude-haiku-4-5-20251001"), None).unwrap();
        // 129 input = 9 fresh + 100 read + 20 written; 12 output.
        let c = compute(
            p,
            &Usage {
                input_tokens: Some(129),
                output_tokens: Some(12),
                cache_read_input_tokens: Some(100),
                cache_write_input_tokens: Some(20),
                reasoning_output_tokens: None,
            },
        );
        let want_in = (9.0 * 1.0 + 100.0 * 0.1 + 20.0 * 1.25) / 1e6;
        assert!((c.input - want_in).abs() < 1e-12, "{c:?}");
        assert!((c.output - 12.0 * 5.0 / 1e6).abs() < 1e-12);
    }
}
