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
export function startProgress(read: () => CaptureStats, write: (line: string) => void, opts: ProgressOptions = {}): () => void {
  const intervalMs = opts.intervalMs ?? 1000;
  const now = opts.now ?? (() => performance.now());
  let previous = read();
  let previousAt = now();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const stats = read();
    const at = now();
    write(`${formatStatsLine(stats, previous, at - previousAt)}\n`);
    previous = stats;
    previousAt = at;
    timer = setTimeout(tick, intervalMs).unref();
  };
  timer = setTimeout(tick, intervalMs).unref();
  return () => clearTimeout(timer);
}
