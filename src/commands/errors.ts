import type { Writable } from 'node:stream';

/** A fatal CLI error: one line for the user, plus a hint on what to do. */
export class CliError extends Error {
  constructor(message: string, readonly hint?: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

/** Errors whose message is written for the user (they carry context and, often, a hint). */
const USER_FACING = new Set([
  'CliError', 'TargetError', 'ElfError', 'BpfError', 'OutputFileError', 'RecordFormatError', 'RecordWriteError', 'CertificateError',
  'RemoteError', 'AgentError', 'AgentGoneError',
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
