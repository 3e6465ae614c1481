// Drives a headless Chromium over the DevTools protocol for tests/ui.rs: opens the live view,
// says `ready` once its event stream is connected, then waits (bounded) until the table shows
// `want` rows that arrived live, without a reload, and prints what the page shows as JSON.
//
// Usage: node --experimental-websocket tests/browser/live.mjs DEVTOOLS_PORT URL WANT_ROWS
import { connect } from './cdp.mjs';

const [port, url, want] = process.argv.slice(2);
const { send, evaluate, until, sleep, close } = await connect(port);

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
close();
process.exit(0);
