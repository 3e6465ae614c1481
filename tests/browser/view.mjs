// Drives a headless Chromium over the DevTools protocol for tests/ui.rs and prints, as one
// JSON line, facts about the live view's layout that the test asserts on (text, states and
// bounding boxes in CSS pixels). Every wait is a bounded poll.
//
// Usage: node --experimental-websocket tests/browser/view.mjs DEVTOOLS_PORT BASE_URL SCENARIO ARGS
//   loading               the line under the table while /ui/api/calls is held back (the
//                         DevTools Fetch domain pauses it), then after it is let through
//   axis WIDTHS           the time-to-first-chunk axis labels at each window width (a comma
//                         list), then after resizing the last window to the first width
//   detail CALL WIDTHS    the page after clicking call CALL's row, at each window width
// With SHOTS_DIR set, a screenshot of each state is written there (to look at, not asserted).
import { writeFileSync } from 'node:fs';
import { connect } from './cdp.mjs';

const [port, base, scenario, ...args] = process.argv.slice(2);
const cdp = await connect(port);
const { send, on, evaluate, until, sleep } = cdp;

// Box of an element, in the page's functions below.
const RECT = `const rect = (e) => { const r = e.getBoundingClientRect();
  return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height }; };`;

async function shot(name) {
  const dir = process.env.SHOTS_DIR;
  if (!dir) return;
  const { data } = await send('Page.captureScreenshot', { format: 'png' });
  writeFileSync(`${dir}/${name}.png`, Buffer.from(data, 'base64'));
}

async function viewport(width) {
  await send('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: false });
}

// Navigates and waits until the new document (not the old one) satisfies `ready`.
async function open(path, ready, what) {
  await evaluate('window.__old = true');
  await send('Page.navigate', { url: base + path });
  await until(what, `!window.__old && document.readyState === 'complete' && (${ready})`, 30);
}

async function loading() {
  const paused = [];
  let release = false;
  on('Fetch.requestPaused', (p) => {
    if (release) send('Fetch.continueRequest', { requestId: p.requestId });
    else paused.push(p);
  });
  await send('Fetch.enable', { patterns: [{ urlPattern: '*/ui/api/calls*', requestStage: 'Request' }] });
  await send('Page.navigate', { url: base + '/ui?live=0' });
  for (let i = 0; i < 300 && paused.length === 0; i++) await sleep(100);
  if (paused.length === 0) throw new Error('the page never asked for /ui/api/calls');
  const facts = `(() => { ${RECT} const p = document.getElementById('empty');
    return { text: p.textContent, state: p.dataset.state, hidden: p.hidden, box: rect(p),
      rows: document.querySelectorAll('tr.call-row').length,
      saysNoCalls: document.body.innerText.includes('No calls yet') }; })()`;
  const before = await evaluate(facts);
  await shot('loading-before');
  release = true;
  for (const p of paused) await send('Fetch.continueRequest', { requestId: p.requestId });
  await until('the first list of calls', "document.getElementById('empty').dataset.state !== 'loading'", 30);
  const after = await evaluate(facts);
  await shot('loading-after');
  await send('Fetch.disable');
  return { held: paused[0].request.url, before, after };
}

const AXIS = `(() => { ${RECT} const svg = document.querySelector('#panel-ttfc svg.chart');
  return { width: innerWidth, svg: rect(svg), viewBoxWidth: svg.viewBox.baseVal.width,
    ticks: [...svg.querySelectorAll('text.axis')].map((t) => ({
      // The label's own text, without its <title> (the exact bound, shown on hover).
      text: [...t.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.nodeValue).join(''),
      box: rect(t) })) }; })()`;

async function axis(widths) {
  const out = [];
  for (const w of widths) {
    await viewport(w);
    await open('/ui?live=0', "document.querySelectorAll('#panel-ttfc svg.chart text.axis').length > 0", 'the time-to-first-chunk axis');
    out.push(await evaluate(AXIS));
    await shot(`axis-${w}`);
  }
  // Resized without a reload: the chart is redrawn at its new width.
  await evaluate("document.querySelectorAll('#panel-ttfc text.axis').forEach((t) => t.classList.add('stale'))");
  await viewport(widths[0]);
  await until('the chart redrawn after a resize', `(() => { const svg = document.querySelector('#panel-ttfc svg.chart');
    return svg.querySelectorAll('text.axis').length > 0 && !svg.querySelector('text.stale') &&
      svg.viewBox.baseVal.width === Math.max(220, Math.round(svg.getBoundingClientRect().width)); })()`, 20);
  const resized = await evaluate(AXIS);
  await shot(`axis-resized-${widths[0]}`);
  return { widths: out, resized };
}

async function detail(call, widths) {
  const out = [];
  const row = `document.querySelector('tr.call-row[data-id="${Number(call)}"]')`;
  for (const w of widths) {
    await viewport(w);
    await open('/ui?live=0', `${row} !== null`, `the row of call ${call}`);
    await evaluate(`${row}.click()`);
    await until('the call detail', `(() => { const d = document.getElementById('detail');
      return !d.hidden && d.dataset.id === '${Number(call)}' && d.querySelector('svg.timeline') !== null; })()`, 30);
    out.push(await evaluate(`(() => { ${RECT}
      const scroll = document.querySelector('.calls .scroll');
      return { width: innerWidth, height: innerHeight, scrollX, scrollY,
        docScrollWidth: document.documentElement.scrollWidth,
        scroll: { box: rect(scroll), clientWidth: scroll.clientWidth, scrollWidth: scroll.scrollWidth, scrollLeft: scroll.scrollLeft },
        calls: rect(document.querySelector('section.calls')),
        detail: rect(document.getElementById('detail')),
        headers: [...document.querySelectorAll('#calls thead th')].map((th) => ({ text: th.textContent, box: rect(th) })),
        row: [...${row}.cells].map((td) => rect(td)) }; })()`));
    await shot(`detail-${w}`);
  }
  return out;
}

const widths = (s) => s.split(',').map(Number);
let result;
if (scenario === 'loading') result = await loading();
else if (scenario === 'axis') result = await axis(widths(args[0]));
else if (scenario === 'detail') result = await detail(args[0], widths(args[1]));
else throw new Error(`unknown scenario ${scenario}`);
console.log(JSON.stringify(result));
cdp.close();
process.exit(0);
