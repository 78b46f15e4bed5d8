import { stat } from 'node:fs/promises';
import { fileTarget } from '../targets/discover.js';
import type { ProbeTarget } from '../targets/types.js';

/**
 * Watches the probed files while a capture runs. A package upgrade replaces a library by renaming a
 * new file over it: processes started afterwards map the new file, which no probe sits on. When a
 * probed path names another file than the one probed, the new file is probed too, under the same
 * file index (its events name the same path), and `report` says so. Returns stop().
 */
export function watchReplacedFiles(
  targets: readonly ProbeTarget[],
  attach: (target: ProbeTarget, fileIndex: number) => Promise<number>,
  report: (line: string) => void,
  intervalMs = 1000,
): () => void {
  const known = targets.map((t) => `${t.dev}:${t.ino}`);
  let busy = false;
  const check = async () => {
    for (const [index, target] of targets.entries()) {
      let identity: string;
      try {
        const st = await stat(target.displayPath, { bigint: true });
        identity = `${st.dev}:${st.ino}`;
      } catch {
        continue; // Removed for now; a new file at the path is seen when it appears.
      }
      if (identity === known[index]) continue;
      known[index] = identity;
      try {
        const fresh = await fileTarget(target.displayPath, target.source);
        if (fresh.functions.length === 0) throw new Error('it has none of the TLS functions tlstap probes');
        const probes = await attach(fresh, index);
        report(`tlstap: ${target.displayPath} was replaced on disk; probing the new file too (${probes} probes); processes that mapped the old one stay probed`);
      } catch (err) {
        report(`tlstap: warning: ${target.displayPath} was replaced on disk and the new file cannot be probed: ${(err as Error).message}; processes that map it are not captured`);
      }
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void check().finally(() => (busy = false));
  }, intervalMs).unref();
  return () => clearInterval(timer);
}
