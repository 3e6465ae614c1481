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

/// Appended, instead of [`TRUNCATED`], to a leaf whose share is too small for the full marker.
const SHORT_MARKER: &str = "…";

/// Cuts string leaves fairly so the text of all of them, cut markers included, totals at most
/// `budget` characters. `role` and `type` values are the schema's enums a reader needs: never
/// cut and not counted. The rule, from issue 30 ("truncation that keeps the conversation"):
///
/// 1. Nothing is cut when the text fits.
/// 2. When `v` is a list of messages (`gen_ai.input.messages`), the latest `user` message is
///    kept whole when it fits beside a minimum share for every other leaf: the question a
///    conversation ends on is what a reader looks for first.
/// 3. The other leaves share what remains by water-filling: every leaf shorter than the
///    common share stays whole, and the longer ones are each cut to that share (the
///    remainder of the division goes, a character each, to the first of them). So a short
///    message is never reduced to a marker because a long one came before it.
/// 4. A cut leaf keeps a prefix and ends with [`TRUNCATED`] (or `…` when its share is smaller
///    than that marker plus one character), so every message keeps its role and some of its
///    own text as long as `budget` allows two characters per leaf.
///
/// The output (`gen_ai.output.messages`) is its own attribute with its own budget, so it is
/// kept whole when it fits.
pub fn truncate_leaves(v: &mut Value, budget: usize) {
    let mut lens = Vec::new();
    let mut groups = Vec::new();
    collect_leaves(v, None, false, &mut lens, &mut groups);
    let total: usize = lens.iter().sum();
    if total <= budget {
        return;
    }
    let latest_user = match &*v {
        Value::Array(items) => items
            .iter()
            .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user")),
        _ => None,
    };
    let protected = |i: usize| latest_user.is_some() && groups[i] == latest_user;
    let kept: usize = (0..lens.len())
        .filter(|&i| protected(i))
        .map(|i| lens[i])
        .sum();
    let floor: usize = (0..lens.len())
        .filter(|&i| !protected(i))
        .map(|i| lens[i].min(MIN_SHARE))
        .sum();
    let protect = latest_user.is_some() && kept + floor <= budget;
    let mut shares: Vec<Option<usize>> = vec![None; lens.len()];
    let mut shared: Vec<usize> = Vec::new();
    let mut left = budget;
    for i in 0..lens.len() {
        if protect && protected(i) {
            shares[i] = Some(lens[i]);
            left -= lens[i];
        } else {
            shared.push(i);
        }
    }
    // Water-filling over the shared leaves, shortest first.
    let mut order = shared.clone();
    order.sort_by_key(|&i| lens[i]);
    let mut n = order.len();
    let mut cap = None;
    for &i in &order {
        if lens[i] * n <= left {
            shares[i] = Some(lens[i]);
            left -= lens[i];
            n -= 1;
        } else {
            cap = Some(left / n);
            break;
        }
    }
    if let Some(cap) = cap {
        let mut extra = left - cap * n;
        for &i in &shared {
            if shares[i].is_none() {
                let bonus = usize::from(extra > 0);
                extra -= bonus;
                shares[i] = Some(cap + bonus);
            }
        }
    }
    let mut next = 0;
    cut_leaves(v, false, &shares, &mut next);
}

/// A cut leaf's share below which it keeps only its first character and `…`.
const MIN_SHARE: usize = 2;

/// The character counts of the cuttable string leaves in document order, each with the index
/// of the top-level array item it belongs to.
fn collect_leaves(
    v: &Value,
    group: Option<usize>,
    uncut: bool,
    lens: &mut Vec<usize>,
    groups: &mut Vec<Option<usize>>,
) {
    match v {
        Value::String(s) if !uncut => {
            lens.push(s.chars().count());
            groups.push(group);
        }
        Value::Array(items) => {
            for (k, i) in items.iter().enumerate() {
                collect_leaves(i, group.or(Some(k)), false, lens, groups);
            }
        }
        Value::Object(map) => {
            for (k, i) in map {
                collect_leaves(i, group, UNCUT_KEYS.contains(&k.as_str()), lens, groups);
            }
        }
        _ => {}
    }
}

/// Cuts each cuttable leaf to its share, walking in the order of [`collect_leaves`].
fn cut_leaves(v: &mut Value, uncut: bool, shares: &[Option<usize>], next: &mut usize) {
    match v {
        Value::String(s) if !uncut => {
            let share = shares.get(*next).copied().flatten().unwrap_or(0);
            *next += 1;
            if s.chars().count() > share {
                *s = cut_to(s, share);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| cut_leaves(i, false, shares, next)),
        Value::Object(map) => {
            for (k, i) in map.iter_mut() {
                cut_leaves(i, UNCUT_KEYS.contains(&k.as_str()), shares, next);
            }
        }
        _ => {}
    }
}

/// `s` in at most `share` characters: a prefix and a marker.
fn cut_to(s: &str, share: usize) -> String {
    let full = TRUNCATED.chars().count();
    let (keep, marker) = if share > full {
        (share - full, TRUNCATED)
    } else if share >= MIN_SHARE {
        (share - 1, SHORT_MARKER)
    } else if share == 1 {
        (0, SHORT_MARKER)
    } else {
        return String::new();
    };
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(marker);
    out
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
        // Roles and types whole; the text (markers included) cut to 10 characters in total,
        // every leaf keeping a prefix of its own.
        assert_eq!(back[0]["role"], "user");
        assert_eq!(back[1]["parts"][0]["type"], "tool_call");
        let first = back[0]["parts"][0]["content"].as_str().unwrap();
        assert!(first.ends_with(SHORT_MARKER), "{first}");
        assert!(text_chars(&back) <= 10, "{back}");
        let q = back[1]["parts"][0]["arguments"]["q"].as_str().unwrap();
        assert!(q.starts_with('z'), "{back}");
        // The structured form is the same value.
        assert_eq!(r.content(&v), back);
    }

    /// Characters of the cuttable leaves (all strings but `role` and `type` values).
    fn text_chars(v: &Value) -> usize {
        let (mut lens, mut groups) = (Vec::new(), Vec::new());
        collect_leaves(v, None, false, &mut lens, &mut groups);
        lens.iter().sum()
    }

    fn msg(role: &str, text: &str) -> Value {
        json!({"role": role, "parts": [{"type": "text", "content": text}]})
    }

    #[test]
    fn a_long_first_message_does_not_eat_the_question() {
        // Issue 30: 1,500 characters first, a short question last, a 300-character limit.
        let v = json!([
            msg("user", &"a".repeat(1500)),
            msg("assistant", "ok"),
            msg("user", "and the last question"),
        ]);
        let mut cut = v.clone();
        truncate_leaves(&mut cut, 300);
        assert_eq!(cut[2]["parts"][0]["content"], "and the last question");
        assert_eq!(
            cut[1]["parts"][0]["content"], "ok",
            "short leaves stay whole"
        );
        let first = cut[0]["parts"][0]["content"].as_str().unwrap();
        assert!(
            first.starts_with("aaa") && first.ends_with(TRUNCATED),
            "{first}"
        );
        assert_eq!(text_chars(&cut), 300, "the cut leaf takes all that remains");
        // Two long leaves share what remains equally; the short one is whole.
        let mut two = json!([
            msg("user", &"b".repeat(900)),
            msg("assistant", "fine"),
            msg("user", &"c".repeat(900))
        ]);
        truncate_leaves(&mut two, 204);
        let (b, c) = (
            two[0]["parts"][0]["content"].as_str().unwrap(),
            two[2]["parts"][0]["content"].as_str().unwrap(),
        );
        assert_eq!(two[1]["parts"][0]["content"], "fine");
        assert_eq!((b.chars().count(), c.chars().count()), (100, 100), "{two}");
        // Untouched when it fits.
        let mut fits = v.clone();
        truncate_leaves(&mut fits, 10_000);
        assert_eq!(fits, v);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Generated conversations: the JSON parses, the text stays within the limit, every
        /// message keeps its role and some text, short leaves stay whole, and the latest user
        /// message is whole when it fits beside two characters for every other leaf.
        #[test]
        fn fair_truncation_over_generated_conversations(
            turns in proptest::collection::vec((0usize..3, 0usize..600, proptest::bool::ANY), 1..12),
            budget in 0usize..1500,
        ) {
            let roles = ["user", "assistant", "tool"];
            let messages: Vec<Value> = turns
                .iter()
                .enumerate()
                .map(|(i, (r, n, call))| {
                    let text: String = std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), *n).collect();
                    if *call {
                        json!({"role": roles[*r], "parts": [{"type": "tool_call", "id": format!("c{i}"),
                            "name": "f", "arguments": {"q": text}}]})
                    } else {
                        msg(roles[*r], &text)
                    }
                })
                .collect();
            let v = Value::Array(messages);
            let r = Redactor::new(&[], budget);
            let s = r.content_string(&v, None);
            let back: Value = serde_json::from_str(&s).expect("parses");
            proptest::prop_assert!(text_chars(&back) <= budget, "over budget: {}", s);
            let (mut lens, mut groups) = (Vec::new(), Vec::new());
            collect_leaves(&v, None, false, &mut lens, &mut groups);
            let leaves = lens.len();
            let items = back.as_array().unwrap();
            proptest::prop_assert_eq!(items.len(), turns.len());
            for (i, m) in items.iter().enumerate() {
                proptest::prop_assert_eq!(&m["role"], &v[i]["role"]);
                proptest::prop_assert_eq!(&m["parts"][0]["type"], &v[i]["parts"][0]["type"]);
                let orig = &v[i]["parts"][0];
                let (was, now) = match orig["type"].as_str() {
                    Some("text") => (orig["content"].as_str().unwrap(), m["parts"][0]["content"].as_str().unwrap()),
                    _ => (orig["arguments"]["q"].as_str().unwrap(), m["parts"][0]["arguments"]["q"].as_str().unwrap()),
                };
                if budget >= MIN_SHARE * leaves && !was.is_empty() {
                    // Some of its own text: its first character survives.
                    proptest::prop_assert!(now.starts_with(&was[..1]), "message {} lost its text: {}", i, s);
                }
                let total: usize = lens.iter().sum();
                if total <= budget {
                    proptest::prop_assert_eq!(now, was);
                }
            }
            // The latest user message, whole when it fits.
            if let Some(last) = v.as_array().unwrap().iter().rposition(|m| m["role"] == "user") {
                let mine: usize = (0..leaves).filter(|&k| groups[k] == Some(last)).map(|k| lens[k]).sum();
                let others: usize = (0..leaves).filter(|&k| groups[k] != Some(last)).map(|k| lens[k].min(MIN_SHARE)).sum();
                if mine + others <= budget {
                    proptest::prop_assert_eq!(&back[last], &v[last], "latest user message cut: {}", s);
                }
            }
        }
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
