import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Where libbpf looks for tracepoint ids (it prefers the debugfs path when that exists). */
const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';

/** Thrown when tracefs is missing and cannot be mounted, or has no syscall tracepoint at all. */
export class TracefsError extends Error {
  readonly hint = `mount it yourself: mount -t tracefs nodev ${TRACEFS}`;
  constructor(detail: string) {
    super(`tracefs is not mounted and mounting it failed: ${detail}`);
    this.name = 'TracefsError';
  }
}

/** What tracefs offers for finding a TLS call's fd. */
export interface Tracefs {
  /** Whether this call mounted it. */
  mounted: boolean;
  /**
   * Whether per-syscall tracepoints (events/syscalls, CONFIG_FTRACE_SYSCALLS) exist. Without them
   * (Android GKI kernels) the raw_syscalls tracepoints serve, which every kernel with syscall
   * tracing support has.
   */
  syscallTracepoints: boolean;
}

/** Whether a tracepoint (`group/name`) is listed where libbpf looks for its id. */
function hasTracepoint(tracepoint: string): boolean {
  return existsSync(`${TRACEFS}/events/${tracepoint}/id`) || existsSync(`${DEBUGFS_TRACING}/events/${tracepoint}/id`);
}

const SYSCALL_TRACEPOINT = 'syscalls/sys_enter_read';
const RAW_SYSCALL_TRACEPOINT = 'raw_syscalls/sys_enter';

/**
 * Makes sure syscall tracepoints can be found: mounts tracefs at /sys/kernel/tracing when it is
 * not there. Throws only when neither per-syscall nor raw_syscalls tracepoints exist.
 */
export function ensureTracefs(): Tracefs {
  let mounted = false;
  if (!hasTracepoint(SYSCALL_TRACEPOINT) && !hasTracepoint(RAW_SYSCALL_TRACEPOINT)) {
    const result = spawnSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS], { encoding: 'utf8' });
    if (result.error) throw new TracefsError(result.error.message);
    if (result.status !== 0) throw new TracefsError(result.stderr.trim() || `mount exited with ${result.status}`);
    mounted = true;
    if (!hasTracepoint(RAW_SYSCALL_TRACEPOINT)) {
      throw new TracefsError(`${TRACEFS}/events/${RAW_SYSCALL_TRACEPOINT} is missing (a kernel without CONFIG_HAVE_SYSCALL_TRACEPOINTS?)`);
    }
  }
  return { mounted, syscallTracepoints: hasTracepoint(SYSCALL_TRACEPOINT) };
}
