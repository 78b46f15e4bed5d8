// End-to-end, as root: the same traffic seen by tlstap and by mitmproxy. curl talks HTTP/1.1 and
// HTTP/2 through Debian's mitmdump (a regular proxy, its view dumped by test/support/mitm_dump.py)
// to the Node fidelity server, while tlstap captures curl's side with --har and -f jsonl. Entry
// by entry, method, URL, status, headers and bodies must agree, except for the differences
// docs/http.md lists (each one checked here to be exactly what it says); the HAR must pass
// har-validator and be taken by httpsnippet and har-to-k6.
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
import { runProcess, startFidelityServer } from './support/fidelity.js';
import { startMitmproxy } from './support/mitm.js';
import type { MitmFlow } from './support/mitm.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, startTlstap } from './support/tlstap-process.js';

const require = createRequire(import.meta.url);

/** One case: curl arguments (before the URL base is applied) and how many exchanges it makes. */
interface Case {
  name: string;
  args: (base: string, dir: string) => string[];
  exchanges: number;
}

const JSON_BODY = JSON.stringify({ name: 'José', list: [1, 2, 3], nested: { ok: true } });
const BINARY = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));

const CASES: Case[] = [
  { name: 'small', args: (u) => [`${u}/small`], exchanges: 1 },
  { name: '5 MB', args: (u) => [`${u}/big?n=${5 * 1024 * 1024}`], exchanges: 1 },
  { name: 'JSON POST', args: (u) => ['-H', 'Content-Type: application/json', '--data-binary', JSON_BODY, `${u}/json`], exchanges: 1 },
  { name: 'multipart with a binary file', args: (u, dir) => ['-F', 'title=José', '-F', `file=@${dir}/blob.bin;type=application/octet-stream`, `${u}/echo`], exchanges: 1 },
  { name: 'gzip', args: (u) => ['--compressed', `${u}/gzip`], exchanges: 1 },
  { name: 'br', args: (u) => ['--compressed', `${u}/br`], exchanges: 1 },
  { name: '204', args: (u) => [`${u}/nocontent`], exchanges: 1 },
  { name: '304', args: (u) => ['-H', 'If-None-Match: "v1"', `${u}/cached`], exchanges: 1 },
  { name: 'HEAD', args: (u) => ['-I', `${u}/small`], exchanges: 1 },
  { name: 'redirect', args: (u) => ['-L', `${u}/redirect`], exchanges: 2 },
  { name: '16 KB cookie', args: (u) => ['-b', `big=${'c'.repeat(16 * 1024)}`, `${u}/cookie`], exchanges: 1 },
  { name: 'UTF-8 headers', args: (u) => ['-H', 'X-Name: José', `${u}/utf8`], exchanges: 1 },
  { name: 'trailers', args: (u) => [`${u}/trailers`], exchanges: 1 },
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

test('curl through mitmproxy, HTTP/1.1 and HTTP/2: tlstap\'s HAR and jsonl agree with mitmproxy entry by entry', { timeout: 300_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-mitm-cmp-'));
  writeFileSync(join(dir, 'blob.bin'), BINARY);
  const server = await startFidelityServer();
  const mitm = await startMitmproxy();
  const har = join(dir, 'tlstap.har');
  const jsonl = join(dir, 'tlstap.jsonl');
  try {
    const tlstap = await startTlstap(['--comm', 'curl', '-f', 'jsonl', '-o', jsonl, '--har', har]);
    const runs: { version: string; name: string; pid: number; flows: MitmFlow[]; code: number | null; expect: number }[] = [];
    try {
      for (const version of ['--http1.1', '--http2']) {
        for (const c of [...CASES, { name: 'cancelled', args: (u: string) => ['--max-time', '0.5', `${u}/slow`], exchanges: 1 }]) {
          const before = mitm.flows().length;
          const run = await runProcess('curl', ['-sSk', '--max-time', '10', '-o', '/dev/null', version, '-x', mitm.proxy, ...c.args(server.url, dir)]);
          // mitmproxy writes a flow when it is done with it: wait for this run's.
          for (let i = 0; i < 50 && mitm.flows().length < before + c.exchanges; i++) await new Promise((r) => setTimeout(r, 100));
          runs.push({ version, name: c.name, pid: run.pid, flows: mitm.flows().slice(before), code: run.code, expect: c.exchanges });
        }
      }
    } finally {
      const exit = await tlstap.stop('SIGINT');
      assert.equal(exit.code, 0, exit.stderr);
    }
    const doc = JSON.parse(readFileSync(har, 'utf8')) as HarLog;
    const records = parseJsonl<{ type: string }>(readFileSync(jsonl, 'utf8')).filter((l): l is HttpRecord => l.type === 'http');
    const report: string[] = [];
    for (const run of runs) {
      const entries = doc.log.entries.filter((e) => new RegExp(`^curl pid ${run.pid}(;|$)`).test(e.comment ?? ''));
      const recs = records.filter((r) => r.conn.pid === run.pid);
      const label = `${run.version.slice(2)} ${run.name}`;
      if (entries.length !== run.expect) console.log(`# ${label}: ${entries.length} entries: ${JSON.stringify(entries.map((e) => [e.request.url, e.response.status, e.comment]))}`);
      const lines: string[] = [];
      if (run.code !== 0) lines.push(`curl exit status ${run.code}`);
      if (run.flows.length !== entries.length) lines.push(`flows: tlstap ${entries.length}, mitmproxy ${run.flows.length}`);
      entries.forEach((e, i) => {
        const f = run.flows[i];
        if (f !== undefined) lines.push(...differences(e, recs[i], f));
      });
      report.push(`${label}: ${lines.length === 0 ? 'same' : lines.join('; ')}`);
    }
    console.log(report.map((l) => `# ${l}`).join('\n'));
    // Checked apart: what curl got is what the server sent.
    const big = doc.log.entries.find((e) => e.request.url.endsWith(`/big?n=${5 * 1024 * 1024}`))!;
    assert.ok(harResponseBody(big).equals(bigBody(5 * 1024 * 1024)));
    assert.equal(harResponseBody(doc.log.entries.find((e) => e.request.url.endsWith('/gzip'))!).toString(), TEXT);
    // The HAR as HAR tools take it.
    const harValidator = require('har-validator') as { har(d: unknown): Promise<unknown> };
    await harValidator.har(doc);
    const { HTTPSnippet } = require('httpsnippet') as { HTTPSnippet: new (r: unknown) => { convert(target: string, client?: string): string | string[] | false } };
    for (const e of doc.log.entries) assert.ok(new HTTPSnippet(e.request).convert('shell', 'curl'), `httpsnippet takes ${e.request.url}`);
    const { liHARToK6Script } = require('har-to-k6') as { liHARToK6Script(h: unknown): Promise<{ main: string }> };
    const k6 = await liHARToK6Script(doc);
    assert.match(k6.main, /http\.request|http\.get|http\.post/);
    // Everything else is the same; these differ as docs/http.md says (what curl got vs what
    // mitmproxy got from the server).
    const expected: Record<string, RegExp> = {
      // mitmproxy 8.1.1 never forwards an HTTP/1.1 response with trailers: curl gets nothing.
      'http1.1 trailers': /^curl exit status 28; status: 0 vs 200 \(Client disconnected\.\)$/,
      // mitmproxy buffers a whole response before it forwards it: the cancelled curl got nothing.
      'http1.1 cancelled': /^curl exit status 28; status: 0 vs 200 \(.+\)$/,
      'http2 cancelled': /^curl exit status 28; status: 0 vs 200 \(.+\)$/,
    };
    for (const line of report) {
      const [label, what] = line.split(': ', 2) as [string, string];
      const rest = line.slice(label.length + 2);
      if (expected[label] !== undefined) assert.match(rest, expected[label]!, label);
      else assert.equal(what, 'same', line);
    }
  } finally {
    await mitm.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
