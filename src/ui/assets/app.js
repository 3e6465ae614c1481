// llmtap live view: reads /ui/api/*, draws the table, one call's timeline and five SVG charts.
// No framework and no third-party code. Data only ever reaches the page as text nodes and
// attribute values, never as HTML.
'use strict';

const NS = 'http://www.w3.org/2000/svg';
const API = '/ui/api';
// Rows kept on the page; the ring may hold more (its JSON has them all).
const MAX_ROWS = 500;

const state = {
  calls: [], // newest first, as the server sent them (filtered)
  mcp: [], // MCP requests, newest first (filtered by tenant and status only)
  mcpTimer: null,
  capacity: 1000,
  selected: null,
  filters: {},
  source: null,
  summaryTimer: null,
  detailTimer: null,
  tableTimer: null,
  fresh: new Set(),
  // False until the first list of calls arrived: until then the table says it is loading,
  // not that there are no calls.
  loaded: false,
  // The last summary drawn, redrawn at the new width when the window is resized.
  summary: null,
  resizeTimer: null,
};

// ---- small DOM helpers ---------------------------------------------------------------

function h(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function s(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

// Text that may break after `-`, `_`, `.` and `/` (model names, error codes, hosts), so a
// narrow table wraps "claude-haiku-4-5" at its hyphens instead of overflowing. Text nodes
// and <wbr> only.
function breakable(text) {
  const frag = document.createDocumentFragment();
  for (const part of String(text).split(/(?<=[-_./])/)) {
    if (frag.firstChild) frag.append(document.createElement('wbr'));
    frag.append(document.createTextNode(part));
  }
  return frag;
}

function clear(e) {
  while (e.firstChild) e.removeChild(e.firstChild);
}

// ---- formatting ----------------------------------------------------------------------

function fmtMs(v) {
  if (v === null || v === undefined) return '';
  if (v < 1) return v.toFixed(2) + ' ms';
  if (v < 1000) return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ms';
  return (v / 1000).toFixed(v < 10000 ? 2 : 1) + ' s';
}

// An axis tick: short, with a space before the unit ("640 ms", "1.3 s", "82 s").
function fmtTick(ms) {
  if (ms < 1000) return Math.round(ms) + ' ms';
  const sec = ms / 1000;
  return (sec < 10 ? sec.toFixed(1).replace(/\.0$/, '') : String(Math.round(sec))) + ' s';
}

function fmtNum(v) {
  if (v === null || v === undefined) return '';
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return String(v);
}

function fmtUsd(v) {
  if (v === null || v === undefined) return '';
  if (v === 0) return '$0';
  if (v >= 1) return '$' + v.toFixed(2);
  return '$' + v.toPrecision(2);
}

function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n, w) => String(n).padStart(w || 2, '0');
  return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
}

const API_NAMES = {
  openai_chat: 'OpenAI chat',
  openai_responses: 'OpenAI responses',
  anthropic_messages: 'Anthropic',
  ollama_native: 'Ollama',
};

function statusText(c) {
  const code = c.status === null || c.status === undefined ? '' : String(c.status);
  return c.error ? (code ? code + ' ' : '') + c.error : code;
}

// ---- data ----------------------------------------------------------------------------

function query(extra) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(Object.assign({}, state.filters, extra || {}))) {
    if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  }
  const t = q.toString();
  return t ? '?' + t : '';
}

async function getJson(path) {
  const r = await fetch(API + path, { headers: { accept: 'application/json' } });
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

async function loadCalls() {
  const data = await getJson('/calls' + query({ minutes: null, limit: MAX_ROWS }));
  state.capacity = data.capacity;
  state.calls = data.calls;
  state.loaded = true;
  document.getElementById('capacity').textContent = String(data.capacity);
  document.getElementById('capture').textContent = data.config.content_captured ? 'on' : 'off';
  fillFacets(data.facets);
  renderTable();
}

async function loadSummary() {
  try {
    const sum = await getJson('/summary' + query());
    state.summary = sum;
    renderCharts(sum);
  } catch (e) {
    setConn('down', 'summary: ' + e.message);
  }
}

// The MCP list takes the filters that apply to MCP requests (tenant, status).
function mcpQuery() {
  return query({ minutes: null, limit: MAX_ROWS, model: null, upstream: null, conversation: null });
}

async function loadMcp() {
  const data = await getJson('/mcp' + mcpQuery());
  state.mcp = data.mcp;
  renderMcp();
}

function scheduleMcp() {
  if (state.mcpTimer) return;
  state.mcpTimer = setTimeout(() => {
    state.mcpTimer = null;
    renderMcp();
  }, 250);
}

function scheduleSummary() {
  if (state.summaryTimer) return;
  state.summaryTimer = setTimeout(() => {
    state.summaryTimer = null;
    loadSummary();
  }, 700);
}

function callsFailed(e) {
  setConn('down', e.message);
  showEmpty(e.message);
}

function setConn(st, text) {
  const c = document.getElementById('conn');
  c.dataset.state = st;
  c.textContent = text;
}

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource(API + '/events' + query({ minutes: null }));
  state.source = src;
  src.addEventListener('open', () => {
    setConn('live', 'live');
    // Whatever finished while disconnected.
    loadCalls().catch((e) => showEmpty(e.message));
    loadMcp().catch(() => {});
    scheduleSummary();
  });
  src.addEventListener('error', () => setConn('down', 'reconnecting'));
  src.addEventListener('lagged', () => {
    loadCalls().catch(() => {});
    loadMcp().catch(() => {});
  });
  src.addEventListener('mcp', (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (_) { return; }
    if (state.mcp.some((x) => x.id === m.id)) return;
    state.mcp.unshift(m);
    if (state.mcp.length > MAX_ROWS) state.mcp.length = MAX_ROWS;
    scheduleMcp();
    // An execution of a tool the call on screen asked for: redraw its tool spans.
    if (m.joined && m.joined.asked_by === state.selected) scheduleDetail();
  });
  src.addEventListener('call', (ev) => {
    let c;
    try { c = JSON.parse(ev.data); } catch (_) { return; }
    if (state.calls.some((x) => x.id === c.id)) return;
    state.calls.unshift(c);
    if (state.calls.length > MAX_ROWS) state.calls.length = MAX_ROWS;
    addFacet('model', c.model);
    addFacet('upstream', c.upstream);
    addFacet('tenant', c.tenant);
    addFacet('conversation', c.conversation);
    addFacet('status', c.error);
    // Busy proxies send many events a second: redraw the table at most four times a second.
    state.fresh.add(c.id);
    if (!state.tableTimer) {
      state.tableTimer = setTimeout(() => {
        state.tableTimer = null;
        renderTable(state.fresh);
        state.fresh = new Set();
      }, 250);
    }
    scheduleSummary();
    // A follow-up call closes the tool spans of the call on screen: redraw it.
    if (state.selected !== null && c.tool_results > 0) scheduleDetail();
  });
}

// ---- filters -------------------------------------------------------------------------

function fillFacets(f) {
  for (const name of ['model', 'upstream', 'tenant', 'conversation']) {
    for (const v of f[name] || []) addFacet(name, v);
  }
  for (const v of f.status || []) addFacet('status', v);
}

function addFacet(name, value) {
  if (value === null || value === undefined || value === '') return;
  const sel = document.querySelector('#filters select[name="' + name + '"]');
  if (!sel) return;
  for (const o of sel.options) if (o.value === String(value)) return;
  sel.append(h('option', { value: String(value), text: String(value) }));
}

// Shows only the calls of one conversation (or all, with ''), as if picked in its select.
function filterConversation(id) {
  addFacet('conversation', id);
  const sel = document.querySelector('#filters select[name="conversation"]');
  sel.value = id;
  sel.dispatchEvent(new Event('change', { bubbles: true }));
}

function readFilters() {
  const form = document.getElementById('filters');
  const f = {};
  for (const sel of form.querySelectorAll('select')) f[sel.name] = sel.value;
  state.filters = f;
}

// ---- the table -----------------------------------------------------------------------

function renderTable(fresh) {
  const tbody = document.querySelector('#calls tbody');
  clear(tbody);
  const frag = document.createDocumentFragment();
  for (const c of state.calls) frag.append(callRow(c, !!fresh && fresh.has(c.id)));
  tbody.append(frag);
  showEmpty();
  document.getElementById('count').textContent =
    state.calls.length + ' shown, newest first; llmtap keeps the last ' + state.capacity;
}

// The line under the table: loading (before the first list arrived), the reason it could
// not be loaded, or, loaded and empty, "No calls yet" (or none matching the filters);
// hidden when there are rows.
function showEmpty(error) {
  const p = document.getElementById('empty');
  const filtered = ['model', 'upstream', 'status', 'tenant', 'conversation'].some((k) => state.filters[k]);
  if (error && !state.loaded) {
    p.dataset.state = 'error';
    p.textContent = 'Could not load the recent calls: ' + error;
  } else if (state.loaded) {
    p.dataset.state = 'empty';
    p.textContent = filtered
      ? 'No calls match these filters.'
      : 'No calls yet. Send a request through llmtap and it shows up here.';
  }
  p.hidden = state.calls.length > 0;
}

function callRow(c, fresh) {
  const cls = ['call-row'];
  if (fresh) cls.push('fresh');
  if (c.id === state.selected) cls.push('selected');
  const model = c.response_model && c.response_model !== c.model
    ? h('span', { title: 'requested ' + c.model + ', answered by ' + c.response_model },
      breakable(c.model || ''), h('span', { class: 'muted responded' }, '→ ', breakable(c.response_model)))
    : breakable(c.model || '');
  const est = c.tokens_estimated ? '~' : '';
  const tokens = c.input_tokens === null && c.output_tokens === null
    ? ''
    : est + fmtNum(c.input_tokens) + ' / ' + est + fmtNum(c.output_tokens);
  const tools = [];
  if (c.tool_calls.length) tools.push(c.tool_calls.join(', '));
  if (c.tool_results) tools.push('↩ ' + c.tool_results + ' result' + (c.tool_results > 1 ? 's' : ''));
  let trace = '';
  if (c.trace_id) {
    trace = c.trace_url
      ? h('a', { href: c.trace_url, target: '_blank', rel: 'noopener noreferrer', title: c.trace_id, text: c.trace_id.slice(0, 8) })
      : h('span', { class: 'muted', title: c.trace_id + (c.sampled ? '' : ' (not sampled)'), text: c.trace_id.slice(0, 8) });
  }
  return h('tr', {
    class: cls.join(' '),
    dataset: { id: String(c.id), model: c.model || '', status: String(c.status || ''), error: c.error || '' },
    onclick: () => select(c.id),
  },
  h('td', { title: fmtTime(c.start_ms) + ' to ' + fmtTime(c.end_ms), text: fmtTime(c.end_ms).slice(0, 8) }),
  h('td', { class: 'wrap', title: c.path, text: API_NAMES[c.api] || c.api || c.operation || '' }),
  h('td', { class: 'wrap' }, model),
  h('td', { class: 'wrap' }, breakable(c.upstream || ''), c.tenant ? h('span', { class: 'muted responded' }, 'tenant ', breakable(c.tenant)) : null),
  h('td', { class: c.error ? 'status status-err' : 'status' }, breakable(statusText(c))),
  h('td', { class: 'num', text: fmtMs(c.duration_ms) }),
  h('td', { class: 'num', text: fmtMs(c.ttfc_ms) }),
  h('td', { class: 'num', text: c.chunks === null ? '' : String(c.chunks) }),
  h('td', { class: 'num' + (est ? ' est' : ''), title: est ? 'estimated: the upstream reported no usage' : null, text: tokens }),
  h('td', { class: 'num', text: fmtUsd(c.cost_usd) }),
  h('td', { class: 'tools', text: tools.join(' ') }),
  h('td', {}, trace));
}

// ---- MCP requests --------------------------------------------------------------------

function renderMcp() {
  const tbody = document.querySelector('#mcp tbody');
  clear(tbody);
  const frag = document.createDocumentFragment();
  for (const m of state.mcp) frag.append(mcpRow(m));
  tbody.append(frag);
  document.getElementById('mcp-empty').hidden = state.mcp.length > 0;
  const joined = state.mcp.filter((m) => m.joined).length;
  document.getElementById('mcp-count').textContent = state.mcp.length
    ? state.mcp.length + ' shown, ' + joined + ' joined to a model call'
    : '';
}

function mcpRow(m) {
  const j = m.joined;
  const cls = ['mcp-row'];
  if (j) cls.push('joined');
  if (j && j.asked_by !== null && j.asked_by === state.selected) cls.push('for-selected');
  let call;
  if (j && j.asked_by !== null) {
    call = h('a', { href: '#call=' + j.asked_by, title: 'tool call ' + j.call_id, onclick: (e) => { e.preventDefault(); select(j.asked_by); } },
      'call ' + j.asked_by);
  } else if (j) {
    call = h('span', { class: 'muted', title: 'the model call left the ring', text: j.call_id });
  } else {
    call = h('span', { class: 'muted', text: 'not joined' });
  }
  let trace = '';
  if (m.trace_id) {
    trace = m.trace_url
      ? h('a', { href: m.trace_url, target: '_blank', rel: 'noopener noreferrer', title: m.trace_id, text: m.trace_id.slice(0, 8) })
      : h('span', { class: 'muted', title: m.trace_id + (m.sampled ? '' : ' (not sampled)'), text: m.trace_id.slice(0, 8) });
  }
  const status = m.error ? m.error : (m.status === null || m.status === undefined ? '' : String(m.status));
  return h('tr', {
    class: cls.join(' '),
    dataset: { id: String(m.id), method: m.method, server: m.server, joined: j ? j.call_id : '', askedBy: j && j.asked_by !== null ? String(j.asked_by) : '' },
  },
  h('td', { title: fmtTime(m.start_ms) + ' to ' + fmtTime(m.end_ms), text: fmtTime(m.end_ms).slice(0, 8) }),
  h('td', { class: 'wrap' }, breakable(m.server), m.transport === 'pipe' ? h('span', { class: 'muted responded', text: 'stdio' }) : null),
  h('td', { class: 'wrap' }, breakable(m.method + (m.target ? ' ' + m.target : ''))),
  h('td', { class: m.error ? 'status status-err' : 'status', title: m.error_message || null }, breakable(status)),
  h('td', { class: 'num', text: fmtMs(m.duration_ms) }),
  h('td', { class: 'joined' }, call),
  h('td', {}, trace));
}

// ---- one call ------------------------------------------------------------------------

function select(id) {
  state.selected = id;
  if (location.hash !== '#call=' + id) history.replaceState(null, '', '#call=' + id);
  for (const tr of document.querySelectorAll('tr.call-row')) {
    tr.classList.toggle('selected', tr.dataset.id === String(id));
  }
  for (const tr of document.querySelectorAll('tr.mcp-row')) {
    tr.classList.toggle('for-selected', tr.dataset.askedBy === String(id));
  }
  loadDetail();
}

function scheduleDetail() {
  if (state.detailTimer) return;
  state.detailTimer = setTimeout(() => {
    state.detailTimer = null;
    loadDetail();
  }, 300);
}

async function loadDetail() {
  const id = state.selected;
  if (id === null) return;
  const aside = document.getElementById('detail');
  try {
    const d = await getJson('/calls/' + encodeURIComponent(id));
    if (state.selected === id) renderDetail(d);
  } catch (e) {
    clear(aside);
    aside.append(h('p', { class: 'muted', text: 'Call ' + id + ' is no longer kept.' }));
  }
  aside.hidden = false;
  aside.parentElement.classList.add('with-detail');
}

function closeDetail() {
  state.selected = null;
  history.replaceState(null, '', location.pathname + location.search);
  const aside = document.getElementById('detail');
  aside.hidden = true;
  aside.parentElement.classList.remove('with-detail');
  for (const tr of document.querySelectorAll('tr.call-row.selected')) tr.classList.remove('selected');
}

function renderDetail(d) {
  const aside = document.getElementById('detail');
  clear(aside);
  aside.dataset.id = String(d.id);
  aside.append(
    h('button', { class: 'close', type: 'button', onclick: closeDetail, text: 'close' }),
    h('h2', {}, 'Call ' + d.id + ' ', h('small', { text: (d.operation || '') + ' ' + (d.model || '') })));
  const facts = h('dl', { class: 'facts' });
  const fact = (k, v) => { if (v !== '' && v !== null && v !== undefined) facts.append(h('dt', { text: k }), h('dd', {}, v)); };
  fact('status', h('span', { class: d.error ? 'status status-err' : 'status', text: statusText(d) }));
  fact('error message', d.error_message);
  fact('API', (API_NAMES[d.api] || d.api) + ' · ' + d.operation);
  fact('path', d.path);
  fact('model', d.model + (d.response_model && d.response_model !== d.model ? ' → ' + d.response_model : ''));
  fact('upstream', d.upstream && d.upstream + ' (' + d.provider + ')');
  fact('tenant', d.tenant);
  fact('conversation', d.conversation && h('span', {}, breakable(d.conversation), ' ',
    h('button', { type: 'button', class: 'link', id: 'only-conversation', onclick: () => filterConversation(d.conversation), text: 'only this conversation' })));
  fact('started', fmtTime(d.start_ms));
  fact('duration', fmtMs(d.duration_ms));
  fact('first chunk', fmtMs(d.ttfc_ms));
  fact('tokens', d.input_tokens === null ? '' : (d.tokens_estimated ? '~' : '') + d.input_tokens + ' in / ' + d.output_tokens + ' out' + (d.tokens_estimated ? ' (estimated)' : ''));
  fact('cost', d.cost_usd === null ? 'no price known' : fmtUsd(d.cost_usd));
  if (d.trace_id) {
    fact('trace', d.trace_url
      ? h('a', { href: d.trace_url, target: '_blank', rel: 'noopener noreferrer', text: d.trace_id })
      : d.trace_id + (d.sampled ? '' : ' (not sampled)'));
  }
  aside.append(facts);
  aside.append(h('h3', { text: 'Timeline' }));
  aside.append(timeline(d));
  if (d.related.length) {
    aside.append(h('h3', { text: 'Linked calls' }));
    const ul = h('ul', { class: 'related' });
    for (const r of d.related) {
      ul.append(h('li', {},
        h('a', { href: '#call=' + r.id, onclick: (e) => { e.preventDefault(); select(r.id); }, text: 'call ' + r.id }),
        ' ' + r.relation + ' (' + (r.model || '') + ', ' + statusText(r) + ', ' + fmtMs(r.duration_ms) + ')'));
    }
    aside.append(ul);
  }
  if (d.tools.length) {
    aside.append(h('h3', { text: 'Tool spans' }));
    const t = h('table', { class: 'tools' }, h('thead', {}, h('tr', {},
      h('th', { text: 'tool' }), h('th', { text: 'call id' }), h('th', { class: 'num', text: 'duration' }), h('th', { text: 'result' }))));
    const tb = h('tbody');
    for (const x of d.tools) {
      const sentBack = x.result_received ? '; sent back in call ' + (x.answered_by === null ? '?' : x.answered_by) : '';
      const result = x.mcp
        ? 'executed over MCP: ' + x.mcp.server + ' ' + x.mcp.method + (x.mcp.error ? ', failed (' + x.mcp.error + ')' : ', ok') + sentBack
        : x.result_received ? 'sent back in call ' + (x.answered_by === null ? '?' : x.answered_by) : 'never came back';
      tb.append(h('tr', { class: 'tool-row', dataset: { tool: x.name, mcp: x.mcp ? x.mcp.server : '' } },
        h('td', { text: 'execute_tool ' + x.name }), h('td', { class: 'muted', text: x.call_id }),
        h('td', { class: 'num', text: fmtMs(x.duration_ms) }),
        h('td', { class: x.mcp && x.mcp.error ? 'status-err' : null, text: result })));
    }
    t.append(tb);
    aside.append(t);
  }
  aside.append(h('h3', {}, 'Span attributes ', h('small', { class: 'muted', text: d.content_captured ? '(content capture on: redacted and truncated as exported)' : '(content capture off: no message content)' })));
  const at = h('table', { class: 'attrs' });
  for (const [k, v] of Object.entries(d.attributes)) {
    at.append(h('tr', {}, h('td', { text: k }), h('td', { text: typeof v === 'string' ? v : JSON.stringify(v) })));
  }
  aside.append(at);
}

// The call, its tool spans and the linked calls on one time axis.
function timeline(d) {
  const rows = [];
  rows.push({ kind: 'call', label: 'this call', t: d.timeline, error: !!d.error });
  for (const x of d.tools) {
    rows.push({ kind: 'tool', label: (x.mcp ? 'MCP ' + x.mcp.server + ': ' : 'execute_tool ') + x.name, t: { start_ms: x.start_ms, end_ms: x.end_ms }, tool: x.name, mcp: x.mcp ? x.mcp.server : null });
  }
  for (const r of d.related) {
    rows.push({ kind: 'related', label: 'call ' + r.id + ' (' + (r.relation.startsWith('sent') ? 'results' : 'asked') + ')', t: r.timeline, error: !!r.error, id: r.id });
  }
  rows.sort((a, b) => a.t.start_ms - b.t.start_ms);
  const t0 = Math.min(...rows.map((r) => r.t.start_ms));
  const t1 = Math.max(...rows.map((r) => r.t.end_ms), t0 + 1);
  const left = 170; const width = 330; const rowH = 20; const top = 16;
  const svg = s('svg', { class: 'timeline', viewBox: '0 0 ' + (left + width + 64) + ' ' + (top + rows.length * rowH + 8) });
  const x = (t) => left + ((t - t0) / (t1 - t0)) * width;
  for (let i = 0; i <= 4; i++) {
    const gx = left + (width * i) / 4;
    s('line', { class: 'grid', x1: gx, x2: gx, y1: top - 4, y2: top + rows.length * rowH }, svg);
    s('text', { class: 'axis', x: gx, y: 10, 'text-anchor': 'middle', text: '+' + fmtMs(((t1 - t0) * i) / 4) }, svg);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const g = s('g', { class: r.kind === 'tool' ? 'tool-span' : 'call-span', 'data-kind': r.kind }, svg);
    if (r.tool) g.setAttribute('data-tool', r.tool);
    if (r.mcp) g.setAttribute('data-mcp', r.mcp);
    if (r.id) g.setAttribute('data-call', String(r.id));
    s('text', { x: left - 6, y: y + 13, 'text-anchor': 'end', text: r.label }, g);
    const x0 = x(r.t.start_ms); const x2 = Math.max(x(r.t.end_ms), x0 + 2);
    if (r.kind === 'tool') {
      s('rect', { class: 'tool', x: x0, y: y + 4, width: x2 - x0, height: rowH - 8, rx: 2 }, g);
    } else {
      const first = r.t.first_chunk_ms;
      const xf = first ? x(first) : x2;
      s('rect', { class: r.error ? 'err' : 'wait', x: x0, y: y + 4, width: Math.max(xf - x0, 1), height: rowH - 8, rx: 2 }, g);
      if (first) {
        s('rect', { class: 'stream', x: xf, y: y + 4, width: Math.max(x2 - xf, 1), height: rowH - 8, rx: 2 }, g);
        s('line', { class: 'mark', x1: xf, x2: xf, y1: y + 2, y2: y + rowH - 2 }, g);
      }
    }
    s('text', { class: 'muted', x: x2 + 4, y: y + 13, text: fmtMs(r.t.end_ms - r.t.start_ms) }, g);
  });
  return svg;
}

// ---- charts --------------------------------------------------------------------------

// The chart's SVG, cleared, with one unit per CSS pixel of its current width (so text keeps
// its size); returns it and that width.
function chartSvg(panel, index, height) {
  const svg = document.querySelectorAll('#' + panel + ' svg.chart')[index || 0];
  clear(svg);
  const w = Math.max(220, Math.round(svg.getBoundingClientRect().width) || 300);
  svg.setAttribute('viewBox', '0 0 ' + w + ' ' + height);
  return [svg, w];
}

function emptyChart(panel, text) {
  const [svg] = chartSvg(panel, 0, 40);
  s('text', { class: 'empty', x: 4, y: 22, text: text }, svg);
}

// Horizontal bars: items [{label, parts: [{value, cls}], note}], one scale for all.
function hbars(panel, items, opts) {
  const o = Object.assign({ label: 100, rowH: 18, note: 64 }, opts || {});
  const [svg, W] = chartSvg(panel, 0, items.length * o.rowH + 4);
  const max = Math.max(1e-12, ...items.map((it) => it.parts.reduce((a, p) => a + p.value, 0)));
  const span = W - o.label - o.note;
  items.forEach((it, i) => {
    const y = i * o.rowH + 2;
    const g = s('g', { class: 'bar', 'data-label': it.label }, svg);
    s('text', { x: o.label - 4, y: y + 12, 'text-anchor': 'end', text: short(it.label, 16) }, g).appendChild(title(it.label));
    let x0 = o.label;
    for (const p of it.parts) {
      const w = (p.value / max) * span;
      if (w > 0) s('rect', { class: p.cls, x: x0, y: y + 3, width: Math.max(w, 1), height: o.rowH - 6 }, g).appendChild(title(p.title || String(p.value)));
      x0 += w;
    }
    s('text', { class: 'muted', x: x0 + 4, y: y + 12, text: it.note }, g);
  });
  return svg;
}

function title(text) {
  const t = document.createElementNS(NS, 'title');
  t.textContent = text;
  return t;
}

function short(t, n) {
  return t.length > n ? t.slice(0, n - 1) + '…' : t;
}

function renderCharts(sum) {
  const models = sum.models;
  const none = 'no calls in the last ' + sum.window_minutes + ' min';
  // 1. Requests and errors.
  if (models.length) {
    hbars('panel-requests', models.map((m) => ({
      label: m.model,
      parts: [{ value: m.requests - m.errors, cls: 'ok', title: (m.requests - m.errors) + ' ok' },
        { value: m.errors, cls: 'err', title: m.errors + ' errors' }],
      note: m.requests + (m.errors ? ' (' + m.errors + ' err)' : ''),
    })));
  } else emptyChart('panel-requests', none);
  spark(sum.timeline, sum.covers_window ? '' : ' (older calls left the ring of ' + sum.kept + ')');
  // 2. Time to first chunk.
  const streamed = models.filter((m) => m.ttfc_ms.count > 0);
  if (streamed.length) ttfcChart(streamed, sum.ttfc_buckets_ms);
  else emptyChart('panel-ttfc', models.length ? 'no streamed calls' : none);
  // 3. Tokens and cost.
  const withTokens = models.filter((m) => m.input_tokens + m.output_tokens > 0);
  if (withTokens.length) {
    hbars('panel-tokens', withTokens.map((m) => ({
      label: m.model,
      parts: [{ value: m.input_tokens, cls: 'in', title: m.input_tokens + ' input tokens' },
        { value: m.output_tokens, cls: 'out', title: m.output_tokens + ' output tokens' }],
      note: (m.tokens_estimated ? '~' : '') + fmtNum(m.input_tokens + m.output_tokens) + ' · ' + (m.cost_usd > 0 || m.unpriced === 0 ? fmtUsd(m.cost_usd) : 'no price'),
    })), { note: 90 });
  } else emptyChart('panel-tokens', models.length ? 'no token usage' : none);
  // 4. Tool calls.
  if (sum.tools.length) {
    hbars('panel-tools', sum.tools.map((t) => ({
      label: t.name,
      parts: [{ value: t.calls, cls: 'tool', title: t.calls + ' calls' }],
      note: t.calls + (t.duration_ms.count ? ' · p50 ' + fmtMs(t.duration_ms.p50) : ''),
    })), { note: 90 });
  } else emptyChart('panel-tools', models.length ? 'no tool calls' : none);
  // 5. Latency percentiles.
  if (models.length) latencyChart(models);
  else emptyChart('panel-latency', none);
}

// Requests (and errors) over the window as two lines.
function spark(t, note) {
  const [svg, W] = chartSvg('panel-requests', 1, 44);
  const n = t.requests.length;
  const max = Math.max(1, ...t.requests);
  const x = (i) => 4 + (i / Math.max(1, n - 1)) * (W - 8);
  const y = (v) => 38 - (v / max) * 30;
  s('line', { class: 'grid', x1: 4, x2: W - 4, y1: 38, y2: 38 }, svg);
  const path = (vals) => vals.map((v, i) => (i ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1)).join(' ');
  s('path', { class: 'line-req', d: path(t.requests) }, svg);
  if (t.errors.some((v) => v > 0)) s('path', { class: 'line-err', d: path(t.errors) }, svg);
  s('text', { class: 'axis', x: 4, y: 8, text: 'per ' + fmtMs(t.bucket_ms) + ', max ' + max + note }, svg);
}

// One row of histogram columns per model over the shared bucket bounds.
function ttfcChart(models, bounds) {
  const label = 100; const rowH = 26; const note = 64;
  const [svg, W] = chartSvg('panel-ttfc', 0, models.length * rowH + 18);
  const cols = bounds.length + 1;
  const cw = (W - label - note) / cols;
  models.forEach((m, i) => {
    const y = i * rowH + 2;
    const g = s('g', { class: 'bar', 'data-label': m.model }, svg);
    s('text', { x: label - 4, y: y + 15, 'text-anchor': 'end', text: short(m.model, 16) }, g).appendChild(title(m.model));
    const max = Math.max(1, ...m.ttfc_histogram);
    s('line', { class: 'grid', x1: label, x2: label + cols * cw, y1: y + rowH - 4, y2: y + rowH - 4 }, g);
    m.ttfc_histogram.forEach((v, j) => {
      if (!v) return;
      const hgt = Math.max(2, (v / max) * (rowH - 6));
      const lo = j === 0 ? 0 : bounds[j - 1];
      const hi = j < bounds.length ? bounds[j] : Infinity;
      s('rect', { class: 'hist', x: label + j * cw + 0.5, y: y + rowH - 4 - hgt, width: Math.max(cw - 1, 1), height: hgt }, g)
        .appendChild(title(v + ' calls between ' + fmtMs(lo) + ' and ' + (hi === Infinity ? '∞' : fmtMs(hi))));
    });
    s('text', { class: 'muted', x: W - note + 4, y: y + 15, text: 'p50 ' + fmtMs(m.ttfc_ms.p50) }, g);
  });
  ttfcAxis(svg, bounds, label, cw, models.length * rowH);
}

// The bucket bounds under the histograms: the first bound and then every k-th, with the
// smallest k at which no two labels come closer than GAP pixels (measured, not guessed: the
// font is the browser's) and every label stays inside the chart. A short tick marks where
// each label's bound is.
function ttfcAxis(svg, bounds, x0, cw, top) {
  const GAP = 8;
  const W = svg.viewBox.baseVal.width;
  const labels = bounds.map((b, j) => s('text', {
    class: 'axis', x: x0 + (j + 1) * cw, y: top + 14, 'text-anchor': 'middle', text: fmtTick(b),
  }, svg));
  // 6 px a character if the SVG is not laid out (display: none measures 0).
  const width = labels.map((t) => t.getComputedTextLength() || t.textContent.length * 6);
  const cx = (j) => x0 + (j + 1) * cw;
  const fits = (picked) => picked.every((j, i) => cx(j) - width[j] / 2 >= 0 && cx(j) + width[j] / 2 <= W &&
    (i === 0 || cx(j) - width[j] / 2 >= cx(picked[i - 1]) + width[picked[i - 1]] / 2 + GAP));
  let picked = [0];
  for (let k = 1; k < bounds.length; k++) {
    const p = [];
    for (let j = 0; j < bounds.length; j += k) p.push(j);
    if (fits(p)) { picked = p; break; }
  }
  labels.forEach((t, j) => {
    if (!picked.includes(j)) { t.remove(); return; }
    t.appendChild(title(fmtMs(bounds[j])));
    s('line', { class: 'grid', x1: cx(j), x2: cx(j), y1: top - 2, y2: top + 2 }, svg);
  });
}

function latencyChart(models) {
  const label = 100; const rowH = 24; const note = 56;
  const [svg, W] = chartSvg('panel-latency', 0, models.length * rowH + 4);
  const max = Math.max(1e-9, ...models.map((m) => m.latency_ms.p99 || 0));
  const span = W - label - note;
  models.forEach((m, i) => {
    const y = i * rowH + 2;
    const g = s('g', { class: 'bar', 'data-label': m.model }, svg);
    s('text', { x: label - 4, y: y + 14, 'text-anchor': 'end', text: short(m.model, 16) }, g).appendChild(title(m.model));
    ['p50', 'p95', 'p99'].forEach((p, k) => {
      const v = m.latency_ms[p] || 0;
      s('rect', { class: p, x: label, y: y + 2 + k * 6, width: Math.max((v / max) * span, 1), height: 5 }, g)
        .appendChild(title(p + ' ' + fmtMs(v)));
    });
    s('text', { class: 'muted', x: W - note + 4, y: y + 14, text: fmtMs(m.latency_ms.p95) }, g);
  });
}

// ---- start ---------------------------------------------------------------------------

function start() {
  // `?live=0`: a snapshot without the event stream (for screenshots and headless browsers,
  // which wait for open connections).
  const params = new URLSearchParams(location.search);
  const live = params.get('live') !== '0';
  // `?conversation=ID` (and any other filter by name) opens the page filtered.
  for (const sel of document.querySelectorAll('#filters select')) {
    const v = params.get(sel.name);
    if (v) { addFacet(sel.name, v); sel.value = v; }
  }
  readFilters();
  document.getElementById('filters').addEventListener('change', () => {
    readFilters();
    loadCalls().catch(callsFailed);
    loadMcp().catch(() => {});
    loadSummary();
    if (live) connect();
  });
  const m = /^#call=(\d+)$/.exec(location.hash);
  if (m) select(Number(m[1]));
  loadCalls().catch(callsFailed);
  loadMcp().catch(() => {});
  loadSummary();
  if (live) {
    connect();
    // The window slides even when nothing new arrives.
    setInterval(loadSummary, 10000);
  } else {
    setConn('snapshot', 'snapshot (live updates off)');
  }
  // The charts are drawn at one SVG unit per pixel of their width: redraw them at the new
  // width, or their text would scale with the window.
  window.addEventListener('resize', () => {
    if (state.resizeTimer) clearTimeout(state.resizeTimer);
    state.resizeTimer = setTimeout(() => {
      state.resizeTimer = null;
      if (state.summary) renderCharts(state.summary);
    }, 150);
  });
}

document.addEventListener('DOMContentLoaded', start);
