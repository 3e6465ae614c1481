//! The config files say what they must: the collector (and its redaction against what
//! llmtap exports), compose and the Dockerfile.

use super::*;

/// Every span attribute llmtap writes (src/telemetry/semconv.rs); the collector's redaction
/// may only name these.
const EXPORTED_SPAN_ATTRIBUTES: &[&str] = &[
    sc::GEN_AI_OPERATION_NAME,
    sc::GEN_AI_PROVIDER_NAME,
    sc::GEN_AI_REQUEST_MODEL,
    sc::GEN_AI_REQUEST_MAX_TOKENS,
    sc::GEN_AI_REQUEST_TEMPERATURE,
    sc::GEN_AI_REQUEST_TOP_P,
    sc::GEN_AI_REQUEST_FREQUENCY_PENALTY,
    sc::GEN_AI_REQUEST_PRESENCE_PENALTY,
    sc::GEN_AI_REQUEST_SEED,
    sc::GEN_AI_REQUEST_STOP_SEQUENCES,
    sc::GEN_AI_REQUEST_CHOICE_COUNT,
    sc::GEN_AI_REQUEST_STREAM,
    sc::GEN_AI_RESPONSE_ID,
    sc::GEN_AI_RESPONSE_MODEL,
    sc::GEN_AI_RESPONSE_FINISH_REASONS,
    sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    sc::GEN_AI_USAGE_INPUT_TOKENS,
    sc::GEN_AI_USAGE_OUTPUT_TOKENS,
    sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    sc::GEN_AI_CONVERSATION_ID,
    sc::GEN_AI_INPUT_MESSAGES,
    sc::GEN_AI_OUTPUT_MESSAGES,
    sc::GEN_AI_SYSTEM_INSTRUCTIONS,
    sc::GEN_AI_TOOL_DEFINITIONS,
    sc::GEN_AI_TOOL_NAME,
    sc::GEN_AI_TOOL_CALL_ID,
    sc::GEN_AI_TOOL_TYPE,
    sc::GEN_AI_TOOL_CALL_ARGUMENTS,
    sc::GEN_AI_TOOL_CALL_RESULT,
    sc::OPENAI_API_TYPE,
    sc::OPENAI_RESPONSE_SYSTEM_FINGERPRINT,
    sc::OPENAI_RESPONSE_SERVICE_TIER,
    sc::SERVER_ADDRESS,
    sc::SERVER_PORT,
    sc::ERROR_TYPE,
    sc::HTTP_RESPONSE_STATUS_CODE,
    sc::LLMTAP_UPSTREAM,
    sc::LLMTAP_CHUNK_COUNT,
    sc::LLMTAP_USAGE_INJECTED,
    sc::LLMTAP_USAGE_ESTIMATED,
    sc::LLMTAP_PROMPT_LENGTH,
    sc::LLMTAP_PROMPT_MESSAGES,
    sc::LLMTAP_PROMPT_HASH,
    sc::LLMTAP_PROMPT_TEMPLATE,
    sc::LLMTAP_TOOL_RESULT_RECEIVED,
    sc::LLMTAP_COST_USD,
];

// ---------------------------------------------------------------------------------------
// 3. The config files say what they must
// ---------------------------------------------------------------------------------------

/// Processor names under `processors:` whose type (before any `/`) is `kind`.
pub(crate) fn processors_of<'a>(processors: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    processors
        .as_object()
        .expect("processors")
        .iter()
        .filter(|(name, _)| name.split('/').next() == Some(kind))
        .collect()
}

/// The attribute names the collector's transform processors rewrite.
pub(crate) fn redacted_attributes(collector: &Value) -> BTreeSet<String> {
    let re = regex::Regex::new(r#"attributes\["([^"]+)"\]"#).unwrap();
    let transforms = processors_of(&collector["processors"], "transform");
    assert!(!transforms.is_empty(), "no transform processor");
    transforms
        .iter()
        .flat_map(|(_, t)| strings(t))
        .flat_map(|s| re.captures_iter(s).map(|c| c[1].to_string()))
        .collect()
}

#[test]
fn collector_config_says_what_it_must() {
    let c = yaml_file("config/otel-collector.yaml");
    let protocols = &c["receivers"]["otlp"]["protocols"];
    assert!(protocols["grpc"].is_object(), "otlp grpc: {protocols}");
    assert!(protocols["http"].is_object(), "otlp http: {protocols}");

    let processors = &c["processors"];
    assert!(processors["memory_limiter"].is_object());
    let batch = &processors["batch"];
    assert_eq!(batch["timeout"], "1s", "{batch}");
    assert_eq!(batch["send_batch_size"], 1000, "{batch}");

    let filters = processors_of(processors, "filter");
    assert!(
        filters.iter().any(|(_, f)| strings(f)
            .iter()
            .any(|s| s.contains("span.") && s.contains("\"/healthz\""))),
        "no filter drops /healthz spans"
    );

    let redacted = redacted_attributes(&c);
    assert!(!redacted.is_empty(), "transform names no attribute");
    for a in &redacted {
        assert!(
            EXPORTED_SPAN_ATTRIBUTES.contains(&a.as_str()),
            "the collector redacts {a:?}, which llmtap never exports"
        );
    }
    for must in [sc::GEN_AI_INPUT_MESSAGES, sc::GEN_AI_OUTPUT_MESSAGES] {
        assert!(redacted.contains(must), "{must} is not redacted");
    }

    let ts = processors_of(processors, "tail_sampling");
    assert_eq!(ts.len(), 1, "one tail_sampling processor");
    let policies = ts[0].1["policies"].as_array().expect("policies");
    let has = |ty: &str| policies.iter().any(|p| p["type"] == ty);
    assert!(
        policies.iter().any(|p| p["type"] == "status_code"
            && str_list(&p["status_code"]["status_codes"]).contains(&"ERROR")),
        "no error policy: {policies:?}"
    );
    assert!(has("latency"), "no latency policy");
    assert!(has("probabilistic"), "no probabilistic policy");

    let pipelines = c["service"]["pipelines"].as_object().expect("pipelines");
    for (name, p) in pipelines {
        let procs = str_list(&p["processors"]);
        assert_eq!(
            procs.first(),
            Some(&"memory_limiter"),
            "{name} pipeline must start with memory_limiter: {procs:?}"
        );
        for (section, key) in [
            ("receivers", "receivers"),
            ("processors", "processors"),
            ("exporters", "exporters"),
        ] {
            for used in str_list(&p[key]) {
                assert!(
                    c[section].get(used).is_some(),
                    "{name} pipeline uses {used}, not defined under {section}"
                );
            }
        }
    }
    let traces = str_list(&c["service"]["pipelines"]["traces"]["processors"]);
    for needed in [
        "filter/healthchecks",
        "transform/redact",
        "tail_sampling",
        "batch",
    ] {
        let p = traces.iter().position(|p| *p == needed);
        assert!(p.is_some(), "traces pipeline lacks {needed}: {traces:?}");
    }

    // Prometheus scrapes the collector's exporter; the dashboard's names hold only if the
    // exporter adds no namespace (config/grafana/METRICS.md).
    let prom = &c["exporters"]["prometheus"];
    assert!(prom.is_object(), "no prometheus exporter");
    assert!(
        prom.get("namespace").is_none(),
        "namespace renames every metric"
    );
    let port = prom["endpoint"]
        .as_str()
        .and_then(|e| e.rsplit_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("prometheus exporter endpoint");
    let scrape = yaml_file("config/prometheus.yml");
    let targets: Vec<&str> = scrape["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|j| j["static_configs"].as_array().into_iter().flatten())
        .flat_map(|s| str_list(&s["targets"]))
        .collect();
    assert!(
        targets.contains(&format!("otel-collector:{port}").as_str()),
        "config/prometheus.yml does not scrape the collector's exporter: {targets:?}"
    );
}

/// The attributes the collector redacts are really on llmtap's spans once content capture
/// is on (a chat with a system prompt and tools, and the follow-up with the tool result).
#[tokio::test]
async fn collector_redaction_targets_attributes_llmtap_exports() {
    let redacted = redacted_attributes(&yaml_file("config/otel-collector.yaml"));
    let (_up, rx, proxy) = start_traced(
        "http/protobuf",
        None,
        &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")],
    )
    .await;
    let url = format!("{}/v1/chat/completions", proxy.url);
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut messages = vec![
        json!({"role": "system", "content": "You are terse."}),
        json!({"role": "user", "content": "Weather in Paris?"}),
    ];
    let first: Value = client()
        .post(&url)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let msg = first["choices"][0]["message"].clone();
    let calls = msg["tool_calls"].as_array().cloned().unwrap_or_default();
    assert!(!calls.is_empty(), "{first}");
    messages.push(msg);
    for c in &calls {
        messages
            .push(json!({"role": "tool", "tool_call_id": c["id"], "content": "{\"temp\": 21}"}));
    }
    let resp = client()
        .post(&url)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let _ = resp.bytes().await;
    // Chat completions keep the system prompt among the input messages; the APIs that carry
    // it apart (Anthropic's `system`) fill gen_ai.system_instructions.
    let resp = client()
        .post(format!("{}/v1/messages", proxy.url))
        .json(
            &json!({"model": "claude-haiku-4-5", "max_tokens": 32, "system": "You are terse.",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let _ = resp.bytes().await;
    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().filter(|s| s.name.starts_with("chat ")).count() >= 3
                    && s.iter().any(|s| s.name.starts_with("execute_tool "))
            },
            Duration::from_secs(15),
        )
        .await;
    let seen: HashSet<&str> = spans
        .iter()
        .flat_map(|s| s.attributes.iter().map(|(k, _)| k.as_str()))
        .collect();
    for a in &redacted {
        assert!(
            seen.contains(a.as_str()),
            "the collector redacts {a}, but no span carried it:\n{}",
            spans_json(&spans)
        );
    }
    proxy.stop().await;
}

/// `image: name:tag` (or a digest), never `latest` or untagged.
pub(crate) fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    matches!(last.split_once(':'), Some((_, tag)) if !tag.is_empty() && tag != "latest")
}

/// Seconds in a compose duration such as `40s`, `1m30s`.
pub(crate) fn compose_secs(d: &str) -> u64 {
    let re = regex::Regex::new(r"(\d+)(h|m|s)").unwrap();
    re.captures_iter(d)
        .map(|c| {
            let n: u64 = c[1].parse().unwrap();
            n * match &c[2] {
                "h" => 3600,
                "m" => 60,
                _ => 1,
            }
        })
        .sum()
}

#[test]
fn compose_file_pins_images_and_wires_the_stack() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    for s in [
        "llmtap",
        "mock-upstream",
        "otel-collector",
        "tempo",
        "prometheus",
        "grafana",
        "loadgen",
    ] {
        assert!(services.contains_key(s), "service {s} missing");
    }
    for (name, s) in services {
        let image = s["image"]
            .as_str()
            .unwrap_or_else(|| panic!("service {name} has no image"));
        assert!(
            pinned(image),
            "service {name}: image {image:?} is not pinned"
        );
        // Bind-mounted files and folders of this repository exist.
        for v in str_list(&s["volumes"]) {
            if let Some(src) = v.split(':').next().filter(|p| p.starts_with("./")) {
                assert!(
                    repo().join(src).exists(),
                    "service {name} mounts {src}, which does not exist"
                );
            }
        }
    }
    let compose_text = read("docker-compose.yml");
    let image_lines: Vec<&str> = compose_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .collect();
    assert!(!image_lines.is_empty());
    for i in &image_lines {
        assert!(pinned(i.trim_matches('"')), "image {i:?} is not pinned");
    }

    for (name, s) in services.iter().filter(|(n, _)| n.starts_with("llmtap")) {
        let test = str_list(&s["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains("llmtap healthcheck") && test.contains("/healthz"),
            "{name}: healthcheck {test:?}"
        );
        let shutdown: u64 = s["environment"]["LLMTAP_SHUTDOWN_TIMEOUT"]
            .as_str()
            .map(|v| v.parse().unwrap())
            .unwrap_or(30);
        let grace = compose_secs(s["stop_grace_period"].as_str().unwrap_or("10s"));
        assert!(
            grace > shutdown,
            "{name}: stop_grace_period {grace}s must exceed LLMTAP_SHUTDOWN_TIMEOUT {shutdown}s"
        );
        // Telemetry goes to the collector's OTLP receiver on the port the protocol uses.
        let env = &s["environment"];
        let endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
            .as_str()
            .expect("endpoint");
        let port = if env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc" {
            "4317"
        } else {
            "4318"
        };
        assert_eq!(endpoint, format!("http://otel-collector:{port}"), "{name}");
    }
    let loadgen = &services["loadgen"];
    assert!(
        strings(&loadgen["command"])
            .iter()
            .any(|c| c.contains("loadgen.py")),
        "loadgen runs examples/python/loadgen.py"
    );
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck_and_exec_entrypoint() {
    let instructions = dockerfile_instructions();
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    let froms = all("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_from = instructions.iter().rposition(|(o, _)| o == "FROM").unwrap();
    let final_stage = &instructions[last_from..];
    assert!(
        final_stage
            .iter()
            .any(|(o, r)| o == "COPY" && r.starts_with("--from=")),
        "the final stage copies the binary from the build stage"
    );
    let user = final_stage
        .iter()
        .rev()
        .find(|(o, _)| o == "USER")
        .map(|(_, r)| r.as_str())
        .expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap_or(user);
    assert!(uid != "root" && uid != "0", "USER {user} is root");

    let exposed = all("EXPOSE");
    assert!(!exposed.is_empty(), "no EXPOSE");
    let listen_port = all("ENV")
        .iter()
        .find_map(|e| {
            e.split_whitespace()
                .find_map(|kv| kv.strip_prefix("LLMTAP_LISTEN="))
                .map(|a| a.rsplit(':').next().unwrap().to_string())
        })
        .expect("ENV LLMTAP_LISTEN");
    assert!(
        exposed.iter().any(|e| e
            .split_whitespace()
            .any(|p| p.trim_end_matches("/tcp") == listen_port)),
        "EXPOSE {exposed:?} is not the listen port {listen_port}"
    );

    let health = all("HEALTHCHECK");
    assert_eq!(health.len(), 1, "{health:?}");
    let cmd = health[0]
        .split_once("CMD")
        .map(|(_, c)| c.trim())
        .expect("HEALTHCHECK CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("HEALTHCHECK CMD in exec form");
    assert!(cmd[0].ends_with("/llmtap"), "{cmd:?}");
    assert_eq!(
        cmd.get(1).map(String::as_str),
        Some("healthcheck"),
        "{cmd:?}"
    );

    let entry = all("ENTRYPOINT");
    assert_eq!(entry.len(), 1, "{entry:?}");
    let entry: Vec<String> =
        serde_json::from_str(entry[0]).expect("ENTRYPOINT in exec form (a JSON array)");
    assert!(entry[0].ends_with("/llmtap"), "{entry:?}");
}
