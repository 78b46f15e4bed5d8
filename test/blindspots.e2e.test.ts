// "tlstap captured nothing: why?" Three programs it cannot see into get a message that names the
// reason and what to do, in `tlstap libs -p`, at the start of a capture and in its summary: nginx's
// master (its workers carry the traffic), a statically linked, stripped OpenSSL client (TLS built
// in, as in Chromium), and openssl s_server -www (SSL BIOs bypass SSL_read/SSL_write).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSelfSignedCert } from '../src/demo/cert.js';
import { curlFetch } from '../src/demo/clients.js';
import { requireRoot } from './support/privileges.js';
import { startNginx } from './support/nginx.js';
import { runTlstap, startTlstap } from './support/tlstap-process.js';

const STATIC_CLIENT_SOURCE = fileURLToPath(new URL('../../test/support/static-client.c', import.meta.url));

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** The pids of a process's children (nginx's workers). */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), what);
}

test('-p of nginx\'s master: the workers that carry the traffic are named, with -p and --comm to use', { timeout: 90_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const nginx = await startNginx({ files: { 'a.txt': 'hello\n' }, workers: 2 });
  try {
    await waitFor(() => childrenOf(nginx.pid).length === 2, 'nginx started 2 workers');
    const workers = childrenOf(nginx.pid);
    const note = new RegExp(
      `note: process ${nginx.pid} \\(nginx\\) has 2 child processes mapping the same TLS code: ${workers[0]} \\(nginx\\), ${workers[1]} \\(nginx\\); -p follows process ${nginx.pid} only`,
    );
    const hint = new RegExp(`hint: capture a child with -p ${workers[0]}, or all processes of that name with --comm nginx`);

    const libs = await runTlstap(['libs', '-p', String(nginx.pid)]);
    assert.equal(libs.code, 0, libs.stderr);
    assert.match(libs.stdout.toString(), note);
    assert.match(libs.stdout.toString(), hint);

    const tap = await startTlstap(['-p', String(nginx.pid), '-f', 'jsonl']);
    assert.match(tap.stderr(), note);
    const r = await curlFetch(`${nginx.url}/a.txt`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'hello\n');
    const exit = await tap.stop();
    assert.equal(exit.code, 0, exit.stderr);
    // The workers served the request; the master made no TLS call, and the summary says why.
    assert.equal(exit.stdout.toString().split('\n').filter((l) => l.includes('"type":"data"')).length, 0);
    const summary = exit.stderr.slice(exit.stderr.indexOf('stopping'));
    assert.match(summary, new RegExp(`no TLS call of process ${nginx.pid} was seen`));
    assert.match(summary, note);
    assert.match(summary, hint);
  } finally {
    await nginx.stop();
  }
});

test('a statically linked, stripped TLS client: -p says its TLS is built in without symbols, and what to do', { timeout: 90_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-static-'));
  const client = join(dir, 'static-client');
  execFileSync('cc', ['-static', '-O1', '-o', client, STATIC_CLIENT_SOURCE, '-lssl', '-lcrypto', '-lpthread'], { stdio: 'ignore' });
  execFileSync('strip', ['--strip-all', client]);
  const child = spawn(client, ['127.0.0.1', '1', '60'], { stdio: 'ignore' });
  try {
    const message = new RegExp(
      `tlstap: process ${child.pid} \\(static-client\\) has OpenSSL linked into its executable, stripped of the symbols tlstap finds SSL_read and SSL_write by: its own TLS traffic is not seen\\n  hint: give tlstap a build of the program with symbols`,
    );
    for (const args of [['libs', '-p', String(child.pid)], ['-p', String(child.pid), '--duration', '5']]) {
      const r = await runTlstap(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
    }
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openssl s_server -www: 0 calls, and the start and the summary say SSL BIOs are why', { timeout: 90_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const cert = await createSelfSignedCert();
  const port = await freePort();
  const server = spawn('openssl', ['s_server', '-www', '-quiet', '-accept', `127.0.0.1:${port}`, '-cert', cert.certPath, '-key', cert.keyPath], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 500));
    const note = new RegExp(`note: process ${server.pid} \\(openssl\\) uses SSL BIOs \\(BIO_f_ssl\\): what goes through one \\(openssl s_server -www or -WWW\\) is read and written inside libssl without SSL_read or SSL_write`);
    const tap = await startTlstap(['-p', String(server.pid), '-f', 'jsonl']);
    assert.match(tap.stderr(), note);
    const r = await curlFetch(`https://127.0.0.1:${port}/`);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout.toString(), /s_server -www/);
    const exit = await tap.stop();
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(exit.stdout.toString().split('\n').filter((l) => l.includes('"type":"data"')).length, 0, 'no call is seen: the claim holds');
    const summary = exit.stderr.slice(exit.stderr.indexOf('stopping'));
    assert.match(summary, new RegExp(`no TLS call of process ${server.pid} was seen`));
    assert.match(summary, note);
  } finally {
    await stop(server);
    await cert.remove();
  }
});

test('a --lib file no call went through is named in the summary, with how to check', { timeout: 60_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-unused-lib-'));
  try {
    // A copy of libssl that no program loads.
    const copy = join(dir, 'libssl.so.3');
    execFileSync('cp', ['/usr/lib/x86_64-linux-gnu/libssl.so.3', copy]);
    const r = await runTlstap(['--lib', copy, '--comm', 'no-such-comm', '-f', 'none', '--duration', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`tlstap: no call went through ${copy} \\(--lib\\)\\n  hint: check that the program uses this very file \\(grep libssl\\.so\\.3 /proc/PID/maps\\)`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
