// The jsonl payload escaper (WebAssembly) against JSON.stringify, the definition of the format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GrowableBytes } from '../src/output/batch.js';
import { JsonEscaper } from '../src/output/json-escape.js';
import { ascii, putBigInt, putBytes, putDigits, putNumber } from '../src/output/bytes.js';
import { random } from './support/random.js';

/** What JSON.stringify makes of the UTF-8 text `data`, without its quotes. */
function expected(data: Buffer): string {
  return JSON.stringify(data.toString('utf8')).slice(1, -1);
}

function escaped(escaper: JsonEscaper, data: Buffer, target = new GrowableBytes()): string {
  const before = target.pos;
  escaper.append(data, target);
  return target.buf.toString('utf8', before, target.pos);
}

test('json escape: every byte value alone and inside 16-byte blocks, as JSON.stringify escapes it', () => {
  const escaper = new JsonEscaper();
  for (let b = 0; b < 0x80; b++) {
    for (const at of [0, 7, 15, 16, 31, 40]) {
      const data = Buffer.alloc(48, 'a');
      data[at] = b;
      assert.equal(escaped(escaper, data), expected(data), `byte 0x${b.toString(16)} at ${at}`);
    }
  }
});

test('json escape: every pattern of escapes in a 16-byte block, short forms and \\u00xx, as JSON.stringify escapes them', () => {
  const escaper = new JsonEscaper();
  const shortForms = ['"', '\\', '\n', '\r', '\t', '\b', '\f'].map((c) => c.charCodeAt(0));
  const target = new GrowableBytes();
  for (let mask = 0; mask < 0x10000; mask++) {
    // The block starts after a byte, so it also sits at an odd place of the output.
    const data = Buffer.alloc(33, 'x');
    for (let i = 0; i < 16; i++) if (mask & (1 << i)) data[1 + i] = shortForms[(mask + i) % shortForms.length]!;
    assert.equal(escaped(escaper, data, target), expected(data), `mask 0x${mask.toString(16)}`);
    // A control without a short form among them (\u00xx) takes the one-by-one path.
    if (mask % 7 === 0) {
      data[1 + (mask % 16)] = 0x01 + (mask % 0x1f);
      assert.equal(escaped(escaper, data, target), expected(data), `mask 0x${mask.toString(16)} with a control`);
    }
  }
});

test('json escape: random UTF-8 text of every length, dense and sparse escapes, matches JSON.stringify', () => {
  const escaper = new JsonEscaper();
  const rand = random(7);
  // Controls, the escapes with short forms, DEL, C1 controls, U+2028/9, BOM, 2- to 4-byte sequences.
  const alphabet = ['a', ' ', '"', '\\', '/', '\n', '\r', '\t', '\b', '\f', '\x00', '\x01', '\x1b', '\x1f', '\x7f', '\u0085', '\u2028', '\u2029', '\ufeff', 'é', '✓', '😀', '\u{10ffff}'];
  const target = new GrowableBytes();
  for (let i = 0; i < 3000; i++) {
    const length = i < 200 ? i : rand(i % 10 === 0 ? 5000 : 300);
    const sparse = i % 2 === 0;
    let text = '';
    while (text.length < length) text += sparse && rand(20) !== 0 ? 'q' : alphabet[rand(alphabet.length)]!;
    const data = Buffer.from(text, 'utf8');
    // Appended after earlier output, at any alignment.
    assert.equal(escaped(escaper, data, target), expected(data), `case ${i}: ${JSON.stringify(text)}`);
  }
});

test('json escape: large payloads grow the kernel memory; the output lands after what the target had', () => {
  const escaper = new JsonEscaper();
  const target = new GrowableBytes();
  target.writeString('prefix:');
  const big = Buffer.from('x"\\\n\x01'.repeat(900_000)); // 4.5 MB, 4 of 5 bytes escaped
  assert.equal(escaped(escaper, big, target), expected(big));
  assert.equal(target.buf.toString('utf8', 0, 7), 'prefix:');
  const small = Buffer.from('after "growth"');
  assert.equal(escaped(escaper, small), expected(small));
  assert.equal(escaped(escaper, Buffer.alloc(0)), '');
});

test('wasm: every committed WebAssembly module is what its .c file compiles to', (t) => {
  const script = fileURLToPath(new URL('../../scripts/build-wasm.sh', import.meta.url));
  const run = spawnSync('bash', [script, '--check'], { encoding: 'utf8' });
  if (run.status === 2) {
    // Set-up installs lld; in CI a missing toolchain is a failure, not a reason to skip.
    if (process.env.CI === 'true') assert.fail(`CI=true and no WebAssembly toolchain: ${run.stderr.trim()}`);
    t.skip(`no WebAssembly toolchain: ${run.stderr.trim()}`);
    return;
  }
  assert.equal(run.status, 0, run.stderr);
});

test('bytes: numbers and bigints as their template-literal text', () => {
  const buf = Buffer.alloc(64);
  const numbers = [0, 7, 9, 10, 99, 100, 4242, 999_999_999, 1e9, 1_000_000_001, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 1e21, -1, 1.5, NaN];
  for (const n of numbers) assert.equal(buf.toString('latin1', 0, putNumber(buf, 0, n)), `${n}`, `${n}`);
  for (const n of [0n, 5n, 1_000_000_000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n, -3n]) {
    assert.equal(buf.toString('latin1', 0, putBigInt(buf, 0, n)), `${n}`, `${n}`);
  }
  assert.equal(buf.toString('latin1', 0, putDigits(buf, 0, 42, 6)), '000042');
  const wide = Buffer.alloc(128);
  assert.equal(putBytes(wide, 3, ascii('y'.repeat(100))), 103);
  assert.equal(putBytes(wide, 103, ascii('"z"')), 106);
  assert.equal(wide.toString('latin1', 3, 106), `${'y'.repeat(100)}"z"`);
});
