// A library of another architecture is never probed: arm64's libssl3 (Debian multiarch) on an x86_64
// machine is listed by `tlstap libs` as not probed, with the reason; named with --lib it is refused
// with a message that says why and what to do.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archLabel, foreignArchReason, hostArch } from '../src/targets/index.js';
import { requireRoot } from './support/privileges.js';
import { runTlstap } from './support/tlstap-process.js';

const ARM64_LIBSSL = '/usr/lib/aarch64-linux-gnu/libssl.so.3';

/** The arm64 library, when this is an x86_64 machine that has it (scripts/setup.sh installs it). */
function arm64Library(t: TestContext): boolean {
  if (process.arch !== 'x64') {
    t.skip(`this test uses an arm64 library on an x86_64 machine; this one is ${process.arch}`);
    return false;
  }
  if (existsSync(ARM64_LIBSSL)) return true;
  const fix = 'dpkg --add-architecture arm64; apt-get update; apt-get install libssl3:arm64 (scripts/setup.sh does)';
  if (process.env.CI === 'true') throw new Error(`${ARM64_LIBSSL} is missing: ${fix}`);
  t.skip(`${ARM64_LIBSSL} is missing: ${fix}`);
  return false;
}

test('the host architecture as an ELF header states it; any other machine, class or byte order is foreign', () => {
  const host = hostArch();
  assert.ok(host !== undefined, `process.arch ${process.arch}`);
  assert.equal(foreignArchReason(host), undefined);
  const other = host.machine === 'aarch64' ? 'x86_64' : 'aarch64';
  assert.match(foreignArchReason({ ...host, machine: other })!, new RegExp(`built for ${other} \\(ELF 64-bit\\)`));
  assert.match(foreignArchReason({ ...host, bits: host.bits === 64 ? 32 : 64 })!, /ELF (32|64)-bit/);
  assert.match(archLabel({ ...host, littleEndian: !host.littleEndian }), /-endian$/);
});

test('tlstap libs: every target shows its architecture; the arm64 libssl is listed as not probed, and why', async (t) => {
  if (!arm64Library(t)) return;
  const json = await runTlstap(['libs', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const listed = JSON.parse(json.stdout.toString()) as { targets: { path: string; arch: string }[]; skipped: { path: string; reason: string }[] };
  assert.ok(listed.targets.length > 0);
  for (const target of listed.targets) assert.equal(target.arch, 'x86_64', target.path);
  assert.ok(!listed.targets.some((x) => x.path.includes('aarch64')), 'an aarch64 file is a target');
  const skipped = listed.skipped.find((s) => s.path === ARM64_LIBSSL);
  assert.match(skipped?.reason ?? '', /built for aarch64 \(ELF 64-bit\), while this machine runs x86_64/);
  const text = await runTlstap(['libs']);
  assert.match(text.stdout.toString(), /^\/usr\/lib\/x86_64-linux-gnu\/libssl\.so\.3  OpenSSL \S+  \(x86_64, system/m);
});

test('an aarch64 copy of libssl named with --lib: refused, naming the architecture and what to do', async (t) => {
  if (!arm64Library(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-arch-'));
  try {
    const copy = join(dir, 'libssl.so.3');
    copyFileSync(ARM64_LIBSSL, copy);
    const runs = [await runTlstap(['libs', '--lib', copy])];
    // The capture refuses it the same way, before anything is attached.
    if (requireRoot(t)) runs.push(await runTlstap(['--lib', copy, '--duration', '5']));
    for (const r of runs) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot probe ${copy}: built for aarch64 \\(ELF 64-bit\\), while this machine runs x86_64 \\(ELF 64-bit\\) code`));
      assert.match(r.stderr, /hint: name the x86_64 build of the library \(on Debian, under \/usr\/lib\/x86_64-linux-gnu\)/);
      assert.doesNotMatch(r.stderr, /capturing \(/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a system-wide capture probes no arm64 library, and says so in one line at start', { timeout: 60_000 }, async (t) => {
  if (!arm64Library(t) || !requireRoot(t)) return;
  const r = await runTlstap(['--comm', 'no-such-comm', '-f', 'none', '--duration', '1', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /tlstap: not probing \d+ TLS librar(y|ies) built for aarch64, which no program here can load \(tlstap libs lists them\)/);
  // -v lists the probed files: none of them is an aarch64 one.
  const probed = r.stderr.slice(r.stderr.indexOf('capturing ('), r.stderr.indexOf('stopping'));
  assert.match(probed, /libssl\.so\.3 /);
  assert.doesNotMatch(probed, /aarch64/);
});
