//! The example programs (Python, Node, curl) run against llmtap.

use super::*;

#[tokio::test]
async fn python_examples_run_and_the_queue_example_continues_the_producers_trace() {
    let Some(py) = common::python() else {
        return;
    };
    let (_up, rx, proxy) = start_traced("http/protobuf", None, &[]).await;
    let example = |name: &str| repo().join("examples/python").join(name);

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("chat.py"));
    let (out, _) = run_ok("examples/python/chat.py", cmd).await;
    assert!(out.contains("[plain] model="), "{out}");
    assert!(out.contains("[stream]"), "{out}");

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("tools.py"));
    let (out, _) = run_ok("examples/python/tools.py", cmd).await;
    assert!(out.contains("tool get_weather("), "{out}");
    assert!(out.contains("answer:"), "{out}");

    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("async_queue.py"));
    let (out, _) = run_ok("examples/python/async_queue.py", cmd).await;
    let line = |prefix: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .trim()
            .to_string()
    };
    let producer_trace = line("producer trace id:");
    let traceparent = line("traceparent sent to llmtap:");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    let worker_span = parts[2];

    let spans = rx
        .wait_for_spans(
            |s| {
                s.iter().any(|s| s.trace_id == producer_trace)
                    && s.iter()
                        .any(|s| s.str_attr(sc::LLMTAP_PROMPT_TEMPLATE).is_some())
                    && s.iter().any(|s| s.name == "execute_tool get_weather")
            },
            Duration::from_secs(15),
        )
        .await;
    let dump = spans_json(&spans);
    let queued: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == producer_trace)
        .collect();
    assert_eq!(
        queued.len(),
        1,
        "llmtap's span in the producer's trace:\n{dump}"
    );
    assert_eq!(queued[0].name, "chat gpt-4o-mini", "{dump}");
    assert_eq!(
        queued[0].parent_span_id, worker_span,
        "child of the worker's span: {dump}"
    );
    // chat.py names its prompt template; tools.py's tool run becomes an execute_tool span.
    assert!(
        spans
            .iter()
            .any(|s| s.str_attr(sc::LLMTAP_PROMPT_TEMPLATE) == Some("summarize-v1")),
        "{dump}"
    );
    assert!(
        spans.iter().any(|s| s.name == "execute_tool get_weather"
            && s.bool_attr(sc::LLMTAP_TOOL_RESULT_RECEIVED) != Some(false)),
        "{dump}"
    );

    // The load generator, bounded.
    let mut cmd = example_cmd(&py, &proxy);
    cmd.arg(example("loadgen.py"))
        .env("LOADGEN_SECONDS", "2")
        .env("LOADGEN_CONCURRENCY", "2")
        .env("LOADGEN_PAUSE", "0.1");
    let (out, err) = run_ok("examples/python/loadgen.py", cmd).await;
    assert!(!err.contains("Traceback"), "loadgen raised:\n{err}");
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains(" calls: "))
        .unwrap_or_else(|| panic!("no report line:\n{out}"));
    let (_, tallies) = last.split_once(" calls: ").unwrap();
    assert!(!tallies.trim().is_empty(), "no call made: {last}");
    for tally in tallies.split(", ") {
        let (kind, _) = tally.split_once('=').unwrap_or((tally, ""));
        // Only the scripted upstream errors are expected to fail.
        assert!(
            !kind.contains(':') || kind.starts_with("upstream_error:http_"),
            "unexpected failure {tally} in: {last}"
        );
    }
    proxy.stop().await;
}

#[tokio::test]
async fn node_example_runs() {
    let (Some(node), Some(node_modules)) = (tool("node"), tool_dir("LLMTAP_TEST_NODE_PATH")) else {
        return;
    };
    let (_up, proxy) = plain_proxy().await;
    // ES modules ignore NODE_PATH: `import "openai"` resolves from the script's directory
    // upwards, so the script runs from a directory whose node_modules is the test install.
    let dir = TempDir::new("node");
    std::os::unix::fs::symlink(&node_modules, dir.path().join("node_modules")).unwrap();
    std::fs::copy(
        repo().join("examples/node/chat.mjs"),
        dir.path().join("chat.mjs"),
    )
    .unwrap();
    let mut cmd = example_cmd(&node, &proxy);
    cmd.arg("chat.mjs")
        .current_dir(dir.path())
        .env("NODE_PATH", &node_modules);
    let (out, _) = run_ok("examples/node/chat.mjs", cmd).await;
    assert!(out.contains("[plain] model="), "{out}");
    assert!(out.contains("content chunks"), "{out}");
    proxy.stop().await;
}

#[tokio::test]
async fn curl_example_runs() {
    let (Some(bash), Some(_curl)) = (tool("bash"), tool("curl")) else {
        return;
    };
    let (_up, proxy) = plain_proxy().await;
    let mut cmd = example_cmd(&bash, &proxy);
    cmd.arg(repo().join("examples/curl/chat.sh"));
    let (out, _) = run_ok("examples/curl/chat.sh", cmd).await;
    for needle in [
        "chat.completion",
        "data: [DONE]",
        "\"embedding\"",
        "== models",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    proxy.stop().await;
}
