// End-to-end, as root: real clients fetch from a local TLS server while the tlstap CLI captures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256OfBytes } from '../src/demo/server.js';
import type { DataRecord, SummaryRecord } from '../src/output/index.js';
import { curlFetch, nodeFetch, pythonFetch } from '../src/demo/clients.js';
import type { ClientResult } from '../src/demo/clients.js';
import { spawnDemoServer } from '../src/demo/server-process.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, runTlstap, startTlstap } from './support/tlstap-process.js';

type Line = DataRecord | SummaryRecord;

function payload(r: DataRecord): Buffer {
  return r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64 ?? '', 'base64');
}

function recordsOf(lines: Line[], client: ClientResult): DataRecord[] {
  return lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === client.pid);
}

function joined(records: DataRecord[], dir: 'read' | 'write'): Buffer {
  return Buffer.concat(records.filter((r) => r.dir === dir).map(payload));
}

const FIVE_MIB = 5 * 1024 * 1024;

test('curl, python3 urllib and node https: each request and response shows up with the right comm', async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-e2e-'));
  const server = await spawnDemoServer();
  try {
    const out = join(dir, 'out.jsonl');
    const record = join(dir, 'clients.tlstap');
    const tlstap = await startTlstap(['-f', 'jsonl', '-o', out, '--record', record]);
    const curl = await curlFetch(`${server.url}/hello`);
    const python = await pythonFetch(`${server.url}/json`);
    const node = await nodeFetch(`${server.url}/hello`);
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
    for (const c of [curl, python, node]) assert.equal(c.exitCode, 0, c.stderr);

    assert.equal(statSync(out).mode & 0o777, 0o600, 'output files are private');
    const lines = parseJsonl<Line>(readFileSync(out, 'utf8'));
    const summary = lines.at(-1) as SummaryRecord;
    assert.equal(summary.type, 'summary');
    assert.equal(summary.events_dropped, 0);

    await t.test('curl: SSL_write carries the request line, SSL_read the response body', () => {
      const recs = recordsOf(lines, curl);
      assert.ok(recs.length >= 2, `curl records: ${recs.length}`);
      assert.ok(recs.every((r) => r.comm === 'curl'));
      assert.match(joined(recs, 'write').toString(), /^GET \/hello HTTP\/1\.1\r\n/);
      assert.ok(recs.some((r) => r.func === 'SSL_write'));
      const response = joined(recs, 'read').toString();
      assert.match(response, /^HTTP\/1\.1 200/);
      assert.ok(response.endsWith(curl.stdout.toString()), 'the body curl printed is the body captured');
    });

    await t.test('python3 urllib: SSL_write_ex/SSL_read_ex calls are captured', () => {
      const recs = recordsOf(lines, python);
      assert.ok(recs.length >= 2, `python records: ${recs.length}`);
      assert.ok(recs.every((r) => r.comm === python.comm));
      assert.ok(recs.some((r) => r.func === 'SSL_write_ex'), 'python uses SSL_write_ex');
      assert.match(joined(recs, 'write').toString(), /^GET \/json HTTP\/1\.1\r\n/);
      assert.ok(joined(recs, 'read').toString().endsWith(python.stdout.toString()));
    });

    await t.test('node https: OpenSSL linked into /usr/bin/node is probed too', () => {
      const recs = recordsOf(lines, node);
      assert.ok(recs.length >= 2, `node records: ${recs.length}`);
      assert.ok(recs.every((r) => r.comm === 'node'));
      assert.match(joined(recs, 'write').toString(), /^GET \/hello HTTP\/1\.1\r\n/);
      assert.ok(joined(recs, 'read').toString().endsWith(node.stdout.toString()));
      assert.ok(recs.every((r) => r.file === process.execPath || r.file?.endsWith('/node')), 'the node binary itself');
    });

    await t.test('replay of the recording gives the same records as the live capture', async () => {
      const replay = await runTlstap(['replay', record, '-f', 'jsonl']);
      assert.equal(replay.code, 0, replay.stderr);
      const live = lines.filter((l) => l.type === 'data');
      const replayed = parseJsonl<Line>(replay.stdout.toString()).filter((l) => l.type === 'data');
      assert.deepEqual(replayed, live);
    });

    if (process.env.TLSTAP_WRITE_FIXTURES === '1') copyFileSync(record, 'fixtures/recordings/clients.tlstap');
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 5 MiB response arrives complete and byte-exact', async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-e2e-'));
  const server = await spawnDemoServer();
  try {
    const out = join(dir, 'out.jsonl');
    const tlstap = await startTlstap(['-f', 'jsonl', '-o', out, '--comm', 'curl']);
    const curl = await curlFetch(`${server.url}/bytes/${FIVE_MIB}`, { outFile: join(dir, 'body') });
    const exit = await tlstap.stop('SIGTERM');
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(curl.exitCode, 0, curl.stderr);

    const lines = parseJsonl<Line>(readFileSync(out, 'utf8'));
    const response = joined(recordsOf(lines, curl), 'read');
    const bodyStart = response.indexOf('\r\n\r\n') + 4;
    const body = response.subarray(bodyStart);
    assert.equal(body.length, FIVE_MIB);
    assert.equal(createHash('sha256').update(body).digest('hex'), sha256OfBytes(FIVE_MIB));
    const summary = lines.at(-1) as SummaryRecord;
    assert.deepEqual([summary.events_dropped, summary.bytes_dropped, summary.bytes_truncated], [0, 0, 0]);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the program loads off the JS thread: the session refuses other calls until then, and attaches or closes after', async (t) => {
  if (!requireRoot(t)) return;
  const { LoadedProgram } = await import('../src/capture/session.js');
  const { BpfError, bpfObjectPath, loadAddon } = await import('../src/native/binding.js');
  const { systemTargets } = await import('../src/targets/index.js');

  const native = new (loadAddon().BpfSession)(bpfObjectPath());
  const loading = native.loadAsync();
  assert.throws(() => native.setMapMaxEntries('events', 1 << 22), (e: unknown) => e instanceof BpfError && e.code === 'EBUSY');
  assert.throws(() => native.close(), (e: unknown) => e instanceof BpfError && e.code === 'EBUSY');
  await loading;
  native.close();

  const settings = { comm: 'tlstap-nobody', maxCallBytes: 1 << 16, ringBufferBytes: 1 << 16 };
  const unused = await LoadedProgram.load(settings);
  await unused.close();
  await unused.close();
  await assert.rejects(unused.attach([], () => undefined), /attached or closed already/);

  const targets = (await systemTargets({ executables: false, flavour: false })).filter((x) => x.functions.length > 0);
  for (const perProbeLinks of [false, true]) {
    const program = await LoadedProgram.load({ ...settings, perProbeLinks });
    assert.equal(program.multiLinks, !perProbeLinks);
    const session = await program.attach(targets, () => undefined);
    assert.ok(session.probeCount >= targets.length);
    await session.stop();
  }
});

test('with one perf-event probe per function (what kernels before 6.6 get), calls are captured the same way', async (t) => {
  if (!requireRoot(t)) return;
  const { CaptureSession } = await import('../src/capture/session.js');
  const { CallPipeline } = await import('../src/capture/pipeline.js');
  const { systemTargets } = await import('../src/targets/index.js');
  const server = await spawnDemoServer();
  try {
    const calls: { comm: string; dir: string; text: string }[] = [];
    const pipeline = new CallPipeline([{ write: (c) => calls.push({ comm: c.comm, dir: c.dir, text: c.data.toString() }), close: async () => undefined }]);
    const targets = (await systemTargets({ executables: false })).filter((x) => x.functions.length > 0);
    const session = await CaptureSession.open(targets, { comm: 'curl', maxCallBytes: 1 << 20, ringBufferBytes: 1 << 22, perProbeLinks: true }, pipeline.onBatch);
    assert.equal(session.multiLinks, false);
    const curl = await curlFetch(`${server.url}/hello`);
    await session.stop();
    pipeline.flush();
    assert.equal(curl.exitCode, 0, curl.stderr);
    assert.match(calls.filter((c) => c.dir === 'write').map((c) => c.text).join(''), /^GET \/hello HTTP\/1\.1\r\n/);
    assert.ok(calls.filter((c) => c.dir === 'read').map((c) => c.text).join('').endsWith(curl.stdout.toString()));
  } finally {
    await server.stop();
  }
});
