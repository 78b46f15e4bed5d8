// What tlstap's BPF programs cost in the kernel, as the kernel itself measures it: with
// kernel.bpf_stats_enabled set, every program run adds its time to the program's run_time_ns.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';

const SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
/**
 * The programs of bpf/tlstap.bpf.c, in the order a call meets them. `probe_enter_N` sums the
 * per-function entry programs (kernels without attach cookies); `raw_syscall` replaces
 * syscall_fd_io and syscall_close where per-syscall tracepoints are missing.
 */
export const PROGRAMS = [
  'probe_enter',
  'probe_enter_N',
  'syscall_fd_io',
  'raw_syscall',
  'probe_return',
  'syscall_close',
  'process_exit',
] as const;
export type ProgramName = (typeof PROGRAMS)[number];

/** Runs and total nanoseconds of one program (summed over every loaded program of that name). */
export interface ProgramCost {
  runs: number;
  ns: number;
}

/** Turns bpf_stats on; returns what puts the setting back. Stats cost every run two clock reads. */
export function enableBpfStats(): () => void {
  const before = readFileSync(SYSCTL, 'utf8').trim();
  writeFileSync(SYSCTL, '1');
  return () => writeFileSync(SYSCTL, before);
}

/** The row a loaded program's name counts in, if it is one of tlstap's. */
function programOf(name: string | undefined): ProgramName | undefined {
  if (name === undefined) return undefined;
  if (/^probe_enter_\d+$/.test(name)) return 'probe_enter_N';
  return (PROGRAMS as readonly string[]).includes(name) && name !== 'probe_enter_N' ? (name as ProgramName) : undefined;
}

interface LoadedProgram {
  id: number;
  name?: string;
  run_cnt?: number;
  run_time_ns?: number;
}

/** Ids of the BPF programs process `pid` holds a file descriptor of (/proc/PID/fdinfo: prog_id). */
function programIdsOf(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const id = /^prog_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
      if (id) ids.add(Number(id));
    } catch {
      // Closed while listed.
    }
  }
  return ids;
}

/**
 * Runs and time so far of every loaded program with one of tlstap's program names. With `pid`,
 * only the programs that process holds, so a tlstap running elsewhere on the machine (a test)
 * is not counted.
 */
export function programCosts(pid?: number): Record<ProgramName, ProgramCost> {
  const costs = Object.fromEntries(PROGRAMS.map((p) => [p, { runs: 0, ns: 0 }])) as Record<ProgramName, ProgramCost>;
  const r = spawnSync('bpftool', ['prog', 'list', '-j'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool prog list failed: ${r.stderr.trim()}`);
  const ours = pid === undefined ? undefined : programIdsOf(pid);
  for (const p of JSON.parse(r.stdout) as LoadedProgram[]) {
    const row = programOf(p.name);
    if (!row || (ours && !ours.has(p.id))) continue;
    costs[row].runs += p.run_cnt ?? 0;
    costs[row].ns += p.run_time_ns ?? 0;
  }
  return costs;
}

/** Nanoseconds per run of a program; NaN when it never ran. */
export function nsPerRun(cost: ProgramCost): number {
  return cost.runs > 0 ? cost.ns / cost.runs : NaN;
}

/** The BPF time of all programs together per traced call (calls: what the traced program made). */
export function bpfNsPerCall(costs: Record<ProgramName, ProgramCost>, calls: number): number {
  const total = PROGRAMS.reduce((sum, p) => sum + (costs[p]?.ns ?? 0), 0);
  return calls > 0 ? total / calls : NaN;
}
