// Privilege checks for tests that load BPF programs.
import type { TestContext } from 'node:test';

/** True when this process runs as root (uid 0). */
function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Returns true if the test may go on; without root it skips, or throws when CI=true. */
export function requireRoot(t: TestContext): boolean {
  // A privileged test must never silently skip in CI.
  if (isRoot()) return true;
  if (process.env.CI === 'true') {
    throw new Error(
      'needs root (CAP_BPF, CAP_PERFMON), and CI=true forbids skipping: run the tests as root',
    );
  }
  t.skip('needs root (CAP_BPF, CAP_PERFMON): run as root');
  return false;
}
