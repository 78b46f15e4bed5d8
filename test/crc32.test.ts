import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { crc32Table } from '../src/util/crc32.js';
import { random } from './support/random.js';

test('the table CRC-32 (Node 18) equals zlib.crc32, from zero and continued, on bytes and strings', (t) => {
  const native = (zlib as { crc32?: (data: Uint8Array | string, value?: number) => number }).crc32;
  // The check value of CRC-32/ISO-HDLC, whatever Node has.
  assert.equal(crc32Table('123456789'), 0xcbf43926);
  if (!native) {
    t.skip(`Node ${process.version} has no zlib.crc32 to compare with`);
    return;
  }
  const next = random(7);
  for (const size of [0, 1, 3, 64, 1000, 65_537]) {
    const bytes = Buffer.from(Array.from({ length: size }, () => next(256)));
    const start = next(0x7fffffff);
    assert.equal(crc32Table(bytes), native(bytes), `${size} bytes`);
    assert.equal(crc32Table(bytes, start), native(bytes, start), `${size} bytes after ${start}`);
  }
  assert.equal(crc32Table('héllo, wörld'), native('héllo, wörld'));
});
