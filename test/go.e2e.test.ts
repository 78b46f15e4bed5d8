// End-to-end, as root: a Go HTTPS server and a Go client (Debian's Go, stripped) talk while tlstap
// runs. Go's crypto/tls is not captured yet, and tlstap says so — at start, in `libs` and in the
// summary — instead of "capturing (N probes attached)" and then silence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { promisify } from 'node:util';
import { createSelfSignedCert } from '../src/demo/cert.js';
import type { DataRecord, SummaryRecord } from '../src/output/index.js';
import { goFixture, requireGoFixtures, startGoProgram } from './support/go-programs.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl, runTlstap } from './support/tlstap-process.js';

const run = promisify(execFile);

test('a Go server and client talk over TLS: tlstap names the Go program at start, in libs and in the summary', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const cert = await createSelfSignedCert();
  const serverPath = realpathSync(goFixture('server-stripped').path);
  const server = await startGoProgram(serverPath, ['-cert', cert.certPath, '-key', cert.keyPath], /listening https:\/\/(\S+)/);
  try {
    const url = `https://${/listening https:\/\/(\S+)/.exec(server.output())![1]}/bytes/1000`;
    const said = `Go program ${serverPath} (go1.19.8): its crypto/tls is not captured yet`;

    // System-wide: the running Go server is named before "capturing", and again in the summary.
    let clientOut = '';
    const { out, exit } = await captureWhile(['-f', 'jsonl'], async () => {
      const client = await run(goFixture('client-stripped').path, ['-n', '3', '-k', url]);
      clientOut = client.stdout;
    });
    assert.match(clientOut, /(status 200, 1000 bytes, HTTP\/2\.0\n){3}done/);
    const [start, rest] = exit.stderr.split(/tlstap: capturing \(\d+ probes attached/);
    assert.ok(rest !== undefined, exit.stderr);
    assert.ok(start!.includes(`tlstap: warning: ${said}\n`), exit.stderr);
    assert.match(start!, /\n {2}hint: tlstap finds crypto\/tls\.\(\*Conn\)\.Write and Read in Go programs.*TLS proxy/);
    assert.ok(rest.includes(`tlstap: not captured: ${said}\n`), exit.stderr);
    // Nothing was made up for the Go programs: no call of theirs, and the server answered all three.
    const lines = parseJsonl<DataRecord | SummaryRecord>(out);
    assert.deepEqual(lines.filter((l) => l.type === 'data' && (l.pid === server.pid || /^(client|server)-strip/.test(l.comm))), []);
    assert.equal(server.output().match(/request HTTP\/2\.0 GET \/bytes\/1000/g)?.length, 3, server.output());

    // -p on the Go server: a clear error that names it and what to do, no capture that shows nothing.
    const byPid = await runTlstap(['-p', String(server.pid), '--duration', '1']);
    assert.equal(byPid.code, 1, byPid.stderr);
    assert.doesNotMatch(byPid.stderr, /tlstap: capturing \(/);
    assert.match(byPid.stderr, new RegExp(`only Go's own TLS: ${said.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(byPid.stderr, /hint: .*TLS proxy/);

    // `tlstap libs -p PID`: the Go program, its Go version, the probes planned for it, and the reason.
    const libs = await runTlstap(['libs', '-p', String(server.pid)]);
    assert.equal(libs.code, 0, libs.stderr);
    const text = libs.stdout.toString('utf8');
    assert.match(text, new RegExp(`^${serverPath}  Go program \\(go1\\.19\\.8, x86_64, pclntab go1\\.18 layout\\)$`, 'm'));
    assert.match(text, /crypto\/tls\.\(\*Conn\)\.Read +offset 0x[0-9a-f]+, 7 return sites/);
    assert.ok(text.includes(said), text);
  } finally {
    await server.stop();
    await cert.remove();
  }
});

test('--lib with a Go program beside a TLS library: the library is probed, the Go program named at start', async (t) => {
  if (!requireRoot(t) || !requireGoFixtures(t)) return;
  const client = goFixture('client-stripped').path;
  const exit = await runTlstap(['--lib', client, '--lib', '/usr/lib/x86_64-linux-gnu/libssl.so.3', '-p', String(process.pid), '--duration', '1', '-f', 'none']);
  assert.equal(exit.code, 0, exit.stderr);
  assert.match(exit.stderr, new RegExp(`tlstap: warning: Go program ${client.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(go1\\.19\\.8\\): its crypto/tls is not captured yet`));
  assert.match(exit.stderr, /capturing \(\d+ probes attached/);
  assert.match(exit.stderr, /tlstap: not captured: Go program .*client-stripped \(go1\.19\.8\)/);
});
