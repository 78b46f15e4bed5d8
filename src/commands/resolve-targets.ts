// Which files a capture, `tlstap libs` and a plan probe on this machine: discovery (src/targets) for
// the options, with the files it cannot probe, the Go programs found, and -p's blindspots.
// Straight from the modules, not targets/index.js: a capture does not load Android's and APK code.
import { fileTarget, processTargets, systemTargets } from '../targets/discover.js';
import type { SkippedFile } from '../targets/discover.js';
import { dedupeTargets } from '../targets/dedupe.js';
import { TargetError } from '../targets/errors.js';
import { GoProgramError, onlyGoProgramsError } from '../targets/go.js';
import type { GoProgram } from '../targets/go.js';
import { processBlindspots } from '../targets/blindspots.js';
import type { Blindspot } from '../targets/blindspots.js';
import type { ProbeTarget } from '../targets/types.js';
import { AnalysisStore } from '../targets/analysis-store.js';
import type { CaptureOptions } from './options.js';

/** The files to probe, the ones that cannot be and why, the Go programs found, and -p's blindspots. */
export interface ResolvedTargets {
  targets: ProbeTarget[];
  skipped: SkippedFile[];
  /** Go programs found; for a capture only the ones not captured (the captured ones are among the targets). */
  goPrograms: GoProgram[];
  /** What -p's process does that its targets will not show. */
  blindspots: Blindspot[];
  /** Why the analyses kept from earlier runs were not used, when their directory or file is not safe to trust. */
  storeWarning?: string;
}

/** Which files to probe, and whether to tell their flavour and version (default true; a capture shows them only with --verbose). */
export type TargetOptions = Pick<CaptureOptions, 'pid' | 'lib'> & {
  flavour?: boolean;
  /** Found Go programs are enough (`libs` lists them); else finding nothing but them is an error that names them. */
  goProgramsSuffice?: boolean;
  /** Analyses kept between runs: root's store in DEFAULT_STORE_DIR by default; false for none. */
  store?: AnalysisStore | false;
};

/** Finds the files to probe for these options, and the ones that cannot be; errors say what was looked for. */
export async function resolveTargetsReporting(opts: TargetOptions): Promise<ResolvedTargets> {
  const skipped: SkippedFile[] = [];
  const onSkip = (path: string, reason: string, foreignArch?: string) => skipped.push({ path, reason, ...(foreignArch ? { foreignArch } : {}) });
  const goPrograms: GoProgram[] = [];
  const onGoProgram = (program: GoProgram) => goPrograms.push(program);
  const { flavour } = opts;
  let storeWarning: string | undefined;
  const store = opts.store === false ? undefined : (opts.store ?? AnalysisStore.open(undefined, (why) => (storeWarning = why)));
  const found = opts.pid !== undefined ? await processTargets(opts.pid, { onSkip, flavour, onGoProgram, store }) : await systemTargets({ onSkip, flavour, onGoProgram, store });
  for (const lib of opts.lib) {
    const target = await libTarget(lib, flavour, onGoProgram, store);
    if (target !== undefined) found.push(target);
  }
  store?.save();
  let targets = dedupeTargets(found).filter((t) => t.functions.length > 0);
  // Go programs whose crypto/tls is captured become targets with their probe plan; `libs` shows them apart.
  if (!opts.goProgramsSuffice) {
    const source = (p: GoProgram) => (opts.lib.includes(p.displayPath) ? 'lib-option' : opts.pid !== undefined ? 'process' : 'executable');
    const captured = goPrograms.filter((p) => p.status === 'captured');
    if (captured.length > 0) {
      const { goProbeTarget } = await import('../targets/go-probes.js');
      // A program whose code does not decode as expected comes back undefined, named with the reason.
      const planned = await Promise.all(captured.map((p) => goProbeTarget(p, source(p))));
      targets = dedupeTargets([...targets, ...planned.filter((t) => t !== undefined)]);
    }
    goPrograms.splice(0, goPrograms.length, ...goPrograms.filter((p) => p.status !== 'captured'));
  }
  const where = opts.pid !== undefined ? `process ${opts.pid}` : 'this system';
  // A Go program's own message wins over the blindspots (its crypto/tls also looks like TLS linked in).
  if (targets.length === 0 && goPrograms.length > 0) {
    if (opts.goProgramsSuffice) return { targets, skipped, goPrograms, blindspots: [], ...(storeWarning ? { storeWarning } : {}) };
    throw onlyGoProgramsError(where, goPrograms);
  }
  // What -p's process does that its targets will not show (TLS linked in and stripped, SSL BIOs, workers).
  const blindspots = opts.pid !== undefined && goPrograms.length === 0 ? await processBlindspots(opts.pid, targets) : [];
  if (targets.length === 0 && blindspots.length > 0) throw new TargetError(blindspots[0]!.reason, { hint: blindspots[0]!.hint });
  if (targets.length === 0) {
    throw new TargetError(`no TLS library (OpenSSL, BoringSSL, GnuTLS or NSS) found in ${where}`, {
      hint: 'name one with --lib PATH (a TLS library, or a program with one linked in)',
    });
  }
  return { targets, skipped, goPrograms, blindspots, ...(storeWarning ? { storeWarning } : {}) };
}

/** A --lib file's target; a Go program is told to `onGoProgram` instead (it becomes a target through its probe plan). */
async function libTarget(path: string, flavour: boolean | undefined, onGoProgram: (p: GoProgram) => void, store: AnalysisStore | undefined): Promise<ProbeTarget | undefined> {
  try {
    return await fileTarget(path, 'lib-option', { flavour, store });
  } catch (err) {
    if (!(err instanceof GoProgramError)) throw err;
    onGoProgram(err.program);
    return undefined;
  }
}

/** The files to probe for these options. */
export async function resolveTargets(opts: TargetOptions): Promise<ProbeTarget[]> {
  return (await resolveTargetsReporting(opts)).targets;
}
