// `tlstap doctor`: can this machine run tlstap, and if not, what to do about it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { join } from 'node:path';
import { EVENT_LAYOUT } from '../events/layout.js';
import { ADDON_FIX, addonCandidates, bpfObjectFile, firstLine } from '../native/binding.js';
import { packageRoot } from '../util/package-root.js';
import {
  CAP,
  formatKernelVersion,
  hasCap,
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
  };
}

const PROC_STATUS = '/proc/self/status';
const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';
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

/** Kernel symbols that show a feature is there, whatever the version says (distributions backport). */
const RINGBUF_SYMBOL = 'bpf_ringbuf_output';
const COOKIE_SYMBOL = 'bpf_get_attach_cookie_trace';

function hasSymbol(kallsyms: string, name: string): boolean {
  return kallsyms.includes(` ${name}\n`) || kallsyms.includes(` ${name}\t`);
}

function checkKernel(env: DoctorEnv): DoctorCheck {
  const version = parseKernelVersion(env.kernelRelease);
  const name = 'kernel';
  const upgrade = 'upgrade to Linux 5.15 or newer';
  const kallsyms = env.readFile('/proc/kallsyms');
  const release = `Linux ${env.kernelRelease}`;
  // A kallsyms without a core BPF symbol is no evidence either way (no CONFIG_KALLSYMS, or hidden).
  if (kallsyms !== undefined && hasSymbol(kallsyms, 'bpf_prog_put')) {
    const missing: string[] = [];
    if (!hasSymbol(kallsyms, RINGBUF_SYMBOL)) missing.push('the BPF ring buffer (5.8)');
    if (!hasSymbol(kallsyms, COOKIE_SYMBOL)) missing.push('BPF attach cookies (5.15)');
    if (missing.length === 0) {
      return { name, status: 'ok', finding: `${release}: BPF ring buffer and attach cookies present` };
    }
    // The symbols say no; a new enough version says yes: do not fail on a renamed symbol.
    if (version !== undefined && kernelAtLeast(version, 5, 15)) {
      return {
        name,
        status: 'warn',
        finding: `${release}: /proc/kallsyms does not list ${missing.join(' or ')} support`,
        fix: 'if loading the probes fails, check the kernel configuration (CONFIG_BPF_EVENTS, CONFIG_UPROBE_EVENTS)',
      };
    }
    return { name, status: 'fail', finding: `${release} lacks ${missing.join(' and ')}`, fix: upgrade };
  }
  return versionOnly(name, release, version, upgrade);
}

function versionOnly(
  name: string,
  release: string,
  version: KernelVersion | undefined,
  upgrade: string,
): DoctorCheck {
  if (version === undefined) {
    return { name, status: 'warn', finding: `cannot read a version in ${release}`, fix: upgrade };
  }
  if (!kernelAtLeast(version, 5, 8)) {
    return { name, status: 'fail', finding: `${release} has no BPF ring buffer (needs 5.8)`, fix: upgrade };
  }
  if (!kernelAtLeast(version, 5, 15)) {
    return {
      name,
      status: 'warn',
      finding: `${release} predates BPF attach cookies (5.15); the probes load only if they were backported`,
      fix: upgrade,
    };
  }
  return {
    name,
    status: 'ok',
    finding: `${release} (${formatKernelVersion(version)} >= 5.15: ring buffer and attach cookies)`,
  };
}

function checkBtf(env: DoctorEnv): DoctorCheck {
  const btf = env.stat(VMLINUX_BTF);
  if (btf !== undefined) {
    return { name: 'BTF', status: 'ok', finding: `kernel BTF at ${VMLINUX_BTF} (${Math.round(btf.size / 1024)} KiB)` };
  }
  return {
    name: 'BTF',
    status: 'fail',
    finding: `no kernel BTF at ${VMLINUX_BTF}: the BPF program reads the kernel's socket structs with CO-RE, which needs it`,
    fix: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the default in most distributions since 2020)',
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
    checkKernel(env),
    checkBtf(env),
    checkUprobes(env),
    checkTracefs(env),
    checkSysctls(env),
    checkBpfObject(env),
    checkAddon(env),
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
