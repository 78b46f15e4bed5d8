// HTTP/1.x rebuilt from crafted byte streams: keep-alive, pipelining, chunked + gzip, HEAD,
// 204/304, 100-continue, upgrade, server role, and the fallbacks to raw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, brotliCompressSync, deflateSync } from 'node:zlib';
import { HttpTracker } from '../src/http/tracker.js';
import { decodeBody } from '../src/http/body.js';
import { call, collect, split } from './support/http-streams.js';

function run(calls: ReturnType<typeof call>[], opts = {}) {
  const tracker = new HttpTracker(opts);
  const got = collect(tracker);
  for (const c of calls) tracker.write(c);
  return { tracker, got };
}

test('a keep-alive connection: two requests, each paired with its response, bodies and timings', async () => {
  const calls = [
    call('write', 'GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhel'),
    call('read', 'lo'),
    call('write', 'POST /b?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc'),
    call('read', 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'),
  ];
  const { tracker, got } = run(calls);
  await tracker.close();
  assert.equal(got.exchanges.length, 2);
  const [a, b] = got.exchanges;
  assert.equal(a!.request.method, 'GET');
  assert.equal(a!.request.url, 'https://example.com/a');
  assert.equal(a!.httpVersion, 'HTTP/1.1');
  assert.equal(a!.response!.status, 200);
  assert.equal(a!.response!.statusText, 'OK');
  assert.equal(a!.response!.body.bytes.toString(), 'hello');
  assert.equal(a!.conn.role, 'client');
  assert.equal(a!.timings.requestStartNs, calls[0]!.tsNs);
  assert.equal(a!.timings.responseStartNs, calls[1]!.tsNs);
  assert.equal(a!.timings.responseEndNs, calls[2]!.tsNs);
  assert.equal(b!.request.method, 'POST');
  assert.equal(b!.request.url, 'https://example.com/b?x=1');
  assert.equal(b!.request.body.bytes.toString(), 'abc');
  assert.equal(b!.response!.status, 201);
  assert.equal(a!.incomplete, undefined);
  assert.deepEqual([a!.seq, b!.seq], [1, 2]);
  assert.equal(tracker.stats.http1Exchanges, 2);
  assert.equal(tracker.stats.http1Connections, 1);
});

test('pipelining: three requests in one call, responses in one call, paired in order', async () => {
  const { tracker, got } = run([
    call('write', 'GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n'),
    call(
      'read',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nBB' +
        'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n',
    ),
  ]);
  await tracker.close();
  assert.deepEqual(
    got.exchanges.map((e) => [e.request.target, e.response?.status, e.response?.body.bytes.toString(), e.incomplete]),
    [
      ['/1', 200, 'A', undefined],
      ['/2', 404, 'BB', undefined],
      ['/3', 200, '', undefined],
    ],
  );
});

test('chunked + gzip response split at every byte boundary decodes to the same text', async () => {
  const text = Array.from({ length: 300 }, (_, i) => `line ${i}: ${(i * 7919) % 1009}`).join('\n');
  const gz = gzipSync(Buffer.from(text));
  assert.ok(gz.length > 200);
  const chunks = [gz.subarray(0, 100), gz.subarray(100, 101), gz.subarray(101)];
  const body = Buffer.concat([
    ...chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]),
    Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
  ]);
  const response = Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n\r\n'),
    body,
  ]);
  for (const size of [1, 2, 3, 7, 64, response.length]) {
    const { tracker, got } = run([call('write', 'GET /z HTTP/1.1\r\nHost: h\r\n\r\n'), ...split('read', response, size)]);
    await tracker.close();
    assert.equal(got.exchanges.length, 1, `split ${size}`);
    assert.equal(got.fallbacks.length, 0, `split ${size}`);
    const res = got.exchanges[0]!.response!;
    assert.equal(res.body.size, gz.length);
    assert.deepEqual(res.trailers, [{ name: 'X-Trailer', value: 'yes' }]);
    const decoded = decodeBody(res.body, res.headers);
    assert.equal(decoded.encoding, 'gzip');
    assert.equal(decoded.bytes.toString(), text, `split ${size}`);
    assert.equal(decoded.text, true);
  }
});

test('deflate and br bodies are decoded; an unknown coding is shown as sent with a note', () => {
  const text = Buffer.from('{"hello":"world"}');
  const body = (bytes: Buffer) => ({ bytes, size: bytes.length, complete: true });
  assert.equal(decodeBody(body(deflateSync(text)), [{ name: 'Content-Encoding', value: 'deflate' }]).bytes.toString(), text.toString());
  assert.equal(decodeBody(body(brotliCompressSync(text)), [{ name: 'content-encoding', value: 'br' }]).bytes.toString(), text.toString());
  const zstd = decodeBody(body(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), [{ name: 'content-encoding', value: 'zstd' }]);
  assert.equal(zstd.encoding, undefined);
  assert.match(zstd.note!, /zstd/);
  const broken = decodeBody(body(Buffer.from('not gzip')), [{ name: 'content-encoding', value: 'gzip' }]);
  assert.equal(broken.bytes.toString(), 'not gzip');
  assert.match(broken.note!, /shown as sent/);
});

test('HEAD, 204 and 304 responses have no body even with a Content-Length', async () => {
  const { tracker, got } = run([
    call('write', 'HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n'),
    call('write', 'DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n'),
    call('write', 'GET /c HTTP/1.1\r\nHost: h\r\nIf-None-Match: "x"\r\n\r\n'),
    call('read', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n'),
    call('write', 'GET /after HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  ]);
  await tracker.close();
  assert.deepEqual(
    got.exchanges.map((e) => [e.request.method, e.response!.status, e.response!.body.size]),
    [
      ['HEAD', 200, 0],
      ['DELETE', 204, 0],
      ['GET', 304, 0],
      ['GET', 200, 2],
    ],
  );
  assert.equal(got.fallbacks.length, 0);
});

test('100 Continue is kept as an interim response of the same exchange', async () => {
  const { tracker, got } = run([
    call('write', 'PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n'),
    call('read', 'HTTP/1.1 100 Continue\r\n\r\n'),
    call('write', 'data'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
  ]);
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  const ex = got.exchanges[0]!;
  assert.equal(ex.request.body.bytes.toString(), 'data');
  assert.equal(ex.response!.status, 200);
  assert.deepEqual(ex.response!.interim.map((i) => i.status), [100]);
});

test('Connection: close and a body delimited by the close', async () => {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  tracker.write(call('write', 'GET / HTTP/1.0\r\nHost: old\r\n\r\n', { conn: { id: 7, pid: 4242, ssl: 1n, fd: 3 } }));
  tracker.write(call('read', 'HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nuntil ', { conn: { id: 7, pid: 4242, ssl: 1n, fd: 3 } }));
  tracker.write(call('read', 'the end', { conn: { id: 7, pid: 4242, ssl: 1n, fd: 3 } }));
  assert.equal(got.exchanges.length, 0);
  tracker.connection({ type: 'close', tsNs: 1n, conn: { id: 7, pid: 4242, ssl: 1n, fd: 3 }, comm: 'curl', reason: 'SSL_free' });
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.httpVersion, 'HTTP/1.0');
  assert.equal(got.exchanges[0]!.response!.body.bytes.toString(), 'until the end');
  assert.equal(got.exchanges[0]!.incomplete, undefined);
});

test('a WebSocket upgrade: the exchange, then the rest of the connection raw', async () => {
  const ws = Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
  const { tracker, got } = run([
    call('write', 'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n'),
    call('read', Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), ws])),
    call('write', Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x69, 0x6b])),
  ]);
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.response!.status, 101);
  assert.match(got.exchanges[0]!.notes.join(), /WebSocket/);
  assert.deepEqual(got.fallbacks.map((f) => f.reason), ['upgrade']);
  assert.deepEqual(got.raw.map((r) => r.call.data), [ws, Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x69, 0x6b])]);
  assert.equal(tracker.stats.fallbacks.upgrade, 1);
});

test('a refused upgrade keeps decoding HTTP', async () => {
  const { tracker, got } = run([
    call('write', 'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
    call('write', 'GET /next HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'),
  ]);
  await tracker.close();
  assert.deepEqual(got.exchanges.map((e) => [e.request.target, e.response!.status]), [['/chat', 400], ['/next', 200]]);
  assert.equal(got.fallbacks.length, 0);
});

test('server role: SSL_read carries the requests (nginx), SSL_write the responses', async () => {
  const { tracker, got } = run([
    call('read', 'GET /srv HTTP/1.1\r\nHost: me\r\n\r\n', { comm: 'nginx' }),
    call('write', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', { comm: 'nginx' }),
  ]);
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.conn.role, 'server');
  assert.equal(got.exchanges[0]!.request.url, 'https://me/srv');
  assert.equal(got.exchanges[0]!.response!.body.bytes.toString(), 'hi');
});

test('addresses from the connection tracker give the URL authority when Host is missing', async () => {
  const conn = { id: 3, pid: 4242, ssl: 9n, fd: 5, local: { ip: '10.0.0.1', port: 40000 }, remote: { ip: '::1', port: 8443 } };
  const { tracker, got } = run([call('write', 'GET /x HTTP/1.0\r\n\r\n', { conn }), call('read', 'HTTP/1.0 204 No Content\r\n\r\n', { conn })]);
  await tracker.close();
  assert.equal(got.exchanges[0]!.request.url, 'https://[::1]:8443/x');
  assert.equal(got.exchanges[0]!.conn.id, 3);
  assert.deepEqual(got.exchanges[0]!.conn.remote, { ip: '::1', port: 8443 });
});

test('a request line split across calls is still detected; unrelated connections stay apart', async () => {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  tracker.write(call('write', 'GE', { ssl: 1n }));
  tracker.write(call('write', '\x16\x03\x01binary', { ssl: 2n }));
  tracker.write(call('write', 'T / HTTP/1.1\r\nHost: a\r\n\r\n', { ssl: 1n }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', { ssl: 1n }));
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.request.url, 'https://a/');
  assert.deepEqual(got.fallbacks.map((f) => [f.reason, f.conn.ssl]), [['not-http', 2n]]);
  assert.equal(got.raw.length, 1);
});

test('bad input never throws: malformed, mid-connection, not HTTP, and lost bytes each fall back with a note', async () => {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  // Malformed: a bad chunk size line after good headers.
  tracker.write(call('write', 'GET / HTTP/1.1\r\nHost: m\r\n\r\n', { ssl: 1n }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n', { ssl: 1n }));
  // Mid-connection: the first bytes are a response.
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx', { ssl: 2n }));
  // Not HTTP at all.
  tracker.write(call('write', 'SSH-2.0-OpenSSH\r\n', { ssl: 3n }));
  // A body cut by lost bytes.
  tracker.write(call('write', 'GET /big HTTP/1.1\r\nHost: g\r\n\r\n', { ssl: 4n }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789', { ssl: 4n }));
  tracker.write(call('read', 'abc', { ssl: 4n, lost: 50 }));
  tracker.write(call('read', 'later bytes', { ssl: 4n }));
  // Truncated by --max-bytes inside the body: skipped, counted, and no fallback.
  tracker.write(call('write', 'GET /t HTTP/1.1\r\nHost: g\r\n\r\n', { ssl: 5n }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234', { ssl: 5n, truncated: 5 }));
  await tracker.close();
  const reasons = Object.fromEntries(got.fallbacks.map((f) => [String(f.conn.ssl), f.reason]));
  assert.deepEqual(reasons, { '1': 'malformed', '2': 'mid-connection', '3': 'not-http', '4': 'gap' });
  assert.match(got.fallbacks.find((f) => f.conn.ssl === 4n)!.detail, /50 bytes lost/);
  // The cut exchanges are still reported, incomplete, with what was captured.
  const cut = got.exchanges.find((e) => e.request.target === '/big')!;
  assert.match(cut.incomplete!, /response cut/);
  assert.equal(cut.response!.body.bytes.toString(), '0123456789');
  assert.equal(cut.response!.body.complete, false);
  const truncated = got.exchanges.find((e) => e.request.target === '/t')!;
  assert.equal(truncated.response!.body.bytes.toString(), '01234');
  assert.equal(truncated.response!.body.missing, 5);
  assert.match(truncated.incomplete!, /response body: 5 bytes not captured/);
  // After a fallback the calls come out raw.
  assert.ok(got.raw.some((r) => r.call.data.toString() === 'later bytes'));
  assert.equal(tracker.stats.fallbacks.malformed, 1);
  assert.equal(tracker.stats.fallbacks.gap, 1);
  assert.equal(tracker.stats.incompleteExchanges, 3);
});

test('a request without a response is emitted as incomplete when the capture ends', async () => {
  const { tracker, got } = run([call('write', 'GET /slow HTTP/1.1\r\nHost: s\r\n\r\n')]);
  assert.equal(got.exchanges.length, 0);
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  assert.match(got.exchanges[0]!.incomplete!, /no response: the capture ended/);
  assert.equal(got.ended, true);
});

test('the tracker reports its listeners\' backpressure, ends then closes each of them once', async () => {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  const seen: string[] = [];
  let behind = false;
  let release: () => void = () => {};
  tracker.subscribe({
    exchange: () => seen.push('exchange'),
    end: () => seen.push('end'),
    close: async () => void seen.push('close'),
    get needsDrain() {
      return behind;
    },
    drained: () => new Promise<void>((resolve) => (release = resolve)),
  });
  assert.equal(tracker.needsDrain, false);
  behind = true;
  assert.equal(tracker.needsDrain, true);
  let drained = false;
  const waiting = tracker.drained().then(() => (drained = true));
  await Promise.resolve();
  assert.equal(drained, false);
  release();
  await waiting;
  behind = false;
  tracker.write(call('write', 'GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  await Promise.all([tracker.close(), tracker.close()]);
  // Calls after the end are ignored.
  tracker.write(call('write', 'GET /late HTTP/1.1\r\nHost: a\r\n\r\n'));
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  assert.deepEqual(seen, ['exchange', 'end', 'close']);
});

test('CONNECT tunnels switch to raw after the 200', async () => {
  const { tracker, got } = run([
    call('write', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'),
    call('read', 'HTTP/1.1 200 Connection established\r\n\r\n'),
    call('write', '\x16\x03\x01\x00\x05hello'),
  ]);
  await tracker.close();
  assert.equal(got.exchanges[0]!.request.url, 'https://example.com:443');
  assert.deepEqual(got.fallbacks.map((f) => f.reason), ['upgrade']);
  assert.equal(got.raw.length, 1);
});

test('calls of the connection dropped before a call: the connection falls back to raw with the reason "gap"', async () => {
  const calls = [
    call('write', 'GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n'),
    { ...call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'), callsMissedBefore: 2 },
  ];
  const { tracker, got } = run(calls);
  await tracker.close();
  assert.equal(got.fallbacks.length, 1);
  assert.equal(got.fallbacks[0]!.reason, 'gap');
  assert.match(got.fallbacks[0]!.detail, /2 earlier calls of this connection were dropped/);
  assert.equal(tracker.stats.fallbacks.gap, 1);
  assert.ok(got.exchanges.every((e) => e.response === undefined || e.incomplete !== undefined), 'no exchange is built across the hole');
});
