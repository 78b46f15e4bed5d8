// The `tlstap` command (bin/tlstap.js): node starts without NODE_EXTRA_CA_CERTS, and the programs
// tlstap starts get the variable back exactly as the user set it (or not at all).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/package-root.js';

const BIN = join(packageRoot(), 'bin', 'tlstap.js');
const NAMES = ['NODE_EXTRA_CA_CERTS', 'TLSTAP_NODE_EXTRA_CA_CERTS'];

// Loaded by node before tlstap's code: prints both variables as node started, and as they are when it
// exits (what every program tlstap spawned would have inherited).
const HOOK =
  'const see = () => JSON.stringify([process.env.NODE_EXTRA_CA_CERTS ?? null, process.env.TLSTAP_NODE_EXTRA_CA_CERTS ?? null]);' +
  'process.stderr.write(`at start ${see()}\\n`);' +
  'process.on("exit", () => process.stderr.write(`at exit ${see()}\\n`));';

/** `tlstap --version` run through an npm-style symlink with `vars` set (the others unset). */
function run(vars: Record<string, string>): { atStart: unknown; atExit: unknown; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-bin-'));
  try {
    symlinkSync(BIN, join(dir, 'tlstap'));
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(HOOK)}` };
    for (const name of NAMES) delete env[name];
    const r = spawnSync(join(dir, 'tlstap'), ['--version'], { env: { ...env, ...vars }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const line = (when: string) => JSON.parse(new RegExp(`^${when} (.*)$`, 'm').exec(r.stderr)?.[1] ?? 'null') as unknown;
    return { atStart: line('at start'), atExit: line('at exit'), stdout: r.stdout.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('tlstap with NODE_EXTRA_CA_CERTS set: node starts without it, and the programs it starts get it back', () => {
  const r = run({ NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/some bundle.pem' });
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  assert.deepEqual(r.atStart, [null, '/etc/ssl/certs/some bundle.pem']);
  assert.deepEqual(r.atExit, ['/etc/ssl/certs/some bundle.pem', null]);
});

test('tlstap with NODE_EXTRA_CA_CERTS set but empty: it comes back empty', () => {
  const r = run({ NODE_EXTRA_CA_CERTS: '' });
  assert.deepEqual(r.atExit, ['', null]);
});

test('tlstap without NODE_EXTRA_CA_CERTS: none appears, whatever TLSTAP_NODE_EXTRA_CA_CERTS holds', () => {
  const r = run({ TLSTAP_NODE_EXTRA_CA_CERTS: '/tmp/not-the-users.pem' });
  assert.deepEqual(r.atStart, [null, null]);
  assert.deepEqual(r.atExit, [null, null]);
});
