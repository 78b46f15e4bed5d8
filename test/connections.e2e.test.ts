// End-to-end, as root: every plaintext record says which connection it belongs to, with the
// addresses the kernel's socket has, checked against what the server itself logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionRecord, DataRecord, SummaryRecord } from '../src/output/index.js';
import { createSelfSignedCert } from '../src/demo/cert.js';
import { curlFetch, pythonExecutable } from '../src/demo/clients.js';
import { startNginx } from './support/nginx.js';
import type { NginxServer } from './support/nginx.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl, runTlstap } from './support/tlstap-process.js';

type Line = DataRecord | ConnectionRecord | SummaryRecord;

const FILES = { 'a.txt': 'alpha file body\n', 'b.txt': 'bravo file body, a little longer\n' };

function dataOf(lines: Line[], pid: number): DataRecord[] {
  return lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === pid);
}

function text(r: DataRecord): string {
  return r.text ?? Buffer.from(r.base64 ?? '', 'base64').toString('latin1');
}

/** Runs fn while tlstap captures JSON lines; returns the lines. */
async function capture(args: string[], fn: () => Promise<void>): Promise<Line[]> {
  return parseJsonl<Line>((await captureWhile(['-f', 'jsonl', ...args], fn)).out);
}

/** The client ports nginx logged, in order. */
function loggedClientPorts(nginx: NginxServer): number[] {
  return nginx.accessLog().map((line) => Number(line.split(' ')[1]));
}

for (const ipv6 of [false, true]) {
  const family = ipv6 ? 'IPv6 [::1]' : 'IPv4 127.0.0.1';
  test(`curl to nginx over ${family}: both sides' records carry the addresses the server logged`, async (t) => {
    if (!requireRoot(t)) return;
    const nginx = await startNginx({ files: FILES, ipv6 });
    try {
      let curlPid = 0;
      const lines = await capture([], async () => {
        const curl = await curlFetch(`${nginx.url}/a.txt`);
        assert.equal(curl.exitCode, 0, curl.stderr);
        assert.equal(curl.stdout.toString(), FILES['a.txt']);
        curlPid = curl.pid;
      });
      const [clientPort] = loggedClientPorts(nginx);
      assert.ok(clientPort, 'nginx logged the request');
      const ip = ipv6 ? '::1' : '127.0.0.1';

      const curlRecords = dataOf(lines, curlPid);
      assert.ok(curlRecords.length >= 2);
      for (const r of curlRecords) {
        assert.deepEqual(r.conn?.remote, { ip, port: nginx.port }, 'curl: remote is the server');
        assert.deepEqual(r.conn?.local, { ip, port: clientPort }, 'curl: local is the port nginx saw');
        assert.ok((r.conn?.fd ?? -1) >= 0);
      }
      const nginxRecords = lines.filter((l): l is DataRecord => l.type === 'data' && l.comm === 'nginx' && l.conn?.remote?.port === clientPort);
      assert.ok(nginxRecords.some((r) => r.func.startsWith('SSL_read') && text(r).startsWith('GET /a.txt')), 'nginx: its SSL_read holds the request');
      for (const r of nginxRecords) {
        assert.deepEqual(r.conn?.remote, { ip, port: clientPort }, 'nginx: remote is the client');
        assert.deepEqual(r.conn?.local, { ip, port: nginx.port });
      }
      const opens = lines.filter((l): l is ConnectionRecord => l.type === 'open' && l.pid === curlPid);
      const closes = lines.filter((l): l is ConnectionRecord => l.type === 'close' && l.pid === curlPid);
      assert.equal(opens.length, 1, 'one open record for curl\'s connection');
      assert.equal(closes.length, 1, 'one close record for curl\'s connection');
      assert.equal(opens[0]!.conn.id, curlRecords[0]!.conn?.id);
    } finally {
      await nginx.stop();
    }
  });
}

test('one python process with two concurrent connections: calls split into two connections, each with its own payload', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    const script = `
import ssl, sys, threading, urllib.request
ctx = ssl._create_unverified_context()
barrier = threading.Barrier(2)
def fetch(path):
    barrier.wait()
    sys.stdout.write(urllib.request.urlopen(sys.argv[1] + path, context=ctx).read().decode())
threads = [threading.Thread(target=fetch, args=(p,)) for p in ('/a.txt', '/b.txt')]
[t.start() for t in threads]
[t.join() for t in threads]
`;
    let pid = 0;
    const lines = await capture([], async () => {
      const child = spawn(pythonExecutable(), ['-c', script, nginx.url], { stdio: ['ignore', 'pipe', 'inherit'] });
      pid = child.pid ?? 0;
      await new Promise((resolve) => child.once('exit', resolve));
    });
    const records = dataOf(lines, pid);
    const byConn = new Map<number, DataRecord[]>();
    for (const r of records) byConn.set(r.conn!.id, [...(byConn.get(r.conn!.id) ?? []), r]);
    assert.equal(byConn.size, 2, 'two connections');
    const ports = new Set(loggedClientPorts(nginx));
    for (const recs of byConn.values()) {
      const request = recs.filter((r) => r.dir === 'write').map(text).join('');
      const response = recs.filter((r) => r.dir === 'read').map(text).join('');
      const path = /^GET (\/[ab]\.txt) /.exec(request)?.[1];
      assert.ok(path, request);
      assert.ok(response.endsWith(FILES[path.slice(1) as keyof typeof FILES]), `the response on ${path}'s connection is ${path}'s file`);
      assert.ok(ports.has(recs[0]!.conn!.local!.port), 'the local port is one nginx saw');
      assert.ok(recs.every((r) => r.conn?.remote?.port === nginx.port));
    }
  } finally {
    await nginx.stop();
  }
});

test('a new connection on a reused fd number gets a new connection id', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    let pid = 0;
    const lines = await capture([], async () => {
      // Connection: close makes curl open a second connection for the second URL.
      const curl = await curlFetch(`${nginx.url}/a.txt`, { extraArgs: ['-H', 'Connection: close', `${nginx.url}/b.txt`] });
      assert.equal(curl.exitCode, 0, curl.stderr);
      pid = curl.pid;
    });
    const records = dataOf(lines, pid);
    const conns = new Map(records.map((r) => [r.conn!.id, r.conn!]));
    assert.equal(conns.size, 2, 'two connections');
    const [first, second] = [...conns.values()];
    assert.equal(first!.fd, second!.fd, 'curl reused the fd number');
    assert.notEqual(first!.local!.port, second!.local!.port);
    assert.deepEqual(loggedClientPorts(nginx), [first!.local!.port, second!.local!.port]);
  } finally {
    await nginx.stop();
  }
});

for (const wantedV6 of [false, true]) {
  const host = wantedV6 ? '::1' : '127.0.0.1';
  test(`--host ${host} keeps only connections with that address, in the kernel`, async (t) => {
    if (!requireRoot(t)) return;
    const [v4, v6] = [await startNginx({ files: FILES }), await startNginx({ files: FILES, ipv6: true })];
    const wanted = wantedV6 ? v6 : v4;
    const dir = mkdtempSync(join(tmpdir(), 'tlstap-host-'));
    const recording = join(dir, 'host.tlstap');
    try {
      const lines = await capture(['--host', host, '--comm', 'curl', '--record', recording], async () => {
        for (const server of [v4, v6]) {
          const curl = await curlFetch(`${server.url}/a.txt`);
          assert.equal(curl.exitCode, 0, curl.stderr);
        }
      });
      const data = lines.filter((l): l is DataRecord => l.type === 'data');
      assert.ok(data.length >= 2, 'the wanted connection\'s calls are there');
      assert.ok(data.every((r) => r.conn?.remote?.ip === host && r.conn.remote.port === wanted.port));
      // What crossed the ring buffer, unfiltered by replay: that connection and nothing else.
      const replayed = await runTlstap(['replay', recording, '-f', 'jsonl']);
      assert.equal(replayed.code, 0, replayed.stderr);
      const raw = parseJsonl<Line>(replayed.stdout.toString()).filter((l) => l.type !== 'summary');
      const conns = raw.filter((l): l is ConnectionRecord => l.type === 'open' || l.type === 'close');
      assert.deepEqual(conns.map((l) => l.type).sort(), ['close', 'open']);
      assert.ok(conns.every((l) => l.conn.remote?.ip === host));
      assert.equal(raw.filter((l) => l.type === 'data').length, data.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await v4.stop();
      await v6.stop();
    }
  });
}

test('--host 127.0.0.1 also matches a dual-stack server socket, whose peer the kernel holds as ::ffff:127.0.0.1', async (t) => {
  if (!requireRoot(t)) return;
  const cert = await createSelfSignedCert();
  // One request on a dual-stack ([::], IPV6_V6ONLY off) TLS server; it prints its port first.
  const server = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
conn, peer = s.accept()
tls = ctx.wrap_socket(conn, server_side=True)
tls.recv(4096)
tls.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\nConnection: close\\r\\n\\r\\ndualstack')
tls.close()
`;
  try {
    let serverPid = 0;
    const lines = await capture(['--host', '127.0.0.1', '--comm', 'python3'], async () => {
      const child = spawn(pythonExecutable(), ['-c', server, cert.certPath, cert.keyPath], { stdio: ['ignore', 'pipe', 'inherit'] });
      serverPid = child.pid ?? 0;
      const port = await new Promise<number>((resolve) => child.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
      const curl = await curlFetch(`https://127.0.0.1:${port}/`);
      assert.equal(curl.exitCode, 0, curl.stderr);
      assert.equal(curl.stdout.toString(), 'dualstack');
      await new Promise((resolve) => child.once('exit', resolve));
    });
    const records = dataOf(lines, serverPid);
    assert.ok(records.length >= 2, 'the server\'s request and response calls pass the filter');
    assert.ok(records.every((r) => r.conn?.remote?.ip === '::ffff:127.0.0.1'), 'the kernel holds the peer as IPv4-mapped');
  } finally {
    await cert.remove();
  }
});

test('--port keeps only connections to that port, in the kernel: the others send no record at all', async (t) => {
  if (!requireRoot(t)) return;
  const [wanted, other] = [await startNginx({ files: FILES }), await startNginx({ files: FILES })];
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-port-'));
  const recording = join(dir, 'port.tlstap');
  try {
    const lines = await capture(['--port', String(wanted.port), '--comm', 'curl', '--record', recording], async () => {
      for (const server of [wanted, other]) {
        const curl = await curlFetch(`${server.url}/a.txt`);
        assert.equal(curl.exitCode, 0, curl.stderr);
      }
    });
    const data = lines.filter((l): l is DataRecord => l.type === 'data');
    assert.ok(data.length >= 2);
    assert.ok(data.every((r) => r.conn?.remote?.port === wanted.port), 'only the wanted server\'s connection');
    const opens = lines.filter((l) => l.type === 'open');
    assert.equal(opens.length, 1);
    // The recording holds what crossed the ring buffer; replay filters nothing.
    const replayed = await runTlstap(['replay', recording, '-f', 'jsonl']);
    const replayedText = replayed.stdout.toString();
    assert.equal(replayed.code, 0, replayed.stderr);
    const raw = parseJsonl<Line>(replayedText).filter((l) => l.type !== 'summary');
    const conns = raw.filter((l): l is ConnectionRecord => l.type === 'open' || l.type === 'close');
    assert.deepEqual(conns.map((l) => l.type).sort(), ['close', 'open'], 'one connection opened and closed, no other');
    assert.ok(conns.every((l) => l.conn.remote?.port === wanted.port));
    assert.equal(raw.filter((l) => l.type === 'data').length, data.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await wanted.stop();
    await other.stop();
  }
});
