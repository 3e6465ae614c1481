//! Amazon Bedrock through llmtap: boto3's `bedrock-runtime` client end to end over llmtap's
//! inbound TLS (a CA made in the test) with a bearer API key (spans, tool spans, metrics;
//! the key passed through and never recorded), event streams relayed byte for byte and
//! traced, a corrupt frame flagged without touching the relay, and llmtap's own errors in
//! Bedrock's shape.

mod common;

use std::time::Duration;

use common::otlp::SpanView;
use common::*;
use serde_json::{json, Value};

/// One Bedrock upstream: the scripted upstream at its origin (Bedrock's base URL carries no
/// path: `/model/{modelId}/...` is every request's whole path).
const BEDROCK_YAML: &str = r#"
upstreams:
  - name: bedrock
    base_url: "{upstream}"
    provider: bedrock
"#;

/// The API key boto3 sends as `Authorization: Bearer`.
const API_KEY: &str = "bedrock-api-key-test-ABSKtest0123456789";

/// A CA and a server certificate for 127.0.0.1 signed by it, written as PEM files in `dir`:
/// (CA file, certificate file, key file).
fn test_tls(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "llmtap bedrock test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_file.to_string_lossy().into_owned(), cert_file, key_file)
}

fn span_with_id<'a>(spans: &'a [SpanView], id: &str) -> &'a SpanView {
    spans
        .iter()
        .find(|s| s.str_attr("gen_ai.response.id") == Some(id))
        .unwrap_or_else(|| {
            panic!(
                "no span with response id {id}:\n{}",
                common::otlp::spans_json(spans)
            )
        })
}

#[tokio::test]
async fn boto3_bedrock_runtime_gets_spans_tool_spans_and_metrics_over_tls() {
    let Some(py) = python() else {
        return;
    };
    let dir = TempDir::new("bedrock-boto3");
    let (ca, cert, key) = test_tls(dir.path());
    let up = start_upstream().await;
    let rx = common::otlp::OtlpReceiver::start().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(BEDROCK_YAML.to_string()),
            env: otlp_env(&rx, "grpc"),
            tweak: Some(Box::new(move |c| {
                c.tls_cert = Some(cert);
                c.tls_key = Some(key);
            })),
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{}", proxy.addr.port());
    let config_file = dir.path().join("aws-config");
    std::fs::write(&config_file, "").unwrap();
    let config_file = config_file.to_string_lossy().into_owned();
    let sdk = run_python(
        &py,
        "bedrock.py",
        &[
            ("LLMTAP_URL", url.as_str()),
            ("LLMTAP_CA", ca.as_str()),
            ("AWS_BEARER_TOKEN_BEDROCK", API_KEY),
            // Nothing from this machine's AWS setup: the bearer key is the only credential.
            ("AWS_CONFIG_FILE", config_file.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", config_file.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    )
    .await;
    // The installed boto3 really authenticates with the bearer key (and nothing else).
    assert_eq!(sdk["auth"], json!([format!("Bearer {API_KEY}")]), "{sdk}");

    // plain, stream, 2 tool-loop calls, invoke stream, Llama, throttled, midstream, ARN: 9.
    // boto3 may retry the throttled call (one more span), so the count alone can be reached
    // before a span the assertions need: wait for every response id the SDK saw as well.
    let ids: Vec<String> = [
        "plain",
        "stream",
        "invoke",
        "llama",
        "throttled",
        "midstream",
        "arn",
    ]
    .iter()
    .filter_map(|k| sdk[*k]["id"].as_str().map(str::to_string))
    .collect();
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|s| s.name.starts_with("chat ")).count() >= 9
                    && s.iter().any(|s| s.name.starts_with("execute_tool "))
                    && ids.iter().all(|id| {
                        s.iter()
                            .any(|s| s.str_attr("gen_ai.response.id") == Some(id.as_str()))
                    })
            },
            Duration::from_secs(20),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);
    assert!(!dump.contains(API_KEY), "the API key reached a span");

    let plain = span_with_id(&spans, sdk["plain"]["id"].as_str().unwrap());
    assert_eq!(plain.name, "chat us.amazon.nova-micro-v1:0");
    assert_eq!(plain.str_attr("gen_ai.operation.name"), Some("chat"));
    assert_eq!(plain.str_attr("gen_ai.provider.name"), Some("aws.bedrock"));
    assert_eq!(plain.int_attr("gen_ai.request.max_tokens"), Some(64));
    assert_eq!(plain.f64_attr("gen_ai.request.temperature"), Some(0.3));
    assert_eq!(plain.f64_attr("gen_ai.request.top_p"), Some(0.9));
    assert_eq!(
        plain.str_array_attr("gen_ai.request.stop_sequences"),
        Some(vec!["END".to_string()])
    );
    // Bedrock's own latency figure (`metrics.latencyMs`).
    assert_eq!(
        plain.int_attr("llmtap.response.provider_latency_ms"),
        Some(412)
    );
    assert_eq!(
        plain.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec![sdk["plain"]["stop"].as_str().unwrap().to_string()])
    );
    for (key, span) in [
        ("plain", plain),
        (
            "stream",
            span_with_id(&spans, sdk["stream"]["id"].as_str().unwrap()),
        ),
    ] {
        let u = &sdk[key]["usage"];
        assert_eq!(
            span.int_attr("gen_ai.usage.input_tokens"),
            u["inputTokens"].as_i64(),
            "{key}: {dump}"
        );
        assert_eq!(
            span.int_attr("gen_ai.usage.output_tokens"),
            u["outputTokens"].as_i64()
        );
        assert!(span.attr("error.type").is_none(), "{key}: {dump}");
        assert!(!sdk[key]["text"].as_str().unwrap().is_empty());
    }
    let streamed = span_with_id(&spans, sdk["stream"]["id"].as_str().unwrap());
    assert_eq!(streamed.bool_attr("gen_ai.request.stream"), Some(true));
    assert!(streamed
        .f64_attr("gen_ai.response.time_to_first_chunk")
        .is_some());
    assert_eq!(
        streamed.int_attr("llmtap.response.chunk_count"),
        sdk["stream"]["events"].as_i64(),
        "one chunk per frame"
    );

    // The tool-use loop: the toolUse became an execute_tool span, closed by the toolResult
    // of the next request.
    let calls = sdk["tools"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{sdk}");
    assert_eq!(sdk["tools"]["stop"], "tool_use");
    let asking = span_with_id(&spans, sdk["tools"]["first_id"].as_str().unwrap());
    let answering = span_with_id(&spans, sdk["tools"]["final_id"].as_str().unwrap());
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .unwrap_or_else(|| panic!("no tool span:\n{dump}"));
    assert_eq!(tool.parent_span_id, asking.span_id);
    assert_eq!(
        tool.str_attr("gen_ai.tool.call.id"),
        calls[0]["id"].as_str()
    );
    assert_eq!(tool.bool_attr("llmtap.tool.result_received"), Some(true));
    assert_eq!(
        tool.str_attr("gen_ai.tool.description"),
        Some("Weather for a city")
    );
    assert!(answering
        .links
        .iter()
        .any(|(_, span)| *span == asking.span_id));
    assert!(sdk["tools"]["final"]
        .as_str()
        .unwrap()
        .contains("Got 1 tool result"));

    // InvokeModelWithResponseStream with an Anthropic body: read as Anthropic's events, usage
    // from Bedrock's invocation metrics.
    let invoke = span_with_id(&spans, sdk["invoke"]["id"].as_str().unwrap());
    assert_eq!(invoke.name, "chat anthropic.claude-3-5-haiku-20241022-v1:0");
    assert_eq!(invoke.str_attr("gen_ai.provider.name"), Some("aws.bedrock"));
    assert_eq!(
        invoke.str_attr("gen_ai.response.model"),
        Some("claude-3-5-haiku-20241022")
    );
    assert_eq!(invoke.int_attr("gen_ai.request.max_tokens"), Some(100));
    let m = &sdk["invoke"]["metrics"];
    assert_eq!(
        invoke.int_attr("gen_ai.usage.input_tokens"),
        m["inputTokenCount"].as_i64()
    );
    assert_eq!(
        invoke.int_attr("gen_ai.usage.output_tokens"),
        m["outputTokenCount"].as_i64()
    );
    assert_eq!(
        invoke.int_attr("llmtap.response.chunk_count"),
        sdk["invoke"]["chunks"].as_i64()
    );
    assert!(invoke.attr("error.type").is_none(), "{dump}");

    // InvokeModel with another family's body (Llama): model, status, usage from its body.
    let llama = span_with_id(&spans, sdk["llama"]["id"].as_str().unwrap());
    assert_eq!(llama.name, "chat meta.llama3-2-1b-instruct-v1:0");
    assert_eq!(llama.int_attr("http.response.status_code"), Some(200));
    assert_eq!(llama.int_attr("gen_ai.request.max_tokens"), Some(32));
    assert_eq!(
        llama.int_attr("gen_ai.usage.input_tokens"),
        sdk["llama"]["prompt_token_count"].as_i64()
    );
    assert_eq!(
        llama.int_attr("gen_ai.usage.output_tokens"),
        sdk["llama"]["generation_token_count"].as_i64()
    );
    assert_eq!(
        llama.str_array_attr("gen_ai.response.finish_reasons"),
        Some(vec!["stop".to_string()])
    );

    // Throttling: boto3 saw ThrottlingException (429), and so does the span.
    assert_eq!(sdk["throttled"]["code"], "ThrottlingException", "{sdk}");
    assert_eq!(sdk["throttled"]["status"], 429);
    let throttled = span_with_id(&spans, sdk["throttled"]["id"].as_str().unwrap());
    assert_eq!(throttled.name, "chat mock-error-429");
    assert_eq!(
        throttled.str_attr("error.type"),
        Some("ThrottlingException")
    );
    assert_eq!(throttled.status_code, "error");

    // An exception frame mid-stream: the error with its type.
    assert_eq!(
        sdk["midstream"]["code"], "modelStreamErrorException",
        "{sdk}"
    );
    let mid = span_with_id(&spans, sdk["midstream"]["id"].as_str().unwrap());
    assert_eq!(
        mid.str_attr("error.type"),
        Some("ModelStreamErrorException"),
        "{dump}"
    );
    assert_eq!(mid.status_code, "error");

    // A model given as an inference-profile ARN: encoded by boto3 (`:` and `/`), forwarded
    // as sent, named decoded on the span.
    let arn = sdk["arn"]["model"].as_str().unwrap();
    let by_arn = span_with_id(&spans, sdk["arn"]["id"].as_str().unwrap());
    assert_eq!(by_arn.str_attr("gen_ai.request.model"), Some(arn));
    let requests = up.mock.requests();
    assert!(
        requests.iter().any(|r| r
            .path
            .contains("inference-profile%2Fus.amazon.nova-micro-v1%3A0/converse")),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // The bearer key passed through to the upstream, on every call.
    assert!(requests.iter().all(|r| r
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {API_KEY}"))));

    let metrics = rx
        .wait_for_metrics(
            |m| {
                m.iter().any(|p| {
                    p.name == "gen_ai.client.operation.duration"
                        && p.str_attr("error.type") == Some("ThrottlingException")
                }) && m.iter().any(|p| {
                    p.name == "gen_ai.client.token.usage"
                        && p.str_attr("gen_ai.provider.name") == Some("aws.bedrock")
                })
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(metrics
        .iter()
        .any(|p| p.name == "gen_ai.client.operation.time_to_first_chunk"
            && p.str_attr("gen_ai.provider.name") == Some("aws.bedrock")));
    assert!(metrics
        .iter()
        .any(|p| p.name == "gen_ai.client.operation.duration"
            && p.str_attr("error.type") == Some("ThrottlingException")
            && p.str_attr("gen_ai.provider.name") == Some("aws.bedrock")));
    proxy.stop().await;
}

#[tokio::test]
async fn event_streams_relay_unchanged_and_a_corrupt_frame_is_flagged_not_cut() {
    let (up, rx, proxy) = start_traced("http/protobuf", Some(BEDROCK_YAML), &[]).await;
    let c = client();
    let path = "/model/us.amazon.nova-micro-v1%3A0/converse-stream";
    let body = json!({"messages": [{"role": "user", "content": [{"text": "Count to three"}]}]});
    let direct = c
        .post(format!("{}{path}", up.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let direct = direct.bytes().await.unwrap();
    let via = c
        .post(format!("{}{path}", proxy.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(via.status(), 200);
    assert_eq!(via.bytes().await.unwrap(), direct, "byte for byte");

    // The `garbage` scenario appends bytes that are no frame: the client gets every byte,
    // the span says parsing stopped (no error: the upstream reported none).
    let direct = c
        .post(format!("{}{path}", up.base))
        .header("x-mock-scenario", "garbage")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let via = c
        .post(format!("{}{path}", proxy.url))
        .header("x-mock-scenario", "garbage")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(via, direct);
    let spans = rx
        .wait_for_spans(|s| s.len() >= 2, Duration::from_secs(10))
        .await;
    let dump = common::otlp::spans_json(&spans);
    assert_eq!(spans.len(), 2, "{dump}");
    let corrupt = spans
        .iter()
        .find(|s| s.bool_attr("llmtap.response.parse_failed") == Some(true))
        .unwrap_or_else(|| panic!("no span flags the corrupt stream:\n{dump}"));
    assert_eq!(corrupt.int_attr("http.response.status_code"), Some(200));
    let clean = spans.iter().find(|s| s.span_id != corrupt.span_id).unwrap();
    assert_eq!(clean.name, "chat us.amazon.nova-micro-v1:0");
    assert!(clean.attr("error.type").is_none(), "{dump}");
    assert!(clean.attr("llmtap.response.parse_failed").is_none());
    assert!(clean.int_attr("gen_ai.usage.output_tokens").is_some());
    proxy.stop().await;
}

#[tokio::test]
async fn own_errors_take_bedrocks_shape() {
    let up = start_upstream().await;
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(BEDROCK_YAML.to_string()),
            env: no_telemetry(),
            tweak: Some(Box::new(|c| c.max_body_bytes = 64)),
        },
    )
    .await;
    let big = json!({"messages": [{"role": "user", "content": [{"text": "x".repeat(200)}]}]});
    let r = client()
        .post(format!("{}/model/m%3A0/converse", proxy.url))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["__type"], "ValidationException", "{v}");
    assert!(v["message"].is_string());
    assert!(up.mock.requests().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn gateway_mode_checks_the_client_key_then_signs_with_sigv4() {
    let up = start_upstream().await;
    // Client key "abc" (SHA-256 from FIPS 180-2 B.1); llmtap's AWS credentials from the
    // environment it runs with (the AWS SigV4 test suite's example key).
    let yaml = format!(
        "{BEDROCK_YAML}    aws_sigv4:\n      region: us-east-1\n\
         auth:\n  keys:\n    - sha256: \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"\n      tenant: team-a\n"
    );
    let mut e = no_telemetry();
    e.extend(env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        ),
    ]));
    let proxy = start_proxy(
        &up.base,
        ProxyOpts {
            yaml: Some(yaml),
            env: e,
            ..Default::default()
        },
    )
    .await;
    let path = "/model/us.amazon.nova-micro-v1%3A0/converse";
    let body = json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]});
    // No client key: refused in Bedrock's shape, the upstream never called.
    let r = client()
        .post(format!("{}{path}", proxy.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["__type"], "AccessDeniedException", "{v}");
    assert!(up.mock.requests().is_empty());
    // The client key as the bearer (AWS_BEARER_TOKEN_BEDROCK): checked, dropped, signed.
    let r = client()
        .post(format!("{}{path}", proxy.url))
        .bearer_auth("abc")
        .header("x-amz-date", "19990101T000000Z")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.mock.requests();
    assert_eq!(seen.len(), 1);
    let header = |name: &str| {
        seen[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let auth = header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature="),
        "{auth}"
    );
    let date = header("x-amz-date").unwrap();
    assert_ne!(
        date, "19990101T000000Z",
        "the client's signing date was dropped"
    );
    assert!(auth.contains(&format!("/{}/", &date[..8])));
    assert!(header("x-amz-content-sha256").is_some());
    assert!(!seen[0].headers.iter().any(|(_, v)| v == "Bearer abc"));
    proxy.stop().await;
}
