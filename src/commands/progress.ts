import type { CaptureStats } from '../events/types.js';
import { formatStatsLine } from '../output/index.js';

/** Settings of the -v progress line. */
export interface ProgressOptions {
  /** Time between lines (default 1000 ms). */
  intervalMs?: number;
  /** The clock, in ms (default performance.now). */
  now?: () => number;
}

/**
 * Writes the -v stats line every interval; its rates divide by the time that really passed since the
 * last line, so a line that comes late (a stalled event loop) does not inflate them. Returns stop().
 */
export function startProgress(read: () => CaptureStats | Promise<CaptureStats>, write: (line: string) => void, opts: ProgressOptions = {}): () => void {
  const intervalMs = opts.intervalMs ?? 1000;
  const now = opts.now ?? (() => performance.now());
  let previous: CaptureStats | Promise<CaptureStats> = read();
  let previousAt = now();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async () => {
    const at = now();
    // The counters of a remote capture come over the agent's pipe; a failed read skips a line.
    const [stats, before] = await Promise.all([read(), previous]).catch(() => [undefined, undefined] as const);
    if (stopped) return;
    if (stats !== undefined && before !== undefined) {
      write(`${formatStatsLine(stats, before, at - previousAt)}\n`);
      previous = stats;
      previousAt = at;
    }
    timer = setTimeout(() => void tick(), intervalMs).unref();
  };
  timer = setTimeout(() => void tick(), intervalMs).unref();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
