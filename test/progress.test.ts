// The -v stats line: its rates divide by the time that really passed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startProgress } from '../src/commands/progress.js';
import type { CaptureStats } from '../src/events/types.js';

const stats = (calls: number, bytes: number): CaptureStats => ({ calls, bytes, eventsDropped: 0, bytesDropped: 0, bytesTruncated: 0, readFaults: 0, readFaultBytes: 0 });

test('after a stall (the line comes 30 s late), 30 s of data is divided by 30 s, not by 1 s', async () => {
  let clock = 0;
  let current = stats(0, 0);
  const lines: string[] = [];
  const stop = startProgress(() => current, (l) => lines.push(l), { intervalMs: 10, now: () => clock });
  // 30 000 calls and 30 MiB over 30 s of clock time: 1000 calls/s, 1 MiB/s.
  clock += 30_000;
  current = stats(30_000, 30 * 1024 * 1024);
  await sleep(40);
  stop();
  assert.ok(lines.length >= 1);
  assert.match(lines[0]!, /^tlstap: 1000 calls\/s, 1\.0 MiB\/s \| total 30000 calls, 30\.0 MiB/);
});
