// The official MCP TypeScript SDK's client (@modelcontextprotocol/sdk, pinned in
// package.json beside this file) over Streamable HTTP, pointed at llmtap's /mcp/NAME: one
// flow of calls against tests/sdk/mcp_server.py, printed as JSON for tests/mcp.rs.
//
// Env: MCP_URL (llmtap's /mcp/NAME), MCP_TRACEPARENT (sent as the HTTP traceparent header).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const headers = process.env.MCP_TRACEPARENT ? { traceparent: process.env.MCP_TRACEPARENT } : {};
const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), { requestInit: { headers } });
const client = new Client({ name: 'llmtap-test-node', version: '0.1.0' });
await client.connect(transport);
const text = (r) => r.content.map((c) => c.text ?? '').join('');
const out = {
  protocol_version: transport.protocolVersion ?? null,
  session: transport.sessionId ?? null,
};
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.weather = text(await client.callTool({ name: 'get_weather', arguments: { city: 'Paris' } }));
const failing = await client.callTool({ name: 'failing', arguments: { reason: 'disk full' } });
out.failing = { is_error: failing.isError === true, text: text(failing) };
try {
  await client.callTool({ name: 'invalid', arguments: { value: 99 } });
  out.invalid = null;
} catch (e) {
  out.invalid = { code: e.code, message: e.message };
}
out.resource = (await client.readResource({ uri: 'config://app' })).contents[0].text;
out.prompt = (await client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } })).messages[0].content.text;
// Ends the session with DELETE (2025-11-25), as a well-behaved client does.
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
