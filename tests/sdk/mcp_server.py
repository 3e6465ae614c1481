"""An MCP server on the official Python SDK (`MCPServer`, formerly FastMCP) for llmtap's MCP
tests: tools that answer fast, slowly, with `isError: true`, with a JSON-RPC error, and with a
large result; a resource and a prompt. Streamable HTTP on 127.0.0.1.

Usage: mcp_server.py PORT [json]   (`json`: POSTs answered as application/json, not SSE)
       mcp_server.py stdio         (the stdio transport, for `llmtap mcp-stdio`)

The SDK's own OpenTelemetry middleware makes a SERVER span per message, parented on the trace
context found in `params._meta`. With MCP_SERVER_SPANS=FILE those spans are written to FILE,
one JSON object a line, so a test can check they joined llmtap's trace."""
import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError

spans_file = os.environ.get("MCP_SERVER_SPANS")
if spans_file:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class FileExporter(SpanExporter):
        def export(self, spans):
            with open(spans_file, "a") as f:
                for s in spans:
                    f.write(json.dumps({
                        "name": s.name,
                        "trace_id": format(s.context.trace_id, "032x"),
                        "span_id": format(s.context.span_id, "016x"),
                        "parent_span_id": format(s.parent.span_id, "016x") if s.parent else None,
                        "attributes": {k: str(v) for k, v in (s.attributes or {}).items()},
                    }) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)

server = MCPServer("llmtap-test")


@server.tool(description="Weather for a city")
def get_weather(city: str) -> str:
    return f"Sunny in {city}, 21 C"


@server.tool()
def slow_sum(a: int, b: int) -> int:
    time.sleep(0.4)
    return a + b


@server.tool()
def failing(reason: str) -> str:
    raise ToolError(f"the tool failed: {reason}")


@server.tool()
def invalid(value: int) -> str:
    raise MCPError(-32602, f"value {value} is out of range")


@server.tool()
def big_result(size: int) -> str:
    return "x" * size


@server.resource("config://app")
def app_config() -> str:
    return "theme=dark"


@server.prompt()
def greet(name: str) -> str:
    return f"Say hello to {name}."


@server.tool()
def exit_now(code: int) -> str:
    # Dies mid-call, as a crashing server does: no answer ever comes.
    os._exit(code)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run(transport="stdio")
        sys.exit(0)
    port = int(sys.argv[1])
    json_response = len(sys.argv) > 2 and sys.argv[2] == "json"
    server.run(transport="streamable-http", host="127.0.0.1", port=port, json_response=json_response)
