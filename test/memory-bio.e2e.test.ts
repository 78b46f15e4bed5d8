// End-to-end, as root: programs whose TLS runs over a memory BIO (Node's tls, Python asyncio and
// aiohttp) make no socket syscall inside SSL_read/SSL_write. Their connections still get the fd and
// the addresses the peer logged, so --port keeps them, and their pcapng carries real addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionRecordConn, DataRecord, SummaryRecord } from '../src/output/index.js';
import { createSelfSignedCert } from '../src/demo/cert.js';
import { curlFetch, nodeFetch } from '../src/demo/clients.js';
import type { ClientResult } from '../src/demo/clients.js';
import { startNginx } from './support/nginx.js';
import { requireTshark, tsharkFields } from './support/pcapng-tools.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl } from './support/tlstap-process.js';

type Line = DataRecord | SummaryRecord;
const SYSTEM_PYTHON = '/usr/bin/python3';

/** aiohttp's client (asyncio, a memory BIO) fetches url with verification off; prints the body. */
const AIOHTTP_CLIENT = `
import asyncio, sys, aiohttp
async def main():
    async with aiohttp.ClientSession() as s:
        async with s.get(sys.argv[1], ssl=False) as r:
            sys.stdout.write(await r.text())
asyncio.run(main())
`;

function aiohttpFetch(url: string): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(SYSTEM_PYTHON, ['-c', AIOHTTP_CLIENT, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ pid: child.pid!, comm: 'python3', stdout: Buffer.concat(out), stderr: err, exitCode } as ClientResult));
  });
}

function hasAiohttp(): boolean {
  return existsSync(SYSTEM_PYTHON) && spawnSync(SYSTEM_PYTHON, ['-c', 'import aiohttp']).status === 0;
}

/** Every record of `pid` carries the fd and exactly these addresses. */
function assertAddresses(records: DataRecord[], who: string, local: { ip: string; port: number }, remote: { ip: string; port: number }): void {
  assert.ok(records.length >= 2, `${who}: ${records.length} records`);
  for (const r of records) {
    const conn = r.conn as ConnectionRecordConn;
    assert.ok(conn.fd >= 0, `${who}: the fd is known`);
    assert.deepEqual(conn.local, local, `${who}: local`);
    assert.deepEqual(conn.remote, remote, `${who}: remote`);
  }
}

/** What one client's capture under --port wrote: jsonl lines, the HAR entries and the pcapng path. */
interface ClientCapture {
  lines: Line[];
  har: { serverIPAddress?: string | null; request: { url: string } }[];
  pcap: string;
}

/** Captures `comm`'s connections to `port` (jsonl, -w, --har) while `fn` runs. */
async function captureClient(dir: string, comm: string, port: number, fn: () => Promise<void>): Promise<ClientCapture> {
  const pcap = join(dir, `${comm}.pcapng`);
  const har = join(dir, `${comm}.har`);
  const run = await captureWhile(['-f', 'jsonl', '--comm', comm, '--port', String(port), '-w', pcap, '--har', har], fn);
  const entries = (JSON.parse(readFileSync(har, 'utf8')) as { log: { entries: ClientCapture['har'] } }).log.entries;
  return { lines: parseJsonl<Line>(run.out), har: entries, pcap };
}

/**
 * The client's records, HAR and pcapng all carry the addresses nginx logged; the pcapng has no
 * placeholder address and tshark's expert info has no warning.
 */
function assertClientCapture(c: ClientCapture, who: string, pid: number, clientPort: number, serverPort: number): void {
  const records = c.lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === pid);
  assertAddresses(records, who, { ip: '127.0.0.1', port: clientPort }, { ip: '127.0.0.1', port: serverPort });
  assert.match(records.find((r) => r.dir === 'write')?.text ?? '', /^GET \/a\.txt HTTP\/1\.1\r\n/, `${who}: the request`);
  assert.ok(records.filter((r) => r.dir === 'read').map((r) => r.text).join('').endsWith('alpha over a memory BIO\n'), `${who}: the response`);
  const summary = c.lines.at(-1) as SummaryRecord;
  assert.equal(summary.unaddressed_excluded, undefined, 'no connection was left out for lack of addresses');

  assert.equal(c.har.length, 1, `${who}: HAR entries`);
  assert.equal(c.har[0]!.serverIPAddress, '127.0.0.1', `${who}: HAR serverIPAddress`);

  const endpoints = new Set(tsharkFields(c.pcap, ['ip.src', 'tcp.srcport', 'ip.dst', 'tcp.dstport']).map((f) => f.join(' ')));
  assert.deepEqual(
    [...endpoints].sort(),
    [`127.0.0.1 ${clientPort} 127.0.0.1 ${serverPort}`, `127.0.0.1 ${serverPort} 127.0.0.1 ${clientPort}`].sort(),
    `${who}: the pcapng's packets are between the ports nginx logged`,
  );
  const expert = spawnSync('tshark', ['-r', c.pcap, '-z', 'expert', '-q'], { encoding: 'utf8' });
  assert.equal(expert.status, 0, expert.stderr);
  assert.doesNotMatch(expert.stdout, /Warns|Errors/, `${who}: tshark's expert info:\n${expert.stdout}`);
}

test('--port with a Node https client and an aiohttp client: captured with the addresses nginx logged, in jsonl, HAR and pcapng (no tshark warning)', async (t) => {
  if (!requireRoot(t) || !requireTshark(t)) return;
  if (!hasAiohttp()) {
    if (process.env.CI === 'true') assert.fail('python3-aiohttp is missing (scripts/setup.sh installs it)');
    t.skip('python3-aiohttp is missing: apt install python3-aiohttp');
    return;
  }
  const nginx = await startNginx({ files: { 'a.txt': 'alpha over a memory BIO\n' } });
  const other = await startNginx({ files: { 'b.txt': 'not on the port asked for\n' } });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-bio-'));
  try {
    let node: ClientResult | undefined;
    let elsewhere: ClientResult | undefined;
    const nodeCapture = await captureClient(dir, 'node', nginx.port, async () => {
      node = await nodeFetch(`${nginx.url}/a.txt`);
      elsewhere = await nodeFetch(`${other.url}/b.txt`);
    });
    let aio: ClientResult | undefined;
    const aioCapture = await captureClient(dir, 'python3', nginx.port, async () => {
      aio = await aiohttpFetch(`${nginx.url}/a.txt`);
    });
    for (const c of [node!, aio!, elsewhere!]) assert.equal(c.exitCode, 0, c.stderr);
    assert.equal(node!.stdout.toString(), 'alpha over a memory BIO\n');
    assert.equal(aio!.stdout.toString(), 'alpha over a memory BIO\n');
    const [nodePort, aioPort] = nginx.accessLog().map((l) => Number(l.split(' ')[1]));
    assert.ok(nodePort && aioPort, 'nginx logged both requests');

    assertClientCapture(nodeCapture, 'node', node!.pid, nodePort, nginx.port);
    assertClientCapture(aioCapture, 'aiohttp', aio!.pid, aioPort, nginx.port);
    assert.equal(nodeCapture.lines.filter((l) => l.type === 'data' && l.pid === elsewhere!.pid).length, 0, 'a connection to another port is left out');
  } finally {
    await nginx.stop();
    await other.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A Node https server that logs each request's remote port, one per line. */
const NODE_SERVER = `
const https = require('node:https');
const fs = require('node:fs');
const [cert, key] = process.argv.slice(1);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  console.log(req.socket.remotePort);
  res.end('hello from a node server\\n');
});
server.listen(0, '127.0.0.1', () => console.error('port ' + server.address().port));
`;

test('--port with a Node https server: curl\'s requests are captured on both sides, with the ports each logged', async (t) => {
  if (!requireRoot(t)) return;
  const cert = await createSelfSignedCert();
  const server = spawn(process.execPath, ['-e', NODE_SERVER, cert.certPath, cert.keyPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let err = '';
      server.stderr.on('data', (b: Buffer) => {
        err += b.toString();
        const m = /port (\d+)/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      server.once('close', () => reject(new Error(`the node server exited: ${err}`)));
    });
    const logged: number[] = [];
    server.stdout.on('data', (b: Buffer) => logged.push(...b.toString().trim().split('\n').map(Number)));
    const curls: ClientResult[] = [];
    const run = await captureWhile(['-f', 'jsonl', '--port', String(port)], async () => {
      for (let i = 0; i < 2; i++) curls.push(await curlFetch(`https://127.0.0.1:${port}/`, { extraArgs: ['-w', '%{local_port}'] }));
    });
    const lines = parseJsonl<Line>(run.out);
    for (const [i, curl] of curls.entries()) {
      assert.equal(curl.exitCode, 0, curl.stderr);
      const [body, localPort] = curl.stdout.toString().split('\n');
      assert.equal(body, 'hello from a node server');
      assert.equal(Number(localPort), logged[i], 'curl and the server agree on the client port');
      const serverRecords = lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === server.pid && l.conn?.remote?.port === logged[i]);
      assertAddresses(serverRecords, `node server, request ${i + 1}`, { ip: '127.0.0.1', port }, { ip: '127.0.0.1', port: logged[i]! });
      assert.match(serverRecords.find((r) => r.dir === 'read')?.text ?? '', /^GET \/ HTTP\/1\.1\r\n/, 'the server read the request');
      assert.match(serverRecords.filter((r) => r.dir === 'write').map((r) => r.text).join(''), /hello from a node server/);
    }
  } finally {
    server.kill();
    await cert.remove();
  }
});
