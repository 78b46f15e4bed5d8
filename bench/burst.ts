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
import { startWatchedTlstap } from './common.js';
import type { TlstapRun } from './common.js';

/** What a burst captures with: nothing, `-w FILE`, or `-f jsonl -o FILE --har FILE`. */
export type BurstOutputs = 'untraced' | 'pcapng' | 'jsonl-har';

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
  /** -w only: the response body rebuilt from the pcapng equals the file. */
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
  const args =
    outputs === 'pcapng'
      ? ['-w', pcap, '-f', 'none']
      : ['-f', 'jsonl', '-o', join(setup.dir, `out-${tag}.jsonl`), '--har', join(setup.dir, `out-${tag}.har`)];
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
    pcapngBodyOk: outputs === 'pcapng' ? pcapngBodyMatches(pcap, setup) : undefined,
  };
  for (const file of [body, pcap]) rmSync(file, { force: true });
  rmSync(join(setup.dir, `out-${tag}.jsonl`), { force: true });
  rmSync(join(setup.dir, `out-${tag}.har`), { force: true });
  return round;
}
