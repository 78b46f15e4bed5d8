import type { ProbeTarget } from '../targets/index.js';
import { resolveTargets } from './capture.js';

/** `tlstap libs`: what would be probed, as text lines. */
export function formatTargets(targets: readonly ProbeTarget[]): string {
  const lines: string[] = [];
  for (const t of targets) {
    const version = t.version ? ` ${t.version}` : '';
    lines.push(`${t.displayPath}  ${t.flavour}${version}  (${t.source}${t.buildId ? `, build-id ${t.buildId}` : ''})`);
    if (t.path !== t.displayPath) lines.push(`  attached through ${t.path}`);
    for (const f of t.functions) {
      const symbolVersion = f.version ? `@${f.version}` : '';
      lines.push(`  ${(f.name + symbolVersion).padEnd(28)} offset 0x${f.fileOffset.toString(16)}`);
    }
    if (t.missing.length > 0) lines.push(`  not in this file: ${t.missing.join(', ')}`);
  }
  return lines.join('\n');
}

/** The targets as JSON-friendly objects (bigints as hex strings). */
export function targetsJson(targets: readonly ProbeTarget[]): unknown[] {
  return targets.map((t) => ({
    path: t.displayPath,
    attachPath: t.path,
    flavour: t.flavour,
    version: t.version ?? null,
    buildId: t.buildId ?? null,
    source: t.source,
    functions: t.functions.map((f) => ({ name: f.name, offset: `0x${f.fileOffset.toString(16)}`, version: f.version ?? null })),
    missing: t.missing,
  }));
}

/** Runs `tlstap libs`. */
export async function runLibs(opts: { pid?: number; lib: string[]; json: boolean }): Promise<string> {
  const targets = await resolveTargets(opts);
  return opts.json ? JSON.stringify(targetsJson(targets), null, 2) : formatTargets(targets);
}
