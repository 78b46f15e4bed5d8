import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import {
  CAP,
  compareKernelVersions,
  formatDoctor,
  hasCap,
  kernelAtLeast,
  missingCapabilities,
  missingCapabilityMessage,
  parseCapEff,
  parseKernelVersion,
  runDoctor,
} from '../src/doctor/index.js';
import type { DoctorCheck, DoctorEnv, FileInfo } from '../src/doctor/index.js';
import { requireRoot } from './support/privileges.js';

/** A /proc/self/status with the given effective capability mask. */
function status(capEff: string): string {
  return `Name:\tnode\nUmask:\t0022\nState:\tR (running)\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n`;
}

const FULL = '000001ffffffffff';
/** Root in a sandbox that dropped CAP_SYS_RESOURCE (bit 24), as on this project's CI machine. */
const SANDBOX = '000001fffeffffff';
const NONE = '0000000000000000';
const BPF_PERFMON = '000000c000000000';
const SYS_ADMIN = '0000000000200000';

test('parseCapEff reads the effective mask; hasCap tests bits', () => {
  assert.equal(parseCapEff(status(FULL)), 0x1ffffffffffn);
  assert.equal(parseCapEff(status(NONE)), 0n);
  assert.equal(parseCapEff('Name:\tx\n'), undefined);
  const sandbox = parseCapEff(status(SANDBOX))!;
  assert.ok(hasCap(sandbox, CAP.BPF) && hasCap(sandbox, CAP.PERFMON) && hasCap(sandbox, CAP.SYS_ADMIN));
  assert.ok(!hasCap(sandbox, 24));
  const bpfOnly = parseCapEff(status(BPF_PERFMON))!;
  assert.ok(hasCap(bpfOnly, 39) && hasCap(bpfOnly, 38) && !hasCap(bpfOnly, 21));
  assert.ok(hasCap(parseCapEff(status(SYS_ADMIN))!, 21));
});

test('missingCapabilities: CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON, and only CAP_SYS_ADMIN before 5.8', () => {
  const k = (r: string) => parseKernelVersion(r);
  const p = (mask: string, root = false, kernel = '6.8.0') => ({ root, capEff: parseCapEff(status(mask)), kernel: k(kernel) });
  assert.deepEqual(missingCapabilities(p(FULL, true)), []);
  assert.deepEqual(missingCapabilities(p(SANDBOX, true)), []);
  assert.deepEqual(missingCapabilities(p(BPF_PERFMON)), []);
  assert.deepEqual(missingCapabilities(p(SYS_ADMIN)), []);
  assert.deepEqual(missingCapabilities(p(NONE)), ['CAP_BPF', 'CAP_PERFMON']);
  assert.deepEqual(missingCapabilities(p('0000008000000000')), ['CAP_PERFMON']); // bit 39 only
  assert.deepEqual(missingCapabilities(p('0000004000000000')), ['CAP_BPF']); // bit 38 only
  assert.deepEqual(missingCapabilities(p(NONE, false, '5.4.0-150-generic')), ['CAP_SYS_ADMIN']);
  // Unknown capabilities: trust root, refuse anyone else.
  assert.deepEqual(missingCapabilities({ root: true, capEff: undefined, kernel: undefined }), []);
  assert.deepEqual(missingCapabilities({ root: false, capEff: undefined, kernel: undefined }), ['CAP_BPF', 'CAP_PERFMON']);
});

test('parseKernelVersion and comparisons', () => {
  assert.deepEqual(parseKernelVersion('5.15.0-105-generic'), { major: 5, minor: 15, patch: 0 });
  assert.deepEqual(parseKernelVersion('6.18.44-fc-v669'), { major: 6, minor: 18, patch: 44 });
  assert.deepEqual(parseKernelVersion('4.18.0-513.el8.x86_64'), { major: 4, minor: 18, patch: 0 });
  assert.deepEqual(parseKernelVersion('6.1'), { major: 6, minor: 1, patch: 0 });
  assert.equal(parseKernelVersion('linux'), undefined);
  const v = (r: string) => parseKernelVersion(r)!;
  assert.ok(compareKernelVersions(v('5.10.0'), v('5.8.0')) > 0); // numeric, not string, order
  assert.ok(compareKernelVersions(v('5.8.0'), v('5.10.0')) < 0);
  assert.equal(compareKernelVersions(v('5.15.3'), v('5.15.3')), 0);
  assert.ok(compareKernelVersions(v('5.15.3'), v('5.15.12')) < 0);
  assert.ok(compareKernelVersions(v('6.0.0'), v('5.19.17')) > 0);
  assert.ok(kernelAtLeast(v('5.8.0'), 5, 8));
  assert.ok(!kernelAtLeast(v('5.7.19'), 5, 8));
  assert.ok(kernelAtLeast(v('5.15.0'), 5, 15));
  assert.ok(!kernelAtLeast(v('5.14.21'), 5, 15));
  assert.ok(kernelAtLeast(v('6.1.0'), 5, 15));
});

const ROOT = '/opt/tlstap';
const NEW_KALLSYMS = 'ffff T bpf_prog_put\nffff T bpf_ringbuf_output\nffff T bpf_get_attach_cookie_trace\nffff T bpf_uprobe_multi_link_attach\n';

/** A machine where everything is in place; tests take parts away. */
function fakeEnv(files: Record<string, string | FileInfo> = {}, over: Partial<DoctorEnv> = {}): Partial<DoctorEnv> {
  const all: Record<string, string | FileInfo> = {
    '/proc/self/status': status(FULL),
    '/proc/kallsyms': NEW_KALLSYMS,
    '/sys/kernel/btf/vmlinux': { size: 5 << 20, mtimeMs: 1, isDirectory: false },
    '/sys/bus/event_source/devices/uprobe/type': '8\n',
    '/proc/self/mounts': 'sysfs /sys sysfs rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n',
    '/sys/kernel/tracing/events/syscalls/sys_enter_read/id': '700\n',
    '/sys/kernel/tracing/events/raw_syscalls/sys_enter/id': '400\n',
    '/proc/sys/kernel/unprivileged_bpf_disabled': '2\n',
    '/proc/sys/kernel/perf_event_paranoid': '2\n',
    [`${ROOT}/build/bpf/${process.arch}/tlstap.bpf.o`]: { size: 28000, mtimeMs: 2000, isDirectory: false },
    [`${ROOT}/bpf/tlstap.bpf.c`]: { size: 5000, mtimeMs: 1000, isDirectory: false },
    [`${ROOT}/bpf/tlstap.h`]: { size: 3000, mtimeMs: 1000, isDirectory: false },
    [`${ROOT}/native/build/Release/tlstap_native.node`]: { size: 90000, mtimeMs: 2000, isDirectory: false },
    [`${ROOT}/native/src/addon.cc`]: { size: 1500, mtimeMs: 1000, isDirectory: false },
    [`${ROOT}/tsconfig.json`]: { size: 500, mtimeMs: 1000, isDirectory: false },
    ...files,
  };
  return {
    readFile: (path) => {
      const f = all[path];
      return typeof f === 'string' ? f : undefined;
    },
    stat: (path) => {
      const f = all[path];
      if (f === undefined || f === '') return undefined;
      return typeof f === 'string' ? { size: f.length, mtimeMs: 1, isDirectory: false } : f;
    },
    listDir: (dir) =>
      Object.keys(all)
        .filter((p) => p.startsWith(`${dir}/`) && !p.slice(dir.length + 1).includes('/'))
        .map((p) => p.slice(dir.length + 1)),
    kernelRelease: '6.8.0-45-generic',
    uid: 0,
    packageRoot: ROOT,
    loadAddon: () => undefined,
    libbpfVersion: () => 'v1.1',
    ...over,
  };
}

async function checks(env: Partial<DoctorEnv>): Promise<Record<string, DoctorCheck>> {
  return Object.fromEntries((await runDoctor(env)).map((c) => [c.name, c]));
}

test('runDoctor: a machine with everything in place passes every check', async () => {
  const list = await runDoctor(fakeEnv());
  assert.deepEqual(
    list.map((c) => c.name),
    ['privileges', 'ring buffer', 'attach cookies', 'uprobe_multi', 'BTF', 'uprobes', 'tracefs', 'syscall hooks', 'sysctl', 'BPF object', 'native addon', 'libbpf', 'maps'],
  );
  for (const c of list) assert.equal(c.status, 'ok', `${c.name}: ${c.finding}`);
  const byName = Object.fromEntries(list.map((c) => [c.name, c]));
  assert.match(byName.privileges!.finding, /root, with CAP_BPF and CAP_PERFMON/);
  assert.match(byName.sysctl!.finding, /unprivileged_bpf_disabled=2, kernel\.perf_event_paranoid=2/);
  assert.equal(byName['BPF object']!.finding, `${ROOT}/build/bpf/${process.arch}/tlstap.bpf.o`);
  assert.equal(byName.libbpf!.finding, 'v1.1, in the native addon');
  // The connection map's size, and the option that changes it.
  assert.match(byName.maps!.finding, /connection map: 65536 connections at once \(--connections N/);
});

test('runDoctor: an unprivileged user fails with the sudo fix', async () => {
  const c = await checks(fakeEnv({ '/proc/self/status': status(NONE) }, { uid: 1000 }));
  assert.equal(c.privileges!.status, 'fail');
  assert.equal(c.privileges!.finding, 'tlstap needs CAP_BPF and CAP_PERFMON (or root)');
  assert.equal(c.privileges!.fix, 'run it with sudo');
  const user = await checks(fakeEnv({ '/proc/self/status': status(BPF_PERFMON) }, { uid: 1000 }));
  assert.equal(user.privileges!.status, 'ok');
  assert.match(user.privileges!.finding, /uid 1000, with CAP_BPF and CAP_PERFMON/);
});

test('missingCapabilityMessage: one line for the CLI, undefined when privileged', () => {
  assert.equal(
    missingCapabilityMessage(fakeEnv({ '/proc/self/status': status(NONE) }, { uid: 1000 })),
    'tlstap needs CAP_BPF and CAP_PERFMON (or root): run it with sudo',
  );
  assert.equal(missingCapabilityMessage(fakeEnv()), undefined);
  assert.equal(
    missingCapabilityMessage(fakeEnv({ '/proc/self/status': status('0000000000000000') }, { uid: 0 })),
    'tlstap needs CAP_BPF and CAP_PERFMON, which this root process does not have (a container?): ' +
      'run it with --privileged or --cap-add BPF --cap-add PERFMON',
  );
  assert.equal(
    missingCapabilityMessage(fakeEnv({ '/proc/self/status': status(NONE) }, { uid: 1000, kernelRelease: '5.4.0' })),
    'tlstap needs CAP_SYS_ADMIN: run it with sudo',
  );
});

test('runDoctor: kernel features, by symbol when /proc/kallsyms tells, else by version; each says what is used without it', async () => {
  const old = await checks(fakeEnv({ '/proc/kallsyms': 'ffff T bpf_prog_put\n' }, { kernelRelease: '5.4.0-150-generic' }));
  assert.equal(old['ring buffer']!.status, 'fail');
  assert.match(old['ring buffer']!.finding, /lacks the BPF ring buffer \(5\.8; \/proc\/kallsyms lacks bpf_ringbuf_output\)/);
  assert.equal(old['ring buffer']!.fix, 'upgrade to Linux 5.8 or newer');
  const android = await checks(
    fakeEnv({ '/proc/kallsyms': 'ffff T bpf_prog_put\nffff T bpf_ringbuf_output\n' }, { kernelRelease: '5.10.110-android12' }),
  );
  assert.equal(android['ring buffer']!.status, 'ok');
  assert.equal(android['attach cookies']!.status, 'warn');
  assert.match(android['attach cookies']!.finding, /lacks BPF attach cookies .*one entry program per probed function/);
  assert.equal(android['uprobe_multi']!.status, 'warn');
  assert.match(android['uprobe_multi']!.finding, /one perf-event probe per function/);
  // A backport: an old version number with the features in place.
  const backport = await checks(fakeEnv({}, { kernelRelease: '4.18.0-513.el8.x86_64' }));
  assert.equal(backport['attach cookies']!.status, 'ok');
  // No kallsyms: the version decides.
  const byVersion = async (r: string) => await checks(fakeEnv({ '/proc/kallsyms': '' }, { kernelRelease: r }));
  assert.equal((await byVersion('5.4.0'))['ring buffer']!.status, 'fail');
  assert.equal((await byVersion('5.10.0'))['ring buffer']!.status, 'ok');
  assert.equal((await byVersion('5.10.0'))['attach cookies']!.status, 'warn');
  assert.equal((await byVersion('6.1.0'))['attach cookies']!.status, 'ok');
  assert.equal((await byVersion('6.1.0'))['uprobe_multi']!.status, 'warn');
  assert.equal((await byVersion('6.18.44-fc'))['uprobe_multi']!.status, 'ok');
  assert.equal((await byVersion('weird'))['ring buffer']!.status, 'warn');
});

test('runDoctor: BTF, uprobe PMU, tracefs and syscall tracepoint problems say what the user still gets and the fix', async () => {
  const c = await checks(
    fakeEnv({ '/sys/kernel/btf/vmlinux': '', '/proc/self/mounts': 'sysfs /sys sysfs rw 0 0\n' }),
  );
  assert.equal(c.BTF!.status, 'warn');
  assert.match(c.BTF!.finding, /every byte is captured, but socket addresses are unknown/);
  assert.match(c.BTF!.fix!, /--btf FILE.*CONFIG_DEBUG_INFO_BTF/);
  assert.equal(c.tracefs!.status, 'warn');
  assert.equal(c.tracefs!.fix, 'sudo mount -t tracefs nodev /sys/kernel/tracing');
  assert.equal(c['syscall hooks']!.status, 'warn');
  assert.equal(c.uprobes!.status, 'ok');

  const fallback = await checks(
    fakeEnv({ '/sys/kernel/btf/vmlinux': '', '/boot/vmlinux-6.8.0-45-generic': { size: 9 << 20, mtimeMs: 1, isDirectory: false } }),
  );
  assert.equal(fallback.BTF!.status, 'ok');
  assert.match(fallback.BTF!.finding, /libbpf reads the kernel's BTF from \/boot\/vmlinux-6\.8\.0-45-generic/);

  const gki = await checks(fakeEnv({ '/sys/kernel/tracing/events/syscalls/sys_enter_read/id': '' }));
  assert.equal(gki['syscall hooks']!.status, 'warn');
  assert.match(gki['syscall hooks']!.finding, /raw_syscalls:sys_enter finds the fds instead/);
  const neither = await checks(
    fakeEnv({ '/sys/kernel/tracing/events/syscalls/sys_enter_read/id': '', '/sys/kernel/tracing/events/raw_syscalls/sys_enter/id': '' }),
  );
  assert.equal(neither['syscall hooks']!.status, 'fail');

  const noPmu = await checks(fakeEnv({ '/sys/bus/event_source/devices/uprobe/type': '', '/proc/self/mounts': '' }));
  assert.equal(noPmu.uprobes!.status, 'fail');
  const legacy = await checks(
    fakeEnv({
      '/sys/bus/event_source/devices/uprobe/type': '',
      '/sys/kernel/tracing/uprobe_events': { size: 0, mtimeMs: 1, isDirectory: false },
    }),
  );
  assert.equal(legacy.uprobes!.status, 'warn');
  assert.match(legacy.uprobes!.finding, /falls back to \/sys\/kernel\/tracing\/uprobe_events/);

  const debugfs = await checks(fakeEnv({ '/proc/self/mounts': 'tracefs /sys/kernel/debug/tracing tracefs rw 0 0\n' }));
  assert.equal(debugfs.tracefs!.status, 'ok');
  assert.match(debugfs.tracefs!.finding, /\/sys\/kernel\/debug\/tracing/);
});

test('runDoctor: a missing or stale BPF object and addon say how to build them', async () => {
  const missing = await checks(
    fakeEnv({ [`${ROOT}/build/bpf/${process.arch}/tlstap.bpf.o`]: '', [`${ROOT}/native/build/Release/tlstap_native.node`]: '' }),
  );
  assert.equal(missing['BPF object']!.status, 'fail');
  assert.match(missing['BPF object']!.fix!, /npm run build:bpf/);
  assert.equal(missing['native addon']!.status, 'fail');
  assert.match(missing['native addon']!.finding, /not built \(tried .*Release\/tlstap_native\.node/);
  assert.match(missing['native addon']!.fix!, /npm run build:native/);

  const stale = await checks(
    fakeEnv({
      [`${ROOT}/bpf/tlstap.h`]: { size: 3000, mtimeMs: 3000, isDirectory: false },
    }),
  );
  assert.equal(stale['BPF object']!.status, 'warn');
  assert.match(stale['BPF object']!.finding, /older than .*bpf\/tlstap\.h/);
  assert.equal(stale['native addon']!.status, 'warn');

  // An installed package (no tsconfig.json): npm dates each file by when it was unpacked; no warning.
  const installed = await checks(
    fakeEnv({
      [`${ROOT}/tsconfig.json`]: '',
      [`${ROOT}/bpf/tlstap.h`]: { size: 3000, mtimeMs: 3000, isDirectory: false },
    }),
  );
  assert.equal(installed['BPF object']!.status, 'ok');
  assert.equal(installed['native addon']!.status, 'ok');

  const broken = await checks(fakeEnv({}, { loadAddon: () => 'libbpf.so.1: cannot open shared object file' }));
  assert.equal(broken['native addon']!.status, 'fail');
  assert.match(broken['native addon']!.finding, /does not load: libbpf\.so\.1/);
});

test('formatDoctor: aligned lines, a fix under each problem, colour only when asked', () => {
  const list: DoctorCheck[] = [
    { name: 'privileges', status: 'ok', finding: 'root' },
    { name: 'tracefs', status: 'warn', finding: 'not mounted', fix: 'sudo mount -t tracefs nodev /sys/kernel/tracing' },
    { name: 'BPF object', status: 'fail', finding: 'missing', fix: 'npm run build:bpf' },
  ];
  const plain = formatDoctor(list, false);
  assert.equal(
    plain,
    [
      'ok    privileges  root',
      'warn  tracefs     not mounted',
      '                  fix: sudo mount -t tracefs nodev /sys/kernel/tracing',
      'FAIL  BPF object  missing',
      '                  fix: npm run build:bpf',
      'tlstap cannot run here: 1 check failed',
    ].join('\n'),
  );
  const colored = formatDoctor(list, true);
  assert.match(colored, /\x1b\[31mFAIL\x1b\[0m/);
  assert.equal(colored.replace(/\x1b\[\d+m/g, ''), plain);
  assert.equal(formatDoctor(list.slice(0, 2), false).split('\n').pop(), 'tlstap can run (1 warning)');
  assert.equal(formatDoctor(list.slice(0, 1), false).split('\n').pop(), 'tlstap can run');
});

test('runDoctor on this machine: as root, privileges pass, and BTF and the kernel do when present', async (t) => {
  if (!requireRoot(t)) return;
  const list = await runDoctor();
  const c = Object.fromEntries(list.map((x) => [x.name, x]));
  assert.equal(c.privileges!.status, 'ok', c.privileges!.finding);
  assert.equal(missingCapabilityMessage(), undefined);
  // A kernel with BTF must be reported as such; a skip must not hide a broken check.
  if (existsSync('/sys/kernel/btf/vmlinux')) assert.equal(c.BTF!.status, 'ok', c.BTF!.finding);
  else t.diagnostic('this kernel has no BTF');
  const version = parseKernelVersion(release());
  if (version && kernelAtLeast(version, 5, 15)) {
    for (const name of ['ring buffer', 'attach cookies']) assert.equal(c[name]!.status, 'ok', c[name]!.finding);
  }
  if (version && kernelAtLeast(version, 6, 6)) assert.equal(c.uprobe_multi!.status, 'ok', c.uprobe_multi!.finding);
  assert.match(c.libbpf!.finding, /^v\d+\.\d+/);
  assert.ok(formatDoctor(list, false).length > 0);
  t.diagnostic(`\n${formatDoctor(list, false)}`);
});
