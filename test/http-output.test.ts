// The HTTP outputs: `-f http` blocks, jsonl http records, --redact everywhere, the summary line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createFormatSink } from '../src/output/index.js';
import { createHttpSink, withHttpRecords } from '../src/output/http.js';
import { formatHttpSummary, redactHeaders, isSensitiveHeader } from '../src/http/index.js';
import type { HttpRecord } from '../src/http/index.js';
import { HttpTracker } from '../src/http/tracker.js';
import { call, ctx } from './support/http-streams.js';

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

const conn = { id: 12, pid: 4242, ssl: 0x99n, fd: 7, local: { ip: '127.0.0.1', port: 50000 }, remote: { ip: '127.0.0.1', port: 8443 } };

function traffic() {
  return [
    call('write', 'POST /login?next=%2F HTTP/1.1\r\nHost: shop.test\r\nAuthorization: Bearer abc.def\r\nCookie: sid=123; theme=dark\r\nX-Api-Key: k-777\r\nContent-Length: 9\r\n\r\nuser=ann&', { conn }),
    call(
      'read',
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 200 OK\r\nSet-Cookie: sid=456; Path=/; HttpOnly\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\nContent-Length: ${gzipSync('<h1>welcome</h1>').length}\r\n\r\n`,
        ),
        gzipSync('<h1>welcome</h1>'),
      ]),
      { conn },
    ),
    call('write', 'GET /logo.png HTTP/1.1\r\nHost: shop.test\r\n\r\n', { conn }),
    call('read', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n'), Buffer.alloc(100, 0x89)]), { conn }),
    call('write', 'SSH-2.0-nope\r\n', { ssl: 0x1234n }),
  ];
}

test('-f http: one block per exchange with URL, status, headers, decoded body preview, latency, process', async () => {
  const out = new Collector();
  const tracker = new HttpTracker();
  const sink = createHttpSink(out, ctx, { color: false, redact: false, maxBodyPreview: 1024, tracker });
  for (const c of traffic()) tracker.write(c);
  await tracker.close();
  const text = out.text();
  assert.match(text, /#1 curl pid=4242 conn=12 127\.0\.0\.1:50000 → 127\.0\.0\.1:8443 \(client\)/);
  assert.match(text, /^POST https:\/\/shop\.test\/login\?next=%2F HTTP\/1\.1$/m);
  assert.match(text, /^ {2}Authorization: Bearer abc\.def$/m);
  assert.match(text, /\[body 9 bytes\]\nuser=ann&\n/);
  assert.match(text, /^← 200 OK {2}\d+\.\d+ ms \(first byte after \d+\.\d+ ms\)$/m);
  assert.match(text, /\[body \d+ bytes, gzip → 16 bytes\]\n<h1>welcome<\/h1>\n/);
  // Binary: a short hexdump and the size.
  assert.match(text, /00000000 {2}89 89 89/);
  assert.match(text, /\[binary, 100 bytes, first 64 shown\]/);
  // The non-HTTP connection: a note, then the call as -f text shows it.
  assert.match(text, /shown raw from here \(not-http: /);
  assert.match(text, /SSL_write → 14 bytes.*\nSSH-2\.0-nope\r\n/);
  assert.equal(text.includes('\x1b['), false);
  assert.equal(sink.stats.exchanges, 2);
});

test('--redact masks credentials in -f http, jsonl http records and keeps the rest', async () => {
  const out = new Collector();
  const tracker = new HttpTracker();
  createHttpSink(out, ctx, { color: true, redact: true, tracker });
  for (const c of traffic()) tracker.write(c);
  await tracker.close();
  const text = out.text();
  for (const secret of ['abc.def', 'sid=123', 'k-777', 'sid=456', 'dark']) assert.equal(text.includes(secret), false, secret);
  assert.match(text, /Authorization:\x1b\[0m Bearer \[REDACTED\]/);
  assert.match(text, /Cookie:\x1b\[0m sid=\[REDACTED\]; theme=\[REDACTED\]/);
  assert.match(text, /Set-Cookie:\x1b\[0m sid=\[REDACTED\]; Path=\/; HttpOnly/);
  assert.ok(text.includes('\x1b['), 'colour when asked');

  const jsonOut = new Collector();
  const jsonTracker = new HttpTracker();
  const jsonl = withHttpRecords(createFormatSink('jsonl', jsonOut, ctx, { color: false }), ctx, { redact: true, tracker: jsonTracker });
  // As the pipeline does: the jsonl sink, then the tracker.
  for (const c of traffic()) {
    jsonl.write(c);
    jsonTracker.write(c);
  }
  await jsonl.close();
  const lines = jsonOut.text().trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  const http = lines.filter((l) => l.type === 'http') as unknown as HttpRecord[];
  assert.equal(http.length, 2);
  const dump = JSON.stringify(http);
  for (const secret of ['abc.def', 'sid=123', 'k-777', 'sid=456']) assert.equal(dump.includes(secret), false, secret);
  assert.deepEqual(lines.map((l) => l.type).filter((t) => t !== 'data'), ['http', 'http', 'http_fallback', 'http_summary']);
  assert.equal(lines.filter((l) => l.type === 'data').length, 5);
});

test('jsonl http records: request and response with headers, sizes, text or base64, timings', async () => {
  const jsonOut = new Collector();
  const tracker = new HttpTracker();
  const jsonl = withHttpRecords(createFormatSink('jsonl', jsonOut, ctx, { color: false }), ctx, { redact: false, tracker });
  const calls = traffic();
  for (const c of calls) {
    jsonl.write(c);
    tracker.write(c);
  }
  await jsonl.close();
  const http = jsonOut
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as HttpRecord)
    .filter((l) => l.type === 'http');
  const [login, logo] = http;
  assert.equal(login!.request.method, 'POST');
  assert.equal(login!.request.url, 'https://shop.test/login?next=%2F');
  assert.deepEqual(login!.request.headers[2], { name: 'Cookie', value: 'sid=123; theme=dark' });
  assert.equal(login!.request.body.text, 'user=ann&');
  assert.equal(login!.response!.status, 200);
  assert.equal(login!.response!.body.content_encoding, 'gzip');
  assert.equal(login!.response!.body.text, '<h1>welcome</h1>');
  assert.equal(login!.conn.remote, '127.0.0.1:8443');
  assert.equal(login!.conn.id, 12);
  assert.equal(login!.timings.request_start_ns, String(calls[0]!.tsNs));
  assert.equal(login!.timings.response_end_ns, String(calls[1]!.tsNs));
  const wallUs = ctx.wallClockNs(calls[0]!.tsNs) / 1000n;
  assert.equal(login!.ts, `${new Date(Number(wallUs / 1000n)).toISOString().slice(0, 19)}.${String(wallUs % 1_000_000n).padStart(6, '0')}Z`);
  assert.equal(logo!.response!.body.base64, Buffer.alloc(100, 0x89).toString('base64'));
  assert.equal(logo!.response!.body.size, 100);
});

test('one tracker, fed each call once, serves two outputs and closes both', async () => {
  const tracker = new HttpTracker();
  const a = new Collector();
  const b = new Collector();
  createHttpSink(a, ctx, { color: false, redact: false, tracker });
  createHttpSink(b, ctx, { color: false, redact: true, tracker });
  for (const c of traffic()) tracker.write(c);
  await tracker.close();
  assert.equal(tracker.stats.exchanges, 2);
  assert.equal((a.text().match(/^← 200/gm) ?? []).length, 2);
  assert.equal((b.text().match(/^← 200/gm) ?? []).length, 2);
  assert.ok(a.text().includes('abc.def'));
  assert.equal(b.text().includes('abc.def'), false);
});

test('redaction: which headers count as credentials', () => {
  for (const name of ['Authorization', 'cookie', 'Set-Cookie', 'Proxy-Authorization', 'X-API-Key', 'apikey', 'X-Auth-Token', 'x-client-secret', 'private-token', 'X-Amz-Security-Token'])
    assert.ok(isSensitiveHeader(name), name);
  for (const name of ['content-type', 'accept', 'x-request-id', 'tokenizer-version', 'user-agent']) assert.equal(isSensitiveHeader(name), false, name);
  const headers = [{ name: 'accept', value: '*/*' }, { name: 'x-custom', value: 'v', sensitive: true }];
  assert.deepEqual(redactHeaders(headers, true), [{ name: 'accept', value: '*/*' }, { name: 'x-custom', value: '[REDACTED]', sensitive: true }]);
  assert.equal(redactHeaders(headers, false), headers);
});

test('the summary line counts exchanges, HPACK errors and fallbacks by reason', async () => {
  const tracker = new HttpTracker();
  for (const c of traffic()) tracker.write(c);
  await tracker.close();
  assert.equal(
    formatHttpSummary(tracker.stats),
    'http: 2 exchanges (2 HTTP/1.x, 0 HTTP/2, 0 incomplete) on 1 of 2 connections; 0 HTTP/2 header blocks, 0 HPACK errors; raw fallbacks: 1 not-http',
  );
});

test('an output stream that dies (EPIPE) does not break decoding', async () => {
  const out = new Writable({
    write(_c, _e, cb) {
      const err: NodeJS.ErrnoException = new Error('EPIPE');
      err.code = 'EPIPE';
      cb(err);
    },
  });
  out.on('error', () => {});
  let closedWith: string | undefined;
  const tracker = new HttpTracker();
  const sink = createHttpSink(out, ctx, { color: false, redact: false, flushBytes: 1, onClosed: (e) => (closedWith = e.code), tracker });
  for (const c of traffic()) tracker.write(c);
  await tracker.close();
  assert.equal(closedWith, 'EPIPE');
  assert.equal(sink.stats.exchanges, 2);
});
