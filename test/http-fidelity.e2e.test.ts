// End-to-end, as root: real clients that once broke tlstap's HTTP layer, against a real Node
// HTTPS server (HTTP/1.1 and HTTP/2): big single writes on keep-alive connections, a 1.4 MB
// res.end(), UTF-8 in headers and URLs, curl on HTTP/2 stopping at Content-Length, and a
// --max-bytes capture whose gaps are skipped. Every exchange must come out whole, as sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { HttpFallbackRecord, HttpRecord } from '../src/http/index.js';
import { bigBody } from './support/fidelity-server.js';
import { runNode, runProcess, runPython, startFidelityServer } from './support/fidelity.js';
import type { FidelityServer, Run } from './support/fidelity.js';
import { validate } from './support/json-schema.js';
import { startNginx } from './support/nginx.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl } from './support/tlstap-process.js';

const SCHEMA = JSON.parse(readFileSync(new URL('../../docs/jsonl.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;

/**
 * Captures `-f jsonl` while `fn` runs; returns the http and http_fallback records (the tests pick
 * theirs by pid). No --port filter: Node's TLS sockets have no fd tlstap can see, so their ports
 * are unknown to the kernel-side filter.
 */
async function captureHttp(extra: string[], fn: () => Promise<void>): Promise<{ http: HttpRecord[]; fallbacks: HttpFallbackRecord[] }> {
  const { out } = await captureWhile(['-f', 'jsonl', ...extra], fn);
  const lines = parseJsonl<{ type: string }>(out);
  // The HTTP lines of every capture hold to the documented schema.
  for (const line of lines) if (line.type.startsWith('http')) assert.deepEqual(validate(line, SCHEMA), [], JSON.stringify(line).slice(0, 300));
  return {
    http: lines.filter((l): l is HttpRecord => l.type === 'http'),
    fallbacks: lines.filter((l): l is HttpFallbackRecord => l.type === 'http_fallback'),
  };
}

function ofPid(records: HttpRecord[], pid: number): HttpRecord[] {
  return records.filter((r) => r.conn.pid === pid);
}

function bodyBytes(body: { text?: string; base64?: string }): Buffer {
  return body.text !== undefined ? Buffer.from(body.text, 'utf8') : Buffer.from(body.base64 ?? '', 'base64');
}

/** method, target, status, request body size, response body size, incomplete: the shape of an exchange. */
function shape(r: HttpRecord): [string, string, number | undefined, number, number | undefined, string | undefined] {
  return [r.request.method, r.request.target, r.response?.status, r.request.body.size, r.response?.body.size, r.incomplete];
}

function ok(run: Run, what: string): void {
  assert.equal(run.code, 0, `${what} failed:\n${run.stderr}`);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const BIG = 5 * 1024 * 1024;

const PYTHON_SESSION = `
import sys, json
url, lib = sys.argv[1], sys.argv[2]
if lib == 'requests':
    import requests, urllib3
    urllib3.disable_warnings()
    s = requests.Session()
    put = lambda path, data: s.put(url + path, data=data, verify=False)
    get = lambda path: s.get(url + path, verify=False)
else:
    import httpx
    s = httpx.Client(verify=False, http2=False)
    put = lambda path, data: s.put(url + path, content=data)
    get = lambda path: s.get(url + path)
for n in (90000, ${BIG}):
    r = put('/echo', b'p' * n)
    print(r.text)
    print(get('/small').status_code)
`;

for (const lib of ['requests', 'httpx']) {
  test(`python ${lib} PUTs 90 KB and 5 MB, each followed by a GET, on one keep-alive connection: four whole exchanges`, async (t) => {
    if (!requireRoot(t)) return;
    const server = await startFidelityServer();
    try {
      let run: Run | undefined;
      const { http, fallbacks } = await captureHttp([], async () => {
        run = await runPython(PYTHON_SESSION, [server.url, lib]);
      });
      ok(run!, `python ${lib}`);
      const replies = run!.stdout.toString().trim().split('\n');
      assert.deepEqual(JSON.parse(replies[2]!), { method: 'PUT', size: BIG, sha256: sha(Buffer.alloc(BIG, 'p')) }, 'the server got every byte');
      const mine = ofPid(http, run!.pid);
      assert.deepEqual(mine.map((r) => shape(r).slice(0, 4)), [
        ['PUT', '/echo', 200, 90000],
        ['GET', '/small', 200, 0],
        ['PUT', '/echo', 200, BIG],
        ['GET', '/small', 200, 0],
      ]);
      assert.equal(new Set(mine.map((r) => r.conn.id)).size, 1, 'one keep-alive connection');
      for (const r of mine) assert.equal(bodyBytes(r.response!.body).toString(), r.request.target === '/small' ? 'hello small\n' : replies[r === mine[0] ? 0 : 2]);
      assert.equal(mine[0]!.incomplete, undefined);
      // The 5 MB body may go out in writes over the 1 MiB --max-bytes cap: the bytes past it are
      // counted, the prefix is kept as sent, and the next exchange still decodes.
      const big = mine[2]!.request.body;
      assert.equal(big.captured + (big.missing ?? 0), BIG);
      assert.ok(bodyBytes(big).equals(Buffer.alloc(big.captured, 'p')));
      assert.equal(mine[2]!.incomplete, big.missing === undefined ? undefined : `request body: ${big.missing} bytes not captured`);
      console.log(`# python ${lib}: 5 MB PUT, ${big.captured} bytes captured, ${big.missing ?? 0} past --max-bytes`);
      assert.deepEqual(fallbacks.filter((f) => f.conn.pid === run!.pid), []);
      // The server's side of the same connection: the same four exchanges.
      assert.deepEqual(ofPid(http, server.pid).map((r) => shape(r).slice(0, 4)), mine.map((r) => shape(r).slice(0, 4)));
      assert.ok(ofPid(http, server.pid).every((r) => r.conn.role === 'server'));
    } finally {
      await server.stop();
    }
  });
}

test('python aiohttp PUTs 90 KB, then GETs on the same connection: two whole exchanges', async (t) => {
  if (!requireRoot(t)) return;
  const server = await startFidelityServer();
  try {
    let run: Run | undefined;
    const { http } = await captureHttp([], async () => {
      run = await runPython(
        `
import sys, asyncio, aiohttp
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=1)) as s:
        async with s.put(sys.argv[1] + '/echo', data=b'a' * 90000) as r:
            print(await r.text())
        async with s.get(sys.argv[1] + '/small') as r:
            print(await r.text(), end='')
asyncio.run(main())
`,
        [server.url],
      );
    });
    ok(run!, 'python aiohttp');
    const mine = ofPid(http, run!.pid);
    assert.deepEqual(mine.map(shape), [
      ['PUT', '/echo', 200, 90000, mine[0]?.response?.body.size, undefined],
      ['GET', '/small', 200, 0, 12, undefined],
    ]);
    assert.equal(new Set(mine.map((r) => r.conn.id)).size, 1, 'one keep-alive connection');
    assert.equal(`${bodyBytes(mine[0]!.response!.body).toString()}\n${bodyBytes(mine[1]!.response!.body).toString()}`, run!.stdout.toString());
  } finally {
    await server.stop();
  }
});

test('node fetch PUTs 300 KB: one whole exchange', async (t) => {
  if (!requireRoot(t)) return;
  const server = await startFidelityServer();
  try {
    let run: Run | undefined;
    const { http } = await captureHttp([], async () => {
      run = await runNode(
        `const r = await fetch(process.argv[1] + '/echo', { method: 'PUT', body: Buffer.alloc(300000, 'f') }); console.log(await r.text());`,
        [server.url],
      );
    });
    ok(run!, 'node fetch');
    const mine = ofPid(http, run!.pid);
    assert.deepEqual(mine.map(shape), [['PUT', '/echo', 200, 300000, mine[0]?.response?.body.size, undefined]]);
    assert.equal(bodyBytes(mine[0]!.response!.body).toString(), run!.stdout.toString().trim());
  } finally {
    await server.stop();
  }
});

for (const cap of ['4m', 'default']) {
  test(`a Node HTTPS server answers 1.4 MB in one res.end(), then a second request on the connection (--max-bytes ${cap}): both sides decoded`, async (t) => {
    if (!requireRoot(t)) return;
    const server = await startFidelityServer();
    try {
      let run: Run | undefined;
      const { http, fallbacks } = await captureHttp(cap === 'default' ? [] : ['--max-bytes', cap], async () => {
        run = await runProcess('curl', ['-sSk', '--http1.1', `${server.url}/big?n=1400000`, '--next', '-sSk', '--http1.1', `${server.url}/small`]);
      });
      ok(run!, 'curl');
      assert.equal(run!.stdout.length, 1400000 + 12);
      // curl reads in 16 KiB pieces: whole whatever the cap.
      const client = ofPid(http, run!.pid);
      assert.deepEqual(client.map(shape), [
        ['GET', '/big?n=1400000', 200, 0, 1400000, undefined],
        ['GET', '/small', 200, 0, 12, undefined],
      ]);
      assert.ok(bodyBytes(client[0]!.response!.body).equals(bigBody(1400000)), 'every byte of the 1.4 MB body');
      const served = ofPid(http, server.pid);
      assert.deepEqual(fallbacks.filter((f) => f.conn.pid === server.pid), [], 'the server\'s connection stays HTTP');
      assert.deepEqual(served.map((r) => [r.request.target, r.response?.status, r.response?.body.size]), [
        ['/big?n=1400000', 200, 1400000],
        ['/small', 200, 12],
      ]);
      if (cap === 'default') {
        // One SSL_write of the whole response, cut at 1 MiB: the rest of the body is counted as missing.
        const body = served[0]!.response!.body;
        assert.equal(body.complete, false);
        assert.equal(body.captured + body.missing!, 1400000);
        assert.ok(bodyBytes(body).equals(bigBody(1400000).subarray(0, body.captured)), 'the captured prefix, as sent');
        assert.match(served[0]!.incomplete!, /^response body: \d+ bytes not captured$/);
      } else {
        assert.equal(served[0]!.incomplete, undefined);
      }
      assert.equal(served[1]!.incomplete, undefined);
    } finally {
      await server.stop();
    }
  });
}

test('UTF-8 in request header values, a raw UTF-8 URL (nginx) and a response header (Node) is kept as sent', async (t) => {
  if (!requireRoot(t)) return;
  const server = await startFidelityServer();
  // Node's HTTP/1 parser refuses raw UTF-8 in a request target; nginx takes it.
  const nginx = await startNginx({ files: { 'a.txt': 'a\n' } });
  try {
    let toNode: Run | undefined;
    let toNginx: Run | undefined;
    const { http } = await captureHttp([], async () => {
      toNode = await runProcess('curl', ['-sSk', '--http1.1', '-H', 'X-Name: José', `${server.url}/utf8`]);
      toNginx = await runProcess('curl', ['-sSk', '--http1.1', '-H', 'X-Name: José', `${nginx.url}/a.txt?q=ü`]);
    });
    ok(toNode!, 'curl to node');
    ok(toNginx!, 'curl to nginx');
    assert.equal(toNode!.stdout.toString(), 'José \n');
    const [ex] = ofPid(http, toNode!.pid);
    assert.deepEqual(ex!.request.headers.find((h) => h.name === 'X-Name'), { name: 'X-Name', value: 'José' });
    assert.deepEqual(ex!.response!.headers.find((h) => h.name.toLowerCase() === 'x-name'), { name: 'x-name', value: 'José' });
    const [viaNginx] = ofPid(http, toNginx!.pid);
    assert.equal(viaNginx!.response?.status, 200);
    assert.equal(viaNginx!.request.target, '/a.txt?q=ü');
    assert.equal(viaNginx!.request.url, `${nginx.url}/a.txt?q=ü`);
    assert.deepEqual(viaNginx!.request.headers.find((h) => h.name === 'X-Name'), { name: 'X-Name', value: 'José' });
    // nginx's own side of that exchange reads the same.
    const served = http.filter((r) => r.conn.comm === 'nginx' && r.request.target === '/a.txt?q=ü');
    assert.equal(served.length, 1);
  } finally {
    await server.stop();
    await nginx.stop();
  }
});

test('curl --http2 against a Node http2 server: every exchange complete, though curl stops reading at Content-Length', async (t) => {
  if (!requireRoot(t)) return;
  const server = await startFidelityServer();
  try {
    let run: Run | undefined;
    const urls = Array.from({ length: 10 }, (_, i) => `${server.url}/big?n=${1000 * (i + 1)}`);
    const { http } = await captureHttp([], async () => {
      run = await runProcess('curl', ['-sSk', '--http2', ...urls, `${server.url}/small`]);
    });
    ok(run!, 'curl');
    const mine = ofPid(http, run!.pid);
    assert.equal(mine.length, 11);
    assert.ok(mine.every((r) => r.http_version === 'HTTP/2'));
    assert.deepEqual(mine.filter((r) => r.incomplete !== undefined).map(shape), [], 'no exchange marked incomplete');
    assert.deepEqual(mine.map((r) => r.response?.body.size).sort((a, b) => a! - b!), [12, ...Array.from({ length: 10 }, (_, i) => 1000 * (i + 1))]);
  } finally {
    await server.stop();
  }
});

test('--max-bytes 4k: two keep-alive POSTs of 20 KB keep both exchanges, each body marked truncated with the count', async (t) => {
  if (!requireRoot(t)) return;
  const server = await startFidelityServer();
  try {
    let run: Run | undefined;
    const { http, fallbacks } = await captureHttp(['--max-bytes', '4k'], async () => {
      run = await runPython(
        `
import sys, requests, urllib3
urllib3.disable_warnings()
s = requests.Session()
for i in range(2):
    print(s.post(sys.argv[1] + '/echo', data=b'm' * 20000, verify=False).json()['size'])
`,
        [server.url],
      );
    });
    ok(run!, 'python requests');
    assert.equal(run!.stdout.toString(), '20000\n20000\n');
    const mine = ofPid(http, run!.pid);
    assert.deepEqual(fallbacks.filter((f) => f.conn.pid === run!.pid), []);
    assert.equal(mine.length, 2, 'both exchanges');
    for (const ex of mine) {
      assert.deepEqual([ex.request.method, ex.request.target, ex.response?.status], ['POST', '/echo', 200]);
      assert.equal(ex.request.body.size, 20000);
      assert.equal(ex.request.body.complete, false);
      assert.equal(ex.request.body.captured + ex.request.body.missing!, 20000);
      assert.match(ex.incomplete!, new RegExp(`^request body: ${ex.request.body.missing} bytes not captured`));
    }
  } finally {
    await server.stop();
  }
});
