"""Failure paths through llmtap: an upstream that dies mid-stream, and a client that
disconnects mid-stream. Prints what the SDK saw as JSON."""
import json

from openai import OpenAI

client = OpenAI(max_retries=0, timeout=30)
msgs = [{"role": "user", "content": "Tell me a long story"}]
out = {}

# The upstream dies mid-stream: the SDK must see an error, never a clean end.
got, err = "", None
try:
    for c in client.chat.completions.create(model="mock-cut", messages=msgs, stream=True):
        if c.choices:
            got += c.choices[0].delta.content or ""
except Exception as ex:  # httpx.RemoteProtocolError / openai.APIError, version dependent
    err = type(ex).__name__
out["cut"] = {"error": err, "text": got}

# The client goes away after the first content chunk.
stream = client.chat.completions.create(model="mock-slow", messages=msgs, stream=True,
                                        extra_headers={"x-mock-chunk-delay-ms": "200", "x-mock-chunks": "30"})
for c in stream:
    if c.choices and c.choices[0].delta.content:
        break
stream.close()
out["disconnect"] = {"closed": True}
print(json.dumps(out))
