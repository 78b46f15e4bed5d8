// Finding what to probe: the system's TLS libraries, a process's mapped TLS code, or a file the user names.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { ElfError } from '../elf/errors.js';
import { TLS_FUNCTIONS } from '../events/types.js';
import { analyzeFile, toTarget } from './analyze.js';
import type { AnalyzeOptions, Candidate, FileAnalysis } from './analyze.js';
import type { AnalysisStore } from './analysis-store.js';
import { fileKey, nicer } from './dedupe.js';
import { LIBRARY_FAMILIES, familyOfFileName, isTlsLibraryName, mayNameTlsLibrary, orList } from './families.js';
import { TargetError, errnoCode } from './errors.js';
import { GoProgramError, goProgram, reportGo } from './go.js';
import type { GoProgram } from './go.js';
import { readLdCache } from './ld-cache.js';
import { foreignArchHint } from './arch.js';
import { checkPid, mappedFiles, mappedProcessFile, parseProcMaps, reachProcessFile, readProcMaps } from './proc-maps.js';
import type { MappedFile } from './proc-maps.js';
import type { ProbeTarget } from './types.js';

/** Standard library directories; multiarch subdirectories (x86_64-linux-gnu, ...) are added. */
export const LIBRARY_DIRS: readonly string[] = ['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/usr/local/lib'];

/**
 * Where Android keeps BoringSSL (conscrypt's libssl.so, the platform's); Debian's android-libboringssl
 * puts its libssl.so.0 in an `android` subdirectory of each multiarch directory, which is added too.
 */
export const ANDROID_LIBRARY_DIRS: readonly string[] = [
  '/apex/com.android.conscrypt/lib64',
  '/apex/com.android.conscrypt/lib',
  '/system/lib64',
  '/system/lib',
];

/** OpenSSL-API library file names (libssl.so.3, BoringSSL's libssl.so.0, Android's libssl.so). */
export const LIBSSL_NAME = /^libssl\.so(?:\.\d+)*$/;

/** Programs on PATH known to carry OpenSSL inside their own executable. */
export const EXECUTABLE_NAMES: readonly string[] = ['node', 'nodejs'];

const MULTIARCH_DIR = /^[a-z0-9_]+-linux-[a-z0-9_]+$/;

/** A file discovery found but does not probe, and why: for `tlstap libs` and the warning at start. */
export interface SkippedFile {
  path: string;
  reason: string;
  /** The CPU it is built for, when that is why (no program here can load it). */
  foreignArch?: string;
}

/** Options for systemTargets. */
export interface SystemDiscoveryOptions {
  /**
   * Also check node on PATH, running processes' executables for built-in TLS code, and the TLS
   * libraries running processes have mapped from elsewhere (containers, deleted files) (default true).
   */
  executables?: boolean;
  /** Look for libraries in these directories instead of the standard ones (and not in the linker cache). */
  libraryDirs?: readonly string[];
  /**
   * Told about each TLS library that cannot be probed: unreadable, not ELF, or defining none of its
   * API's plaintext functions (stripped). Capture goes on with the rest.
   */
  onSkip?: (path: string, reason: string, foreignArch?: string) => void;
  /** Tell each target's flavour and version (default true); without, they are 'unknown' and absent, and discovery is quicker. */
  flavour?: boolean;
  /** Told about each running Go program with crypto/tls (captured through its probe plan, or named with why not). */
  onGoProgram?: (program: GoProgram) => void;
  /** Analyses kept from earlier runs (AnalysisStore). */
  store?: AnalysisStore;
}

/** Options for processTargets. */
export interface ProcessDiscoveryOptions {
  /**
   * Told about each mapped file that cannot be probed: deleted after mapping, unreadable, not ELF, or a
   * TLS library (by name) that defines none of its API's plaintext functions.
   */
  onSkip?: (path: string, reason: string, foreignArch?: string) => void;
  /** Tell each target's flavour and version (default true); without, they are 'unknown' and absent, and discovery is quicker. */
  flavour?: boolean;
  /** Told about each Go program the process maps (its executable). */
  onGoProgram?: (program: GoProgram) => void;
  /** Analyses kept from earlier runs (AnalysisStore). */
  store?: AnalysisStore;
}

function reasonOf(err: unknown): string {
  if (err instanceof ElfError) return err.reason;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The library directories that exist, with multiarch subdirectories and their `android` ones, and
 * Android's own, without duplicates.
 */
export async function libraryDirs(): Promise<string[]> {
  const listings = await Promise.all(
    LIBRARY_DIRS.map((base) => readdir(base, { withFileTypes: true }).catch(() => undefined)),
  );
  const dirs: string[] = [];
  const multiarch: string[] = [];
  LIBRARY_DIRS.forEach((base, i) => {
    const names = listings[i];
    if (names === undefined) return;
    dirs.push(base);
    for (const d of names) {
      if (d.isDirectory() && MULTIARCH_DIR.test(d.name)) {
        dirs.push(join(base, d.name));
        multiarch.push(join(base, d.name, 'android'));
      }
    }
  });
  const extra = [...multiarch, ...ANDROID_LIBRARY_DIRS];
  const present = await Promise.all(extra.map((d) => stat(d).then((st) => st.isDirectory(), () => false)));
  dirs.push(...extra.filter((_, i) => present[i]));
  return [...new Set(dirs)];
}

/** Why a file named like a TLS library is not a target (it defines none of its API's plaintext functions). */
export function strippedReason(path: string): string {
  const family = familyOfFileName(basename(path.replace(/ \(deleted\)$/, '')));
  const names = family?.data ?? LIBRARY_FAMILIES.flatMap((f) => f.data);
  return `defines none of ${orList(names)} (stripped of its symbols, or built with them hidden)`;
}

/** A candidate for a path in our own mount namespace: symlinks resolved, identity from stat. */
async function hostCandidate(
  path: string,
  source: ProbeTarget['source'],
  searchDirs?: readonly string[],
): Promise<Candidate | undefined> {
  try {
    const real = await realpath(path);
    const st = await stat(real, { bigint: true });
    if (!st.isFile()) return undefined;
    const c: Candidate = { openPath: real, displayPath: real, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, source };
    if (searchDirs !== undefined) c.searchDirs = searchDirs;
    return c;
  } catch {
    return undefined;
  }
}

/** Keeps one candidate per (device, inode): the first one's source, the nicest path. */
function uniqueCandidates(list: readonly (Candidate | undefined)[]): Candidate[] {
  const byKey = new Map<string, Candidate>();
  for (const c of list) {
    if (c === undefined) continue;
    const key = fileKey(c.dev, c.ino);
    const kept = byKey.get(key);
    if (kept === undefined) byKey.set(key, { ...c });
    else if (nicer({ path: c.openPath, displayPath: c.displayPath }, { path: kept.openPath, displayPath: kept.displayPath })) {
      kept.openPath = c.openPath;
      kept.displayPath = c.displayPath;
    }
  }
  return [...byKey.values()];
}

/** The system's TLS libraries (LIBRARY_FAMILIES' file names): the linker cache plus the directories. */
async function systemLibraryCandidates(dirs: readonly string[], useCache: boolean): Promise<Candidate[]> {
  const cache = useCache ? await readLdCache(undefined, isTlsLibraryName) : { entries: [] };
  const paths = cache.entries.map((e) => e.path);
  const listings = await Promise.all(dirs.map((d) => readdir(d).catch(() => [] as string[])));
  dirs.forEach((d, i) => {
    for (const name of listings[i]!) if (isTlsLibraryName(name)) paths.push(join(d, name));
  });
  const found = await Promise.all(
    [...new Set(paths)].map(async (p) => {
      const c = await hostCandidate(p, 'system', dirs);
      // Shown by the name programs load it by: libgnutls.so.30 rather than libgnutls.so.30.34.3 or
      // the development link libgnutls.so; directories resolved (/lib/x86_64-linux-gnu is /usr/lib/...).
      const dir = c && (await realpath(dirname(p)).catch(() => undefined));
      return c && dir !== undefined ? { ...c, displayPath: join(dir, basename(p)) } : c;
    }),
  );
  const byKey = new Map<string, Candidate>();
  for (const c of found) {
    if (c === undefined) continue;
    const key = fileKey(c.dev, c.ino);
    const kept = byKey.get(key);
    if (kept === undefined || betterLibraryName(c.displayPath, kept.displayPath)) byKey.set(key, c);
  }
  return [...byKey.values()];
}

/**
 * The name system discovery shows a process's library by: the kernel names the real file
 * (libgnutls.so.30.34.3), programs load it by its soname link in the same directory (libgnutls.so.30).
 */
async function libraryDisplayPath(c: Candidate): Promise<string> {
  const name = basename(c.displayPath);
  const family = familyOfFileName(name);
  if (family === undefined || basename(c.openPath) !== name) return c.displayPath;
  const dir = dirname(c.openPath);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n !== name && family.fileName.test(n));
  let best = name;
  for (const other of names) {
    const st = await stat(join(dir, other), { bigint: true }).catch(() => undefined);
    if (st !== undefined && st.dev === c.dev && st.ino === c.ino && betterLibraryName(other, best)) best = other;
  }
  return join(dirname(c.displayPath), best);
}

/** Whether a is a better name to show a library by than b: soname, then real file, then development link. */
function betterLibraryName(a: string, b: string): boolean {
  const kind = (path: string): number => {
    const name = basename(path);
    return /\.so\.\d+$/.test(name) ? 0 : /\.so$/.test(name) ? 2 : 1;
  };
  if (kind(a) !== kind(b)) return kind(a) < kind(b);
  if (a.length !== b.length) return a.length < b.length;
  return a < b;
}

/** What the walk over /proc found: executables, and TLS libraries mapped from outside the system dirs. */
interface ProcessCandidates {
  executables: Candidate[];
  libraries: Candidate[];
}

/** The display path of a process's file: the plain path if it opens that file here, else how it is reached. */
function processDisplayPath(path: string, deleted: boolean, openPath: string): string {
  if (deleted) return `${path} (deleted)`;
  return openPath === path ? path : openPath;
}

/**
 * Executables that may carry TLS code (EXECUTABLE_NAMES on PATH and every running process's exe), and
 * the TLS libraries running processes have mapped (a container's own libssl, a library deleted by an
 * upgrade while nginx still runs it). Maps are read once per distinct executable: workers of one
 * program map the same libraries, and this keeps the walk cheap on a busy machine.
 */
async function processCandidates(): Promise<ProcessCandidates> {
  const onPath = (process.env['PATH'] ?? '')
    .split(':')
    .filter((d) => isAbsolute(d))
    .flatMap((d) => EXECUTABLE_NAMES.map((n) => join(d, n)));
  const fromPath = Promise.all([...new Set(onPath)].map((p) => hostCandidate(p, 'executable')));

  // Identify each process's executable by one stat of /proc/PID/exe (and its mount namespace), and
  // read the link and the maps only for new ones. Synchronous on purpose: procfs answers from memory, and a thread-pool round
  // trip per process made this the slowest part of discovery on a busy machine.
  const seen = new Map<string, { pid: number; path: string; deleted: boolean }>();
  const libraries = new Map<string, { pid: number; file: MappedFile }>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = statSync(`/proc/${name}/exe`, { bigint: true });
      // Per mount namespace too: a container's python3 maps its own libssl, not the host python3's.
      const key = `${fileKey(st.dev, st.ino)}:${readlinkSync(`/proc/${name}/ns/mnt`)}`;
      if (!st.isFile() || seen.has(key)) continue;
      const link = readlinkSync(`/proc/${name}/exe`);
      const deleted = link.endsWith(' (deleted)');
      seen.set(key, { pid: Number(name), path: deleted ? link.slice(0, -' (deleted)'.length) : link, deleted });
      const maps = readFileSync(`/proc/${name}/maps`, 'latin1');
      if (!mayNameTlsLibrary(maps)) continue;
      for (const file of mappedFiles(parseProcMaps(maps))) {
        if (!file.executable || !isTlsLibraryName(basename(file.path))) continue;
        // Keyed by the path and inode the kernel shows: the same library in many processes is reached once.
        const mapKey = `${file.inode}:${file.path}`;
        if (!libraries.has(mapKey)) libraries.set(mapKey, { pid: Number(name), file });
      }
    } catch {
      // Kernel threads have no executable; other users' processes may be unreadable; some exit.
    }
  }
  const fromProc = Promise.all(
    [...seen.values()].map(async ({ pid, path, deleted }): Promise<Candidate | undefined> => {
      const reach = await reachProcessFile(pid, { path, identityPath: `/proc/${pid}/exe`, deleted });
      return reach && { ...reach, displayPath: processDisplayPath(path, deleted, reach.openPath), source: 'executable' };
    }),
  );
  const mapped = Promise.all(
    [...libraries.values()].map(async ({ pid, file }): Promise<Candidate | undefined> => {
      const reach = await reachProcessFile(pid, mappedProcessFile(pid, file));
      return reach && { ...reach, displayPath: processDisplayPath(file.path, file.deleted, reach.openPath), source: 'system' };
    }),
  );
  return {
    executables: uniqueCandidates([...(await fromPath), ...(await fromProc)]),
    libraries: uniqueCandidates(await mapped),
  };
}

/** Analyses candidates in parallel; unreadable ones are reported and dropped. */
async function analyzeAll(
  candidates: readonly Candidate[],
  options: { onSkip?: (path: string, reason: string, foreignArch?: string) => void; flavour?: boolean; store?: AnalysisStore },
): Promise<{ candidate: Candidate; analysis: FileAnalysis }[]> {
  const { onSkip, flavour, store } = options;
  const results = await Promise.allSettled(candidates.map((c) => analyzeFile(c, { flavour, store })));
  const out: { candidate: Candidate; analysis: FileAnalysis }[] = [];
  results.forEach((r, i) => {
    const candidate = candidates[i]!;
    if (r.status === 'fulfilled') out.push({ candidate, analysis: r.value });
    else onSkip?.(candidate.displayPath, reasonOf(r.reason));
  });
  return out;
}

/**
 * An executable is a target only if it defines an API's write function itself (node with OpenSSL built
 * in, a static curl); a program that merely has a function called SSL_read is not.
 */
function carriesTls(a: FileAnalysis): boolean {
  return a.functions.some((f) => LIBRARY_FAMILIES.some((family) => family.write === f.name));
}

/**
 * Every TLS library on the system: the LIBRARY_FAMILIES file names (libssl.so*, libgnutls.so*,
 * libnspr4.so) from the linker cache and the library directories (Android's and the `android`
 * multiarch subdirectories included), the TLS libraries running processes map from elsewhere, plus
 * node on PATH and running executables that carry a TLS library themselves. One target per file
 * (device and inode): a container's copy of a library is a target of its own.
 */
export async function systemTargets(options: SystemDiscoveryOptions = {}): Promise<ProbeTarget[]> {
  const dirs = options.libraryDirs !== undefined ? [...options.libraryDirs] : await libraryDirs();
  const [libs, procs] = await Promise.all([
    systemLibraryCandidates(dirs, options.libraryDirs === undefined),
    options.executables === false ? Promise.resolve({ executables: [], libraries: [] }) : processCandidates(),
  ]);
  // A file found in the library directories keeps the name it was found by there.
  const known = new Set(libs.map((c) => fileKey(c.dev, c.ino)));
  const elsewhere = [...procs.libraries, ...procs.executables].filter((c) => !known.has(fileKey(c.dev, c.ino)));
  const candidates = [...libs, ...uniqueCandidates(elsewhere)];
  const targets: ProbeTarget[] = [];
  for (const { candidate, analysis } of await analyzeAll(candidates, options)) {
    if (candidate.source === 'executable') {
      if (carriesTls(analysis)) targets.push(toTarget(candidate, analysis));
      else reportGo(candidate, analysis, options.onGoProgram, false);
    } else if (analysis.functions.length === 0) {
      if (analysis.foreign !== undefined) options.onSkip?.(candidate.displayPath, analysis.foreign, analysis.arch);
      else options.onSkip?.(candidate.displayPath, strippedReason(candidate.displayPath));
    } else {
      targets.push(toTarget(candidate, analysis));
    }
  }
  const order = (t: ProbeTarget): number => (t.source === 'system' ? 0 : 1);
  return targets.sort((a, b) => order(a) - order(b) || comparePaths(a.displayPath, b.displayPath));
}

/** Plain string order (UTF-16 code units): deterministic, and free of the ICU collator's first-use cost. */
function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The TLS code a running process has mapped: every library that implements a probed API (read through
 * /proc/PID/root, so containers work) and its own executable when that carries one. Throws TargetError
 * if the process does not exist or cannot be read; an empty list means it has no TLS library mapped (yet).
 */
export async function processTargets(pid: number, options: ProcessDiscoveryOptions = {}): Promise<ProbeTarget[]> {
  checkPid(pid);
  const regions = await readProcMaps(pid);
  const files = mappedFiles(regions).filter((f) => f.executable);

  const reached = await Promise.all(
    files.map(async (f): Promise<Candidate | undefined> => {
      const reach = await reachProcessFile(pid, mappedProcessFile(pid, f));
      if (reach === undefined) {
        const why = f.deleted ? 'deleted or replaced since it was mapped (run as root to reach it)' : `not reachable from here`;
        options.onSkip?.(f.path, why);
        return undefined;
      }
      if (f.deleted) return { ...reach, displayPath: `${f.path} (deleted)`, source: 'process' };
      const c: Candidate = { ...reach, displayPath: f.path, source: 'process' };
      return { ...c, displayPath: await libraryDisplayPath(c) };
    }),
  );
  const candidates = uniqueCandidates(reached);
  const exeStat = await stat(`/proc/${pid}/exe`, { bigint: true }).catch(() => undefined);
  const isExe = (c: Candidate): boolean => exeStat !== undefined && c.dev === exeStat.dev && c.ino === exeStat.ino;
  // A library's companion (libcrypto) is looked for where the process's other libraries are.
  const searchDirs = [...new Set(candidates.map((c) => dirname(c.openPath)))];
  for (const c of candidates) c.searchDirs = searchDirs;

  const targets: ProbeTarget[] = [];
  for (const { candidate, analysis } of await analyzeAll(candidates, options)) {
    if (analysis.functions.length === 0) {
      reportGo(candidate, analysis, options.onGoProgram, true);
      const name = basename(candidate.displayPath.replace(/ \(deleted\)$/, ''));
      if (isTlsLibraryName(name) || (analysis.foreign !== undefined && isExe(candidate))) {
        if (analysis.foreign !== undefined) options.onSkip?.(candidate.displayPath, analysis.foreign, analysis.arch);
        else options.onSkip?.(candidate.displayPath, strippedReason(candidate.displayPath));
      }
      continue;
    }
    if (isExe(candidate) && !carriesTls(analysis)) continue;
    targets.push(toTarget(candidate, analysis));
  }
  return targets;
}

const LOOKED_FOR = TLS_FUNCTIONS.join(', ');
const LIB_HINT =
  'name the TLS library the program loads, e.g. --lib /usr/lib/x86_64-linux-gnu/libssl.so.3 ' +
  '(for a running program: grep -E "ssl|gnutls|nspr" /proc/PID/maps)';

/**
 * A target for a file the user names (--lib PATH). Throws TargetError if the file is missing, is not
 * ELF, or defines none of the TLS functions (GoProgramError for a Go program). A file with only some of them is a target; see `missing`.
 */
export async function fileTarget(
  path: string,
  source: ProbeTarget['source'] = 'lib-option',
  options: AnalyzeOptions = {},
): Promise<ProbeTarget> {
  const abs = resolve(path);
  let candidate: Candidate;
  try {
    // Paths under /proc/PID/root are not resolved: realpath would follow the magic link to our own root.
    const real = abs.startsWith('/proc/') ? abs : await realpath(abs);
    const st = await stat(real, { bigint: true });
    if (!st.isFile()) {
      throw new TargetError(`${path} is not a regular file`, { path, hint: LIB_HINT });
    }
    candidate = { openPath: real, displayPath: abs, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, source };
  } catch (err) {
    if (err instanceof TargetError) throw err;
    const code = errnoCode(err);
    const what = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : reasonOf(err);
    throw new TargetError(`cannot use ${path}: ${what}`, { path, hint: LIB_HINT, cause: err });
  }

  let analysis: FileAnalysis;
  try {
    analysis = await analyzeFile(candidate, options);
  } catch (err) {
    const message = `cannot look for ${LOOKED_FOR} in ${path}: ${reasonOf(err)}`;
    throw new TargetError(message, { path, hint: LIB_HINT, cause: err });
  }
  if (analysis.foreign !== undefined) {
    throw new TargetError(`cannot probe ${path}: ${analysis.foreign}`, { path, hint: foreignArchHint() });
  }
  if (analysis.functions.length === 0) {
    if (analysis.go !== undefined) throw new GoProgramError(goProgram(analysis.go, candidate.openPath, candidate.displayPath));
    throw new TargetError(`${path} defines none of the TLS functions ${LOOKED_FOR}`, {
      path,
      hint: `${LIB_HINT}; a stripped, statically linked program has no symbols to find`,
    });
  }
  return toTarget(candidate, analysis);
}
