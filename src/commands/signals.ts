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

/** Stops waiting for the reader of stdout: what it has not taken is dropped, and counted as missed. */
export function abandonStdout(): void {
  abandoned = true;
  if (!process.stdout.destroyed) process.stdout.destroy();
}

/** Whether abandonStdout() ran: its unfinished writes keep the process alive, so the CLI exits by itself. */
export function stdoutAbandoned(): boolean {
  return abandoned;
}
