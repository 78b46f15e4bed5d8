// `tlstap replay` without privileges: the same recording gives the same bytes, every time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, closeSync, copyFileSync, linkSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTlstap } from './support/tlstap-process.js';
import { encodeFileHeader } from '../src/record/format.js';
import type { RecordHeader } from '../src/record/index.js';
import { tlstapVersion } from '../src/version.js';

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

/** A fresh directory for one test, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-replay-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lineTypes = (text: string) => text.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);

test('replay of a missing file prints one clear line, no stack trace', async () => {
  const run = await runTlstap(['replay', '/nonexistent/run.tlstap']);
  assert.equal(run.code, 1);
  assert.equal(run.stderr, 'tlstap: cannot read /nonexistent/run.tlstap: no such file\n');
});

test('a recording from another build of this very version does not say "replay it with" this version', async () => {
  await inTempDir(async (dir) => {
    const whole = readFileSync(FIXTURE);
    const header = JSON.parse(whole.subarray(20, 20 + whole.readUInt32LE(12)).toString('utf8')) as RecordHeader;
    const other = { ...header, tlstapVersion: tlstapVersion(), layout: { ...header.layout, constants: { ...(header.layout.constants as object), CTR_COUNT: 99 } } };
    const path = join(dir, 'other-build.tlstap');
    writeFileSync(path, Buffer.concat([encodeFileHeader(other), whole.subarray(20 + whole.readUInt32LE(12))]));
    const run = await runTlstap(['replay', path, '-f', 'none']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`recorded by another build of tlstap ${tlstapVersion().replace(/\./g, '\\.')} with a different event layout`));
    assert.doesNotMatch(run.stderr, new RegExp(`replay it with tlstap ${tlstapVersion().replace(/\./g, '\\.')}`));
  });
});

test('a corrupt frame in a recording is skipped: every later intact frame is replayed, and it is called damage, not a crash', async () => {
  await inTempDir(async (dir) => {
    const whole = readFileSync(FIXTURE);
    const full = await runTlstap(['replay', FIXTURE, '-f', 'jsonl']);
    const all = lineTypes(full.stdout.toString()).filter((t) => t === 'data').length;
    // The frames: walk their headers from the end of the JSON header.
    const frames: number[] = [];
    for (let at = 20 + whole.readUInt32LE(12); at < whole.length; at += 16 + whole.readUInt32LE(at + 4)) frames.push(at);
    assert.ok(frames.length >= 3, `${frames.length} frames`);
    // The largest frame between the first and the last: a batch of calls, whatever the recording's shape.
    const inner = frames.slice(1, -1);
    const size = (at: number) => whole.readUInt32LE(at + 4);
    const damagedAt = inner.reduce((best, at) => (size(at) > size(best) ? at : best), inner[0]!);
    const damaged = Buffer.from(whole);
    damaged[damagedAt + 40]! ^= 0xff;
    const path = join(dir, 'damaged.tlstap');
    writeFileSync(path, damaged);
    const before = join(dir, 'before.tlstap');
    writeFileSync(before, whole.subarray(0, damagedAt));
    const upToDamage = lineTypes((await runTlstap(['replay', before, '-f', 'jsonl'])).stdout.toString()).filter((t) => t === 'data').length;

    const run = await runTlstap(['replay', path, '-f', 'jsonl']);
    assert.equal(run.code, 1);
    const got = lineTypes(run.stdout.toString()).filter((t) => t === 'data').length;
    assert.ok(got > upToDamage && got < all, `${upToDamage} calls before the damage, ${got} replayed, ${all} in all`);
    assert.match(run.stderr, new RegExp(`damaged bytes skipped at byte ${damagedAt} \\(frame \\d+ at byte ${damagedAt} fails its CRC32 check\\)`));
    assert.match(run.stderr, /is damaged: 1 stretch/);
    assert.doesNotMatch(run.stderr, /cut short by a crash/);
  });
});

test('replay refuses an output that is its own input (by path, through a hard link) or another output, and the input stays whole', async () => {
  await inTempDir(async (dir) => {
    const input = join(dir, 'in.tlstap');
    copyFileSync(FIXTURE, input);
    const link = join(dir, 'link.tlstap');
    linkSync(input, link);
    for (const args of [['-o', input], ['-f', 'none', '-w', `${dir}/./in.tlstap`], ['-f', 'none', '--har', link]]) {
      const run = await runTlstap(['replay', input, ...args]);
      assert.equal(run.code, 1, args.join(' '));
      assert.match(run.stderr, /are the same file; give each its own path/, args.join(' '));
      assert.ok(readFileSync(input).equals(readFileSync(FIXTURE)), `${args.join(' ')}: the recording is intact`);
    }
    const out = join(dir, 'out');
    const run = await runTlstap(['replay', input, '-o', out, '-w', out]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /-o .*out and -w .*out are the same file/);
  });
});

test('-o, -w and --har never write into an existing file: its owner, hard links and fds opened on it beforehand see no capture', async () => {
  await inTempDir(async (dir) => {
    const paths = { o: join(dir, 'out.jsonl'), w: join(dir, 'out.pcapng'), har: join(dir, 'out.har') };
    const root = process.getuid?.() === 0;
    const fds: number[] = [];
    for (const path of Object.values(paths)) {
      writeFileSync(path, 'old\n', { mode: 0o644 });
      // Another user's file (when we may hand it over), reachable through a second name.
      if (root) chownSync(path, 1000, 1000);
      linkSync(path, `${path}.link`);
      fds.push(openSync(path, 'r'));
    }
    try {
      const run = await runTlstap(['replay', FIXTURE, '-f', 'jsonl', '-o', paths.o, '-w', paths.w, '--har', paths.har]);
      assert.equal(run.code, 0, run.stderr);
      for (const [i, path] of Object.values(paths).entries()) {
        const st = statSync(path);
        assert.equal(st.mode & 0o777, 0o600, path);
        assert.equal(st.nlink, 1, `${path} is a new file of its own`);
        if (root) assert.equal(st.uid, 0, `${path} belongs to the user who ran tlstap`);
        assert.ok(st.size > 1000, `${path} holds the output`);
        assert.equal(readFileSync(`${path}.link`, 'utf8'), 'old\n', `${path}: the other name keeps the old bytes`);
        assert.equal(readFileSync(fds[i]!, 'utf8'), 'old\n', `${path}: an fd opened before sees no capture`);
      }
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  });
});

test('output failure policy: -w on a full disk fails alone; -o gets everything, exit 1, the summary says what -w missed, no "open it" hint', async () => {
  await inTempDir(async (dir) => {
    const out = join(dir, 'out.jsonl');
    const run = await runTlstap(['replay', FIXTURE, '-f', 'jsonl', '-o', out, '-w', '/dev/full']);
    assert.equal(run.code, 1, run.stderr);
    const clean = await runTlstap(['replay', FIXTURE, '-f', 'jsonl']);
    const want = lineTypes(clean.stdout.toString());
    assert.deepEqual(lineTypes(readFileSync(out, 'utf8')), want, '-o got every line, the summary last');
    assert.match(run.stderr, /^tlstap: pcapng output to \/dev\/full stopped: no space left on device \(ENOSPC\) after \d+ bytes \(\d+ packets\); the other outputs go on$/m);
    assert.match(run.stderr, /^warning: pcapng output to \/dev\/full stopped: .*; \d+ calls \(.*\) captured after that never reached it$/m);
    assert.doesNotMatch(run.stderr, /open it with/);
    assert.match(run.stderr, /^tlstap: replay incomplete: pcapng output to \/dev\/full stopped/m);

    // The other way round: -o fails, -w is written whole (the same bytes as a clean replay's).
    const pcap = join(dir, 'out.pcapng');
    const cleanPcap = join(dir, 'clean.pcapng');
    await runTlstap(['replay', FIXTURE, '-f', 'none', '-w', cleanPcap]);
    const other = await runTlstap(['replay', FIXTURE, '-f', 'text', '-o', '/dev/full', '-w', pcap]);
    assert.equal(other.code, 1, other.stderr);
    assert.ok(readFileSync(pcap).equals(readFileSync(cleanPcap)), '-w is whole');
    assert.match(other.stderr, /open it with:/);
  });
});

test('a --har write error is reported at once, with its path, before the summary', async () => {
  await inTempDir(async (dir) => {
    const run = await runTlstap(['replay', FIXTURE, '-f', 'jsonl', '-o', join(dir, 'out.jsonl'), '--har', '/dev/full']);
    assert.equal(run.code, 1);
    const failure = run.stderr.indexOf('tlstap: /dev/full stopped: no space left on device (ENOSPC); the other outputs go on');
    const summary = run.stderr.search(/^tlstap: \d+ calls/m);
    assert.ok(failure >= 0 && summary > failure, run.stderr);
    assert.doesNotMatch(run.stderr, /^tlstap: ENOSPC/m);
    assert.doesNotMatch(run.stderr, /HAR with \d+ entries written/);
  });
});
