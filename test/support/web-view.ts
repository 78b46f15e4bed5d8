// Helpers for the web view tests: the URL tlstap prints, and waiting for a line on its stderr.

/** The web view URL in tlstap's stderr, or undefined. */
export function webUrl(stderr: string): string | undefined {
  return /web view at (http:\/\/\S+)/.exec(stderr)?.[1];
}

/** Resolves once `read()` matches `pattern`; rejects after `timeoutMs`. */
export async function waitFor(read: () => string, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(read());
    if (m) return m;
    if (Date.now() > until) throw new Error(`no ${pattern} within ${timeoutMs} ms in:\n${read()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The resident set size of a process in bytes (from /proc). */
export function rssBytes(pid: number, readFile: (path: string) => string): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFile(`/proc/${pid}/status`))?.[1];
  return Number(kb ?? 0) * 1024;
}
