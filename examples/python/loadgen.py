"""Steady mixed traffic through llmtap, so every panel of the Grafana dashboard fills.

    LOADGEN_SECONDS=60 python loadgen.py      # bounded run
    python loadgen.py                         # until Ctrl-C / SIGTERM (docker compose)

Each worker thread picks one kind of call at a time, by weight:
  - plain chat and streamed chat on three priced models (requests, latency, tokens, cost,
    time to first token, time per chunk);
  - a tool round trip: the model asks for get_weather, the app runs it (0.2 s) and sends
    the result back (tool calls, tool execution time);
  - upstream errors from the scripted upstream's `mock-error-429` / `mock-error-500`
    models, and a streamed call the client abandons half way (error share, error types);
  - prompts with a fake e-mail address and API key, to see the collector's redaction in
    Tempo when content capture is on;
  - now and then a `mock-slow` stream of about 12 s (slow traces in the Tempo panel).
The error and slow kinds need llmtap's scripted upstream (`llmtap mock-upstream`, or
`llmtap demo`); against a real provider set LOADGEN_MOCK_SCENARIOS=0.

Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
sk-demo), LOADGEN_SECONDS (unset or empty: run until stopped), LOADGEN_CONCURRENCY
(default 4), LOADGEN_PAUSE (seconds between one worker's calls, default 0.5),
LOADGEN_MODELS (comma-separated, default gpt-4o-mini,gpt-4o,gpt-4.1-nano),
LOADGEN_MOCK_SCENARIOS (default 1).
"""

import collections
import json
import os
import random
import signal
import sys
import threading
import time

import openai
from openai import OpenAI

BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
API_KEY = os.environ.get("OPENAI_API_KEY", "sk-demo")
SECONDS = os.environ.get("LOADGEN_SECONDS", "").strip()
CONCURRENCY = int(os.environ.get("LOADGEN_CONCURRENCY", "4"))
PAUSE = float(os.environ.get("LOADGEN_PAUSE", "0.5"))
MODELS = [m.strip() for m in os.environ.get(
    "LOADGEN_MODELS", "gpt-4o-mini,gpt-4o,gpt-4.1-nano").split(",") if m.strip()]
MOCK_SCENARIOS = os.environ.get("LOADGEN_MOCK_SCENARIOS", "1") not in ("0", "false", "no")

PROMPTS = [
    "Summarize the plot of Hamlet in two sentences.",
    "Explain what a reverse proxy is to a new engineer.",
    "Write a haiku about latency.",
    "List three uses of OpenTelemetry.",
]
PII_PROMPT = ("Reply to jane.doe@example.com: her api_key: \"sk-test-0123456789abcdef\" "
              "was rotated; use Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.demo.token")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}

stop = threading.Event()
stats = collections.Counter()
stats_lock = threading.Lock()


def count(key: str) -> None:
    with stats_lock:
        stats[key] += 1


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


def plain(client: OpenAI) -> None:
    client.chat.completions.create(model=random.choice(MODELS), messages=user(random.choice(PROMPTS)),
                                   max_tokens=200)


def streamed(client: OpenAI) -> None:
    stream = client.chat.completions.create(model=random.choice(MODELS),
                                            messages=user(random.choice(PROMPTS)), stream=True)
    for _ in stream:
        pass


def abandoned_stream(client: OpenAI) -> None:
    """Read two chunks, then hang up: llmtap records error.type client_disconnected. The
    x-mock-chunk-delay-ms header slows the scripted upstream's chunks down (0.2 s apart),
    so the reply is still streaming when the client goes; real providers ignore it."""
    stream = client.chat.completions.create(model=random.choice(MODELS),
                                            messages=user("Tell me a long story."), stream=True,
                                            extra_headers={"x-mock-chunk-delay-ms": "200"})
    for i, _ in enumerate(stream):
        if i >= 1:
            break
    stream.close()


def tool_round_trip(client: OpenAI) -> None:
    model = random.choice(MODELS)
    messages = user(f"What's the weather in {random.choice(['Paris', 'Lima', 'Oslo'])}?")
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    msg = first.choices[0].message
    if not msg.tool_calls:
        return
    messages.append({"role": "assistant", "content": msg.content, "tool_calls": [
        {"id": c.id, "type": "function",
         "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in msg.tool_calls]})
    for call in msg.tool_calls:
        time.sleep(0.2)  # the app running its tool
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": json.dumps({"temperature": 21, "conditions": "sunny"})})
    client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL],
                                   tool_choice="none")


def pii(client: OpenAI) -> None:
    client.chat.completions.create(model=random.choice(MODELS), messages=user(PII_PROMPT),
                                   max_tokens=100)


def upstream_error(client: OpenAI) -> None:
    client.chat.completions.create(model=random.choice(["mock-error-429", "mock-error-500"]),
                                   messages=user("This one fails upstream."))


def slow(client: OpenAI) -> None:
    """A stream of about 12 s: past the 10 s mark at which the collector keeps every trace,
    so it shows in the dashboard's "slow or failed" Tempo panel. The x-mock-* headers shape
    the scripted upstream's reply (24 chunks, 0.5 s apart); llmtap passes them on."""
    stream = client.chat.completions.create(
        model="mock-slow", messages=user("Take your time."), stream=True,
        extra_headers={"x-mock-chunks": "24", "x-mock-chunk-delay-ms": "500"})
    for _ in stream:
        pass


KINDS = [(plain, 30), (streamed, 30), (tool_round_trip, 15), (pii, 5), (abandoned_stream, 3)]
if MOCK_SCENARIOS:
    KINDS += [(upstream_error, 6), (slow, 1)]


def worker(client: OpenAI, deadline: float) -> None:
    funcs, weights = zip(*KINDS)
    while not stop.is_set() and time.monotonic() < deadline:
        kind = random.choices(funcs, weights)[0]
        try:
            kind(client)
            count(kind.__name__)
        except openai.APIStatusError as e:
            # Expected for upstream_error; anything else is worth seeing in the log.
            count(f"{kind.__name__}:http_{e.status_code}")
        except openai.APIError as e:
            count(f"{kind.__name__}:{type(e).__name__}")
        stop.wait(random.uniform(PAUSE / 2, PAUSE * 1.5))


def report(started: float) -> None:
    with stats_lock:
        total = sum(stats.values())
        line = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
    print(f"[loadgen {time.monotonic() - started:6.0f}s] {total} calls: {line}", flush=True)


def main() -> int:
    deadline = time.monotonic() + float(SECONDS) if SECONDS else float("inf")
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # No retries: a 429 should be counted once, as the upstream's answer, not retried.
    client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=120)
    print(f"[loadgen] {CONCURRENCY} workers -> {BASE_URL}, models {MODELS}, "
          f"{'for ' + SECONDS + ' s' if SECONDS else 'until stopped'}", flush=True)
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(client, deadline), daemon=True)
               for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    next_report = started + 10
    while any(t.is_alive() for t in threads) and not stop.is_set():
        stop.wait(0.5)
        if time.monotonic() >= next_report:
            report(started)
            next_report += 10
    # Workers finish the call they are in (a stream can take a while), then stop.
    for t in threads:
        t.join(timeout=150)
    report(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
