// Looks inside one file: which TLS functions it defines, where, and which library they come from.
import { access, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ElfFile } from '../elf/index.js';
import { PROBED_FUNCTIONS, TLS_FUNCTIONS } from '../events/types.js';
import type { ProbedFunction } from '../events/types.js';
import { familiesDefined } from './families.js';
import { goFacts } from './go.js';
import type { GoFacts } from './go.js';
import type { FlavourInfo } from './flavour.js';
import { archLabel, foreignArchReason, hostArch } from './arch.js';
import type { ElfArch } from './arch.js';
import type { ProbeFunction, ProbeTarget } from './types.js';
import { identityKey } from './analysis-store.js';
import type { AnalysisStore } from './analysis-store.js';

/** What a file holds, independent of the path it was reached by. */
export interface FileAnalysis {
  /** Probed functions the file defines, in PROBED_FUNCTIONS order; empty if it has no plaintext function. */
  functions: ProbeFunction[];
  /** Functions of the file's APIs it lacks; every plaintext function when it has none. */
  missing: ProbedFunction[];
  flavour: ProbeTarget['flavour'];
  version?: string;
  buildId?: string;
  /** A Go program's Go version, crypto/tls functions and status (it has no TLS library functions). */
  go?: GoFacts;
  /** The CPU the file is built for ('x86_64', 'aarch64'). */
  arch: string;
  /** Set when the file is built for another architecture or ELF class: why it is not probed. */
  foreign?: string;
}

/** A file found somewhere, identified by device and inode, not yet looked into. */
export interface Candidate {
  /** The path to open and attach through. */
  openPath: string;
  displayPath: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  source: ProbeTarget['source'];
  /** Directories to look in for a DT_NEEDED companion (libcrypto) besides the file's own. */
  searchDirs?: readonly string[];
}

/** What a file's symbols tell: the probed functions, what its APIs lack, and its build ID. */
export type SymbolAnalysis = Omit<FileAnalysis, 'flavour' | 'version'>;

/** Options of analyzeFile. */
export interface AnalyzeOptions {
  /**
   * Also tell the flavour and version (default true): a scan of the file's read-only data, and often of
   * its libcrypto's too, the larger part of looking into a file. Without, flavour is 'unknown'.
   */
  flavour?: boolean;
  /** Analyses kept on disk from earlier runs (root's), read before and written after looking into a file. */
  store?: AnalysisStore;
}

// Results by file identity and version, so repeated discovery (and a process's libraries that the
// system scan already read) costs one ELF parse per file. The flavour is kept apart: it is looked
// for only when asked.
const cache = new Map<string, { symbols: Promise<SymbolAnalysis>; flavour?: Promise<FlavourInfo> }>();
const CACHE_LIMIT = 512;

/** The ELF reader, loaded on first use: a start whose files all come from the analysis store needs none of it. */
function elfReader(): Promise<typeof import('../elf/index.js')> {
  return import('../elf/index.js');
}

async function openCompanionIn<T>(
  dirs: readonly string[],
  name: string,
  fn: (companion: ElfFile) => Promise<T>,
): Promise<T | undefined> {
  for (const dir of dirs) {
    const path = join(dir, name);
    if (await access(path).then(() => true, () => false)) return (await elfReader()).withElfFile(path, fn);
  }
  return undefined;
}

async function analyzeSymbols(c: Candidate, store: AnalysisStore | undefined): Promise<SymbolAnalysis> {
  const stored = store?.get(c);
  if (stored !== undefined) return stored;
  const analysis = await (await elfReader()).withElfFile(c.openPath, (elf) => analyzeElfSymbols(elf));
  if (store !== undefined && (await stillTheSameFile(c))) store.set(c, analysis);
  return analysis;
}

/**
 * Whether `c.openPath` is still the file whose identity `c` holds: a file renamed over it (a
 * package upgrade) between that stat and the open was analysed instead, and its offsets must not
 * be stored under the old file's identity, which running processes may still map.
 */
async function stillTheSameFile(c: Candidate): Promise<boolean> {
  const now = await stat(c.openPath, { bigint: true }).catch(() => undefined);
  return (
    now !== undefined &&
    identityKey({ dev: now.dev, ino: now.ino, size: now.size, mtimeNs: now.mtimeNs, ctimeNs: now.ctimeNs }) === identityKey(c)
  );
}

/**
 * What an open ELF's symbols tell: its architecture, probed functions, what its APIs lack, its build ID
 * (any file view, any base). `runsOn` is the machine the file's programs run on (default: this one;
 * null for a device whose discovery checks the architecture itself).
 */
export async function analyzeElfSymbols(elf: ElfFile, runsOn: ElfArch | null = hostArch() ?? null): Promise<SymbolAnalysis> {
  const arch = { machine: elf.machineName, bits: elf.bits, littleEndian: elf.littleEndian };
  const foreign = runsOn === null ? undefined : foreignArchReason(arch, runsOn);
  // Another CPU's code is never probed: its symbols are not even looked up.
  if (foreign !== undefined) return { functions: [], missing: [...TLS_FUNCTIONS], arch: archLabel(arch), foreign };
  const found = await elf.findFunctions(PROBED_FUNCTIONS);
  // Only the APIs the file implements count: libssl lacks no gnutls_* function. With none (a
  // stripped library, an ordinary program), every plaintext function is missing.
  const families = familiesDefined(new Set(found.keys()));
  if (families.length === 0) {
    // A Go program carries Go's own TLS, found through its function table instead.
    const none = { functions: [], missing: [...TLS_FUNCTIONS], arch: archLabel(arch) };
    const go = await goFacts(elf);
    return go === undefined ? none : { ...none, go };
  }
  const wanted = new Set<ProbedFunction>(families.flatMap((f) => [...f.data, ...f.lifecycle]));
  const functions: ProbeFunction[] = [];
  const missing: ProbedFunction[] = [];
  for (const name of PROBED_FUNCTIONS) {
    if (!wanted.has(name)) continue;
    const fn = found.get(name);
    if (fn === undefined) {
      missing.push(name);
      continue;
    }
    const probe: ProbeFunction = { name, fileOffset: fn.fileOffset, address: fn.address };
    if (fn.version !== undefined) probe.version = fn.version;
    functions.push(probe);
  }
  const analysis: SymbolAnalysis = { functions, missing, arch: archLabel(arch) };
  const buildId = await elf.buildId();
  if (buildId !== undefined) analysis.buildId = buildId;
  return analysis;
}

async function analyzeFlavour(openPath: string, searchDirs: readonly string[]): Promise<FlavourInfo> {
  const dirs = [dirname(openPath), ...searchDirs.filter((d) => d !== dirname(openPath))];
  const { detectFlavour } = await import('./flavour.js');
  return (await elfReader()).withElfFile(openPath, (elf) => detectFlavour(elf, (name, fn) => openCompanionIn(dirs, name, fn)));
}

/** Looks into a candidate file (cached by device, inode, size, mtime and ctime); rejects with ElfError. */
export async function analyzeFile(c: Candidate, options: AnalyzeOptions = {}): Promise<FileAnalysis> {
  const key = identityKey(c);
  let entry = cache.get(key);
  if (entry === undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    const symbols = analyzeSymbols(c, options.store);
    entry = { symbols };
    cache.set(key, entry);
    symbols.catch(() => cache.delete(key));
  }
  const symbols = await entry.symbols;
  // A file with none of the TLS functions has no flavour to look for.
  if (options.flavour === false || symbols.functions.length === 0) return { ...symbols, flavour: 'unknown' };
  let flavour = entry.flavour;
  if (flavour === undefined) {
    const owner = entry;
    const started = analyzeFlavour(c.openPath, c.searchDirs ?? []);
    started.catch(() => {
      if (owner.flavour === started) delete owner.flavour;
    });
    owner.flavour = flavour = started;
  }
  const info = await flavour;
  const analysis: FileAnalysis = { ...symbols, flavour: info.flavour };
  if (info.version !== undefined) analysis.version = info.version;
  return analysis;
}

/** Forgets every cached analysis (for tests and long-running embedders). */
export function clearAnalysisCache(): void {
  cache.clear();
}

/** A target from a candidate and what is in it. */
export function toTarget(c: Candidate, a: FileAnalysis): ProbeTarget {
  const target: ProbeTarget = {
    path: c.openPath,
    displayPath: c.displayPath,
    dev: c.dev,
    ino: c.ino,
    flavour: a.flavour,
    arch: a.arch,
    functions: a.functions.map((f) => ({ ...f })),
    missing: [...a.missing],
    source: c.source,
  };
  if (a.version !== undefined) target.version = a.version;
  if (a.buildId !== undefined) target.buildId = a.buildId;
  return target;
}
