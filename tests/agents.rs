//! Coding agents as clients: each agent's request shape (our fixtures, written after the
//! agents' documented behaviour, see docs/coding-agents.md) replayed through llmtap with the
//! session header the agent sends, and the session asserted as `gen_ai.conversation.id`.

mod common;

use std::time::Duration;

use common::otlp::SpanView;
use common::*;
use serde_json::Value;

/// OpenAI and Anthropic paths under `/v1` to the scripted upstream, Gemini paths to it at
/// its origin.
const AGENTS_YAML: &str = r#"
upstreams:
  - name: default
    base_url: "{upstream}/v1"
    provider: openai
  - name: gemini
    base_url: "{upstream}"
    provider: gemini
routes:
  - model: "gemini-*"
    upstream: gemini
default_upstream: default
"#;

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(provider_fixtures().join(name)).unwrap()).unwrap()
}

/// Sends `body` to `path` with the upstream replaying `reply`, plus `headers`.
async fn replay(proxy: &Proxy, path: &str, body: &Value, reply: &str, headers: &[(&str, &str)]) {
    let mut req = client()
        .post(format!("{}{path}", proxy.url))
        .header("x-mock-scenario", "replay")
        .header("x-mock-replay", reply)
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let _ = r.bytes().await.unwrap();
}

fn conversation(s: &SpanView) -> Option<&str> {
    s.str_attr("gen_ai.conversation.id")
}

#[tokio::test]
async fn each_agents_calls_share_its_session_as_the_conversation_id() {
    let (_up, rx, proxy) = start_traced("grpc", Some(AGENTS_YAML), &[]).await;
    let claude_session = "c0de5e55-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

    // Claude Code: `/v1/messages?beta=true` with its beta headers. 2.1.86+ sends the session
    // header; older versions only the session in `metadata.user_id` (the fixture has it).
    let cc = fixture("agent-claude-code-messages.json");
    let beta = "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14";
    replay(
        &proxy,
        "/v1/messages?beta=true",
        &cc,
        "anthropic-messages-tool-use.sse",
        &[
            ("anthropic-beta", beta),
            ("anthropic-version", "2023-06-01"),
            ("x-claude-code-session-id", claude_session),
            ("x-app", "cli"),
        ],
    )
    .await;
    replay(
        &proxy,
        "/v1/messages?beta=true",
        &cc,
        "anthropic-messages-text.sse",
        &[
            ("anthropic-beta", beta),
            ("anthropic-version", "2023-06-01"),
        ],
    )
    .await;

    // Codex CLI: Responses streaming, `store: false`, reasoning items in the input, and its
    // `session-id` header.
    let codex_session = "0199c0de-7e57-7a11-b0b5-5e5510000001";
    replay(
        &proxy,
        "/v1/responses",
        &fixture("agent-codex-responses.json"),
        "openai-responses-stream-function-call.sse",
        &[
            ("session-id", codex_session),
            ("originator", "codex_cli_rs"),
        ],
    )
    .await;

    // Gemini CLI: SSE streams with function calls and thought parts. It sends no session
    // header of its own on the Developer API; a wrapper's generic `x-session-id` is read.
    let gemini_session = "gemini-cli-run-42";
    let gc = fixture("agent-gemini-cli-request.json");
    for reply in [
        "gemini-stream-function-call.sse",
        "gemini-stream-thinking.sse",
    ] {
        replay(
            &proxy,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            &gc,
            reply,
            &[
                ("x-session-id", gemini_session),
                ("x-goog-api-key", "AIza-test"),
            ],
        )
        .await;
    }

    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter()
                    .filter(|s| !s.name.starts_with("execute_tool"))
                    .count()
                    >= 5
            },
            Duration::from_secs(15),
        )
        .await;
    let dump = common::otlp::spans_json(&spans);
    let named = |prefix: &str| -> Vec<&SpanView> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect()
    };
    let claude = named("chat claude-sonnet-4-5");
    assert_eq!(claude.len(), 2, "{dump}");
    for s in &claude {
        assert_eq!(conversation(s), Some(claude_session), "{dump}");
        assert_eq!(s.str_attr("gen_ai.provider.name"), Some("anthropic"));
        assert!(s.attr("error.type").is_none(), "{dump}");
    }
    let codex = named("chat gpt-5-codex");
    assert_eq!(codex.len(), 1, "{dump}");
    assert_eq!(conversation(codex[0]), Some(codex_session));
    assert_eq!(
        codex[0].str_attr("gen_ai.request.reasoning.level"),
        Some("medium")
    );
    let gemini = named("generate_content gemini-2.5-pro");
    assert_eq!(gemini.len(), 2, "{dump}");
    for s in &gemini {
        assert_eq!(conversation(s), Some(gemini_session), "{dump}");
        assert_eq!(s.str_attr("gen_ai.provider.name"), Some("gcp.gemini"));
        // Capture is off: thought text, like all content, is never exported.
        assert!(s.attr("gen_ai.output.messages").is_none());
        assert!(s.attr("error.type").is_none(), "{dump}");
    }
    assert!(
        gemini
            .iter()
            .any(|s| s.int_attr("gen_ai.usage.reasoning.output_tokens") == Some(140)),
        "{dump}"
    );
    assert!(!dump.contains("Reading the timetable"), "thoughts exported");
    // Nobody's request got an id llmtap made up.
    let ids: Vec<&str> = spans.iter().filter_map(conversation).collect();
    assert!(ids
        .iter()
        .all(|id| [claude_session, codex_session, gemini_session].contains(id)));
    proxy.stop().await;
}
