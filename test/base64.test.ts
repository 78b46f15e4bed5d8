// The jsonl base64 encoder (WebAssembly) against Buffer.toString('base64'), the reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrowableBytes } from '../src/output/batch.js';
import { Base64Encoder, base64Length } from '../src/output/base64.js';
import { forEachByteAtEachPlace, random } from './support/random.js';

function encoded(encoder: Base64Encoder, data: Uint8Array, target = new GrowableBytes()): string {
  const before = target.pos;
  encoder.append(data, target);
  return target.buf.toString('latin1', before, target.pos);
}

function expected(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

test('base64: every byte value at every place of a 12-byte step and of the tail', () => {
  const encoder = new Base64Encoder();
  forEachByteAtEachPlace(29, 0x5a, (data, label) => assert.equal(encoded(encoder, data), expected(data), label));
});

test('base64: every length up to 100 at every alignment of the input, and random lengths, match Buffer', () => {
  const encoder = new Base64Encoder();
  const rand = random(11);
  const pool = Buffer.alloc(70_000);
  for (let i = 0; i < pool.length; i++) pool[i] = rand(256);
  const target = new GrowableBytes();
  for (let length = 0; length <= 100; length++) {
    for (let offset = 0; offset < 16; offset++) {
      const data = pool.subarray(offset, offset + length);
      assert.equal(encoded(encoder, data, target), expected(data), `${length} bytes at offset ${offset}`);
    }
  }
  for (let i = 0; i < 2000; i++) {
    const length = rand(i % 10 === 0 ? 65_000 : 2000);
    const offset = rand(pool.length - length);
    const data = pool.subarray(offset, offset + length);
    assert.equal(encoded(encoder, data, target), expected(data), `case ${i}: ${length} bytes at offset ${offset}`);
  }
});

test('base64: large payloads grow the kernel memory; the output lands after what the target had', () => {
  const encoder = new Base64Encoder();
  const target = new GrowableBytes();
  target.writeString('prefix:');
  const big = Buffer.alloc(5_000_001);
  for (let i = 0; i < big.length; i++) big[i] = (i * 131) >>> 3;
  assert.equal(encoded(encoder, big, target), expected(big));
  assert.equal(target.buf.toString('latin1', 0, 7), 'prefix:');
  assert.equal(encoded(encoder, Buffer.from('after growth')), expected(Buffer.from('after growth')));
  assert.equal(encoded(encoder, Buffer.alloc(0)), '');
  for (let n = 0; n < 10; n++) assert.equal(base64Length(n), expected(Buffer.alloc(n)).length);
});
