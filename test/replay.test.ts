// `tlstap replay` without privileges: the same recording gives the same bytes, every time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTlstap } from './support/tlstap-process.js';

const FIXTURE = new URL('../../fixtures/recordings/clients.tlstap', import.meta.url).pathname;

test('replaying a recording to pcapng is deterministic: the same input gives the same bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-replay-'));
  try {
    const files = [join(dir, 'a.pcapng'), join(dir, 'b.pcapng')];
    for (const file of files) {
      const run = await runTlstap(['replay', FIXTURE, '-w', file, '-f', 'text', '-o', '/dev/null']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /open it with:\n\s+wireshark /);
    }
    const [a, b] = files.map((f) => readFileSync(f));
    assert.ok(a!.length > 1000, 'packets were written');
    assert.ok(a!.equals(b!), 'identical bytes');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a recording cut short replays every whole frame, then says where and why it stopped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-replay-'));
  try {
    const whole = readFileSync(FIXTURE);
    const cut = join(dir, 'cut.tlstap');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(cut, whole.subarray(0, whole.length - 10));
    const run = await runTlstap(['replay', cut, '-f', 'jsonl']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /replay stopped at byte \d+: truncated/);
    assert.ok(run.stdout.toString().includes('"type":"summary"'), 'what came before the cut was replayed and summed up');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replay of a file that is not a recording fails with one clear line', async () => {
  const run = await runTlstap(['replay', '/etc/hostname']);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^tlstap: .*hostname/m);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
});

test('a --har that fails (full disk) leaves -f jsonl whole, with its http and summary lines, and fails the run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-replay-'));
  try {
    const out = join(dir, 'out.jsonl');
    const run = await runTlstap(['replay', FIXTURE, '-f', 'jsonl', '-o', out, '--har', '/dev/full']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /ENOSPC/);
    const types = readFileSync(out, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    assert.equal(types.filter((t) => t === 'http').length, 6);
    assert.deepEqual(types.slice(-2), ['http_summary', 'summary']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
