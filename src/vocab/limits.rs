//! The bounds on everything llmtap holds for a client or an upstream (docs/limits.md lists
//! each with its default), and what happens when one is hit: serving and relaying go on
//! unchanged, the hit is counted (`llmtap.limits.hit{limit}`), the request's span carries
//! `llmtap.limits.hit` (the names of the bounds it hit), and a WARN line is logged at most
//! once a minute per bound.
//!
//! Identifiers that come from requests and responses (model names, prompt template names,
//! tenants, header- and baggage-derived values, tool-call ids and names, upstream error
//! codes) are cut to [`MAX_IDENTIFIER_CHARS`] when they are stored, not only when exported, so
//! nothing a client sends is held whole. The request itself is forwarded unchanged.
//! - Spans and log lines carry at most [`MAX_IDENTIFIER_CHARS`] characters of such a value
//!   (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` still applies on top, to every string attribute).
//! - A longer value never becomes a metric attribute: it is counted as `other`, so a client
//!   cannot mint a 200 KB Prometheus label.

/// Characters of a request-derived identifier kept on spans and log lines.
pub const MAX_IDENTIFIER_CHARS: usize = 256;

/// `s` cut to [`MAX_IDENTIFIER_CHARS`] characters (borrowed: no copy).
pub fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_IDENTIFIER_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Characters of an identifier kept where it is stored: one past [`MAX_IDENTIFIER_CHARS`], so
/// that a value that was too long still reads as too long ([`fits`] is false: metrics count it
/// as `other`) while spans and logs cut it to the bound as before.
pub const STORED_IDENTIFIER_CHARS: usize = MAX_IDENTIFIER_CHARS + 1;

/// `s` as it is stored: at most [`STORED_IDENTIFIER_CHARS`] characters (borrowed).
pub fn stored(s: &str) -> &str {
    match s.char_indices().nth(STORED_IDENTIFIER_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// [`stored`], owned: the form identifiers are kept in.
pub fn owned(s: &str) -> String {
    stored(s).to_owned()
}

/// Cuts an identifier to its stored form in place; returns whether it was longer.
pub fn truncate(s: &mut String) -> bool {
    let n = stored(s).len();
    let longer = n < s.len();
    s.truncate(n);
    longer
}

/// Whether `s` is short enough to be a metric attribute value.
pub fn fits(s: &str) -> bool {
    // Bytes bound characters from above: the common short value needs no count.
    s.len() <= MAX_IDENTIFIER_CHARS || s.chars().count() <= MAX_IDENTIFIER_CHARS
}

/// Most tool results (`role: tool` messages) of one request that close pending calls: the
/// last ones in the conversation, which are the new ones; older results closed their calls
/// on earlier requests.
pub const MAX_TOOL_RESULTS: usize = 256;

/// Most stop sequences kept from one request (OpenAI accepts 4).
pub const MAX_STOP_SEQUENCES: usize = 16;

/// Decoded bytes of one response that llmtap parses (each decoding step is bounded too:
/// `stream::decode::DECODE_INPUT_STEP` in,
/// `stream::decode::MAX_DECODED_PER_READ` out); past it parsing stops and the bytes are
/// relayed unparsed.
pub const MAX_DECODED_TOTAL: u64 = 64 * 1024 * 1024;

/// The bounds that can be hit, by their `limit` attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The request body did not arrive within `body_read_timeout_secs`.
    BodyReadTimeout,
    /// A stream ran past its upstream's `timeouts.max_stream_secs`.
    StreamDuration,
    /// A compressed response decoded past the per-step bound or [`MAX_DECODED_TOTAL`].
    Decoded,
    /// An identifier longer than [`MAX_IDENTIFIER_CHARS`] was cut.
    Identifier,
    /// A request carried more than [`MAX_TOOL_RESULTS`] tool results.
    ToolResults,
    /// A tenant had `telemetry.max_pending_tool_calls_per_tenant` calls pending.
    PendingPerTenant,
    /// `telemetry.max_pending_tool_calls` were pending: the oldest was ended unanswered.
    PendingTotal,
    /// A JSON body llmtap's strict parser refused was read by the lenient fallback.
    LenientJson,
}

/// Every bound.
pub const ALL: [Limit; 8] = [
    Limit::BodyReadTimeout,
    Limit::StreamDuration,
    Limit::Decoded,
    Limit::Identifier,
    Limit::ToolResults,
    Limit::PendingPerTenant,
    Limit::PendingTotal,
    Limit::LenientJson,
];

impl Limit {
    /// The `limit` attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Limit::BodyReadTimeout => "body_read_timeout",
            Limit::StreamDuration => "max_stream_duration",
            Limit::Decoded => "decoded_bytes",
            Limit::Identifier => "identifier_chars",
            Limit::ToolResults => "tool_results",
            Limit::PendingPerTenant => "pending_tool_calls_per_tenant",
            Limit::PendingTotal => "pending_tool_calls",
            Limit::LenientJson => "lenient_json",
        }
    }

    /// The bound's position in [`ALL`] (a slot per bound in per-bound tables).
    pub fn index(self) -> usize {
        ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("gpt-4o"), "gpt-4o");
        let long = "é".repeat(300);
        assert_eq!(cut(&long).chars().count(), MAX_IDENTIFIER_CHARS);
        assert!(!fits(&long));
        let exact = "é".repeat(MAX_IDENTIFIER_CHARS);
        assert_eq!(cut(&exact), exact);
        assert!(fits(&exact));
        assert!(!fits(&"a".repeat(MAX_IDENTIFIER_CHARS + 1)));
        let mut s = "x".repeat(MAX_IDENTIFIER_CHARS + 5);
        assert!(truncate(&mut s));
        assert_eq!(s.len(), STORED_IDENTIFIER_CHARS);
        // Stored, it is still too long for a metric and cut on spans.
        assert!(!fits(&s));
        assert_eq!(cut(&s).len(), MAX_IDENTIFIER_CHARS);
        assert!(!truncate(&mut s));
    }
}
