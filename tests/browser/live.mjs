// Drives a headless Chromium over the DevTools protocol for tests/ui.rs: opens the live view,
// says `ready` once its event stream is connected, then waits (bounded) until the table shows
// `want` rows that arrived live, without a reload, and prints what the page shows as JSON.
//
// Usage: node --experimental-websocket tests/browser/live.mjs DEVTOOLS_PORT URL WANT_ROWS
const [port, url, want] = process.argv.slice(2);
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = targets.find((t) => t.type === 'page');
const ws = new WebSocket(page.webSocketDebuggerUrl);
const pending = new Map();
let next = 0;
ws.onmessage = (m) => {
  const d = JSON.parse(m.data);
  if (pending.has(d.id)) {
    pending.get(d.id)(d);
    pending.delete(d.id);
  }
};
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = reject;
});
const send = (method, params) => new Promise((resolve) => {
  const id = ++next;
  pending.set(id, resolve);
  ws.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expression) =>
  (await send('Runtime.evaluate', { expression, returnByValue: true })).result.result.value;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, expression, seconds) {
  for (let i = 0; i < seconds * 10; i++) {
    if (await evaluate(expression)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

await send('Page.navigate', { url });
await until('the event stream', "document.getElementById('conn')?.dataset.state === 'live'", 20);
// Marks the document: a reload would lose the mark.
await evaluate('window.__notReloaded = true');
console.log('ready');
await until(`${want} rows`, `document.querySelectorAll('tr.call-row').length >= ${want}`, 30);
await sleep(1500); // the summary refresh after the last event
const state = await evaluate(`JSON.stringify({
  notReloaded: window.__notReloaded === true,
  conn: document.getElementById('conn').textContent,
  rows: [...document.querySelectorAll('tr.call-row')].map((tr) => ({
    model: tr.dataset.model, status: tr.dataset.status, error: tr.dataset.error })),
  chartRects: [...document.querySelectorAll('.panel')].map((p) => p.querySelectorAll('rect').length),
})`);
console.log(state);
ws.close();
process.exit(0);
