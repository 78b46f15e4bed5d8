// The replay benchmark: the user-space pipeline alone (record reader → assembler → formatter),
// with no kernel in the way and no privileges needed.
//
// It writes a recording of 1 KiB calls straight in the --record format (RecordWriter, batches
// framed [u32 LE length][record] as the native poller hands them over), then times
// `tlstap replay FILE -f jsonl -o /dev/null` and `-w -` (pcapng on stdout, which is /dev/null),
// alternating and repeated, and deletes the file.
//
//   node dist/bench/replay.js [--replay-mb 512] [--rounds 3]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { RecordWriter } from '../src/record/index.js';
import { hostInfo, tlstapVersion } from '../src/version.js';
import { CLI, atLeast, median, table, verdict } from './common.js';
import type { Target } from './common.js';

type Fields = Record<string, { offset: number; size: number }>;
/** The data record's fields and header size. */
const F: Fields = EVENT_LAYOUT.data.fields;
const HEADER: number = EVENT_LAYOUT.data.size;

function field(name: string): number {
  const f = F[name];
  if (!f) throw new Error(`the event layout has no field ${name}`);
  return f.offset;
}

/** Settings of the replay benchmark. */
export interface ReplayBenchOptions {
  /** Size of the generated recording in MiB (payload and framing). */
  megabytes: number;
  rounds: number;
  payloads: ReplayPayload[];
  /** Payload bytes per call. */
  callBytes: number;
  log?: (line: string) => void;
}

/** What the calls carry: HTTP with a JSON body (the `text` path, escapes every few bytes) or random bytes (`base64`). */
export type ReplayPayload = 'http-json' | 'binary';

/** One output format's figures for one payload. */
export interface ReplayFigure {
  format: 'jsonl' | 'pcapng';
  payload: ReplayPayload;
  available: boolean;
  fileBytes: number;
  records: number;
  /** Wall seconds of each round, tlstap start to exit. */
  seconds: number[];
  /** Median wall seconds. */
  medianSeconds: number;
  /** Median wall seconds minus the start-up of tlstap replaying an empty recording. */
  pipelineSeconds: number;
  /** File bytes per second (10^6), pipeline only. */
  mbPerSecond: number;
  /** File bytes per second (10^6), whole process. */
  mbPerSecondWall: number;
  eventsPerSecond: number;
  eventsPerSecondWall: number;
  calls: number | undefined;
  targets: { mbPerSecond: Target; eventsPerSecond: Target };
}

/** What the replay benchmark measured. */
export interface ReplayBenchResult {
  callBytes: number;
  /** Median seconds for `tlstap replay` of a recording with no frames: node start-up and module loading. */
  startupSeconds: number;
  figures: ReplayFigure[];
}

function payload(kind: ReplayPayload, bytes: number): Buffer {
  if (kind === 'binary') {
    // Deterministic noise (xorshift32): no valid UTF-8 in 1 KiB, so the base64 path.
    const b = Buffer.alloc(bytes);
    let x = 2463534242;
    for (let i = 0; i < bytes; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    return b;
  }
  const head = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n';
  let text = head;
  while (text.length < bytes) text += '{"id":12345,"name":"tlstap","items":[1,2,3],"ok":true}\r\n';
  return Buffer.from(text.slice(0, bytes), 'latin1');
}

function fileHeader(): Parameters<typeof RecordWriter.create>[1] {
  return {
    tlstapVersion: tlstapVersion(),
    createdAt: new Date().toISOString(),
    layout: EVENT_LAYOUT as unknown as Record<string, unknown>,
    littleEndian: true,
    files: ['/usr/lib/x86_64-linux-gnu/libssl.so.3'],
    monotonicToWallNs: '1700000000000000000',
    host: hostInfo(),
    settings: { pid: null, uid: null, comm: null, maxBytes: EVENT_LAYOUT.constants.DEFAULT_CALL_BYTES },
  };
}

/** A template batch of `count` single-chunk calls of `callBytes`, alternating SSL_write and SSL_read. */
function templateBatch(count: number, callBytes: number, kind: ReplayPayload): Buffer {
  const recLen = HEADER + callBytes;
  const batch = Buffer.alloc(count * (4 + recLen));
  const data = payload(kind, callBytes);
  for (let i = 0; i < count; i++) {
    const at = i * (4 + recLen);
    const rec = at + 4;
    const write = i % 2 === 0;
    const func = write ? 1 : 0; // TLS_FUNCTIONS: SSL_read, SSL_write, ...
    batch.writeUInt32LE(recLen, at);
    batch.writeBigUInt64LE(0x55d0c0a1b2c0n, rec + field('ssl'));
    batch.writeBigUInt64LE(BigInt(func), rec + field('cookie'));
    batch.writeUInt32LE(EVENT_LAYOUT.constants.EVENT_DATA, rec + field('kind'));
    batch.writeUInt32LE(write ? 4242 : 4243, rec + field('pid'));
    batch.writeUInt32LE(write ? 4242 : 4243, rec + field('tid'));
    batch.writeUInt32LE(1000, rec + field('uid'));
    batch.writeUInt32LE(callBytes, rec + field('total_len'));
    batch.writeUInt32LE(0, rec + field('truncated'));
    batch.writeUInt32LE(0, rec + field('chunk_offset'));
    batch.writeUInt32LE(callBytes, rec + field('chunk_len'));
    batch[rec + field('func')] = func;
    batch[rec + field('dir')] = write ? EVENT_LAYOUT.constants.DIR_WRITE : EVENT_LAYOUT.constants.DIR_READ;
    batch.write('loadgen', rec + field('comm'), F.comm!.size, 'latin1');
    data.copy(batch, rec + HEADER);
  }
  return batch;
}

/** Writes a recording of about `bytes` bytes of `callBytes` calls; resolves with the record count. */
export async function writeRecording(path: string, bytes: number, callBytes: number, kind: ReplayPayload = 'http-json'): Promise<number> {
  const recLen = HEADER + callBytes;
  // About 4 MiB per frame, the size of the native poller's batches.
  const perBatch = Math.max(1, Math.floor((4 << 20) / (4 + recLen)));
  const template = templateBatch(perBatch, callBytes, kind);
  const writer = await RecordWriter.create(path, fileHeader());
  let records = 0;
  let ts = 81_234_567_890_123n;
  const tsAt = field('ts_ns');
  while (writer.bytesWritten + writer.queuedByteCount < bytes) {
    const batch = Buffer.from(template);
    for (let i = 0; i < perBatch; i++) {
      batch.writeBigUInt64LE(ts, i * (4 + recLen) + 4 + tsAt);
      ts += 1500n;
    }
    writer.writeBatch(batch, perBatch);
    records += perBatch;
    // The writer drops batches beyond its queue limit: keep the queue short.
    while (writer.queuedByteCount > 32 << 20) await new Promise((r) => setTimeout(r, 5));
  }
  await writer.close();
  return records;
}

/** Runs `tlstap replay ARGS`; resolves with wall seconds and the call count of its summary. */
function timeReplay(args: readonly string[]): Promise<{ seconds: number; calls: number | undefined }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, 'replay', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) {
        reject(new Error(`tlstap replay ${args.join(' ')} exited ${code}:\n${stderr}`));
        return;
      }
      const m = /tlstap: (\d+) calls?/.exec(stderr);
      resolve({ seconds, calls: m ? Number(m[1]) : undefined });
    });
  });
}

// Output to /dev/null through -o/-w as the user would. Without root, `-o /dev/null` fails (tlstap
// fchmods the file it opens to 0600, reported as a bug), so stdout, itself /dev/null here, is used.
const AS_ROOT = process.getuid?.() === 0;
const FORMATS = [
  { format: 'jsonl', args: AS_ROOT ? ['-f', 'jsonl', '-o', '/dev/null'] : ['-f', 'jsonl'] },
  // `-w FILE` comes on top of the stdout format (text); `-w -` is pcapng alone, on stdout (/dev/null).
  { format: 'pcapng', args: ['-w', '-'] },
] as const;

/** For each payload: generates a recording, times replay to each format (alternating, repeated), deletes it. */
export async function runReplayBench(opts: ReplayBenchOptions): Promise<ReplayBenchResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-replay-bench-'));
  const figures: ReplayFigure[] = [];
  const startup: number[] = [];
  try {
    const empty = join(dir, 'empty.tlstap');
    await writeRecording(empty, 0, opts.callBytes);
    for (const kind of opts.payloads) {
      const big = join(dir, `${kind}.tlstap`);
      log(`replay: writing a ${opts.megabytes} MiB recording of ${opts.callBytes}-byte ${kind} calls to ${dir}`);
      const g0 = performance.now();
      const records = await writeRecording(big, opts.megabytes * 1024 * 1024, opts.callBytes, kind);
      const fileBytes = statSync(big).size;
      log(`replay: ${records} records, ${fileBytes} bytes in ${((performance.now() - g0) / 1000).toFixed(1)} s`);
      const formats = FORMATS.map((f) => ({ ...f, available: true, seconds: [] as number[], calls: undefined as number | undefined }));
      for (let round = 0; round < opts.rounds; round++) {
        startup.push((await timeReplay([empty, ...FORMATS[0].args])).seconds);
        // Alternate the order between rounds, so neither format always runs on a warmer cache.
        const order = round % 2 === 0 ? formats : [...formats].reverse();
        for (const f of order) {
          if (!f.available) continue;
          const r = await timeReplay([big, ...f.args]);
          f.seconds.push(r.seconds);
          f.calls = r.calls;
          log(`replay: round ${round + 1}/${opts.rounds} ${kind} ${f.format}: ${r.seconds.toFixed(2)} s`);
        }
      }
      rmSync(big, { force: true });
      for (const f of formats) {
        const wall = median(f.seconds);
        figures.push({
          format: f.format,
          payload: kind,
          available: f.available,
          fileBytes,
          records,
          seconds: f.seconds,
          medianSeconds: wall,
          pipelineSeconds: NaN,
          mbPerSecond: NaN,
          mbPerSecondWall: fileBytes / 1e6 / wall,
          eventsPerSecond: NaN,
          eventsPerSecondWall: records / wall,
          calls: f.calls,
          targets: { mbPerSecond: atLeast(undefined, 500, ''), eventsPerSecond: atLeast(undefined, 300_000, '') },
        });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const startupSeconds = median(startup);
  for (const f of figures) {
    f.pipelineSeconds = f.medianSeconds - startupSeconds;
    f.mbPerSecond = f.fileBytes / 1e6 / f.pipelineSeconds;
    f.eventsPerSecond = f.records / f.pipelineSeconds;
    f.targets = {
      mbPerSecond: atLeast(f.available ? f.mbPerSecond : undefined, 500, '≥ 500 MB/s'),
      eventsPerSecond: atLeast(f.available ? f.eventsPerSecond : undefined, 300_000, '≥ 300 000 events/s'),
    };
  }
  return { callBytes: opts.callBytes, startupSeconds, figures };
}

/** The replay table as text. */
export function formatReplayTable(r: ReplayBenchResult): string {
  const rows: string[][] = [['payload', 'format', 'file', 'wall s', 'pipeline MB/s', 'pipeline events/s', 'wall MB/s', 'wall events/s', 'calls out']];
  for (const f of r.figures) {
    const head = [f.payload, f.format, `${(f.fileBytes / 1e6).toFixed(0)} MB, ${f.records} calls`];
    if (!f.available) {
      rows.push([...head, 'not available: replay has no -w option yet', '', '', '', '', '']);
      continue;
    }
    rows.push([
      ...head,
      f.medianSeconds.toFixed(2),
      `${f.mbPerSecond.toFixed(0)} [${f.targets.mbPerSecond.text}: ${verdict(f.targets.mbPerSecond)}]`,
      `${Math.round(f.eventsPerSecond)} [${f.targets.eventsPerSecond.text}: ${verdict(f.targets.eventsPerSecond)}]`,
      f.mbPerSecondWall.toFixed(0),
      String(Math.round(f.eventsPerSecondWall)),
      String(f.calls ?? '?'),
    ]);
  }
  return (
    `Replay of ${r.callBytes}-byte calls, medians of the rounds; "pipeline" subtracts tlstap's start-up ` +
    `(replay of an empty recording: ${(r.startupSeconds * 1000).toFixed(0)} ms)\n${table(rows)}`
  );
}

function flag(args: string[], name: string, env: string, fallback: number): number {
  const i = args.indexOf(name);
  const text = i >= 0 ? args[i + 1] : process.env[env];
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} (${env}) must be a positive number, got ${text}`);
  return value;
}

/** Replay settings from flags and environment, shared with run.ts. */
export function replayOptionsFrom(args: string[]): ReplayBenchOptions {
  return {
    megabytes: flag(args, '--replay-mb', 'BENCH_REPLAY_MB', 512),
    rounds: flag(args, '--rounds', 'BENCH_ROUNDS', 3),
    payloads: ['http-json', 'binary'],
    callBytes: 1024,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runReplayBench(replayOptionsFrom(process.argv.slice(2)));
  process.stdout.write(`${formatReplayTable(result)}\n`);
}
