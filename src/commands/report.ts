import type { Writable } from 'node:stream';
import type { CallPipeline } from '../capture/pipeline.js';
import { formatRedactSummary } from '../redact/index.js';

/** Errors whose message is written for the user (they carry context and, often, a hint). */
const USER_FACING = new Set([
  'CliError', 'TargetError', 'ElfError', 'BpfError', 'OutputFileError', 'RecordFormatError', 'RecordWriteError', 'CertificateError',
]);

/** Prints a fatal error as one line plus a hint; returns the exit code. */
export function reportFatal(err: unknown, stderr: Writable): number {
  const error = err instanceof Error ? err : new Error(String(err));
  const hint = (error as { hint?: unknown }).hint;
  stderr.write(`tlstap: ${error.message}\n`);
  if (typeof hint === 'string' && hint) stderr.write(`  hint: ${hint}\n`);
  if (!USER_FACING.has(error.name) || process.env.TLSTAP_DEBUG) stderr.write(`${error.stack ?? ''}\n`);
  if (process.env.TLSTAP_DEBUG && 'libbpfLog' in error) stderr.write(`${String((error as { libbpfLog: string }).libbpfLog)}\n`);
  return (error as { exitCode?: number }).exitCode ?? 1;
}

/** The lines a run adds after the output summary: what --redact masked. */
export function runNotes(pipeline: Pick<CallPipeline, 'redaction'>): string {
  const lines: string[] = [];
  if (pipeline.redaction) lines.push(formatRedactSummary(pipeline.redaction));
  return lines.map((l) => `${l}\n`).join('');
}
