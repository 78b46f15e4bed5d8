import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CaptureContext, CaptureStats, TlsCall } from '../src/events/types.js';
import { OFFSET_NS, call as streamCall } from './support/http-streams.js';
import {
  createFormatSink,
  escapePayload,
  FORMAT_NAMES,
  FORMATS,
  formatStatsLine,
  formatSummary,
  hexdump,
  isBrokenPipe,
  summaryRecord,
} from '../src/output/index.js';
import type { DataRecord, FormatName, FormatSinkOptions } from '../src/output/index.js';

const ctx: CaptureContext = {
  files: ['/usr/lib/x86_64-linux-gnu/libssl.so.3', '/opt/app/bin/"quoted" näme'],
  wallClockNs: (mono) => mono + OFFSET_NS,
};

/** One SSL_write of curl at a fixed time (strings as UTF-8). */
function call(data: Buffer | string, over: Partial<TlsCall> = {}): TlsCall {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return streamCall('write', bytes, { tsNs: 1_234_567_891n, tid: 4243, ...over });
}

/** A Writable that keeps everything, optionally slowly. */
class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  writes = 0;
  constructor(
    private readonly delayMs = 0,
    highWaterMark = 16 * 1024,
  ) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    this.writes++;
    if (this.delayMs > 0) setTimeout(cb, this.delayMs);
    else cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

async function render(
  format: FormatName,
  calls: TlsCall[],
  opts: Partial<FormatSinkOptions> = {},
): Promise<string> {
  const out = new Collector();
  const sink = createFormatSink(format, out, ctx, { color: false, ...opts });
  for (const c of calls) sink.write(c);
  await sink.close();
  return out.text();
}

/** HH:MM:SS.mmm in local time, computed independently of the code under test. */
function localTime(monoNs: bigint): string {
  const ms = Number((monoNs + OFFSET_NS) / 1_000_000n);
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

test('FORMATS names every format with a one-line description', () => {
  assert.deepEqual(FORMAT_NAMES, ['text', 'hex', 'jsonl']);
  for (const name of FORMAT_NAMES) {
    assert.ok(FORMATS[name].length > 10 && !FORMATS[name].includes('\n'), name);
  }
});

test('text: a header with time, pid, comm, tid, function, arrow and length, then the payload', async () => {
  const out = await render('text', [
    call('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'),
    call('HTTP/1.1 200 OK\r\n', { func: 'SSL_read_ex', dir: 'read', tsNs: 2_000_000_000n }),
  ]);
  const lines = out.split('\n');
  assert.equal(
    lines[0],
    `${localTime(1_234_567_891n)} pid=4242 comm=curl tid=4243 SSL_write → 37 bytes ssl=0x55d0a1b2c3d0`,
  );
  // CR-LF pairs, like tabs and newlines, go out as they are.
  assert.equal(lines[1], 'GET / HTTP/1.1\r');
  assert.equal(lines[2], 'Host: example.com\r');
  assert.equal(lines[3], '\r');
  assert.equal(lines[4], '');
  assert.equal(lines[5], `${localTime(2_000_000_000n)} pid=4242 comm=curl tid=4243 SSL_read_ex ← 17 bytes ssl=0x55d0a1b2c3d0`);
  assert.equal(lines[6], 'HTTP/1.1 200 OK\r');
});

test('text: control bytes and invalid UTF-8 are escaped, UTF-8 text is kept', () => {
  const data = Buffer.concat([
    Buffer.from('tab\there\nnew line, naïve ✓ 😀 '),
    Buffer.from([0x00, 0x1b, 0x5b, 0x32, 0x4a]), // NUL, then ESC [2J (clear screen)
    Buffer.from(' cr\ronly del\x7f '),
    Buffer.from([0xc2, 0x9b]), // U+009B, the C1 control sequence introducer
    Buffer.from([0xff, 0xfe]), // never valid
    Buffer.from([0xc0, 0x80]), // overlong NUL
    Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate
    Buffer.from([0xe2, 0x9c]), // a sequence cut short
  ]);
  assert.equal(
    escapePayload(data),
    'tab\there\nnew line, naïve ✓ 😀 \\x00\\x1b[2J cr\\x0donly del\\x7f \\xc2\\x9b\\xff\\xfe\\xc0\\x80\\xed\\xa0\\x80\\xe2\\x9c',
  );
  const shown = escapePayload(data);
  for (const ch of shown) {
    const code = ch.codePointAt(0)!;
    assert.ok(code === 0x09 || code === 0x0a || (code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code < 0xa0)), `raw U+${code.toString(16)}`);
  }
});

test('text: the sink never lets a control byte reach the terminal, even in comm', async () => {
  const out = await render('text', [call(Buffer.from([0x1b, 0x5d, 0x30, 0x3b, 0x07]), { comm: 'evil\x1b[31m' })]);
  assert.ok(!out.includes('\x1b'), JSON.stringify(out));
  assert.ok(!out.includes('\x07'));
  assert.match(out, /comm=evil\\x1b\[31m /);
  assert.match(out, /\n\\x1b\]0;\\x07\n/);
});

test('text: notes for truncated and lost bytes, singular byte', async () => {
  const out = await render('text', [
    call('x', { truncated: 4096, lost: 12 }),
    call('y'),
  ]);
  assert.match(out, /SSL_write → 4109 bytes \[\+4096 truncated\] \[12 lost\] ssl=/);
  assert.match(out, /SSL_write → 1 byte ssl=/);
});

test('text: a call with nothing captured is just its header', async () => {
  const out = await render('text', [call(Buffer.alloc(0), { lost: 100 })]);
  assert.equal(out.split('\n').length, 2);
  assert.match(out, /→ 100 bytes \[100 lost\] ssl=0x55d0a1b2c3d0\n$/);
});

test('text: maxPreviewBytes cuts the payload without splitting a character, and says so', async () => {
  const out = await render('text', [call('abcé and more')], { maxPreviewBytes: 4 });
  // "abc" + the two bytes of é: a cut at 4 would split é, so the cut moves back to 3.
  assert.match(out, /\nabc\n\[11 more captured bytes not shown\]\n/);
});

test('text and hex: colour only on the header line, and only when asked', async () => {
  const data = Buffer.from('hello\n');
  const plain = await render('text', [call(data, { truncated: 5, lost: 1 })]);
  assert.ok(!plain.includes('\x1b'));
  for (const format of ['text', 'hex'] as const) {
    const colored = await render(format, [call(data, { truncated: 5, lost: 1 })], { color: true });
    const [header, ...rest] = colored.split('\n');
    assert.match(header!, /\x1b\[32mSSL_write →\x1b\[0m/);
    assert.match(header!, /\x1b\[33m\[\+5 truncated\]\x1b\[0m/);
    assert.match(header!, /\x1b\[31m\[1 lost\]\x1b\[0m/);
    assert.ok(!rest.join('\n').includes('\x1b'), format);
    // Without the escapes, the coloured header is the plain one.
    assert.equal(header!.replace(/\x1b\[\d+m/g, ''), (await render(format, [call(data, { truncated: 5, lost: 1 })])).split('\n')[0]);
  }
});

test('hex: header, then a hexdump -C style dump', async () => {
  const out = await render('hex', [call('GET / HTTP/1.1\r\nHost: a\r\n\r\n\x00\xff')]);
  const lines = out.split('\n');
  assert.match(lines[0]!, /pid=4242 comm=curl tid=4243 SSL_write → 30 bytes/);
  assert.equal(lines[1], '00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|');
  assert.equal(lines[2], '00000010  48 6f 73 74 3a 20 61 0d  0a 0d 0a 00 c3 bf        |Host: a.......|');
  assert.equal(lines[3], '');
});

test('jsonl: bytes with a NUL are binary even when valid UTF-8 (an HTTP/2 frame header), so base64', async () => {
  // A SETTINGS frame then HEADERS: length, type, flags and stream id are mostly zero bytes, all ASCII.
  const frames = Buffer.from('000006040000000000000300000064000004010000000182', 'hex');
  const out = await render('jsonl', [call(frames), call('no nul here \x01')]);
  const [h2, plain] = out.trimEnd().split('\n').map((l) => JSON.parse(l) as DataRecord) as [DataRecord, DataRecord];
  assert.equal(h2.text, undefined);
  assert.deepEqual(Buffer.from(h2.base64!, 'base64'), frames);
  assert.equal(plain.text, 'no nul here \x01');
});

test('hexdump: short lines keep the ASCII column in place', () => {
  for (let n = 1; n <= 17; n++) {
    const lines = hexdump(Buffer.alloc(n, 0x41)).split('\n');
    const last = lines[lines.length - 2]!;
    assert.equal(last.indexOf('|'), 60, `${n} bytes: ${last}`);
    assert.equal(last.length, 60 + 2 + (n % 16 || 16), `${n} bytes`);
  }
  assert.equal(hexdump(Buffer.alloc(0)), '');
  assert.equal(hexdump(Buffer.from('abcdefgh')), '00000000  61 62 63 64 65 66 67 68                           |abcdefgh|\n');
});

test('jsonl: one object per call with every field, and the lines parse back', async () => {
  const out = await render('jsonl', [
    call('GET / HTTP/1.1\r\n"quoted" \\ tab\t naïve ✓ 😀 \x01\x1f\x7f'),
    call(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xfe]), { fileIndex: 1, dir: 'read', func: 'SSL_read', truncated: 7, lost: 3 }),
    call(Buffer.alloc(0), { fileIndex: 9, comm: 'we"ird\\' }),
  ]);
  assert.ok(out.endsWith('\n'));
  const records = out.trimEnd().split('\n').map((l) => JSON.parse(l) as DataRecord);
  assert.equal(records.length, 3);
  const [a, b, c] = records as [DataRecord, DataRecord, DataRecord];
  assert.deepEqual(Object.keys(a), [
    'type', 'ts', 'ts_ns', 'pid', 'tid', 'uid', 'comm', 'func', 'dir', 'len', 'truncated', 'lost', 'file', 'ssl', 'conn', 'text',
  ]);
  // A call that never passed the connection tracker has no connection.
  assert.equal(a.conn, null);
  assert.equal(a.type, 'data');
  assert.equal(a.ts, '2024-05-01T12:34:57.234567Z');
  assert.equal(a.ts_ns, '1234567891');
  assert.deepEqual(
    [a.pid, a.tid, a.uid, a.comm, a.func, a.dir, a.file, a.ssl],
    [4242, 4243, 1000, 'curl', 'SSL_write', 'write', ctx.files[0], '0x55d0a1b2c3d0'],
  );
  assert.equal(a.text, 'GET / HTTP/1.1\r\n"quoted" \\ tab\t naïve ✓ 😀 \x01\x1f\x7f');
  assert.equal(a.len, Buffer.byteLength(a.text!));
  // Not UTF-8: base64, and no text field.
  assert.equal(b.text, undefined);
  assert.deepEqual(Buffer.from(b.base64!, 'base64'), Buffer.from([0x16, 0x03, 0x01, 0xff, 0xfe]));
  assert.deepEqual([b.dir, b.func, b.len, b.truncated, b.lost, b.file], ['read', 'SSL_read', 15, 7, 3, ctx.files[1]]);
  assert.equal(c.text, '');
  assert.equal(c.file, null);
  assert.equal(c.comm, 'we"ird\\');
});

test('jsonl: a call on a connection carries it, and open/close records have their own lines', async () => {
  const conn = { id: 7, pid: 4242, ssl: 0x55d0a1b2c3d0n, fd: 5, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '::1', port: 443 } };
  const out = new Collector();
  const sink = createFormatSink('jsonl', out, ctx, { color: false });
  sink.connection?.({ type: 'open', tsNs: 1234567890n, conn, comm: 'curl' });
  sink.write(call('x', { conn }));
  sink.connection?.({ type: 'close', tsNs: 1234567899n, conn: { ...conn, fd: -1, local: undefined, remote: undefined, unknownReason: 'why' }, comm: 'curl', reason: 'SSL_free' });
  await sink.close();
  const [open, data, close] = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(open && data && close);
  assert.deepEqual(open.conn, { id: 7, fd: 5, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '::1', port: 443 } });
  assert.equal(open.type, 'open');
  assert.deepEqual(data.conn, open.conn);
  assert.deepEqual(close.conn, { id: 7, fd: -1, local: null, remote: null, unknown: 'why' });
  assert.equal(close.reason, 'SSL_free');
});

test('jsonl: UTF-8 detection is exact (overlongs, surrogates, cut sequences are not text)', async () => {
  const cases: [number[], boolean][] = [
    [[0x68, 0x69], true],
    [[0xc3, 0xa9], true],
    [[0xf0, 0x9f, 0x98, 0x80], true],
    [[0xc0, 0x80], false],
    [[0xed, 0xa0, 0x80], false],
    [[0xe2, 0x9c], false],
    [[0xf4, 0x90, 0x80, 0x80], false],
    [[0x80], false],
  ];
  const out = await render('jsonl', cases.map(([bytes]) => call(Buffer.from(bytes))));
  const records = out.trimEnd().split('\n').map((l) => JSON.parse(l) as DataRecord);
  cases.forEach(([bytes, isText], i) => {
    const r = records[i]!;
    assert.equal(r.text !== undefined, isText, `${Buffer.from(bytes).toString('hex')}`);
    const back = r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64!, 'base64');
    assert.deepEqual(back, Buffer.from(bytes));
  });
});

test('jsonl: every byte survives the round trip (random text, random binary, 1 MiB calls)', async () => {
  // mulberry32: a small PRNG whose low bits are as random as its high bits.
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) % n);
  };
  const alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\r', '\t', '\x00', '\x01', '\x1f', '\x7f', 'é', '✓', '😀', '/'];
  const calls: TlsCall[] = [];
  for (let i = 0; i < 300; i++) {
    const len = rand(i < 290 ? 200 : 300_000);
    if (i % 3 === 2) {
      calls.push(call(Buffer.from(Array.from({ length: len }, () => rand(256)))));
    } else if (i % 3 === 1) {
      // Sparse escapes: most 4-byte words are clean and skipped whole.
      calls.push(call(Array.from({ length: len }, () => (rand(24) === 0 ? alphabet[rand(alphabet.length)] : 'q')).join('')));
    } else {
      calls.push(call(Array.from({ length: len }, () => alphabet[rand(alphabet.length)]).join('')));
    }
  }
  calls.push(call('x"\\\n'.repeat(256 * 1024))); // 1 MiB, every byte but one in four escaped
  const out = await render('jsonl', calls);
  const records = out.trimEnd().split('\n').map((l) => JSON.parse(l) as DataRecord);
  assert.equal(records.length, calls.length);
  records.forEach((r, i) => {
    const back = r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64!, 'base64');
    assert.ok(back.equals(calls[i]!.data), `call ${i}`);
  });
});

test('jsonl: maxPreviewBytes does not cut machine output', async () => {
  const out = await render('jsonl', [call('0123456789')], { maxPreviewBytes: 2 });
  assert.equal((JSON.parse(out) as DataRecord).text, '0123456789');
});

const STATS: CaptureStats = {
  calls: 1200,
  bytes: 5 * 1024 * 1024,
  eventsDropped: 3,
  bytesDropped: 49152,
  bytesTruncated: 8192,
  readFaults: 2,
  readFaultBytes: 300,
};
const CLEAN: CaptureStats = { ...STATS, eventsDropped: 0, bytesDropped: 0, bytesTruncated: 0, readFaults: 0, readFaultBytes: 0 };

test('summaryRecord: a summary line with every loss, written in order after the calls', async () => {
  const out = new Collector();
  const sink = createFormatSink('jsonl', out, ctx, { color: false });
  sink.write(call('a'));
  sink.writeLine(JSON.stringify(summaryRecord(STATS)));
  await sink.close();
  const lines = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string });
  assert.deepEqual(lines.map((l) => l.type), ['data', 'summary']);
  assert.deepEqual(lines[1], {
    type: 'summary',
    calls: 1200,
    bytes: 5242880,
    events_dropped: 3,
    bytes_dropped: 49152,
    bytes_truncated: 8192,
    read_faults: 2,
    read_fault_bytes: 300,
  });
});

test('formatSummary: every loss has its own figure, and a warning with the fix when it happened', () => {
  const text = formatSummary(STATS);
  assert.match(text, /1200 calls, 5242880 bytes captured \(5\.0 MiB\)/);
  assert.match(text, /events dropped: +3\n/);
  assert.match(text, /bytes dropped: +49152\n/);
  assert.match(text, /bytes truncated: +8192\n/);
  assert.match(text, /read faults: +2 \(300 bytes\)\n/);
  assert.match(text, /warning: .*--ring-buffer/);
  assert.match(text, /warning: .*--max-bytes/);
  assert.match(text, /warning: 2 records .* cannot be recovered/);
  assert.ok(!text.endsWith('\n'));
  const clean = formatSummary(CLEAN);
  assert.ok(!clean.includes('warning'));
  assert.match(clean, /events dropped: +0\n/);
  assert.match(formatSummary({ ...CLEAN, bytesTruncated: 1 }), /warning: 1 B beyond the per-call cap.*--max-bytes/);
  assert.ok(!formatSummary({ ...CLEAN, bytesTruncated: 1 }).includes('--ring-buffer'));
});

test('formatStatsLine: rates over the interval, totals, and losses with their increase', () => {
  const previous: CaptureStats = { ...CLEAN, calls: 200, bytes: 1024 * 1024 };
  const line = formatStatsLine(STATS, previous, 2000);
  assert.match(line, /500 calls\/s, 2\.0 MiB\/s/);
  assert.match(line, /total 1200 calls, 5\.0 MiB/);
  assert.match(line, /dropped 3 events \(\+3\), 48\.0 KiB \(\+48\.0 KiB\)/);
  assert.match(line, /truncated 8\.0 KiB \(\+8\.0 KiB\)/);
  assert.match(line, /read faults 2 \(\+2\)/);
  assert.ok(!line.includes('\n'));
  assert.match(formatStatsLine(CLEAN, undefined, 1000), /^tlstap: 1200 calls\/s, 5\.0 MiB\/s .*dropped 0 events, 0 B \| truncated 0 B \| read faults 0$/);
  assert.ok(!formatStatsLine(STATS, STATS, 1000).includes('(+'));
});

test('batching: few large writes, and a lone call still appears after a short delay', async () => {
  const out = new Collector();
  const sink = createFormatSink('jsonl', out, ctx, { color: false, flushDelayMs: 10 });
  for (let i = 0; i < 2000; i++) sink.write(call('x'.repeat(100)));
  assert.ok(out.writes < 20, `${out.writes} writes for 2000 calls`);
  await sink.close();
  assert.equal(out.text().trimEnd().split('\n').length, 2000);

  const live = new Collector();
  const liveSink = createFormatSink('text', live, ctx, { color: false, flushDelayMs: 10 });
  liveSink.write(call('ping'));
  assert.equal(live.writes, 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.match(live.text(), /\nping\n/);
  await liveSink.close();
});

test('backpressure: a slow stream raises needsDrain, drained() waits, and nothing is lost or reordered', async () => {
  const out = new Collector(2, 1024);
  const sink = createFormatSink('jsonl', out, ctx, { color: false, flushBytes: 4096 });
  let pauses = 0;
  const total = 3000;
  for (let i = 0; i < total; i++) {
    sink.write(call(`message ${i} `.padEnd(200, '.'), { tsNs: BigInt(i) }));
    if (sink.needsDrain) {
      pauses++;
      await sink.drained();
      assert.equal(sink.needsDrain, false);
    }
  }
  await sink.close();
  assert.ok(pauses > 10, `${pauses} pauses`);
  const records = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as DataRecord);
  assert.equal(records.length, total);
  records.forEach((r, i) => assert.equal(r.ts_ns, String(i)));
});

test('backpressure: a producer that ignores needsDrain still gets every byte out in order', async () => {
  const out = new Collector(1, 1024);
  const sink = createFormatSink('text', out, ctx, { color: false });
  for (let i = 0; i < 5000; i++) sink.write(call(`line ${i}\n`));
  assert.equal(sink.needsDrain, true);
  await sink.close();
  const payloads = out.text().split('\n').filter((l) => l.startsWith('line '));
  assert.equal(payloads.length, 5000);
  payloads.forEach((l, i) => assert.equal(l, `line ${i}`));
});

/** A stream whose reader went away: every write fails with EPIPE, like stdout under `| head`. */
class BrokenPipe extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    const error: NodeJS.ErrnoException = new Error('write EPIPE');
    error.code = 'EPIPE';
    error.errno = -32;
    error.syscall = 'write';
    cb(error);
  }
}

test('EPIPE: reported once through onClosed, no throw, later calls ignored, close() resolves', async () => {
  const out = new BrokenPipe();
  const reports: NodeJS.ErrnoException[] = [];
  const sink = createFormatSink('jsonl', out, ctx, { color: false, onClosed: (e) => reports.push(e) });
  for (let i = 0; i < 1000; i++) sink.write(call('y'.repeat(200)));
  await new Promise((resolve) => setTimeout(resolve, 30));
  for (let i = 0; i < 1000; i++) sink.write(call('z'.repeat(200)));
  sink.writeLine('{"type":"summary"}');
  assert.equal(sink.needsDrain, false);
  await sink.drained();
  await sink.close();
  // The stream emits 'error' after our callback saw it; that must not become an uncaught exception.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(reports.length, 1);
  assert.ok(isBrokenPipe(reports[0]));
  assert.equal(sink.error?.code, 'EPIPE');
});

test('EPIPE: a stream that dies while the producer waits for a drain releases it', async () => {
  let fail: ((error: Error) => void) | undefined;
  const out = new Writable({
    highWaterMark: 16,
    write(_chunk, _enc, cb) {
      fail = (error) => cb(error);
    },
  });
  const reports: Error[] = [];
  const sink = createFormatSink('text', out, ctx, { color: false, onClosed: (e) => reports.push(e) });
  for (let i = 0; i < 3000; i++) sink.write(call('w'.repeat(50)));
  assert.equal(sink.needsDrain, true);
  const waiting = sink.drained();
  const epipe: NodeJS.ErrnoException = new Error('write EPIPE');
  epipe.code = 'EPIPE';
  fail!(epipe);
  await waiting;
  await sink.close();
  assert.equal(reports.length, 1);
});

test('EPIPE: `tlstap | head` ends cleanly, with no stack trace', async () => {
  const output = fileURLToPath(new URL('../src/output/index.js', import.meta.url));
  const child = `
    import { createFormatSink, isBrokenPipe } from ${JSON.stringify(output)};
    const ctx = { files: ['/lib/libssl.so.3'], wallClockNs: (ns) => ns };
    let stop = false;
    const sink = createFormatSink('text', process.stdout, ctx, {
      color: false,
      onClosed: (e) => { stop = true; process.stderr.write('closed ' + (isBrokenPipe(e) ? 'EPIPE' : e.code) + '\\n'); },
    });
    const data = Buffer.from('hello world\\n'.repeat(50));
    const c = { tsNs: 1n, pid: 1, tid: 1, uid: 0, comm: 'x', func: 'SSL_read', dir: 'read', ssl: 1n, fileIndex: 0, totalLen: data.length, data, truncated: 0, lost: 0 };
    while (!stop) {
      sink.write(c);
      if (sink.needsDrain) await sink.drained();
    }
    await sink.close();
    process.stderr.write('done\\n');
  `;
  // pipefail: the exit status is the writer's, not head's.
  const script = `set -o pipefail; "${process.execPath}" --input-type=module -e "$CHILD" | head -c 100 >/dev/null`;
  const proc = spawn('bash', ['-c', script], {
    env: { ...process.env, CHILD: child },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  assert.equal(stderr, 'closed EPIPE\ndone\n');
  assert.equal(code, 0);
});

test('text: the header names the connection, local → remote, or why its addresses are unknown', async () => {
  const conn = { id: 7, pid: 4242, ssl: 1n, fd: 5, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '::1', port: 443 } };
  const known = await render('text', [call('x', { conn })]);
  assert.match(known.split('\n')[0]!, / conn=7 fd=5 127\.0\.0\.1:40000 → \[::1\]:443$/);
  const unknown = await render('text', [call('x', { conn: { id: 8, pid: 1, ssl: 1n, fd: -1, unknownReason: 'memory BIO' } })]);
  assert.match(unknown.split('\n')[0]!, / conn=8 \(addresses unknown: memory BIO\)$/);
});

test('text and hex both show a line when a connection opens and closes', async () => {
  const conn = { id: 9, pid: 4242, ssl: 1n, fd: 5, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '127.0.0.1', port: 443 } };
  for (const format of ['text', 'hex'] as const) {
    const out = new Collector();
    const sink = createFormatSink(format, out, ctx, { color: false });
    sink.connection?.({ type: 'open', tsNs: 1234567890n, conn, comm: 'curl' });
    sink.connection?.({ type: 'close', tsNs: 1234567899n, conn, comm: 'curl', reason: 'SSL_free' });
    await sink.close();
    const lines = out.text().split('\n').filter((l) => l !== '');
    assert.match(lines[0]!, /comm=curl open conn=9 fd=5 127\.0\.0\.1:40000 → 127\.0\.0\.1:443$/, format);
    assert.match(lines[1]!, /comm=curl close conn=9 .* \(SSL_free\)$/, format);
  }
});
