// End-to-end, as root: real clients talk HTTP/1.1 and HTTP/2 to nginx over TLS; tlstap rebuilds
// every exchange, pairs requests with responses, and writes a HAR that validates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpRecord, HttpSummaryRecord } from '../src/http/index.js';
import { curlFetch, nodeFetch, pythonFetch } from '../src/demo/clients.js';
import type { ClientResult } from '../src/demo/clients.js';
import { startNginx } from './support/nginx.js';
import { validateHar } from './support/http-streams.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl } from './support/tlstap-process.js';
import type { CaptureRun } from './support/tlstap-process.js';

const FILES = {
  'a.txt': 'the body of /a, served by nginx\n',
  'b.txt': 'the body of /b: a different file\n',
  'c.json': '{"ok":true,"from":"nginx"}\n',
};

/** Runs fn while tlstap runs with `args`; returns what it wrote. */
function capture(args: string[], fn: () => Promise<void>): Promise<CaptureRun> {
  return captureWhile(args, fn);
}

function httpRecords(out: string, pid: number): HttpRecord[] {
  return parseJsonl<{ type: string }>(out).filter((l): l is HttpRecord => l.type === 'http' && (l as HttpRecord).conn.pid === pid);
}

function bodyText(body: { text?: string; base64?: string }): string {
  return body.text ?? Buffer.from(body.base64 ?? '', 'base64').toString();
}

test('curl --http2 fetches /a and /b on one connection: -f http shows both exchanges, paired, and --har validates', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  const har = join(tmpdir(), `tlstap-e2e-${process.pid}.har`);
  try {
    let curl: ClientResult | undefined;
    const { out } = await capture(['-f', 'http', '--comm', 'curl', '--port', String(nginx.port), '--har', har], async () => {
      curl = await curlFetch(`${nginx.url}/a.txt`, { http1_1: false, extraArgs: ['--http2', `${nginx.url}/b.txt`] });
    });
    assert.equal(curl!.exitCode, 0, curl!.stderr);
    // curlFetch puts extra arguments first: curl fetches /b.txt, then /a.txt.
    assert.equal(curl!.stdout.toString(), FILES['b.txt'] + FILES['a.txt']);
    for (const [path, body] of [['/a.txt', FILES['a.txt']], ['/b.txt', FILES['b.txt']]] as const) {
      const block = out.split(/\n\n(?=\d\d:\d\d:\d\d)/).find((b) => b.includes(`GET ${nginx.url}${path}`));
      assert.ok(block, `an exchange block for ${path} in:\n${out}`);
      assert.match(block, /HTTP\/2/);
      assert.match(block, /\b200\b/);
      assert.ok(out.includes(body.trim()), `the body of ${path} is shown`);
    }
    const doc = JSON.parse(readFileSync(har, 'utf8')) as { log: { entries: { request: { url: string }; response: { status: number; content: { text?: string } } }[] } };
    assert.deepEqual(validateHar(doc), []);
    assert.deepEqual(doc.log.entries.map((e) => [e.request.url, e.response.status, e.response.content.text]), [
      [`${nginx.url}/b.txt`, 200, FILES['b.txt']],
      [`${nginx.url}/a.txt`, 200, FILES['a.txt']],
    ]);
  } finally {
    await nginx.stop();
    rmSync(har, { force: true });
  }
});

test('curl --http1.1, python3 urllib and node https: every request\'s method, path and status match, bodies match the files', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    const clients: [ClientResult, string][] = [];
    const { out } = await capture(['-f', 'jsonl'], async () => {
      clients.push([await curlFetch(`${nginx.url}/a.txt`), '/a.txt']);
      clients.push([await pythonFetch(`${nginx.url}/c.json`), '/c.json']);
      clients.push([await nodeFetch(`${nginx.url}/b.txt`), '/b.txt']);
      clients.push([await curlFetch(`${nginx.url}/missing`), '/missing']);
    });
    for (const [client, path] of clients) {
      const records = httpRecords(out, client.pid);
      assert.equal(records.length, 1, `one exchange for ${client.comm} ${path}`);
      const [ex] = records;
      assert.equal(ex!.request.method, 'GET');
      assert.equal(ex!.request.target, path);
      assert.equal(ex!.conn.role, 'client');
      const file = FILES[path.slice(1) as keyof typeof FILES];
      assert.equal(ex!.response?.status, file === undefined ? 404 : 200);
      if (file !== undefined) assert.equal(bodyText(ex!.response!.body), file);
      assert.equal(bodyText(ex!.response!.body), client.stdout.toString(), 'the body the client got');
    }
    // nginx's side of the same exchanges: it is the server.
    const served = parseJsonl<{ type: string }>(out).filter((l): l is HttpRecord => l.type === 'http' && (l as HttpRecord).conn.comm === 'nginx');
    assert.ok(served.length >= clients.length, 'nginx\'s own exchanges are rebuilt too');
    assert.ok(served.every((ex) => ex.conn.role === 'server'));
  } finally {
    await nginx.stop();
  }
});

test('200 requests on one HTTP/2 connection: 200 exchanges, no HPACK errors', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    let pid = 0;
    const { out } = await capture(['-f', 'jsonl', '--comm', 'curl'], async () => {
      const curl = await curlFetch(`${nginx.url}/a.txt?i=[1-200]`, { http1_1: false, extraArgs: ['--http2', '-H', 'X-Trace: same-value-every-time'] });
      assert.equal(curl.exitCode, 0, curl.stderr);
      pid = curl.pid;
    });
    const records = httpRecords(out, pid);
    assert.equal(records.length, 200);
    assert.equal(new Set(records.map((r) => r.conn.id)).size, 1, 'one connection');
    assert.ok(records.every((r) => r.response?.status === 200 && bodyText(r.response.body) === FILES['a.txt']));
    assert.deepEqual(records.map((r) => r.request.target), Array.from({ length: 200 }, (_, i) => `/a.txt?i=${i + 1}`));
    const summary = parseJsonl<{ type: string }>(out).find((l): l is HttpSummaryRecord => l.type === 'http_summary');
    assert.equal(summary?.hpackErrors, 0);
    console.log(`# http2 session: ${records.length} exchanges, ${summary?.hpackErrors} HPACK errors`);
  } finally {
    await nginx.stop();
  }
});
