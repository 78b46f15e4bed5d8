// HAR 1.2 export: a file valid against HAR 1.2 (checked by the structural validator in
// support/http-streams.ts), created 0600, with timings from the capture timestamps and --redact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createHarSink, createHarStreamSink, harEntry } from '../src/har/index.js';
import { createHttpSink } from '../src/output/http.js';
import { HttpTracker } from '../src/http/tracker.js';
import { OutputFileError } from '../src/util/private-file.js';
import { Writable } from 'node:stream';
import { call, ctx, frame, FT, HeaderEncoder, PREFACE, recordedCalls, recordingProxy, validateHar } from './support/http-streams.js';

const dir = mkdtempSync(join(tmpdir(), 'tlstap-har-'));

const conn = { id: 5, pid: 4242, ssl: 0x99n, fd: 7, local: { ip: '192.168.1.10', port: 51000 }, remote: { ip: '93.184.216.34', port: 443 } };

function h1Calls() {
  const t0 = 5_000_000_000n;
  return [
    call('write', 'POST /api/v1/items?page=2&q=a%20b HTTP/1.1\r\nHost: api.test\r\nCookie: sid=1; t=2\r\nAuthorization: Basic Zm9vOmJhcg==\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2', { conn, tsNs: t0 }),
    call('read', 'HTTP/1.1 302 Found\r\nLocation: /api/v1/items/9\r\nSet-Cookie: sid=9; Path=/; Domain=api.test; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure; HttpOnly\r\nContent-Length: 0\r\n\r\n', { conn, tsNs: t0 + 30_000_000n }),
    call('write', 'GET /bin HTTP/1.1\r\nHost: api.test\r\n\r\n', { conn, tsNs: t0 + 40_000_000n }),
    call('read', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n'), Buffer.from([0, 1, 2, 255])]), { conn, tsNs: t0 + 45_000_000n }),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', { conn, tsNs: t0 + 46_000_000n }),
    call('write', 'GET /never-answered HTTP/1.1\r\nHost: api.test\r\n\r\n', { conn, tsNs: t0 + 50_000_000n }),
  ];
}

test('a HAR file from HTTP/1.1 traffic: valid HAR 1.2, 0600, timings, cookies, query, postData, redirect', async () => {
  const path = join(dir, 'h1.har');
  const tracker = new HttpTracker();
  const sink = createHarSink(path, ctx, { redact: false, tracker });
  // The file exists (0600) before any exchange.
  assert.equal(statSync(path).mode & 0o777, 0o600);
  for (const c of h1Calls().slice(0, 4)) tracker.write(c);
  tracker.write(h1Calls()[5]!);
  await tracker.close();
  assert.equal(sink.entries, 3);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  assert.deepEqual(validateHar(doc), []);
  assert.equal(doc.log.version, '1.2');
  assert.equal(doc.log.creator.name, 'tlstap');
  const [post, bin, lost] = doc.log.entries;
  assert.equal(post.request.url, 'https://api.test/api/v1/items?page=2&q=a%20b');
  assert.deepEqual(post.request.queryString, [{ name: 'page', value: '2' }, { name: 'q', value: 'a b' }]);
  assert.deepEqual(post.request.cookies, [{ name: 'sid', value: '1' }, { name: 't', value: '2' }]);
  assert.deepEqual(post.request.postData.params, [{ name: 'a', value: '1' }, { name: 'b', value: '2' }]);
  assert.equal(post.request.postData.text, 'a=1&b=2');
  assert.equal(post.request.bodySize, 7);
  assert.ok(post.request.headersSize > 100);
  assert.equal(post.response.status, 302);
  assert.equal(post.response.redirectURL, '/api/v1/items/9');
  assert.deepEqual(post.response.cookies, [{ name: 'sid', value: '9', path: '/', domain: 'api.test', expires: '2026-10-21T07:28:00.000Z', secure: true, httpOnly: true }]);
  assert.equal(post.startedDateTime, new Date(Number((5_000_000_000n + 1_714_566_896_000_000_000n) / 1_000_000n)).toISOString());
  assert.equal(post.timings.wait, 30);
  assert.equal(post.time, 30);
  assert.equal(post.serverIPAddress, '93.184.216.34');
  assert.equal(post.connection, '5');
  assert.equal(bin.response.content.encoding, 'base64');
  assert.equal(bin.response.content.text, Buffer.from([0, 1, 2, 255]).toString('base64'));
  assert.equal(bin.response.content.mimeType, 'application/octet-stream');
  assert.equal(bin.timings.wait, 5);
  // No response: still a valid entry, status 0, saying why.
  assert.equal(lost.response.status, 0);
  assert.match(lost.comment, /no response/);
});

test('--redact in HAR: headers and cookies masked', async () => {
  const path = join(dir, 'redacted.har');
  const tracker = new HttpTracker();
  createHarSink(path, ctx, { redact: true, tracker });
  for (const c of h1Calls().slice(0, 2)) tracker.write(c);
  await tracker.close();
  const text = readFileSync(path, 'utf8');
  assert.deepEqual(validateHar(JSON.parse(text)), []);
  for (const secret of ['Zm9vOmJhcg==', '"sid","value":"1"', '"value":"9"']) assert.equal(text.includes(secret), false, secret);
  assert.ok(text.includes('Basic [REDACTED]'));
});

test('HAR from HTTP/2 frames: HTTP/2.0 version, pseudo-headers kept, headersSize -1', async () => {
  const client = new HeaderEncoder();
  const server = new HeaderEncoder();
  const up = Buffer.concat([
    PREFACE,
    frame(FT.SETTINGS, 0, 0),
    frame(FT.HEADERS, 0x5, 1, client.block([[':method', 'GET'], [':scheme', 'https'], [':authority', 'h2.test'], [':path', '/a']])),
  ]);
  const down = Buffer.concat([
    frame(FT.SETTINGS, 0, 0),
    frame(FT.HEADERS, 0x4, 1, server.block([[':status', '200'], ['content-type', 'application/json']])),
    frame(FT.DATA, 0x1, 1, Buffer.from('{"ok":true}')),
  ]);
  const tracker = new HttpTracker();
  const entries: ReturnType<typeof harEntry>[] = [];
  tracker.subscribe({ exchange: (ex) => entries.push(harEntry(ex, ctx, { redact: false })) });
  tracker.write(call('write', up));
  tracker.write(call('read', down));
  await tracker.close();
  assert.equal(entries.length, 1);
  const e = entries[0]!;
  assert.equal(e.request.httpVersion, 'HTTP/2.0');
  assert.equal(e.request.url, 'https://h2.test/a');
  assert.equal(e.request.headersSize, -1);
  assert.equal(e.response.content.text, '{"ok":true}');
  assert.ok(e.request.headers.some((h) => h.name === ':path'));
  assert.deepEqual(validateHar({ log: { version: '1.2', creator: { name: 't', version: '1' }, entries } }), []);
});

test('the validator catches what HAR 1.2 forbids (so passing it means something)', () => {
  const good = { log: { version: '1.2', creator: { name: 'x', version: '1' }, entries: [] } };
  assert.deepEqual(validateHar(good), []);
  assert.notDeepEqual(validateHar({ log: { version: '1.1', creator: { name: 'x', version: '1' }, entries: [] } }), []);
  assert.notDeepEqual(validateHar({ log: { version: '1.2', entries: [] } }), []);
  const entry = {
    startedDateTime: '2024-05-01T12:00:00.000Z',
    time: 3,
    request: { method: 'GET', url: 'https://a/', httpVersion: 'HTTP/1.1', cookies: [], headers: [], queryString: [], headersSize: -1, bodySize: 0 },
    response: { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', cookies: [], headers: [], content: { size: 0, mimeType: 'x' }, redirectURL: '', headersSize: -1, bodySize: 0 },
    cache: {},
    timings: { send: 1, wait: 1, receive: 1 },
  };
  assert.deepEqual(validateHar({ log: { ...good.log, entries: [entry] } }), []);
  const broken = (mutate: (e: typeof entry & Record<string, unknown>) => void) => {
    const e = structuredClone(entry) as typeof entry & Record<string, unknown>;
    mutate(e);
    return validateHar({ log: { ...good.log, entries: [e] } });
  };
  assert.notDeepEqual(broken((e) => delete (e.response as Partial<typeof entry.response>).redirectURL), []);
  assert.notDeepEqual(broken((e) => (e.startedDateTime = 'yesterday')), []);
  assert.notDeepEqual(broken((e) => (e.time = 10)), []);
  assert.notDeepEqual(broken((e) => (e.timings.wait = -1)), []);
  assert.notDeepEqual(broken((e) => (e.extra = 1)), []);
  assert.notDeepEqual(broken((e) => (e.request.headers = [{ name: 'a' }] as never)), []);
});

test('a symlink at the HAR path is refused; -f http and --har listen to one tracker, fed once', async () => {
  const target = join(dir, 'target');
  writeFileSync(target, 'keep');
  const link = join(dir, 'link.har');
  symlinkSync(target, link);
  assert.throws(() => createHarSink(link, ctx, { redact: false, tracker: new HttpTracker() }), OutputFileError);
  assert.equal(readFileSync(target, 'utf8'), 'keep');

  const out = new Writable({ write: (_c, _e, cb) => cb() });
  const tracker = new HttpTracker();
  const httpSink = createHttpSink(out, ctx, { color: false, redact: false, tracker });
  const harSink = createHarSink(join(dir, 'shared.har'), ctx, { redact: false, tracker });
  for (const c of h1Calls().slice(0, 4)) tracker.write(c);
  // Closing the tracker closes both outputs.
  await tracker.close();
  assert.equal(httpSink.stats.exchanges, 2);
  assert.equal(harSink.entries, 2);
  const doc = JSON.parse(readFileSync(join(dir, 'shared.har'), 'utf8'));
  assert.equal(doc.log.entries.length, 2);
});

test('a HAR file from real HTTP/2 traffic (node:http2 h2c) validates, one entry per request', async () => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain', 'set-cookie': 'a=b; Path=/' });
    stream.end(`hello ${headers[':path']}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = await recordingProxy(server.address() as AddressInfo);
  const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
  const paths = ['/a', '/b', '/c?x=1'];
  for (const p of paths) {
    await new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': p });
      req.resume();
      req.on('end', resolve);
      req.on('error', reject);
      req.end();
    });
  }
  session.close();
  await new Promise((r) => setTimeout(r, 50));
  await proxy.close();
  server.close();
  const path = join(dir, 'real.har');
  const tracker = new HttpTracker({ defaultScheme: 'http' });
  createHarSink(path, ctx, { redact: false, tracker });
  for (const c of recordedCalls(proxy.recorded[0]!, 3n)) tracker.write(c);
  await tracker.close();
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  assert.deepEqual(validateHar(doc), []);
  assert.deepEqual(
    doc.log.entries.map((e: { request: { url: string }; response: { status: number; content: { text: string } } }) => [e.request.url, e.response.status, e.response.content.text]),
    paths.map((p) => [`http://127.0.0.1:${proxy.port}${p}`, 200, `hello ${p}`]),
  );
  assert.deepEqual(doc.log.entries[2].request.queryString, [{ name: 'x', value: '1' }]);
});

/** A stream that keeps what it is given, synchronously. */
function collector() {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

test('HAR is streamed: each entry reaches the stream when its exchange completes, the sink keeps no entries', async () => {
  const out = collector();
  const tracker = new HttpTracker();
  // flushBytes 1: every committed entry goes to the stream at once, so no timer is involved.
  const sink = createHarStreamSink(out.stream, 'memory.har', ctx, { redact: false, tracker, flushBytes: 1 });
  assert.match(out.text(), /^\{"log":\{"version":"1\.2","creator":\{[^}]*\},"entries":\[$/);
  const exchanges = 200;
  for (let i = 0; i < exchanges; i++) {
    const c = { ...conn, id: 100 + i };
    tracker.write(call('write', `GET /item/${i} HTTP/1.1\r\nHost: api.test\r\n\r\n`, { conn: c }));
    tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', { conn: c }));
    // Written before the capture ends, not collected for the end.
    assert.ok(out.text().includes(`"url":"https://api.test/item/${i}"`), `entry ${i} is on the stream`);
    assert.equal(sink.entries, i + 1);
  }
  // Nothing the sink holds grows with the entries: no array among its fields.
  for (const [field, value] of Object.entries(sink)) assert.equal(Array.isArray(value), false, field);
  await tracker.close();
  const doc = JSON.parse(out.text());
  assert.deepEqual(validateHar(doc), []);
  assert.equal(doc.log.entries.length, exchanges);
  assert.equal(doc.log.comment, `captured by tlstap: ${exchanges} exchanges, 0 incomplete`);
});

test('HAR entries come in completion order; a killed capture leaves the head and the entries so far, unterminated', async () => {
  const out = collector();
  const tracker = new HttpTracker();
  createHarStreamSink(out.stream, 'order.har', ctx, { redact: false, tracker, flushBytes: 1 });
  const slow = { ...conn, id: 1 };
  const fast = { ...conn, id: 2 };
  tracker.write(call('write', 'GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\n', { conn: slow }));
  tracker.write(call('write', 'GET /fast HTTP/1.1\r\nHost: api.test\r\n\r\n', { conn: fast }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', { conn: fast }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', { conn: slow }));
  // What a killed process leaves: not a whole document, but closing the array and objects makes one.
  const cut = out.text();
  assert.throws(() => JSON.parse(cut), SyntaxError);
  const rescued = JSON.parse(`${cut}\n]}}`);
  assert.deepEqual(
    rescued.log.entries.map((e: { request: { url: string } }) => e.request.url),
    ['https://api.test/fast', 'https://api.test/slow'],
  );
  await tracker.close();
  const doc = JSON.parse(out.text());
  assert.deepEqual(validateHar(doc), []);
  assert.deepEqual(doc.log.entries.map((e: { request: { url: string } }) => e.request.url), ['https://api.test/fast', 'https://api.test/slow']);
});
