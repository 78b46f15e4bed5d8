// Shared pieces of the benchmarks: paths, process accounting from /proc, the tlstap CLI as a child
// process, medians and target checks.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CaptureStats } from '../src/events/types.js';

/** The repository root (bench/*.ts compiles to dist/bench/*.js). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The compiled CLI. */
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
/** The `tlstap` command as npm installs it (package.json's bin): a shell script that runs node on itself. */
export const TLSTAP_BIN = fileURLToPath(new URL('../../bin/tlstap.js', import.meta.url));
/** The load generator built by bench/build.sh. */
export { LOADGEN } from './loadgen.js';

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) a live process has used, from /proc/PID/stat; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised comm (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Memory figures of a live process in bytes, from /proc/PID/status. */
export interface MemoryFigures {
  /** VmHWM: peak resident set. */
  peakRss: number;
  rss: number;
  rssAnon: number;
  /** RssFile: file and shared mappings, the ring buffer's pages among them. */
  rssFile: number;
}

/** VmHWM, VmRSS, RssAnon and RssFile of a live process; undefined once it is gone. */
function memory(pid: number): MemoryFigures | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { peakRss: kb('VmHWM'), rss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
  } catch {
    return undefined;
  }
}

/** The median of some numbers (the mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** A target next to a figure. */
export interface Target {
  text: string;
  met: boolean | undefined;
}

/** `value <= limit` as a target; undefined (not measured) when value is not a number. */
export function atMost(value: number | undefined, limit: number, label: string): Target {
  if (value === undefined || !Number.isFinite(value)) return { text: `${label} (not measured)`, met: undefined };
  return { text: label, met: value <= limit };
}

/** `value >= limit` as a target. */
export function atLeast(value: number | undefined, limit: number, label: string): Target {
  if (value === undefined || !Number.isFinite(value)) return { text: `${label} (not measured)`, met: undefined };
  return { text: label, met: value >= limit };
}

/** "met" / "MISSED" / "n/a". */
export function verdict(t: Target): string {
  return t.met === undefined ? 'n/a' : t.met ? 'met' : 'MISSED';
}

/** The totals of tlstap's end-of-run summary on stderr: those of CaptureStats it prints. */
export type SummaryFigures = Pick<CaptureStats, 'calls' | 'bytes' | 'eventsDropped' | 'bytesDropped' | 'bytesTruncated' | 'readFaults'>;

/** Parses tlstap's stderr summary; undefined when there is none. */
export function parseSummary(stderr: string): SummaryFigures | undefined {
  const calls = /tlstap: (\d+) calls?, (\d+) bytes? captured/.exec(stderr);
  if (!calls) return undefined;
  const field = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(stderr)?.[1] ?? NaN);
  return {
    calls: Number(calls[1]),
    bytes: Number(calls[2]),
    eventsDropped: field('events dropped'),
    bytesDropped: field('bytes dropped'),
    bytesTruncated: field('bytes truncated'),
    readFaults: field('read faults'),
  };
}

/** A running tlstap capture watched through /proc. */
export interface WatchedTlstap {
  child: ChildProcess;
  /** Milliseconds from spawn to the "capturing" line. */
  startMs: number;
  /** What tlstap itself says attaching took. */
  attachMs: number;
  /** Stops it with `signal` and resolves with its figures. */
  stop(signal?: NodeJS.Signals): Promise<TlstapRun>;
}

/** What one tlstap run cost and reported. */
export interface TlstapRun {
  code: number | null;
  stderr: string;
  summary: SummaryFigures | undefined;
  /** utime + stime, last seen before it exited (it includes most of the final drain). */
  cpuSeconds: number;
  /** The largest VmHWM seen. */
  peakRss: number;
  /** The largest RssAnon seen: the heap's share of the peak. */
  peakRssAnon: number;
}

/**
 * Starts `tlstap ARGS` (in `env`, this process's by default; as `node dist/src/cli.js` unless `command`
 * says otherwise, e.g. the `tlstap` command, [TLSTAP_BIN]) and resolves once its probes are attached.
 */
export function startWatchedTlstap(
  args: readonly string[],
  timeoutMs = 30_000,
  env: NodeJS.ProcessEnv = process.env,
  command: readonly string[] = [process.execPath, CLI],
): Promise<WatchedTlstap> {
  const t0 = performance.now();
  const child = spawn(command[0]!, [...command.slice(1), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let cpu = 0;
  let peakRss = 0;
  let peakRssAnon = 0;
  const sample = (): void => {
    const pid = child.pid;
    if (pid === undefined) return;
    const c = cpuSeconds(pid);
    const m = memory(pid);
    if (c !== undefined && Number.isFinite(c)) cpu = c;
    // A process that has exited but is not yet reaped has no Vm* lines: keep the last figures.
    if (m && Number.isFinite(m.peakRss)) {
      peakRss = Math.max(peakRss, m.peakRss);
      peakRssAnon = Math.max(peakRssAnon, m.rssAnon);
    }
  };
  const sampler = setInterval(sample, 100);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(sampler);
      child.kill('SIGKILL');
      reject(new Error(`tlstap did not attach within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    void exited.then((code) => {
      if (/capturing \(/.test(stderr)) return;
      clearTimeout(timer);
      clearInterval(sampler);
      reject(new Error(`tlstap exited before attaching (code ${code}); stderr:\n${stderr}`));
    });
    const onData = (): void => {
      const m = /capturing \((\d+) probes attached in (\d+) ms\)/.exec(stderr);
      if (!m) return;
      child.stderr!.off('data', onData);
      clearTimeout(timer);
      const startMs = performance.now() - t0;
      resolve({
        child,
        startMs,
        attachMs: Number(m[2]),
        stop: async (signal = 'SIGINT') => {
          sample();
          // Sample fast while it drains, so the last figures are close to its final ones.
          clearInterval(sampler);
          const fast = setInterval(sample, 10);
          child.kill(signal);
          const code = await exited;
          clearInterval(fast);
          return { code, stderr, summary: parseSummary(stderr), cpuSeconds: cpu, peakRss, peakRssAnon };
        },
      });
    };
    child.stderr!.on('data', onData);
  });
}

/** What loadgen printed. */
export { runLoadgen } from './loadgen.js';
export type { LoadgenResult } from './loadgen.js';

/** Formats bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : 'n/a';
}

/** Pads a table: rows of cells, the first row the heading. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
