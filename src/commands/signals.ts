import type { Writable } from 'node:stream';

/** The signals that stop a capture cleanly. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Stop signals caught for the whole run; `first` resolves with the first one received. */
export interface StopSignals {
  first: Promise<NodeJS.Signals>;
  /** Restores the default handling. */
  release(): void;
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP from before the probes are attached until the outputs are
 * closed: a signal at any moment stops tlstap cleanly; later ones while stopping go to `onRepeat`
 * with how many have come (2 for the second).
 */
export function catchStopSignals(onRepeat: (signal: NodeJS.Signals, count: number) => void): StopSignals {
  let count = 0;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count > 1) {
      onRepeat(signal, count);
      return;
    }
    resolveFirst(signal);
  };
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return {
    first,
    release: () => {
      for (const s of STOP_SIGNALS) process.removeListener(s, handler);
    },
  };
}

let abandoned = false;

/** How long a stop waits for a stalled reader of stdout before finishing the files without it. */
const STDOUT_GRACE_MS = 3000;

/** Stops waiting for the reader of stdout: what it has not taken is dropped, and counted as missed. */
function abandonStdout(): void {
  abandoned = true;
  if (!process.stdout.destroyed) process.stdout.destroy();
}

/** Whether abandonStdout() ran: its unfinished writes keep the process alive, so the CLI exits by itself. */
export function stdoutAbandoned(): boolean {
  return abandoned;
}

/**
 * A stop signal while stopping: the second finishes the files without waiting for stdout's reader,
 * the third ends tlstap at once by the signal's default action (no exit handler waits for a write
 * stuck in the thread pool).
 */
export function onRepeatedStop(signal: NodeJS.Signals, count: number, signals: StopSignals, stderr: Writable): void {
  if (count === 2) {
    stderr.write(`tlstap: ${signal} again: finishing the files without waiting for stdout's reader (once more to end at once)\n`);
    abandonStdout();
    return;
  }
  stderr.write(`tlstap: ${signal} a third time: ending now, files as they are\n`);
  signals.release();
  process.kill(process.pid, signal);
}

/** Resolves with `finishing`; when stdout's reader still holds it back after a grace, stdout is given up. */
export async function withStdoutGrace<T>(finishing: Promise<T>, usesStdout: boolean, stderr: Writable): Promise<T> {
  const grace = setTimeout(() => {
    if (!usesStdout || process.stdout.writableLength === 0) return;
    stderr.write(`tlstap: stdout's reader still takes nothing ${STDOUT_GRACE_MS / 1000} s after the stop; finishing without it\n`);
    abandonStdout();
  }, STDOUT_GRACE_MS).unref();
  try {
    return await finishing;
  } finally {
    clearTimeout(grace);
  }
}
