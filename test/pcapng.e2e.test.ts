// End-to-end, as root: tlstap -w writes pcapng that tshark dissects at once: HTTP/1.1 and HTTP/2
// requests, Follow Stream equal to the plaintext, and a file that survives kill -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataRecord } from '../src/output/index.js';
import { curlFetch } from '../src/demo/clients.js';
import { startNginx } from './support/nginx.js';
import { followRaw, requireTshark, run, tsharkFields } from './support/pcapng-tools.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, startTlstap } from './support/tlstap-process.js';

const FILES = { 'a.txt': 'alpha over HTTP/1.1\n', 'b.txt': 'bravo over HTTP/2\n' };

/** The `-d tcp.port==N,proto` options tlstap printed for the file. */
function decodeAs(stderr: string): string[] {
  const line = stderr.split('\n').find((l) => l.trim().startsWith('tshark '));
  assert.ok(line, `tlstap printed a tshark command:\n${stderr}`);
  return [...line.matchAll(/-d (\S+)/g)].flatMap((m) => ['-d', m[1]!]);
}

test('curl --http1.1 and --http2 through -w: tshark lists the requested URIs and Follow Stream equals the plaintext', async (t) => {
  if (!requireRoot(t) || !requireTshark(t)) return;
  const nginx = await startNginx({ files: FILES });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-pcap-'));
  try {
    const pcap = join(dir, 'out.pcapng');
    const jsonl = join(dir, 'out.jsonl');
    const tlstap = await startTlstap(['-w', pcap, '-f', 'jsonl', '-o', jsonl, '--comm', 'curl']);
    const h1 = await curlFetch(`${nginx.url}/a.txt`);
    const h2 = await curlFetch(`${nginx.url}/b.txt`, { http1_1: false, extraArgs: ['--http2'] });
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(h1.exitCode, 0, h1.stderr);
    assert.equal(h2.exitCode, 0, h2.stderr);
    assert.equal(statSync(pcap).mode & 0o777, 0o600);

    const opts = decodeAs(exit.stderr);
    assert.ok(opts.some((o) => o.endsWith(`${nginx.port},http2`) || o.endsWith(`${nginx.port},http`)), `decode-as for port ${nginx.port}: ${opts.join(' ')}`);
    const uris = tsharkFields(pcap, ['http.request.uri'], [...opts, '-Y', 'http.request']).flat();
    assert.ok(uris.includes('/a.txt'), `HTTP/1.1 URIs: ${uris.join(', ')}`);
    const paths = tsharkFields(pcap, ['http2.headers.path'], [...opts, '-Y', 'http2.header']).flat().join(',').split(',');
    assert.ok(paths.includes('/b.txt'), `HTTP/2 paths: ${paths.join(', ')}`);

    // Stream 0 is curl's first connection: its bytes are exactly what the jsonl records hold.
    const records = parseJsonl<DataRecord>(readFileSync(jsonl, 'utf8')).filter((r) => r.type === 'data' && r.pid === h1.pid);
    const bytes = (dir: 'read' | 'write') => Buffer.concat(records.filter((r) => r.dir === dir).map((r) => (r.text !== undefined ? Buffer.from(r.text) : Buffer.from(r.base64!, 'base64'))));
    const follow = followRaw(pcap, 0, opts);
    assert.ok(follow.client.equals(bytes('write')), 'client → server bytes');
    assert.ok(follow.server.equals(bytes('read')), 'server → client bytes');
    assert.match(follow.client.toString(), /^GET \/a\.txt HTTP\/1\.1\r\n/);
    assert.ok(follow.server.toString().endsWith(FILES['a.txt']));
  } finally {
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const BIG_MIB = Number(process.env.TLSTAP_E2E_BIG_MIB ?? 16);

test(`a ${BIG_MIB} MiB download: the response stream tshark follows equals the file served`, async (t) => {
  if (!requireRoot(t) || !requireTshark(t)) return;
  const body = randomBytes(BIG_MIB * 1024 * 1024);
  const nginx = await startNginx({ files: { 'big.bin': body } });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-pcap-'));
  try {
    const pcap = join(dir, 'big.pcapng');
    // pcapng only (-f none); the download is paced to what the pipeline takes on a loaded 2-CPU
    // machine, since anything faster is dropped (and counted: the summary is checked below).
    const tlstap = await startTlstap(['-w', pcap, '-f', 'none', '--comm', 'curl', '--ring-buffer', '64m']);
    const started = performance.now();
    const curl = await curlFetch(`${nginx.url}/big.bin`, { outFile: join(dir, 'body'), extraArgs: ['--limit-rate', '40M'] });
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(curl.exitCode, 0, curl.stderr);
    assert.match(exit.stderr, /events dropped:\s+0\n/, 'nothing was dropped');
    const follow = followRaw(pcap, 0);
    const received = follow.server.subarray(follow.server.indexOf('\r\n\r\n') + 4);
    assert.equal(received.length, body.length);
    assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(body).digest('hex'));
    console.log(`# ${BIG_MIB} MiB through pcapng: byte-exact, ${Math.round(performance.now() - started)} ms from download start to the compare`);
  } finally {
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 of tlstap during a large download leaves a pcapng whose packets up to the last block tshark reads', async (t) => {
  if (!requireRoot(t) || !requireTshark(t)) return;
  const nginx = await startNginx({ files: { 'big.bin': randomBytes(64 * 1024 * 1024) } });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-pcap-'));
  try {
    const pcap = join(dir, 'killed.pcapng');
    const tlstap = await startTlstap(['-w', pcap, '-o', '/dev/null', '--comm', 'curl']);
    const download = curlFetch(`${nginx.url}/big.bin`, { outFile: join(dir, 'body'), extraArgs: ['--limit-rate', '16M'] });
    // Kill it mid-download, once it has written a good part.
    for (let i = 0; i < 200 && (statSync(pcap).size < 4 * 1024 * 1024); i++) await new Promise((r) => setTimeout(r, 100));
    tlstap.child.kill('SIGKILL');
    await tlstap.exited;
    await download;
    assert.ok(statSync(pcap).size > 1024 * 1024, `something was written before the kill: ${statSync(pcap).size} bytes; curl: ${(await download).stderr}`);
    // Every block is whole but the one a write() cut short when SIGKILL arrived, if any (Linux can
    // end a write early at a page boundary on a fatal signal): tshark reads every packet before it.
    const read = run('tshark', ['-r', pcap, '-q', '-z', 'io,stat,0']);
    if (read.status !== 0) assert.match(read.stderr, /cut short in the middle of a packet/, read.stderr);
    const capinfos = run('capinfos', ['-c', pcap]);
    assert.match(capinfos.stdout, /Number of packets:\s+\d+/);
    assert.ok(Number(/Number of packets:\s+(\d+)/.exec(capinfos.stdout)![1]) > 100, 'the packets before the kill are there');
  } finally {
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
