// How `tlstap libs` shows Go programs: version, layout, the crypto/tls functions and the probes planned
// for them, and why the traffic of the ones tlstap's Go probes do not handle is not captured.
import { goProgramMessage, goProgramsHint } from './go.js';
import type { GoProgram } from './go.js';
import { planGoProbes } from './go-probes.js';
import type { GoProbePlan } from './go-probes.js';

/** A Go program with its probe plan, or why there is none. */
export interface GoProgramReport {
  program: GoProgram;
  plan?: GoProbePlan;
  /** Why planning failed (code that does not decode, an unreadable file). */
  planError?: string;
}

/** Plans the probes of each Go program whose crypto/tls is found (decoding Read's machine code). */
export async function reportGoPrograms(programs: readonly GoProgram[]): Promise<GoProgramReport[]> {
  return Promise.all(
    programs.map(async (program): Promise<GoProgramReport> => {
      if (program.status !== 'captured') return { program };
      try {
        return { program, plan: await planGoProbes(program) };
      } catch (err) {
        return { program, planError: err instanceof Error ? err.message : String(err) };
      }
    }),
  );
}

const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** Text lines for `tlstap libs`: each program, its functions with offsets and return sites, and the reason line. */
export function formatGoPrograms(reports: readonly GoProgramReport[]): string {
  const lines: string[] = [];
  for (const { program: p, plan, planError } of reports) {
    const facts = [p.goVersion ?? 'Go release unknown', p.arch, ...(p.layout ? [`pclntab ${p.layout} layout`] : [])];
    lines.push(`${p.displayPath}  Go program (${facts.join(', ')})`);
    if (p.path !== p.displayPath) lines.push(`  read through ${p.path}`);
    for (const fn of p.functions) {
      const returns = plan?.sites.filter((s) => s.func === fn.name && s.kind === 'return-site') ?? [];
      const entry = plan?.sites.find((s) => s.func === fn.name && s.kind === 'entry');
      const probed = entry === undefined ? '' : `, probed at ${hex(entry.offset)} (after the stack check)`;
      const where = returns.length > 0 ? `, ${returns.length} return sites at offsets ${returns.map((s) => hex(s.offset)).join(' ')}` : '';
      lines.push(`  ${fn.name.padEnd(27)} offset ${hex(fn.fileOffset)}${probed}${where}`);
    }
    if (planError !== undefined) lines.push(`  no probe plan: ${planError}`);
    lines.push(`  ${goProgramMessage(p)}`);
  }
  const hint = goProgramsHint(reports.map((r) => r.program));
  if (hint !== undefined) lines.push(`hint: ${hint}`);
  return lines.join('\n');
}

/** The Go programs as JSON-friendly objects (bigints as hex strings) for `tlstap libs --json`. */
export function goProgramsJson(reports: readonly GoProgramReport[]): unknown {
  return reports.map(({ program: p, plan, planError }) => ({
    path: p.displayPath,
    openPath: p.path,
    goVersion: p.goVersion ?? null,
    versionSource: p.versionSource ?? null,
    arch: p.arch,
    pclntabLayout: p.layout ?? null,
    status: p.status,
    message: goProgramMessage(p),
    hint: goProgramsHint([p]) ?? null,
    functions: p.functions.map((f) => ({ name: f.name, address: hex(f.address), offset: hex(f.fileOffset), size: f.size })),
    probes: plan?.sites.map((s) => ({ func: s.func, kind: s.kind, offset: hex(s.offset) })) ?? null,
    planError: planError ?? null,
  }));
}
