// `npm run bench`: what tracing costs a TLS program, against the uprobe floor, and the replay
// pipeline's throughput. Every figure is printed next to its target; the whole run is written to
// bench/results/<timestamp>.json. docs/performance.md explains each figure.
//
//   npm run bench                       live benchmark, then replay benchmark
//   npm run bench -- --live             live only        npm run bench -- --replay   replay only
//   --rounds 3 (BENCH_ROUNDS)           --n1k 200000 (BENCH_N_1K)   --n16k 20000 (BENCH_N_16K)
//   --replay-mb 512 (BENCH_REPLAY_MB)     --from bench/results/FILE.json  (print an earlier run's tables)
//   --configs floor,bpf-only,jsonl      (a subset, while working on one figure; default: all)
//   --sizes 1k                          (1k, 16k; default: both)
//   --burst                             the burst only: an unpaced nginx → curl download, with and without
//   --burst-mib 256 (BENCH_BURST_MIB)   two CPU-bound neighbours (also run by the live benchmark, unless
//                                       --configs or --sizes picked a subset)
//   --start                             start → capturing only, beside node's own start, with and without
//   --start-rounds 7 (BENCH_START_ROUNDS)  NODE_EXTRA_CA_CERTS when it is set (also run by the live benchmark)
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptureSession } from '../src/capture/session.js';
import { resolveTargets } from '../src/commands/resolve-targets.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { clearAnalysisCache, fileTarget } from '../src/targets/index.js';
import type { ProbeTarget } from '../src/targets/index.js';
import {
  LOADGEN,
  ROOT,
  atMost,
  cpuSeconds,
  median,
  mib,
  runLoadgen,
  startWatchedTlstap,
  TLSTAP_BIN,
  table,
  verdict,
} from './common.js';
import type { LoadgenResult, Target, TlstapRun } from './common.js';
import { PROGRAMS, bpfNsPerCall, enableBpfStats, nsPerRun, programCosts } from './bpf-stats.js';
import type { ProgramCost, ProgramName } from './bpf-stats.js';
import { formatReplayTable, replayOptionsFrom, runReplayBench } from './replay.js';
import { formatBurstTable, runBurstBench } from './burst.js';
import type { BurstBenchResult } from './burst.js';
import type { ReplayBenchResult } from './replay.js';
import { START_TARGET_MS, formatStartTable, nodeStartMedianMs, runStartBench } from './start.js';
import type { StartBenchResult } from './start.js';

type ConfigName = 'untraced' | 'floor' | 'bpf only' | 'tlstap jsonl' | 'tlstap pcapng';
// 'bpf only': tlstap.bpf.o with a consumer that drops every batch, in this process; what the
// kernel side costs without tlstap's user space competing for the CPUs.
const CONFIGS: readonly ConfigName[] = ['untraced', 'floor', 'bpf only', 'tlstap jsonl', 'tlstap pcapng'];

/** One configuration's figures at one call size, over the rounds. */
interface ConfigFigures {
  config: ConfigName;
  available: boolean;
  note?: string;
  usPerCall: number[];
  medianUsPerCall: number;
  ratioToFloor: number;
  captured: number[];
  eventsDropped: number[];
  bytesTruncated: number[];
  /** tlstap: its CPU seconds while loadgen ran (bpf only: this process's); the whole run's in cpuSecondsTotal. */
  cpuSeconds: number[];
  cpuSecondsTotal: number[];
  /** loadgen's writer and reader: CPU seconds (the BPF programs run in them, so theirs are included) and wall seconds. */
  loadCpuSeconds: number[];
  loadSeconds: number[];
  peakRss: number[];
  peakRssAnon: number[];
  startMs: number[];
  attachMs: number[];
  /** Calls loadgen made (writes + reads) per round. */
  expectedCalls: number[];
  /** bpf only: what each BPF program cost in the kernel (bpf_stats), per round. */
  programCosts?: Record<ProgramName, ProgramCost>[];
  /** bpf only: bytes of the records the ring buffer delivered, and of their padding, per round. */
  recordBytes?: RecordBytes[];
}

interface SizeResult {
  size: number;
  calls: number;
  configs: ConfigFigures[];
  targets: Record<string, Target>;
}

function arg(args: string[], name: string, env: string, fallback: number): number {
  const i = args.indexOf(name);
  const text = i >= 0 ? args[i + 1] : process.env[env];
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} (${env}) must be a positive whole number, got ${text}`);
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function emptyFigures(config: ConfigName, available: boolean, note?: string): ConfigFigures {
  return {
    config,
    available,
    ...(note === undefined ? {} : { note }),
    usPerCall: [],
    medianUsPerCall: NaN,
    ratioToFloor: NaN,
    captured: [],
    eventsDropped: [],
    bytesTruncated: [],
    cpuSeconds: [],
    cpuSecondsTotal: [],
    loadCpuSeconds: [],
    loadSeconds: [],
    peakRss: [],
    peakRssAnon: [],
    startMs: [],
    attachMs: [],
    expectedCalls: [],
    programCosts: [],
    recordBytes: [],
  };
}

/**
 * Uprobe programs already loaded by others (another tlstap, a test run, any tracer): each one adds its
 * cost to every configuration here, "untraced" included, so the figures are only clean without them.
 */
function foreignProbePrograms(): string[] {
  const r = spawnSync('bpftool', ['prog', 'list', '-j'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const progs = JSON.parse(r.stdout) as { id: number; type: string; name?: string }[];
  return progs.filter((p) => p.type === 'kprobe' || p.type === 'tracepoint').map((p) => `${p.id}:${p.name ?? '?'}`);
}

/** Milliseconds to find SSL_* in /usr/bin/node with our ELF reader (fresh analysis, median of 5). */
async function nodeElfParseMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    clearAnalysisCache();
    const t0 = performance.now();
    await fileTarget(process.execPath);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** What the ring buffer delivered: record bytes, and the padding of data records past their chunk. */
interface RecordBytes {
  records: number;
  bytes: number;
  padding: number;
}

const DATA = EVENT_LAYOUT.data;

/** A consumer that only adds up the records of each batch (framed [u32 LE length][record]) into `into`. */
function countRecordBytes(into: RecordBytes): (batch: Buffer, count: number) => void {
  return (batch, count) => {
    let pos = 0;
    for (let i = 0; i < count && pos + 4 <= batch.length; i++) {
      const length = batch.readUInt32LE(pos);
      const start = pos + 4;
      pos = start + length;
      into.records++;
      into.bytes += length;
      if (length >= DATA.size && batch.readUInt32LE(start + DATA.fields.kind.offset) === EVENT_LAYOUT.constants.EVENT_DATA) {
        into.padding += length - DATA.size - batch.readUInt32LE(start + DATA.fields.chunk_len.offset);
      }
    }
  };
}

/** loadgen under a name of this run's own: loadgens of other benchmarks or tests on the machine are not traced. */
interface OwnLoadgen {
  path: string;
  comm: string;
}

/** A copy of loadgen named `lg` + 8 hex digits in a temporary directory (removed by `remove`). */
function ownLoadgen(): OwnLoadgen & { remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-bench-'));
  const comm = `lg${randomBytes(4).toString('hex')}`;
  const path = join(dir, comm);
  copyFileSync(LOADGEN, path);
  return { path, comm, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * loadgen under a session loaded in this process: the floor, or tlstap.bpf.o with a no-op consumer.
 * For tlstap.bpf.o the kernel also measures each program's run time (bpf_stats).
 */
async function runInProcess(
  targets: ProbeTarget[],
  loadArgs: string[],
  object: 'floor.bpf.o' | 'tlstap.bpf.o',
  lg: OwnLoadgen,
): Promise<{
  load: LoadgenResult;
  /** CPU seconds this process (poller, delivery, JS) used while loadgen ran. */
  cpuSeconds: number;
  attachMs: number;
  eventsDropped: number;
  calls: number;
  costs?: Record<ProgramName, ProgramCost>;
  records: RecordBytes;
}> {
  const restoreStats = object === 'tlstap.bpf.o' ? enableBpfStats() : undefined;
  const records: RecordBytes = { records: 0, bytes: 0, padding: 0 };
  try {
    const t0 = performance.now();
    const count = countRecordBytes(records);
    // As the capture command does: a batch goes back to the poller once it was read.
    let session: CaptureSession | undefined = undefined;
    const onBatch = (batch: Buffer, n: number): void => {
      count(batch, n);
      session?.release(batch);
    };
    session = await CaptureSession.open(
      targets,
      {
        comm: lg.comm,
        maxCallBytes: EVENT_LAYOUT.constants.DEFAULT_CALL_BYTES,
        ringBufferBytes: object === 'floor.bpf.o' ? 1 << 20 : 64 << 20,
      },
      onBatch,
      object,
    );
    const attachMs = performance.now() - t0;
    let load: LoadgenResult;
    const cpu0 = process.cpuUsage();
    try {
      load = await runLoadgen(loadArgs, lg.path);
    } catch (err) {
      await session.stop();
      throw err;
    }
    const cpu = process.cpuUsage(cpu0);
    const costs = restoreStats ? programCosts(process.pid) : undefined;
    const counters = await session.stop();
    return {
      load,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      attachMs,
      eventsDropped: counters.droppedEvents,
      calls: counters.calls,
      records,
      ...(costs ? { costs } : {}),
    };
  } finally {
    restoreStats?.();
  }
}

async function runTlstap(
  extra: string[],
  loadArgs: string[],
  lg: OwnLoadgen,
): Promise<{ load: LoadgenResult; run: TlstapRun; startMs: number; attachMs: number; cpuWhileLoaded: number }> {
  const tlstap = await startWatchedTlstap(['--comm', lg.comm, ...extra], 30_000, process.env, [TLSTAP_BIN]);
  let load: LoadgenResult;
  const pid = tlstap.child.pid!;
  const cpu0 = cpuSeconds(pid);
  try {
    load = await runLoadgen(loadArgs, lg.path);
  } catch (err) {
    await tlstap.stop('SIGKILL');
    throw err;
  }
  const cpu1 = cpuSeconds(pid);
  const run = await tlstap.stop('SIGINT');
  if (run.code !== 0 || !run.summary) throw new Error(`tlstap ${extra.join(' ')} ended with code ${run.code}:\n${run.stderr}`);
  // What it still had to drain after loadgen ended is in the whole run's figure, not here.
  const cpuWhileLoaded = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : NaN;
  return { load, run, startMs: tlstap.startMs, attachMs: tlstap.attachMs, cpuWhileLoaded };
}

function sizeLabel(size: number): string {
  return size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

/** The --configs subset: names as in the table, spaces as dashes, "tlstap " optional. */
function configsFrom(args: string[]): Set<ConfigName> {
  const i = args.indexOf('--configs');
  if (i < 0) return new Set(CONFIGS);
  const wanted = (args[i + 1] ?? '').split(',').filter(Boolean);
  const byName = new Map<string, ConfigName>();
  for (const c of CONFIGS) {
    byName.set(c.replace(/ /g, '-'), c);
    byName.set(c.replace(/^tlstap /, ''), c);
  }
  return new Set(
    wanted.map((w) => {
      const c = byName.get(w);
      if (!c) throw new Error(`--configs: unknown configuration ${w}; known: ${[...byName.keys()].join(', ')}`);
      return c;
    }),
  );
}

async function liveBench(
  rounds: number,
  sizes: { size: number; calls: number }[],
  configs: Set<ConfigName>,
  log: (s: string) => void,
): Promise<{ results: SizeResult[]; elfParseMs: number; nodeStartMs: number }> {
  const root = process.getuid?.() === 0;
  const elfParseMs = await nodeElfParseMs();
  log(`live: ELF parse of ${process.execPath}: ${elfParseMs.toFixed(0)} ms`);
  const nodeStart = nodeStartMedianMs();
  const targets = root ? await resolveTargets({ lib: [] }) : [];
  if (root) log(`live: probing ${targets.map((t) => t.displayPath).join(', ')}`);
  else log('live: not root: only the untraced runs are possible');

  const results: SizeResult[] = sizes.map(({ size, calls }) => ({
    size,
    calls,
    configs: CONFIGS.map((c) => {
      if (!configs.has(c)) return emptyFigures(c, false, 'not run (--configs)');
      if (c === 'untraced') return emptyFigures(c, true);
      if (!root) return emptyFigures(c, false, 'needs root');
      return emptyFigures(c, true);
    }),
    targets: {},
  }));

  const lg = ownLoadgen();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const r of results) {
        const loadArgs = ['-n', String(r.calls), '-s', String(r.size)];
        // Rotate the order each round, so no configuration always follows the same one.
        const order = r.configs.map((_, i) => r.configs[(i + round) % r.configs.length]!);
        for (const f of order) {
          if (!f.available) continue;
          await sleep(300);
          let load: LoadgenResult;
          if (f.config === 'untraced') {
            load = await runLoadgen(loadArgs, lg.path);
          } else if (f.config === 'floor' || f.config === 'bpf only') {
            const res = await runInProcess(targets, loadArgs, f.config === 'floor' ? 'floor.bpf.o' : 'tlstap.bpf.o', lg);
            load = res.load;
            f.attachMs.push(res.attachMs);
            if (f.config === 'bpf only') {
              f.cpuSeconds.push(res.cpuSeconds);
              f.eventsDropped.push(res.eventsDropped);
              f.captured.push(res.calls);
              if (res.costs) f.programCosts!.push(res.costs);
              f.recordBytes!.push(res.records);
            }
          } else {
            // `-w FILE` comes on top of the stdout format (text); `-w -` puts pcapng alone on stdout,
            // which is /dev/null here.
            const out = f.config === 'tlstap jsonl' ? ['-f', 'jsonl', '-o', '/dev/null'] : ['-w', '-'];
            const res = await runTlstap(out, loadArgs, lg);
            load = res.load;
            const s = res.run.summary!;
            f.captured.push(s.calls);
            f.eventsDropped.push(s.eventsDropped);
            f.bytesTruncated.push(s.bytesTruncated);
            f.cpuSeconds.push(res.cpuWhileLoaded);
            f.cpuSecondsTotal.push(res.run.cpuSeconds);
            f.peakRss.push(res.run.peakRss);
            f.peakRssAnon.push(res.run.peakRssAnon);
            f.startMs.push(res.startMs);
            f.attachMs.push(res.attachMs);
          }
          f.usPerCall.push(load.us_per_call);
          f.expectedCalls.push(load.calls + load.read_calls);
          f.loadCpuSeconds.push(load.cpu_seconds);
          f.loadSeconds.push(load.seconds);
          log(`live: round ${round + 1}/${rounds} ${sizeLabel(r.size)} × ${r.calls} ${f.config}: ${load.us_per_call.toFixed(2)} µs/call`);
        }
      }
    }
  } finally {
    lg.remove();
  }
  summarize(results);
  return { results, elfParseMs, nodeStartMs: nodeStart };
}

/** Medians, ratios and targets of every configuration, from the rounds' figures. */
function summarize(results: SizeResult[]): void {
  for (const r of results) {
    r.targets = {};
    for (const f of r.configs) f.medianUsPerCall = median(f.usPerCall);
    const floor = r.configs.find((f) => f.config === 'floor')!.medianUsPerCall;
    for (const f of r.configs) f.ratioToFloor = f.medianUsPerCall / floor;
    const limit = r.size <= 1024 ? 1.1 : 1.25;
    for (const f of r.configs.filter((c) => c.config.startsWith('tlstap'))) {
      r.targets[`${f.config} / floor`] = atMost(f.available ? f.ratioToFloor : undefined, limit, `≤ ${limit.toFixed(2)}`);
      const maxDropped = f.eventsDropped.length ? Math.max(...f.eventsDropped) : undefined;
      const planned = r.size <= 1024 ? 200_000 : 20_000;
      const label = r.calls >= planned ? `0 dropped (${sizeLabel(r.size)} × ${planned})` : `0 dropped (only ${r.calls} calls run; the target is for ${planned})`;
      r.targets[`${f.config} events dropped`] = atMost(maxDropped, 0, label);
      // Every call loadgen made is either captured or counted as dropped, in every round.
      const accounted = f.captured.every((c, i) => c + f.eventsDropped[i]! === f.expectedCalls[i]);
      r.targets[`${f.config} accounted`] = {
        text: 'captured + dropped = made, every round',
        met: f.available && f.captured.length > 0 ? accounted : undefined,
      };
      r.targets[`${f.config} start to capturing`] = atMost(f.startMs.length ? median(f.startMs) : undefined, START_TARGET_MS, `< ${START_TARGET_MS} ms`);
    }
  }
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

/**
 * The least ratio to the floor that the CPU a configuration used allows: loadgen's writer and
 * reader (with the BPF programs, which run in them) and tlstap while loadgen ran, spread over every
 * CPU at once, against the floor's wall time. A ratio near it is bound by the CPU: on CPUs the
 * traced program fills, tlstap gets faster only by using less CPU.
 */
function cpuBoundRatio(r: SizeResult, f: ConfigFigures): number {
  const floor = r.configs.find((c) => c.config === 'floor');
  if (!floor?.loadSeconds.length || !f.loadCpuSeconds.length) return NaN;
  const tlstap = f.cpuSeconds.length ? median(f.cpuSeconds) : 0;
  return (median(f.loadCpuSeconds) + tlstap) / cpus().length / median(floor.loadSeconds);
}

/** The live table; `nodeStartMs`: node's own start (`node -e 0`), shown beside each start figure. */
function liveTable(results: SizeResult[], nodeStartMs?: number): string {
  const node = nodeStartMs === undefined ? '' : `, node -e 0 ${fmt(nodeStartMs, 0)} ms`;
  const rows: string[][] = [
    [
      'size × calls',
      'configuration',
      'µs/call',
      'ratio to floor',
      'captured / calls made',
      'events dropped: median (max)',
      'bytes truncated',
      'tlstap CPU s while loadgen ran (whole run; bpf only: the bench process)',
      `loadgen CPU s (BPF included) in wall s`,
      `least ratio that CPU allows on ${cpus().length} CPUs`,
      'peak RSS (anon)',
      'start → capturing',
    ],
  ];
  for (const r of results) {
    for (const f of r.configs) {
      const label = `${sizeLabel(r.size)} × ${r.calls}`;
      if (!f.available) {
        rows.push([label, f.config, f.note ?? 'not available', '', '', '', '', '', '', '', '', '']);
        continue;
      }
      const t = (key: string): string => {
        const target = r.targets[`${f.config} ${key}`];
        return target ? ` [${target.text}: ${verdict(target)}]` : '';
      };
      const traced = f.config.startsWith('tlstap');
      rows.push([
        label,
        f.config,
        fmt(f.medianUsPerCall),
        fmt(f.ratioToFloor) + t('/ floor'),
        traced || f.config === 'bpf only' ? `${median(f.captured)} / ${median(f.expectedCalls)}${t('accounted')}` : '',
        traced || f.config === 'bpf only' ? `${median(f.eventsDropped)} (max ${Math.max(...f.eventsDropped)})${t('events dropped')}` : '',
        traced ? String(Math.max(...f.bytesTruncated)) : '',
        traced ? `${fmt(median(f.cpuSeconds))} (${fmt(median(f.cpuSecondsTotal))})` : f.cpuSeconds.length ? fmt(median(f.cpuSeconds)) : '',
        f.loadCpuSeconds.length ? `${fmt(median(f.loadCpuSeconds))} in ${fmt(median(f.loadSeconds))}` : '',
        fmt(cpuBoundRatio(r, f)),
        traced ? `${mib(median(f.peakRss))} (${mib(median(f.peakRssAnon))})` : '',
        traced
          ? `${fmt(median(f.startMs), 0)} ms (attach ${fmt(median(f.attachMs), 0)} ms${node})${t('start to capturing')}`
          : f.attachMs.length
            ? `attach ${fmt(median(f.attachMs), 0)} ms`
            : '',
      ]);
    }
  }
  return table(rows);
}

/**
 * What the BPF programs cost in the kernel during the "bpf only" runs (medians over rounds); only
 * the programs that ran (the entry programs and syscall hooks depend on the kernel's features).
 */
function programCostTable(results: SizeResult[]): string | undefined {
  const runs = (c: Record<ProgramName, ProgramCost>, p: ProgramName): ProgramCost => c[p] ?? { runs: 0, ns: 0 };
  const measured = results.flatMap((r) => r.configs.find((c) => c.config === 'bpf only')?.programCosts ?? []);
  const shown = PROGRAMS.filter((p) => measured.some((c) => runs(c, p).runs > 0));
  const rows: string[][] = [['size × calls', ...shown.map((p) => `${p} ns/run (runs per call)`), 'BPF µs per call', 'record padding']];
  for (const r of results) {
    const f = r.configs.find((c) => c.config === 'bpf only');
    // Results files written before this figure existed have none.
    if (!f || !f.programCosts?.length) continue;
    const calls = median(f.expectedCalls);
    const costs = f.programCosts;
    rows.push([
      `${sizeLabel(r.size)} × ${r.calls}`,
      ...shown.map((p) => {
        const perCall = median(costs.map((c) => runs(c, p).runs)) / calls;
        return `${fmt(median(costs.map((c) => nsPerRun(runs(c, p)))), 0)} (${fmt(perCall, 2)})`;
      }),
      fmt(median(costs.map((c) => bpfNsPerCall(c, calls) / 1000)), 2),
      paddingText(f.recordBytes ?? []),
    ]);
  }
  return rows.length > 1 ? table(rows) : undefined;
}

/** The padding of the rounds' data records: bytes and share of what the ring buffer delivered (worst round). */
function paddingText(rounds: RecordBytes[]): string {
  if (!rounds.length) return 'n/a';
  const worst = rounds.reduce((a, b) => (b.padding / b.bytes > a.padding / a.bytes ? b : a));
  return `${worst.padding} B (${fmt((100 * worst.padding) / Math.max(worst.bytes, 1), 1)} %)`;
}

/** `--from FILE`: prints the tables of an earlier results file again (with this version's targets). */
function reprint(file: string): void {
  const report = JSON.parse(readFileSync(file, 'utf8')) as {
    live?: { results: SizeResult[]; elfParseMs: number; nodeStartMs?: number };
    replay?: ReplayBenchResult;
    burst?: BurstBenchResult;
    start?: StartBenchResult;
    rounds: number;
  };
  if (report.live) {
    summarize(report.live.results);
    process.stdout.write(`Live: medians of ${report.rounds} rounds\n${liveTable(report.live.results, report.live.nodeStartMs)}\n`);
    const costs = programCostTable(report.live.results);
    if (costs) process.stdout.write(`BPF programs during "bpf only":\n${costs}\n`);
    process.stdout.write(`ELF parse of /usr/bin/node: ${fmt(report.live.elfParseMs, 0)} ms\n`);
    if (report.live.nodeStartMs !== undefined) process.stdout.write(`node -e 0: ${fmt(report.live.nodeStartMs, 0)} ms\n`);
  }
  if (report.replay) process.stdout.write(`\n${formatReplayTable(report.replay)}\n`);
  if (report.burst) process.stdout.write(`\n${formatBurstTable(report.burst)}\n`);
  if (report.start) process.stdout.write(`\n${formatStartTable(report.start)}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const from = args.indexOf('--from');
  if (from >= 0) {
    reprint(args[from + 1] ?? '');
    return;
  }
  const onlyStart = args.includes('--start');
  const onlyBurst = args.includes('--burst');
  const onlyReplay = args.includes('--replay') || onlyBurst || onlyStart;
  const onlyLive = args.includes('--live') || onlyBurst || onlyStart;
  const rounds = arg(args, '--rounds', 'BENCH_ROUNDS', 3);
  const allSizes = [
    { name: '1k', size: 1024, calls: arg(args, '--n1k', 'BENCH_N_1K', 200_000) },
    { name: '16k', size: 16384, calls: arg(args, '--n16k', 'BENCH_N_16K', 20_000) },
  ];
  const sizeNames = args.includes('--sizes') ? (args[args.indexOf('--sizes') + 1] ?? '').split(',') : ['1k', '16k'];
  const sizes = allSizes.filter((s) => sizeNames.includes(s.name));
  if (sizes.length === 0) throw new Error(`--sizes: expected 1k and/or 16k, got ${sizeNames.join(',')}`);
  const configs = configsFrom(args);
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const started = new Date();
  const report: Record<string, unknown> = {
    startedAt: started.toISOString(),
    host: { kernel: release(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
    rounds,
  };

  if (!onlyReplay && !onlyBurst) {
    const build = spawnSync('bash', [join(ROOT, 'bench/build.sh')], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`bench/build.sh failed:\n${build.stderr}`);
    log(`live: ${LOADGEN}; ${rounds} rounds, alternating`);
    const foreign = foreignProbePrograms();
    report.foreignProbesAtStart = foreign;
    if (foreign.length > 0) {
      process.stdout.write(
        `warning: ${foreign.length} kprobe/uprobe/tracepoint programs of other processes are loaded (${foreign.join(', ')}): ` +
          'if they probe libssl, every figure below, "untraced" too, carries their cost\n',
      );
    }
    const live = await liveBench(rounds, sizes, configs, log);
    report.live = live;
    process.stdout.write(`\nLive: loadgen N × SSL_write of S bytes over loopback TLS 1.3, reader SSL_reads them; medians of ${rounds} rounds\n`);
    process.stdout.write(`${liveTable(live.results, live.nodeStartMs)}\n`);
    const costs = programCostTable(live.results);
    if (costs) {
      process.stdout.write(
        `\nBPF programs in the kernel during "bpf only" (kernel.bpf_stats_enabled; a call is one SSL_write or SSL_read; ` +
          `syscall hooks run for every process's socket I/O):\n${costs}\n`,
      );
    }
    const elf = atMost(live.elfParseMs, 300, '< 300 ms');
    process.stdout.write(`ELF parse of ${process.execPath} (SSL_* lookup, fresh): ${fmt(live.elfParseMs, 0)} ms [${elf.text}: ${verdict(elf)}]\n`);
    process.stdout.write(`node's own start and exit (node -e 0, as the tlstap command starts it: without NODE_EXTRA_CA_CERTS): ${fmt(live.nodeStartMs, 0)} ms of every start → capturing figure\n`);
    report.elfParseTarget = elf;
  }
  // A --configs or --sizes subset is for working on one figure: the burst and the start are not among them.
  const subset = args.includes('--configs') || args.includes('--sizes');
  if ((!onlyReplay && !onlyBurst && !subset) || onlyStart) {
    if (process.getuid?.() !== 0) throw new Error('the start benchmark needs root (tlstap attaches its probes)');
    const start: StartBenchResult = await runStartBench({ rounds: arg(args, '--start-rounds', 'BENCH_START_ROUNDS', 7), log });
    report.start = start;
    process.stdout.write(`\n${formatStartTable(start)}\n`);
  }
  if ((onlyBurst || (!onlyReplay && !subset)) && !onlyStart) {
    const burst: BurstBenchResult = await runBurstBench({ mib: arg(args, '--burst-mib', 'BENCH_BURST_MIB', 256), rounds, log });
    report.burst = burst;
    process.stdout.write(`\n${formatBurstTable(burst)}\n`);
  }
  if (!onlyLive) {
    const replay: ReplayBenchResult = await runReplayBench({ ...replayOptionsFrom(args), rounds, log });
    report.replay = replay;
    process.stdout.write(`\n${formatReplayTable(replay)}\n`);
  }

  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nwritten: ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
