// Real traffic without privileges: Node's own http and http2 (h2c on loopback) talk through a
// recording proxy; the recorded bytes are fed as calls and the exchanges must match what the
// client did.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { HttpTracker } from '../src/http/tracker.js';
import { decodeBody } from '../src/http/body.js';
import { collect, recordedCalls, recordingProxy } from './support/http-streams.js';

const FILE = Buffer.from(Array.from({ length: 2000 }, (_, i) => `row ${i}\n`).join(''));

function handler(path: string, method: string, body: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  if (path === '/gzip') return { status: 200, headers: { 'content-encoding': 'gzip', 'content-type': 'text/plain' }, body: gzipSync(FILE) };
  if (path === '/missing') return { status: 404, headers: { 'content-type': 'text/plain' }, body: Buffer.from('nope') };
  if (method === 'POST') return { status: 201, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ got: body.length })) };
  return { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`you asked for ${path}`) };
}

test('real HTTP/1.1 keep-alive traffic from node:http is rebuilt exchange by exchange', async () => {
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const r = handler(req.url!, req.method!, Buffer.concat(parts));
      // Chunked when no length is given.
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = await recordingProxy(server.address() as AddressInfo);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const plan: [string, string, Buffer?][] = [
    ['GET', '/a'],
    ['POST', '/upload', Buffer.alloc(30000, 0x61)],
    ['GET', '/gzip'],
    ['HEAD', '/a'],
    ['GET', '/missing'],
  ];
  const seen: [string, string, number][] = [];
  for (const [method, path, body] of plan) {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method, path, agent, headers: { authorization: 'Bearer s3cret' } }, (res) => {
        res.resume();
        res.on('end', () => {
          seen.push([method, path, res.statusCode!]);
          resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
    // Let the agent take the socket back before the next request, so it is reused.
    await new Promise((r) => setTimeout(r, 5));
  }
  agent.destroy();
  await new Promise((r) => setTimeout(r, 50));
  await proxy.close();
  server.close();
  // Keep-alive: several requests share a connection (Node may still open a second one).
  assert.ok(proxy.recorded.length < plan.length, `${proxy.recorded.length} connections`);
  const tracker = new HttpTracker({ defaultScheme: 'http' });
  const got = collect(tracker);
  proxy.recorded.forEach((log, i) => {
    for (const c of recordedCalls(log, BigInt(i + 1))) tracker.write(c);
  });
  await tracker.close();
  assert.equal(got.fallbacks.length, 0, got.fallbacks.map((f) => f.detail).join());
  assert.equal(tracker.stats.http1Connections, proxy.recorded.length);
  assert.deepEqual(
    got.exchanges.map((e) => [e.request.method, e.request.target, e.response!.status]),
    seen,
  );
  assert.equal(got.exchanges[0]!.request.url, `http://127.0.0.1:${proxy.port}/a`);
  assert.equal(got.exchanges[1]!.request.body.size, 30000);
  assert.equal(got.exchanges[1]!.response!.body.bytes.toString(), '{"got":30000}');
  const gz = got.exchanges[2]!.response!;
  assert.deepEqual(decodeBody(gz.body, gz.headers).bytes, FILE);
  assert.equal(got.exchanges[3]!.response!.body.size, 0);
  assert.ok(got.exchanges.every((e) => e.incomplete === undefined));
});

test('real HTTP/2 (h2c) traffic from node:http2: several streams on one connection, HPACK state kept', async () => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => {
      const r = handler(headers[':path']!, headers[':method']!, Buffer.concat(parts));
      stream.respond({ ':status': r.status, ...r.headers, 'x-served-by': 'node-http2' });
      stream.end(r.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = await recordingProxy(server.address() as AddressInfo);
  const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
  const plan: [string, string, Buffer?][] = [];
  for (let i = 0; i < 60; i++) plan.push(['GET', `/item/${i}`]);
  plan.push(['POST', '/upload', Buffer.alloc(100000, 0x62)], ['GET', '/gzip'], ['GET', '/missing']);
  const seen: [string, string, number, string][] = [];
  // Several at once: streams interleave on the wire.
  await Promise.all(
    plan.map(
      ([method, path, body]) =>
        new Promise<void>((resolve, reject) => {
          const req = session.request({ ':method': method, ':path': path, 'user-agent': 'tlstap-test', cookie: 'session=abc' });
          const parts: Buffer[] = [];
          let status = 0;
          req.on('response', (h) => {
            status = Number(h[':status']);
          });
          req.on('data', (d: Buffer) => parts.push(d));
          req.on('end', () => {
            seen.push([method, path, status, Buffer.concat(parts).toString('latin1')]);
            resolve();
          });
          req.on('error', reject);
          req.end(body);
        }),
    ),
  );
  session.close();
  await new Promise((r) => setTimeout(r, 50));
  await proxy.close();
  server.close();
  const tracker = new HttpTracker({ defaultScheme: 'http' });
  const got = collect(tracker);
  for (const c of recordedCalls(proxy.recorded[0]!, 2n)) tracker.write(c);
  await tracker.close();
  assert.equal(got.fallbacks.length, 0, got.fallbacks.map((f) => f.detail).join());
  assert.equal(tracker.stats.hpackErrors, 0);
  const byPath = new Map(got.exchanges.map((e) => [e.request.target, e]));
  assert.equal(got.exchanges.length, plan.length);
  for (const [method, path, status, body] of seen) {
    const ex = byPath.get(path)!;
    assert.ok(ex, path);
    assert.equal(ex.request.method, method);
    assert.equal(ex.response!.status, status);
    assert.equal(ex.response!.body.bytes.toString('latin1'), body, path);
    assert.ok(ex.response!.headers.some((h) => h.name === 'x-served-by' && h.value === 'node-http2'));
    assert.ok(ex.request.headers.some((h) => h.name === 'user-agent' && h.value === 'tlstap-test'));
    assert.equal(ex.incomplete, undefined);
  }
  assert.equal(byPath.get('/upload')!.request.body.size, 100000);
  const gz = byPath.get('/gzip')!.response!;
  assert.deepEqual(decodeBody(gz.body, gz.headers).bytes, FILE);
  assert.equal(tracker.stats.headerBlocks, plan.length * 2);
});
