// `tlstap doctor`: can this machine run tlstap, and if not, what to do about it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { join } from 'node:path';
import { EVENT_LAYOUT } from '../events/layout.js';
import { ADDON_FIX, addonCandidates, bpfObjectFile, firstLine } from '../native/binding.js';
import { kernelBtfSource, VMLINUX_BTF } from '../capture/btf.js';
import { packageRoot } from '../util/package-root.js';
import {
  CAP,
  formatKernelVersion,
  hasCap,
  hasSymbol,
  kernelAtLeast,
  parseCapEff,
  parseKernelVersion,
  privilegeMessage,
  privilegeProblem,
} from './probe.js';
import type { KernelVersion, Privileges } from './probe.js';

export {
  CAP,
  compareKernelVersions,
  hasCap,
  kernelAtLeast,
  missingCapabilities,
  parseCapEff,
  parseKernelVersion,
  privilegeMessage,
  privilegeProblem,
} from './probe.js';
export type { KernelVersion, PrivilegeProblem, Privileges } from './probe.js';

/** How a check came out: fine, works with a caveat, or tlstap cannot run. */
export type DoctorStatus = 'ok' | 'warn' | 'fail';

/** One finding of `tlstap doctor`. */
export interface DoctorCheck {
  /** Short name shown in the first column (`privileges`, `kernel`, ...). */
  name: string;
  status: DoctorStatus;
  /** What was found, one line. */
  finding: string;
  /** What to do about it, one line; absent when there is nothing to do. */
  fix?: string;
}

/** What a file looks like, as far as the checks go. */
export interface FileInfo {
  size: number;
  mtimeMs: number;
  isDirectory: boolean;
}

/** Everything the checks read from the system; tests replace parts of it. */
export interface DoctorEnv {
  /** A text file's contents, or undefined when it cannot be read. */
  readFile(path: string): string | undefined;
  /** A file's size and times, or undefined when it does not exist. */
  stat(path: string): FileInfo | undefined;
  /** The names in a directory ([] when unreadable). */
  listDir(path: string): string[];
  /** `uname -r`. */
  kernelRelease: string;
  uid: number;
  /** Where package.json, build/ and native/ are. */
  packageRoot: string;
  /** Loads a native addon; the error message when that fails. */
  loadAddon(path: string): string | undefined;
  /** The version of the libbpf a native addon uses (`v1.1`), or undefined. */
  libbpfVersion(path: string): string | undefined;
}

/** The real system's DoctorEnv. */
export function systemEnv(): DoctorEnv {
  const require = createRequire(import.meta.url);
  return {
    readFile(path) {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
    },
    stat(path) {
      try {
        const s = statSync(path);
        return { size: s.size, mtimeMs: s.mtimeMs, isDirectory: s.isDirectory() };
      } catch {
        return undefined;
      }
    },
    listDir(path) {
      try {
        return readdirSync(path);
      } catch {
        return [];
      }
    },
    kernelRelease: release(),
    uid: process.getuid?.() ?? -1,
    packageRoot: packageRoot(),
    loadAddon(path) {
      try {
        require(path);
        return undefined;
      } catch (error) {
        return firstLine(error);
      }
    },
    libbpfVersion(path) {
      try {
        return (require(path) as { libbpfVersion?: () => string }).libbpfVersion?.();
      } catch {
        return undefined;
      }
    },
  };
}

const PROC_STATUS = '/proc/self/status';
const UPROBE_PMU_TYPE = '/sys/bus/event_source/devices/uprobe/type';
const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';

function privileges(env: DoctorEnv): Privileges {
  const status = env.readFile(PROC_STATUS);
  return {
    root: env.uid === 0,
    capEff: status === undefined ? undefined : parseCapEff(status),
    kernel: parseKernelVersion(env.kernelRelease),
  };
}

/** One line naming the missing capabilities and the fix, or undefined when tlstap may load probes. */
export function missingCapabilityMessage(overrides: Partial<DoctorEnv> = {}): string | undefined {
  return privilegeMessage(privileges({ ...systemEnv(), ...overrides }));
}

function checkPrivileges(env: DoctorEnv): DoctorCheck {
  const p = privileges(env);
  const problem = privilegeProblem(p);
  if (problem !== undefined) return { name: 'privileges', status: 'fail', finding: problem.finding, fix: problem.fix };
  const who = p.root ? 'root' : `uid ${env.uid}`;
  if (p.capEff === undefined) {
    return { name: 'privileges', status: 'ok', finding: `${who} (${PROC_STATUS} unreadable: capabilities unknown)` };
  }
  const caps =
    hasCap(p.capEff, CAP.BPF) && hasCap(p.capEff, CAP.PERFMON) ? 'CAP_BPF and CAP_PERFMON' : 'CAP_SYS_ADMIN';
  return { name: 'privileges', status: 'ok', finding: `${who}, with ${caps} effective` };
}

/** A kernel feature tlstap uses, how to find it, and what a user gets without it. */
interface KernelFeature {
  name: string;
  what: string;
  /** A kernel symbol that shows it is there, whatever the version says (distributions backport). */
  symbol: string;
  since: [number, number];
  /** Without it: undefined when tlstap cannot run, else what the user gets instead. */
  without?: string;
}

const KERNEL_FEATURES: readonly KernelFeature[] = [
  { name: 'ring buffer', what: 'the BPF ring buffer', symbol: 'bpf_ringbuf_output', since: [5, 8] },
  {
    name: 'attach cookies',
    what: 'BPF attach cookies',
    symbol: 'bpf_get_attach_cookie_trace',
    since: [5, 15],
    without: 'one entry program per probed function, the file told apart by the page offset of its address',
  },
  {
    name: 'uprobe_multi',
    what: 'uprobe_multi links',
    symbol: 'bpf_uprobe_multi_link_attach',
    since: [6, 6],
    without: 'one perf-event probe per function: attaching and detaching take longer',
  },
];


/** Whether the kernel has a feature: by symbol when /proc/kallsyms tells, else by version (undefined: cannot tell). */
function kernelHas(env: DoctorEnv, feature: KernelFeature): { has: boolean | undefined; how: string } {
  const kallsyms = env.readFile('/proc/kallsyms');
  // A kallsyms without a core BPF symbol is no evidence either way (no CONFIG_KALLSYMS, or hidden).
  if (kallsyms !== undefined && hasSymbol(kallsyms, 'bpf_prog_put')) {
    return { has: hasSymbol(kallsyms, feature.symbol), how: `/proc/kallsyms ${hasSymbol(kallsyms, feature.symbol) ? 'lists' : 'lacks'} ${feature.symbol}` };
  }
  const version = parseKernelVersion(env.kernelRelease);
  if (version === undefined) return { has: undefined, how: `cannot read a version in ${env.kernelRelease}` };
  const [major, minor] = feature.since;
  return { has: kernelAtLeast(version, major, minor), how: `version ${formatKernelVersion(version)}` };
}

function checkKernelFeature(env: DoctorEnv, feature: KernelFeature): DoctorCheck {
  const { name, what, without } = feature;
  const since = `${feature.since[0]}.${feature.since[1]}`;
  const release = `Linux ${env.kernelRelease}`;
  const { has, how } = kernelHas(env, feature);
  if (has === true) return { name, status: 'ok', finding: `${release} has ${what} (${how})` };
  if (without !== undefined) {
    const finding = has === false ? `${release} lacks ${what} (${since}; ${how})` : `${what} (${since}) unknown: ${how}`;
    return { name, status: 'warn', finding: `${finding}; tlstap uses ${without}` };
  }
  if (has === undefined) {
    return { name, status: 'warn', finding: `${what} (${since}) unknown: ${how}`, fix: `tlstap needs Linux ${since} or newer` };
  }
  return { name, status: 'fail', finding: `${release} lacks ${what} (${since}; ${how})`, fix: `upgrade to Linux ${since} or newer` };
}

function checkBtf(env: DoctorEnv): DoctorCheck {
  const source = kernelBtfSource((path) => env.stat(path) !== undefined, env.kernelRelease);
  if (source === VMLINUX_BTF) {
    return { name: 'BTF', status: 'ok', finding: `kernel BTF at ${VMLINUX_BTF} (${Math.round(env.stat(source)!.size / 1024)} KiB)` };
  }
  if (source !== undefined) {
    return { name: 'BTF', status: 'ok', finding: `no ${VMLINUX_BTF}; libbpf reads the kernel's BTF from ${source}` };
  }
  return {
    name: 'BTF',
    status: 'warn',
    finding:
      `no kernel BTF (${VMLINUX_BTF} or libbpf's fallback paths such as /boot/vmlinux-${env.kernelRelease}): ` +
      'every byte is captured, but socket addresses are unknown (--port/--host match nothing, HAR and pcapng lack real addresses)',
    fix: 'pass --btf FILE (a vmlinux with BTF, or a .btf file for this kernel), or use a kernel built with CONFIG_DEBUG_INFO_BTF=y',
  };
}

function tracefsMount(env: DoctorEnv): string | undefined {
  const mounts = env.readFile('/proc/self/mounts') ?? '';
  let found: string | undefined;
  for (const line of mounts.split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type !== 'tracefs' || mountPoint === undefined) continue;
    if (mountPoint === TRACEFS) return TRACEFS;
    found ??= mountPoint;
  }
  return found;
}

function checkUprobes(env: DoctorEnv): DoctorCheck {
  const type = env.readFile(UPROBE_PMU_TYPE)?.trim();
  if (type !== undefined && /^\d+$/.test(type)) {
    return { name: 'uprobes', status: 'ok', finding: `uprobe PMU present (perf event type ${type})` };
  }
  const tracefs = tracefsMount(env);
  if (tracefs !== undefined && env.stat(join(tracefs, 'uprobe_events')) !== undefined) {
    return {
      name: 'uprobes',
      status: 'warn',
      finding: `no uprobe PMU (${UPROBE_PMU_TYPE}); libbpf falls back to ${tracefs}/uprobe_events`,
      fix: 'a kernel with CONFIG_UPROBE_EVENTS=y (4.17+) attaches faster and cleans up after a crash',
    };
  }
  return {
    name: 'uprobes',
    status: 'fail',
    finding: `no uprobe PMU (${UPROBE_PMU_TYPE}) and no tracefs uprobe_events: uprobes cannot be attached`,
    fix: 'use a kernel built with CONFIG_UPROBE_EVENTS=y',
  };
}

function checkTracefs(env: DoctorEnv): DoctorCheck {
  const mounted = tracefsMount(env);
  if (mounted !== undefined) return { name: 'tracefs', status: 'ok', finding: `mounted at ${mounted}` };
  // Reading under debugfs mounts tracefs automatically on many kernels.
  if (env.stat(join(DEBUGFS_TRACING, 'events')) !== undefined) {
    return { name: 'tracefs', status: 'ok', finding: `available under ${DEBUGFS_TRACING}` };
  }
  return {
    name: 'tracefs',
    status: 'warn',
    finding: `tracefs is not mounted at ${TRACEFS} (syscall tracepoints need it)`,
    fix: `sudo mount -t tracefs nodev ${TRACEFS}`,
  };
}

function checkSyscallTracepoints(env: DoctorEnv): DoctorCheck {
  const name = 'syscall hooks';
  const tracefs = tracefsMount(env) ?? (env.stat(join(DEBUGFS_TRACING, 'events')) !== undefined ? DEBUGFS_TRACING : undefined);
  if (tracefs === undefined) {
    return { name, status: 'warn', finding: 'unknown until tracefs is mounted (tlstap mounts it at start)' };
  }
  const has = (tracepoint: string): boolean => env.stat(join(tracefs, 'events', tracepoint, 'id')) !== undefined;
  if (has('syscalls/sys_enter_read')) {
    return { name, status: 'ok', finding: `per-syscall tracepoints in ${tracefs}/events/syscalls find each TLS call's fd` };
  }
  if (has('raw_syscalls/sys_enter')) {
    return {
      name,
      status: 'warn',
      finding:
        'no per-syscall tracepoints (a kernel without CONFIG_FTRACE_SYSCALLS, such as Android GKI): ' +
        'raw_syscalls:sys_enter finds the fds instead, at the cost of a hook run on every system call',
    };
  }
  return {
    name,
    status: 'fail',
    finding: `neither events/syscalls nor events/raw_syscalls in ${tracefs}: tlstap cannot find the fds of TLS calls`,
    fix: 'use a kernel built with CONFIG_FTRACE_SYSCALLS=y (or at least syscall tracepoints, CONFIG_HAVE_SYSCALL_TRACEPOINTS)',
  };
}

function checkSysctls(env: DoctorEnv): DoctorCheck {
  const read = (name: string): string => env.readFile(`/proc/sys/kernel/${name}`)?.trim() ?? '?';
  const bpf = read('unprivileged_bpf_disabled');
  const perf = read('perf_event_paranoid');
  const meaning =
    bpf === '0' ? 'unprivileged BPF allowed' : bpf === '?' ? 'unknown' : 'BPF for privileged users only';
  return {
    name: 'sysctl',
    status: 'ok',
    finding: `kernel.unprivileged_bpf_disabled=${bpf}, kernel.perf_event_paranoid=${perf} (${meaning}; tlstap runs privileged anyway)`,
  };
}

/** The newest modification time among existing `paths`, or 0. */
function newest(env: DoctorEnv, paths: string[]): { path: string; mtimeMs: number } {
  let best = { path: '', mtimeMs: 0 };
  for (const path of paths) {
    const info = env.stat(path);
    if (info !== undefined && info.mtimeMs > best.mtimeMs) best = { path, mtimeMs: info.mtimeMs };
  }
  return best;
}

/**
 * Whether the package root is a source tree (a clone, where builds happen), not an installed package:
 * npm gives an installed package's files the time they were unpacked, so their order means nothing.
 */
function isSourceTree(env: DoctorEnv): boolean {
  return env.stat(join(env.packageRoot, 'tsconfig.json')) !== undefined;
}

function checkBpfObject(env: DoctorEnv): DoctorCheck {
  const root = env.packageRoot;
  const object = bpfObjectFile('tlstap.bpf.o', root);
  const info = env.stat(object);
  const build = 'npm run build:bpf (needs clang)';
  if (info === undefined || info.size === 0) {
    return { name: 'BPF object', status: 'fail', finding: `${object} is missing`, fix: build };
  }
  const source = newest(env, [join(root, 'bpf', 'tlstap.bpf.c'), join(root, 'bpf', 'tlstap.h')]);
  if (isSourceTree(env) && source.mtimeMs > info.mtimeMs) {
    return { name: 'BPF object', status: 'warn', finding: `${object} is older than ${source.path}`, fix: build };
  }
  return { name: 'BPF object', status: 'ok', finding: object };
}

function checkAddon(env: DoctorEnv): DoctorCheck {
  const root = env.packageRoot;
  const candidates = addonCandidates(root);
  const present = candidates.filter((p) => env.stat(p) !== undefined);
  if (present.length === 0) {
    return { name: 'native addon', status: 'fail', finding: `not built (tried ${candidates.join(', ')})`, fix: ADDON_FIX };
  }
  // The loader takes the first candidate that loads.
  const problems: string[] = [];
  const path = present.find((p) => {
    const error = env.loadAddon(p);
    if (error !== undefined) problems.push(`${p} does not load: ${error}`);
    return error === undefined;
  });
  if (path === undefined) {
    return { name: 'native addon', status: 'fail', finding: problems.join('; '), fix: ADDON_FIX };
  }
  const build = 'npm run build:native';
  const srcDir = join(root, 'native', 'src');
  const sources = env.listDir(srcDir).map((f) => join(srcDir, f));
  const source = newest(env, [...sources, join(root, 'bpf', 'tlstap.h')]);
  if (isSourceTree(env) && source.mtimeMs > env.stat(path)!.mtimeMs) {
    return { name: 'native addon', status: 'warn', finding: `${path} is older than ${source.path}`, fix: build };
  }
  return { name: 'native addon', status: 'ok', finding: path };
}

function checkLibbpf(env: DoctorEnv): DoctorCheck {
  const path = addonCandidates(env.packageRoot).find((p) => env.stat(p) !== undefined);
  const version = path === undefined ? undefined : env.libbpfVersion(path);
  if (version === undefined) return { name: 'libbpf', status: 'warn', finding: 'version unknown (the native addon does not load)' };
  return { name: 'libbpf', status: 'ok', finding: `${version}, in the native addon` };
}

/** The kernel maps' sizes a capture starts with: how many connections and calls it tracks at once. */
function checkMaps(): DoctorCheck {
  const { MAX_CONNS, MAX_INFLIGHT } = EVENT_LAYOUT.constants;
  return {
    name: 'maps',
    status: 'ok',
    finding: `connection map: ${MAX_CONNS} connections at once (--connections N raises it; a connection evicted from it is counted as split), ${MAX_INFLIGHT} calls in flight`,
  };
}

/** Runs every check; `overrides` replaces parts of the system (for tests). */
export async function runDoctor(overrides: Partial<DoctorEnv> = {}): Promise<DoctorCheck[]> {
  const env: DoctorEnv = { ...systemEnv(), ...overrides };
  return [
    checkPrivileges(env),
    ...KERNEL_FEATURES.map((feature) => checkKernelFeature(env, feature)),
    checkBtf(env),
    checkUprobes(env),
    checkTracefs(env),
    checkSyscallTracepoints(env),
    checkSysctls(env),
    checkBpfObject(env),
    checkAddon(env),
    checkLibbpf(env),
    checkMaps(),
  ];
}

const STATUS_COLOR: Record<DoctorStatus, string> = { ok: '\x1b[32m', warn: '\x1b[33m', fail: '\x1b[31m' };
const STATUS_LABEL: Record<DoctorStatus, string> = { ok: 'ok', warn: 'warn', fail: 'FAIL' };

/** The checks as aligned lines (a fix line under each problem) and a closing count; no final newline. */
export function formatDoctor(checks: readonly DoctorCheck[], color: boolean): string {
  const width = Math.max(0, ...checks.map((c) => c.name.length));
  const lines: string[] = [];
  for (const check of checks) {
    const label = STATUS_LABEL[check.status].padEnd(4);
    const status = color ? `${STATUS_COLOR[check.status]}${label}\x1b[0m` : label;
    lines.push(`${status}  ${check.name.padEnd(width)}  ${check.finding}`);
    if (check.fix !== undefined) lines.push(`${' '.repeat(4 + 2 + width + 2)}fix: ${check.fix}`);
  }
  const count = (s: DoctorStatus): number => checks.filter((c) => c.status === s).length;
  const fails = count('fail');
  const warns = count('warn');
  lines.push(
    fails > 0
      ? `tlstap cannot run here: ${fails} ${fails === 1 ? 'check' : 'checks'} failed`
      : warns > 0
        ? `tlstap can run (${warns} ${warns === 1 ? 'warning' : 'warnings'})`
        : 'tlstap can run',
  );
  return lines.join('\n');
}
