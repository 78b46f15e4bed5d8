// HTTP/2 rebuilt from crafted frames (headers compressed with hpack.js's own encoder): dynamic
// table continuity over 200 requests, CONTINUATION, padding, splits at every byte, RST_STREAM,
// GOAWAY, PUSH_PROMISE, SETTINGS, server role, and fallbacks for broken HPACK and midway starts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { decodeBody } from '../src/http/body.js';
import type { TlsCall } from '../src/events/types.js';
import { call, decodeCalls, frame, FT, HeaderEncoder, padded, PREFACE, settings } from './support/http-streams.js';

const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/** A client and a server with their own HPACK encoders, writing one connection's two byte streams. */
class H2Conversation {
  readonly client = new HeaderEncoder();
  readonly server = new HeaderEncoder();
  toServer: Buffer[] = [Buffer.from(PREFACE), frame(FT.SETTINGS, 0, 0, settings([[3, 100]]))];
  toClient: Buffer[] = [frame(FT.SETTINGS, 0, 0, settings([[4, 65535]])), frame(FT.SETTINGS, 1, 0)];

  request(id: number, method: string, path: string, extra: [string, string][] = [], body?: Buffer): void {
    const block = this.client.block([[':method', method], [':scheme', 'https'], [':authority', 'example.com'], [':path', path], ...extra]);
    this.toServer.push(frame(FT.HEADERS, END_HEADERS | (body ? 0 : END_STREAM), id, block));
    if (body) this.toServer.push(frame(FT.DATA, END_STREAM, id, body));
  }

  response(id: number, status: number, body: Buffer, extra: [string, string][] = []): void {
    this.toClient.push(frame(FT.HEADERS, END_HEADERS, id, this.server.block([[':status', String(status)], ...extra])));
    this.toClient.push(frame(FT.DATA, END_STREAM, id, body));
  }

  /** As calls of the traced client: everything it wrote, then everything it read. */
  calls(): TlsCall[] {
    return [call('write', Buffer.concat(this.toServer)), call('read', Buffer.concat(this.toClient))];
  }
}

const decode = decodeCalls;

test('200 requests on one connection: HPACK dynamic table kept across calls, every exchange paired', async () => {
  const conv = new H2Conversation();
  const calls: TlsCall[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const id = 1 + 2 * i;
    conv.request(id, 'GET', `/item/${i}`, [
      ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36'],
      ['accept', '*/*'],
      ['x-request-id', `req-${i % 7}`],
    ]);
    sizes.push(conv.toServer[conv.toServer.length - 1]!.length);
    conv.response(id, i % 10 === 0 ? 404 : 200, Buffer.from(`body ${i}`), [['content-type', 'text/plain'], ['server', 'nginx/1.22.1']]);
    // Each request and response in its own calls, interleaved as a client sees them.
    calls.push(call('write', Buffer.concat(conv.toServer)), call('read', Buffer.concat(conv.toClient)));
    conv.toServer = [];
    conv.toClient = [];
  }
  // The encoder really used its dynamic table: later header blocks are much smaller.
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.ok(total < (sizes[0]! * 200) / 3, `first header frame ${sizes[0]} bytes, all 200: ${total}`);
  const { tracker, got } = await decode(calls);
  assert.equal(got.exchanges.length, 200);
  assert.equal(got.fallbacks.length, 0);
  got.exchanges.forEach((ex, i) => {
    assert.equal(ex.streamId, 1 + 2 * i);
    assert.equal(ex.request.url, `https://example.com/item/${i}`);
    assert.equal(ex.response!.status, i % 10 === 0 ? 404 : 200);
    assert.equal(ex.response!.body.bytes.toString(), `body ${i}`);
    assert.ok(ex.request.headers.some((h) => h.name === 'x-request-id' && h.value === `req-${i % 7}`));
    assert.ok(ex.response!.headers.some((h) => h.name === 'server' && h.value === 'nginx/1.22.1'));
  });
  assert.equal(tracker.stats.headerBlocks, 400);
  assert.equal(tracker.stats.hpackErrors, 0);
  assert.equal(tracker.stats.http2Exchanges, 200);
});

test('frames split across calls at every byte boundary give the same exchanges', async () => {
  const conv = new H2Conversation();
  conv.request(1, 'POST', '/submit', [['content-type', 'application/json']], Buffer.from('{"a":1}'));
  conv.response(1, 201, Buffer.from('created'));
  conv.request(3, 'GET', '/next', [['content-type', 'application/json']]);
  conv.response(3, 200, Buffer.from('again'));
  const up = Buffer.concat(conv.toServer);
  const down = Buffer.concat(conv.toClient);
  const expect = [
    ['POST', 'https://example.com/submit', '{"a":1}', 201, 'created'],
    ['GET', 'https://example.com/next', '', 200, 'again'],
  ];
  const summary = (exs: Awaited<ReturnType<typeof decode>>['got']['exchanges']) =>
    exs.map((e) => [e.request.method, e.request.url, e.request.body.bytes.toString(), e.response?.status, e.response?.body.bytes.toString()]);
  for (let k = 1; k < Math.max(up.length, down.length); k++) {
    const calls: TlsCall[] = [];
    if (k < up.length) calls.push(call('write', up.subarray(0, k)), call('write', up.subarray(k)));
    else calls.push(call('write', up));
    if (k < down.length) calls.push(call('read', down.subarray(0, k)), call('read', down.subarray(k)));
    else calls.push(call('read', down));
    const { got } = await decode(calls);
    assert.deepEqual(summary(got.exchanges), expect, `split at ${k}`);
  }
  // And one byte per call.
  const bytewise: TlsCall[] = [];
  for (let i = 0; i < up.length; i++) bytewise.push(call('write', up.subarray(i, i + 1)));
  for (let i = 0; i < down.length; i++) bytewise.push(call('read', down.subarray(i, i + 1)));
  assert.deepEqual(summary((await decode(bytewise)).got.exchanges), expect);
});

test('HEADERS + CONTINUATION, padding, priority, trailers and a gzip DATA body', async () => {
  const client = new HeaderEncoder();
  const server = new HeaderEncoder();
  const block = client.block([
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', 'api.test'],
    [':path', '/long'],
    ['x-long', 'v'.repeat(300)],
  ]);
  const a = block.subarray(0, 10);
  const b = block.subarray(10, 200);
  const c = block.subarray(200);
  const prio = Buffer.from([0, 0, 0, 0, 16]);
  const up = Buffer.concat([
    PREFACE,
    frame(FT.SETTINGS, 0, 0),
    frame(FT.HEADERS, PADDED | PRIORITY | END_STREAM, 1, padded(Buffer.concat([prio, a]), 7)),
    frame(FT.CONTINUATION, 0, 1, b),
    frame(FT.CONTINUATION, END_HEADERS, 1, c),
  ]);
  const text = 'compressed '.repeat(40);
  const gz = gzipSync(text);
  const down = Buffer.concat([
    frame(FT.SETTINGS, 0, 0),
    frame(FT.HEADERS, END_HEADERS, 1, server.block([[':status', '200'], ['content-encoding', 'gzip'], ['content-type', 'text/plain']])),
    frame(FT.DATA, PADDED, 1, padded(gz.subarray(0, 20), 3)),
    frame(FT.PING, 0, 0, Buffer.alloc(8)),
    frame(FT.WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 1, 0])),
    frame(FT.DATA, 0, 1, gz.subarray(20)),
    frame(FT.HEADERS, END_HEADERS | END_STREAM, 1, server.block([['grpc-status', '0']])),
  ]);
  const { got } = await decode([call('write', up), call('read', down)]);
  assert.equal(got.fallbacks.length, 0, got.fallbacks.map((f) => f.detail).join());
  const ex = got.exchanges[0]!;
  assert.equal(ex.request.url, 'https://api.test/long');
  assert.equal(ex.request.headers.find((h) => h.name === 'x-long')!.value, 'v'.repeat(300));
  assert.equal(ex.response!.body.size, gz.length);
  assert.equal(decodeBody(ex.response!.body, ex.response!.headers).bytes.toString(), text);
  assert.deepEqual(ex.response!.trailers, [{ name: 'grpc-status', value: '0' }]);
});

test('RST_STREAM ends one stream as incomplete; GOAWAY fails the streams the server never took', async () => {
  const conv = new H2Conversation();
  conv.request(1, 'GET', '/one');
  conv.request(3, 'GET', '/cancelled');
  conv.request(5, 'GET', '/refused');
  conv.toServer.push(frame(FT.RST_STREAM, 0, 3, Buffer.from([0, 0, 0, 8])));
  conv.response(1, 200, Buffer.from('ok'));
  conv.toClient.push(frame(FT.GOAWAY, 0, 0, Buffer.from([0, 0, 0, 3, 0, 0, 0, 0])));
  const { got, tracker } = await decode(conv.calls());
  const byPath = Object.fromEntries(got.exchanges.map((e) => [e.request.target, e]));
  assert.equal(byPath['/one']!.response!.status, 200);
  assert.equal(byPath['/one']!.incomplete, undefined);
  assert.match(byPath['/cancelled']!.incomplete!, /reset by the client: CANCEL \(0x8\)/);
  assert.match(byPath['/refused']!.incomplete!, /GOAWAY/);
  assert.equal(tracker.stats.incompleteExchanges, 2);
});

test('PUSH_PROMISE creates a pushed exchange paired with the response on the promised stream', async () => {
  const conv = new H2Conversation();
  conv.request(1, 'GET', '/index.html');
  const promise = conv.server.block([[':method', 'GET'], [':scheme', 'https'], [':authority', 'example.com'], [':path', '/style.css']]);
  conv.toClient.push(frame(FT.PUSH_PROMISE, END_HEADERS, 1, Buffer.concat([Buffer.from([0, 0, 0, 2]), promise])));
  conv.response(1, 200, Buffer.from('<html>'));
  conv.response(2, 200, Buffer.from('body{}'));
  const { got } = await decode(conv.calls());
  assert.deepEqual(
    got.exchanges.map((e) => [e.streamId, e.request.target, e.pushed ?? false, e.response!.body.bytes.toString()]),
    [
      [1, '/index.html', false, '<html>'],
      [2, '/style.css', true, 'body{}'],
    ],
  );
});

test('SETTINGS_HEADER_TABLE_SIZE lets the encoder grow its table; the decoder follows', async () => {
  const client = new HeaderEncoder();
  // The client's encoder may use 8192 bytes once the server allowed it.
  client.comp._table.protocolMaxSize = 8192;
  client.comp.updateTableSize(8192);
  const update: Buffer[] = [];
  for (let chunk = client.comp.read(); chunk !== null; chunk = client.comp.read()) update.push(chunk);
  const server = new HeaderEncoder();
  const big = 'x'.repeat(3000);
  const up = [Buffer.from(PREFACE), frame(FT.SETTINGS, 0, 0)];
  const down = [frame(FT.SETTINGS, 0, 0, settings([[1, 8192]]))];
  for (let i = 0; i < 3; i++) {
    const id = 1 + 2 * i;
    const block = client.block([[':method', 'GET'], [':scheme', 'https'], [':authority', 'h'], [':path', `/${i}`], ['x-a', big], ['x-b', `${big}b`]]);
    up.push(frame(FT.HEADERS, END_HEADERS | END_STREAM, id, i === 0 ? Buffer.concat([...update, block]) : block));
    down.push(frame(FT.HEADERS, END_HEADERS | END_STREAM, id, server.block([[':status', '204']])));
  }
  // Both 3000-byte headers stay in the 8192-byte table: later blocks index them.
  assert.ok(up[3]!.length < 100);
  // The client reads the server's SETTINGS before its first request, as a real client must.
  const { got } = await decode([
    call('write', Buffer.concat(up.slice(0, 2))),
    call('read', down[0]!),
    call('write', Buffer.concat(up.slice(2))),
    call('read', Buffer.concat(down.slice(1))),
  ]);
  assert.equal(got.fallbacks.length, 0, got.fallbacks.map((f) => f.detail).join());
  assert.equal(got.exchanges.length, 3);
  for (const ex of got.exchanges) assert.equal(ex.request.headers.find((h) => h.name === 'x-b')!.value, `${big}b`);
});

test('server role: nginx writes its SETTINGS before it reads the client preface', async () => {
  const conv = new H2Conversation();
  conv.request(1, 'GET', '/srv');
  conv.response(1, 200, Buffer.from('from nginx'));
  const [settingsFrame, ack, ...rest] = conv.toClient;
  const calls = [
    call('write', settingsFrame!, { comm: 'nginx' }),
    call('read', Buffer.concat(conv.toServer), { comm: 'nginx' }),
    call('write', Buffer.concat([ack!, ...rest]), { comm: 'nginx' }),
  ];
  const { got } = await decode(calls);
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.conn.role, 'server');
  assert.equal(got.exchanges[0]!.response!.body.bytes.toString(), 'from nginx');
});

test('a broken HPACK block: raw fallback with a note, counted, later calls raw', async () => {
  const conv = new H2Conversation();
  conv.request(1, 'GET', '/fine');
  conv.response(1, 200, Buffer.from('ok'));
  // Index 200 is in neither table.
  conv.toServer.push(frame(FT.HEADERS, END_HEADERS | END_STREAM, 3, Buffer.from([0x80 | 0x7f, 200 - 127])));
  const { got, tracker } = await decode([...conv.calls(), call('write', 'after')]);
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.exchanges[0]!.request.target, '/fine');
  assert.equal(got.fallbacks.length, 1);
  assert.equal(got.fallbacks[0]!.reason, 'hpack');
  assert.match(got.fallbacks[0]!.detail, /header block 2 \(stream 3, from the client\)/);
  assert.equal(tracker.stats.hpackErrors, 1);
  assert.equal(tracker.stats.fallbacks.hpack, 1);
  assert.ok(got.raw.some((r) => r.call.data.toString() === 'after'));
});

test('a capture that starts midway through an HTTP/2 connection is raw, marked mid-connection', async () => {
  const enc = new HeaderEncoder();
  const calls = [
    call('write', frame(FT.HEADERS, END_HEADERS | END_STREAM, 41, enc.block([[':method', 'GET'], [':path', '/x']]))),
    call('read', frame(FT.DATA, END_STREAM, 39, Buffer.from('tail of an earlier response'))),
  ];
  const { got, tracker } = await decode(calls);
  assert.equal(got.exchanges.length, 0);
  assert.deepEqual(got.fallbacks.map((f) => f.reason), ['mid-connection']);
  assert.equal(got.raw.length, 2);
  assert.equal(tracker.stats.fallbacks['mid-connection'], 1);
});

test('malformed framing (CONTINUATION out of place) falls back, never throws', async () => {
  const up = Buffer.concat([PREFACE, frame(FT.SETTINGS, 0, 0), frame(FT.CONTINUATION, END_HEADERS, 1, Buffer.from([0x82]))]);
  const { got } = await decode([call('write', up)]);
  assert.deepEqual(got.fallbacks.map((f) => f.reason), ['malformed']);
  assert.match(got.fallbacks[0]!.detail, /CONTINUATION/);
});
