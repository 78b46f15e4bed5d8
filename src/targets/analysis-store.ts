// What discovery found in each file, kept on disk between runs (root only): a start reads
// /usr/bin/node's 110 000-entry .symtab and every library's tables again otherwise. An entry decides
// where uprobes go, so the file is trusted only as far as its key and its owner prove:
// - the key is the file's identity: device, inode, size, mtime and ctime (the kernel sets ctime on every
//   write, chmod and utimes; only the clock's owner can set it back), and a build of tlstap: its
//   version and the compiled analysis module's own size and mtime (every build rewrites it). Its one
//   blind spot, as for make: a file rewritten in place at the same size within one tick of the
//   file system's clock (a few ms) of the write before it;
// - the directory (0700) and the file (0600) must belong to the effective user and be writable by no
//   one else, else the cache is neither read nor written; opened without following symlinks;
// - every entry is checked field by field (known function names, offsets inside the file's size);
//   a file that fails a check is ignored as a whole, and rewritten.
// Go programs are not kept (their facts are analysed again at every start). A failed write is ignored.
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROBED_FUNCTIONS } from '../events/types.js';
import type { ProbedFunction } from '../events/types.js';
import { tlstapVersion } from '../version.js';
import type { SymbolAnalysis } from './analyze.js';
import type { ProbeFunction } from './types.js';

/** Where root's store lives. */
export const DEFAULT_STORE_DIR = '/var/cache/tlstap';
/** The store's file in its directory. */
export const STORE_FILE_NAME = 'analysis.json';
/** Files kept; the least recently stored go first. */
export const STORE_LIMIT = 1024;
/** A larger file is not read (a valid one holds a few hundred bytes per file). */
const MAX_FILE_BYTES = 4 << 20;

/** A file's identity as stat gives it: what a stored analysis is keyed by. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** Stored analyses of files, by identity, for one build of tlstap. */
export class AnalysisStore {
  private changed = false;

  private constructor(
    private readonly file: string,
    private readonly build: string,
    private readonly entries: Map<string, SymbolAnalysis>,
  ) {}

  /**
   * The store in `dir` (created 0700 if missing; its parent must be root's and writable by no one
   * else). Undefined when not root, when `dir` cannot be made, or when it is not safe to trust
   * (`why` is told the reason then; a file that is not safe leaves the store empty, and told too).
   */
  static open(dir: string = DEFAULT_STORE_DIR, why?: (reason: string) => void): AnalysisStore | undefined {
    const euid = process.geteuid?.();
    if (euid !== 0) return undefined;
    const unsafe = safeDirectory(dir, euid);
    if (unsafe === null) return undefined;
    if (unsafe !== undefined) {
      why?.(unsafe);
      return undefined;
    }
    const file = join(dir, STORE_FILE_NAME);
    const build = buildStamp();
    return new AnalysisStore(file, build, readEntries(file, euid, build, why));
  }

  /** The stored analysis of a file with this identity, if any. */
  get(id: FileIdentity): SymbolAnalysis | undefined {
    return this.entries.get(identityKey(id));
  }

  /** Keeps an analysis (not a Go program's) for this identity. */
  set(id: FileIdentity, analysis: SymbolAnalysis): void {
    if (analysis.go !== undefined) return;
    const key = identityKey(id);
    this.entries.delete(key);
    this.entries.set(key, analysis);
    while (this.entries.size > STORE_LIMIT) this.entries.delete(this.entries.keys().next().value!);
    this.changed = true;
  }

  /** Writes the store if it changed: a new 0600 file renamed over the old one. Failures are ignored. */
  save(): void {
    if (!this.changed) return;
    this.changed = false;
    const entries: Record<string, unknown> = {};
    for (const [key, a] of this.entries) entries[key] = encode(a);
    const text = JSON.stringify({ build: this.build, entries });
    const temp = `${this.file}.${process.pid}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      writeSync(fd, text);
      closeSync(fd);
      fd = undefined;
      renameSync(temp, this.file);
    } catch {
      if (fd !== undefined) closeSync(fd);
      try {
        unlinkSync(temp);
      } catch {
        // Never created.
      }
    }
  }
}

/** The key of a file identity (also the in-memory cache's, analyze.ts). */
export function identityKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeNs}:${id.ctimeNs}`;
}

/** tlstap's version and this build of the analysis code. */
function buildStamp(): string {
  const analysis = join(dirname(fileURLToPath(import.meta.url)), 'analyze.js');
  const st = statSync(analysis, { bigint: true });
  return `${tlstapVersion()} ${process.arch} ${st.size}:${st.mtimeNs}`;
}

/**
 * Why `dir` cannot hold a trusted store, or undefined when it can (created if missing); null when it
 * is missing and cannot be made (no parent, a read-only file system): no store then, and nothing to warn about.
 */
function safeDirectory(dir: string, euid: number): string | undefined | null {
  const parent = lstatSync(dirname(dir), { throwIfNoEntry: false });
  if (parent === undefined) return null;
  if (!parent.isDirectory() || (parent.uid !== euid && parent.uid !== 0) || (parent.mode & 0o022) !== 0) {
    return `${dirname(dir)} is not a directory of root's that only root can write to`;
  }
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return null;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== euid || (st.mode & 0o077) !== 0) {
    return `${dir} is not a directory owned by uid ${euid} with mode 0700`;
  }
  return undefined;
}

/** The entries of the store file, or none when it is missing, unsafe, of another build or malformed. */
function readEntries(file: string, euid: number, build: string, why?: (reason: string) => void): Map<string, SymbolAnalysis> {
  const entries = new Map<string, SymbolAnalysis>();
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return entries;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== euid || (st.mode & 0o077) !== 0 || st.size > MAX_FILE_BYTES) {
      why?.(`${file} is not a regular file owned by uid ${euid} with mode 0600 (and under ${MAX_FILE_BYTES} bytes)`);
      return entries;
    }
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    const parsed = JSON.parse(buf.subarray(0, got).toString('utf8')) as unknown;
    if (!isRecord(parsed) || parsed.build !== build || !isRecord(parsed.entries)) return entries;
    for (const [key, value] of Object.entries(parsed.entries)) {
      const analysis = decode(key, value);
      if (analysis === undefined) {
        why?.(`${file} holds an entry that does not check out; it is ignored and rewritten`);
        return new Map();
      }
      entries.set(key, analysis);
    }
  } catch {
    return new Map();
  } finally {
    closeSync(fd);
  }
  return entries;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const PROBED = new Set<string>(PROBED_FUNCTIONS);
const KEY = /^(\d+):(\d+):(\d+):(-?\d+):(-?\d+)$/;
const DECIMAL = /^\d{1,20}$/;

function encode(a: SymbolAnalysis): unknown {
  return {
    functions: a.functions.map((f) => ({ name: f.name, fileOffset: String(f.fileOffset), address: String(f.address), ...(f.version !== undefined ? { version: f.version } : {}) })),
    missing: a.missing,
    arch: a.arch,
    ...(a.buildId !== undefined ? { buildId: a.buildId } : {}),
    ...(a.foreign !== undefined ? { foreign: a.foreign } : {}),
  };
}

/** A stored entry, checked field by field against what the analysis can produce for a file of the key's size. */
function decode(key: string, v: unknown): SymbolAnalysis | undefined {
  const k = KEY.exec(key);
  if (k === null || !isRecord(v)) return undefined;
  const size = BigInt(k[3]!);
  if (typeof v.arch !== 'string' || !Array.isArray(v.functions) || !Array.isArray(v.missing)) return undefined;
  if (!v.missing.every((n) => typeof n === 'string' && PROBED.has(n))) return undefined;
  const functions: ProbeFunction[] = [];
  for (const f of v.functions) {
    if (!isRecord(f) || typeof f.name !== 'string' || !PROBED.has(f.name)) return undefined;
    if (typeof f.fileOffset !== 'string' || !DECIMAL.test(f.fileOffset) || typeof f.address !== 'string' || !DECIMAL.test(f.address)) return undefined;
    const fileOffset = BigInt(f.fileOffset);
    if (fileOffset >= size) return undefined;
    const fn: ProbeFunction = { name: f.name as ProbedFunction, fileOffset, address: BigInt(f.address) };
    if (f.version !== undefined) {
      if (typeof f.version !== 'string') return undefined;
      fn.version = f.version;
    }
    functions.push(fn);
  }
  const analysis: SymbolAnalysis = { functions, missing: v.missing as ProbedFunction[], arch: v.arch };
  if (v.buildId !== undefined) {
    if (typeof v.buildId !== 'string' || !/^[0-9a-f]{0,128}$/.test(v.buildId)) return undefined;
    analysis.buildId = v.buildId;
  }
  if (v.foreign !== undefined) {
    if (typeof v.foreign !== 'string') return undefined;
    analysis.foreign = v.foreign;
  }
  return analysis;
}
