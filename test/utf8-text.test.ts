// The jsonl text-or-base64 decision with its early look at the first bytes, against the whole check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { isNulFreeUtf8 } from '../src/output/utf8-text.js';
import { random } from './support/random.js';

function reference(data: Buffer): boolean {
  return isUtf8(data) && data.indexOf(0) === -1;
}

/** Valid UTF-8 of about `length` bytes: characters of 1 to 4 bytes, so sequences straddle every place. */
function utf8Text(rand: (n: number) => number, length: number): Buffer {
  const chars = ['a', ' ', '"', 'é', '€', '𝄞', '\n', 'ж', '中'];
  let s = '';
  while (Buffer.byteLength(s) < length) s += chars[rand(chars.length)]!;
  return Buffer.from(s, 'utf8');
}

test('utf8-text: valid text, and text with one byte changed at every place around the probe end, decide as the whole check does', () => {
  const rand = random(16);
  for (let round = 0; round < 40; round++) {
    const text = utf8Text(rand, 4096 + rand(600));
    assert.equal(isNulFreeUtf8(text), true);
    for (let at = 240; at < 270; at++) {
      for (const value of [0x00, 0x41, 0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff]) {
        const changed = Buffer.from(text);
        changed[at] = value;
        assert.equal(isNulFreeUtf8(changed), reference(changed), `round ${round}, byte ${at} = ${value}`);
      }
    }
  }
});

test('utf8-text: binary, continuation bytes only, a NUL after the probe, a cut character at its end, and short payloads', () => {
  const rand = random(17);
  const binary = Buffer.alloc(16384);
  for (let i = 0; i < binary.length; i++) binary[i] = i % 251;
  const continuation = Buffer.alloc(5000, 0x80);
  const lateNul = Buffer.from(utf8Text(rand, 5000));
  lateNul[4500] = 0;
  const lateBreak = Buffer.from(utf8Text(rand, 5000));
  lateBreak[lateBreak.length - 1] = 0xc3;
  const randomBytes = Buffer.alloc(8192);
  for (let i = 0; i < randomBytes.length; i++) randomBytes[i] = rand(256);
  const cases: [string, Buffer][] = [
    ['mod 251', binary],
    ['continuation bytes', continuation],
    ['NUL after the probe', lateNul],
    ['cut character at the end', lateBreak],
    ['random', randomBytes],
    ['empty', Buffer.alloc(0)],
    ['short text', Buffer.from('GET / HTTP/1.1\r\n')],
    ['short binary', binary.subarray(0, 1024)],
  ];
  for (const [label, data] of cases) assert.equal(isNulFreeUtf8(data), reference(data), label);
});

test('utf8-text: every byte value at every place of a short payload and of the first bytes of a long one, and every pair of bytes at the start', () => {
  for (const size of [40, 5000]) {
    const text = Buffer.alloc(size, 0x61);
    for (let at = 0; at < 40; at++) {
      for (let b = 0; b < 256; b++) {
        const changed = Buffer.from(text);
        changed[at] = b;
        assert.equal(isNulFreeUtf8(changed), reference(changed), `${size} bytes, byte ${at} = ${b}`);
      }
    }
  }
  const pair = Buffer.alloc(64, 0x61);
  for (let b0 = 0; b0 < 256; b0++) {
    for (let b1 = 0; b1 < 256; b1++) {
      pair[30] = b0;
      pair[31] = b1;
      assert.equal(isNulFreeUtf8(pair), reference(pair), `bytes 30, 31 = ${b0}, ${b1}`);
      assert.equal(isNulFreeUtf8(pair.subarray(0, 32)), reference(pair.subarray(0, 32)), `ending in ${b0}, ${b1}`);
    }
  }
});
