//! The documented bound on identifiers that come from requests (model names, prompt template
//! names, tenants, header- and baggage-derived values, tool names, upstream error codes) as
//! they reach spans, metrics and logs. The request itself is forwarded unchanged: only what
//! llmtap writes about it is bounded.
//!
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

/// Whether `s` is short enough to be a metric attribute value.
pub fn fits(s: &str) -> bool {
    // Bytes bound characters from above: the common short value needs no count.
    s.len() <= MAX_IDENTIFIER_CHARS || s.chars().count() <= MAX_IDENTIFIER_CHARS
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
    }
}
