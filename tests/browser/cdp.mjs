// A minimal Chrome DevTools protocol client for the browser tests (Node's own WebSocket, no
// packages): connect to the first page of a headless Chromium, send commands, wait for
// events, evaluate expressions, and poll one until it holds (bounded, never a bare sleep as
// an assertion).
export async function connect(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === 'page');
  if (!page) throw new Error(`no page target on DevTools port ${port}`);
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  const pending = new Map();
  const listeners = new Map();
  let next = 0;
  ws.onmessage = (m) => {
    const d = JSON.parse(m.data);
    if (d.id !== undefined && pending.has(d.id)) {
      pending.get(d.id)(d);
      pending.delete(d.id);
    } else if (d.method) {
      for (const f of listeners.get(d.method) || []) f(d.params);
    }
  };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const send = (method, params) => new Promise((resolve, reject) => {
    const id = ++next;
    pending.set(id, (d) => (d.error ? reject(new Error(`${method}: ${JSON.stringify(d.error)}`)) : resolve(d.result)));
    ws.send(JSON.stringify({ id, method, params }));
  });
  const on = (method, f) => {
    if (!listeners.has(method)) listeners.set(method, []);
    listeners.get(method).push(f);
  };
  const evaluate = async (expression) => {
    const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Polls `expression` every 100 ms until it is truthy; throws after `seconds`.
  const until = async (what, expression, seconds) => {
    for (let i = 0; i < seconds * 10; i++) {
      if (await evaluate(expression)) return;
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  return { ws, send, on, evaluate, until, sleep, close: () => ws.close() };
}
