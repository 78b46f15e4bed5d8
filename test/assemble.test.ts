import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallAssembler } from '../src/events/assemble.js';
import type { TlsCall } from '../src/events/types.js';
import { chunkRecords, encodeBatchOf, encodeRecord } from './support/events.js';

function assemble(records: Buffer[], batchSize = records.length): TlsCall[] {
  const calls: TlsCall[] = [];
  const asm = new CallAssembler((c) => calls.push({ ...c, data: Buffer.from(c.data) }));
  for (let i = 0; i < records.length; i += batchSize) {
    const { batch, count } = encodeBatchOf(records.slice(i, i + batchSize));
    asm.pushBatch(batch, count);
  }
  asm.flush();
  return calls;
}

test('a one-chunk call decodes every header field', () => {
  const [call] = assemble([
    encodeRecord({ tsNs: 123456789n, ssl: 0xdeadbeefn, fileIndex: 3, func: 2, pid: 7, tid: 8, uid: 1000, comm: 'python3', data: Buffer.from('hello') }),
  ]);
  assert.ok(call);
  assert.equal(call.tsNs, 123456789n);
  assert.equal(call.ssl, 0xdeadbeefn);
  assert.equal(call.fileIndex, 3);
  assert.equal(call.func, 'SSL_read_ex');
  assert.equal(call.dir, 'read');
  assert.deepEqual([call.pid, call.tid, call.uid, call.comm], [7, 8, 1000, 'python3']);
  assert.equal(call.data.toString(), 'hello');
  assert.equal(call.totalLen, 5);
  assert.equal(call.lost, 0);
});

test('chunks of one call are joined back in order, across batches', () => {
  const payload = Buffer.alloc(50_000, 0);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const calls = assemble(chunkRecords({ data: payload, tsNs: 5n }, 16384), 1);
  assert.equal(calls.length, 1);
  assert.ok(calls[0]!.data.equals(payload));
  assert.equal(calls[0]!.lost, 0);
});

test('interleaved threads keep their own calls', () => {
  const a = chunkRecords({ data: Buffer.alloc(40, 'a'), tid: 1, tsNs: 10n }, 16);
  const b = chunkRecords({ data: Buffer.alloc(40, 'b'), tid: 2, tsNs: 11n }, 16);
  const calls = assemble([a[0]!, b[0]!, a[1]!, b[1]!, b[2]!, a[2]!]);
  assert.deepEqual(
    calls.map((c) => [c.tid, c.data.toString()]),
    [
      [2, 'b'.repeat(40)],
      [1, 'a'.repeat(40)],
    ],
  );
});

test('a chunk missing from the middle is counted as lost, not hidden', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const [call] = assemble([chunks[0]!, chunks[2]!]);
  assert.equal(call!.data.length, 32);
  assert.equal(call!.lost, 16);
});

test('a call whose tail never came is emitted with the tail counted as lost', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const next = encodeRecord({ tsNs: 10n, data: Buffer.from('next call') });
  const calls = assemble([chunks[0]!, next]);
  assert.equal(calls.length, 2);
  assert.equal(calls[0]!.lost, 32);
  assert.equal(calls[1]!.data.toString(), 'next call');
});

test('a call whose head was dropped counts the head as lost', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const [call] = assemble([chunks[1]!, chunks[2]!]);
  assert.equal(call!.lost, 16);
  assert.equal(call!.data.length, 32);
});

test('truncated bytes are reported and not waited for', () => {
  const [call] = assemble([encodeRecord({ totalLen: 100, truncated: 60, data: Buffer.alloc(40, 'z') })]);
  assert.equal(call!.truncated, 60);
  assert.equal(call!.lost, 0);
  assert.equal(call!.data.length, 40);
});

test('unknown and malformed records are counted and skipped', () => {
  const calls: TlsCall[] = [];
  const asm = new CallAssembler((c) => calls.push(c));
  const good = encodeRecord({ data: Buffer.from('ok') });
  const unknown = encodeRecord({ kind: 99, data: Buffer.from('??') });
  const { batch, count } = encodeBatchOf([unknown, good]);
  asm.pushBatch(batch, count);
  assert.equal(asm.stats.unknownRecords, 1);
  assert.equal(calls.length, 1);
  const short = encodeBatchOf([good.subarray(0, 20)]);
  asm.pushBatch(short.batch, short.count);
  assert.equal(asm.stats.malformedRecords, 1);
});
