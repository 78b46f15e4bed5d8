// The JSON lines schema (docs/jsonl.schema.json) holds for real output: a recording made by
// tlstap itself (fixtures/recordings/clients.tlstap: curl, python3 and node against a local
// server) replayed to jsonl, every line validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
