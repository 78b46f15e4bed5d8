// The JSON lines schema (docs/jsonl.schema.json) holds for real output: a recording made by
// tlstap itself (fixtures/recordings/clients.tlstap: curl, python3 and node against a local
// server) replayed to jsonl, every line validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { httpRecord } from '../src/http/record.js';
import { HttpTracker } from '../src/http/tracker.js';
import { call, collect, ctx, frame, FT, HeaderEncoder, PREFACE } from './support/http-streams.js';
import { validate } from './support/json-schema.js';
import { parseJsonl, runTlstap } from './support/tlstap-process.js';

const schema = JSON.parse(readFileSync(new URL('../../docs/jsonl.schema.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const FIXTURE = new URL('../../fixtures/recordings/clients.tlstap', import.meta.url).pathname;

test('the schema rejects lines that break it', () => {
  const good = {
    type: 'summary', calls: 1, bytes: 2, events_dropped: 0, bytes_dropped: 0, bytes_truncated: 0, read_faults: 0, read_fault_bytes: 0,
  };
  assert.deepEqual(validate(good, schema), []);
  assert.notDeepEqual(validate({ ...good, calls: -1 }, schema), []);
  assert.notDeepEqual(validate({ ...good, extra: 1 }, schema), []);
  assert.notDeepEqual(validate({ type: 'data' }, schema), []);
  assert.notDeepEqual(validate({ type: 'nonsense' }, schema), []);
});

test('http header flags the decoder sets are in the schema: sensitive (HTTP/2 never-indexed) and latin1', async () => {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  const enc = new HeaderEncoder();
  const block = enc.block([[':method', 'GET'], [':scheme', 'https'], [':authority', 'a'], [':path', '/'], { name: 'authorization', value: 'Bearer x', neverIndex: true }]);
  const res = new HeaderEncoder().block([[':status', '204']]);
  tracker.write(call('write', Buffer.concat([PREFACE, frame(FT.SETTINGS, 0, 0), frame(FT.HEADERS, 0x5, 1, block)]), { ssl: 1n }));
  tracker.write(call('read', Buffer.concat([frame(FT.SETTINGS, 0, 0), frame(FT.HEADERS, 0x5, 1, res)]), { ssl: 1n }));
  tracker.write(call('write', Buffer.from([...Buffer.from('GET / HTTP/1.1\r\nX-Raw: caf'), 0xe9, 13, 10, 13, 10]), { ssl: 2n }));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab', { ssl: 2n, truncated: 2 }));
  await tracker.close();
  const records = got.exchanges.map((ex) => httpRecord(ex, ctx, { redact: false }));
  assert.deepEqual(records[0]!.request.headers.at(-1), { name: 'authorization', value: 'Bearer x', sensitive: true });
  assert.deepEqual(records[1]!.request.headers.at(-1), { name: 'X-Raw', value: 'caf\u00e9', latin1: true });
  assert.equal(records[1]!.response!.body.missing, 2);
  for (const r of records) assert.deepEqual(validate(JSON.parse(JSON.stringify(r)), schema), []);
});

test('every line of a real capture, replayed from the fixture, matches the documented schema', async () => {
  const replay = await runTlstap(['replay', FIXTURE, '-f', 'jsonl']);
  assert.equal(replay.code, 0, replay.stderr);
  const lines = parseJsonl<{ type: string }>(replay.stdout.toString());
  for (const [i, line] of lines.entries()) assert.deepEqual(validate(line, schema), [], `line ${i + 1}: ${JSON.stringify(line).slice(0, 200)}`);
  const types = new Set(lines.map((l) => l.type));
  for (const type of ['open', 'data', 'http', 'close', 'http_summary', 'summary']) assert.ok(types.has(type), `the fixture has ${type} lines`);
  assert.equal(lines.at(-1)?.type, 'summary');
});

test('the fixture replays the three clients\' requests and responses, without privileges', async () => {
  const replay = await runTlstap(['replay', FIXTURE, '-f', 'jsonl']);
  const http = parseJsonl<{ type: string; conn: { comm: string; role: string }; request: { target: string }; response: { status: number } | null }>(replay.stdout.toString()).filter(
    (l) => l.type === 'http' && l.conn.role === 'client',
  );
  const seen = http.map((h) => `${h.conn.comm} ${h.request.target} ${h.response?.status}`).sort();
  assert.deepEqual(seen, ['curl /hello 200', 'node /hello 200', 'python3 /json 200']);
});
