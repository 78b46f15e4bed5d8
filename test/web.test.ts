// The web view without a browser or privileges: the --web address, the private spool, and the
// server's rules (token, Host, Origin, WebSocket) over exchanges a real HttpTracker rebuilt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { WebSocket } from 'ws';
import { HttpTracker } from '../src/http/tracker.js';
import { openWebView, parseWebAddress } from '../src/web/index.js';
import { Spool } from '../src/web/spool.js';
import { call } from './support/http-streams.js';

test('--web takes [HOST:]PORT, loopback by default, and says what it expects otherwise', () => {
  assert.deepEqual(parseWebAddress('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseWebAddress('0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseWebAddress('localhost:9000'), { host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseWebAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseWebAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.throws(() => parseWebAddress('70000'), /\[HOST:\]PORT/);
  assert.throws(() => parseWebAddress('example.com:80'), /not an IPv4 or IPv6 address/);
});

test('the spool is a 0600 file in a 0700 directory, read back by offset, and gone after remove()', () => {
  const spool = new Spool();
  const a = spool.append(Buffer.from('first'));
  const b = spool.append(randomBytes(5000));
  assert.equal(statSync(spool.path).mode & 0o777, 0o600);
  assert.equal(statSync(dirname(spool.path)).mode & 0o777, 0o700);
  assert.equal(spool.read(a).toString(), 'first');
  assert.equal(spool.read(b).length, 5000);
  spool.remove();
  assert.equal(existsSync(dirname(spool.path)), false);
});

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; cors?: string | string[] }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), cors: res.headers['access-control-allow-origin'] }));
    }).on('error', reject);
  });
}

test('the server answers only with the token, from its own origin; bodies come back byte for byte; --redact applies', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-web-unit-'));
  const tracker = new HttpTracker();
  const lines: string[] = [];
  const view = await openWebView({ host: '127.0.0.1', port: 0 }, { files: [], wallClockNs: (ns) => ns }, { redact: true, tracker, log: (l) => lines.push(l), closeAtEnd: true, spoolDir: dir });
  try {
    assert.match(lines[0]!, /web view at http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    const body = randomBytes(3000);
    tracker.write(call('write', 'GET /img HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer s3cret\r\n\r\n'));
    tracker.write(call('read', Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: ${body.length}\r\n\r\n`), body])));
    const base = view.url.slice(0, view.url.indexOf('?'));
    const token = new URL(view.url).searchParams.get('token')!;
    const host = new URL(view.url).host;

    for (const [path, headers] of [
      ['api/rows', {}],
      ['api/rows?token=nope', {}],
      [`api/rows?token=${token}`, { origin: 'http://attacker.test' }],
      [`api/rows?token=${token}`, { host: `attacker.test:${new URL(view.url).port}` }],
    ] as const) {
      const res = await get(base + path, headers);
      assert.equal(res.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.equal(res.cors, undefined);
    }
    const rows = JSON.parse((await get(`${base}api/rows?after=0&token=${token}`, { origin: `http://${host}` })).body.toString()) as unknown[][];
    assert.deepEqual(rows.map((r) => [r[0], r[4], r[5], r[6], r[7], r[8]]), [[1, 'GET', 'example.test', '/img', 200, 3000]]);
    const detail = JSON.parse((await get(`${base}api/exchange?seq=1&token=${token}`)).body.toString()) as { request: { headers: { name: string; value: string }[] } };
    const auth = detail.request.headers.find((h) => h.name === 'Authorization')!;
    assert.doesNotMatch(auth.value, /s3cret/);
    assert.ok((await get(`${base}api/body?seq=1&side=response&token=${token}`)).body.equals(body));
    assert.deepEqual(JSON.parse((await get(`${base}api/search?q=s3cret&token=${token}`)).body.toString()), []);

    // A WebSocket needs the token too.
    const wsUrl = `ws://${host}/ws`;
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(wsUrl);
      ws.on('open', () => resolve('open'));
      ws.on('error', (e) => resolve(e.message));
    });
    assert.match(refused, /403/);
    const update = await new Promise<{ type: string; last: number }>((resolve, reject) => {
      const ws = new WebSocket(`${wsUrl}?token=${token}`);
      ws.on('message', (m) => {
        resolve(JSON.parse(m.toString()) as { type: string; last: number });
        ws.close();
      });
      ws.on('error', reject);
      tracker.write(call('write', 'GET /again HTTP/1.1\r\nHost: example.test\r\n\r\n'));
      tracker.write(call('read', 'HTTP/1.1 204 No Content\r\n\r\n'));
    });
    assert.equal(update.type, 'update');
    assert.equal(update.last, 2);
  } finally {
    await tracker.close();
    assert.deepEqual(readdirSync(dir), [], 'the spool is removed when the view closes');
    rmSync(dir, { recursive: true, force: true });
  }
});
