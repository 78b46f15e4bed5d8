// End-to-end, as root: the same traffic seen by tlstap and by mitmproxy. curl talks HTTP/1.1 and
// HTTP/2 through Debian's mitmdump (a regular proxy, its view dumped by test/support/mitm_dump.py)
// to the Node fidelity server, while tlstap captures curl's side with --har and -f jsonl. Entry
// by entry, method, URL, status, headers and bodies must agree, except for the differences
// docs/http.md lists (each one checked here to be exactly what it says); every jsonl line must
// hold to docs/jsonl.schema.json, and the HAR must pass har-validator and be taken by httpsnippet
// and har-to-k6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HarEntry, HarLog } from '../src/har/index.js';
import type { HttpRecord } from '../src/http/index.js';
import { bigBody, TEXT } from './support/fidelity-server.js';
import { runProcess, runPython, startFidelityServer } from './support/fidelity.js';
import type { FidelityServer, Run } from './support/fidelity.js';
import { startMitmproxy } from './support/mitm.js';
import type { MitmFlow, Mitmproxy } from './support/mitm.js';
import { validate } from './support/json-schema.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, startTlstap } from './support/tlstap-process.js';

const require = createRequire(import.meta.url);
const SCHEMA = JSON.parse(readFileSync(new URL('../../docs/jsonl.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;

/** One case: its name, and how many exchanges it makes (a redirect followed makes two). */
interface Case {
  name: string;
  exchanges: number;
}

const CASES: Case[] = [
  '5 MB', 'small', 'JSON POST', 'multipart with a binary file', 'gzip', 'br', '204', '304', 'HEAD', 'redirect', '16 KB cookie', 'UTF-8 headers', 'trailers', 'cancelled',
].map((name) => ({ name, exchanges: name === 'redirect' ? 2 : 1 }));

const JSON_BODY = JSON.stringify({ name: 'José', list: [1, 2, 3], nested: { ok: true } });
const BINARY = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));

/** curl's arguments for a case. */
function curlArgs(name: string, u: string, dir: string): string[] {
  switch (name) {
    case 'small': return [`${u}/small`];
    case '5 MB': return [`${u}/big?n=${5 * 1024 * 1024}`];
    case 'JSON POST': return ['-H', 'Content-Type: application/json', '--data-binary', JSON_BODY, `${u}/json`];
    case 'multipart with a binary file': return ['-F', 'title=José', '-F', `file=@${dir}/blob.bin;type=application/octet-stream`, `${u}/echo`];
    case 'gzip': return ['--compressed', `${u}/gzip`];
    case 'br': return ['--compressed', `${u}/br`];
    case '204': return [`${u}/nocontent`];
    case '304': return ['-H', 'If-None-Match: "v1"', `${u}/cached`];
    case 'HEAD': return ['-I', `${u}/small`];
    case 'redirect': return ['-L', `${u}/redirect`];
    case '16 KB cookie': return ['-b', `big=${'c'.repeat(16 * 1024)}`, `${u}/cookie`];
    case 'UTF-8 headers': return ['-H', 'X-Name: José', `${u}/utf8`];
    case 'trailers': return [`${u}/trailers`];
    default: return ['--max-time', '0.5', `${u}/slow`];
  }
}

/** The same cases with python requests or httpx: `lib http2 case base proxy dir json`. */
const PYTHON_CASE = `
import sys
lib, h2, case, base, proxy, d, body = sys.argv[1:8]
if lib == 'requests':
    import requests, urllib3
    urllib3.disable_warnings()
    s = requests.Session()
    def req(method, path, **kw):
        kw.setdefault('timeout', 5)
        return s.request(method, base + path, proxies={'https': proxy}, verify=False, **kw)
else:
    import httpx
    s = httpx.Client(proxies=proxy, verify=False, http2=h2 == '1', follow_redirects=True, timeout=5)
    def req(method, path, **kw):
        if isinstance(kw.get('data'), bytes):
            kw['content'] = kw.pop('data')
        return s.request(method, base + path, **kw)
cases = {
    'small': lambda: req('GET', '/small'),
    '5 MB': lambda: req('GET', '/big?n=%d' % (5 * 1024 * 1024)),
    'JSON POST': lambda: req('POST', '/json', data=body.encode(), headers={'Content-Type': 'application/json'}),
    'multipart with a binary file': lambda: req('POST', '/echo', data={'title': 'José'}, files={'file': ('blob.bin', open(d + '/blob.bin', 'rb'), 'application/octet-stream')}),
    'gzip': lambda: req('GET', '/gzip'),
    'br': lambda: req('GET', '/br'),
    '204': lambda: req('GET', '/nocontent'),
    '304': lambda: req('GET', '/cached', headers={'If-None-Match': '"v1"'}),
    'HEAD': lambda: req('HEAD', '/small'),
    'redirect': lambda: req('GET', '/redirect'),
    '16 KB cookie': lambda: req('GET', '/cookie', headers={'Cookie': 'big=' + 'c' * 16384}),
    'UTF-8 headers': lambda: req('GET', '/utf8', headers={'X-Name': 'José'.encode()}),
    'trailers': lambda: req('GET', '/trailers'),
    'cancelled': lambda: req('GET', '/slow', timeout=0.5),
}
try:
    print(cases[case]().status_code)
except Exception as e:
    print(type(e).__name__, e, file=sys.stderr)
    sys.exit(28)
`;

/** A client of the comparison: how it runs a case through the proxy. */
interface Client {
  name: string;
  /** Its process name, for tlstap --comm. */
  comm: string;
  run(c: string, base: string, proxy: string, dir: string): Promise<Run>;
}

const CLIENTS: Client[] = [
  ...['--http1.1', '--http2'].map((version) => ({
    name: `curl ${version.slice(2)}`,
    comm: 'curl',
    run: (c: string, base: string, proxy: string, dir: string) =>
      runProcess('curl', ['-sSk', '--max-time', '5', '-o', '/dev/null', version, '-x', proxy, ...curlArgs(c, base, dir)]),
  })),
  ...([['requests', '0'], ['httpx', '0'], ['httpx', '1']] as const).map(([lib, h2]) => ({
    name: `python ${lib} ${h2 === '1' ? 'http2' : 'http1.1'}`,
    comm: 'python3',
    run: (c: string, base: string, proxy: string, dir: string) => runPython(PYTHON_CASE, [lib, h2, c, base, proxy, dir, JSON_BODY]),
  })),
];

/** Header bytes (as latin-1 from the addon) read the way tlstap reads them: UTF-8 where valid. */
function wireText(s: string): string {
  const b = Buffer.from(s, 'latin1');
  return isUtf8(b) ? b.toString('utf8') : s;
}

/** Names and values in order, pseudo-headers left out (mitmproxy keeps them apart). */
function headerPairs(headers: { name: string; value: string }[]): string[] {
  return headers.filter((h) => !h.name.startsWith(':')).map((h) => `${h.name.toLowerCase()}: ${h.value}`);
}

function mitmPairs(headers: [string, string][]): string[] {
  return headers.map(([n, v]) => `${wireText(n).toLowerCase()}: ${wireText(v)}`);
}

function harRequestBody(e: HarEntry): Buffer {
  const p = e.request.postData;
  if (p === undefined) return Buffer.alloc(0);
  return p._encoding === 'base64' ? Buffer.from(p.text, 'base64') : Buffer.from(p.text, 'utf8');
}

function harResponseBody(e: HarEntry): Buffer {
  const c = e.response.content;
  if (c.text === undefined) return Buffer.alloc(0);
  return c.encoding === 'base64' ? Buffer.from(c.text, 'base64') : Buffer.from(c.text, 'utf8');
}

/** What differs between tlstap's entry and mitmproxy's flow, one line per field. */
function differences(e: HarEntry, rec: HttpRecord | undefined, f: MitmFlow): string[] {
  const out: string[] = [];
  if (e.request.method !== f.method) out.push(`method: ${e.request.method} vs ${f.method}`);
  if (e.request.url !== wireText(f.url)) out.push(`url: ${e.request.url} vs ${f.url}`);
  if (e.response.status !== (f.status ?? 0)) out.push(`status: ${e.response.status} vs ${f.status ?? 'none'}${f.error ? ` (${f.error})` : ''}`);
  const reqH = [headerPairs(e.request.headers), mitmPairs(f.request.headers)];
  if (reqH[0]!.join('\n') !== reqH[1]!.join('\n')) out.push(`request headers: ${JSON.stringify(reqH[0])} vs ${JSON.stringify(reqH[1])}`);
  if (!harRequestBody(e).equals(Buffer.from(f.request.content, 'base64'))) out.push(`request body: ${harRequestBody(e).length} vs ${Buffer.from(f.request.content, 'base64').length} bytes`);
  if (f.response !== null && e.response.status !== 0) {
    const resH = [headerPairs(e.response.headers), mitmPairs(f.response.headers)];
    if (resH[0]!.join('\n') !== resH[1]!.join('\n')) out.push(`response headers: ${JSON.stringify(resH[0])} vs ${JSON.stringify(resH[1])}`);
    const mine = harResponseBody(e);
    const theirs = Buffer.from(f.response.content, 'base64');
    if (!mine.equals(theirs)) out.push(`response body: ${mine.length} vs ${theirs.length} bytes`);
    const trailers = [headerPairs(rec?.response?.trailers ?? []), mitmPairs(f.response.trailers)];
    if (trailers[0]!.join('\n') !== trailers[1]!.join('\n')) out.push(`trailers: ${JSON.stringify(trailers[0])} vs ${JSON.stringify(trailers[1])}`);
  }
  return out;
}

/** One run of one case by one client, and the flows mitmproxy wrote for it. */
interface CaseRun {
  client: string;
  name: string;
  pid: number;
  code: number | null;
  flows: MitmFlow[];
}

/** What tlstap wrote while `clients` ran every case. */
interface Captured {
  runs: CaseRun[];
  doc: HarLog;
  records: HttpRecord[];
}

/** Runs every case with `clients` (all with process name `comm`) under tlstap --comm COMM. */
async function captureClients(comm: string, clients: Client[], server: FidelityServer, mitm: Mitmproxy, dir: string): Promise<Captured> {
  const har = join(dir, `${comm}.har`);
  const jsonl = join(dir, `${comm}.jsonl`);
  const tlstap = await startTlstap(['--comm', comm, '-f', 'jsonl', '-o', jsonl, '--har', har]);
  const runs: CaseRun[] = [];
  try {
    for (const client of clients) {
      for (const c of CASES) {
        const before = mitm.flows().length;
        const run = await client.run(c.name, server.url, mitm.proxy, dir);
        // mitmproxy writes a flow when it is done with it: wait for this run's.
        for (let i = 0; i < 50 && mitm.flows().length < before + c.exchanges; i++) await new Promise((r) => setTimeout(r, 100));
        runs.push({ client: client.name, name: c.name, pid: run.pid, code: run.code, flows: mitm.flows().slice(before) });
      }
    }
  } finally {
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
  }
  const pids = new Set(runs.map((r) => r.pid));
  const lines = parseJsonl<{ type: string; conn?: { pid: number } }>(readFileSync(jsonl, 'utf8'));
  // Every line of the real capture holds to the documented schema.
  for (const [i, line] of lines.entries()) assert.deepEqual(validate(line, SCHEMA), [], `${comm} jsonl line ${i + 1}: ${JSON.stringify(line).slice(0, 300)}`);
  const records = lines.filter((l): l is HttpRecord => l.type === 'http' && pids.has(l.conn!.pid));
  return { runs, doc: JSON.parse(readFileSync(har, 'utf8')) as HarLog, records };
}

/** The HAR entries of one run (the entry comment starts with `COMM pid PID`). */
function entriesOf(doc: HarLog, pid: number): HarEntry[] {
  return doc.log.entries.filter((e) => new RegExp(`^\\S+ pid ${pid}(;|$)`).test(e.comment ?? ''));
}

/** `CLIENT CASE: same`, or what differs between tlstap and mitmproxy. */
function compare(captured: Captured): string[] {
  return captured.runs.map((run) => {
    const entries = entriesOf(captured.doc, run.pid);
    const recs = captured.records.filter((r) => r.conn.pid === run.pid);
    const lines: string[] = [];
    if (run.code !== 0) lines.push(`client exit status ${run.code}`);
    if (run.flows.length !== entries.length) lines.push(`flows: tlstap ${entries.length}, mitmproxy ${run.flows.length}`);
    entries.forEach((e, i) => {
      const f = run.flows[i];
      if (f !== undefined) lines.push(...differences(e, recs[i], f));
    });
    return `${run.client} ${run.name}: ${lines.length === 0 ? 'same' : lines.join('; ')}`;
  });
}

/** The HAR as HAR tools take it: har-validator, httpsnippet (every request) and har-to-k6. */
async function checkHarTools(doc: HarLog): Promise<void> {
  const harValidator = require('har-validator') as { har(d: unknown): Promise<unknown> };
  await harValidator.har(doc);
  const { HTTPSnippet } = require('httpsnippet') as { HTTPSnippet: new (r: unknown) => { convert(target: string, client?: string): string | string[] | false } };
  for (const e of doc.log.entries) assert.ok(new HTTPSnippet(e.request).convert('shell', 'curl'), `httpsnippet takes ${e.request.url}`);
  const { liHARToK6Script } = require('har-to-k6') as { liHARToK6Script(h: unknown): Promise<{ main: string }> };
  const k6 = await liHARToK6Script(doc);
  assert.match(k6.main, /http\.request|http\.get|http\.post/);
}

/**
 * The differences docs/http.md lists: what the client got (tlstap) is not what mitmproxy got
 * from the server, because of how mitmproxy 8.1.1 forwards.
 */
function expectedDifference(client: string, name: string): RegExp | undefined {
  // mitmproxy 8.1.1 never forwards an HTTP/1.1 response with trailers: the client gets nothing.
  if (name === 'trailers' && !client.endsWith('http2')) return /^client exit status 28; status: 0 vs 200 \(Client disconnected\.\)$/;
  // mitmproxy forwards a response once it has all of it: the cancelled client got nothing.
  if (name === 'cancelled') return /^client exit status 28; status: 0 vs 200 \(.+\)$/;
  return undefined;
}

test('curl, python requests and httpx through mitmproxy, HTTP/1.1 and HTTP/2: tlstap\'s HAR and jsonl agree with mitmproxy entry by entry', { timeout: 600_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-mitm-cmp-'));
  writeFileSync(join(dir, 'blob.bin'), BINARY);
  const server = await startFidelityServer();
  const mitm = await startMitmproxy();
  try {
    const report: string[] = [];
    for (const comm of ['curl', 'python3']) {
      const captured = await captureClients(comm, CLIENTS.filter((c) => c.comm === comm), server, mitm, dir);
      report.push(...compare(captured));
      await checkHarTools(captured.doc);
      if (comm === 'curl') {
        // Checked apart: what curl got is what the server sent.
        const entry = (client: string, name: string): HarEntry => entriesOf(captured.doc, captured.runs.find((r) => r.client === client && r.name === name)!.pid)[0]!;
        assert.ok(harResponseBody(entry('curl http2', '5 MB')).equals(bigBody(5 * 1024 * 1024)));
        assert.equal(harResponseBody(entry('curl http1.1', 'gzip')).toString(), TEXT);
      }
    }
    console.log(report.map((l) => `# ${l}`).join('\n'));
    for (const client of CLIENTS) {
      for (const c of CASES) {
        const key = `${client.name} ${c.name}: `;
        const line = report.find((l) => l.startsWith(key));
        assert.ok(line, key);
        const rest = line.slice(key.length);
        const expected = expectedDifference(client.name, c.name);
        if (expected !== undefined) assert.match(rest, expected, key);
        else assert.equal(rest, 'same', line);
      }
    }
  } finally {
    await mitm.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
