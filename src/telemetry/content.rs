//! Opt-in content capture: redaction (regex rules, applied in the proxy before anything is
//! exported) and truncation to a size limit.

use regex::Regex;

use crate::config::RedactRule;

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

    /// Redacts then truncates (marking the cut), so a secret cannot survive by being cut in half.
    pub fn apply(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (re, rep) in &self.rules {
            if re.is_match(&s) {
                s = re.replace_all(&s, rep.as_str()).into_owned();
            }
        }
        truncate(s, self.max_chars)
    }
}

pub fn truncate(s: String, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s,
        Some((at, _)) => {
            let mut t = s[..at].to_string();
            t.push_str("…[truncated]");
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_redactions;

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
}
