import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Where libbpf looks for tracepoint ids (it prefers the debugfs path when that exists). */
const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';

/** Thrown when tracefs is missing and cannot be mounted. */
export class TracefsError extends Error {
  readonly hint = `mount it yourself: mount -t tracefs nodev ${TRACEFS}`;
  constructor(detail: string) {
    super(`tracefs is not mounted and mounting it failed: ${detail}`);
    this.name = 'TracefsError';
  }
}

/**
 * Makes sure syscall tracepoints can be found: mounts tracefs at /sys/kernel/tracing when
 * it is not there. Returns true if this call mounted it.
 */
export function ensureTracefs(): boolean {
  if (existsSync(`${TRACEFS}/events/syscalls`) || existsSync(`${DEBUGFS_TRACING}/events/syscalls`)) return false;
  const result = spawnSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS], { encoding: 'utf8' });
  if (result.error) throw new TracefsError(result.error.message);
  if (result.status !== 0) throw new TracefsError(result.stderr.trim() || `mount exited with ${result.status}`);
  if (!existsSync(`${TRACEFS}/events/syscalls`)) {
    throw new TracefsError(`${TRACEFS}/events/syscalls is missing (a kernel without CONFIG_FTRACE_SYSCALLS?)`);
  }
  return true;
}
