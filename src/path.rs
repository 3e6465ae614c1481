//! Request paths as llmtap forwards them: normalised once, the way Envoy does with
//! `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action: REJECT_REQUEST`,
//! so the path llmtap routes on is the path the upstream serves.
//!
//! Why it matters: the upstream URL is `<base_url><path>`, and URL parsing resolves `..`
//! (`%2e%2e` too), so `/v1/../admin` would reach `/admin` on the provider's host, with the
//! gateway's credential. The rules, in order:
//!
//! 1. Percent-encodings are checked: `%2F` and `%5C` (an encoded `/` or `\`, any case) are
//!    refused (except `%2F` inside the model id of Bedrock's `/model/{modelId}/...`, kept
//!    encoded: the AWS SDKs encode an ARN's `/` there, and Bedrock reads the segment as one
//!    id, never as a path), as are a raw `\` (URL parsers read it as `/`), control characters raw or
//!    encoded (`%00` included), an encoded `%` that encodes again (`%252e`: a second decode
//!    somewhere would make it a dot), a `%` not followed by two hex digits, and bytes that
//!    do not decode to UTF-8 (overlong forms such as `%C0%AE` for `.`).
//! 2. Encoded unreserved characters are decoded (RFC 3986 §6.2.2.2: `%2e` is `.`, `%61` is
//!    `a`); other encodings are kept, with upper-case hex (§6.2.2.1).
//! 3. Repeated slashes are merged and dot segments removed (§5.2.4).
//! 4. A `..` that climbs out of the first segment (`/v1/`, `/openai/`: the API's base) is
//!    refused: such a path would leave the upstream's base URL.
//!
//! The query is not a path and is never touched here.

use std::fmt;

/// Why a path is refused. Each is a 400 in OpenAI's error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C`: a separator the upstream may or may not decode.
    EncodedSeparator,
    /// A raw `\`, which URL parsers treat as `/`.
    Backslash,
    /// `%25` followed by two hex digits: a second decode would change the path again.
    DoubleEncoded,
    /// A `%` not followed by two hex digits.
    BadEncoding,
    /// A control character, raw or encoded (`%00`, `%0A`, ...).
    ControlCharacter,
    /// Encoded bytes that are not UTF-8 (overlong forms included).
    InvalidUtf8,
    /// A `..` that leaves the path's first segment (the API base).
    LeavesBase,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::EncodedSeparator => "the path contains an encoded slash or backslash",
            PathError::Backslash => "the path contains a backslash",
            PathError::DoubleEncoded => "the path contains a double percent-encoding",
            PathError::BadEncoding => "the path contains a malformed percent-encoding",
            PathError::ControlCharacter => "the path contains a control character",
            PathError::InvalidUtf8 => "the path's percent-encoded bytes are not UTF-8",
            PathError::LeavesBase => "the path leaves its API base with '..'",
        })
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The path in its normalised form, or why it is refused. `raw` is the path as received
/// (without the query). The result starts with `/`, has no empty, `.` or `..` segments, and
/// keeps the first segment of `raw` (after merging slashes and decoding).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    // Pass 1: check and decode. `decoded` is what the path decodes to entirely (for the
    // UTF-8 check); `out` is the path with only unreserved characters decoded.
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    // Bedrock's model id segment, where an encoded `/` is part of an ARN.
    let model_id = raw.strip_prefix("/model/").map(|rest| {
        let start = "/model/".len();
        (start, start + rest.find('/').unwrap_or(rest.len()))
    });
    let in_model_id = |i: usize| model_id.is_some_and(|(s, e)| (s..e).contains(&i));
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(PathError::BadEncoding);
            };
            let v = h * 16 + l;
            match v {
                b'/' if in_model_id(i) => out.extend_from_slice(b"%2F"),
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                v if is_control(v) => return Err(PathError::ControlCharacter),
                v if is_unreserved(v) => out.push(v),
                v => out.extend_from_slice(format!("%{v:02X}").as_bytes()),
            }
            decoded.push(v);
            i += 3;
            continue;
        }
        if b == b'\\' {
            return Err(PathError::Backslash);
        }
        if is_control(b) {
            return Err(PathError::ControlCharacter);
        }
        // Never in a path hyper hands over, but a URL parser would end the path there and
        // read what came before it as the last segment (`/v1/..?` is `/v1/..`): encode them.
        // Likewise a space: the WHATWG parser trims it from the end of a URL, so a last
        // segment `.. ` would become `..` (found by the property test).
        match b {
            b'?' => out.extend_from_slice(b"%3F"),
            b'#' => out.extend_from_slice(b"%23"),
            b' ' => out.extend_from_slice(b"%20"),
            b => out.push(b),
        }
        decoded.push(b);
        i += 1;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    // An encoded `%` that, with what follows (decoded or not), encodes again: `%252e`,
    // `%25%32%65`. Checked after decoding, where both look the same.
    if out
        .windows(5)
        .any(|w| w.starts_with(b"%25") && hex_value(w[3]).is_some() && hex_value(w[4]).is_some())
    {
        return Err(PathError::DoubleEncoded);
    }
    // `out` holds ASCII plus the raw (already UTF-8) non-ASCII characters of `raw`.
    let out = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;

    // Pass 2: merge slashes, remove dot segments.
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = out.ends_with('/');
    for seg in out.split('/').filter(|s| !s.is_empty()) {
        trailing_slash = false;
        match seg {
            "." => trailing_slash = true,
            ".." => {
                if segments.len() <= 1 {
                    // Climbing out of the first segment, or above the root.
                    return Err(PathError::LeavesBase);
                }
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    if out.ends_with('/') {
        trailing_slash = true;
    }
    let mut path = String::with_capacity(out.len());
    for s in &segments {
        path.push('/');
        path.push_str(s);
    }
    if trailing_slash || path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn paths_that_stay_inside_are_normalised() {
        assert_eq!(ok("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(ok("/v1//chat///completions"), "/v1/chat/completions");
        assert_eq!(ok("/v1/./chat/completions"), "/v1/chat/completions");
        assert_eq!(ok("/v1/models/x/../y"), "/v1/models/y");
        assert_eq!(ok("/v1/chat/.."), "/v1/");
        assert_eq!(ok("/v1/chat/."), "/v1/chat/");
        assert_eq!(ok("/v1/"), "/v1/");
        assert_eq!(ok("/v1"), "/v1");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok(""), "/");
        assert_eq!(ok("/v1/models/"), "/v1/models/");
        // Unreserved characters decode; reserved ones stay encoded, upper-case.
        assert_eq!(ok("/v1/%63hat/completions"), "/v1/chat/completions");
        assert_eq!(ok("/v1/models/a%3ab"), "/v1/models/a%3Ab");
        assert_eq!(ok("/v1/models/%e2%82%ac"), "/v1/models/%E2%82%AC");
        assert_eq!(ok("/v1/models/a%20b"), "/v1/models/a%20b");
        // A lone percent sign, encoded, is a literal percent sign.
        assert_eq!(ok("/v1/models/100%25"), "/v1/models/100%25");
        assert_eq!(ok("/v1/a/%2e%2e/b"), "/v1/b");
        assert_eq!(
            ok("/openai/deployments/gpt/chat/completions"),
            "/openai/deployments/gpt/chat/completions"
        );
        // Bedrock model ids: `:` stays encoded, an ARN's encoded `/` too (that segment only).
        assert_eq!(
            ok("/model/arn%3aaws%3abedrock%3aus-east-1%3a1%3ainference-profile%2fus.m%3A0/converse"),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.m%3A0/converse"
        );
        assert_eq!(
            normalize("/model/m/a%2Fb"),
            Err(PathError::EncodedSeparator)
        );
        assert_eq!(normalize("/v1/a%2Fb"), Err(PathError::EncodedSeparator));
        // Raw non-ASCII text is kept (the URL parser encodes it).
        assert_eq!(ok("/v1/models/é"), "/v1/models/é");
        // Found by the property test: a raw '?' must not end the path for the URL parser.
        assert_eq!(ok("/v1/..?"), "/v1/..%3F");
        assert_eq!(ok("/v1/a#b"), "/v1/a%23b");
        assert_eq!(ok("/v1/.. "), "/v1/..%20");
    }

    #[test]
    fn paths_that_leave_the_base_are_refused() {
        for raw in [
            "/v1/../admin",
            "/v1/chat/../../admin",
            "/v1/./../admin",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/.%2e/admin",
            "/v1/%2e./admin",
            "/v1/..",
            "/v1//..//admin",
            "/../v1/chat/completions",
            "/openai/deployments/../../admin",
            "/openai/..",
            "/x/../v1/chat/completions",
        ] {
            assert_eq!(normalize(raw), Err(PathError::LeavesBase), "{raw}");
        }
    }

    #[test]
    fn hostile_encodings_are_refused() {
        let cases = [
            ("/v1/..%2fadmin", PathError::EncodedSeparator),
            ("/v1/..%2Fadmin", PathError::EncodedSeparator),
            ("/v1/..%5cadmin", PathError::EncodedSeparator),
            ("/v1/..%5Cadmin", PathError::EncodedSeparator),
            ("/v1/chat%2fcompletions", PathError::EncodedSeparator),
            ("/v1/..\\admin", PathError::Backslash),
            ("/v1/%252e%252e/admin", PathError::DoubleEncoded),
            ("/v1/%252E%252e/admin", PathError::DoubleEncoded),
            ("/v1/%25%32%65", PathError::DoubleEncoded),
            ("/v1/%c0%ae%c0%ae/admin", PathError::InvalidUtf8),
            ("/v1/%C0%AE/admin", PathError::InvalidUtf8),
            ("/v1/%e0%80%ae/admin", PathError::InvalidUtf8),
            ("/v1/%ff", PathError::InvalidUtf8),
            ("/v1/%00/admin", PathError::ControlCharacter),
            ("/v1/chat\0/completions", PathError::ControlCharacter),
            ("/v1/a%0d%0aX-Injected:%201", PathError::ControlCharacter),
            ("/v1/a%7f", PathError::ControlCharacter),
            ("/v1/%", PathError::BadEncoding),
            ("/v1/%2", PathError::BadEncoding),
            ("/v1/%zz", PathError::BadEncoding),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in ["/v1//a/./b/../c/", "/v1/%61%3a", "/v1/models/100%25"] {
            let once = ok(raw);
            assert_eq!(ok(&once), once);
        }
    }

    /// A piece of a path: the troublesome ones often, anything else sometimes.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("%2e".to_string()),
            Just("%2E".to_string()),
            Just("%2f".to_string()),
            Just("%5c".to_string()),
            Just("%25".to_string()),
            Just("%c0%ae".to_string()),
            Just("\\".to_string()),
            Just("v1".to_string()),
            Just("openai".to_string()),
            Just("%".to_string()),
            "[a-z]{1,3}".prop_map(|s| s),
            "%[0-9a-fA-F]{2}".prop_map(|s| s),
            any::<char>().prop_map(|c| c.to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever follows `/v1/`, the result stays under `/v1/` (or is refused), is
        /// canonical, and URL parsing (what reqwest does with base + path) keeps it under the
        /// base URL's path.
        #[test]
        fn never_leaves_the_base(pieces in proptest::collection::vec(piece(), 0..24)) {
            let raw = format!("/v1/{}", pieces.concat());
            if let Ok(p) = normalize(&raw) {
                prop_assert!(p == "/v1" || p.starts_with("/v1/"), "{raw:?} -> {p:?}");
                prop_assert!(!p.contains("//"), "{p:?}");
                for seg in p.split('/') {
                    prop_assert!(seg != "." && seg != "..", "{p:?}");
                    prop_assert!(!seg.eq_ignore_ascii_case("%2e"), "{p:?}");
                }
                prop_assert_eq!(normalize(&p), Ok(p.clone()));
                let rest = p.strip_prefix("/v1").unwrap_or_default();
                let url = reqwest::Url::parse(&format!("http://upstream.test/base/v1{rest}"));
                if let Ok(url) = url {
                    prop_assert_eq!(url.host_str(), Some("upstream.test"));
                    prop_assert!(url.path().starts_with("/base/v1"), "{raw:?} -> {}", url);
                }
            }
        }

        /// Arbitrary text never panics.
        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = normalize(&raw);
        }
    }
}
