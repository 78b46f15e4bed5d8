// What `tlstap --remote` says when the far side cannot be reached or prepared: each failure is one
// line naming the cause and a hint with the fix (real commands through /bin/sh, no agent faked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RemoteError, startRemoteAgent } from '../src/remote/index.js';
import { runTlstap } from './support/tlstap-process.js';

test('a command that is not there: what the shell said, and how the command must behave', async () => {
  const exit = await runTlstap(['--remote', 'tlstap-no-such-command -x', '--duration', '1']);
  assert.equal(exit.code, 1);
  assert.match(exit.stderr, /^tlstap: cannot run a shell command through --remote 'tlstap-no-such-command -x': .*not found/m);
  assert.match(exit.stderr, /hint: the command must run its last argument as a shell command there, e\.g\. --remote "ssh root@host"/);
});

test('a place the agent cannot be written to: the hint names --agent-path', async () => {
  const exit = await runTlstap(['--remote', 'sh -c', '--agent-path', '/proc/tlstap-agent/here', '--duration', '1']);
  assert.equal(exit.code, 1);
  assert.match(exit.stderr, /^tlstap: cannot put the agent at \/proc\/tlstap-agent\/here on the target/m);
  assert.match(exit.stderr, /hint: choose a writable place with --agent-path/);
});

test('no agent built for the machine: the build command', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'tlstap-noagent-'));
  try {
    await assert.rejects(
      startRemoteAgent({ command: 'sh -c', agentPath: join(empty, 'agent'), buildDir: empty }),
      (err: unknown) => err instanceof RemoteError && /^no tlstap-agent for x86_64: .* is missing$/.test(err.message) && /bash scripts\/build-agent\.sh/.test(err.hint),
    );
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('options that mean nothing without --remote, or cannot work with it, are refused with the fix', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-remote-opts-'));
  const place = join(dir, 'tlstap-agent');
  try {
    for (const [args, message, hint] of [
      [['--package', 'com.example.app'], /--package picks an app on an Android device reached with --remote/, /--remote 'adb shell su -c'/],
      [['--agent-path', '/data/local/tmp/a'], /--agent-path is the agent's place on a --remote machine/, /add --remote CMD/],
      [['--remote', 'sh -c', '--btf', '/sys/kernel/btf/vmlinux'], /--btf names a file on this machine/, /drop --btf/],
      [['--remote', 'sh -c', '--agent-path', place, '--package', 'com.example.app'], /--package picks an Android app, and .* is not Android/, /drop --package/],
    ] as const) {
      const exit = await runTlstap([...args, '--duration', '1']);
      assert.equal(exit.code, 1, exit.stderr);
      assert.match(exit.stderr, message);
      assert.match(exit.stderr, hint);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--plan-out without --remote, or with outputs or --duration that it would ignore, is refused with the fix', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-plan-opts-'));
  const plan = join(dir, 'x.plan');
  try {
    for (const [args, message, hint] of [
      [['--plan-out', plan], /--plan-out writes a plan for tlstap-agent on a machine reached with --remote/, /add --remote CMD/],
      [['--remote', 'sh -c', '--plan-out', plan, '-w', join(dir, 'x.pcapng'), '--har', join(dir, 'x.har')], /so -w, --har would do nothing/, /`tlstap replay REC`/],
      [['--remote', 'sh -c', '--plan-out', plan, '--duration', '5'], /so --duration would do nothing/, /give --duration to tlstap-agent/],
    ] as const) {
      const exit = await runTlstap(args);
      assert.equal(exit.code, 1, exit.stderr);
      assert.match(exit.stderr, message);
      assert.match(exit.stderr, hint);
    }
    assert.throws(() => statSync(plan), /ENOENT/, 'no plan is written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
