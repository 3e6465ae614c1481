"""The official google-genai SDK through llmtap (tests/gemini.rs): generate_content,
generate_content_stream, a function-calling loop, embed_content, count_tokens, an error, and
one Vertex AI call with a fake OAuth bearer. Prints what the SDK saw as JSON.

The base URL is set the SDK's documented way, `http_options=HttpOptions(base_url=...)`
(without an API version: the SDK adds `v1` or `v1beta` itself, and `v1beta1` for Vertex)."""

import json
import os

from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials

BASE = os.environ["LLMTAP_URL"]
# No retries: the scripted 429 must reach the script once.
HTTP = types.HttpOptions(base_url=BASE, retry_options=types.HttpRetryOptions(attempts=1))

client = genai.Client(api_key="AIza-test-not-a-real-key", http_options=HTTP)
out = {}


def usage(u):
    return {
        "prompt": u.prompt_token_count,
        "candidates": u.candidates_token_count,
        "thoughts": u.thoughts_token_count,
    }


r = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
out["plain"] = {"id": r.response_id, "text": r.text, "model": r.model_version, **usage(r.usage_metadata)}

chunks = list(
    client.models.generate_content_stream(model="gemini-2.5-flash", contents="Stream a greeting")
)
out["stream"] = {
    "id": chunks[-1].response_id,
    "chunks": len(chunks),
    "text": "".join(c.text or "" for c in chunks),
    **usage(chunks[-1].usage_metadata),
}

weather = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]
    ),
)
config = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[weather])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
history = [types.Content(role="user", parts=[types.Part(text="Weather in Lyon?")])]
first = client.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
calls = first.function_calls or []
history.append(first.candidates[0].content)
history.append(
    types.Content(
        role="user",
        parts=[
            types.Part.from_function_response(name=c.name, response={"temperature_c": 18})
            for c in calls
        ],
    )
)
final = client.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
out["tools"] = {
    "first_id": first.response_id,
    "calls": [{"name": c.name, "id": c.id, "args": c.args} for c in calls],
    "final_id": final.response_id,
    "final": final.text,
}

emb = client.models.embed_content(model="gemini-embedding-001", contents=["alpha", "beta"])
out["embed"] = {"count": len(emb.embeddings), "dims": len(emb.embeddings[0].values)}

out["count_tokens"] = client.models.count_tokens(
    model="gemini-2.5-flash", contents="How many tokens?"
).total_tokens

try:
    client.models.generate_content(model="mock-error-429", contents="Hi")
    out["error"] = None
except errors.APIError as e:
    out["error"] = {"code": e.code, "status": e.status}

vertex = genai.Client(
    vertexai=True,
    project="llmtap-test",
    location="us-central1",
    credentials=Credentials(token="ya29.fake-vertex-token"),
    http_options=HTTP,
)
v = vertex.models.generate_content(model="gemini-2.5-pro", contents="Hello from Vertex")
out["vertex"] = {"id": v.response_id, "text": v.text}

print(json.dumps(out))
