// Worker for the robustness test in test/elf.test.ts: truncates and mutates a copy of a real library
// and runs every ElfFile method on each case. Running in a worker lets the test stop a case that
// hangs, even in a synchronous loop. Progress goes through a SharedArrayBuffer: [case, phase].
import { copyFile, open, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ElfError, ElfFile } from '../../src/elf/index.js';

/** What the test asks for. */
export interface FuzzRequest {
  source: string;
  workDir: string;
  seed: number;
  truncations: number;
  mutations: number;
  progress: SharedArrayBuffer;
}

/** What the worker reports back. */
export interface FuzzReport {
  cases: number;
  /** Cases where every method succeeded. */
  parsed: number;
  /** Cases where at least one method threw ElfError (and nothing else was thrown). */
  rejected: number;
  /** Anything other than success or ElfError, with the case that caused it. */
  failures: string[];
  /** The longest time one case took, in ms (reported, not asserted). */
  slowestMs: number;
}

const NAMES = ['SSL_read', 'SSL_write', 'SSL_read_ex', 'SSL_write_ex', 'tls_send', 'tls_recv', 'tls_helper'];

/** Small deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
}

/** Runs every method; returns 'parsed', 'rejected' or a failure description. */
async function exercise(path: string): Promise<string> {
  let elf: ElfFile;
  try {
    elf = await ElfFile.open(path);
  } catch (err) {
    return err instanceof ElfError ? 'rejected' : describe(err);
  }
  const steps: (() => Promise<unknown>)[] = [
    () => elf.buildId(),
    () => elf.neededLibraries(),
    () => elf.findFunctions(NAMES),
    () => elf.findFunctions(['no_such_function_anywhere']),
    () => elf.symbols('dynsym'),
    () => elf.symbols('symtab'),
    () => elf.findInSection('.rodata', /ssl\/[a-z_]+\.c/),
    async () => elf.fileOffsetOf(elf.entry),
  ];
  let outcome = 'parsed';
  try {
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        if (!(err instanceof ElfError)) return describe(err);
        outcome = 'rejected';
      }
    }
  } finally {
    await elf.close();
  }
  return outcome;
}

/** Byte ranges worth corrupting: headers and the metadata sections findFunctions and friends read. */
function regions(original: Buffer): [number, number][] {
  // Read the header fields directly (any class and byte order), independently of src/elf.
  const is64 = original[4] === 2;
  const le = original[5] === 1;
  const u16 = (at: number): number => (le ? original.readUInt16LE(at) : original.readUInt16BE(at));
  const u32 = (at: number): number => (le ? original.readUInt32LE(at) : original.readUInt32BE(at));
  const word = (at: number): number => (is64 ? Number(le ? original.readBigUInt64LE(at) : original.readBigUInt64BE(at)) : u32(at));
  const w = is64 ? 8 : 4;
  const phoff = word(24 + w);
  const shoff = word(24 + 2 * w);
  const rest = 24 + 3 * w + 4;
  const phentsize = u16(rest + 2);
  const phnum = u16(rest + 4);
  const shentsize = u16(rest + 6);
  const shnum = u16(rest + 8) || (shoff > 0 ? word(shoff + (is64 ? 32 : 20)) : 0);
  const out: [number, number][] = [
    [0, is64 ? 64 : 52],
    [phoff, phoff + phnum * phentsize],
    [shoff, shoff + shnum * shentsize],
  ];
  const interesting = [2, 3, 4, 5, 6, 7, 11, 0x6ffffff6, 0x6ffffffd, 0x6ffffffe, 0x6fffffff];
  for (let i = 1; i < shnum; i++) {
    const at = shoff + i * shentsize;
    const type = u32(at + 4);
    const offset = word(at + (is64 ? 24 : 16));
    const size = word(at + (is64 ? 32 : 20));
    if (interesting.includes(type) && size > 0) out.push([offset, Math.min(offset + size, original.length)]);
  }
  return out;
}

async function main(request: FuzzRequest): Promise<FuzzReport> {
  const progress = new Int32Array(request.progress);
  const random = prng(request.seed);
  const original = await readFile(request.source);
  const report: FuzzReport = { cases: 0, parsed: 0, rejected: 0, failures: [], slowestMs: 0 };
  const record = async (label: string, path: string): Promise<void> => {
    Atomics.store(progress, 0, report.cases);
    const started = performance.now();
    const outcome = await exercise(path);
    report.slowestMs = Math.max(report.slowestMs, performance.now() - started);
    report.cases++;
    if (outcome === 'parsed') report.parsed++;
    else if (outcome === 'rejected') report.rejected++;
    else report.failures.push(`${label}: ${outcome}`);
  };

  // Mutations: corrupt 1-3 spots of a copy, run, restore.
  Atomics.store(progress, 1, 1);
  const ranges = regions(original);
  const work = join(request.workDir, 'mutated.so');
  await copyFile(request.source, work);
  const handle = await open(work, 'r+');
  try {
    for (let c = 0; c < request.mutations; c++) {
      const touched: [number, Buffer][] = [];
      const count = 1 + Math.floor(random() * 3);
      const notes: string[] = [];
      for (let k = 0; k < count; k++) {
        const [from, to] = random() < 0.9 ? ranges[Math.floor(random() * ranges.length)]! : [0, original.length];
        const at = from + Math.floor(random() * Math.max(1, to - from));
        const patch = mutation(random, original, at, original[5] === 1);
        if (at + patch.length > original.length) continue;
        touched.push([at, original.subarray(at, at + patch.length)]);
        await handle.write(patch, 0, patch.length, at);
        notes.push(`${patch.toString('hex')}@${at}`);
      }
      await record(`mutation ${c} (${notes.join(', ')})`, work);
      for (const [at, bytes] of touched.reverse()) await handle.write(bytes, 0, bytes.length, at);
    }
  } finally {
    await handle.close();
  }

  // Truncations: every length up to 512, every region edge +-1, and random lengths, longest first.
  Atomics.store(progress, 1, 2);
  const lengths = new Set<number>();
  for (let n = 0; n <= 512; n++) lengths.add(n);
  for (const [from, to] of ranges) for (const edge of [from - 1, from, from + 1, to - 1, to, to + 1]) lengths.add(edge);
  while (lengths.size < 512 + request.truncations) lengths.add(Math.floor(random() * original.length));
  const cut = join(request.workDir, 'truncated.so');
  await copyFile(request.source, cut);
  for (const length of [...lengths].filter((n) => n >= 0 && n < original.length).sort((a, b) => b - a)) {
    await truncate(cut, length);
    await record(`truncated to ${length} bytes`, cut);
  }
  return report;
}

/** One corruption at `at`: a byte, a bit flip, or a 4/8-byte field set to an extreme or random value. */
function mutation(random: () => number, original: Buffer, at: number, littleEndian: boolean): Buffer {
  const r = random();
  if (r < 0.2) return Buffer.from([Math.floor(random() * 256)]);
  if (r < 0.35) return Buffer.from([(original[at] ?? 0) ^ (1 << Math.floor(random() * 8))]);
  if (r < 0.45) return Buffer.from([random() < 0.5 ? 0 : 0xff]);
  if (r < 0.8) {
    const values = [0, 1, 2, 0x7fffffff, 0xffffffff, original.length, original.length - 1, Math.floor(random() * 2 ** 32)];
    const b = Buffer.alloc(4);
    const v = values[Math.floor(random() * values.length)]! >>> 0;
    if (littleEndian) b.writeUInt32LE(v);
    else b.writeUInt32BE(v);
    return b;
  }
  const b = Buffer.alloc(8);
  const values = [0xffffffffffffffffn, 0x7fffffffffffffffn, BigInt(original.length), BigInt(Math.floor(random() * 2 ** 32)) << 16n];
  const v = values[Math.floor(random() * values.length)]!;
  if (littleEndian) b.writeBigUInt64LE(v);
  else b.writeBigUInt64BE(v);
  return b;
}

parentPort?.postMessage(await main(workerData as FuzzRequest));
