"""A plain and a streamed chat completion through llmtap, with the official openai SDK.

    pip install -r requirements.txt
    llmtap demo &            # or: docker compose up
    python chat.py

The only change an app needs is the base URL: llmtap speaks the OpenAI API and records a
`chat <model>` span and the gen_ai metrics for each call.

Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
sk-demo; llmtap passes it on, or replaces it with its own key in gateway mode),
OPENAI_MODEL (default gpt-4o-mini).
"""

import os
import sys
import time

from openai import OpenAI

BASE_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
API_KEY = os.environ.get("OPENAI_API_KEY", "sk-demo")
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


def plain(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a technical summarizer."},
            {"role": "user", "content": "Summarize what a reverse proxy does in one sentence."},
        ],
        temperature=0.3,
        max_tokens=200,
        # Optional: name the prompt template. The span gets llmtap.prompt.template, so calls
        # can be grouped by template without exporting the prompt text (seed pitfall 1).
        # llmtap reads this header and does not forward it.
        extra_headers={"x-llmtap-prompt-template": "summarize-v1"},
    )
    choice = response.choices[0]
    print(f"[plain] model={response.model} finish_reason={choice.finish_reason}")
    print(choice.message.content)
    if response.usage:
        print(
            f"[plain] tokens: input={response.usage.prompt_tokens} "
            f"output={response.usage.completion_tokens}"
        )


def streamed(client: OpenAI) -> None:
    # No stream_options here on purpose: llmtap asks the upstream for the usage chunk
    # itself (inject_usage), records the token counts, and strips that extra chunk again,
    # so a client that never asked for it does not see a chunk with empty `choices`.
    start = time.monotonic()
    first_token_at = None
    chunks = 0
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count from one to ten, in words."}],
        stream=True,
    )
    print("[stream] ", end="", flush=True)
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.content
        if delta:
            if first_token_at is None:
                first_token_at = time.monotonic() - start
            chunks += 1
            print(delta, end="", flush=True)
    print()
    ttft = f"{first_token_at * 1000:.0f} ms" if first_token_at is not None else "n/a"
    print(f"[stream] {chunks} content chunks, time to first token {ttft} (client side)")


def main() -> int:
    client = OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=120)
    plain(client)
    streamed(client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
