// The path of ring-buffer records from the native poller to JS (native/src/courier.cc), fed by a
// native thread of synthetic records: straight to JS while it keeps up, through the spill (memory,
// then its file) while it is behind, and every record arrives once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon } from '../src/native/binding.js';
import type { RecordFeedPlan } from '../src/native/binding.js';
import type { SpillStats } from '../src/events/types.js';

interface Received {
  /** Each batch's route: 'D' straight from the producer, 'S' through the spill. */
  routes: string;
  records: number;
  stats: SpillStats;
}

/** Feeds `plan` through the addon; `consume(i)` runs for batch i after its records were checked. */
async function feed(plan: RecordFeedPlan, consume: (batchIndex: number) => void): Promise<Received> {
  let routes = '';
  let next = 0;
  // What follows record i's sequence number: the byte i % 251, repeated.
  const fills = Array.from({ length: 251 }, (_, v) => Buffer.alloc(plan.recordBytes - 8, v));
  const onBatch = (batch: Buffer, count: number, spilled: boolean): void => {
    let pos = 0;
    for (let i = 0; i < count; i++) {
      const length = batch.readUInt32LE(pos);
      assert.equal(length, plan.recordBytes, `record ${next}'s length`);
      const seq = Number(batch.readBigUInt64LE(pos + 4));
      assert.equal(seq, next, 'records arrive in order, none missing, none twice');
      assert.ok(batch.subarray(pos + 12, pos + 4 + length).equals(fills[seq % 251]!), `record ${seq}'s bytes`);
      pos += 4 + length;
      next++;
    }
    assert.equal(pos, batch.length, 'a batch holds its records and nothing else');
    routes += spilled ? 'S' : 'D';
    consume(routes.length - 1);
  };
  const stats = await loadAddon().feedRecords(onBatch, plan);
  return { routes, records: next, stats };
}

/** 64 KiB batches with 16 MiB of spill memory and 64 MiB of file; each test sets its load. */
const PLAN = { batchBytes: 64 << 10, spillMemoryBytes: 16 << 20, spillFileBytes: 64 << 20 };

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test('a consumer that keeps up gets every record once, in order, most batches straight from the producer', async () => {
  const plan: RecordFeedPlan = { ...PLAN, records: 20_000, recordBytes: 100, recordsPerPoll: 100, pollIntervalUs: 200 };
  const got = await feed(plan, () => undefined);
  assert.equal(got.records, plan.records);
  assert.equal(got.stats.directBatches! + got.stats.spilledBatches!, got.routes.length);
  assert.equal(got.stats.spilledBatches, [...got.routes].filter((r) => r === 'S').length);
  assert.ok(got.stats.directBatches! > 0, `routes: ${got.routes}`);
  assert.equal(got.stats.bytes, 0, 'the spill is empty at the end');
  assert.equal(got.stats.lostRecords, 0);
});

// Small batches (10 KB of 64 KiB) are copied into the spill; full ones are held there as they are.
for (const shape of [
  { name: 'small batches', recordsPerPoll: 10, records: 6000 },
  { name: 'full batches', recordsPerPoll: 66, records: 40_000 },
]) {
  test(`a consumer that falls behind (${shape.name}): batches wait in the spill (memory, then its file), then go straight again; in order and complete`, async () => {
    const plan: RecordFeedPlan = {
      ...PLAN,
      // A poll a millisecond or more: 600 ms of producing at least.
      records: shape.records,
      recordBytes: 1000,
      recordsPerPoll: shape.recordsPerPoll,
      pollIntervalUs: 1000,
      // Far less than what piles up during the stall below: most of it goes to the file.
      spillMemoryBytes: 256 << 10,
    };
    // The first batches take 40 ms each (200 ms): the queue to JS fills, and the producer spills.
    const got = await feed(plan, (i) => {
      if (i < 5) busyWait(40);
    });
    assert.equal(got.records, plan.records);
    assert.match(got.routes, /^D+S+.*D$/, `direct, then spilled, and direct again once caught up: ${got.routes}`);
    assert.equal(got.stats.spilledBatches, [...got.routes].filter((r) => r === 'S').length);
    assert.equal(got.stats.directBatches, [...got.routes].filter((r) => r === 'D').length);
    assert.ok(got.stats.peakFileBytes > 0, `the spill used its file (peak ${got.stats.peakBytes} B, ${got.stats.peakFileBytes} B in the file)`);
    assert.ok(got.stats.maxDelayMs > 0);
    assert.equal(got.stats.bytes, 0, 'the spill is empty at the end');
    assert.equal(got.stats.fullWaits, 0, 'the file had room: the producer never waited');
    assert.equal(got.stats.lostRecords, 0);
  });
}

test('batches the consumer releases go back to the pool at once: a long feed through a busy consumer makes few batches', async () => {
  const plan: RecordFeedPlan = {
    ...PLAN,
    // ~600 full 64 KiB batches, produced without a pause: the queue to JS stays full, and node
    // delivers many batches in one turn of its event loop (where finalizers cannot run).
    records: 40_000,
    recordBytes: 1000,
    recordsPerPoll: 66,
    pollIntervalUs: 0,
    // The spill holds at most 4 batches in memory (the rest in its file, copied): what is alive
    // at once is the queue to JS (16), the spill's memory, the producer's and the deliverer's.
    spillMemoryBytes: 256 << 10,
    releaseBatches: true,
  };
  const got = await feed(plan, () => busyWait(0.2));
  assert.equal(got.records, plan.records);
  assert.equal(got.stats.lostRecords, 0);
  const batches = got.routes.length;
  assert.ok(batches > 500, `${batches} batches`);
  assert.ok(
    got.stats.batchesMade! <= 16 + 4 + 2 + 8,
    `${got.stats.batchesMade} batches made for ${batches} delivered: released batches were not reused`,
  );
});
