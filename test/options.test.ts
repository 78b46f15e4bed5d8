// The capture's options as the CLI parses them: numbers in range, one value per filter, output
// choices that mean what they say; and a seeded fuzz of the parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captureOptions, MIN_RING_BUFFER, parseCaptureArgs } from '../src/commands/options.js';
import type { CaptureOptions } from '../src/commands/options.js';
import { random } from './support/random.js';

/** The one-line message the CLI would print for these arguments, or undefined when they parse. */
function refusal(args: string[]): string | undefined {
  try {
    parseCaptureArgs(args);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

test('--uid: 4294967296 (which wrapped to uid 0, root) and (uid_t)-1 are refused; the largest real uid is taken', () => {
  assert.match(refusal(['--uid', '4294967296']) ?? 'accepted', /user id is between 0 and 4294967294/);
  assert.match(refusal(['--uid', '4294967295']) ?? 'accepted', /user id is between/);
  assert.match(refusal(['--uid', '1e3']) ?? 'accepted', /whole number/);
  assert.equal(parseCaptureArgs(['--uid', '4294967294']).uid, 4294967294);
  assert.equal(parseCaptureArgs(['--uid', '0']).uid, 0);
});

test('--duration: any length is kept as given (above 2147483 s too)', () => {
  assert.equal(parseCaptureArgs(['--duration', '3000000']).duration, 3000000);
  assert.equal(parseCaptureArgs(['--duration', '0.5']).duration, 0.5);
  for (const bad of ['0', '-1', '1e400', '0x10', 'Infinity', '']) assert.ok(refusal(['--duration', bad]), bad);
});

test('--ring-buffer: smaller than one record (96-byte header, a 16 KiB chunk, 8 bytes of ring header) is refused', () => {
  assert.equal(MIN_RING_BUFFER, 32 * 1024);
  for (const small of ['4k', '8k', '16k']) assert.match(refusal(['--ring-buffer', small]) ?? 'accepted', /32k \(one 16488-byte record\)/, small);
  assert.match(refusal(['--ring-buffer', '48k']) ?? 'accepted', /power of two/);
  assert.equal(parseCaptureArgs(['--ring-buffer', '32k']).ringBuffer, 32 * 1024);
});

test('--port, --pid, --uid, --comm, --host given twice are refused (not the last one silently kept), and help says "once"', () => {
  for (const [flag, a, b] of [['--port', '443', '8443'], ['--pid', '1', '2'], ['--uid', '0', '1'], ['--comm', 'curl', 'wget'], ['--host', '::1', '127.0.0.1']]) {
    assert.match(refusal([flag!, a!, flag!, b!]) ?? 'accepted', new RegExp(`${flag} takes one value`), flag);
    const help = captureOptions().find((o) => o.long === (flag === '--pid' ? '--pid' : flag))!.description;
    assert.match(help, /once\)$/, flag);
  }
  assert.deepEqual(parseCaptureArgs(['--lib', 'a', '--lib', 'b']).lib, ['a', 'b']);
});

test('--comm "" is refused', () => {
  assert.match(refusal(['--comm', '']) ?? 'accepted', /not an empty string/);
});

test('-f none -o FILE and -w - with an explicit -f text are refused with what to do instead', () => {
  assert.match(refusal(['-f', 'none', '-o', 'out']) ?? 'accepted', /-f none writes no format, so -o out would stay empty/);
  assert.match(refusal(['-w', '-', '-f', 'text']) ?? 'accepted', /-w - puts pcapng on stdout, so -f text has nowhere to go/);
  // What stays allowed: the default format under -w -, an explicit format sent to -o, -f none alone.
  assert.equal(parseCaptureArgs(['-w', '-']).pcapng, '-');
  assert.equal(parseCaptureArgs(['-w', '-', '-f', 'jsonl', '-o', 'out']).format, 'jsonl');
  assert.equal(parseCaptureArgs(['-f', 'none', '-w', 'x.pcapng']).format, 'none');
});

/** What every accepted set of options must satisfy. */
function checkAccepted(o: CaptureOptions, args: string[]): void {
  const where = JSON.stringify(args);
  if (o.pid !== undefined) assert.ok(Number.isSafeInteger(o.pid) && o.pid >= 1 && o.pid <= 4194304, where);
  if (o.uid !== undefined) assert.ok(Number.isSafeInteger(o.uid) && o.uid >= 0 && o.uid <= 0xfffffffe, where);
  if (o.port !== undefined) assert.ok(Number.isSafeInteger(o.port) && o.port >= 1 && o.port <= 65535, where);
  if (o.comm !== undefined) assert.ok(o.comm.length > 0, where);
  if (o.duration !== undefined) assert.ok(Number.isFinite(o.duration) && o.duration > 0, where);
  assert.ok(o.ringBuffer >= MIN_RING_BUFFER && (o.ringBuffer & (o.ringBuffer - 1)) === 0, where);
  assert.ok(Number.isSafeInteger(o.maxBytes) && o.maxBytes >= 1 && o.maxBytes <= 4 * 1024 * 1024, where);
  assert.ok(Number.isSafeInteger(o.connections) && o.connections >= 16, where);
  assert.ok(!(o.format === 'none' && o.output !== undefined), where);
  assert.ok(!(o.pcapng === '-' && o.formatGiven === true && o.format !== 'none' && o.output === undefined), where);
}

test('fuzz (seeded, 3000 argument lists): every list parses to options within range or is refused with one line', () => {
  const pick = random(0x0b71);
  const flags = ['-p', '--pid', '--uid', '--comm', '--port', '--host', '--lib', '--max-bytes', '-f', '--format', '-o', '-w', '--har', '--redact', '--record', '--ring-buffer', '--connections', '--duration', '-v', '--bogus'];
  const values = ['0', '1', '-1', '65535', '65536', '4294967294', '4294967295', '4294967296', '99999999999999999999', '1e3', '0x10', '', ' ', '16m', '4k', '32k', '1g', '2g', '3.5', 'NaN', 'Infinity', '::1', '127.0.0.1', '300.1.1.1', 'none', 'text', 'jsonl', '-', 'curl', 'a'.repeat(40), '\u00e9\u0000', '--', '2147484'];
  const tally = { accepted: 0, refused: 0 };
  for (let run = 0; run < 3000; run++) {
    const args: string[] = [];
    const n = pick(6);
    for (let i = 0; i < n; i++) {
      args.push(flags[pick(flags.length)]!);
      if (pick(8) > 0) args.push(values[pick(values.length)]!);
    }
    let opts: CaptureOptions;
    try {
      opts = parseCaptureArgs(args);
    } catch (err) {
      const e = err as Error & { code?: string };
      assert.ok(e.name === 'CommanderError' || e.name === 'InvalidArgumentError' || e.name === 'CliError', `${JSON.stringify(args)}: ${e.name} ${e.stack}`);
      assert.ok(e.message.length > 0 && !e.message.includes('\n') && !e.message.includes('undefined'), `${JSON.stringify(args)}: ${e.message}`);
      tally.refused++;
      continue;
    }
    checkAccepted(opts, args);
    tally.accepted++;
  }
  assert.ok(tally.accepted > 100 && tally.refused > 100, JSON.stringify(tally));
});
