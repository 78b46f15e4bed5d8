// End-to-end, as root: real programs built on the other TLS libraries fetch from nginx while tlstap
// captures system-wide — wget (GnuTLS), bssl-tool (BoringSSL), an NSS client whose plain file reads
// must not show up — and node, with OpenSSL linked into its executable, traced by pid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionRecord, DataRecord, SummaryRecord } from '../src/output/index.js';
import { bsslFetch, ensureNssClient, nssFetch, wgetFetch } from './support/libraries.js';
import type { LibraryClientResult } from './support/libraries.js';
import { startNginx } from './support/nginx.js';
import type { NginxServer } from './support/nginx.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl, startTlstap } from './support/tlstap-process.js';

type Line = DataRecord | ConnectionRecord | SummaryRecord;

const GNUTLS = '/usr/lib/x86_64-linux-gnu/libgnutls.so.30';
const BORING_LIBSSL = '/usr/lib/x86_64-linux-gnu/android/libssl.so.0';
const NSPR = '/usr/lib/x86_64-linux-gnu/libnspr4.so';

// Bodies unique to this run, so a match can only come from this test's traffic.
const tag = randomBytes(6).toString('hex');
const FILES = { 'a.txt': `alpha body ${tag}\n`, 'b.txt': `bravo body ${tag}, a little longer\n` };

function text(r: DataRecord): string {
  return r.text ?? Buffer.from(r.base64 ?? '', 'base64').toString('latin1');
}

function dataOf(lines: readonly Line[], pid: number): DataRecord[] {
  return lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === pid);
}

/** Runs fn while tlstap captures JSON lines (extra args: -p, --comm ...); returns the lines. */
async function capture(args: string[], fn: () => Promise<void>): Promise<Line[]> {
  return parseJsonl<Line>((await captureWhile(['-f', 'jsonl', ...args], fn)).out);
}

function clientOk(r: LibraryClientResult, body: string): void {
  assert.equal(r.exitCode, 0, `${r.comm} failed: ${r.stderr}`);
  assert.ok(r.stdout.toString('latin1').endsWith(body), `${r.comm} got the file: ${r.stdout.toString('latin1')}`);
}

/**
 * The client's records: on one connection, from `file`, by `comm`, with these functions; its writes
 * start with the request for `path`, its reads end with the body; the addresses are the ones nginx saw.
 */
function assertClientTraffic(
  lines: readonly Line[],
  nginx: NginxServer,
  client: { pid: number; comm: string },
  expected: { file: string; write: string; read: string; path: '/a.txt' | '/b.txt'; closedBy: readonly string[] },
): void {
  const records = dataOf(lines, client.pid);
  const summary = `${records.length} records of pid ${client.pid}: ${records.map((r) => `${r.func} ${r.len}`).join(', ')}`;
  assert.ok(records.length >= 2, summary);
  for (const r of records) {
    assert.equal(r.comm, client.comm);
    assert.equal(r.file, expected.file);
    assert.ok(r.func === expected.write || r.func === expected.read, `${r.func} is ${expected.write} or ${expected.read}`);
    assert.equal(r.dir, r.func === expected.write ? 'write' : 'read');
  }
  const request = records.filter((r) => r.dir === 'write').map(text).join('');
  const response = records.filter((r) => r.dir === 'read').map(text).join('');
  assert.ok(request.startsWith(`GET ${expected.path} HTTP/1.1\r\n`), `the request: ${JSON.stringify(request)}`);
  assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(response.endsWith(FILES[expected.path.slice(1) as keyof typeof FILES]), `the response ends with the file: ${JSON.stringify(response)}`);

  // One connection, whose addresses are the ones nginx logged for this request.
  const ids = new Set(records.map((r) => r.conn?.id));
  assert.equal(ids.size, 1, `one connection: ${[...ids].join(', ')}`);
  // Its close names what ended it in this library's own words (gnutls_bye, PR_Close; not SSL_free).
  const closes = lines.filter((l) => l.type === 'close' && (l as { conn?: { id: number } }).conn?.id === records[0]!.conn?.id);
  assert.equal(closes.length, 1, `one close of connection ${records[0]!.conn?.id}`);
  for (const c of closes) {
    const reason = (c as { reason?: string }).reason ?? '';
    assert.ok(expected.closedBy.includes(reason), `close reason ${reason}, expected ${expected.closedBy.join(' or ')}`);
  }
  const logged = nginx.accessLog().filter((l) => l.includes(` GET ${expected.path} `));
  const ports = logged.map((l) => Number(l.split(' ')[1]));
  for (const r of records) {
    assert.ok(r.conn, 'the record has a connection');
    assert.ok(r.conn.fd >= 0, `fd known: ${JSON.stringify(r.conn)}`);
    assert.deepEqual(r.conn.remote, { ip: '127.0.0.1', port: nginx.port }, 'remote is the server');
    assert.equal(r.conn.local?.ip, '127.0.0.1');
    assert.ok(ports.includes(r.conn.local.port), `local port ${r.conn.local.port} is one nginx logged (${ports.join(', ')})`);
  }
}

test('wget (GnuTLS) fetches a file from nginx: tlstap shows its request and response, with addresses', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    let wget: LibraryClientResult | undefined;
    const lines = await capture([], async () => {
      wget = await wgetFetch(`${nginx.url}/a.txt`);
      clientOk(wget, FILES['a.txt']);
    });
    assertClientTraffic(lines, nginx, wget!, { file: GNUTLS, write: 'gnutls_record_send', read: 'gnutls_record_recv', path: '/a.txt', closedBy: ['gnutls_bye', 'gnutls_deinit', 'the process exited'] });
  } finally {
    await nginx.stop();
  }
});

test('bssl-tool (BoringSSL) talks HTTP to nginx: its traffic is captured from the android libssl.so.0', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  try {
    let bssl: LibraryClientResult | undefined;
    const lines = await capture([], async () => {
      bssl = await bsslFetch('127.0.0.1', nginx.port, '/b.txt');
      clientOk(bssl, FILES['b.txt']);
    });
    assertClientTraffic(lines, nginx, bssl!, { file: BORING_LIBSSL, write: 'SSL_write', read: 'SSL_read', path: '/b.txt', closedBy: ['SSL_shutdown', 'SSL_free'] });
  } finally {
    await nginx.stop();
  }
});

test('an NSS client is captured through NSPR, while its plain file reads through the same PR_Read are not', async (t) => {
  if (!requireRoot(t)) return;
  ensureNssClient();
  const nginx = await startNginx({ files: FILES });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-nspr-file-'));
  try {
    // A file NSPR reads with PR_Read before connecting: its marker must appear in no record at all.
    const marker = `plain-file-marker-${randomBytes(8).toString('hex')}`;
    const plainFile = join(dir, 'plain.txt');
    writeFileSync(plainFile, `${marker}\n`.repeat(64));
    let nss: LibraryClientResult | undefined;
    const lines = await capture([], async () => {
      nss = await nssFetch('127.0.0.1', nginx.port, '/a.txt', plainFile);
      clientOk(nss, FILES['a.txt']);
    });
    assert.match(nss!.stderr, new RegExp(`read ${64 * (marker.length + 1)} bytes from ${plainFile}`));
    assertClientTraffic(lines, nginx, nss!, { file: NSPR, write: 'PR_Write', read: 'PR_Read', path: '/a.txt', closedBy: ['PR_Close'] });
    const leaked = lines.filter((l): l is DataRecord => l.type === 'data' && text(l).includes(marker));
    assert.deepEqual(leaked.map((l) => `${l.comm} ${l.func}`), [], 'plain file I/O through NSPR is not reported');
  } finally {
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('node (OpenSSL inside its executable) traced with -p PID: its request and response, and nothing from other processes', async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: FILES });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-libraries-'));
  // node is started first and fetches only when told to, after tlstap has attached to it by pid (a
  // fixed delay is not enough on a loaded machine, where attaching alone can take seconds).
  const script = `
const https = require('node:https');
process.stdin.once('data', () => {
  https.get(process.argv[1], { rejectUnauthorized: false, agent: false }, (res) => res.pipe(process.stdout))
    .on('error', (e) => { console.error(String(e)); process.exitCode = 1; });
  process.stdin.destroy();
});
console.error('waiting');
`;
  const node = spawn(process.execPath, ['-e', script, `${nginx.url}/b.txt`], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    const out = join(dir, 'out.jsonl');
    await once(node.stderr, 'data');
    const tlstap = await startTlstap(['-f', 'jsonl', '-o', out, '-p', String(node.pid!)]);
    let body = '';
    let stderr = '';
    node.stdout.on('data', (b: Buffer) => (body += b.toString()));
    node.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = once(node, 'close');
    node.stdin.write('go\n');
    const [code] = (await exited) as [number | null];
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(code, 0, stderr);
    assert.equal(body, FILES['b.txt']);
    const lines = parseJsonl<Line>(readFileSync(out, 'utf8'));
    const data = lines.filter((l): l is DataRecord => l.type === 'data');
    assert.deepEqual([...new Set(data.map((r) => r.pid))], [node.pid], 'only the traced process');
    assert.ok(data.length >= 2, `${data.length} records`);
    const nodePath = realpathSync(process.execPath);
    const writes = data.filter((r) => r.dir === 'write');
    const reads = data.filter((r) => r.dir === 'read');
    for (const r of data) {
      assert.equal(r.comm, 'node');
      assert.equal(r.file, nodePath);
      assert.match(r.func, /^SSL_(read|write)(_ex)?$/);
    }
    assert.match(writes.map(text).join(''), /^GET \/b\.txt HTTP\/1\.1\r\n/);
    assert.ok(reads.map(text).join('').endsWith(FILES['b.txt']));
    // node's TLS sits on memory BIOs: libuv moves the ciphertext outside the SSL_* calls, so no socket
    // syscall happens inside them and the addresses stay unknown, with the reason said.
    assert.equal(new Set(data.map((r) => r.conn?.id)).size, 1, 'one connection');
    for (const r of data) {
      assert.ok(r.conn, 'the record has a connection');
      assert.equal(r.conn.remote, null);
      assert.match(r.conn.unknown ?? '', /memory BIO/);
    }
  } finally {
    if (node.exitCode === null && node.signalCode === null) node.kill('SIGKILL');
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
