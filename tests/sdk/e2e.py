"""End-to-end calls through llmtap with the official openai SDK.

Prints one JSON object with what the SDK saw; the Rust test asserts on it (and on what
llmtap exported). OPENAI_BASE_URL points at llmtap.
"""
import json
import os
import sys
import time

import openai
from openai import OpenAI

client = OpenAI(max_retries=0, timeout=30)
MODEL = os.environ.get("E2E_MODEL", "gpt-4o-mini")
TRACEPARENT = os.environ.get("E2E_TRACEPARENT")
headers = {"traceparent": TRACEPARENT} if TRACEPARENT else {}
if os.environ.get("E2E_BAGGAGE"):
    headers["baggage"] = os.environ["E2E_BAGGAGE"]
msgs = [{"role": "user", "content": "Say hello to bob@example.com in five words"}]
out = {}

# Plain chat.
r = client.chat.completions.create(model=MODEL, messages=msgs, temperature=0.2, max_tokens=50, extra_headers=headers)
out["plain"] = {"text": r.choices[0].message.content, "model": r.model, "id": r.id,
                "usage": r.usage.model_dump() if r.usage else None}

# Streamed chat, client did not ask for usage: must never see a choices=[] chunk or usage.
chunks, text, empty_choices, usage_seen = 0, "", 0, 0
for c in client.chat.completions.create(model=MODEL, messages=msgs, stream=True, extra_headers=headers):
    chunks += 1
    if not c.choices:
        empty_choices += 1
    else:
        text += c.choices[0].delta.content or ""
    if getattr(c, "usage", None) is not None:
        usage_seen += 1
out["stream_no_usage"] = {"chunks": chunks, "text": text, "empty_choices": empty_choices, "usage_seen": usage_seen}

# Streamed chat asking for usage: the last chunk carries it.
last_usage = None
for c in client.chat.completions.create(model=MODEL, messages=msgs, stream=True,
                                        stream_options={"include_usage": True}, extra_headers=headers):
    if c.usage is not None:
        last_usage = c.usage.model_dump()
out["stream_usage"] = {"usage": last_usage}

# Embeddings (the SDK asks for base64 and decodes it).
e = client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"], extra_headers=headers)
out["embeddings"] = {"count": len(e.data), "dim": len(e.data[0].embedding), "usage": e.usage.model_dump()}

# Models.
out["models"] = [m.id for m in client.models.list()]

# 429 from the upstream arrives as RateLimitError with the upstream's message.
try:
    client.chat.completions.create(model="mock-error-429", messages=msgs, extra_headers=headers)
    out["rate_limit"] = {"raised": None}
except openai.RateLimitError as ex:
    out["rate_limit"] = {"raised": "RateLimitError", "message": ex.message, "status": ex.status_code}

print(json.dumps(out))
