// --redact on the byte streams (src/redact/): credential header values masked in place, same length,
// in HTTP/1 lines and HTTP/2 HPACK blocks (raw and Huffman), whatever way the bytes are cut into calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import hpack from 'hpack.js';
import type { HpackHeader } from 'hpack.js';
import { redactHeaderValue } from '../src/http/redact.js';
import { BatchRedactor, DirectionMasker } from '../src/redact/index.js';
import { newRedactStats } from '../src/redact/types.js';
import { encodeRecord, encodeConnRecord } from './support/events.js';
import { encodeBatch } from '../src/record/format.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { FT, HeaderEncoder, PREFACE, frame, padded, settings } from './support/http-streams.js';

const SECRET = 'S3cr3tMarker';

/** Masks `data` cut at `cuts`, each piece fed as the stream's next bytes; returns the masked copy. */
function maskPieces(data: Buffer, cuts: number[]): Buffer {
  const out = Buffer.from(data);
  const masker = new DirectionMasker(newRedactStats());
  let at = 0;
  for (const cut of [...cuts, out.length]) {
    masker.feed(out, at, cut);
    at = cut;
  }
  return out;
}

const REQUEST = Buffer.from(
  'GET /a HTTP/1.1\r\nHost: example.test\r\nAuthorization: Bearer ' + SECRET + '\r\n' +
    'Cookie: sid=' + SECRET + '1; theme=' + SECRET + '2\r\nX-Api-Key: ' + SECRET + '3\r\nAccept: */*\r\n\r\n',
  'latin1',
);
const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\nSet-Cookie: sid=' + SECRET + '; Path=/; HttpOnly\r\nProxy-Authorization: ' + SECRET + '\r\n' +
    'Content-Length: 5\r\n\r\nhello',
  'latin1',
);

function headerLines(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) map.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return map;
}

test('HTTP/1: credential values masked byte for byte, showing what redactHeaderValue shows', () => {
  for (const message of [REQUEST, RESPONSE]) {
    const masked = maskPieces(message, []);
    assert.equal(masked.length, message.length);
    const text = masked.toString('latin1');
    assert.ok(!text.includes(SECRET), text);
    const before = headerLines(message.toString('latin1'));
    const after = headerLines(text);
    for (const [name, value] of before) {
      assert.equal(redactHeaderValue(name, after.get(name)!), redactHeaderValue(name, value), name);
    }
    assert.equal(after.get('host') ?? after.get('content-length'), before.get('host') ?? before.get('content-length'));
  }
  assert.match(maskPieces(REQUEST, []).toString('latin1'), /Authorization: Bearer \*{12}\r\nCookie: sid=\*{13}; theme=\*{13}\r\n/);
  assert.match(maskPieces(RESPONSE, []).toString('latin1'), /Set-Cookie: sid=\*{12}; Path=\/; HttpOnly\r\n/);
});

test('HTTP/1: cut into two or three calls anywhere, no byte of a secret survives', () => {
  const both = Buffer.concat([REQUEST, REQUEST]);
  for (let a = 1; a < both.length; a++) {
    for (const b of [a + 1, a + 7, both.length - 1]) {
      const cuts = b > a && b < both.length ? [a, b] : [a];
      const masked = maskPieces(both, cuts).toString('latin1');
      for (let k = 0; k + 4 <= SECRET.length; k++) assert.ok(!masked.includes(SECRET.slice(k, k + 4)), `cuts ${cuts}: ${masked}`);
      assert.ok(masked.startsWith('GET /a HTTP/1.1\r\nHost: example.test\r\n'), `cuts ${cuts}`);
    }
  }
});

test('HTTP/1: a gap masks the rest of its line; a folded line of a credential header is masked', () => {
  const masker = new DirectionMasker(newRedactStats());
  const first = Buffer.from('GET / HTTP/1.1\r\nAuthor', 'latin1');
  masker.feed(first, 0, first.length);
  masker.gap();
  const rest = Buffer.from(SECRET + '\r\nHost: x\r\nCookie: a=b\r\n  ' + SECRET + '\r\n\r\n', 'latin1');
  masker.feed(rest, 0, rest.length);
  const text = rest.toString('latin1');
  assert.ok(!text.includes(SECRET), text);
  assert.ok(text.includes('\r\nHost: x\r\n'));
});

/** A client's HTTP/2 write stream: preface, SETTINGS, header blocks as HEADERS (+ CONTINUATION). */
function h2Stream(blocks: Buffer[], opts: { preface: boolean }): Buffer {
  const parts = [opts.preface ? PREFACE : Buffer.alloc(0), frame(FT.SETTINGS, 0, 0, settings([[4, 65535]]))];
  blocks.forEach((block, i) => {
    const id = 1 + 2 * i;
    if (i % 2 === 0) {
      // HEADERS with PADDED and PRIORITY, the block split with a CONTINUATION.
      const half = Math.floor(block.length / 2);
      const priority = Buffer.from([0, 0, 0, 0, 16]);
      parts.push(frame(FT.HEADERS, 0x8 | 0x20, id, padded(Buffer.concat([priority, block.subarray(0, half)]), 3)));
      parts.push(frame(FT.CONTINUATION, 0x4, id, block.subarray(half)));
    } else {
      parts.push(frame(FT.HEADERS, 0x4 | 0x1, id, block));
    }
    parts.push(frame(FT.DATA, 0x1, id, Buffer.from(`authorization: body ${i}`)));
  });
  return Buffer.concat(parts);
}

function h2Requests(): { blocks: Buffer[]; sent: HpackHeader[][] } {
  const enc = new HeaderEncoder();
  const sent: HpackHeader[][] = [];
  const blocks = [0, 1, 2].map((i) => {
    const headers = [
      { name: ':method', value: 'GET' },
      { name: ':path', value: `/item/${i}` },
      { name: 'authorization', value: `Bearer ${SECRET}${i}`, huffman: true },
      { name: 'cookie', value: `sid=${SECRET}`, huffman: false },
      { name: 'cookie', value: `theme=${SECRET}x${i}`, huffman: true, incremental: false },
      { name: 'x-trace', value: `${SECRET}never`, neverIndex: true, huffman: true },
      { name: 'user-agent', value: 'curl/7.88.1', huffman: true },
    ];
    sent.push(headers.map((h) => ({ name: h.name, value: h.value, neverIndex: h.neverIndex === true })));
    return enc.block(headers);
  });
  return { blocks, sent };
}

/** Decodes every header block of a masked stream with hpack.js, the way the HTTP tracker does. */
function decodeBlocks(blocks: Buffer[]): HpackHeader[][] {
  const dec = hpack.decompressor.create({ table: { maxSize: 4096 } });
  return blocks.map((block) => {
    dec.write(block);
    dec.execute();
    const out: HpackHeader[] = [];
    for (let h = dec.read(); h !== null; h = dec.read()) out.push(h);
    return out;
  });
}

/** The header blocks inside a stream h2Stream built (same layout), taken back out. */
function blocksOf(stream: Buffer, count: number, preface: boolean): Buffer[] {
  let at = (preface ? PREFACE.length : 0) + 9 + 6;
  const blocks: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const len = stream.readUIntBE(at, 3);
    if (i % 2 === 0) {
      const head = stream.subarray(at + 9 + 1 + 5, at + 9 + len - 3);
      at += 9 + len;
      const contLen = stream.readUIntBE(at, 3);
      blocks.push(Buffer.concat([head, stream.subarray(at + 9, at + 9 + contLen)]));
      at += 9 + contLen;
    } else {
      blocks.push(stream.subarray(at + 9, at + 9 + len));
      at += 9 + len;
    }
    at += 9 + stream.readUIntBE(at, 3);
  }
  return blocks;
}

test('HTTP/2: HPACK literals (raw, Huffman, never-indexed) masked; the blocks still decode, table and all', () => {
  const { blocks, sent } = h2Requests();
  for (const preface of [true, false]) {
    const stream = h2Stream(blocks, { preface });
    const stats = newRedactStats();
    const masked = Buffer.from(stream);
    new DirectionMasker(stats).feed(masked, 0, masked.length);
    assert.equal(stats.blindStreams, 0);
    const decoded = decodeBlocks(blocksOf(masked, blocks.length, preface));
    decoded.forEach((headers, i) => {
      assert.deepEqual(headers.map((h) => h.name), sent[i]!.map((h) => h.name));
      for (const [k, h] of headers.entries()) {
        const original = sent[i]![k]!;
        const credential = ['authorization', 'cookie'].includes(h.name) || original.neverIndex;
        if (credential) assert.match(h.value, /^\*+$/, `${h.name} in block ${i}`);
        else assert.equal(h.value, original.value);
      }
    });
    // DATA frames are not header blocks: their bytes are untouched.
    assert.ok(masked.includes('authorization: body 1'));
  }
});

test('HTTP/2: cut anywhere into calls, the masking is the same', () => {
  const { blocks } = h2Requests();
  const stream = h2Stream(blocks, { preface: true });
  const whole = maskPieces(stream, []);
  for (let a = 1; a < stream.length; a += 3) {
    assert.ok(maskPieces(stream, [a, Math.min(stream.length - 1, a + 5)]).equals(whole), `cut at ${a}`);
  }
});

test('HTTP/2 joined late (first frame not SETTINGS): names from the unknown table are masked', () => {
  const enc = new HeaderEncoder();
  enc.block([{ name: 'x-session', value: 'old', incremental: true }]);
  // The second block refers to the entry by index, with a new value: the masker never saw the first.
  const late = enc.block([{ name: 'x-session', value: SECRET, incremental: false, huffman: false }]);
  const stream = Buffer.concat([frame(FT.HEADERS, 0x4 | 0x1, 3, late)]);
  const masked = maskPieces(stream, []);
  assert.ok(!masked.includes(SECRET));
});

test('batches: a call cut into chunks, a truncated call and a dropped call are masked, never leaked', () => {
  const K = EVENT_LAYOUT.constants;
  const req = Buffer.from(`GET / HTTP/1.1\r\nAuthorization: Bearer ${SECRET}\r\n\r\n`, 'latin1');
  const cut = 30;
  const records = [
    encodeConnRecord({ kind: K.EVENT_CONN_OPEN, connId: 7 }),
    encodeRecord({ connId: 7, seq: 0, tsNs: 10n, totalLen: req.length, chunkOffset: 0, data: req.subarray(0, cut) }),
    encodeRecord({ connId: 7, seq: 0, tsNs: 10n, totalLen: req.length, chunkOffset: cut, data: req.subarray(cut) }),
    // Truncated by --max-bytes inside the header name: the next call's first line is masked.
    encodeRecord({ connId: 7, seq: 1, tsNs: 11n, totalLen: 30, truncated: 10, data: Buffer.from('GET / HTTP/1.1\r\nAuthorizati', 'latin1').subarray(0, 20) }),
    encodeRecord({ connId: 7, seq: 2, tsNs: 12n, data: Buffer.from(`Bearer ${SECRET}\r\n\r\n`, 'latin1') }),
    // Call 3 was dropped (ring buffer full): call 4 starts after a gap.
    encodeRecord({ connId: 7, seq: 4, tsNs: 14n, data: Buffer.from(`${SECRET}\r\nHost: h\r\n\r\n`, 'latin1') }),
  ];
  const { batch, count } = encodeBatch(records);
  const redactor = new BatchRedactor();
  redactor.redactBatch(batch, count);
  const text = batch.toString('latin1');
  assert.ok(!text.includes(SECRET.slice(0, 6)), text);
  assert.ok(!text.includes(SECRET.slice(6)), text);
  assert.ok(text.includes('Host: h'));
  assert.equal(redactor.stats.values >= 1, true);
});

test('batches: the other direction written just after a later call is no gap', () => {
  const K = EVENT_LAYOUT.constants;
  const h2 = h2Stream(h2Requests().blocks, { preface: true });
  const records = [
    encodeRecord({ connId: 9, seq: 0, tsNs: 1n, func: 1, data: h2.subarray(0, 40) }),
    // seq 2 (write) before seq 1 (read), both in this batch.
    encodeRecord({ connId: 9, seq: 2, tsNs: 3n, func: 1, data: h2.subarray(40) }),
    encodeRecord({ connId: 9, seq: 1, tsNs: 2n, func: 0, dir: K.DIR_READ, data: frame(FT.SETTINGS, 0, 0) }),
  ];
  const { batch, count } = encodeBatch(records);
  const redactor = new BatchRedactor();
  redactor.redactBatch(batch, count);
  assert.equal(redactor.stats.blindStreams, 0);
  assert.ok(redactor.stats.values >= 6);
});
