// The burst: nginx serves a large file to curl over loopback, unpaced, optionally while CPU-bound
// neighbours share the CPUs, with or without tlstap capturing. Used by `npm run bench` (the burst
// configurations) and by test/burst.e2e.test.ts.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNginx } from '../test/support/nginx.js';
import type { NginxServer } from '../test/support/nginx.js';
import { median, startWatchedTlstap, table } from './common.js';
import type { TlstapRun } from './common.js';

/** What a burst captures with: nothing, `-w FILE`, `-f jsonl -o FILE --har FILE`, or all three. */
export type BurstOutputs = 'untraced' | 'pcapng' | 'jsonl-har' | 'all';

/** A served file and the curl copy that fetches it, in a private directory. */
export interface BurstSetup {
  nginx: NginxServer;
  dir: string;
  /** curl copied under a name of its own, so `--comm` sees only this download. */
  curl: string;
  comm: string;
  bytes: number;
  sha256: string;
  close(): Promise<void>;
}

/** One download's figures. */
export interface BurstRound {
  outputs: BurstOutputs;
  neighbours: number;
  downloadMs: number;
  curlCode: number | null;
  /** The body curl wrote equals the file. */
  curlBodyOk: boolean;
  /** tlstap's figures (not for untraced). */
  tlstap?: TlstapRun;
  /** Spill peak and longest delay from the summary, when printed. */
  spillPeakBytes?: number;
  spillMaxDelayMs?: number;
  /** With -w: the response body rebuilt from the pcapng equals the file. */
  pcapngBodyOk?: boolean;
}

/** Serves `mib` MiB of random bytes from nginx, with a private copy of curl. */
export async function setUpBurst(mib: number): Promise<BurstSetup> {
  const body = randomBytes(mib * 1024 * 1024);
  const nginx = await startNginx({ files: { 'big.bin': body } });
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-burst-'));
  const comm = `bcurl${randomBytes(3).toString('hex')}`;
  const curl = join(dir, comm);
  copyFileSync('/usr/bin/curl', curl);
  return {
    nginx,
    dir,
    curl,
    comm,
    bytes: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
    close: async () => {
      await nginx.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `n` busy-looping shells; resolves to a function that ends them. */
export function startNeighbours(n: number): () => void {
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) children.push(spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  return () => {
    for (const child of children) child.kill('SIGKILL');
  };
}

function download(setup: BurstSetup, out: string): Promise<{ ms: number; code: number | null; stderr: string }> {
  const t0 = performance.now();
  const child = spawn(setup.curl, ['-sSk', '--http1.1', '-o', out, `${setup.nginx.url}/big.bin`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ ms: performance.now() - t0, code, stderr })));
}

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The spill peak (bytes) and longest delay (ms) of tlstap's stderr summary. */
export function parseSpill(stderr: string): { peakBytes: number; maxDelayMs: number } | undefined {
  const m = /spill peak:\s+([\d.]+) (B|KiB|MiB|GiB) .*output up to ([\d.]+) s late/.exec(stderr);
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B'];
  return { peakBytes: Number(m[1]) * unit, maxDelayMs: Number(m[3]) * 1000 };
}

/**
 * The payload a TCP port sent, in order, rebuilt from a pcapng file (LINKTYPE_RAW, as tlstap
 * writes it); throws at a gap or an overlap in the sequence numbers.
 */
export function tcpStreamFrom(pcapng: Buffer, fromPort: number): Buffer {
  const parts: Buffer[] = [];
  let next: number | undefined;
  for (let off = 0; off + 12 <= pcapng.length; ) {
    const type = pcapng.readUInt32LE(off);
    const total = pcapng.readUInt32LE(off + 4);
    if (total < 12 || off + total > pcapng.length) break;
    if (type === 6) {
      const captured = pcapng.readUInt32LE(off + 20);
      const pkt = pcapng.subarray(off + 28, off + 28 + captured);
      const v6 = pkt[0]! >> 4 === 6;
      const ipLen = v6 ? 40 : (pkt[0]! & 0x0f) * 4;
      const ipEnd = v6 ? 40 + pkt.readUInt16BE(4) : pkt.readUInt16BE(2);
      const proto = v6 ? pkt[6] : pkt[9];
      const tcp = pkt.subarray(ipLen, ipEnd);
      if (proto === 6 && tcp.readUInt16BE(0) === fromPort) {
        const seq = tcp.readUInt32BE(4);
        const payload = tcp.subarray((tcp[12]! >> 4) * 4);
        if (payload.length > 0) {
          if (next !== undefined && seq !== next) throw new Error(`TCP stream from port ${fromPort}: sequence ${seq} where ${next} was due`);
          parts.push(payload);
          next = (seq + payload.length) >>> 0;
        }
      }
    }
    off += total;
  }
  return Buffer.concat(parts);
}

/** Whether the HTTP response body in a pcapng equals the file (sha256). */
function pcapngBodyMatches(path: string, setup: BurstSetup): boolean {
  const stream = tcpStreamFrom(readFileSync(path), setup.nginx.port);
  const body = stream.subarray(stream.indexOf('\r\n\r\n') + 4);
  return body.length === setup.bytes && createHash('sha256').update(body).digest('hex') === setup.sha256;
}

/** One download, captured with `outputs` (or not), beside `neighbours` CPU-bound processes. */
export async function burstRound(setup: BurstSetup, outputs: BurstOutputs, neighbours: number, tlstapArgs: readonly string[] = []): Promise<BurstRound> {
  const tag = `${outputs}-${neighbours}`;
  const body = join(setup.dir, `body-${tag}`);
  const pcap = join(setup.dir, `out-${tag}.pcapng`);
  const pcapng = outputs === 'pcapng' || outputs === 'all';
  const jsonlHar = ['-f', 'jsonl', '-o', join(setup.dir, `out-${tag}.jsonl`), '--har', join(setup.dir, `out-${tag}.har`)];
  const args = outputs === 'pcapng' ? ['-w', pcap, '-f', 'none'] : outputs === 'all' ? ['-w', pcap, ...jsonlHar] : jsonlHar;
  const tlstap = outputs === 'untraced' ? undefined : await startWatchedTlstap(['--comm', setup.comm, ...args, ...tlstapArgs]);
  const stopNeighbours = startNeighbours(neighbours);
  let got: Awaited<ReturnType<typeof download>>;
  try {
    got = await download(setup, body);
  } finally {
    stopNeighbours();
  }
  const run = await tlstap?.stop('SIGINT');
  const spill = run ? parseSpill(run.stderr) : undefined;
  const round: BurstRound = {
    outputs,
    neighbours,
    downloadMs: got.ms,
    curlCode: got.code,
    curlBodyOk: got.code === 0 && statSync(body).size === setup.bytes && sha256File(body) === setup.sha256,
    tlstap: run,
    spillPeakBytes: spill?.peakBytes,
    spillMaxDelayMs: spill?.maxDelayMs,
    pcapngBodyOk: pcapng ? pcapngBodyMatches(pcap, setup) : undefined,
  };
  for (const file of [body, pcap]) rmSync(file, { force: true });
  rmSync(join(setup.dir, `out-${tag}.jsonl`), { force: true });
  rmSync(join(setup.dir, `out-${tag}.har`), { force: true });
  return round;
}

/** The burst configurations' medians over rounds. */
export interface BurstFigures {
  outputs: BurstOutputs;
  neighbours: number;
  rounds: BurstRound[];
  downloadMs: number;
  /** Download time ÷ untraced's, with the same neighbours. */
  slowdown: number;
  droppedMedian: number;
  droppedMax: number;
  spillPeakMax: number;
  spillDelayMaxMs: number;
  rssMax: number;
  /** Every round's pcapng body equalled the file (pcapng only). */
  pcapngBodyOk?: boolean;
  curlOk: boolean;
}

/** The burst benchmark's whole result. */
export interface BurstBenchResult {
  mib: number;
  figures: BurstFigures[];
}

const BURST_OUTPUTS: readonly BurstOutputs[] = ['untraced', 'pcapng', 'jsonl-har'];
const BURST_NEIGHBOURS = [0, 2] as const;

/** Runs every burst configuration `rounds` times, alternating (rotated each round). */
export async function runBurstBench(opts: { mib: number; rounds: number; log: (s: string) => void }): Promise<BurstBenchResult> {
  const setup = await setUpBurst(opts.mib);
  const configs = BURST_NEIGHBOURS.flatMap((neighbours) => BURST_OUTPUTS.map((outputs) => ({ outputs, neighbours })));
  const byConfig = configs.map(() => [] as BurstRound[]);
  try {
    for (let round = 0; round < opts.rounds; round++) {
      for (let k = 0; k < configs.length; k++) {
        const i = (k + round) % configs.length;
        const { outputs, neighbours } = configs[i]!;
        const r = await burstRound(setup, outputs, neighbours);
        byConfig[i]!.push(r);
        opts.log(
          `burst round ${round + 1}: ${outputs}, ${neighbours} neighbours: ${Math.round(r.downloadMs)} ms` +
            (r.tlstap ? `, dropped ${r.tlstap.summary?.eventsDropped}, spill ${((r.spillPeakBytes ?? NaN) / 2 ** 20).toFixed(1)} MiB` : ''),
        );
      }
    }
  } finally {
    await setup.close();
  }
  const max = (xs: number[]): number => Math.max(...xs.map((x) => (Number.isFinite(x) ? x : -Infinity)));
  const figures = configs.map(({ outputs, neighbours }, i): BurstFigures => {
    const rounds = byConfig[i]!;
    const dropped = rounds.map((r) => r.tlstap?.summary?.eventsDropped ?? NaN);
    return {
      outputs,
      neighbours,
      rounds,
      downloadMs: median(rounds.map((r) => r.downloadMs)),
      slowdown: NaN,
      droppedMedian: median(dropped),
      droppedMax: max(dropped),
      spillPeakMax: max(rounds.map((r) => r.spillPeakBytes ?? NaN)),
      spillDelayMaxMs: max(rounds.map((r) => r.spillMaxDelayMs ?? NaN)),
      rssMax: max(rounds.map((r) => r.tlstap?.peakRss ?? NaN)),
      pcapngBodyOk: outputs === 'pcapng' ? rounds.every((r) => r.pcapngBodyOk === true) : undefined,
      curlOk: rounds.every((r) => r.curlBodyOk),
    };
  });
  for (const f of figures) {
    const base = figures.find((b) => b.outputs === 'untraced' && b.neighbours === f.neighbours)!;
    f.slowdown = f.downloadMs / base.downloadMs;
  }
  return { mib: opts.mib, figures };
}

/** The burst table, each figure next to its target. */
export function formatBurstTable(result: BurstBenchResult): string {
  const fmtMib = (b: number): string => (Number.isFinite(b) && b >= 0 ? `${(b / 2 ** 20).toFixed(1)} MiB` : '');
  const mark = (met: boolean): string => (met ? 'met' : 'MISSED');
  const rows = [['outputs', 'neighbours', 'download ms', 'slowdown', 'events dropped: median (max)', 'spill peak (max)', 'output late by (max)', 'tlstap peak RSS', 'pcapng body sha256', 'curl got the file']];
  for (const f of result.figures) {
    const traced = f.outputs !== 'untraced';
    const dropTarget = f.neighbours > 0 ? ` [0: ${mark(f.droppedMax === 0)}]` : '';
    rows.push([
      f.outputs === 'pcapng' ? '-w FILE' : f.outputs === 'jsonl-har' ? '-f jsonl -o FILE --har FILE' : 'untraced',
      String(f.neighbours),
      f.downloadMs.toFixed(0),
      traced ? `${f.slowdown.toFixed(2)}×` : '1.00×',
      traced ? `${f.droppedMedian} (max ${f.droppedMax})${dropTarget}` : '',
      traced ? fmtMib(f.spillPeakMax) : '',
      traced && Number.isFinite(f.spillDelayMaxMs) ? `${(f.spillDelayMaxMs / 1000).toFixed(2)} s` : '',
      traced ? `${(f.rssMax / 1e6).toFixed(0)} MB [< 300 MB: ${mark(f.rssMax < 300e6)}]` : '',
      f.pcapngBodyOk === undefined ? '' : f.pcapngBodyOk ? 'equal [met]' : 'DIFFERS [MISSED]',
      f.curlOk ? 'yes' : 'NO',
    ]);
  }
  return (
    `Burst: nginx serves ${result.mib} MiB to curl over loopback, unpaced; neighbours are busy-looping shells; ` +
    `medians of ${result.figures[0]?.rounds.length ?? 0} rounds\n${table(rows)}`
  );
}
