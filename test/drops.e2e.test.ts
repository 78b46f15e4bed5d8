// End-to-end, as root: when the ring buffer is too small, tlstap loses calls — and says exactly
// how many. Every call loadgen made is either in the output or counted as dropped, never neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataRecord, SummaryRecord } from '../src/output/index.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, runTlstap, startTlstap } from './support/tlstap-process.js';
import type { TlstapProcess } from './support/tlstap-process.js';
import { LOADGEN, runLoadgen } from '../bench/loadgen.js';
import type { LoadgenResult } from '../bench/loadgen.js';

type Line = DataRecord | SummaryRecord;

const CALLS = 20_000;
const SIZE = 1024;

/** Runs the loadgen binary at `path` (a copy under a name of its own) to completion. */
function loadgen(path: string, calls: number, size: number): Promise<LoadgenResult> {
  return runLoadgen(['-n', String(calls), '-s', String(size)], path);
}

test(`a 32 KiB ring buffer (the smallest that holds a 16 KiB chunk) under ${CALLS} × 1 KiB calls: captured + dropped = every call, and the dropped bytes add up`, { timeout: 180_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-drops-'));
  let tlstap: TlstapProcess | undefined;
  try {
    // loadgen under a name of its own, so --comm sees only this test's writer and reader.
    const comm = `td${randomBytes(6).toString('hex')}`;
    const lg = join(dir, comm);
    copyFileSync(LOADGEN, lg);
    chmodSync(lg, 0o755);
    const out = join(dir, 'out.jsonl');

    // 32 KiB holds about 29 records of a 1 KiB call. The poller, woken in time, keeps up even with
    // that; held (SIGSTOP) for the load's first 200 ms, it cannot: the ring overflows for sure.
    const record = join(dir, 'run.tlstap');
    tlstap = await startTlstap(['--comm', comm, '--ring-buffer', '32k', '-f', 'jsonl', '-o', out, '--record', record]);
    const pid = tlstap.child.pid!;
    process.kill(pid, 'SIGSTOP');
    const held = setTimeout(() => process.kill(pid, 'SIGCONT'), 200);
    let load: LoadgenResult;
    try {
      load = await loadgen(lg, CALLS, SIZE);
    } finally {
      clearTimeout(held);
      process.kill(pid, 'SIGCONT');
    }
    const exit = await tlstap.stop('SIGINT');
    assert.equal(exit.code, 0, exit.stderr);
    // Each 1 KiB write arrives in one TLS record, which the reader's SSL_read returns whole.
    assert.equal(load.read_calls, CALLS, 'one SSL_read per SSL_write');

    const lines = parseJsonl<Line>(readFileSync(out, 'utf8'));
    const summary = lines.at(-1) as SummaryRecord;
    assert.equal(summary.type, 'summary');
    const data = lines.filter((l): l is DataRecord => l.type === 'data');
    assert.ok(data.every((r) => r.comm === comm && (r.pid === load.writer_pid || r.pid === load.reader_pid)));
    assert.ok(data.every((r) => r.len === SIZE && r.lost === 0 && r.truncated === 0), 'a call is captured whole or not at all');

    assert.ok(summary.events_dropped > 0, `the tiny ring buffer overflowed (dropped ${summary.events_dropped})`);
    assert.ok(data.length > 0, 'some calls got through');
    // A 1 KiB call is one record: every call is either captured or counted as dropped. Connection
    // events (open, fd, close: a handful per connection) share the ring buffer and the drop
    // counter, so events_dropped may also hold a few of those for loadgen's 2 connections.
    const connEvents = lines.length - data.length - 1;
    const surplus = data.length + summary.events_dropped - 2 * CALLS;
    assert.ok(
      surplus >= 0 && surplus <= 10,
      `captured ${data.length} + dropped ${summary.events_dropped} vs ${2 * CALLS} calls (${connEvents} connection events seen)`,
    );
    assert.equal(summary.calls, data.length);
    assert.equal(summary.bytes_dropped, (summary.events_dropped - surplus) * SIZE, 'the dropped calls\' bytes, to the byte');
    assert.match(exit.stderr, new RegExp(`events dropped:\\s+${summary.events_dropped}\\n`));
    assert.match(exit.stderr, /warning: the ring buffer was full/);

    // The recording ends with the kernel counters: its replay reports the same losses.
    const replay = await runTlstap(['replay', record, '-f', 'jsonl']);
    assert.equal(replay.code, 0, replay.stderr);
    const replayed = parseJsonl<Line>(replay.stdout.toString()).at(-1) as SummaryRecord;
    assert.deepEqual(
      [replayed.calls, replayed.events_dropped, replayed.bytes_dropped],
      [summary.calls, summary.events_dropped, summary.bytes_dropped],
    );
  } finally {
    // A failed assertion must not leave tlstap attached (and the test runner waiting on it).
    if (tlstap && tlstap.child.exitCode === null && tlstap.child.signalCode === null) {
      tlstap.child.kill('SIGKILL');
      await tlstap.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
