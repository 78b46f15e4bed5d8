import type { Writable } from 'node:stream';
import type { CallPipeline } from '../capture/pipeline.js';
import { formatRedactSummary } from '../redact/index.js';
import { formatBlindspots } from '../targets/blindspots.js';
import type { Blindspot } from '../targets/blindspots.js';
import type { SkippedFile } from '../targets/discover.js';
import type { ProbeTarget } from '../targets/types.js';
import { basename } from 'node:path';

/**
 * What a capture says before it starts: each file it does not probe and why (libraries of another
 * architecture in one line: no program here can load them; `tlstap libs` lists them), then what -p's
 * process does that the probes will not see.
 */
export function startNotes(skipped: readonly SkippedFile[], blindspots: readonly Blindspot[]): string {
  let text = '';
  for (const s of skipped) if (s.foreignArch === undefined) text += `tlstap: warning: not probing ${s.path}: ${s.reason}\n`;
  const foreign = skipped.filter((s) => s.foreignArch !== undefined);
  if (foreign.length > 0) {
    const arches = [...new Set(foreign.map((s) => s.foreignArch))].join(', ');
    text += `tlstap: not probing ${foreign.length} TLS librar${foreign.length > 1 ? 'ies' : 'y'} built for ${arches}, which no program here can load (tlstap libs lists them)\n`;
  }
  return text + formatBlindspots(blindspots);
}

/**
 * The lines a run adds after the output summary: what --redact masked, and, when -p's process gave
 * no call at all, why that may be (the blindspots found at start, again).
 */
export function runNotes(
  pipeline: Pick<CallPipeline, 'redaction' | 'totals' | 'callsByFile'>,
  capture: { pid?: number; blindspots?: readonly Blindspot[]; targets?: readonly ProbeTarget[] } = {},
): string {
  let text = pipeline.redaction ? `${formatRedactSummary(pipeline.redaction)}\n` : '';
  // A file the user named with --lib that no call went through.
  capture.targets?.forEach((t, i) => {
    if (t.source !== 'lib-option' || (pipeline.callsByFile[i] ?? 0) > 0) return;
    text += `tlstap: no call went through ${t.displayPath} (--lib)\n`;
    text += `  hint: check that the program uses this very file (grep ${basename(t.displayPath)} /proc/PID/maps); a program with its own copy needs --lib on that copy\n`;
  });
  if (capture.pid !== undefined && pipeline.totals.calls === 0) {
    text += `tlstap: no TLS call of process ${capture.pid} was seen\n`;
    text += capture.blindspots?.length
      ? formatBlindspots(capture.blindspots)
      : '  hint: did it do TLS while tlstap ran? A call is seen when the process calls a probed function (tlstap libs -p PID lists them)\n';
  }
  return text;
}
