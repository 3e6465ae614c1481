"""A streamed two-tool-call turn, the app "executing" the tools (sleeping), then the
tool-result turn — what an agent loop does. Prints the ids and timings as JSON."""
import json
import os
import time

from openai import OpenAI

client = OpenAI(max_retries=0, timeout=30)
SLEEP = float(os.environ.get("TOOL_SLEEP", "0.3"))
headers = {}
if os.environ.get("E2E_TRACEPARENT"):
    headers["traceparent"] = os.environ["E2E_TRACEPARENT"]
tools = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
]
messages = [{"role": "user", "content": "Weather and time in Paris?"}]

# Reassemble streamed tool-call deltas the way SDK users do (by index, appending arguments).
calls = {}
finish = None
for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools,
                                            stream=True, extra_headers=headers):
    if not chunk.choices:
        continue
    ch = chunk.choices[0]
    finish = ch.finish_reason or finish
    for d in ch.delta.tool_calls or []:
        c = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
        if d.id:
            c["id"] = d.id
        if d.function and d.function.name:
            c["name"] = d.function.name
        if d.function and d.function.arguments:
            c["arguments"] += d.function.arguments
ordered = [calls[i] for i in sorted(calls)]
parsed_ok = all(isinstance(json.loads(c["arguments"]), dict) for c in ordered)

time.sleep(SLEEP)  # the application runs its tools

messages.append({"role": "assistant", "content": None, "tool_calls": [
    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
    for c in ordered]})
for c in ordered:
    messages.append({"role": "tool", "tool_call_id": c["id"], "content": json.dumps({"ok": c["name"]})})
final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools, extra_headers=headers)
print(json.dumps({"calls": ordered, "finish": finish, "arguments_json": parsed_ok,
                  "final": final.choices[0].message.content, "final_finish": final.choices[0].finish_reason}))
