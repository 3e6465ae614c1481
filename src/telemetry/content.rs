//! Opt-in content capture: redaction (regex rules, applied in the proxy before anything is
//! exported) and truncation to a size limit. Content in the semconv message shapes is JSON:
//! it is redacted and cut leaf by leaf, so what is exported always parses.

use regex::Regex;
use serde_json::Value;

use crate::config::RedactRule;

/// Appended to a string that was cut.
pub const TRUNCATED: &str = "…[truncated]";

/// Keys whose string values are never cut: the schema's enums (`role`, `type`), which a
/// consumer needs to read the rest.
const UNCUT_KEYS: [&str; 2] = ["role", "type"];

pub struct Redactor {
    rules: Vec<(Regex, String)>,
    max_chars: usize,
}

impl Redactor {
    /// Rules are validated at config load, so a rule that fails to compile here is skipped.
    pub fn new(rules: &[RedactRule], max_chars: usize) -> Redactor {
        Redactor {
            rules: rules
                .iter()
                .filter_map(|r| Some((Regex::new(&r.pattern).ok()?, r.replacement.clone())))
                .collect(),
            max_chars,
        }
    }

    fn redact_text(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (re, rep) in &self.rules {
            if re.is_match(&s) {
                s = re.replace_all(&s, rep.as_str()).into_owned();
            }
        }
        s
    }

    /// Plain text: redacts then truncates (marking the cut), so a secret cannot survive by
    /// being cut in half.
    pub fn apply(&self, text: &str) -> String {
        truncate(self.redact_text(text), self.max_chars)
    }

    /// JSON content, redacted: every string leaf, then the rules over the serialized text as
    /// well, for patterns that span a key and its value (`"api_key": "…"` in tool-call
    /// arguments that became an object). When a rule's replacement breaks the JSON, the
    /// redacted text is kept as one JSON string rather than exported unredacted.
    fn redact_json(&self, v: &Value) -> Value {
        let mut v = v.clone();
        map_strings(&mut v, &mut |s| *s = self.redact_text(s));
        let text = v.to_string();
        let redacted = self.redact_text(&text);
        if redacted == text {
            return v;
        }
        serde_json::from_str(&redacted).unwrap_or(Value::String(redacted))
    }

    /// JSON content ready for a log record (structured): redacted, string leaves cut so their
    /// text totals at most the configured characters.
    pub fn content(&self, v: &Value) -> Value {
        let mut v = self.redact_json(v);
        truncate_leaves(&mut v, self.max_chars);
        v
    }

    /// JSON content ready for a span attribute (a JSON string): as [`Redactor::content`], and
    /// at most `limit` characters (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`) by cutting leaves
    /// further, never the serialized text. The result always parses.
    pub fn content_string(&self, v: &Value, limit: Option<usize>) -> String {
        fit(&self.redact_json(v), self.max_chars, limit)
    }
}

pub fn truncate(s: String, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s,
        Some((at, _)) => {
            let mut t = s[..at].to_string();
            t.push_str(TRUNCATED);
            t
        }
    }
}

/// Applies `f` to every string leaf (object keys are left alone).
fn map_strings(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| map_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| map_strings(i, f)),
        _ => {}
    }
}

/// Cuts string leaves, in document order, so the text of all of them totals at most
/// `budget` characters; a cut leaf ends with [`TRUNCATED`], and a leaf the budget no longer
/// reaches is only the marker. `role` and `type` values are kept whole.
pub fn truncate_leaves(v: &mut Value, budget: usize) {
    fn walk(v: &mut Value, left: &mut usize, uncut: bool) {
        match v {
            Value::String(s) if !uncut => {
                let n = s.chars().count();
                if n <= *left {
                    *left -= n;
                } else {
                    *s = truncate(std::mem::take(s), *left);
                    *left = 0;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, left, false)),
            Value::Object(map) => {
                for (k, i) in map.iter_mut() {
                    walk(i, left, UNCUT_KEYS.contains(&k.as_str()));
                }
            }
            _ => {}
        }
    }
    let mut left = budget;
    walk(v, &mut left, false);
}

/// `v` serialized in at most `limit` characters: leaves cut to `max_chars` in total, and
/// further while the text is over the limit; when the structure alone is too long, trailing
/// items of a top-level array are dropped; as a last resort the marker alone, as a JSON string.
pub fn fit(v: &Value, max_chars: usize, limit: Option<usize>) -> String {
    let cut = |budget: usize, items: Option<usize>| {
        let mut c = v.clone();
        if let (Some(n), Value::Array(a)) = (items, &mut c) {
            a.truncate(n);
        }
        truncate_leaves(&mut c, budget);
        c.to_string()
    };
    let out = cut(max_chars, None);
    let Some(limit) = limit else { return out };
    let len = |s: &str| s.chars().count();
    if len(&out) <= limit {
        return out;
    }
    // Shrink the text budget by what is over, a few times (each pass re-cuts the original).
    let mut budget = max_chars;
    let mut out = out;
    for _ in 0..8 {
        let over = len(&out).saturating_sub(limit);
        if over == 0 {
            return out;
        }
        budget = budget.saturating_sub(over);
        out = cut(budget, None);
        if budget == 0 {
            break;
        }
    }
    if len(&out) <= limit {
        return out;
    }
    if let Value::Array(a) = v {
        let mut n = a.len();
        while n > 1 {
            n /= 2;
            let shorter = cut(0, Some(n));
            if len(&shorter) <= limit {
                return shorter;
            }
        }
    }
    let marker = Value::String(TRUNCATED.to_string()).to_string();
    if len(&marker) <= limit {
        marker
    } else {
        "\"\"".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_redactions;
    use serde_json::json;

    #[test]
    fn default_rules() {
        let r = Redactor::new(&default_redactions(), 1000);
        let out = r.apply(
            r#"mail bob@example.com key sk-proj-abcdefghijk auth Bearer abc.def.ghi123 {"api_key": "s3cr3t"}"#,
        );
        assert!(!out.contains("bob@example.com"), "{out}");
        assert!(!out.contains("sk-proj-abcdefghijk"), "{out}");
        assert!(!out.contains("abc.def.ghi123"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("[REDACTED_EMAIL]"));
    }

    #[test]
    fn truncation_counts_chars() {
        assert_eq!(truncate("héllo".into(), 2), "hé…[truncated]");
        assert_eq!(truncate("hi".into(), 2), "hi");
    }

    #[test]
    fn json_content_is_redacted_and_cut_by_leaf_and_always_parses() {
        let r = Redactor::new(&default_redactions(), 10);
        let v = json!([
            {"role": "user", "parts": [{"type": "text", "content": "mail bob@example.com now"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f",
                "arguments": {"api_key": "s3cr3t", "q": "zzzzzzzzzzzzzzzzzzzz"}}]},
        ]);
        let s = r.content_string(&v, None);
        let back: Value = serde_json::from_str(&s).unwrap();
        assert!(
            !s.contains("bob@example.com") && !s.contains("s3cr3t"),
            "{s}"
        );
        // Roles and types whole; the text cut to 10 characters in total, marked.
        assert_eq!(back[0]["role"], "user");
        assert_eq!(back[1]["parts"][0]["type"], "tool_call");
        let first = back[0]["parts"][0]["content"].as_str().unwrap();
        assert!(first.ends_with(TRUNCATED), "{first}");
        assert_eq!(first.chars().count(), 10 + TRUNCATED.chars().count());
        assert_eq!(back[1]["parts"][0]["arguments"]["q"], TRUNCATED);
        // The structured form is the same value.
        assert_eq!(r.content(&v), back);
    }

    #[test]
    fn a_value_length_limit_cuts_leaves_never_the_json() {
        let v = json!([{"role": "user", "parts": [{"type": "text", "content": "a".repeat(500)}]}]);
        for limit in [400, 120, 60, 20, 14, 3] {
            let s = fit(&v, 1000, Some(limit));
            assert!(s.chars().count() <= limit.max(2), "{limit}: {s}");
            serde_json::from_str::<Value>(&s).unwrap_or_else(|e| panic!("{limit}: {s}: {e}"));
        }
        let many: Vec<Value> = (0..50)
            .map(|i| json!({"role": "user", "parts": [{"type": "text", "content": format!("m{i}")}]}))
            .collect();
        let s = fit(&Value::Array(many), 1000, Some(200));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert!(
            s.chars().count() <= 200 && !back.as_array().unwrap().is_empty(),
            "{s}"
        );
    }

    #[test]
    fn a_replacement_that_breaks_json_still_parses_and_redacts() {
        let rules = [RedactRule {
            pattern: r#""secret":\s*"[^"]*""#.into(),
            replacement: "{{".into(),
        }];
        let r = Redactor::new(&rules, 1000);
        let s = r.content_string(&json!({"secret": "x", "ok": 1}), None);
        assert!(!s.contains("\"x\""), "{s}");
        serde_json::from_str::<Value>(&s).unwrap();
    }
}
