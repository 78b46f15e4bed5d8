// Records with bodies (HAR entries, jsonl `http` lines) written with each body encoded straight into
// the output: byte for byte what JSON.stringify of the record with the bodies' strings writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { PLAIN_BODY_STRINGS } from '../src/http/body.js';
import type { BodyStrings } from '../src/http/body.js';
import { GrowableBytes } from '../src/output/batch.js';
import { BodyJsonWriter } from '../src/output/body-json.js';
import { createFormatSink } from '../src/output/index.js';
import { withHttpRecords } from '../src/output/http.js';
import { createHarSink, harEntry, harLog } from '../src/har/index.js';
import { httpRecord } from '../src/http/record.js';
import { HttpTracker } from '../src/http/tracker.js';
import type { HttpExchange } from '../src/http/types.js';
import { call, collect, ctx, split } from './support/http-streams.js';
import { random } from './support/random.js';

/** UTF-8 text of about `bytes` bytes: escapes, controls, 2- to 4-byte characters, a stand-in look-alike. */
function text(bytes: number, seed: number): Buffer {
  const rand = random(seed);
  const alphabet = ['plain words ', '"', '\\', '\n', '\t', '\x00', '\x01', '\x1f', '\x7f', 'é', '€', '😀', '\u2028', '"\\udc00ab:0\\udc00"'];
  let s = '';
  while (Buffer.byteLength(s) < bytes) s += alphabet[rand(alphabet.length)];
  return Buffer.from(s, 'utf8');
}

/** A record shaped like ours: bodies among ordinary strings, one of them the text of a stand-in. */
function record(strings: BodyStrings, bodies: { bytes: Buffer; base64: boolean }[]) {
  return {
    type: 'test',
    header: '\udc00 not a stand-in: "\\udc00x:0\\udc00"',
    bodies: bodies.map((b, i) => ({ i, [b.base64 ? 'base64' : 'text']: b.base64 ? strings.base64(b.bytes) : strings.text(b.bytes) })),
    after: [1, null, 'end'],
  };
}

test('body json: text and base64 bodies of every awkward size, cut characters at the end, match JSON.stringify', () => {
  const big = text(300_000, 1);
  const euro = Buffer.from('€', 'utf8');
  const emoji = Buffer.from('😀', 'utf8');
  const bodies = [
    { bytes: Buffer.alloc(0), base64: false },
    { bytes: Buffer.alloc(0), base64: true },
    { bytes: big, base64: false },
    // Cut inside a 3- and a 4-byte character (a body cut by the capture): decoded as toString does.
    { bytes: Buffer.concat([big.subarray(0, 100_000), euro.subarray(0, 2)]), base64: false },
    { bytes: Buffer.concat([text(49_151, 2), emoji.subarray(0, 3)]), base64: false },
    { bytes: Buffer.concat([text(10, 3), emoji.subarray(0, 1)]), base64: false },
    ...[1, 2, 3, 4, 48 * 1024 - 1, 48 * 1024, 48 * 1024 + 1, 1_000_001].map((n) => ({ bytes: randomBytes(n), base64: true })),
  ];
  const writer = new BodyJsonWriter();
  const target = new GrowableBytes();
  // Twice through the same writer: stand-ins of one record never reach the next.
  for (let round = 0; round < 2; round++) {
    const start = target.pos;
    writer.write(record(writer.strings, bodies), target, '>', '\n');
    const want = `>${JSON.stringify(record(PLAIN_BODY_STRINGS, bodies))}\n`;
    const got = target.buf.toString('utf8', start, target.pos);
    assert.equal(got.length, want.length, `round ${round}`);
    assert.ok(got === want, `round ${round}: differs at ${[...got].findIndex((c, i) => c !== want[i])}`);
  }
});

/** An HTTP/1.1 exchange with a 5 MiB binary response and a text request body (made once: calls carry timestamps). */
const bigExchangeCalls = (() => {
  let calls: ReturnType<typeof makeCalls> | undefined;
  return () => (calls ??= makeCalls());
})();

function makeCalls() {
  const conn = { id: 3, pid: 4242, ssl: 0x99n, fd: 7, local: { ip: '10.0.0.1', port: 40000 }, remote: { ip: '10.0.0.2', port: 443 } };
  const reqBody = text(200_000, 9);
  const resBody = randomBytes(5 * 1024 * 1024);
  return [
    call('write', Buffer.concat([Buffer.from(`POST /up HTTP/1.1\r\nHost: t.test\r\nContent-Type: text/plain\r\nContent-Length: ${reqBody.length}\r\n\r\n`), reqBody]), { conn }),
    ...split('read', Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${resBody.length}\r\n\r\n`), resBody]), 16384, { conn }),
  ];
}

async function decoded(): Promise<{ tracker: HttpTracker; exchange: HttpExchange }> {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  for (const c of bigExchangeCalls()) tracker.write(c);
  await tracker.close();
  assert.equal(got.exchanges.length, 1);
  return { tracker, exchange: got.exchanges[0]! };
}

test('a HAR file with a 5 MiB body is the document JSON.stringify makes of its entry', async () => {
  const { exchange } = await decoded();
  const path = join(mkdtempSync(join(tmpdir(), 'tlstap-body-json-')), 'big.har');
  const tracker = new HttpTracker();
  const sink = createHarSink(path, ctx, { redact: false, tracker });
  for (const c of bigExchangeCalls()) tracker.write(c);
  await tracker.close();
  const file = readFileSync(path, 'utf8');
  const entry = JSON.stringify(harEntry(exchange, ctx, { redact: false }));
  assert.ok(file.includes(`\n${entry}\n`), 'the entry as JSON.stringify writes it');
  const doc = JSON.parse(file) as ReturnType<typeof harLog>;
  assert.equal(sink.entries, 1);
  assert.equal(Buffer.from(doc.log.entries[0]!.response.content.text!, 'base64').length, 5 * 1024 * 1024);
});

test('jsonl http records with large bodies are the lines JSON.stringify makes of them', async () => {
  const { exchange } = await decoded();
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (b: Buffer) => chunks.push(b));
  const tracker = new HttpTracker();
  const sink = withHttpRecords(createFormatSink('jsonl', out, ctx, { color: false }), ctx, { redact: false, tracker, summary: false });
  for (const c of bigExchangeCalls()) tracker.write(c);
  await sink.close();
  const lines = Buffer.concat(chunks).toString('utf8').split('\n');
  const http = lines.filter((l) => l.startsWith('{"type":"http"'));
  assert.equal(http.length, 1);
  assert.ok(http[0] === JSON.stringify(httpRecord(exchange, ctx, { redact: false })), 'the http line as JSON.stringify writes it');
});

/** A target that hands its bytes on whenever they fill a write, and remembers the most it held at once. */
class HandingOnBytes extends GrowableBytes {
  readonly handedOn: Buffer[] = [];
  mostHeld = 0;

  writeOutIfFull(): void {
    this.mostHeld = Math.max(this.mostHeld, this.pos);
    if (this.pos < 256 * 1024) return;
    this.handedOn.push(Buffer.from(this.buf.subarray(0, this.pos)));
    this.pos = 0;
  }

  all(): string {
    return Buffer.concat([...this.handedOn, this.buf.subarray(0, this.pos)]).toString('utf8');
  }
}

test('a 16 MiB body is handed on to the output as it is encoded: the target never holds the whole of it', () => {
  const page = text(16 * 1024, 7);
  const bodies = [
    { bytes: randomBytes(16 * 1024 * 1024), base64: true },
    { bytes: Buffer.concat(Array.from({ length: 256 }, () => page)), base64: false },
  ];
  const writer = new BodyJsonWriter();
  const target = new HandingOnBytes();
  writer.write(record(writer.strings, bodies), target, '', '\n');
  assert.ok(target.all() === `${JSON.stringify(record(PLAIN_BODY_STRINGS, bodies))}\n`, 'what JSON.stringify writes');
  assert.ok(target.mostHeld < 512 * 1024, `${target.mostHeld} bytes held at once`);
});
