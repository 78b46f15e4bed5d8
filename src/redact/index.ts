// --redact on the byte streams: credential header values masked in place, same length, before any output.
export { BatchRedactor } from './batch.js';
export { DirectionMasker } from './stream.js';
export type { RedactStats } from './types.js';
import type { RedactStats } from './types.js';

/** The summary line of what --redact masked. */
export function formatRedactSummary(stats: RedactStats): string {
  const blind =
    stats.blindStreams > 0
      ? `; ${stats.blindStreams} stream(s) could not be followed (a gap, an undecodable header block): ${stats.blindBytes} bytes masked whole`
      : '';
  return `tlstap: --redact: ${stats.values} credential header values masked (${stats.bytes} bytes) in every output${blind}`;
}
