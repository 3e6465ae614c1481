//! The shipped price table: list prices of common models, used for `llmtap.cost` unless the
//! file turns it off (`metrics.default_prices: false`). The file's own `metrics.prices` come
//! first, so they win (first match wins).

use super::Price;

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
