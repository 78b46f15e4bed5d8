// Pure helpers of `tlstap doctor`: capability masks and kernel versions, from the texts the
// kernel gives us. No file access here, so tests feed them samples.

/** Capability bit numbers (linux/capability.h) that tlstap cares about. */
export const CAP = {
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
  PERFMON: 38,
  BPF: 39,
} as const;

/** The effective capability mask (`CapEff:` hex) from /proc/PID/status text, or undefined. */
export function parseCapEff(statusText: string): bigint | undefined {
  const match = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  return match ? BigInt(`0x${match[1]}`) : undefined;
}

/** Whether capability bit `cap` is set in `mask`. */
export function hasCap(mask: bigint, cap: number): boolean {
  return ((mask >> BigInt(cap)) & 1n) === 1n;
}

/** A kernel version as numbers. */
export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
}

/** The leading `major.minor[.patch]` of a kernel release (`6.8.0-45-generic`), or undefined. */
export function parseKernelVersion(release: string): KernelVersion | undefined {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release.trim());
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3] ?? 0) };
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`. */
export function compareKernelVersions(a: KernelVersion, b: KernelVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** Whether `version` is at least `major.minor`. */
export function kernelAtLeast(version: KernelVersion, major: number, minor: number): boolean {
  return compareKernelVersions(version, { major, minor, patch: 0 }) >= 0;
}

/** Whether /proc/kallsyms text lists the kernel symbol `name`. */
export function hasSymbol(kallsyms: string, name: string): boolean {
  return kallsyms.includes(` ${name}\n`) || kallsyms.includes(` ${name}\t`);
}

/** `major.minor.patch`. */
export function formatKernelVersion(v: KernelVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/** Who the process is, as far as loading BPF and attaching uprobes goes. */
export interface Privileges {
  root: boolean;
  /** Effective capabilities, when /proc/self/status could be read. */
  capEff: bigint | undefined;
  /** The kernel, when known: before 5.8 there is no CAP_BPF and CAP_SYS_ADMIN is required. */
  kernel: KernelVersion | undefined;
}

/** The capabilities tlstap lacks to load and attach its probes ([] when it has enough). */
export function missingCapabilities(p: Privileges): string[] {
  if (p.capEff === undefined) return p.root ? [] : ['CAP_BPF', 'CAP_PERFMON'];
  if (hasCap(p.capEff, CAP.SYS_ADMIN)) return [];
  if (p.kernel !== undefined && !kernelAtLeast(p.kernel, 5, 8)) return ['CAP_SYS_ADMIN'];
  const missing: string[] = [];
  if (!hasCap(p.capEff, CAP.BPF)) missing.push('CAP_BPF');
  if (!hasCap(p.capEff, CAP.PERFMON)) missing.push('CAP_PERFMON');
  return missing;
}

/** What is missing, said for a user: a finding and a fix. */
export interface PrivilegeProblem {
  missing: string[];
  finding: string;
  fix: string;
}

/** The privilege problem, or undefined when the process may load and attach the probes. */
export function privilegeProblem(p: Privileges): PrivilegeProblem | undefined {
  const missing = missingCapabilities(p);
  if (missing.length === 0) return undefined;
  const what = missing.join(' and ');
  if (p.root) {
    // Root without the capabilities: a container or a bounding set took them away.
    return {
      missing,
      finding: `tlstap needs ${what}, which this root process does not have (a container?)`,
      fix: `run it with --privileged or ${missing.map((c) => `--cap-add ${c.slice(4)}`).join(' ')}`,
    };
  }
  const alternative = missing.includes('CAP_SYS_ADMIN') ? '' : ' (or root)';
  return { missing, finding: `tlstap needs ${what}${alternative}`, fix: 'run it with sudo' };
}

/** One line naming what is missing and what to do, or undefined when the privileges suffice. */
export function privilegeMessage(p: Privileges): string | undefined {
  const problem = privilegeProblem(p);
  return problem && `${problem.finding}: ${problem.fix}`;
}
