// The user's story: "I capture with --redact and hand the files to a colleague." A marker secret sent
// by curl in Authorization and Cookie, and by nginx in Set-Cookie, over HTTP/1.1 and HTTP/2 (HPACK,
// Huffman-coded), must appear in no byte of any file: -f text, hex, jsonl, -w pcapng, --har, --record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curlFetch } from '../src/demo/clients.js';
import { requireRoot } from './support/privileges.js';
import { startNginx } from './support/nginx.js';
import { runTlstap, startTlstap } from './support/tlstap-process.js';

const MARKER = 'Mk7Zq9RedactMarker';

/** Every 6-byte piece of the marker: none may be in a file. */
function markerPieces(): string[] {
  const pieces: string[] = [];
  for (let i = 0; i + 6 <= MARKER.length; i++) pieces.push(MARKER.slice(i, i + 6));
  return pieces;
}

test('--redact: the marker secret is in no byte of -f text, hex, jsonl, -w, --har or --record, over HTTP/1.1 and HTTP/2', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-redact-'));
  const nginx = await startNginx({
    files: { 'a.txt': 'hello\n' },
    serverConfig: `add_header Set-Cookie "sid=${MARKER}; Path=/; HttpOnly";`,
  });
  try {
    const common = ['--port', String(nginx.port), '--redact'];
    const runs = await Promise.all([
      startTlstap([...common, '-f', 'text', '-o', join(dir, 'out.txt'), '-w', join(dir, 'out.pcapng'), '--har', join(dir, 'out.har'), '--record', join(dir, 'out.rec')]),
      startTlstap([...common, '-f', 'hex', '-o', join(dir, 'out.hex')]),
      startTlstap([...common, '-f', 'jsonl', '-o', join(dir, 'out.jsonl')]),
    ]);
    const headers = ['-H', `Authorization: Bearer ${MARKER}`, '-b', `sid=${MARKER}; theme=${MARKER}`];
    for (const http1_1 of [true, false]) {
      const r = await curlFetch(`${nginx.url}/a.txt`, { http1_1, extraArgs: [...headers, ...(http1_1 ? [] : ['--http2'])] });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'hello\n');
    }
    const exits = await Promise.all(runs.map((r) => r.stop()));
    for (const e of exits) {
      assert.equal(e.code, 0, e.stderr);
      assert.match(e.stderr, /--redact: [1-9]\d* credential header values masked/);
    }
    // The replay of the recording, without --redact: the recorded bytes themselves are masked.
    const replayed = await runTlstap(['replay', join(dir, 'out.rec'), '-f', 'jsonl', '-o', join(dir, 'replay.jsonl')]);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stderr, /out\.rec was recorded with --redact: its credential header values are masked/);

    const files = readdirSync(dir);
    assert.deepEqual(files.sort(), ['out.har', 'out.hex', 'out.jsonl', 'out.pcapng', 'out.rec', 'out.txt', 'replay.jsonl']);
    for (const name of files) {
      const bytes = readFileSync(join(dir, name));
      assert.ok(bytes.length > 0, `${name} is empty`);
      for (const piece of markerPieces()) assert.equal(bytes.indexOf(piece), -1, `${name} holds "${piece}" of the marker`);
    }
    // The captures saw what they should have: both protocols, every credential header, masked.
    const text = readFileSync(join(dir, 'out.txt'), 'latin1');
    assert.match(text, /Authorization: Bearer \*{18}\r\n/);
    assert.match(text, /Cookie: sid=\*{18}; theme=\*{18}\r\n/);
    assert.match(text, /Set-Cookie: sid=\*{18}; Path=\/; HttpOnly\r\n/);
    const records = readFileSync(join(dir, 'replay.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    type Headers = { name: string; value: string }[];
    const exchanges = records.filter((r) => r.type === 'http') as { http_version: string; request: { headers: Headers }; response: { headers: Headers } }[];
    // Each exchange twice: curl's side and nginx's.
    assert.deepEqual(exchanges.map((e) => e.http_version).sort(), ['HTTP/1.1', 'HTTP/1.1', 'HTTP/2', 'HTTP/2']);
    for (const e of exchanges) {
      // Decoded without --redact (HPACK included): the values are the masked bytes.
      const auth = e.request.headers.find((h) => h.name.toLowerCase() === 'authorization');
      assert.match(auth?.value ?? '', /^(Bearer )?\*+$/, JSON.stringify(e.request.headers));
      const cookie = e.response.headers.find((h) => h.name.toLowerCase() === 'set-cookie');
      assert.match(cookie?.value ?? '', /\*{6}/, JSON.stringify(e.response.headers));
    }
  } finally {
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
