// End-to-end, as root: Go programs built by Debian's Go 1.19 (fixtures/go, stripped and not) talk
// HTTPS while tlstap captures their crypto/tls: Write at entry, Read at its return instructions,
// calls keyed by goroutine, the connection's fd from the goroutine's own socket syscalls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createSelfSignedCert } from '../src/demo/cert.js';
import type { SelfSignedCert } from '../src/demo/cert.js';
import { GO_FIXTURES, goFixture, requireGoFixtures, startGoProgram } from './support/go-programs.js';
import { requireTshark, tsharkFields } from './support/pcapng-tools.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl, runTlstap } from './support/tlstap-process.js';

const run = promisify(execFile);
const MIB5 = 5 * 1024 * 1024;

interface Line {
  type: string;
  pid: number;
  comm: string;
  func?: string;
  dir?: 'read' | 'write';
  len?: number;
  truncated?: number;
  lost?: number;
  base64?: string;
  text?: string;
  conn?: { id: number; fd: number; local?: { ip: string; port: number }; remote?: { ip: string; port: number } } | null;
  [key: string]: unknown;
}

/** The server's body for /bytes/N: "0123456789abcdef" repeated. */
function pattern(n: number): Buffer {
  return Buffer.from('0123456789abcdef'.repeat(Math.ceil(n / 16)).slice(0, n), 'latin1');
}

/** The bytes one direction of one connection carried, in call order. */
function stream(lines: readonly Line[], connId: number, dir: 'read' | 'write'): Buffer {
  const parts = lines.filter((l) => l.type === 'data' && l.conn?.id === connId && l.dir === dir);
  return Buffer.concat(parts.map((l) => (l.base64 !== undefined ? Buffer.from(l.base64, 'base64') : Buffer.from(l.text ?? '', 'utf8'))));
}

/** The payloads of the HTTP/2 DATA frames in a byte stream (the client preface skipped), joined. */
function h2Data(bytes: Buffer): Buffer {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  let at = bytes.subarray(0, preface.length).equals(preface) ? preface.length : 0;
  const data: Buffer[] = [];
  while (at + 9 <= bytes.length) {
    const len = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === 0) data.push(bytes.subarray(at + 9, at + 9 + len));
    at += 9 + len;
  }
  return Buffer.concat(data);
}

/** The body of an HTTP/1.1 response stream with Content-Length (its first response). */
function h1Body(bytes: Buffer): Buffer {
  const end = bytes.indexOf('\r\n\r\n');
  return bytes.subarray(end + 4);
}

/** Connections with data of the process `pid`, by id. */
function connsOf(lines: readonly Line[], pid: number): Map<number, NonNullable<Line['conn']>> {
  const conns = new Map<number, NonNullable<Line['conn']>>();
  for (const l of lines) if (l.type === 'data' && l.pid === pid && l.conn) conns.set(l.conn.id, l.conn);
  return conns;
}

/**
 * The machine may run other TLS programs (other tests' load, other users): the Go programs of a test
 * run as copies named COMM, so that `--comm COMM` keeps the capture to them.
 */
const COMM = 'tlstapgo';
type Fixture = Parameters<typeof goFixture>[0];
function asComm(dir: string, name: Fixture): string {
  mkdirSync(join(dir, name), { recursive: true });
  const path = join(dir, name, COMM);
  copyFileSync(goFixture(name).path, path);
  return path;
}

/** The pid of the Go client: the process named COMM with data that is not the server. */
function clientPidOf(lines: readonly Line[], serverPid: number, stderr: string): number {
  const pid = lines.find((l) => l.type === 'data' && l.comm === COMM && l.pid !== serverPid)?.pid;
  assert.ok(pid !== undefined, `no data from the client:\n${stderr}`);
  return pid;
}

async function withServer<T>(name: 'server' | 'server-stripped', fn: (url: string, path: string, log: () => string, pid: number) => Promise<T>, dir?: string): Promise<T> {
  const cert = await createSelfSignedCert();
  const path = dir === undefined ? realpathSync(goFixture(name).path) : asComm(dir, name);
  const server = await startGoProgram(path, ['-cert', cert.certPath, '-key', cert.keyPath], /listening https:\/\/(\S+)/);
  try {
    return await fn(`https://${/listening https:\/\/(\S+)/.exec(server.output())![1]}`, path, () => server.output(), server.pid);
  } finally {
    await server.stop();
    await cert.remove();
  }
}

for (const [serverName, h2Client, h1Client] of [
  ['server', 'client-stripped', 'client'],
  ['server-stripped', 'client', 'client-stripped'],
] as const) {
  test(`Go ${serverName} with Go ${h2Client} (HTTP/2) and ${h1Client} (HTTP/1.1): both sides captured, 5 MiB byte-exact, addresses as the server logs them, HAR and pcapng`, async (t) => {
    if (!requireRoot(t) || !requireGoFixtures(t) || !requireTshark(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-e2e-'));
    try {
      await withServer(serverName, async (url, serverPath, log, serverPid) => {
        const har = join(dir, 'out.har');
        const pcap = join(dir, 'out.pcapng');
        const h2Path = asComm(dir, h2Client);
        const h1Path = asComm(dir, h1Client);
        const { out, exit } = await captureWhile(
          ['--comm', COMM, '--lib', serverPath, '--lib', h2Path, '--lib', h1Path, '-f', 'jsonl', '--har', har, '--pcapng', pcap, '--ring-buffer', '64m', '--max-bytes', '4m'],
          async () => {
            const h2 = await run(h2Path, ['-k', `${url}/bytes/${MIB5}`]);
            assert.match(h2.stdout, /status 200, 5242880 bytes, HTTP\/2\.0\ndone/);
            const h1 = await run(h1Path, ['-k', '-h1', `${url}/bytes/${MIB5}`]);
            assert.match(h1.stdout, /status 200, 5242880 bytes, HTTP\/1\.1\ndone/);
            const small = await run(h2Path, ['-k', '-n', '2', `${url}/hello`]);
            assert.match(small.stdout, /(status 200, 14 bytes, HTTP\/2\.0\n){2}done/);
          },
        );
        // Captured, not only found: no "not captured" line for these programs.
        assert.doesNotMatch(exit.stderr, /not captured/, exit.stderr);
        const lines = parseJsonl<Line>(out);
        const summary = lines.find((l) => l.type === 'summary')!;
        assert.equal(summary.events_dropped, 0, exit.stderr);
        const funcs = new Set(lines.filter((l) => l.type === 'data').map((l) => l.func));
        assert.deepEqual([...funcs].sort(), ['crypto/tls.(*Conn).Read', 'crypto/tls.(*Conn).Write']);

        // Every request the server logged: its connection on both sides, with the ports it logged.
        const requests = [...log().matchAll(/request (HTTP\/\S+) GET (\S+) from 127\.0\.0\.1:(\d+)/g)];
        assert.equal(requests.length, 4, log());
        const serverPort = Number(new URL(url).port);
        const conns = new Map<number, NonNullable<Line['conn']>>();
        for (const l of lines) if (l.type === 'data' && l.conn) conns.set(l.conn.id, l.conn);
        const serverConns = [...connsOf(lines, serverPid).values()];
        const clientConns = [...conns.values()].filter((c) => c.remote?.port === serverPort);
        for (const [, proto, path, port] of requests) {
          const s = serverConns.find((c) => c.remote?.port === Number(port));
          const c = clientConns.find((c) => c.local?.port === Number(port));
          assert.ok(s && c, `${proto} ${path} from port ${port}: server conn ${JSON.stringify(s)}, client conn ${JSON.stringify(c)}`);
          assert.equal(s.local?.port, serverPort);
          assert.equal(c.remote?.port, serverPort);
          assert.equal(s.remote?.ip, '127.0.0.1');
        }

        // 5 MiB byte for byte: the HTTP/2 client's DATA frames, the server's HTTP/2 DATA frames, and
        // the HTTP/1.1 client's body (the server's one 5 MiB Write is over the 4 MiB cap: counted as truncated).
        const want = pattern(MIB5);
        const portOf = (p: string) => Number(requests.find((r) => r[1] === p && r[2] === `/bytes/${MIB5}`)![3]);
        const h2ClientConn = clientConns.find((c) => c.local?.port === portOf('HTTP/2.0'))!;
        const h2ServerConn = serverConns.find((c) => c.remote?.port === portOf('HTTP/2.0'))!;
        const h1ClientConn = clientConns.find((c) => c.local?.port === portOf('HTTP/1.1'))!;
        assert.ok(h2Data(stream(lines, h2ClientConn.id, 'read')).equals(want), 'HTTP/2 client read: not the 5 MiB body');
        assert.ok(h2Data(stream(lines, h2ServerConn.id, 'write')).equals(want), 'HTTP/2 server write: not the 5 MiB body');
        assert.ok(h1Body(stream(lines, h1ClientConn.id, 'read')).equals(want), 'HTTP/1.1 client read: not the 5 MiB body');
        assert.ok((summary.bytes_truncated as number) > 0 && (summary.bytes_truncated as number) <= MIB5 - 4 * 1024 * 1024, JSON.stringify(summary));

        // HAR: every exchange paired, from both sides (4 requests, each seen by client and server).
        const doc = JSON.parse(readFileSync(har, 'utf8')) as { log: { entries: { request: { url: string }; response: { status: number } }[] } };
        const entries = doc.log.entries;
        assert.equal(entries.length, 8, JSON.stringify(entries.map((e) => e.request.url)));
        assert.ok(entries.every((e) => e.response.status === 200));
        assert.equal(entries.filter((e) => e.request.url.endsWith(`/bytes/${MIB5}`)).length, 4);

        // pcapng: tshark reads it and finds the HTTP/1.1 request on both sides.
        const uris = tsharkFields(pcap, ['http.request.uri'], ['-d', `tcp.port==${serverPort},http`, '-Y', 'http.request']).flat();
        assert.deepEqual(uris, [`/bytes/${MIB5}`, `/bytes/${MIB5}`]);
      }, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('-f http on a Go server (stripped): tlstap attaches to the running program, pairs every HTTP/2 and HTTP/1.1 exchange, libs says it is captured', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  await withServer('server-stripped', async (url, serverPath, log, pid) => {
    const { out, exit } = await captureWhile(['-p', String(pid), '-f', 'http'], async () => {
      await run(goFixture('client').path, ['-k', '-n', '3', `${url}/hello`]);
      await run(goFixture('client').path, ['-k', '-h1', '-n', '2', `${url}/bytes/1000`]);
    });
    assert.match(exit.stderr, /http: 5 exchanges \(2 HTTP\/1\.x, 3 HTTP\/2, 0 incomplete\)/, exit.stderr);
    assert.equal(out.match(/^GET https:\/\/127\.0\.0\.1:\d+\/hello HTTP\/2$/gm)?.length, 3, out);
    assert.equal(out.match(/^GET https:\/\/127\.0\.0\.1:\d+\/bytes\/1000 HTTP\/1\.1$/gm)?.length, 2, out);
    assert.equal(log().match(/^request /gm)?.length, 5);
    const libs = await runTlstap(['libs', '-p', String(pid)]);
    assert.equal(libs.code, 0, libs.stderr);
    const text = libs.stdout.toString('utf8');
    assert.match(text, new RegExp(`^${serverPath}  Go program \\(go1\\.19\\.8, x86_64, pclntab go1\\.18 layout\\)$`, 'm'));
    assert.match(text, /crypto\/tls\.\(\*Conn\)\.Read +offset 0x[0-9a-f]+, probed at 0x[0-9a-f]+ \(after the stack check\), 7 return sites/);
    assert.ok(text.includes(`Go program ${serverPath} (go1.19.8): its crypto/tls is captured`), text);
    assert.doesNotMatch(text, /not captured/);
  });
});

/** A Go module proxy (the GOPROXY protocol) over HTTPS serving example.com/hello v1.0.0. */
async function moduleProxy(cert: SelfSignedCert, zip: Buffer): Promise<{ url: string; close: () => void }> {
  const files: Record<string, Buffer> = {
    '/example.com/hello/@v/list': Buffer.from('v1.0.0\n'),
    '/example.com/hello/@v/v1.0.0.info': Buffer.from('{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}'),
    '/example.com/hello/@v/v1.0.0.mod': Buffer.from('module example.com/hello\n\ngo 1.19\n'),
    '/example.com/hello/@v/v1.0.0.zip': zip,
  };
  const server = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
    const body = files[req.url ?? ''];
    res.writeHead(body ? 200 : 404, { 'content-length': body?.length ?? 0 });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

test('the Go toolchain as a client: `go mod download` from a local HTTPS module proxy is captured, the module zip byte for byte', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-mod-'));
  const cert = await createSelfSignedCert();
  try {
    // A module zip as the proxy protocol wants it: every file under MODULE@VERSION/.
    execFileSync('/usr/bin/python3', ['-c', `import zipfile,sys
z=zipfile.ZipFile(sys.argv[1],'w')
z.writestr('example.com/hello@v1.0.0/go.mod','module example.com/hello\\n\\ngo 1.19\\n')
z.writestr('example.com/hello@v1.0.0/hello.go','package hello\\n\\n// Hello says hello.\\nfunc Hello() string { return "hello" }\\n')
z.close()`, join(dir, 'mod.zip')]);
    const zip = readFileSync(join(dir, 'mod.zip'));
    const proxy = await moduleProxy(cert, zip);
    const goPath = realpathSync(execFileSync('sh', ['-c', 'command -v go'], { encoding: 'utf8' }).trim());
    try {
      const { out, exit } = await captureWhile(['--comm', 'go', '--lib', goPath, '-f', 'jsonl'], async () => {
        const env = {
          ...process.env,
          GOPROXY: proxy.url,
          SSL_CERT_FILE: cert.certPath,
          GOFLAGS: '-mod=mod',
          GONOSUMDB: '*',
          GOSUMDB: 'off',
          GOPATH: join(dir, 'gopath'),
          GOMODCACHE: join(dir, 'modcache'),
          GOCACHE: join(dir, 'cache'),
          GOTOOLCHAIN: 'local',
        };
        const r = await run('go', ['mod', 'download', '-json', 'example.com/hello@v1.0.0'], { env, cwd: dir });
        assert.match(r.stdout, /"Version": "v1.0.0"/);
      });
      assert.doesNotMatch(exit.stderr, /not captured/, exit.stderr);
      const lines = parseJsonl<Line>(out).filter((l) => l.type === 'data' && l.comm === 'go');
      const conns = new Set(lines.map((l) => l.conn!.id));
      const written = Buffer.concat([...conns].map((id) => stream(lines, id, 'write'))).toString('latin1');
      assert.match(written, /GET \/example\.com\/hello\/@v\/v1\.0\.0\.zip HTTP\/1\.1\r\n/);
      assert.match(written, /User-Agent: Go-http-client\/1\.1\r\n/);
      const read = Buffer.concat([...conns].map((id) => stream(lines, id, 'read')));
      assert.ok(read.includes(zip), 'the module zip is not in what go read');
      assert.ok(lines.every((l) => l.conn!.remote?.port === Number(new URL(proxy.url).port)), 'a go connection without the proxy address');
    } finally {
      proxy.close();
    }
  } finally {
    await cert.remove();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('1 000 goroutines make requests over shared connections: the Go programs run to the end with every body right, every call captured or counted as dropped', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withServer('server', async (url, serverPath, log, serverPid) => {
    const client = asComm(dir, 'client');
    let clientOut = '';
    const { out, exit } = await captureWhile(['--comm', COMM, '--lib', serverPath, '--lib', client, '-f', 'jsonl'], async () => {
      clientOut = (await run(client, ['-k', '-c', '1000', '-n', '3', `${url}/bytes/1000`])).stdout;
    });
    // No crash and no wrong byte: the client checked all 3 000 bodies, the server answered all of them.
    assert.equal(clientOut, 'ok 3000 requests\ndone\n');
    assert.equal(log().match(/^request HTTP\/2\.0 GET \/bytes\/1000 /gm)?.length, 3000);
    const lines = parseJsonl<Line>(out);
    const summary = lines.find((l) => l.type === 'summary')! as Line & Record<'events_dropped' | 'bytes_dropped', number>;
    // Every response body the server wrote is captured, or a dropped record is counted: 3 000 in all when nothing was dropped.
    const body = pattern(1000);
    let bodies = 0;
    for (const id of connsOf(lines, serverPid).keys()) {
      const bytes = stream(lines, id, 'write');
      for (let at = bytes.indexOf(body); at >= 0; at = bytes.indexOf(body, at + body.length)) bodies++;
    }
    if (summary.events_dropped === 0) assert.equal(bodies, 3000, exit.stderr);
    else assert.ok(bodies < 3000 && bodies + summary.events_dropped >= 3000, `${bodies} bodies, ${summary.events_dropped} dropped: ${exit.stderr}`);
    if (summary.events_dropped === 0) assert.match(exit.stderr, /http: 6000 exchanges \(0 HTTP\/1\.x, 6000 HTTP\/2, 0 incomplete\)/);
  }, dir);
});

test('--remote: Go programs on the far side are found through the agent and captured, HTTP/2 bodies byte-exact on both sides', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-remote-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withServer('server-stripped', async (url, _serverPath, log, serverPid) => {
    const client = asComm(dir, 'client');
    const body = pattern(200_000);
    // System-wide through the agent: the running server is found in /proc, the client by --lib.
    const agentPath = join(dir, 'agent', 'tlstap-agent');
    const args = ['--remote', 'sh -c', '--agent-path', agentPath, '--comm', COMM, '--lib', client, '-f', 'jsonl', '-v'];
    const { out, exit } = await captureWhile(args, async () => {
      const r = await run(client, ['-k', '-n', '2', `${url}/bytes/${body.length}`]);
      assert.equal(r.stdout, `status 200, ${body.length} bytes, HTTP/2.0\n`.repeat(2) + 'done\n');
    });
    assert.match(exit.stderr, new RegExp(`tlstap: remote: x86_64, agent at ${agentPath}`));
    assert.doesNotMatch(exit.stderr, /not captured/, exit.stderr);
    assert.equal(log().match(/^request HTTP\/2\.0 GET /gm)?.length, 2);
    const lines = parseJsonl<Line>(out);
    const summary = lines.find((l) => l.type === 'summary')!;
    assert.equal(summary.events_dropped, 0, exit.stderr);
    const clientPid = clientPidOf(lines, serverPid, exit.stderr);
    const served = Buffer.concat([...connsOf(lines, serverPid).keys()].map((id) => h2Data(stream(lines, id, 'write'))));
    const received = Buffer.concat([...connsOf(lines, clientPid).keys()].map((id) => h2Data(stream(lines, id, 'read'))));
    assert.ok(served.equals(Buffer.concat([body, body])), `server wrote ${served.length} bytes of DATA`);
    assert.ok(received.equals(Buffer.concat([body, body])), `client read ${received.length} bytes of DATA`);
    // Addresses through the agent too: the client's remote port is the server's.
    for (const conn of connsOf(lines, clientPid).values()) assert.equal(conn.remote?.port, Number(new URL(url).port));
  }, dir);
});

test('a Write whose goroutine stack grows in its prologue is captured once: 300 requests written from recursion depths 0-299, each byte exactly once', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-grow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await withServer('server', async (url, serverPath, log, serverPid) => {
    const client = asComm(dir, 'client');
    const depths = 300;
    const target = new URL(`${url}/bytes/10`);
    let clientOut = '';
    const { out, exit } = await captureWhile(['--comm', COMM, '--lib', serverPath, '--lib', client, '-f', 'jsonl'], async () => {
      // Fresh goroutines start at the minimum stack (2 KiB) when the runtime does not adapt it.
      const env = { ...process.env, GODEBUG: 'adaptivestackstart=0' };
      clientOut = (await run(client, ['-k', '-grow', String(depths), target.href], { env })).stdout;
    });
    assert.equal(clientOut, `ok ${depths} requests\ndone\n`);
    assert.equal(log().match(/^request HTTP\/1\.1 GET \/bytes\/10 /gm)?.length, depths);
    const lines = parseJsonl<Line>(out);
    const summary = lines.find((l) => l.type === 'summary')!;
    assert.equal(summary.events_dropped, 0, exit.stderr);
    const sent = Buffer.from(Array.from({ length: depths }, (_, d) => `GET /bytes/10?depth=${d} HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`).join(''), 'latin1');
    const clientPid = clientPidOf(lines, serverPid, exit.stderr);
    const [clientConn, ...more] = connsOf(lines, clientPid).keys();
    assert.equal(more.length, 0, 'one connection');
    // A probe on Write's first instruction would fire again after runtime.morestack restarts it: a request twice.
    assert.equal(stream(lines, clientConn!, 'write').toString('latin1'), sent.toString('latin1'));
    const serverRead = Buffer.concat([...connsOf(lines, serverPid).keys()].map((id) => stream(lines, id, 'read')));
    assert.equal(serverRead.toString('latin1'), sent.toString('latin1'));
  }, dir);
});

test('--lib with a Go program tlstap cannot capture (Go 1.16, stack ABI) beside a TLS library: the library is probed, the Go program named with the reason at start and in the summary', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const old = GO_FIXTURES.find((f) => f.goVersion === 'go1.16.3')!.path;
  const exit = await runTlstap(['--lib', old, '--lib', '/usr/lib/x86_64-linux-gnu/libssl.so.3', '-p', String(process.pid), '--duration', '1', '-f', 'none']);
  assert.equal(exit.code, 0, exit.stderr);
  const said = `Go program ${old} (go1.16.3): its crypto/tls cannot be captured: Go before 1.17 passes arguments on the stack on x86_64`;
  const [start, rest] = exit.stderr.split(/tlstap: capturing \(\d+ probes attached/);
  assert.ok(rest !== undefined && start!.includes(`tlstap: warning: ${said}`), exit.stderr);
  assert.match(start!, /\n {2}hint: see its traffic through a TLS proxy/);
  assert.ok(rest.includes(`tlstap: not captured: ${said}`), exit.stderr);
});
