// `tlstap demo`, as a newcomer runs it: one command, real clients, their plaintext on screen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from './support/privileges.js';
import { runTlstap } from './support/tlstap-process.js';

test('tlstap demo shows the request and the response of each client it drove, and only theirs', async (t) => {
  if (!requireRoot(t)) return;
  const run = await runTlstap(['demo'], 120_000);
  assert.equal(run.code, 0, run.stderr);
  const out = run.stdout.toString();
  assert.match(out, /GET \/hello HTTP\/1\.1\r?\n/, 'curl\'s request');
  assert.match(out, /hello from tlstap demo/, 'curl\'s response body');
  assert.match(out, /GET \/json HTTP\/1\.1\r?\n/, 'node\'s request');
  assert.match(out, /"service":"tlstap demo"/, 'node\'s response body');
  const clients = [...run.stderr.matchAll(/tlstap demo: (\w+) \(pid (\d+)\): (\d+) bytes sent, (\d+) bytes received/g)];
  assert.deepEqual(clients.map((m) => m[1]).sort(), ['curl', 'node']);
  for (const m of clients) assert.ok(Number(m[3]) > 0 && Number(m[4]) > 0, `${m[1]} was seen both ways`);
  const pids = new Set(clients.map((m) => m[2]));
  const shown = [...out.matchAll(/ pid=(\d+) /g)].map((m) => m[1]);
  assert.ok(shown.length >= 4);
  assert.ok(shown.every((pid) => pids.has(pid)), 'nothing from the demo server or other programs');
});
