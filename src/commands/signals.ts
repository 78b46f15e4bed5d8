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
 * closed: a signal at any moment stops tlstap cleanly (a later one while stopping is reported
 * and ignored, so files are never left half-written).
 */
export function catchStopSignals(onRepeat: (signal: NodeJS.Signals) => void): StopSignals {
  let received: NodeJS.Signals | undefined;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const handler = (signal: NodeJS.Signals) => {
    if (received) {
      onRepeat(signal);
      return;
    }
    received = signal;
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
