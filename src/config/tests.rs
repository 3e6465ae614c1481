use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::test_env as env;
use super::*;

/// Every variable is set (to a value that is not a real key): for files whose `api_key_env`
/// names whatever their deployment uses.
struct AnyVar;

impl Env for AnyVar {
    fn get(&self, _: &str) -> Option<String> {
        Some("test-key-not-real".into())
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn unknown_key_names_the_key() {
    let e = load_yaml(
        "upstreams:\n  - name: a\n    base_url: http://x\n    colour: red\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.0.contains("colour"), "{e}");
    assert!(!e.0.contains('\n'));
}

#[test]
fn api_key_comes_from_named_env_var_and_never_prints() {
    let cfg = load_yaml(
        "upstreams:\n  - name: a\n    base_url: http://x/v1\n    api_key_env: MY_KEY\n",
        &env(&[("MY_KEY", "sk-secret-value")]),
    )
    .unwrap();
    let u = &cfg.upstreams[0];
    assert_eq!(u.api_key.as_ref().unwrap().expose(), "sk-secret-value");
    assert!(!format!("{cfg:?}").contains("sk-secret-value"));
}

#[test]
fn literal_key_in_file_is_refused() {
    let e = load_yaml(
        "upstreams:\n  - name: a\n    base_url: http://x\n    api_key_env: sk-abc123\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.0.contains("api_key_env"), "{e}");
}

#[test]
fn route_to_unknown_upstream_is_refused() {
    let e = load_yaml(
        "upstreams:\n  - name: a\n    base_url: http://x\nroutes:\n  - model: gpt*\n    upstream: b\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.0.contains("routes[0].upstream"), "{e}");
}

/// The file's half of this test; the flags' half is `cli::tests::live_view_flags`.
#[test]
fn live_view_is_on_for_loopback_only_unless_configured() {
    let on = load_yaml("listen: 127.0.0.1:8080\n", &env(&[])).unwrap();
    assert!(on.ui_enabled());
    assert_eq!(on.ui.max_calls, 1000);
    let v6 = load_yaml("listen: \"[::1]:8080\"\n", &env(&[])).unwrap();
    assert!(v6.ui_enabled());
    let off = load_yaml("listen: 0.0.0.0:8080\n", &env(&[])).unwrap();
    assert!(!off.ui_enabled());
    let asked = load_yaml("listen: 0.0.0.0:8080\nui:\n  enabled: true\n", &env(&[])).unwrap();
    assert!(asked.ui_enabled());
}

/// The file's half of this test; the flags' half is `cli::tests::mcp_servers_flag`.
#[test]
fn mcp_servers_from_the_file() {
    let yaml = "mcp_servers:\n  github: https://mcp.example/github/mcp\n  local: http://127.0.0.1:8000/mcp\nmcp_trace_context: false\n";
    let cfg = load_yaml(yaml, &env(&[])).unwrap();
    let names: Vec<&str> = cfg.mcp_servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["github", "local"]);
    assert!(!cfg.mcp_trace_context);
    assert!(Config::with_upstream("http://u/v1", Provider::Openai).mcp_trace_context);
    for (yaml, key) in [
        ("mcp_servers:\n  a/b: http://x/mcp\n", "mcp_servers.a/b"),
        ("mcp_servers:\n  a: ftp://x/mcp\n", "mcp_servers.a"),
        ("mcp_servers:\n  ..: http://x/mcp\n", "mcp_servers..."),
    ] {
        let e = load_yaml(yaml, &env(&[])).unwrap_err();
        assert!(e.0.contains(key), "{yaml}: {e}");
    }
}

#[test]
fn live_view_settings_are_validated() {
    for (yaml, key) in [
        ("ui:\n  max_calls: 0\n", "ui.max_calls"),
        (
            "ui:\n  trace_url: javascript:alert(1)//{trace_id}\n",
            "ui.trace_url",
        ),
        ("ui:\n  trace_url: http://tempo/trace\n", "ui.trace_url"),
        (
            "ui:\n  only_on_metrics_listen: true\n",
            "ui.only_on_metrics_listen",
        ),
        ("ui:\n  colour: red\n", "colour"),
    ] {
        let e = load_yaml(yaml, &env(&[])).unwrap_err();
        assert!(e.0.contains(key), "{yaml}: {e}");
    }
}

#[test]
fn client_keys_are_digests_with_valid_limits() {
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let cfg = load_yaml(
        &format!("auth:\n  keys:\n    - sha256: \"{}\"\n      tenant: t\n      requests_per_minute: 60\n      max_concurrent: 8\n", sha.to_uppercase()),
        &env(&[]),
    )
    .unwrap();
    let k = &cfg.auth.as_ref().unwrap().keys[0];
    let hex: String = k.sha256.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, sha);
    assert_eq!(
        (k.requests_per_minute, k.max_concurrent),
        (Some(60), Some(8))
    );
    assert!(!format!("{cfg:?}").contains(sha));
    assert!(load_yaml("", &env(&[])).unwrap().auth.is_none());
    for (yaml, key) in [
        ("auth:\n  keys: []\n", "auth.keys"),
        ("auth:\n  keys:\n    - sha256: sk-abc\n      tenant: t\n", "looks like a key itself"),
        ("auth:\n  keys:\n    - sha256: abc\n      tenant: t\n", "auth.keys[0].sha256"),
        (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: \"\"\n"), "auth.keys[0].tenant"),
        (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: t\n      requests_per_minute: 0\n"), "requests_per_minute"),
        (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: t\n      max_concurrent: 0\n"), "max_concurrent"),
        (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: a\n    - sha256: {sha}\n      tenant: b\n"), "auth.keys[1].sha256"),
        (&format!("auth:\n  keys:\n    - sha256: {sha}\n      tenant: a\n      key: x\n"), "key"),
    ] {
        let e = load_yaml(yaml, &env(&[])).unwrap_err();
        assert!(e.0.contains(key), "{yaml}: {e}");
    }
}

/// The file's half of this test; the flag's half is `cli::tests::compat_profiles_flag`.
#[test]
fn compat_profiles_from_file() {
    let cfg = load_yaml(
        "telemetry:\n  compat: [openinference, langfuse]\n",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(
        cfg.telemetry.compat,
        vec![CompatProfile::Openinference, CompatProfile::Langfuse]
    );
    assert!(load_yaml("telemetry:\n  compat: [phoenix]\n", &env(&[])).is_err());
    assert!(load_yaml("", &env(&[]))
        .unwrap()
        .telemetry
        .compat
        .is_empty());
}

#[test]
fn bad_duration_is_refused() {
    let e = load_yaml("shutdown_timeout_secs: -3\n", &env(&[])).unwrap_err();
    assert!(e.0.contains("shutdown_timeout_secs"), "{e}");
}

/// A bad value deep in the file is reported under its whole path, not its section's.
#[test]
fn bad_nested_values_name_their_path() {
    for (yaml, key) in [
        (
            "upstreams:\n  - name: a\n    base_url: http://x\n    timeouts:\n      idle_secs: -1\n",
            "upstreams[0].timeouts.idle_secs: must be a non-negative number of seconds",
        ),
        (
            "telemetry:\n  tool_call_ttl_secs: soon\n",
            "telemetry.tool_call_ttl_secs",
        ),
        (
            "metrics_listen: nowhere\n",
            "metrics_listen: not a socket address",
        ),
        (
            "header_read_timeout_secs: 0\n",
            "header_read_timeout_secs: must be greater than 0",
        ),
        (
            "serve_threads: 0\n",
            "serve_threads: must be from 1 to 1024",
        ),
        ("state_url: http://x\n", "state_url: must be redis://"),
        ("tls_cert: /c.pem\n", "tls_key: required with tls_cert"),
        (
            "telemetry:\n  redact:\n    - pattern: '('\n      replacement: x\n",
            "telemetry.redact[0].pattern",
        ),
        (
            "metrics:\n  prices:\n    - { model: m, input: 1, output: 1, cache_write_input: -1 }\n",
            "prices[m]",
        ),
    ] {
        let e = load_yaml(yaml, &env(&[])).unwrap_err();
        assert!(e.0.contains(key), "{yaml}: {e}");
        assert!(!e.0.contains('\n'), "{e}");
    }
}

/// An unknown key, at any depth, fails naming the key, its section and the file.
#[test]
fn unknown_key_fails_naming_it_and_the_file() {
    let dir = std::env::temp_dir().join(format!("llmtap-config-unknown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (yaml, want) in [
        ("colour: red\n", "unknown field `colour`"),
        (
            "telemetry:\n  capture_contents: true\n",
            "telemetry: unknown field `capture_contents`",
        ),
        (
            "upstreams:\n  - name: a\n    base_url: http://x\n    timeouts:\n      idle: 3\n",
            "upstreams[0].timeouts: unknown field `idle`",
        ),
        // A duration under the struct's own field name, not its documented `*_secs` key.
        ("shutdown_timeout: 3\n", "unknown field `shutdown_timeout`"),
        (
            "metrics:\n  prices:\n    - { model: m, input: 1, output: 1, currency: EUR }\n",
            "metrics.prices[0]: unknown field `currency`",
        ),
    ] {
        let path = dir.join("llmtap.yaml");
        std::fs::write(&path, yaml).unwrap();
        let e = Config::from_file(&path, &env(&[])).unwrap_err();
        assert!(e.0.contains(want), "{yaml}: {e}");
        assert!(e.0.contains(&path.display().to_string()), "{e}");
        assert!(!e.0.contains('\n'), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A section whose keys are all commented out reads as `null`: it keeps its defaults.
#[test]
fn an_empty_section_keeps_its_defaults() {
    let cfg = load_yaml("telemetry:\nmetrics:\nui:\n", &env(&[])).unwrap();
    assert_eq!(cfg, Config::default());
}

/// `Default` is where defaults live: an empty file is exactly it, and the values the docs
/// promise are its values.
#[test]
fn the_defaults_are_the_documented_ones() {
    let cfg = load_yaml("", &env(&[])).unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.upstreams[0].base_url, "https://api.openai.com/v1");
    assert_eq!(cfg.upstreams[0].provider, Provider::Openai);
    assert_eq!(cfg.default_upstream().unwrap().name, "default");
    assert_eq!(cfg.max_body_bytes, 33_554_432);
    assert_eq!(cfg.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(cfg.drain_delay, Duration::ZERO);
    assert_eq!(cfg.upstreams[0].timeouts, Timeouts::default());
    assert_eq!(
        cfg.upstreams[0].timeouts.first_byte,
        Duration::from_secs(600)
    );
    assert_eq!(cfg.metrics.max_models, 100);
    assert_eq!(cfg.telemetry.redaction_rules(), default_redactions());
    assert_eq!(cfg.metrics.price_list(), prices::default_prices());
    // An upstream of the file has the file's defaults.
    let u = &load_yaml(
        "upstreams:\n  - name: a\n    base_url: http://x/\n",
        &env(&[]),
    )
    .unwrap()
    .upstreams[0];
    assert_eq!(
        *u,
        UpstreamConfig::new("a", "http://x", Provider::OpenaiCompatible)
    );
}

/// The file's redaction rules and prices follow the built-in ones' place in the order, and
/// each can be turned off.
#[test]
fn built_in_redactions_and_prices_combine_with_the_files() {
    let yaml = "telemetry:\n  redact:\n    - { pattern: x, replacement: y }\nmetrics:\n  prices:\n    - { model: m, input: 1, output: 2 }\n";
    let cfg = load_yaml(yaml, &env(&[])).unwrap();
    let rules = cfg.telemetry.redaction_rules();
    assert_eq!(rules.len(), default_redactions().len() + 1);
    assert_eq!(rules.last().unwrap().pattern, "x");
    let prices = cfg.metrics.price_list();
    assert_eq!(prices[0].model, "m");
    assert_eq!(prices.len(), prices::default_prices().len() + 1);
    let off = format!("{yaml}  default_prices: false\n")
        .replace("telemetry:\n", "telemetry:\n  default_redactions: false\n");
    let cfg = load_yaml(&off, &env(&[])).unwrap();
    assert_eq!(cfg.telemetry.redaction_rules().len(), 1);
    assert_eq!(cfg.metrics.price_list().len(), 1);
}

/// The shipped price table passes the checks a file's prices get.
#[test]
fn the_shipped_prices_are_valid() {
    let mut cfg = Config::default();
    cfg.metrics.prices = prices::default_prices();
    cfg.validate().unwrap();
    assert!(!cfg.metrics.prices.is_empty());
}

// ---- every documented key -------------------------------------------------------------

/// Every key of the file, as a path (`[]`: an item of a list), with a value that is not its
/// default. `every_accepted_key_is_listed` keeps this list complete.
fn documented_keys() -> Vec<(&'static str, Value)> {
    vec![
        ("listen", json!("0.0.0.0:9999")),
        ("metrics_listen", json!("127.0.0.1:9464")),
        ("upstreams[].name", json!("other")),
        ("upstreams[].base_url", json!("http://y/v1")),
        ("upstreams[].provider", json!("anthropic")),
        ("upstreams[].api_key_env", json!("SOME_KEY")),
        ("upstreams[].inject_usage", json!(false)),
        ("upstreams[].timeouts.connect_secs", json!(1)),
        ("upstreams[].timeouts.first_byte_secs", json!(2.5)),
        ("upstreams[].timeouts.idle_secs", json!(3)),
        ("upstreams[].timeouts.max_stream_secs", json!(4)),
        ("upstreams[].prices[].model", json!("llama*")),
        ("upstreams[].prices[].input", json!(0.5)),
        ("upstreams[].prices[].cached_input", json!(0.1)),
        ("upstreams[].prices[].cache_write_input", json!(0.7)),
        ("upstreams[].prices[].output", json!(0.9)),
        ("upstreams[].aws_sigv4.region", json!("us-east-1")),
        ("upstreams[].aws_sigv4.service", json!("bedrock")),
        ("upstreams[].aws_sigv4.profile", json!("gateway")),
        ("routes[].model", json!("gpt-*")),
        ("routes[].upstream", json!("default")),
        ("default_upstream", json!("default")),
        ("max_body_bytes", json!(1024)),
        ("header_read_timeout_secs", json!(5)),
        ("body_read_timeout_secs", json!(6)),
        ("shutdown_timeout_secs", json!(7)),
        ("drain_delay_secs", json!(8)),
        ("serve_threads", json!(2)),
        ("log_format", json!("json")),
        ("ca_file", json!("/etc/ssl/ca.pem")),
        ("state_url", json!("redis://127.0.0.1:6379/0")),
        ("tls_cert", json!("/etc/llmtap/cert.pem")),
        ("tls_key", json!("/etc/llmtap/key.pem")),
        ("telemetry.capture_content", json!(true)),
        ("telemetry.content_max_chars", json!(10)),
        ("telemetry.report_estimated_usage", json!(true)),
        ("telemetry.default_redactions", json!(false)),
        ("telemetry.redact[].pattern", json!("card")),
        ("telemetry.redact[].replacement", json!("[CARD]")),
        ("telemetry.baggage_attributes", json!(["user.id"])),
        ("telemetry.header_attributes", json!(["X-Team"])),
        (
            "telemetry.conversation_id_header",
            json!("X-Conversation-Id"),
        ),
        ("telemetry.tool_call_ttl_secs", json!(0.2)),
        ("telemetry.max_pending_tool_calls", json!(5)),
        ("telemetry.max_pending_tool_calls_per_tenant", json!(2)),
        ("telemetry.slow_request_secs", json!(1)),
        ("telemetry.queue_size", json!(16)),
        ("telemetry.compat", json!(["openlit"])),
        ("telemetry.output_tools", json!(["final_answer"])),
        ("metrics.max_models", json!(3)),
        ("metrics.max_conversations", json!(0)),
        ("metrics.baggage_attributes", json!(["tenant"])),
        ("metrics.header_attributes", json!(["x-team"])),
        ("metrics.max_attribute_values", json!(7)),
        ("metrics.tenant_attribute", json!(true)),
        ("metrics.prometheus", json!(false)),
        ("metrics.default_prices", json!(false)),
        ("metrics.prices[].model", json!("gpt-x*")),
        ("metrics.prices[].input", json!(3)),
        ("metrics.prices[].cached_input", json!(1)),
        ("metrics.prices[].cache_write_input", json!(4)),
        ("metrics.prices[].output", json!(9)),
        ("ui.enabled", json!(false)),
        ("ui.max_calls", json!(10)),
        ("ui.trace_url", json!("http://tempo/t/{trace_id}")),
        ("ui.only_on_metrics_listen", json!(true)),
        ("ui.tenant_key", json!("team")),
        // The SHA-256 of "" in upper case: another key than `required_in`'s.
        (
            "auth.keys[].sha256",
            json!("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
        ),
        ("auth.keys[].tenant", json!("team-b")),
        ("auth.keys[].requests_per_minute", json!(60)),
        ("auth.keys[].max_concurrent", json!(8)),
        ("mcp_servers", json!({"docs": "http://127.0.0.1:8000/mcp"})),
        ("mcp_trace_context", json!(false)),
    ]
}

/// What an item of each list needs before any other key can be set in it.
fn required_in(list: &str) -> Value {
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    match list {
        "upstreams" => json!({"name": "a", "base_url": "http://x/v1"}),
        "routes" => json!({"model": "m", "upstream": "x"}),
        "prices" => json!({"model": "m", "input": 1, "output": 1}),
        "redact" => json!({"pattern": "p", "replacement": "r"}),
        "keys" => json!({"sha256": sha, "tenant": "t"}),
        other => panic!("no required keys known for list {other}"),
    }
}

/// The file that sets `path` to `value` (`None`: the same file without it), with what the
/// lists along the way require.
fn file_setting(path: &str, value: Option<Value>) -> Value {
    let Some((head, rest)) = path.split_once('.') else {
        return match value {
            Some(v) => json!({ path: v }),
            None => json!({}),
        };
    };
    match head.strip_suffix("[]") {
        Some(list) => {
            let mut item = required_in(list);
            if let (Value::Object(item), Value::Object(inner)) =
                (&mut item, file_setting(rest, value))
            {
                item.extend(inner);
            }
            json!({ list: [item] })
        }
        None => json!({ head: file_setting(rest, value) }),
    }
}

/// Parses a file built as a value (JSON is YAML), reading every variable as set.
fn parse(file: &Value) -> Result<Config, ConfigError> {
    Config::from_yaml(&file.to_string(), &AnyVar)
}

/// Each key of the file parses and changes the config it is added to.
#[test]
fn every_documented_key_parses_and_takes_effect() {
    for (path, value) in documented_keys() {
        let with = parse(&file_setting(path, Some(value.clone())))
            .unwrap_or_else(|e| panic!("{path}: {value}: {e}"));
        let without = parse(&file_setting(path, None)).unwrap();
        assert_ne!(with, without, "{path}: {value} changed nothing");
    }
}

/// Every key serde accepts, in every section, is in `documented_keys`: serde's message for an
/// unknown key lists the section's keys.
#[test]
fn every_accepted_key_is_listed() {
    let listed: Vec<String> = documented_keys()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    let sections = [
        "",
        "upstreams[]",
        "upstreams[].timeouts",
        "upstreams[].prices[]",
        "routes[]",
        "telemetry",
        "telemetry.redact[]",
        "metrics",
        "metrics.prices[]",
        "ui",
        "auth",
        "auth.keys[]",
    ];
    for section in sections {
        let path = [section, "not_a_key"].join(if section.is_empty() { "" } else { "." });
        let e = parse(&file_setting(&path, Some(json!(1)))).unwrap_err().0;
        let expected = e
            .split_once("expected")
            .unwrap_or_else(|| panic!("{path}: {e}"))
            .1;
        let accepted: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!accepted.is_empty(), "{e}");
        for key in accepted {
            let full = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            let covered = listed.iter().any(|l| {
                *l == full
                    || l.starts_with(&format!("{full}."))
                    || l.starts_with(&format!("{full}[]."))
            });
            assert!(covered, "{full} is accepted but not in documented_keys");
        }
    }
}

/// Every key docs/configuration.md and the README name (`telemetry.compat`, `drain_delay_secs`,
/// `auth.keys`, ...) is one `documented_keys` parses, and every YAML block in
/// docs/configuration.md loads.
#[test]
fn every_key_the_docs_name_parses() {
    // A path's runs of segments, so that `auth.keys`, `keys` and `timeouts.idle_secs` count.
    let mut known: Vec<String> = Vec::new();
    let mut segments: Vec<String> = Vec::new();
    for (path, _) in documented_keys() {
        let segs: Vec<&str> = path.split('.').map(|s| s.trim_end_matches("[]")).collect();
        for i in 0..segs.len() {
            for j in i + 1..=segs.len() {
                known.push(segs[i..j].join("."));
            }
        }
        segments.extend(segs.iter().map(|s| s.to_string()));
    }
    let mut named = 0;
    for page in ["docs/configuration.md", "README.md"] {
        let text = std::fs::read_to_string(repo().join(page)).unwrap();
        for token in text.split('`').skip(1).step_by(2) {
            let is_name = !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
            let first = token.split('.').next().unwrap_or_default();
            // A name whose first part is a key's is meant as a key (`metrics.colour` would
            // be a key the docs promise and the parser refuses).
            if is_name && (segments.iter().any(|s| s == first) || token.ends_with("_secs")) {
                assert!(
                    known.contains(&token.to_string()),
                    "{page} names `{token}`, which no key is"
                );
                named += 1;
            }
        }
    }
    assert!(named >= 20, "only {named} keys found in the docs");
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let blocks = yaml_blocks(&docs);
    assert!(blocks.len() >= 2);
    for block in blocks {
        let block = block.replace("<hex SHA-256 of the client's key>", sha);
        load_yaml(&block, &AnyVar).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
}

fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => block = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.extend(block.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Every YAML file under examples/ is YAML, and every llmtap config in one loads: a file of
/// its own (it has `upstreams`) or a Kubernetes ConfigMap's `llmtap.yaml`.
#[test]
fn every_example_config_loads() {
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    let mut loaded = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for config in llmtap_configs(file, &text) {
            load_yaml(&config, &AnyVar).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            loaded += 1;
        }
    }
    // The three upstream examples and the Kubernetes ConfigMap.
    assert!(loaded >= 4, "only {loaded} configs in {files:?}");
}

/// The llmtap configs in one YAML file (every document must parse as YAML).
fn llmtap_configs(file: &Path, text: &str) -> Vec<String> {
    use serde::Deserialize;
    let mut configs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let doc = serde_norway::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if doc.get("upstreams").is_some() {
            configs.push(text.to_string());
        } else if doc.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
            let data = doc.get("data").and_then(|d| d.as_mapping());
            for (name, value) in data.into_iter().flatten() {
                let name = name.as_str().unwrap_or_default();
                if name.ends_with(".yaml") {
                    configs.extend(value.as_str().map(str::to_string));
                }
            }
        }
    }
    configs
}

#[test]
fn aws_sigv4_needs_client_keys_and_credentials() {
    let creds = env(&[
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ]);
    let up = "upstreams:\n  - name: b\n    base_url: https://bedrock-runtime.eu-west-3.amazonaws.com\n    provider: bedrock\n    aws_sigv4: {}\n";
    let e = load_yaml(up, &creds).unwrap_err().to_string();
    assert!(e.contains("auth.keys"), "{e}");
    let keys = "auth:\n  keys:\n    - sha256: \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"\n      tenant: t\n";
    let cfg = load_yaml(&format!("{up}{keys}"), &creds).unwrap();
    let s = cfg.upstreams[0].aws_signing.as_ref().unwrap();
    assert_eq!(
        (s.region.as_str(), s.service.as_str()),
        ("eu-west-3", "bedrock")
    );
    assert_eq!(s.credentials.access_key_id, "AKID");
    assert_eq!(cfg.upstreams[0].provider.semconv_name(), "aws.bedrock");
    let none = env(&[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds")]);
    let e = load_yaml(&format!("{up}{keys}"), &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("aws_sigv4"), "{e}");
}
