//! AWS Signature Version 4 for upstreams that need it (Amazon Bedrock with IAM credentials):
//! llmtap signs the request it sends with its own credentials, after the client's own
//! credential (an llmtap client key, or a Bedrock API key) was checked and dropped.
//!
//! Reference: the AWS IAM user guide, "Create a signed AWS API request" (canonical request,
//! string to sign, signing key, `Authorization` header), checked against the AWS SigV4 test
//! suite's `get-vanilla` and `post-vanilla` vectors in the tests below. Non-S3 rules: each
//! path segment is URI-encoded once more (so an encoded `%3A` in a Bedrock model id is signed
//! as `%253A`, as botocore does), and the payload is hashed.
//!
//! Credentials come from the standard chain's static sources, read once at load:
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) under the
//! profile asked for (`AWS_PROFILE`, default `default`). Refreshing sources (SSO, instance
//! roles, `credential_process`) are not read: temporary credentials are the caller's to renew.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use ring::{digest, hmac};

/// Static AWS credentials. `Debug` never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How one upstream's requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSigning {
    /// `us-east-1`, ...
    pub region: String,
    /// The signing name: `bedrock` for Bedrock Runtime.
    pub service: String,
    pub credentials: AwsCredentials,
}

/// Headers a client's own signature put on the request: dropped before llmtap signs.
pub const CLIENT_SIGNATURE_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Resolves credentials from the environment (`get`), else the shared credentials file.
/// `Err` says which source was missing or incomplete.
pub fn credentials_from(
    get: impl Fn(&str) -> Option<String>,
    profile: Option<&str>,
) -> Result<AwsCredentials, String> {
    let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    if let (Some(id), Some(secret)) = (
        non_empty("AWS_ACCESS_KEY_ID"),
        non_empty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: non_empty("AWS_SESSION_TOKEN"),
        });
    }
    let path = match non_empty("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(non_empty("HOME").ok_or(
            "no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and no HOME for ~/.aws/credentials",
        )?)
        .join(".aws/credentials"),
    };
    let profile = profile
        .map(str::to_owned)
        .or_else(|| non_empty("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and {}: {e}",
            path.display()
        )
    })?;
    profile_credentials(&text, &profile).ok_or_else(|| {
        format!(
            "{}: profile [{profile}] has no aws_access_key_id and aws_secret_access_key",
            path.display()
        )
    })
}

/// The keys of `[profile]` in a shared credentials file (INI: `[name]` sections,
/// `key = value` lines, `#` and `;` comments).
fn profile_credentials(text: &str, profile: &str) -> Option<AwsCredentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(AwsCredentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// The region in a Bedrock Runtime host (`bedrock-runtime.us-west-2.amazonaws.com`,
/// `bedrock-runtime-fips.us-east-1.amazonaws.com`).
pub fn region_from_host(host: &str) -> Option<String> {
    let mut labels = host.split('.');
    let first = labels.next()?;
    let region = labels.next()?;
    (first.starts_with("bedrock-runtime") && labels.next() == Some("amazonaws"))
        .then(|| region.to_owned())
}

/// `YYYYMMDDTHHMMSSZ` and `YYYYMMDD` for seconds since the epoch (UTC, proleptic Gregorian).
pub fn amz_date(unix_secs: u64) -> (String, String) {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    (time, date)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// RFC 3986 encoding of everything but the unreserved characters (and `/` when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs a request: sets `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with
/// a session token) and `authorization` on `headers`, after dropping the client's own
/// ([`CLIENT_SIGNATURE_HEADERS`]). `url` is what is sent (its host, encoded path and query);
/// `body` the exact bytes, or `None` for a body streamed through (signed as
/// `UNSIGNED-PAYLOAD`).
pub fn sign(
    signing: &AwsSigning,
    method: &Method,
    url: &url::Url,
    headers: &mut HeaderMap,
    body: Option<&[u8]>,
    now: SystemTime,
) {
    for h in CLIENT_SIGNATURE_HEADERS {
        headers.remove(h);
    }
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (amz_date, date) = amz_date(secs);
    let payload = body.map_or_else(|| "UNSIGNED-PAYLOAD".to_owned(), sha256_hex);
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(headers, "x-amz-date", &amz_date);
    set(headers, "x-amz-content-sha256", &payload);
    if let Some(t) = &signing.credentials.session_token {
        set(headers, "x-amz-security-token", t);
    }
    let authorization = authorization(
        signing,
        method.as_str(),
        url.path(),
        url.query().unwrap_or(""),
        &host,
        headers,
        &payload,
        &amz_date,
        &date,
    );
    set(headers, "authorization", &authorization);
}

/// The `Authorization` value for a request whose other headers are final. Signed headers:
/// `host`, `content-type` when present, and every `x-amz-*`.
#[allow(clippy::too_many_arguments)]
fn authorization(
    signing: &AwsSigning,
    method: &str,
    path: &str,
    query: &str,
    host: &str,
    headers: &HeaderMap,
    payload_hash: &str,
    amz_date: &str,
    date: &str,
) -> String {
    let mut signed: Vec<(String, String)> = vec![("host".into(), host.to_owned())];
    for (name, value) in headers {
        let n = name.as_str();
        if n == "content-type" || n.starts_with("x-amz-") {
            let v = value.to_str().unwrap_or("");
            signed.push((
                n.to_owned(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            ));
        }
    }
    signed.sort();
    let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_names = signed
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    // Non-S3: the path as sent, each segment encoded once more; `/` for an empty path.
    let canonical_path = if path.is_empty() {
        "/".to_owned()
    } else {
        uri_encode(path, true)
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
            (uri_encode(&decode(k), false), uri_encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "{method}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_names}\n{payload_hash}"
    );
    let scope = format!("{date}/{}/{}/aws4_request", signing.region, signing.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", signing.credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [
        signing.region.as_str(),
        signing.service.as_str(),
        "aws4_request",
    ] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
        signing.credentials.access_key_id
    )
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite() -> AwsSigning {
        AwsSigning {
            region: "us-east-1".into(),
            service: "service".into(),
            credentials: AwsCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
            },
        }
    }

    /// The AWS SigV4 test suite's `get-vanilla` and `post-vanilla` (2015-08-30T12:36:00Z,
    /// host `example.amazonaws.com`, headers `host;x-amz-date`, empty body).
    #[test]
    fn aws_test_suite_vectors() {
        let (amz, date) = amz_date(1_440_938_160);
        assert_eq!(
            (amz.as_str(), date.as_str()),
            ("20150830T123600Z", "20150830")
        );
        let mut h = HeaderMap::new();
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let empty = sha256_hex(b"");
        for (method, signature) in [
            (
                "GET",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "POST",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ] {
            let a = authorization(
                &suite(),
                method,
                "/",
                "",
                "example.amazonaws.com",
                &h,
                &empty,
                &amz,
                &date,
            );
            assert_eq!(
                a,
                format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}")
            );
        }
        // get-vanilla-query-order-key-case: parameters sorted by key.
        let a = authorization(
            &suite(),
            "GET",
            "/",
            "Param2=value2&Param1=value1",
            "example.amazonaws.com",
            &h,
            &empty,
            &amz,
            &date,
        );
        assert!(
            a.ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            ),
            "{a}"
        );
    }

    #[test]
    fn sign_replaces_the_clients_credential_and_encodes_the_model_id_again() {
        let mut signing = suite();
        signing.service = "bedrock".into();
        signing.credentials.session_token = Some("tok".into());
        let url = url::Url::parse(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-micro-v1%3A0/converse",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer client-key"),
        );
        h.insert("x-amz-date", HeaderValue::from_static("19990101T000000Z"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        sign(&signing, &Method::POST, &url, &mut h, Some(b"{}"), t);
        let a = h["authorization"].to_str().unwrap();
        assert!(a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="), "{a}");
        assert_eq!(h["x-amz-date"], "20150830T123600Z");
        assert_eq!(h["x-amz-security-token"], "tok");
        assert_eq!(h["x-amz-content-sha256"], sha256_hex(b"{}"));
        assert_eq!(
            uri_encode(url.path(), true),
            "/model/us.amazon.nova-micro-v1%253A0/converse"
        );
        assert!(!format!("{:?}", signing.credentials).contains("wJalr"));
    }

    #[test]
    fn credentials_from_env_then_the_profile_file() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = credentials_from(
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token), ("AKID", None));
        let text = "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n\n[work]\n# comment\naws_access_key_id=A2\naws_secret_access_key=S2\naws_session_token=T2\n";
        assert_eq!(
            profile_credentials(text, "work")
                .unwrap()
                .session_token
                .as_deref(),
            Some("T2")
        );
        assert_eq!(
            profile_credentials(text, "default").unwrap().access_key_id,
            "A1"
        );
        assert!(profile_credentials(text, "none").is_none());
        assert!(credentials_from(
            env(&[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/x")]),
            None
        )
        .is_err());
        assert_eq!(
            region_from_host("bedrock-runtime.eu-west-3.amazonaws.com").as_deref(),
            Some("eu-west-3")
        );
        assert_eq!(region_from_host("127.0.0.1"), None);
        assert_eq!(amz_date(951_782_400).1, "20000229");
    }
}
