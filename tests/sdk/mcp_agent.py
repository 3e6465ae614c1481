"""An agent loop: the official openai SDK asks the (scripted) model, which asks for a tool; the
app runs the tool over MCP (the official MCP SDK's client, through llmtap's /mcp/NAME), then
"thinks" a while and sends the tool's result back to the model. Every call carries the app's
trace context (APP_TRACEPARENT) when set, as an instrumented app's would; without it, none. Prints ids and texts as JSON.

Env: OPENAI_BASE_URL / OPENAI_API_KEY (llmtap), MCP_URL, APP_TRACEPARENT, AFTER_TOOL_SLEEP."""
import asyncio
import json
import os
import time

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from openai import OpenAI

headers = {"traceparent": os.environ["APP_TRACEPARENT"]} if os.environ.get("APP_TRACEPARENT") else {}
openai = OpenAI(max_retries=0, timeout=30)
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]


async def run_tool(name, arguments):
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(os.environ["MCP_URL"], http_client=http)
        async with Client(transport) as client:
            r = await client.call_tool(name, arguments)
            return "".join(getattr(c, "text", "") for c in r.content)


first = openai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools,
                                       extra_headers=headers)
call = first.choices[0].message.tool_calls[0]
result = asyncio.run(run_tool(call.function.name, json.loads(call.function.arguments)))
time.sleep(float(os.environ.get("AFTER_TOOL_SLEEP", "0.5")))  # the app's own work after the tool
messages.append({"role": "assistant", "content": None, "tool_calls": [
    {"id": call.id, "type": "function",
     "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
final = openai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools,
                                       extra_headers=headers)
print(json.dumps({"call_id": call.id, "arguments": call.function.arguments, "result": result,
                  "final": final.choices[0].message.content}))
