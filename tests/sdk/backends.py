"""The traffic tests/backends.rs sends through llmtap to a real GenAI backend (Phoenix,
MLflow), with the official openai SDK: a plain chat with a system prompt, a streamed chat, a
tool loop, embeddings, a 429, and a long conversation over llmtap's content limit. Every
call carries the conversation id header and baggage `user.id`, so the backend can group them
into a session and a user. Each user message starts with its scenario's tag, so the test
finds each call's span in the backend by its captured messages.

Prints one JSON object with what the SDK saw. OPENAI_BASE_URL points at llmtap.
"""
import json
import os

import openai
from openai import OpenAI

client = OpenAI(max_retries=0, timeout=30)
headers = {
    os.environ["BACKENDS_CONVERSATION_HEADER"]: os.environ["BACKENDS_CONVERSATION_ID"],
    "baggage": "user.id=" + os.environ["BACKENDS_USER_ID"],
}
SYSTEM = os.environ["BACKENDS_SYSTEM_PROMPT"]
TURNS = int(os.environ["BACKENDS_LONG_TURNS"])
TURN_CHARS = int(os.environ["BACKENDS_LONG_TURN_CHARS"])
out = {}

# Plain chat with a system prompt (a priced model, so backends that price it show a cost).
r = client.chat.completions.create(
    model="gpt-4o-mini", temperature=0.2, max_tokens=40, extra_headers=headers,
    messages=[{"role": "system", "content": SYSTEM},
              {"role": "user", "content": "[plain] Say hello in five words."}])
out["plain"] = {"text": r.choices[0].message.content, "usage": r.usage.model_dump()}

# Streamed chat; the SDK does not ask for usage, llmtap injects the request and hides it.
text = ""
for c in client.chat.completions.create(
        model="gpt-4o-mini", stream=True, extra_headers=headers,
        messages=[{"role": "user", "content": "[streamed] Count to three."}]):
    if c.choices:
        text += c.choices[0].delta.content or ""
out["streamed"] = {"text": text}

# Tool loop: the model asks for a tool, the app runs it, the result goes back.
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
messages = [{"role": "user", "content": "[tools] Weather in Paris?"}]
ask = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools,
                                     extra_headers=headers)
calls = ask.choices[0].message.tool_calls or []
messages.append(ask.choices[0].message.model_dump(exclude_none=True))
for call in calls:
    messages.append({"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"city": "Paris", "sky": "rainy"})})
final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools,
                                       extra_headers=headers)
out["tools"] = {"calls": [{"id": c.id, "name": c.function.name} for c in calls],
                "final": final.choices[0].message.content}

# Embeddings.
e = client.embeddings.create(model="text-embedding-3-small", input=["[embeddings] hello"],
                             extra_headers=headers)
out["embeddings"] = {"count": len(e.data), "usage": e.usage.model_dump()}

# An upstream 429.
try:
    client.chat.completions.create(model="mock-error-429", extra_headers=headers,
                                   messages=[{"role": "user", "content": "[error] Hello?"}])
    out["error"] = {"raised": None}
except openai.RateLimitError as ex:
    out["error"] = {"raised": "RateLimitError", "status": ex.status_code}

# A long conversation: its text is over llmtap's content_max_chars, so the long turns' text
# is cut to a fair share in the export while every message stays in it and the last
# question stays whole.
long_messages = [{"role": "system", "content": SYSTEM}]
for i in range(TURNS):
    long_messages.append({"role": "user",
                          "content": f"[long] question {i} " + "x" * TURN_CHARS})
    long_messages.append({"role": "assistant", "content": f"answer {i} " + "y" * TURN_CHARS})
long_messages.append({"role": "user", "content": "[long] last question"})
r = client.chat.completions.create(model="gpt-4o-mini", messages=long_messages,
                                   extra_headers=headers)
out["long"] = {"messages": len(long_messages), "text": r.choices[0].message.content}

print(json.dumps(out))
