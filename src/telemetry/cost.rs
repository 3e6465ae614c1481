//! Estimated cost in USD from a price table (USD per million tokens, by model glob).
//! Cost is only ever computed from a known price: no price, no number.

use std::collections::HashMap;

use crate::config::{Config, Price};
use crate::route::glob_match;
use crate::stream::openai::Usage;

use super::record::FinishedRequest;
use super::spans::request_model;

/// The configured prices: the global table and the upstreams that have their own.
#[derive(Debug, Clone)]
pub struct PriceTable {
    global: Vec<Price>,
    per_upstream: HashMap<String, Vec<Price>>,
}

impl PriceTable {
    pub fn new(config: &Config) -> PriceTable {
        PriceTable {
            global: config.metrics.prices.clone(),
            per_upstream: config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), u.prices.clone()?)))
                .collect(),
        }
    }

    /// The price of a finished request: from its upstream's own table when it has one. One
    /// lookup for the cost metric, the span's cost attributes and the live view, so they
    /// cannot disagree.
    pub fn price_for(&self, f: &FinishedRequest) -> Option<&Price> {
        let upstream = f.upstream.as_ref().map(|u| u.name.as_str());
        self.find(upstream, f.response.model.as_deref(), request_model(f))
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
        find_price(table, response_model, request_model)
    }
}

/// Shipped list prices for common OpenAI, Anthropic and Google Gemini models, USD per 1M
/// tokens, as published on 2026-11-01 (openai.com/api/pricing, anthropic.com/pricing) and, for
/// Gemini, the Gemini Developer API's standard tier as listed on 2026-12-07
/// (ai.google.dev/gemini-api/docs/pricing; prompts up to 200k tokens, where a model has two
/// tiers). Anthropic bills cache reads at 0.1x and 5-minute cache writes at 1.25x the input
/// price; Gemini bills cached tokens at 0.1x (0.25x for 2.0 models) and thinking tokens as
/// output, which is where llmtap counts them. Amazon Bedrock rows (model ids as Bedrock names
/// them, with or without a cross-region prefix such as `us.`) are its on-demand prices in US
/// East (N. Virginia) per aws.amazon.com/bedrock/pricing, read 2026-12-07: Claude costs there
/// what it costs at Anthropic, Nova bills cached input at 0.25x. Override or extend them
/// under `metrics.prices` in the config file.
pub fn default_prices() -> Vec<Price> {
    let p = |model: &str, input: f64, cached: f64, output: f64| Price {
        model: model.to_string(),
        input,
        cached_input: Some(cached),
        cache_write_input: None,
        output,
    };
    let claude = |model: &str, input: f64, output: f64| Price {
        model: model.to_string(),
        input,
        cached_input: Some(input * 0.1),
        cache_write_input: Some(input * 1.25),
        output,
    };
    vec![
        claude("claude-opus-4-5*", 5.00, 25.00),
        claude("claude-opus-4*", 15.00, 75.00),
        claude("claude-sonnet-4*", 3.00, 15.00),
        claude("claude-3-7-sonnet*", 3.00, 15.00),
        claude("claude-haiku-4-5*", 1.00, 5.00),
        claude("claude-3-5-haiku*", 0.80, 4.00),
        p("gpt-4o-mini*", 0.15, 0.075, 0.60),
        p("gpt-4o*", 2.50, 1.25, 10.00),
        p("gpt-4.1-nano*", 0.10, 0.025, 0.40),
        p("gpt-4.1-mini*", 0.40, 0.10, 1.60),
        p("gpt-4.1*", 2.00, 0.50, 8.00),
        p("gpt-5-nano*", 0.05, 0.005, 0.40),
        p("gpt-5-mini*", 0.25, 0.025, 2.00),
        p("gpt-5*", 1.25, 0.125, 10.00),
        p("o4-mini*", 1.10, 0.275, 4.40),
        p("o3-mini*", 1.10, 0.55, 4.40),
        p("o3*", 2.00, 0.50, 8.00),
        p("text-embedding-3-small*", 0.02, 0.02, 0.0),
        p("text-embedding-3-large*", 0.13, 0.13, 0.0),
        p("text-embedding-ada-002*", 0.10, 0.10, 0.0),
        // Gemini: more specific names first (the first match wins).
        p("gemini-3.5-flash*", 1.50, 0.15, 9.00),
        p("gemini-3.1-flash-lite*", 0.25, 0.025, 1.50),
        p("gemini-3.1-pro*", 2.00, 0.20, 12.00),
        p("gemini-3-pro*", 2.00, 0.20, 12.00),
        p("gemini-3-flash*", 0.50, 0.05, 3.00),
        p("gemini-2.5-pro*", 1.25, 0.125, 10.00),
        p("gemini-2.5-flash-lite*", 0.10, 0.01, 0.40),
        p("gemini-2.5-flash*", 0.30, 0.03, 2.50),
        p("gemini-2.0-flash*", 0.10, 0.025, 0.40),
        p("gemini-embedding-001*", 0.15, 0.15, 0.0),
        // Amazon Bedrock: the model id, optionally behind a region prefix or an ARN.
        p("*amazon.nova-micro*", 0.035, 0.00875, 0.14),
        p("*amazon.nova-lite*", 0.06, 0.015, 0.24),
        p("*amazon.nova-pro*", 0.80, 0.20, 3.20),
        claude("*anthropic.claude-sonnet-4*", 3.00, 15.00),
        claude("*anthropic.claude-3-7-sonnet*", 3.00, 15.00),
        claude("*anthropic.claude-haiku-4-5*", 1.00, 5.00),
        claude("*anthropic.claude-3-5-haiku*", 0.80, 4.00),
        p("*meta.llama3-3-70b*", 0.72, 0.72, 0.72),
        p("*meta.llama3-2-1b*", 0.10, 0.10, 0.10),
        p("*amazon.titan-embed-text-v2*", 0.02, 0.02, 0.0),
    ]
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
    [response_model, request_model]
        .into_iter()
        .flatten()
        .find_map(|m| prices.iter().find(|p| glob_match(&p.model, m)))
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
