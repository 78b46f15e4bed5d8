import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordDecoder } from '../src/events/assemble.js';
import type { DecodedCall, DecodedConn } from '../src/events/assemble.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { chunkRecords, encodeBatchOf, encodeConnRecord, encodeRecord } from './support/events.js';

const K = EVENT_LAYOUT.constants;

function decode(records: Buffer[], batchSize = records.length): { calls: DecodedCall[]; conns: DecodedConn[]; decoder: RecordDecoder } {
  const calls: DecodedCall[] = [];
  const conns: DecodedConn[] = [];
  const decoder = new RecordDecoder({
    call: (d) => calls.push({ ...d, call: { ...d.call, data: Buffer.from(d.call.data) } }),
    conn: (c) => conns.push(c),
  });
  for (let i = 0; i < records.length; i += batchSize) {
    const { batch, count } = encodeBatchOf(records.slice(i, i + batchSize));
    decoder.pushBatch(batch, count);
  }
  decoder.flush();
  return { calls, conns, decoder };
}

test('a one-chunk call decodes every header field', () => {
  const { calls } = decode([
    encodeRecord({
      tsNs: 123456789n, ssl: 0xdeadbeefn, fileIndex: 3, func: 2, pid: 7, tid: 8, uid: 1000, comm: 'python3',
      connId: 12, seq: 4, fd: 5, flags: K.FLAG_FD_CONFLICT, data: Buffer.from('hello'),
    }),
  ]);
  const [d] = calls;
  assert.ok(d);
  const call = d.call;
  assert.equal(call.tsNs, 123456789n);
  assert.equal(call.ssl, 0xdeadbeefn);
  assert.equal(call.fileIndex, 3);
  assert.equal(call.func, 'SSL_read_ex');
  assert.equal(call.dir, 'read');
  assert.deepEqual([call.pid, call.tid, call.uid, call.comm], [7, 8, 1000, 'python3']);
  assert.equal(call.data.toString(), 'hello');
  assert.equal(call.totalLen, 5);
  assert.equal(call.lost, 0);
  assert.deepEqual([d.connId, d.seq, d.fd, d.fdConflict], [12, 4, 5, true]);
});

test('connection records decode IPv4 and IPv6 addresses, or the reason they are unknown', () => {
  const { conns } = decode([
    encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 1, fd: 3, family: 2, laddr: Buffer.from([127, 0, 0, 1]), raddr: Buffer.from([10, 1, 2, 3]), lport: 40000, rport: 443 }),
    encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 2, fd: 4, family: 10, laddr: Buffer.from('00000000000000000000000000000001', 'hex'), raddr: Buffer.from('20010db8000000000000000000000001', 'hex'), lport: 1, rport: 8443 }),
    encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 3, reason: K.REASON_NO_FD }),
    encodeConnRecord({ kind: K.EVENT_CONN_CLOSE, connId: 1, fd: 3, reason: K.REASON_FD_CLOSED, seq: 9 }),
  ]);
  assert.deepEqual(conns[0]!.local, { ip: '127.0.0.1', port: 40000 });
  assert.deepEqual(conns[0]!.remote, { ip: '10.1.2.3', port: 443 });
  assert.deepEqual(conns[1]!.local, { ip: '::1', port: 1 });
  assert.deepEqual(conns[1]!.remote, { ip: '2001:db8::1', port: 8443 });
  assert.equal(conns[2]!.local, undefined);
  assert.match(conns[2]!.reason, /memory BIO/);
  assert.equal(conns[3]!.kind, 'close');
  assert.equal(conns[3]!.reason, 'close() of its fd');
  assert.equal(conns[3]!.calls, 9);
});

test('chunks of one call are joined back in order, across batches', () => {
  const payload = Buffer.alloc(50_000, 0);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const { calls } = decode(chunkRecords({ data: payload, tsNs: 5n }, 16384), 1);
  assert.equal(calls.length, 1);
  assert.ok(calls[0]!.call.data.equals(payload));
  assert.equal(calls[0]!.call.lost, 0);
});

test('interleaved threads keep their own calls', () => {
  const a = chunkRecords({ data: Buffer.alloc(40, 'a'), tid: 1, tsNs: 10n }, 16);
  const b = chunkRecords({ data: Buffer.alloc(40, 'b'), tid: 2, tsNs: 11n }, 16);
  const { calls } = decode([a[0]!, b[0]!, a[1]!, b[1]!, b[2]!, a[2]!]);
  assert.deepEqual(
    calls.map((c) => [c.call.tid, c.call.data.toString()]),
    [
      [2, 'b'.repeat(40)],
      [1, 'a'.repeat(40)],
    ],
  );
});

test('a chunk missing from the middle is counted as lost, not hidden', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const { calls } = decode([chunks[0]!, chunks[2]!]);
  assert.equal(calls[0]!.call.data.length, 32);
  assert.equal(calls[0]!.call.lost, 16);
  assert.deepEqual(calls[0]!.call.holes, [{ at: 16, length: 16 }], 'the hole sits between the first and the last chunk');
});

test('a call whose tail never came is emitted with the tail counted as lost', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const next = encodeRecord({ tsNs: 10n, data: Buffer.from('next call') });
  const { calls } = decode([chunks[0]!, next]);
  assert.equal(calls.length, 2);
  assert.equal(calls[0]!.call.lost, 32);
  assert.deepEqual(calls[0]!.call.holes, [{ at: 16, length: 32 }]);
  assert.equal(calls[1]!.call.data.toString(), 'next call');
  assert.equal(calls[1]!.call.holes, undefined, 'a whole call has no holes');
});

test('a call whose head was dropped counts the head as lost', () => {
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const { calls } = decode([chunks[1]!, chunks[2]!]);
  assert.equal(calls[0]!.call.lost, 16);
  assert.equal(calls[0]!.call.data.length, 32);
  assert.deepEqual(calls[0]!.call.holes, [{ at: 0, length: 16 }]);
});

test('two chunks missing apart: two holes at their places, lengths adding up to lost', () => {
  const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN'.slice(0, 50));
  const chunks = chunkRecords({ data, tsNs: 9n }, 10);
  const { calls } = decode([chunks[0]!, chunks[2]!, chunks[4]!]);
  const call = calls[0]!.call;
  assert.equal(call.data.toString(), data.subarray(0, 10).toString() + data.subarray(20, 30).toString() + data.subarray(40, 50).toString());
  assert.deepEqual(call.holes, [{ at: 10, length: 10 }, { at: 20, length: 10 }]);
  assert.equal(call.lost, 20);
});

test('truncated bytes are reported and not waited for', () => {
  const { calls } = decode([encodeRecord({ totalLen: 100, truncated: 60, data: Buffer.alloc(40, 'z') })]);
  assert.equal(calls[0]!.call.truncated, 60);
  assert.equal(calls[0]!.call.lost, 0);
  assert.equal(calls[0]!.call.data.length, 40);
});

test('unknown and malformed records are counted and skipped', () => {
  const good = encodeRecord({ data: Buffer.from('ok') });
  const unknown = encodeRecord({ kind: 99, data: Buffer.from('??') });
  const badFunc = encodeRecord({ func: 12, data: Buffer.from('??') });
  const { calls, decoder } = decode([unknown, good, badFunc, good.subarray(0, 20)]);
  assert.equal(decoder.stats.unknownRecords, 1);
  assert.equal(decoder.stats.malformedRecords, 2);
  assert.equal(calls.length, 1);
});

test('a call missing its last chunks goes out after the next batch, not when its thread calls again', () => {
  const calls: DecodedCall[] = [];
  const decoder = new RecordDecoder({ call: (d) => calls.push(d), conn: () => undefined });
  const chunks = chunkRecords({ data: Buffer.alloc(48, 'x'), tsNs: 9n }, 16);
  const first = encodeBatchOf([chunks[0]!, chunks[1]!]);
  decoder.pushBatch(first.batch, first.count);
  decoder.endBatch();
  assert.equal(calls.length, 0, 'its chunks may still come in the next batch');
  const other = encodeBatchOf([encodeRecord({ tid: 99, data: Buffer.from('another thread') })]);
  decoder.pushBatch(other.batch, other.count);
  decoder.endBatch();
  assert.equal(calls.length, 2);
  const cut = calls.find((c) => c.call.tid !== 99)!;
  assert.equal(cut.call.lost, 16);
  assert.equal(cut.call.data.length, 32);
});
