// One file reached by several paths is probed once: targets are identified by (device, inode).
import type { ProbeTarget } from './types.js';

/** The identity key of a file. */
export function fileKey(dev: bigint, ino: bigint): string {
  return `${dev}:${ino}`;
}

/**
 * How nice a path pair is to keep; lower is better. A path through /proc (tied to one process's life)
 * is worst, then a display path that differs from the attach path (a symlink the user named), then
 * length (/usr/lib/x/libssl.so.3 over /usr/lib/x/../x/libssl.so.3).
 */
export function pathRank(p: { path: string; displayPath: string }): [number, number, number] {
  return [p.path.startsWith('/proc/') ? 1 : 0, p.displayPath === p.path ? 0 : 1, p.displayPath.length];
}

/** True if a ranks strictly before b. */
export function nicer(a: { path: string; displayPath: string }, b: { path: string; displayPath: string }): boolean {
  const ra = pathRank(a);
  const rb = pathRank(b);
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! < rb[i]!;
  return false;
}

/**
 * Keeps one target per (device, inode), in first-seen order. The kept entry takes the nicest path and
 * display path of the group; other fields come from the first target seen.
 */
export function dedupeTargets(targets: readonly ProbeTarget[]): ProbeTarget[] {
  const byKey = new Map<string, ProbeTarget>();
  for (const t of targets) {
    const key = fileKey(t.dev, t.ino);
    const kept = byKey.get(key);
    if (kept === undefined) {
      byKey.set(key, { ...t, functions: t.functions.map((f) => ({ ...f })), missing: [...t.missing] });
    } else if (nicer(t, kept)) {
      kept.path = t.path;
      kept.displayPath = t.displayPath;
    }
  }
  return [...byKey.values()];
}
