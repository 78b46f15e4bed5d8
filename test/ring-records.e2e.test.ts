// End-to-end, as root: the kernel reads each chunk of a call straight into a ring-buffer record
// reserved at one of a few constant sizes. Calls of sizes between those classes, and calls of
// several chunks, arrive byte-exact; the bytes past a chunk are zero, and the padding is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import type { DataRecord, SummaryRecord } from '../src/output/index.js';
import { openRecordFile } from '../src/record/index.js';
import { requireRoot } from './support/privileges.js';
import { parseJsonl, runTlstap, startTlstap } from './support/tlstap-process.js';
import type { TlstapProcess } from './support/tlstap-process.js';
import { LOADGEN, runLoadgen } from '../bench/loadgen.js';

type Line = DataRecord | SummaryRecord;
const D = EVENT_LAYOUT.data;
const CHUNK = EVENT_LAYOUT.constants.CHUNK_SIZE;

/** loadgen's plaintext: the byte at stream offset p is p % 251. */
function pattern(length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let p = 0; p < length; p++) b[p] = p % 251;
  return b;
}

/** `length` bytes of the pattern from the byte value `first` on. */
function patternFrom(first: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let k = 0; k < length; k++) b[k] = (first + k) % 251;
  return b;
}

function bytesOf(r: DataRecord): Buffer {
  return r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64 ?? '', 'base64');
}

// 1 and 100 B: small classes; 1000 B: between 896 and 1024; 40 000 B: two whole 16 KiB chunks and a tail.
// Each run moves twice the 8 MiB ring buffer or more, so records land where earlier ones were.
const RING = 8 << 20;
const CALLS: Record<number, number> = { 1: 40_000, 100: 40_000, 1000: 8000, 40_000: 200 };
for (const size of [1, 100, 1000, 40_000]) {
  test(`${size}-byte calls: every byte in order, the records' padding zero and under a quarter of the payload`, { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'tlstap-records-'));
    let tlstap: TlstapProcess | undefined;
    try {
      const comm = `tr${randomBytes(6).toString('hex')}`;
      const lg = join(dir, comm);
      copyFileSync(LOADGEN, lg);
      chmodSync(lg, 0o755);
      // Only recorded (the poller's pace), then checked through a replay (no ring buffer to overflow).
      const record = join(dir, 'run.tlstap');
      tlstap = await startTlstap(['--comm', comm, '--ring-buffer', '8m', '-f', 'none', '--record', record]);
      const calls = CALLS[size]!;
      const load = await runLoadgen(['-n', String(calls), '-s', String(size)], lg);
      const exit = await tlstap.stop('SIGINT');
      assert.equal(exit.code, 0, exit.stderr);

      const replay = await runTlstap(['replay', record, '-f', 'jsonl']);
      assert.equal(replay.code, 0, replay.stderr);
      const lines = parseJsonl<Line>(replay.stdout.toString());
      const summary = lines.at(-1) as SummaryRecord;
      const data = lines.filter((l): l is DataRecord => l.type === 'data');
      assert.ok(data.every((r) => r.truncated === 0));
      if (summary.events_dropped === 0) {
        assert.ok(data.every((r) => r.lost === 0));
        const expected = pattern(calls * size);
        for (const [side, pid] of [['writer', load.writer_pid], ['reader', load.reader_pid]] as const) {
          const got = Buffer.concat(data.filter((r) => r.pid === pid).map(bytesOf));
          assert.ok(got.equals(expected), `the ${side}'s ${got.length} bytes are the ${expected.length} it moved`);
        }
      } else {
        // An unpaced load can outrun the poller on 2 CPUs (the drops are counted; `npm run bench` and
        // burst.e2e measure them). What did arrive must still be exact: each whole call is a run of
        // the pattern from its first byte, and the writer's calls are whole unless their loss is counted.
        t.diagnostic(`${summary.events_dropped} events dropped at this unpaced load: each captured call checked on its own`);
        for (const r of data.filter((d) => d.pid === load.writer_pid || d.pid === load.reader_pid)) {
          const got = bytesOf(r);
          if (r.lost > 0) continue;
          assert.equal(got.length, r.len, 'a call without loss has every byte');
          assert.ok(got.equals(patternFrom(got[0]!, got.length)), `a ${got.length}-byte call of pid ${r.pid} is a run of the pattern`);
        }
      }

      // The raw records: a chunk fills its record but for zeroed padding of less than a quarter of it.
      const reader = await openRecordFile(record);
      let chunks = 0;
      let recordBytes = 0;
      try {
        for await (const { batch, count } of reader.batches()) {
          let pos = 0;
          for (let i = 0; i < count; i++) {
            const length = batch.readUInt32LE(pos);
            const start = pos + 4;
            pos = start + length;
            if (batch.readUInt32LE(start + D.fields.kind.offset) !== EVENT_LAYOUT.constants.EVENT_DATA) continue;
            chunks++;
            const chunkLen = batch.readUInt32LE(start + D.fields.chunk_len.offset);
            const padding = batch.subarray(start + D.size + chunkLen, pos);
            recordBytes += length;
            assert.ok(chunkLen >= 1 && chunkLen <= CHUNK, `chunk of ${chunkLen} bytes`);
            assert.ok(padding.length <= Math.max(15, chunkLen / 4), `${padding.length} bytes of padding after a ${chunkLen}-byte chunk`);
            assert.ok(padding.every((b) => b === 0), `the padding after a ${chunkLen}-byte chunk is zero`);
          }
        }
      } finally {
        await reader.close();
      }
      // A write of 40 000 B is three chunks (16 KiB, 16 KiB, the rest); a dropped chunk is counted as an event.
      assert.ok(chunks + summary.events_dropped >= data.length + (size > CHUNK ? 2 * calls : 0), `${chunks} data records (and ${summary.events_dropped} dropped) for ${data.length} calls`);
      assert.ok(recordBytes > RING, `${recordBytes} bytes of records went round the ${RING}-byte ring buffer`);
    } finally {
      if (tlstap && tlstap.child.exitCode === null && tlstap.child.signalCode === null) {
        tlstap.child.kill('SIGKILL');
        await tlstap.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
