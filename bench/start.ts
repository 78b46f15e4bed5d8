// Start → capturing: wall time from spawning `tlstap` to its `capturing (...)` line, next to node's
// own start and exit (`node -e 0`) in the same environment. The `tlstap` command (bin/tlstap.js, what
// npm installs) starts node without NODE_EXTRA_CA_CERTS: node 20 reads that whole bundle before any
// script runs. When the variable is set, `node dist/src/cli.js` (which pays for it) is measured too,
// with and without it. Used by `npm run bench` (`--start` alone, and after the live benchmark).
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_STORE_DIR, STORE_FILE_NAME } from '../src/targets/analysis-store.js';
import { resolveTargets } from '../src/commands/resolve-targets.js';
import { CLI, TLSTAP_BIN, atMost, median, startWatchedTlstap, table, verdict } from './common.js';
import type { Target } from './common.js';

/** The start target of issue 16. */
export const START_TARGET_MS = 250;

/** The figures of one environment over the rounds. */
export interface StartFigures {
  /** How tlstap was started and in which environment, e.g. '`tlstap`, as set here'. */
  env: string;
  /** `node -e 0`, spawn to exit, per run, in the environment tlstap's node starts in. */
  nodeMs: number[];
  /** Spawn to the `capturing` line, per round. */
  startMs: number[];
  /** What tlstap says the wait for the load and the attach took, per round. */
  attachMs: number[];
  /** TLSTAP_TIMING milestones (ms since tlstap's process started), per round, by name. */
  milestones: Record<string, number[]>;
  /** CPU ms tlstap had used by then (TLSTAP_TIMING), per round. */
  cpuMs: number[];
  target: Target;
}

/** The start benchmark's result. */
export interface StartBenchResult {
  rounds: number;
  args: string[];
  /** What the start probes on this machine (found once, before the rounds). */
  files: string[];
  /** Go programs among them: their probe plans are made at start, and Go's programs loaded (docs/performance.md). */
  goPrograms: string[];
  figures: StartFigures[];
}

/** The arguments of the measured start: the system's libraries, a comm nothing has, no output. */
const ARGS = ['--comm', 'tlstap-bench-s', '-f', 'none'];

/** `node -e 0` from spawn to exit, in ms, with `env`. */
function nodeStartMs(env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0'], { env });
  return performance.now() - t0;
}

/** The environment the `tlstap` command starts node in: this process's, less NODE_EXTRA_CA_CERTS (bin/tlstap.js). */
export function commandNodeEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** `node -e 0` from spawn to exit, median of `runs`, as the `tlstap` command starts node. */
export function nodeStartMedianMs(runs = 7): number {
  const env = commandNodeEnv();
  return median(Array.from({ length: runs }, () => nodeStartMs(env)));
}

/** Parses `tlstap: timing (ms since start): modules loaded 120, ...; cpu 300 ms`. */
export function parseTiming(stderr: string): { milestones: Record<string, number>; cpuMs: number } | undefined {
  const m = /tlstap: timing \(ms since start\): (.*); cpu (\d+) ms/.exec(stderr);
  if (!m) return undefined;
  const milestones: Record<string, number> = {};
  for (const part of m[1]!.split(', ')) {
    const at = /^(.*) (\d+)$/.exec(part);
    if (at) milestones[at[1]!] = Number(at[2]);
  }
  return { milestones, cpuMs: Number(m[2]) };
}

/** Runs `rounds` starts in each environment, alternating, each stopped with SIGINT once capturing. */
export async function runStartBench(opts: { rounds: number; log: (s: string) => void }): Promise<StartBenchResult> {
  const asSet: NodeJS.ProcessEnv = { ...process.env, TLSTAP_TIMING: '1' };
  const without: NodeJS.ProcessEnv = { ...commandNodeEnv(), TLSTAP_TIMING: '1' };
  const bin = [TLSTAP_BIN];
  const cli = [process.execPath, CLI];
  // nodeEnv: the environment node itself starts in (the `tlstap` command starts it without the bundle).
  // cold: the analysis store's file is removed before each start (it is written again by that start).
  const envs: { name: string; env: NodeJS.ProcessEnv; nodeEnv: NodeJS.ProcessEnv; command: string[]; cold?: boolean }[] = [
    { name: '`tlstap`, as set here', env: asSet, nodeEnv: without, command: bin },
    { name: '`tlstap`, as set here, analysis store cold', env: asSet, nodeEnv: without, command: bin, cold: true },
  ];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    envs.push({ name: '`node dist/src/cli.js`, as set here', env: asSet, nodeEnv: asSet, command: cli });
    envs.push({ name: '`node dist/src/cli.js` without NODE_EXTRA_CA_CERTS', env: without, nodeEnv: without, command: cli });
  }
  const targets = await resolveTargets({ lib: [], flavour: false });
  const files = targets.map((t) => t.displayPath);
  const goPrograms = targets.filter((t) => (t.goSites?.length ?? 0) > 0).map((t) => t.displayPath);
  const figures: StartFigures[] = envs.map(({ name }) => ({
    env: name,
    nodeMs: [],
    startMs: [],
    attachMs: [],
    milestones: {},
    cpuMs: [],
    target: { text: '', met: undefined },
  }));
  for (let round = 0; round < opts.rounds; round++) {
    for (const [i, { env, nodeEnv, command, cold }] of envs.entries()) {
      const f = figures[i]!;
      f.nodeMs.push(nodeStartMs(nodeEnv));
      if (cold) rmSync(join(DEFAULT_STORE_DIR, STORE_FILE_NAME), { force: true });
      const tlstap = await startWatchedTlstap(ARGS, 30_000, env, command);
      const run = await tlstap.stop('SIGINT');
      if (run.code !== 0) throw new Error(`tlstap ${ARGS.join(' ')} ended with code ${run.code}:\n${run.stderr}`);
      f.startMs.push(tlstap.startMs);
      f.attachMs.push(tlstap.attachMs);
      const timing = parseTiming(run.stderr);
      if (timing) {
        f.cpuMs.push(timing.cpuMs);
        for (const [name, ms] of Object.entries(timing.milestones)) (f.milestones[name] ??= []).push(ms);
      }
      opts.log(`start: round ${round + 1}/${opts.rounds} ${f.env}: ${tlstap.startMs.toFixed(0)} ms (node -e 0: ${f.nodeMs.at(-1)!.toFixed(0)} ms)`);
    }
  }
  for (const f of figures) f.target = startTarget(f);
  return { rounds: opts.rounds, args: ARGS, files, goPrograms, figures };
}

/** The target on one environment's median. */
export function startTarget(f: Pick<StartFigures, 'startMs'>): Target {
  return atMost(f.startMs.length ? median(f.startMs) : undefined, START_TARGET_MS, `< ${START_TARGET_MS} ms`);
}

function ms(values: readonly number[]): string {
  if (values.length === 0) return 'n/a';
  return `${median(values).toFixed(0)} (${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)})`;
}

/** The start table: per environment, node's start beside tlstap's, the milestones and the target. */
export function formatStartTable(result: StartBenchResult): string {
  const names = [...new Set(result.figures.flatMap((f) => Object.keys(f.milestones)))];
  const rows: string[][] = [
    ['environment', 'node -e 0 ms', 'start → capturing ms', 'less node -e 0', 'attach ms', ...names.map((n) => `${n} ms`), 'CPU ms', 'target'],
  ];
  for (const f of result.figures) {
    const target = f.target.text === '' ? startTarget(f) : f.target;
    rows.push([
      f.env,
      ms(f.nodeMs),
      ms(f.startMs),
      (median(f.startMs) - median(f.nodeMs)).toFixed(0),
      ms(f.attachMs),
      ...names.map((n) => ms(f.milestones[n] ?? [])),
      ms(f.cpuMs),
      `${target.text}: ${verdict(target)}`,
    ]);
  }
  return (
    `Start → capturing: \`tlstap ${result.args.join(' ')}\` (TLSTAP_TIMING=1) from spawn to its "capturing" line, stopped with SIGINT; ` +
    `medians (min–max) of ${result.rounds} rounds; milestones in ms since tlstap's process started\n${table(rows)}\n` +
    `probed: ${(result.files ?? []).length} files (${(result.files ?? []).join(', ')}); ` +
    ((result.goPrograms ?? []).length > 0
      ? `Go programs among them: ${result.goPrograms.join(', ')}: their probe plans and Go's BPF programs are part of every start here`
      : 'no Go program among them')
  );
}
