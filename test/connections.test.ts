import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallPipeline } from '../src/capture/pipeline.js';
import type { PipelineOptions } from '../src/capture/pipeline.js';
import { encodeCountersRecord } from '../src/events/counters.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { formatSummary } from '../src/output/index.js';
import { PROBED_FUNCTIONS } from '../src/events/types.js';
import type { CallSink, ConnectionEvent, ProbedFunction, TlsCall } from '../src/events/types.js';
import { chunkRecords, encodeBatchOf, encodeConnRecord, encodeRecord } from './support/events.js';

const K = EVENT_LAYOUT.constants;
const V4 = (a: number, b: number, c: number, d: number) => Buffer.from([a, b, c, d]);

/** A sink that keeps what it is given, in order. */
function collector(): CallSink & { items: (TlsCall | ConnectionEvent)[] } {
  const items: (TlsCall | ConnectionEvent)[] = [];
  return { items, write: (c) => items.push(c), connection: (e) => items.push(e), close: async () => undefined };
}

function run(batches: Buffer[][], keepConnection?: PipelineOptions['keepConnection']) {
  const sink = collector();
  const pipeline = new CallPipeline([sink], { keepConnection });
  for (const records of batches) {
    const { batch, count } = encodeBatchOf(records);
    pipeline.onBatch(batch, count);
  }
  pipeline.flush();
  return { items: sink.items, pipeline };
}

// Each connection its own TLS object, as in the kernel's map (keyed by process and object).
const open = (connId: number, extra: Partial<Parameters<typeof encodeConnRecord>[0]> = {}) =>
  encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId, ssl: 0x5555n + BigInt(connId - 1) * 0x1000n, fd: 3, family: 2, laddr: V4(127, 0, 0, 1), raddr: V4(127, 0, 0, 1), lport: 40000, rport: 8443, ...extra });
const data = (connId: number, seq: number, text: string, tsNs = BigInt(100 + seq)) =>
  encodeRecord({ connId, seq, tsNs, tid: 100 + seq, data: Buffer.from(text) });

test('every call carries its connection: id, fd and both addresses', () => {
  const { items } = run([[open(1), data(1, 0, 'GET /')]]);
  const call = items[1] as TlsCall;
  assert.deepEqual(call.conn, { id: 1, pid: 42, ssl: 0x5555n, fd: 3, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '127.0.0.1', port: 8443 } });
});

test('calls of one connection come out in kernel order even when records arrive out of order', () => {
  const { items, pipeline } = run([[open(1), data(1, 2, 'c'), data(1, 0, 'a'), data(1, 1, 'b')]]);
  const texts = items.filter((i): i is TlsCall => 'data' in i).map((c) => c.data.toString());
  assert.deepEqual(texts, ['a', 'b', 'c']);
  assert.equal(pipeline.connectionStats.reordered, 1);
});

test('a call that never arrives (dropped) does not hold its connection forever; the gap is counted', () => {
  const { items, pipeline } = run([[open(1), data(1, 0, 'a'), data(1, 2, 'c')], [], [data(1, 3, 'd')]]);
  const texts = items.filter((i): i is TlsCall => 'data' in i).map((c) => c.data.toString());
  assert.deepEqual(texts, ['a', 'c', 'd']);
  assert.equal(pipeline.connectionStats.missingCalls, 1);
  // The call after the hole says so, for the byte-stream consumers (HTTP, pcapng).
  const calls = items.filter((i): i is TlsCall => 'data' in i);
  assert.deepEqual(calls.map((c) => c.callsMissedBefore), [undefined, 1, undefined]);
});

test('open comes before the first call and close after the last, with its reason', () => {
  const { items } = run([[open(1), data(1, 0, 'a'), encodeConnRecord({ kind: K.EVENT_CONN_CLOSE, connId: 1, fd: 3, reason: K.REASON_SHUTDOWN })]]);
  assert.deepEqual(
    items.map((i) => ('type' in i ? `${i.type}:${i.reason ?? ''}` : 'call')),
    ['open:', 'call', 'close:SSL_shutdown'],
  );
});

test('a close by GnuTLS or NSS is named by its own function, never by OpenSSL\'s', () => {
  const close = (connId: number, func: number, reason: number) => encodeConnRecord({ kind: K.EVENT_CONN_CLOSE, connId, fd: 3, func, reason });
  const fn = (name: string) => PROBED_FUNCTIONS.indexOf(name as ProbedFunction);
  const { items } = run([
    [
      open(1), data(1, 0, 'a'), close(1, fn('gnutls_bye'), K.REASON_SHUTDOWN),
      open(2), data(2, 0, 'b'), close(2, fn('gnutls_deinit'), K.REASON_FREE),
      open(3), data(3, 0, 'c'), close(3, fn('PR_Close'), K.REASON_FREE),
      open(4), data(4, 0, 'd'), close(4, fn('SSL_free'), K.REASON_FREE),
    ],
  ]);
  const reasons = items.filter((i): i is ConnectionEvent => 'type' in i && i.type === 'close').map((i) => i.reason);
  assert.deepEqual(reasons, ['gnutls_bye', 'gnutls_deinit', 'PR_Close', 'SSL_free']);
});

test('an fd number reused by a second connection gets a new connection id', () => {
  const close = encodeConnRecord({ kind: K.EVENT_CONN_CLOSE, connId: 1, fd: 3, reason: K.REASON_FD_CLOSED });
  const { items } = run([[open(1), data(1, 0, 'first'), close, open(2, { lport: 40001 }), data(2, 0, 'second')]]);
  const calls = items.filter((i): i is TlsCall => 'data' in i);
  assert.deepEqual(calls.map((c) => [c.conn?.id, c.conn?.fd, c.conn?.local?.port]), [
    [1, 3, 40000],
    [2, 3, 40001],
  ]);
});

test('a memory-BIO connection has a connection but unknown addresses, with the reason', () => {
  const { items } = run([[encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 5, reason: K.REASON_NO_FD }), data(5, 0, 'x')]]);
  const call = items[1] as TlsCall;
  assert.equal(call.conn?.id, 5);
  assert.equal(call.conn?.local, undefined);
  assert.match(call.conn?.unknownReason ?? '', /memory BIO/);
});

test('a memory BIO\'s fd learnt right after its first call: that call waits for it, and every call carries the addresses', () => {
  const fdRecord = encodeConnRecord({ kind: K.EVENT_CONN_FD, connId: 5, fd: 7, family: 2, laddr: V4(127, 0, 0, 1), raddr: V4(127, 0, 0, 2), lport: 1, rport: 2 });
  const { items } = run([[encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 5, reason: K.REASON_NO_FD }), data(5, 0, 'x')], [fdRecord, data(5, 1, 'y')]]);
  assert.deepEqual(items.map((i) => ('type' in i ? i.type : (i as TlsCall).data.toString())), ['open', 'x', 'y', 'close']);
  const open = items[0] as ConnectionEvent;
  assert.deepEqual(open.conn.remote, { ip: '127.0.0.2', port: 2 });
  assert.ok(open.tsNs <= (items[1] as TlsCall).tsNs, 'the open comes before the call that waited');
  for (const call of items.filter((i): i is TlsCall => 'data' in i)) assert.deepEqual(call.conn?.remote, { ip: '127.0.0.2', port: 2 });
});

test('a memory BIO that never shows its socket: its calls go out without addresses after a short wait, in order', () => {
  const unaddressed = encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 6, fd: -1, family: 0, reason: K.REASON_NO_FD });
  const { items } = run([[unaddressed, data(6, 0, 'a')], [data(6, 1, 'b')], [], [data(6, 2, 'c')]]);
  assert.deepEqual(items.map((i) => ('type' in i ? i.type : (i as TlsCall).data.toString())), ['open', 'a', 'b', 'c', 'close']);
  assert.match((items[1] as TlsCall).conn?.unknownReason ?? '', /no socket syscall/);
});

test('the connection filter keeps only matching connections, open records included', () => {
  const keep = (c: { remote?: { port: number } }) => c.remote?.port === 8443;
  const { items } = run([[open(1), data(1, 0, 'in'), open(2, { rport: 9999 }), data(2, 0, 'out')]], keep);
  assert.deepEqual(
    items.map((i) => ('type' in i ? `${i.type}:${i.conn.id}` : `call:${(i as TlsCall).data}`)),
    ['open:1', 'call:in', 'close:1'],
  );
});

test('connections still open at the end are closed with "end of capture"', () => {
  const { items } = run([[open(1), data(1, 0, 'a')]]);
  const last = items.at(-1) as ConnectionEvent;
  assert.equal(last.type, 'close');
  assert.equal(last.reason, 'end of capture');
});

test('a process exit closes every connection it still had', () => {
  const exit = encodeConnRecord({ kind: K.EVENT_PROCESS_EXIT, connId: 0, pid: 42 });
  const { items } = run([[open(1), open(2, { lport: 40001 }), data(1, 0, 'a'), exit]]);
  const closes = items.filter((i): i is ConnectionEvent => 'type' in i && i.type === 'close');
  assert.deepEqual(closes.map((c) => [c.conn.id, c.reason]), [
    [1, 'the process exited'],
    [2, 'the process exited'],
  ]);
});

test('a connection evicted from the kernel map and recreated under a new id is counted as split, and the first one closed', () => {
  // The same TLS object (pid 42, ssl 0x5555) opens again as connection 2 while connection 1 never closed.
  const { items, pipeline } = run([[open(1), data(1, 0, 'a'), open(2, { ssl: 0x5555n }), data(2, 0, 'b')]]);
  const stats = pipeline.stats();
  const closes = items.filter((i): i is ConnectionEvent => 'type' in i && i.type === 'close');
  assert.deepEqual(closes.map((c) => c.conn.id), [1, 2]);
  assert.match(closes[0]!.reason ?? '', /evicted \(connection map full\)/);
  assert.equal(closes[1]!.reason, 'end of capture');
  assert.equal(stats.splitConnections, 1);
  // Two different objects of one process are two connections, not a split.
  assert.equal(run([[open(1), open(2)]]).pipeline.stats().splitConnections, 0);
});

test('a call lost to a read fault (its first chunk unreadable) is a read fault, not also a call that "never arrived (dropped)"', () => {
  const counters = (readFaultCalls: number) =>
    encodeCountersRecord({ droppedEvents: 0, droppedBytes: 0, readFaults: 1, readFaultBytes: 512, calls: 3, untrackedCalls: 0, readFaultCalls, exitCutWrites: 0 }, 999n);
  // Call 1 of connection 1 left no record: the kernel could not read its buffer.
  const faulted = run([[open(1), data(1, 0, 'a'), data(1, 2, 'c'), counters(1)]]).pipeline.stats();
  assert.equal(faulted.missingCalls, 0);
  assert.equal(faulted.readFaults, 1);
  assert.doesNotMatch(formatSummary(faulted), /never arrived/);
  // The same gap with no read fault behind it is a drop.
  const dropped = run([[open(1), data(1, 0, 'a'), data(1, 2, 'c'), counters(0)]]).pipeline.stats();
  assert.equal(dropped.missingCalls, 1);
  assert.match(formatSummary(dropped), /warning: 1 calls of a connection never arrived \(dropped\)/);
});

/** Like run(), but each batch's memory is overwritten once the pipeline is done with it, as live capture reuses it. */
function runReusingBatches(batches: Buffer[][]): string[] {
  const texts: string[] = [];
  // A sink follows the rule: it copies what it keeps past write().
  const sink: CallSink = { write: (c) => texts.push(c.data.toString()), close: async () => undefined };
  const pipeline = new CallPipeline([sink]);
  for (const records of batches) {
    const { batch, count } = encodeBatchOf(records);
    pipeline.onBatch(batch, count);
    batch.fill(0xee);
  }
  pipeline.flush();
  return texts;
}

test('a call held back for an earlier one keeps its bytes when its batch is reused', () => {
  assert.deepEqual(runReusingBatches([[open(1), data(1, 1, 'second')], [data(1, 0, 'first')]]), ['first', 'second']);
});

test('a call whose chunks span two batches keeps the first batch\'s bytes when that batch is reused', () => {
  const spec = { connId: 1, seq: 0, tsNs: 100n, tid: 7, data: Buffer.from('0123456789abcdef') };
  const [head, tail] = chunkRecords(spec, 8);
  assert.ok(head && tail);
  assert.deepEqual(runReusingBatches([[open(1), head], [tail]]), ['0123456789abcdef']);
});

test('--port and a memory BIO: calls before the socket is known wait for it; a connection that never learns it is counted and named', async () => {
  const { addressFilter } = await import('../src/events/addresses.js');
  const sink = collector();
  const pipeline = new CallPipeline([sink], { keepAddress: addressFilter(8443) });
  // Each connection its own TLS object, as in the kernel's map (one object seen again under a new id is a split).
  const ssl = (connId: number) => 0x5555n + BigInt(connId - 1) * 0x1000n;
  const unaddressed = (connId: number) => encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId, ssl: ssl(connId), fd: -1, family: 0, reason: K.REASON_NO_FD });
  const fd = (connId: number, rport: number) =>
    encodeConnRecord({ kind: K.EVENT_CONN_FD, connId, ssl: ssl(connId), fd: 7, family: 2, laddr: V4(127, 0, 0, 1), raddr: V4(127, 0, 0, 1), lport: 40000 + connId, rport });
  for (const records of [
    // 1 learns a matching socket after its first call; 2 a socket on another port; 3 never one.
    [unaddressed(1), data(1, 0, 'GET / (1)'), unaddressed(2), data(2, 0, 'GET / (2)'), unaddressed(3), data(3, 0, 'GET / (3)')],
    [fd(1, 8443), data(1, 1, 'body (1)'), fd(2, 9999)],
  ]) {
    const { batch, count } = encodeBatchOf(records);
    pipeline.onBatch(batch, count);
  }
  pipeline.flush();
  const calls = sink.items.filter((i): i is TlsCall => 'data' in i);
  assert.deepEqual(calls.map((c) => c.data.toString()), ['GET / (1)', 'body (1)']);
  for (const c of calls) assert.deepEqual(c.conn?.remote, { ip: '127.0.0.1', port: 8443 }, 'the held call gets the addresses too');
  const opens = sink.items.filter((i): i is ConnectionEvent => 'type' in i && i.type === 'open');
  assert.deepEqual(opens.map((o) => o.conn.id), [1]);
  const stats = pipeline.stats();
  assert.equal(stats.unaddressedExcluded, 1);
  assert.equal(stats.unaddressedExcludedNames?.length, 1);
  assert.match(stats.unaddressedExcludedNames![0]!, /\(pid 42, connection 3\): no socket syscall seen/);
  const { formatSummary } = await import('../src/output/summary.js');
  assert.match(formatSummary(stats), /--port\/--host left out 1 connection whose addresses never became known: .*connection 3/);
});
