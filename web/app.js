// tlstap's web view: a virtualized, filterable, sortable list of the exchanges, a detail pane,
// connection and process views, fed live over a WebSocket. Plain DOM, no dependencies.
const token = new URLSearchParams(location.search).get('token') ?? '';
const api = (path, params = {}) => `${path}?${new URLSearchParams({ ...params, token })}`;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v; // through the CSSOM, which the page's CSP allows
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined) e.setAttribute(k, v);
  }
  return fill(e, ...children);
};
/** Replaces a node's children; arrays are flattened, undefined and null left out. */
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== undefined && c !== null).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

const ROW_H = 22;
const COLUMNS = [
  ['time', 'time'], ['process', 'process'], ['pid', 'pid', 'num'], ['method', 'method'], ['host', 'host'], ['path', 'path'],
  ['status', 'status', 'num'], ['size', 'size', 'num'], ['duration', 'duration', 'num'], ['protocol', 'proto'],
];
let F = {};
/** Every row, in completion order; `view` holds the indexes the filter keeps, in the sort order. */
const rows = [];
let view = [];
let maxSeq = 0;
let sortKey = 'seq';
let sortDesc = false;
let filterText = '';
let filterFn = () => true;
let textMatches = undefined; // a Set of seqs when a text: term is active
let selected = -1;
const conns = new Map();
let info = { losses: {}, ended: false };

const fmtSize = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);
const fmtMs = (n) => (n < 1 ? `${(n * 1000).toFixed(0)} µs` : n < 1000 ? `${n.toFixed(1)} ms` : `${(n / 1000).toFixed(2)} s`);
const fmtTime = (ms) => {
  const d = new Date(ms);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};
const cell = (row, key) => {
  const v = row[F[key]];
  switch (key) {
    case 'time': return fmtTime(v);
    case 'size': return fmtSize(v);
    case 'duration': return fmtMs(v);
    case 'status': return v === 0 ? '—' : v;
    case 'protocol': return v === 'HTTP/2' ? 'h2' : v === 'HTTP/1.0' ? 'h1.0' : 'h1.1';
    default: return v;
  }
};

// ---- filter ----------------------------------------------------------------------------------
/** Parses the filter box: `key:value` terms on one column, bare words on method/host/path/process. */
function parseFilter(text) {
  const tests = [];
  let textTerm;
  for (const term of text.trim().split(/\s+/).filter(Boolean)) {
    const neg = term.startsWith('-') && term.length > 1;
    const t = neg ? term.slice(1) : term;
    const m = /^(\w+):(.*)$/.exec(t);
    let test;
    if (m && m[1] === 'text') {
      textTerm = m[2];
      continue;
    } else if (m && m[1] === 'status') {
      const v = m[2].toLowerCase();
      const cmp = /^(>=|<=|>|<)(\d+)$/.exec(v);
      if (cmp) {
        const n = Number(cmp[2]);
        test = (r) => ({ '>=': r[F.status] >= n, '<=': r[F.status] <= n, '>': r[F.status] > n, '<': r[F.status] < n })[cmp[1]];
      } else if (/^\dxx$/.test(v)) test = (r) => Math.floor(r[F.status] / 100) === Number(v[0]);
      else test = (r) => String(r[F.status]) === v;
    } else if (m && ['pid', 'stream', 'conn'].includes(m[1])) {
      test = (r) => String(r[F[m[1]]]) === m[2];
    } else if (m && ['host', 'path', 'process', 'method', 'proto', 'protocol'].includes(m[1])) {
      const key = m[1] === 'proto' ? 'protocol' : m[1];
      const v = m[2].toLowerCase();
      test = key === 'protocol' ? (r) => cell(r, 'protocol').includes(v) || r[F.protocol].toLowerCase().includes(v) : (r) => String(r[F[key]]).toLowerCase().includes(v);
    } else {
      const v = t.toLowerCase();
      test = (r) => r[F.host].toLowerCase().includes(v) || r[F.path].toLowerCase().includes(v) || r[F.process].toLowerCase().includes(v) || r[F.method].toLowerCase() === v || String(r[F.status]) === v;
    }
    tests.push(neg ? (r) => !test(r) : test);
  }
  return { fn: (r) => tests.every((t) => t(r)), textTerm };
}

async function applyFilter() {
  const { fn, textTerm } = parseFilter(filterText);
  filterFn = fn;
  textMatches = undefined;
  if (textTerm) {
    const seqs = await (await fetch(api('/api/search', { q: textTerm }))).json();
    textMatches = new Set(seqs);
  }
  rebuildView();
}

const keep = (r) => filterFn(r) && (textMatches === undefined || textMatches.has(r[F.seq]));

function compare(a, b) {
  const x = rows[a][F[sortKey]];
  const y = rows[b][F[sortKey]];
  const c = x < y ? -1 : x > y ? 1 : a - b;
  return sortDesc ? -c : c;
}

function rebuildView() {
  view = [];
  for (let i = 0; i < rows.length; i++) if (keep(rows[i])) view.push(i);
  if (sortKey !== 'seq' || sortDesc) view.sort(compare);
  renderList(true);
}

// ---- list ------------------------------------------------------------------------------------
function renderHead() {
  const head = $('thead');
  head.replaceChildren(...COLUMNS.map(([key, label, cls]) => el('div', {
    class: `${cls ?? ''} ${sortKey === key ? `sorted${sortDesc ? ' desc' : ''}` : ''}`,
    'data-key': key,
    onclick: () => {
      if (sortKey === key) sortDesc = !sortDesc;
      else [sortKey, sortDesc] = [key, false];
      renderHead();
      rebuildView();
    },
  }, label)));
}

let renderQueued = false;
function renderList(now) {
  if (!now) {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(() => {
        renderQueued = false;
        renderList(true);
      });
    }
    return;
  }
  const scroller = $('scroller');
  $('spacer').style.height = `${view.length * ROW_H}px`;
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - 10);
  const last = Math.min(view.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW_H) + 10);
  const out = [];
  for (let i = first; i < last; i++) {
    const r = rows[view[i]];
    const status = r[F.status];
    out.push(el('div', {
      class: `row${r[F.seq] === selected ? ' sel' : ''}${r[F.incomplete] ? ' inc' : ''}`,
      style: `top:${i * ROW_H}px`,
      'data-seq': r[F.seq],
      title: r[F.incomplete] ? `incomplete: ${r[F.incomplete]}` : undefined,
      onclick: () => showExchange(r[F.seq]),
    }, COLUMNS.map(([key, , cls]) => el('div', { class: `${cls ?? ''}${key === 'status' && status ? ` s${Math.floor(status / 100)}` : ''}` }, cell(r, key)))));
  }
  $('spacer').replaceChildren(...out);
  $('count').textContent = `${view.length} of ${rows.length} exchanges`;
  document.body.dataset.shown = String(view.length);
}

function addRows(newRows) {
  let resort = false;
  for (const r of newRows) {
    if (r[F.seq] <= maxSeq) continue;
    maxSeq = r[F.seq];
    rows.push(r);
    if (keep(r)) {
      view.push(rows.length - 1);
      resort = true;
    }
  }
  if (resort && (sortKey !== 'seq' || sortDesc)) view.sort(compare);
  renderList(false);
  if (!$('connections').hidden) renderConnections();
}

async function fetchRowsAfter(after) {
  addRows(await (await fetch(api('/api/rows', { after }))).json());
}

// ---- detail ----------------------------------------------------------------------------------
function headersTable(headers) {
  return el('table', {}, headers.map((h) => el('tr', {}, el('td', {}, h.name), el('td', {}, h.value))));
}

function hexdump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length && i < 65536; i += 16) {
    const chunk = bytes.subarray(i, i + 16);
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...chunk].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(48)}  ${ascii}`);
  }
  if (bytes.length > 65536) lines.push(`… ${bytes.length - 65536} more bytes (download the HAR for all)`);
  return lines.join('\n');
}

function bodyView(seq, side, body) {
  const box = el('div', { class: 'bodybox' });
  if (body.size === 0) return el('p', { class: 'meta' }, 'no body');
  const isJson = /json/i.test(body.mimeType);
  const isImage = /^image\//i.test(body.mimeType);
  const modes = ['text', 'json', 'hex', 'image'];
  let mode = isImage ? 'image' : isJson ? 'json' : body.text ? 'text' : 'hex';
  let bytes;
  const show = () => {
    buttons.forEach((b) => b.classList.toggle('on', b.dataset.mode === mode));
    let content;
    if (mode === 'hex') content = el('pre', { class: 'body', 'data-mode': 'hex' }, hexdump(bytes));
    else if (mode === 'image') content = el('img', { class: 'body', src: URL.createObjectURL(new Blob([bytes], { type: body.mimeType || 'image/png' })), alt: 'body as an image' });
    else {
      let text = new TextDecoder().decode(bytes);
      if (mode === 'json') {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch {
          text = `(not valid JSON)\n${text}`;
        }
      }
      content = el('pre', { class: 'body', 'data-mode': mode }, text);
    }
    box.replaceChildren(content);
  };
  const buttons = modes.map((m) => el('button', { 'data-mode': m, onclick: () => ((mode = m), show()) }, m));
  const notes = [`${fmtSize(body.size)} on the wire`, body.encoding ? `${body.encoding}-decoded to ${fmtSize(body.decodedSize)}` : '', body.captured < body.size ? `only ${body.captured} bytes captured` : '', body.complete ? '' : 'incomplete', body.note ?? ''].filter(Boolean);
  void fetch(api('/api/body', { seq, side })).then((r) => r.arrayBuffer()).then((b) => {
    bytes = new Uint8Array(b);
    show();
  });
  return el('div', {}, el('div', { class: 'meta' }, `${body.mimeType || 'no content-type'} · ${notes.join(' · ')} `, buttons), box);
}

function timingBar(t) {
  const start = t.requestStart;
  const end = t.responseEnd ?? t.requestEnd;
  const total = Math.max(end - start, 1e-6);
  const seg = (cls, a, b) => (a === undefined || b === undefined ? undefined : el('div', { class: cls, style: `width:${(((b - a) / total) * 100).toFixed(2)}%`, title: `${cls} ${fmtMs(b - a)}` }));
  return el('div', {},
    el('div', { class: 'bar' }, seg('send', t.requestStart, t.requestEnd), seg('wait', t.requestEnd, t.responseStart), seg('recv', t.responseStart, t.responseEnd)),
    el('div', { class: 'legend' },
      el('span', {}, el('i', { style: 'background:#5b8def' }), `request ${fmtMs(t.requestEnd - t.requestStart)}`),
      t.responseStart !== undefined ? el('span', {}, el('i', { style: 'background:#c9c9d6' }), `wait ${fmtMs(t.responseStart - t.requestEnd)}`) : undefined,
      t.responseEnd !== undefined ? el('span', {}, el('i', { style: 'background:#2fa36b' }), `response ${fmtMs(t.responseEnd - t.responseStart)}`) : undefined,
      el('span', {}, `total ${fmtMs(total)}`)));
}

async function showExchange(seq) {
  selected = seq;
  renderList(true);
  const d = await (await fetch(api('/api/exchange', { seq }))).json();
  const res = d.response;
  const pane = $('detail');
  pane.hidden = false;
  fill(pane, 
    el('h2', {}, `${d.request.method} ${d.request.url}`),
    el('div', { class: 'meta' },
      `#${d.seq} · ${d.httpVersion}${d.streamId !== undefined ? ` · stream ${d.streamId}` : ''}${d.pushed ? ' (server push)' : ''} · ${d.conn.process} pid ${d.conn.pid} · `,
      el('a', { href: '#', onclick: (e) => (e.preventDefault(), showConnection(d.conn.key)) }, `connection ${d.conn.key}`),
      ` ${d.conn.local ?? ''} → ${d.conn.remote ?? ''} (${d.conn.role})`),
    d.incomplete ? el('p', { class: 'warn' }, `incomplete: ${d.incomplete}`) : undefined,
    d.notes.length ? el('p', { class: 'meta' }, d.notes.join('; ')) : undefined,
    el('h3', {}, 'timings'), timingBar(d.timings),
    el('h3', {}, 'request headers'), headersTable(d.request.headers),
    d.request.trailers.length ? [el('h3', {}, 'request trailers'), headersTable(d.request.trailers)] : undefined,
    el('h3', {}, 'request body'), bodyView(seq, 'request', d.request.body),
    el('h3', {}, res ? `response ${res.status} ${res.statusText}` : 'no response captured'),
    res ? [
      res.interim.map((i) => el('p', { class: 'meta' }, `interim ${i.status}`)),
      el('h3', {}, 'response headers'), headersTable(res.headers),
      res.trailers.length ? [el('h3', {}, 'response trailers'), headersTable(res.trailers)] : undefined,
      el('h3', {}, 'response body'), el('div', { id: 'responseBody' }, bodyView(seq, 'response', res.body)),
    ] : undefined,
  );
}

// ---- connections and processes ---------------------------------------------------------------
function printable(bytes) {
  let s = '';
  for (const b of bytes) s += b === 10 || b === 9 || (b >= 32 && b < 127) ? String.fromCharCode(b) : '.';
  return s;
}

async function showConnection(key) {
  const { conn, items } = await (await fetch(api('/api/conn', { key }))).json();
  const pane = $('detail');
  pane.hidden = false;
  const bySeq = new Map(rows.map((r) => [r[F.seq], r]));
  const list = el('div', { class: 'stream' });
  fill(pane, 
    el('h2', {}, `connection ${conn.key}: ${conn.process} pid ${conn.pid}`),
    el('div', { class: 'meta' }, `${conn.local ?? '?'} → ${conn.remote ?? '?'} · ${conn.protocol} · ${conn.exchanges} exchanges · ${conn.calls} raw calls · ${fmtSize(conn.bytesWritten)} written, ${fmtSize(conn.bytesRead)} read`),
    conn.fallback ? el('p', { class: 'warn' }, `shown raw from here: ${conn.fallback}`) : undefined,
    conn.lost || conn.truncated ? el('p', { class: 'warn' }, `${conn.lost} bytes lost, ${conn.truncated} bytes truncated`) : undefined,
    el('div', { class: 'legend' }, el('span', {}, el('i', { style: 'background:#c44' }), 'written by the process'), el('span', {}, el('i', { style: 'background:#45c' }), 'read by the process')),
    list);
  for (const it of items.slice(0, 2000)) {
    if (it.kind === 'exchange') {
      const r = bySeq.get(it.seq);
      // An exchange: its request, then its response (click for the detail).
      const open = () => showExchange(it.seq);
      list.append(el('div', { class: 'item exch write', onclick: open }, `${fmtTime(it.time)} #${it.seq} → ${r ? `${r[F.method]} ${r[F.host]}${r[F.path]} ${r[F.protocol]}${r[F.stream] >= 0 ? ` stream ${r[F.stream]}` : ''}` : ''}`));
      list.append(el('div', { class: 'item exch read', onclick: open }, `#${it.seq} ← ${r ? `${r[F.status] || 'no response'} (${fmtSize(r[F.size])}, ${fmtMs(r[F.duration])})${r[F.incomplete] ? ` incomplete: ${r[F.incomplete]}` : ''}` : ''}`));
    } else {
      const div = el('div', { class: `item ${it.dir}` }, `${fmtTime(it.time)} ${it.dir} ${it.totalLen} bytes${it.lost ? `, ${it.lost} lost` : ''}${it.truncated ? `, ${it.truncated} truncated` : ''}\n`);
      list.append(div);
      void fetch(api('/api/call', { key, n: it.n })).then((r) => r.arrayBuffer()).then((b) => div.append(printable(new Uint8Array(b).subarray(0, 8192))));
    }
  }
  if (items.length > 2000) list.append(el('p', { class: 'meta' }, `… ${items.length - 2000} more items`));
}

function renderConnections() {
  const all = [...conns.values()];
  $('connScroller').replaceChildren(el('table', { class: 'conns' },
    el('tr', {}, ['conn', 'process', 'pid', 'local', 'remote', 'protocol', 'exchanges', 'raw calls', 'raw written', 'raw read', 'loss'].map((h) => el('th', {}, h))),
    all.map((c) => el('tr', { onclick: () => showConnection(c.key) },
      el('td', {}, c.key), el('td', {}, c.process), el('td', {}, c.pid), el('td', {}, c.local ?? ''), el('td', {}, c.remote ?? ''), el('td', {}, c.protocol),
      el('td', {}, c.exchanges), el('td', {}, c.calls), el('td', {}, fmtSize(c.bytesWritten)), el('td', {}, fmtSize(c.bytesRead)),
      el('td', { class: c.lost || c.truncated || c.fallback ? 'warn' : '' }, [c.lost ? `${c.lost} B lost` : '', c.truncated ? `${c.truncated} B truncated` : '', c.fallback ?? ''].filter(Boolean).join('; '))))));
}

function renderProcesses() {
  const procs = new Map();
  for (const c of conns.values()) {
    const k = `${c.process} (pid ${c.pid})`;
    if (!procs.has(k)) procs.set(k, []);
    procs.get(k).push(c);
  }
  const byConn = new Map();
  for (const i of view) {
    const r = rows[i];
    if (!byConn.has(r[F.conn])) byConn.set(r[F.conn], []);
    byConn.get(r[F.conn]).push(r);
  }
  $('procScroller').replaceChildren(el('div', { class: 'tree' }, [...procs].map(([name, cs]) => el('details', { open: '' },
    el('summary', {}, `${name}: ${cs.length} connections`),
    cs.map((c) => el('details', {},
      el('summary', {}, el('a', { onclick: () => showConnection(c.key) }, `connection ${c.key}`), ` ${c.remote ?? ''} ${c.protocol}, ${c.exchanges} exchanges${c.calls ? `, ${c.calls} raw calls` : ''}`),
      (byConn.get(c.key) ?? []).slice(0, 500).map((r) => el('div', {}, el('a', { onclick: () => showExchange(r[F.seq]) }, `#${r[F.seq]} ${r[F.method]} ${r[F.path]} → ${r[F.status] || '—'}`)))))))));
}

// ---- losses, HAR, live -------------------------------------------------------------------------
function renderLosses() {
  const l = info.losses ?? {};
  const parts = [];
  if (l.incompleteExchanges) parts.push(`${l.incompleteExchanges} incomplete exchanges`);
  const fb = Object.entries(l.fallbacks ?? {}).filter(([, n]) => n > 0);
  if (fb.length) parts.push(`connections shown raw: ${fb.map(([k, n]) => `${n} ${k}`).join(', ')}`);
  if (l.lostBytes) parts.push(`${l.lostBytes} bytes lost`);
  if (l.truncatedBytes) parts.push(`${l.truncatedBytes} bytes truncated (--max-bytes)`);
  if (l.callsMissed) parts.push(`${l.callsMissed} calls missed (gaps)`);
  if (l.notIndexed) parts.push(`${l.notIndexed} items captured but past the list's bound`);
  const c = l.capture;
  if (c) {
    if (c.eventsDropped) parts.push(`${c.eventsDropped} ring-buffer records dropped (${c.bytesDropped} bytes)`);
    if (c.bytesTruncated) parts.push(`${c.bytesTruncated} bytes truncated in all`);
    if (c.readFaults) parts.push(`${c.readFaults} unreadable buffers (${c.readFaultBytes} bytes)`);
    if (c.missingCalls) parts.push(`${c.missingCalls} calls missing`);
  }
  const box = $('losses');
  box.classList.toggle('bad', parts.length > 0);
  box.textContent = parts.length ? `loss: ${parts.join(' · ')}` : `no loss so far${c ? ` (${c.calls} calls, ${c.bytes} bytes captured)` : ''}`;
  $('live').textContent = info.ended ? 'input ended' : 'live';
}

/** Downloads the HAR or pcapng of the exchanges the filter shows (pcapng: their connections' calls). */
async function download(kind) {
  const seqs = view.map((i) => rows[i][F.seq]).sort((a, b) => a - b);
  const res = await fetch(api(`/api/${kind}`), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ seqs }) });
  const a = el('a', { href: URL.createObjectURL(await res.blob()), download: `tlstap.${kind}` });
  document.body.append(a);
  a.click();
  a.remove();
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${api('/ws')}`);
  // Rows that completed between the first fetch and this socket's first update.
  ws.onopen = () => void fetchRowsAfter(maxSeq);
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type !== 'update') return;
    for (const c of msg.conns) conns.set(c.key, c);
    info = { ...info, losses: msg.losses, ended: msg.ended, http: msg.http };
    renderLosses();
    // Updates a slow page missed (or a batch too big to push) are fetched; no exchange is lost.
    const first = msg.rows[0]?.[F.seq];
    if (msg.last > maxSeq && (first === undefined || first > maxSeq + 1)) void fetchRowsAfter(maxSeq);
    else addRows(msg.rows);
    if (!$('connections').hidden && msg.conns.length) renderConnections();
  };
  ws.onclose = () => {
    $('live').textContent = 'disconnected';
  };
}

function switchTab(tab) {
  for (const b of $('tabs').children) b.classList.toggle('on', b.dataset.tab === tab);
  $('list').hidden = tab !== 'exchanges';
  $('connections').hidden = tab !== 'connections';
  $('processes').hidden = tab !== 'processes';
  if (tab === 'connections') renderConnections();
  if (tab === 'processes') renderProcesses();
}

async function main() {
  info = await (await fetch(api('/api/info'))).json();
  info.fields.forEach((f, i) => (F[f] = i));
  renderHead();
  renderLosses();
  for (const c of await (await fetch(api('/api/conns'))).json()) conns.set(c.key, c);
  await fetchRowsAfter(0);
  connect();
  $('scroller').addEventListener('scroll', () => renderList(false));
  window.addEventListener('resize', () => renderList(false));
  let timer;
  $('filter').addEventListener('input', (e) => {
    filterText = e.target.value;
    clearTimeout(timer);
    timer = setTimeout(() => void applyFilter(), 60);
  });
  $('filter').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      filterText = e.target.value;
      clearTimeout(timer);
      void applyFilter();
    }
  });
  $('har').addEventListener('click', () => void download('har'));
  $('pcapng').addEventListener('click', () => void download('pcapng'));
  for (const b of $('tabs').children) b.addEventListener('click', () => switchTab(b.dataset.tab));
  document.body.dataset.ready = '1';
}

void main();
