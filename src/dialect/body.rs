//! A request body read as JSON: strictly, else leniently for valid JSON that serde_json
//! refuses. Only for reading facts: the body forwarded upstream is always the client's own.

use serde_json::{Map, Value};

/// A body read as a JSON object: strictly, else (`true`) through [`lenient_json`]. `None`
/// for a body that is not a JSON object either way.
pub(super) fn json_object(body: &[u8]) -> Option<(Map<String, Value>, bool)> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some((obj, false)),
        Ok(_) => None,
        Err(_) => match serde_json::from_slice::<Value>(&lenient_json(body)?).ok()? {
            Value::Object(obj) => Some((obj, true)),
            _ => None,
        },
    }
}

/// Valid JSON (RFC 8259) that serde_json refuses, made readable: a number whose magnitude
/// overflows `f64` (`1e999`, which Python's and JavaScript's parsers read as infinity)
/// becomes the largest finite `f64` of its sign, and an escaped lone surrogate (`\ud800`,
/// which RFC 8259 §8.2 allows and most parsers accept) becomes `\ufffd`. `None` when nothing
/// needed changing (the body is invalid for another reason). Only for reading facts: the
/// body forwarded upstream is always the client's own.
pub(super) fn lenient_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u32> {
        let h = body.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    while i < body.len() {
        let b = body[i];
        if b == b'"' {
            // A string: copy it, fixing lone surrogate escapes.
            out.push(b);
            i += 1;
            while i < body.len() {
                let c = body[i];
                if c == b'\\' && body.get(i + 1) == Some(&b'u') {
                    match hex4(i + 2) {
                        Some(0xD800..=0xDBFF) => {
                            let paired = body.get(i + 6..i + 8) == Some(b"\\u")
                                && matches!(hex4(i + 8), Some(0xDC00..=0xDFFF));
                            if paired {
                                out.extend_from_slice(&body[i..i + 12]);
                                i += 12;
                            } else {
                                out.extend_from_slice(b"\\ufffd");
                                changed = true;
                                i += 6;
                            }
                            continue;
                        }
                        Some(0xDC00..=0xDFFF) => {
                            out.extend_from_slice(b"\\ufffd");
                            changed = true;
                            i += 6;
                            continue;
                        }
                        _ => {}
                    }
                }
                if c == b'\\' {
                    out.extend_from_slice(&body[i..(i + 2).min(body.len())]);
                    i += 2;
                    continue;
                }
                out.push(c);
                i += 1;
                if c == b'"' {
                    break;
                }
            }
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < body.len()
                && matches!(body[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            let num = &body[start..i];
            let overflows = std::str::from_utf8(num)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if overflows {
                if num.first() == Some(&b'-') {
                    out.push(b'-');
                }
                out.extend_from_slice(b"1.7976931348623157e308");
                changed = true;
            } else {
                out.extend_from_slice(num);
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_json_reads_what_other_parsers_accept() {
        let b = br#"{"model":"m","stream":true,"temperature":1e999,"x":-2E400,"messages":[{"role":"user","content":"a\ud800b \ud83d\ude00 \udc00"}]}"#;
        assert!(serde_json::from_slice::<Value>(b).is_err());
        let (obj, lenient) = json_object(b).unwrap();
        assert!(lenient);
        assert_eq!(obj["model"], "m");
        assert_eq!(obj["temperature"].as_f64(), Some(f64::MAX));
        assert_eq!(obj["x"].as_f64(), Some(-f64::MAX));
        assert_eq!(
            obj["messages"][0]["content"],
            "a\u{fffd}b \u{1f600} \u{fffd}"
        );
        // Valid input needs nothing; invalid input stays invalid.
        assert!(lenient_json(br#"{"a":1.5e3,"b":"\u00e9"}"#).is_none());
        assert!(json_object(br#"{"a":1e999"#).is_none());
        assert_eq!(json_object(br#"{"a":1}"#).map(|(_, l)| l), Some(false));
    }
}
