"""The official MCP Python SDK's client over Streamable HTTP, pointed at llmtap's /mcp/NAME.
Runs every kind of call the test server offers and prints what came back as JSON.

Env: MCP_URL (llmtap's /mcp/NAME) or MCP_STDIO (a JSON list: the command and arguments of a
stdio server, e.g. `llmtap mcp-stdio -- python mcp_server.py stdio`), MCP_MODE (`legacy`: the 2025-11-25 initialize handshake and
a session; default `auto`: the current revision's server/discover), MCP_TRACEPARENT (sent as
the HTTP traceparent header), MCP_HEADERS (JSON object of extra headers)."""
import asyncio
import json
import os

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main():
    headers = json.loads(os.environ.get("MCP_HEADERS", "{}"))
    if os.environ.get("MCP_TRACEPARENT"):
        headers["traceparent"] = os.environ["MCP_TRACEPARENT"]
    out = {}
    async with create_mcp_http_client(headers=headers) as http:
        if os.environ.get("MCP_STDIO"):
            command = json.loads(os.environ["MCP_STDIO"])
            transport = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        else:
            transport = streamable_http_client(os.environ["MCP_URL"], http_client=http)
        async with Client(transport, mode=os.environ.get("MCP_MODE", "auto")) as client:
            out["protocol_version"] = client.protocol_version
            out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
            r = await client.call_tool("get_weather", {"city": "Paris"})
            out["weather"] = text_of(r)
            r = await client.call_tool("slow_sum", {"a": 2, "b": 3})
            out["slow_sum"] = text_of(r)
            r = await client.call_tool("failing", {"reason": "disk full"})
            out["failing"] = {"is_error": r.is_error, "text": text_of(r)}
            try:
                await client.call_tool("invalid", {"value": 99})
                out["invalid"] = None
            except MCPError as e:
                out["invalid"] = {"code": e.code, "message": e.message}
            r = await client.call_tool("big_result", {"size": 200000})
            out["big_result_len"] = len(text_of(r))
            r = await client.read_resource("config://app")
            out["resource"] = r.contents[0].text
            r = await client.get_prompt("greet", {"name": "Ada"})
            out["prompt"] = r.messages[0].content.text
            if os.environ.get("MCP_CRASH"):
                # The server dies mid-call: the client sees the connection close.
                try:
                    await asyncio.wait_for(client.call_tool("exit_now", {"code": 3}), 20)
                    out["crash"] = "answered"
                except Exception as e:  # noqa: BLE001 - any failure is the expected outcome
                    out["crash"] = type(e).__name__
    print(json.dumps(out))


asyncio.run(main())
