"""The other APIs through llmtap with their official SDKs: OpenAI's Responses API (plain,
streamed, and a function-call turn answered with its output) and Anthropic's Messages API
(create, stream, and a tool_use turn answered with its tool_result). Prints what the SDKs saw
as JSON, for the Rust test to compare with the exported spans."""
import json
import os

import anthropic
from openai import OpenAI

out = {}
oa = OpenAI(max_retries=0, timeout=30)

# Responses, plain.
r = oa.responses.create(model="gpt-4o-mini", input="Say hello.")
out["responses_plain"] = {"id": r.id, "text": r.output_text, "input_tokens": r.usage.input_tokens,
                          "output_tokens": r.usage.output_tokens}

# Responses, streamed: text deltas and the completed response's usage.
text, usage, rid = "", None, None
with oa.responses.create(model="gpt-4o-mini", input="Stream a greeting.", stream=True) as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            usage = event.response.usage
            rid = event.response.id
out["responses_stream"] = {"id": rid, "text": text, "input_tokens": usage.input_tokens,
                           "output_tokens": usage.output_tokens}

# Responses, a function call and its output in the next turn.
tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
first = oa.responses.create(model="gpt-4o-mini", input="Weather in Lyon?", tools=tools, stream=True)
calls = []
for event in first:
    if event.type == "response.output_item.done" and event.item.type == "function_call":
        calls.append({"call_id": event.item.call_id, "name": event.item.name,
                      "arguments": event.item.arguments})
follow = [{"role": "user", "content": "Weather in Lyon?"}]
for c in calls:
    follow.append({"type": "function_call", "call_id": c["call_id"], "name": c["name"],
                   "arguments": c["arguments"]})
    follow.append({"type": "function_call_output", "call_id": c["call_id"], "output": "18 C"})
final = oa.responses.create(model="gpt-4o-mini", input=follow, tools=tools)
out["responses_tools"] = {"calls": calls, "final": final.output_text}

# Anthropic: the SDK appends /v1/messages to its base URL.
ac = anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="sk-ant-test-not-real",
                         max_retries=0, timeout=30)
m = ac.messages.create(model="claude-haiku-4-5", max_tokens=64,
                       messages=[{"role": "user", "content": "Say hello."}])
out["anthropic_plain"] = {"id": m.id, "text": "".join(b.text for b in m.content if b.type == "text"),
                          "input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens,
                          "stop_reason": m.stop_reason}
with ac.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                        messages=[{"role": "user", "content": "Stream a greeting."}]) as s:
    streamed = "".join(s.text_stream)
    final_message = s.get_final_message()
out["anthropic_stream"] = {"id": final_message.id, "text": streamed,
                           "input_tokens": final_message.usage.input_tokens,
                           "output_tokens": final_message.usage.output_tokens}
atools = [{"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
with ac.messages.stream(model="claude-haiku-4-5", max_tokens=64, tools=atools,
                        messages=[{"role": "user", "content": "Weather in Lyon?"}]) as s:
    ask = s.get_final_message()
uses = [b for b in ask.content if b.type == "tool_use"]
answer = ac.messages.create(model="claude-haiku-4-5", max_tokens=64, tools=atools, messages=[
    {"role": "user", "content": "Weather in Lyon?"},
    {"role": "assistant", "content": [b.model_dump() for b in ask.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18 C"} for u in uses]},
])
out["anthropic_tools"] = {"uses": [{"id": u.id, "name": u.name, "input": u.input} for u in uses],
                          "final": "".join(b.text for b in answer.content if b.type == "text")}
# A scripted failure arrives as the SDK's own exception type.
try:
    ac.messages.create(model="mock-error-429", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    out["anthropic_error"] = None
except anthropic.RateLimitError as e:
    out["anthropic_error"] = {"status": e.status_code, "type": e.body["error"]["type"]}
print(json.dumps(out))
