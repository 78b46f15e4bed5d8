// The demo server: real clients get the right bodies, downloads are byte-exact, and the
// stand-alone server process announces itself and stops cleanly.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  bytesChunks,
  expectedBytes,
  HELLO_BODY,
  JSON_BODY,
  sha256OfBytes,
  startDemoServer,
} from '../src/demo/server.js';
import type { DemoServer } from '../src/demo/server.js';
import { curlFetch, nodeFetch, pythonFetch } from '../src/demo/clients.js';
import type { ClientResult } from '../src/demo/clients.js';
import { spawnDemoServer } from '../src/demo/server-process.js';

const MiB = 1024 * 1024;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function assertOk(r: ClientResult): void {
  assert.equal(r.exitCode, 0, `${r.comm} exited ${r.exitCode} (signal ${r.signal}): ${r.stderr}`);
}

describe('the byte generator', () => {
  test('is deterministic, sized exactly, and independent of chunking', () => {
    for (const n of [0, 1, 3, 4, 5, 4096, 65536, 65537, 200_003]) {
      const a = expectedBytes(n);
      assert.equal(a.length, n);
      assert.deepEqual(a, expectedBytes(n));
      assert.deepEqual(Buffer.concat([...bytesChunks(n, 4)]), a);
      assert.deepEqual(Buffer.concat([...bytesChunks(n, 1000)]), a);
      assert.equal(sha256OfBytes(n), sha256(a));
    }
  });

  test('gives each length its own stream, and it does not look constant', () => {
    assert.notDeepEqual(expectedBytes(64), expectedBytes(65).subarray(0, 64));
    const counts = new Uint32Array(256);
    for (const b of expectedBytes(256 * 1024)) counts[b] = (counts[b] ?? 0) + 1;
    assert.ok(Math.min(...counts) > 700 && Math.max(...counts) < 1350, 'bytes roughly uniform');
  });

  test('rejects a bad length', () => {
    assert.throws(() => expectedBytes(-1), RangeError);
    assert.throws(() => expectedBytes(1.5), RangeError);
  });
});

describe('the in-process demo server', () => {
  let server: DemoServer;
  let clientPid = 0;
  const commsSeen: string[] = [];

  before(async () => {
    server = await startDemoServer({
      routes: {
        // Reads the client's comm while its request is in flight.
        'GET /whoami': (_req, res) => {
          commsSeen.push(readFileSync(`/proc/${clientPid}/comm`, 'utf8').trim());
          res.end('ok\n');
        },
      },
    });
  });
  after(async () => {
    const dir = dirname(server.certPath);
    await server.close();
    assert.equal(existsSync(dir), false, 'certificate directory removed on close');
    await server.close(); // twice is fine
  });

  test('listens on 127.0.0.1 with a certificate in a private directory', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
    assert.equal(statSync(dirname(server.certPath)).mode & 0o777, 0o700);
    assert.match(readFileSync(server.certPath, 'utf8'), /BEGIN CERTIFICATE/);
  });

  test('curl, python3 and node get /hello', async () => {
    for (const fetch of [curlFetch, pythonFetch, nodeFetch]) {
      const r = await fetch(`${server.url}/hello`);
      assertOk(r);
      assert.equal(r.stdout.toString(), HELLO_BODY, `${r.comm} body`);
    }
  });

  test('node gets /json', async () => {
    const r = await nodeFetch(`${server.url}/json`);
    assertOk(r);
    assert.equal(r.stdout.toString(), JSON_BODY);
    assert.deepEqual(JSON.parse(r.stdout.toString()).items, [1, 2, 3]);
  });

  test('curl downloads 5 MiB byte-exactly, to stdout and to a file', async () => {
    const n = 5 * MiB;
    const r = await curlFetch(`${server.url}/bytes/${n}`);
    assertOk(r);
    assert.equal(r.stdout.length, n);
    assert.equal(sha256(r.stdout), sha256OfBytes(n));

    const dir = await mkdtemp(join(tmpdir(), 'tlstap-test-'));
    try {
      const outFile = join(dir, 'out.bin');
      const f = await curlFetch(`${server.url}/bytes/${n + 7}`, { outFile });
      assertOk(f);
      assert.equal(f.stdout.length, 0);
      assert.equal(sha256(await readFile(outFile)), sha256OfBytes(n + 7));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('node and python3 download /bytes/N byte-exactly', async () => {
    const n = 1 * MiB + 3;
    for (const fetch of [nodeFetch, pythonFetch]) {
      const r = await fetch(`${server.url}/bytes/${n}`);
      assertOk(r);
      assert.deepEqual(r.stdout, expectedBytes(n), `${r.comm} body`);
    }
  });

  test('POST /echo returns a binary body unchanged, and the request is recorded', async () => {
    const body = expectedBytes(70_001);
    for (const fetch of [curlFetch, pythonFetch, nodeFetch]) {
      const before = server.requests.length;
      const r = await fetch(`${server.url}/echo`, { body });
      assertOk(r);
      assert.deepEqual(r.stdout, body, `${r.comm} echo`);
      const seen = server.requests.slice(before).find((q) => q.path === '/echo');
      assert.ok(seen, `${r.comm} request recorded`);
      assert.equal(seen.method, 'POST');
      assert.deepEqual(seen.body, body);
      assert.ok(seen.remotePort > 0);
    }
  });

  test('records GET requests with their headers', async () => {
    const r = await curlFetch(`${server.url}/hello?x=1`);
    assertOk(r);
    const last = server.requests.at(-1);
    assert.equal(last?.method, 'GET');
    assert.equal(last?.path, '/hello?x=1');
    assert.match(String(last?.headers['user-agent']), /^curl\//);
    assert.equal(last?.body.length, 0);
  });

  test('answers unknown routes with 404 and bad sizes with 400', async () => {
    const statusOnly = ['-w', '%{http_code}', '-o', '/dev/null'];
    const r = await curlFetch(`${server.url}/nope`, { extraArgs: statusOnly });
    assert.equal(r.stdout.toString(), '404');
    const b = await curlFetch(`${server.url}/bytes/abc`, { extraArgs: statusOnly });
    assert.equal(b.stdout.toString(), '400');
    const m = await curlFetch(`${server.url}/hello`, { body: 'x', extraArgs: statusOnly });
    assert.equal(m.stdout.toString(), '405');
  });

  test('clients report the pid and comm they really have', async () => {
    commsSeen.length = 0;
    const results: ClientResult[] = [];
    for (const fetch of [curlFetch, pythonFetch, nodeFetch]) {
      const r = await fetch(`${server.url}/whoami`, { onSpawn: (pid) => (clientPid = pid) });
      assertOk(r);
      assert.equal(r.pid, clientPid);
      results.push(r);
    }
    // A delayed curl runs under sh first, then execs curl with the same pid.
    const d = await curlFetch(`${server.url}/whoami`, {
      startDelayMs: 100,
      onSpawn: (pid) => (clientPid = pid),
    });
    assertOk(d);
    results.push(d);
    assert.deepEqual(commsSeen, ['curl', 'python3', 'node', 'curl']);
    assert.deepEqual(results.map((r) => r.comm), commsSeen);
  });
});

describe('the demo server as its own process', () => {
  test('prints its JSON line, serves, and exits 0 on SIGTERM', async () => {
    const srv = await spawnDemoServer({ log: true });
    assert.match(srv.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(srv.url, `https://127.0.0.1:${srv.port}`);
    assert.ok(existsSync(srv.certPath));
    const r = await curlFetch(`${srv.url}/hello`);
    assertOk(r);
    assert.equal(r.stdout.toString(), HELLO_BODY);
    const { exitCode } = await srv.stop();
    assert.equal(exitCode, 0);
    assert.equal(existsSync(dirname(srv.certPath)), false, 'certificate removed');
    assert.match(srv.stderr(), /GET \/hello/);
  });

  test('stops when its stdin ends', async () => {
    const srv = await spawnDemoServer();
    srv.child.stdin?.end();
    const timeout = setTimeout(() => void srv.stop(), 10_000);
    const { exitCode, signal } = await srv.exited;
    clearTimeout(timeout);
    assert.deepEqual({ exitCode, signal }, { exitCode: 0, signal: null });
  });

  test('listens on ::1 with a bracketed URL when asked', async (t) => {
    const srv = await spawnDemoServer({ host: '::1' }).catch((e: Error) => e);
    if (srv instanceof Error) {
      // A machine without IPv6 loopback skips, except in CI, where every test must run.
      if (/EADDRNOTAVAIL|EAFNOSUPPORT/.test(srv.message) && process.env.CI !== 'true') return t.skip('no IPv6 loopback here');
      throw srv;
    }
    try {
      assert.equal(srv.url, `https://[::1]:${srv.port}`);
      const r = await nodeFetch(`${srv.url}/hello`);
      assertOk(r);
      assert.equal(r.stdout.toString(), HELLO_BODY);
    } finally {
      await srv.stop();
    }
  });
});
