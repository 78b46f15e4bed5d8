// What tlstap tells the user on stderr: the end-of-run summary and the once-a-second -v line.

import type { CaptureStats, SpillStats } from '../events/types.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** A byte count for humans: `512 B`, `1.5 KiB`, `12 MiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * The end-of-run summary for stderr: totals, one line per kind of loss, and for each loss that
 * happened a warning saying what to change. Lines are joined by newlines, with none at the end.
 */
export function formatSummary(stats: CaptureStats): string {
  let out =
    `tlstap: ${plural(stats.calls, 'call', 'calls')}, ` +
    `${plural(stats.bytes, 'byte', 'bytes')} captured (${formatBytes(stats.bytes)})\n` +
    `  events dropped:  ${stats.eventsDropped}\n` +
    `  bytes dropped:   ${stats.bytesDropped}\n` +
    `  bytes truncated: ${stats.bytesTruncated}\n` +
    `  read faults:     ${stats.readFaults} (${plural(stats.readFaultBytes, 'byte', 'bytes')})\n`;
  if (stats.connections !== undefined) out += `  connections:     ${stats.connections}\n`;
  if (stats.spill) out += `  spill peak:      ${formatSpillPeak(stats.spill)}\n`;
  const others: [number | undefined, string][] = [
    [stats.missingCalls, 'calls of a connection never arrived (dropped); their connection went on without them'],
    [stats.untrackedCalls, 'calls came without a connection (the kernel connection map was full): raise --connections'],
    [stats.splitConnections, 'connections were split in two: the kernel connection map was full and evicted them; raise --connections'],
    [stats.exitCutWrites, 'writes were in flight when their process exited (killed inside SSL_write): what they sent was not captured'],
    [stats.fdConflicts, 'calls used two different sockets; the first is shown'],
    [stats.unusableRecords, 'records could not be decoded (a newer BPF program?)'],
  ];
  for (const [n, what] of others) if (n) out += `warning: ${n} ${what}\n`;
  if (stats.unaddressedExcluded) {
    const names = stats.unaddressedExcludedNames ?? [];
    const more = stats.unaddressedExcluded - names.length;
    out +=
      `warning: --port/--host left out ${plural(stats.unaddressedExcluded, 'connection', 'connections')} whose addresses ` +
      `never became known: ${names.join('; ')}${more > 0 ? `; and ${more} more` : ''}\n`;
  }
  if (stats.eventsDropped > 0 || stats.bytesDropped > 0) {
    out +=
      `warning: the ring buffer was full ${plural(stats.eventsDropped, 'time', 'times')}; ` +
      `${formatBytes(stats.bytesDropped)} of plaintext never reached tlstap: ` +
      'give it a bigger --ring-buffer\n';
  }
  out += spillWarnings(stats.spill);
  if (stats.bytesTruncated > 0) {
    out +=
      `warning: ${formatBytes(stats.bytesTruncated)} beyond the per-call cap were not copied: ` +
      'raise --max-bytes to capture whole calls\n';
  }
  if (stats.readFaults > 0 || stats.readFaultBytes > 0) {
    out +=
      `warning: ${plural(stats.readFaults, 'record', 'records')} (${formatBytes(stats.readFaultBytes)}) ` +
      "could not be read from the traced process's memory (page not resident at the probe); " +
      'these bytes cannot be recovered\n';
  }
  return out.slice(0, -1);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** The spill at its fullest: `80 MiB (16 MiB in its file); output up to 1.25 s late`. */
export function formatSpillPeak(spill: SpillStats): string {
  return `${formatBytes(spill.peakBytes)} (${formatBytes(spill.peakFileBytes)} in its file); output up to ${seconds(spill.maxDelayMs)} late`;
}

/** The spill now: `12 MiB, 0.40 s behind`. */
export function formatSpillNow(spill: SpillStats): string {
  return `${formatBytes(spill.bytes)}, ${seconds(spill.delayMs)} behind`;
}

function spillWarnings(spill: SpillStats | undefined): string {
  if (!spill) return '';
  let out = '';
  if (spill.fullWaits > 0) {
    out += `warning: the spill was full ${plural(spill.fullWaits, 'time', 'times')} (${formatBytes(spill.peakBytes)}): the outputs could not keep up; drops above are what the ring buffer could not hold meanwhile\n`;
  }
  if (spill.fileError !== undefined) out += `warning: the spill file failed (${spill.fileError}): only memory was used; set TMPDIR to a writable directory with room\n`;
  if (spill.lostRecords > 0) {
    out += `warning: ${plural(spill.lostRecords, 'record', 'records')} (${formatBytes(spill.lostBytes)}) could not be read back from the spill file and are lost\n`;
  }
  return out;
}

/** Zero totals, the baseline for the first stats line. */
const NO_STATS: CaptureStats = {
  calls: 0,
  bytes: 0,
  eventsDropped: 0,
  bytesDropped: 0,
  bytesTruncated: 0,
  readFaults: 0,
  readFaultBytes: 0,
};

/**
 * The `-v` progress line (no newline): rates since `previous` over `intervalMs`, totals, and every
 * loss, each with its increase since the last line when it grew.
 */
export function formatStatsLine(
  stats: CaptureStats,
  previous: CaptureStats | undefined,
  intervalMs: number,
): string {
  const prev = previous ?? NO_STATS;
  const seconds = intervalMs > 0 ? intervalMs / 1000 : 1;
  const callRate = Math.round((stats.calls - prev.calls) / seconds);
  const byteRate = (stats.bytes - prev.bytes) / seconds;
  const grew = (now: number, before: number, show: (n: number) => string = String): string =>
    now > before ? ` (+${show(now - before)})` : '';
  return (
    `tlstap: ${callRate} calls/s, ${formatBytes(Math.round(byteRate))}/s | ` +
    `total ${plural(stats.calls, 'call', 'calls')}, ${formatBytes(stats.bytes)} | ` +
    `dropped ${stats.eventsDropped} events${grew(stats.eventsDropped, prev.eventsDropped)}, ` +
    `${formatBytes(stats.bytesDropped)}${grew(stats.bytesDropped, prev.bytesDropped, formatBytes)} | ` +
    `truncated ${formatBytes(stats.bytesTruncated)}${grew(stats.bytesTruncated, prev.bytesTruncated, formatBytes)} | ` +
    `read faults ${stats.readFaults}${grew(stats.readFaults, prev.readFaults)}` +
    (stats.spill ? ` | spill ${formatSpillNow(stats.spill)}` : '')
  );
}
