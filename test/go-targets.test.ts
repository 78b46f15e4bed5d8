// Go programs in target discovery: found by --lib, -p and among running processes, described with
// their Go version, and never passed over in silence; their probe plan (entry and return sites).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { createSelfSignedCert } from '../src/demo/cert.js';
import { resolveTargetsReporting } from '../src/commands/resolve-targets.js';
import { runLibs } from '../src/commands/libs.js';
import {
  GO_REGISTER_ABI,
  GO_TLS_READ,
  GO_TLS_WRITE,
  GoProgramError,
  TargetError,
  clearAnalysisCache,
  fileTarget,
  goProgramMessage,
  planGoProbes,
  processTargets,
  systemTargets,
} from '../src/targets/index.js';
import type { GoProgram } from '../src/targets/index.js';
import { GO_UNSUPPORTED_HINT, goFacts, goMinorVersion, goProgram, goProgramsHint } from '../src/targets/go.js';
import { withElfFile } from '../src/elf/index.js';
import { programHeaders } from './elf/tools.js';
import { GO_FIXTURES, GO_PLAIN, goFixture, goTool, hideGoVersion, requireGoFixtures, startGoProgram, withPatchedCopy } from './support/go-programs.js';

/** The GoProgram fileTarget reports for a Go binary named with --lib. */
async function libProgram(path: string): Promise<GoProgram> {
  try {
    await fileTarget(path);
  } catch (err) {
    if (err instanceof GoProgramError) return err.program;
    throw err;
  }
  throw new Error(`${path} was taken for a TLS library`);
}

/** A Go binary of any architecture read as a Go program (--lib refuses another machine's files; a device's are planned all the same). */
async function anyArchProgram(path: string): Promise<GoProgram> {
  const facts = await withElfFile(path, goFacts);
  if (facts === undefined) throw new Error(`${path} is not a Go program with crypto/tls`);
  return goProgram(facts, path, path);
}

test('--lib with a Go program: not a TLS library but a Go program, with its version and crypto/tls', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const name of ['client', 'server-stripped'] as const) {
    const p = await libProgram(goFixture(name).path);
    assert.equal(p.goVersion, 'go1.19.8');
    assert.equal(p.layout, 'go1.18');
    assert.equal(p.status, 'captured');
    assert.deepEqual(p.functions.map((f) => f.name).sort(), [GO_TLS_READ, GO_TLS_WRITE]);
    await assert.rejects(fileTarget(goFixture(name).path), (err: unknown) => {
      assert.ok(err instanceof TargetError);
      assert.match(err.message, new RegExp(`^Go program .*/${name} \\(go1\\.19\\.8\\): its crypto/tls is captured$`));
      assert.equal(err.hint, undefined);
      return true;
    });
  }
});

test('Go programs tlstap will not probe say why: Go 1.16 (stack ABI), no crypto/tls', async (t) => {
  if (!requireGoFixtures(t)) return;
  const old = GO_FIXTURES.find((f) => f.goVersion === 'go1.16.3')!;
  const p = await libProgram(old.path);
  assert.equal(p.status, 'unsupported');
  assert.equal(p.layout, 'go1.16');
  assert.match(p.reason, /Go before 1\.17 passes arguments on the stack on x86_64.*rebuild it with Go 1\.17 or later/);
  assert.equal(goProgramsHint([p]), GO_UNSUPPORTED_HINT);
  // Go 1.17 has the same table layout but passes arguments in registers: captured, not unsupported.
  const go117 = await libProgram(GO_FIXTURES.find((f) => f.goVersion === 'go1.17.2')!.path);
  assert.equal(go117.status, 'captured');
  const plain = await libProgram(GO_PLAIN);
  assert.equal(plain.status, 'no-crypto-tls');
  assert.equal(plain.functions.length, 0);
  assert.match(plain.reason, /no crypto\/tls/);
});

test('a Go program whose release cannot be read is named so; the table layout decides when it can', async (t) => {
  if (!requireGoFixtures(t)) return;
  // Go 1.18 layout: Go 1.18 or later, so registers whatever the release.
  const p18 = await withPatchedCopy(goFixture('client-stripped').path, hideGoVersion, libProgram);
  assert.equal(p18.goVersion, undefined);
  assert.equal(p18.layout, 'go1.18');
  assert.equal(p18.status, 'captured');
  assert.match(goProgramMessage(p18), /^Go program \S+ \(Go release unknown\): its crypto\/tls is captured$/);
  // Go 1.16 layout: Go 1.16 (stack) or 1.17 (registers), so it cannot be told.
  const go117 = GO_FIXTURES.find((f) => f.goVersion === 'go1.17.2')!.path;
  const p16 = await withPatchedCopy(go117, hideGoVersion, libProgram);
  assert.equal(p16.status, 'unsupported');
  assert.match(p16.reason, /its Go release is unknown \(its function table is of the Go 1\.16\/1\.17 layout\)/);
  assert.equal(goMinorVersion('go1.21rc2'), 21);
  assert.equal(goMinorVersion('devel +abc'), undefined);
});

test('every Go fixture of Go 1.17 or later is a program whose probes can be planned', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES.filter((x) => x.goVersion !== 'go1.16.3')) {
    const p = await anyArchProgram(f.path);
    assert.equal(p.goVersion, f.goVersion, f.path);
    assert.equal(p.arch, f.arch);
    assert.equal(p.status, 'captured', `${f.path}: ${p.reason}`);
    const plan = await planGoProbes(p);
    assert.equal(plan.abi, GO_REGISTER_ABI[f.arch]);
    const entries = plan.sites.filter((s) => s.kind === 'entry');
    assert.deepEqual(entries.map((s) => s.func), [GO_TLS_WRITE, GO_TLS_READ]);
    const read = p.functions.find((fn) => fn.name === GO_TLS_READ)!;
    const returns = plan.sites.filter((s) => s.kind === 'return-site');
    assert.ok(returns.length >= 2, `${f.path}: ${returns.length} return sites`);
    for (const s of plan.sites) {
      assert.equal(s.file, f.path);
      assert.equal(s.offset - s.address, read.fileOffset - read.address, 'one segment holds the code');
    }
    for (const s of returns) {
      assert.equal(s.func, GO_TLS_READ);
      assert.ok(s.address > read.address && s.address < read.address + BigInt(read.size));
    }
  }
  // The register ABI as the Go internal ABI document states it.
  assert.deepEqual(
    [GO_REGISTER_ABI.x86_64.conn.go, GO_REGISTER_ABI.x86_64.buf.go, GO_REGISTER_ABI.x86_64.len.go, GO_REGISTER_ABI.x86_64.returnN.go, GO_REGISTER_ABI.x86_64.goroutine.go],
    ['RAX', 'RBX', 'RCX', 'RAX', 'R14'],
  );
  assert.deepEqual(
    [GO_REGISTER_ABI.aarch64.conn.ptRegs, GO_REGISTER_ABI.aarch64.buf.ptRegs, GO_REGISTER_ABI.aarch64.len.ptRegs, GO_REGISTER_ABI.aarch64.goroutine.ptRegs],
    ['regs[0]', 'regs[1]', 'regs[2]', 'regs[28]'],
  );
  // Planning is refused for a program whose probes would be wrong.
  await assert.rejects(planGoProbes(await libProgram(GO_FIXTURES.find((f) => f.goVersion === 'go1.16.3')!.path)), /stack/);
});

test('running Go programs: -p names the Go program, system-wide discovery lists those with crypto/tls', async (t) => {
  if (!requireGoFixtures(t)) return;
  const cert = await createSelfSignedCert();
  const server = await startGoProgram(goFixture('server-stripped').path, ['-cert', cert.certPath, '-key', cert.keyPath], /listening https:/);
  const plain = await startGoProgram(GO_PLAIN, ['-wait'], /plain go program/);
  try {
    clearAnalysisCache();
    const serverPath = realpathSync(goFixture('server-stripped').path);
    const found: GoProgram[] = [];
    const targets = await processTargets(server.pid, { onGoProgram: (p) => found.push(p) });
    assert.deepEqual(targets, []);
    assert.deepEqual(found.map((p) => [p.displayPath, p.goVersion, p.status]), [[serverPath, 'go1.19.8', 'captured']]);

    // -p of a Go process for a capture: the program is a target with its Go probes (Write's and
    // Read's entry, Read's 7 return instructions), no longer a program only named.
    const resolved = await resolveTargetsReporting({ pid: server.pid, lib: [] });
    assert.deepEqual(resolved.goPrograms, []);
    assert.deepEqual(resolved.targets.map((t) => [t.displayPath, t.flavour, t.version, t.source]), [[serverPath, 'Go', 'go1.19.8', 'process']]);
    const sites = resolved.targets[0]!.goSites!;
    assert.deepEqual(sites.map((s) => `${s.kind} ${s.func}`).slice(0, 3), [`entry ${GO_TLS_WRITE}`, `entry ${GO_TLS_READ}`, `return-site ${GO_TLS_READ}`]);
    assert.equal(sites.filter((s) => s.kind === 'return-site').length, 7);
    const plainFound: GoProgram[] = [];
    await processTargets(plain.pid, { onGoProgram: (p) => plainFound.push(p) });
    assert.deepEqual(plainFound.map((p) => p.status), ['no-crypto-tls']);

    // System-wide: the server is told about; the Go program without crypto/tls is not (nothing to explain).
    const system: GoProgram[] = [];
    await systemTargets({ onGoProgram: (p) => system.push(p), flavour: false });
    assert.ok(system.some((p) => p.displayPath === serverPath), system.map((p) => p.displayPath).join(', '));
    assert.ok(!system.some((p) => p.displayPath === realpathSync(GO_PLAIN)));

    // `tlstap libs -p PID`: the program, its version, offsets, return sites and the reason, no error.
    const text = await runLibs({ pid: server.pid, lib: [], json: false });
    assert.match(text, new RegExp(`^${serverPath}  Go program \\(go1\\.19\\.8, x86_64, pclntab go1\\.18 layout\\)$`, 'm'));
    assert.match(text, /^ {2}crypto\/tls\.\(\*Conn\)\.Read +offset 0x[0-9a-f]+, probed at 0x[0-9a-f]+ \(after the stack check\), 7 return sites at offsets( 0x[0-9a-f]+){7}$/m);
    assert.match(text, new RegExp(`^ {2}Go program ${serverPath} \\(go1\\.19\\.8\\): its crypto/tls is captured$`, 'm'));
    assert.doesNotMatch(text, /^hint:/m);
    const json = JSON.parse(await runLibs({ pid: server.pid, lib: [], json: true })) as { targets: unknown[]; go: { goVersion: string; status: string; probes: { kind: string }[] }[] };
    assert.deepEqual(json.targets, []);
    assert.equal(json.go[0]?.goVersion, 'go1.19.8');
    assert.equal(json.go[0]?.probes.filter((p) => p.kind === 'return-site').length, 7);
  } finally {
    plain.child.stdin!.end();
    await Promise.all([server.stop(), plain.stop()]);
    await cert.remove();
  }
});

test('libs --lib: Go programs listed after the libraries, Read return sites as objdump sees them', async (t) => {
  if (!requireGoFixtures(t)) return;
  const client = goFixture('client');
  const text = await runLibs({ lib: ['/usr/lib/x86_64-linux-gnu/libssl.so.3', client.path], json: false, pid: undefined });
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`${client.path}  Go program (go1.19.8`));
  assert.ok(at > 0, text);
  // Other Go programs running now may be listed too: this one's lines follow its name.
  const readLine = lines.slice(at).find((l) => l.includes('crypto/tls.(*Conn).Read'))!;
  const sites = /return sites at offsets (.*)$/.exec(readLine)![1]!.split(' ');
  // objdump: the RETs inside (*Conn).Read, turned into file offsets through readelf's PT_LOAD segments.
  const nm = goTool(['tool', 'nm', '-size', client.path]);
  const m = /^\s*([0-9a-f]+)\s+(\d+)\s+T crypto\/tls\.\(\*Conn\)\.Read$/m.exec(nm)!;
  const start = BigInt(`0x${m[1]}`);
  const dump = execFileSync('objdump', ['-d', `--start-address=0x${start.toString(16)}`, `--stop-address=0x${(start + BigInt(m[2]!)).toString(16)}`, client.path], { encoding: 'utf8' });
  const load = programHeaders(client.path).find((h) => h.type === 'LOAD' && start >= h.vaddr && start < h.vaddr + h.filesz)!;
  const rets = [...dump.matchAll(/^\s*([0-9a-f]+):\s+c3\s/gm)].map((r) => `0x${(BigInt(`0x${r[1]}`) - load.vaddr + load.offset).toString(16)}`);
  assert.deepEqual(sites, rets);
});
