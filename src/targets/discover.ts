// Finding what to probe: the system's libssl, a process's mapped TLS code, or a file the user names.
import { readlinkSync, statSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ElfError } from '../elf/index.js';
import { TLS_FUNCTIONS } from '../events/types.js';
import { analyzeFile, toTarget } from './analyze.js';
import type { Candidate, FileAnalysis } from './analyze.js';
import { fileKey, nicer } from './dedupe.js';
import { TargetError, errnoCode } from './errors.js';
import { readLdCache } from './ld-cache.js';
import { checkPid, mappedFiles, mappedProcessFile, reachProcessFile, readProcMaps } from './proc-maps.js';
import type { ProbeTarget } from './types.js';

/** Standard library directories; multiarch subdirectories (x86_64-linux-gnu, ...) are added. */
export const LIBRARY_DIRS: readonly string[] = ['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/usr/local/lib'];

/** File names system discovery treats as the TLS library. */
export const LIBSSL_NAME = /^libssl\.so(?:\.\d+)*$/;

/** Programs on PATH known to carry OpenSSL inside their own executable. */
export const EXECUTABLE_NAMES: readonly string[] = ['node', 'nodejs'];

const MULTIARCH_DIR = /^[a-z0-9_]+-linux-[a-z0-9_]+$/;

/** Options for systemTargets. */
export interface SystemDiscoveryOptions {
  /** Also check node on PATH and running processes' executables for built-in TLS code (default true). */
  executables?: boolean;
  /** Told about each found file that could not be read. */
  onSkip?: (path: string, reason: string) => void;
}

/** Options for processTargets. */
export interface ProcessDiscoveryOptions {
  /** Told about each mapped file that could not be read (deleted after mapping, unreadable, not ELF). */
  onSkip?: (path: string, reason: string) => void;
}

function reasonOf(err: unknown): string {
  if (err instanceof ElfError) return err.reason;
  return err instanceof Error ? err.message : String(err);
}

/** The library directories that exist, with multiarch subdirectories, without duplicates. */
export async function libraryDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for (const base of LIBRARY_DIRS) {
    const names = await readdir(base, { withFileTypes: true }).catch(() => undefined);
    if (names === undefined) continue;
    dirs.push(base);
    for (const d of names) if (d.isDirectory() && MULTIARCH_DIR.test(d.name)) dirs.push(join(base, d.name));
  }
  return [...new Set(dirs)];
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
    const c: Candidate = { openPath: real, displayPath: real, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, source };
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

/** The system's libssl files: the linker cache plus the standard directories. */
async function systemLibraryCandidates(dirs: readonly string[]): Promise<Candidate[]> {
  const cache = await readLdCache();
  const paths = cache.entries.filter((e) => LIBSSL_NAME.test(e.name)).map((e) => e.path);
  const listings = await Promise.all(dirs.map((d) => readdir(d).catch(() => [] as string[])));
  dirs.forEach((d, i) => {
    for (const name of listings[i]!) if (LIBSSL_NAME.test(name)) paths.push(join(d, name));
  });
  return uniqueCandidates(await Promise.all([...new Set(paths)].map((p) => hostCandidate(p, 'system', dirs))));
}

/** Executables that may carry TLS code: EXECUTABLE_NAMES on PATH and every running process's exe. */
async function executableCandidates(): Promise<Candidate[]> {
  const onPath = (process.env['PATH'] ?? '')
    .split(':')
    .filter((d) => isAbsolute(d))
    .flatMap((d) => EXECUTABLE_NAMES.map((n) => join(d, n)));
  const fromPath = Promise.all([...new Set(onPath)].map((p) => hostCandidate(p, 'executable')));

  // Identify each process's executable by one stat of /proc/PID/exe, and read the link only for new
  // files. Synchronous on purpose: procfs answers from memory, and a thread-pool round trip per
  // process made this the slowest part of discovery on a busy machine.
  const seen = new Map<string, { pid: number; path: string; deleted: boolean }>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = statSync(`/proc/${name}/exe`, { bigint: true });
      const key = fileKey(st.dev, st.ino);
      if (!st.isFile() || seen.has(key)) continue;
      const link = readlinkSync(`/proc/${name}/exe`);
      const deleted = link.endsWith(' (deleted)');
      seen.set(key, { pid: Number(name), path: deleted ? link.slice(0, -' (deleted)'.length) : link, deleted });
    } catch {
      // Kernel threads have no executable; other users' processes may be unreadable; some exit.
    }
  }
  const fromProc = Promise.all(
    [...seen.values()].map(async ({ pid, path, deleted }): Promise<Candidate | undefined> => {
      const reach = await reachProcessFile(pid, { path, identityPath: `/proc/${pid}/exe`, deleted });
      return reach && { ...reach, displayPath: deleted ? `${path} (deleted)` : path, source: 'executable' };
    }),
  );
  return uniqueCandidates([...(await fromPath), ...(await fromProc)]);
}

/** Analyses candidates in parallel; unreadable ones are reported and dropped. */
async function analyzeAll(
  candidates: readonly Candidate[],
  onSkip?: (path: string, reason: string) => void,
): Promise<{ candidate: Candidate; analysis: FileAnalysis }[]> {
  const results = await Promise.allSettled(candidates.map((c) => analyzeFile(c)));
  const out: { candidate: Candidate; analysis: FileAnalysis }[] = [];
  results.forEach((r, i) => {
    const candidate = candidates[i]!;
    if (r.status === 'fulfilled') out.push({ candidate, analysis: r.value });
    else onSkip?.(candidate.displayPath, reasonOf(r.reason));
  });
  return out;
}

/** An executable is a target only if it defines SSL_write itself (node with built-in OpenSSL). */
function hasSslWrite(a: FileAnalysis): boolean {
  return a.functions.some((f) => f.name === 'SSL_write');
}

/**
 * Every TLS library on the system: libssl.so* from the linker cache and the standard directories,
 * plus node on PATH and running executables that define SSL_write themselves. One target per file.
 */
export async function systemTargets(options: SystemDiscoveryOptions = {}): Promise<ProbeTarget[]> {
  const dirs = await libraryDirs();
  const [libs, exes] = await Promise.all([
    systemLibraryCandidates(dirs),
    options.executables === false ? Promise.resolve([]) : executableCandidates(),
  ]);
  const candidates = uniqueCandidates([...libs, ...exes]);
  const targets: ProbeTarget[] = [];
  for (const { candidate, analysis } of await analyzeAll(candidates, options.onSkip)) {
    if (analysis.functions.length === 0) continue;
    if (candidate.source === 'executable' && !hasSslWrite(analysis)) continue;
    targets.push(toTarget(candidate, analysis));
  }
  const order = (t: ProbeTarget): number => (t.source === 'system' ? 0 : 1);
  return targets.sort((a, b) => order(a) - order(b) || a.displayPath.localeCompare(b.displayPath));
}

/**
 * The TLS code a running process has mapped: its libraries (read through /proc/PID/root, so containers
 * work) and its own executable when that defines SSL_write. Throws TargetError if the process does not
 * exist or cannot be read; an empty list means it has no TLS library mapped (yet).
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
      return { ...reach, displayPath: f.deleted ? `${f.path} (deleted)` : f.path, source: 'process' };
    }),
  );
  const candidates = uniqueCandidates(reached);
  const exeStat = await stat(`/proc/${pid}/exe`, { bigint: true }).catch(() => undefined);
  const isExe = (c: Candidate): boolean => exeStat !== undefined && c.dev === exeStat.dev && c.ino === exeStat.ino;
  // A library's companion (libcrypto) is looked for where the process's other libraries are.
  const searchDirs = [...new Set(candidates.map((c) => dirname(c.openPath)))];
  for (const c of candidates) c.searchDirs = searchDirs;

  const targets: ProbeTarget[] = [];
  for (const { candidate, analysis } of await analyzeAll(candidates, options.onSkip)) {
    if (analysis.functions.length === 0) continue;
    if (isExe(candidate) && !hasSslWrite(analysis)) continue;
    targets.push(toTarget(candidate, analysis));
  }
  return targets;
}

const LOOKED_FOR = TLS_FUNCTIONS.join(', ');
const LIB_HINT =
  'name the TLS library the program loads, e.g. --lib /usr/lib/x86_64-linux-gnu/libssl.so.3 ' +
  '(for a running program: grep -E "ssl|crypto" /proc/PID/maps)';

/**
 * A target for a file the user names (--lib PATH). Throws TargetError if the file is missing, is not
 * ELF, or defines none of the TLS functions. A file with only some of them is a target; see `missing`.
 */
export async function fileTarget(path: string, source: ProbeTarget['source'] = 'lib-option'): Promise<ProbeTarget> {
  const abs = resolve(path);
  let candidate: Candidate;
  try {
    // Paths under /proc/PID/root are not resolved: realpath would follow the magic link to our own root.
    const real = abs.startsWith('/proc/') ? abs : await realpath(abs);
    const st = await stat(real, { bigint: true });
    if (!st.isFile()) {
      throw new TargetError(`${path} is not a regular file`, { path, hint: LIB_HINT });
    }
    candidate = { openPath: real, displayPath: abs, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, source };
  } catch (err) {
    if (err instanceof TargetError) throw err;
    const code = errnoCode(err);
    const what = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : reasonOf(err);
    throw new TargetError(`cannot use ${path}: ${what}`, { path, hint: LIB_HINT, cause: err });
  }

  let analysis: FileAnalysis;
  try {
    analysis = await analyzeFile(candidate);
  } catch (err) {
    const message = `cannot look for ${LOOKED_FOR} in ${path}: ${reasonOf(err)}`;
    throw new TargetError(message, { path, hint: LIB_HINT, cause: err });
  }
  if (analysis.functions.length === 0) {
    throw new TargetError(`${path} defines none of the TLS functions ${LOOKED_FOR}`, {
      path,
      hint: `${LIB_HINT}; a stripped, statically linked program has no symbols to find`,
    });
  }
  return toTarget(candidate, analysis);
}
