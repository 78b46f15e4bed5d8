import { formatBlindspots } from '../targets/index.js';
import type { Blindspot, ProbeTarget, SkippedFile } from '../targets/index.js';
import { resolveTargetsReporting } from './resolve-targets.js';
import { formatGoPrograms, goProgramsJson, reportGoPrograms } from '../targets/go-report.js';

/** `tlstap libs`: what would be probed, as text lines, then what cannot be and why. */
export function formatTargets(targets: readonly ProbeTarget[], skipped: readonly SkippedFile[] = [], blindspots: readonly Blindspot[] = []): string {
  const lines: string[] = [];
  const width = Math.max(0, ...targets.flatMap((t) => t.functions.map((f) => f.name.length + (f.version ? f.version.length + 1 : 0)))) + 2;
  for (const t of targets) {
    const version = t.version ? ` ${t.version}` : '';
    lines.push(`${t.displayPath}  ${t.flavour}${version}  (${t.arch}, ${t.source}${t.buildId ? `, build-id ${t.buildId}` : ''})`);
    if (t.path !== t.displayPath) lines.push(`  attached through ${t.path}`);
    for (const f of t.functions) {
      const symbolVersion = f.version ? `@${f.version}` : '';
      lines.push(`  ${(f.name + symbolVersion).padEnd(width)} offset 0x${f.fileOffset.toString(16)}`);
    }
    if (t.missing.length > 0) lines.push(`  not in this file: ${t.missing.join(', ')}`);
  }
  for (const s of skipped) lines.push(`${s.path}  cannot be probed: ${s.reason}`);
  // First: what the list does not cover (a program's own stripped TLS is not in the libraries it maps).
  return `${formatBlindspots(blindspots, '')}${lines.join('\n')}`;
}

/** The targets as JSON-friendly objects (bigints as hex strings). */
export function targetsJson(targets: readonly ProbeTarget[], skipped: readonly SkippedFile[] = [], blindspots: readonly Blindspot[] = []): unknown {
  const probed = targets.map((t) => ({
    path: t.displayPath,
    attachPath: t.path,
    flavour: t.flavour,
    version: t.version ?? null,
    arch: t.arch,
    buildId: t.buildId ?? null,
    source: t.source,
    functions: t.functions.map((f) => ({ name: f.name, offset: `0x${f.fileOffset.toString(16)}`, version: f.version ?? null })),
    missing: t.missing,
  }));
  return { targets: probed, skipped, blindspots };
}

/** Runs `tlstap libs`. */
export async function runLibs(opts: { pid?: number; lib: string[]; json: boolean }): Promise<string> {
  const { targets, skipped, blindspots, goPrograms } = await resolveTargetsReporting({ ...opts, goProgramsSuffice: true });
  const go = await reportGoPrograms(goPrograms);
  if (opts.json) return JSON.stringify({ ...(targetsJson(targets, skipped, blindspots) as object), go: goProgramsJson(go) }, null, 2);
  return [formatTargets(targets, skipped, blindspots), formatGoPrograms(go)].filter((text) => text !== '').join('\n');
}
