"""boto3's bedrock-runtime client through llmtap (tests/bedrock.rs): converse, converse_stream,
a tool-use loop, invoke_model_with_response_stream with an Anthropic body, invoke_model with a
Llama body, a throttling error,
a mid-stream exception, and a model given as an inference-profile ARN. Prints what the SDK saw
as JSON.

The client is pointed at llmtap with `endpoint_url` (HTTPS: botocore refuses a bearer token over
plain http) and trusts the test's CA through `verify`. The key comes from
`AWS_BEARER_TOKEN_BEDROCK`, the SDKs' documented variable for Bedrock API keys; no AWS
credentials are set, and every request's `Authorization` header is recorded so the test can
check that the installed boto3 really sent `Bearer`."""

import json
import os

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

# No retries: the scripted throttling must reach the script once.
config = Config(region_name="us-east-1", retries={"max_attempts": 1, "mode": "standard"})
client = boto3.client(
    "bedrock-runtime",
    endpoint_url=os.environ["LLMTAP_URL"],
    verify=os.environ["LLMTAP_CA"],
    config=config,
)
auth = []
client.meta.events.register(
    "before-send.bedrock-runtime.*",
    lambda request, **_: auth.append(request.headers.get("Authorization", b"")),
)
out = {"boto3": boto3.__version__, "botocore": botocore.__version__}
NOVA = "us.amazon.nova-micro-v1:0"


def user(text):
    return {"role": "user", "content": [{"text": text}]}


def request_id(r):
    return r["ResponseMetadata"]["RequestId"]


r = client.converse(
    modelId=NOVA,
    messages=[user("Say hello")],
    system=[{"text": "Be brief."}],
    inferenceConfig={"maxTokens": 64, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]},
)
out["plain"] = {
    "id": request_id(r),
    "text": r["output"]["message"]["content"][0]["text"],
    "stop": r["stopReason"],
    "usage": r["usage"],
}

r = client.converse_stream(modelId=NOVA, messages=[user("Stream a greeting")])
events, text, meta = 0, "", {}
for e in r["stream"]:
    events += 1
    if "contentBlockDelta" in e:
        text += e["contentBlockDelta"]["delta"].get("text", "")
    if "metadata" in e:
        meta = e["metadata"]
out["stream"] = {"id": request_id(r), "events": events, "text": text, "usage": meta["usage"]}

tools = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather for a city",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        }
    ]
}
history = [user("Weather in Lyon?")]
first = client.converse(modelId=NOVA, messages=history, toolConfig=tools)
message = first["output"]["message"]
calls = [b["toolUse"] for b in message["content"] if "toolUse" in b]
history.append(message)
history.append(
    {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": c["toolUseId"], "content": [{"json": {"temperature_c": 18}}]}}
            for c in calls
        ],
    }
)
final = client.converse(modelId=NOVA, messages=history, toolConfig=tools)
out["tools"] = {
    "first_id": request_id(first),
    "stop": first["stopReason"],
    "calls": [{"id": c["toolUseId"], "name": c["name"], "input": c["input"]} for c in calls],
    "final_id": request_id(final),
    "final": final["output"]["message"]["content"][0]["text"],
}

r = client.invoke_model_with_response_stream(
    modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
    body=json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "Hi from InvokeModel"}],
        }
    ),
)
chunks, text, metrics, msg_id = 0, "", None, None
for e in r["body"]:
    chunks += 1
    event = json.loads(e["chunk"]["bytes"])
    if event["type"] == "message_start":
        msg_id = event["message"]["id"]
    if event["type"] == "content_block_delta":
        text += event["delta"].get("text", "")
    metrics = event.get("amazon-bedrock-invocationMetrics", metrics)
out["invoke"] = {"id": msg_id, "chunks": chunks, "text": text, "metrics": metrics}

r = client.invoke_model(
    modelId="meta.llama3-2-1b-instruct-v1:0",
    body=json.dumps({"prompt": "Hello, Llama", "max_gen_len": 32, "temperature": 0.5}),
)
llama = json.loads(r["body"].read())
out["llama"] = {"id": request_id(r), **llama}

try:
    client.converse(modelId="mock-error-429", messages=[user("Hi")])
    out["throttled"] = None
except ClientError as e:
    out["throttled"] = {
        "code": e.response["Error"]["Code"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "id": e.response["ResponseMetadata"].get("RequestId"),
    }

try:
    r = client.converse_stream(modelId="mock-midstream-error", messages=[user("Hi")])
    for _ in r["stream"]:
        pass
    out["midstream"] = None
except EventStreamError as e:
    out["midstream"] = {"code": e.response["Error"]["Code"], "id": request_id(r)}

arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0"
r = client.converse(modelId=arn, messages=[user("Hello by ARN")])
out["arn"] = {"id": request_id(r), "model": arn}

out["auth"] = sorted({a.decode() if isinstance(a, bytes) else a for a in auth})
print(json.dumps(out))
