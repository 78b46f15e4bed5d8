// What a process has mapped: /proc/PID/maps, /proc/PID/exe, and how to reach its files from here.
import { readFile, stat } from 'node:fs/promises';
import { TargetError, errnoCode } from './errors.js';

/** One line of /proc/PID/maps. */
export interface MapRegion {
  start: bigint;
  end: bigint;
  /** "r-xp" and the like. */
  perms: string;
  offset: bigint;
  /** major:minor in hex, as the kernel prints it. */
  dev: string;
  inode: bigint;
  /** The mapped file or pseudo-name ([heap], [vdso]); absent for anonymous memory. */
  pathname?: string;
  /** The kernel marked the file " (deleted)": it was replaced or removed after mapping. */
  deleted: boolean;
}

/** A file a process has mapped, once per path. */
export interface MappedFile {
  /** The path as the kernel shows it (relative to the process's root, or to ours when that is above). */
  path: string;
  /** Some mapping of it is executable, so it can hold probe-able code. */
  executable: boolean;
  deleted: boolean;
  /** The inode number the kernel reports for the mapping. */
  inode: bigint;
  /** One mapping of the file (the first executable one if any): names /proc/PID/map_files/START-END. */
  start: bigint;
  end: bigint;
}

/** Parses the text of /proc/PID/maps; malformed lines are skipped. */
export function parseProcMaps(text: string): MapRegion[] {
  const regions: MapRegion[] = [];
  // "start-end perms offset dev inode [pathname]": the pathname may contain spaces.
  const line = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$/;
  for (const raw of text.split('\n')) {
    const m = line.exec(raw);
    if (!m) continue;
    let pathname = m[7] === undefined || m[7] === '' ? undefined : m[7];
    const deleted = pathname?.endsWith(' (deleted)') ?? false;
    if (pathname !== undefined && deleted) pathname = pathname.slice(0, -' (deleted)'.length);
    const region: MapRegion = {
      start: BigInt(`0x${m[1]!}`),
      end: BigInt(`0x${m[2]!}`),
      perms: m[3]!,
      offset: BigInt(`0x${m[4]!}`),
      dev: m[5]!,
      inode: BigInt(m[6]!),
      deleted,
    };
    if (pathname !== undefined) region.pathname = pathname;
    regions.push(region);
  }
  return regions;
}

/** The distinct files behind file-backed regions, in first-mapped order. */
export function mappedFiles(regions: readonly MapRegion[]): MappedFile[] {
  const byPath = new Map<string, MappedFile>();
  for (const r of regions) {
    if (r.pathname === undefined || !r.pathname.startsWith('/') || r.inode === 0n) continue;
    const seen = byPath.get(r.pathname);
    const executable = r.perms[2] === 'x';
    if (seen === undefined) {
      byPath.set(r.pathname, { path: r.pathname, executable, deleted: r.deleted, inode: r.inode, start: r.start, end: r.end });
    } else {
      if (executable && !seen.executable) Object.assign(seen, { executable, start: r.start, end: r.end });
      seen.deleted ||= r.deleted;
    }
  }
  return [...byPath.values()];
}

/** Throws TargetError unless pid is a positive integer. */
export function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new TargetError(`invalid process id ${String(pid)}`, { hint: 'pass a positive number, e.g. --pid 1234' });
  }
}

/** Turns a failure to read /proc/PID/<entry> into a TargetError that says what to do. */
export function procError(pid: number, entry: string, err: unknown): TargetError {
  const path = `/proc/${pid}/${entry}`;
  const code = errnoCode(err);
  if (code === 'ENOENT' || code === 'ESRCH') {
    return new TargetError(`process ${pid} does not exist (no ${path})`, {
      path,
      hint: `check the pid with \`ps -p ${pid}\` (the process may have exited), or capture system-wide without a pid`,
      cause: err,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new TargetError(`cannot read ${path}: permission denied`, {
      path,
      hint: 'run tlstap as root (tracing another process needs CAP_SYS_ADMIN/CAP_BPF and CAP_SYS_PTRACE)',
      cause: err,
    });
  }
  return new TargetError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`, { path, cause: err });
}

/** Reads and parses /proc/PID/maps; a missing process becomes a TargetError naming the pid. */
export async function readProcMaps(pid: number): Promise<MapRegion[]> {
  checkPid(pid);
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/maps`, 'utf8');
  } catch (err) {
    throw procError(pid, 'maps', err);
  }
  return parseProcMaps(text);
}

/** Where a file a process sees can be opened from here, and its identity. */
export interface ReachableFile {
  /** A path that opens the same file from tlstap's mount namespace. */
  openPath: string;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

type Stat = Awaited<ReturnType<typeof statBig>>;

function statBig(path: string) {
  return stat(path, { bigint: true });
}

function reachable(openPath: string, st: Stat): ReachableFile {
  return { openPath, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

/** A file a process knows by `path`, and a magic link that opens exactly that file (while it lives). */
export interface ProcessFile {
  path: string;
  /** /proc/PID/map_files/START-END or /proc/PID/exe: stat through it gives the true identity (root only for map_files). */
  identityPath: string;
  /** The inode number /proc/PID/maps reports, used when identityPath cannot be read. */
  inode?: bigint;
  /** The kernel marked the path " (deleted)". */
  deleted?: boolean;
}

/** The ProcessFile for a mapped file (identity through /proc/PID/map_files). */
export function mappedProcessFile(pid: number, f: MappedFile): ProcessFile {
  const identityPath = `/proc/${pid}/map_files/${f.start.toString(16)}-${f.end.toString(16)}`;
  return { path: f.path, identityPath, inode: f.inode, deleted: f.deleted };
}

/**
 * Finds a path that opens the very file a process uses. Tried in order: the plain path (nicest, and
 * valid after the process exits), the path under /proc/PID/root (a container's own files), and the
 * identity link itself (a file deleted or replaced since). Undefined when nothing reaches it.
 */
export async function reachProcessFile(pid: number, file: ProcessFile): Promise<ReachableFile | undefined> {
  const plainPath = file.path;
  const rootPath = `/proc/${pid}/root${file.path}`;
  const [plain, viaRoot, known] = await Promise.all(
    [plainPath, rootPath, file.identityPath].map((p) =>
      statBig(p).then((st): Stat | undefined => (st.isFile() ? st : undefined), () => undefined),
    ),
  );
  const same = (st: Stat | undefined): boolean =>
    st !== undefined &&
    (known !== undefined ? st.dev === known.dev && st.ino === known.ino : file.inode !== undefined && st.ino === file.inode);
  if (plain && same(plain)) return reachable(plainPath, plain);
  if (viaRoot && same(viaRoot)) return reachable(rootPath, viaRoot);
  if (known) return reachable(file.identityPath, known);
  // No identity (not root, or a filesystem such as overlayfs that reports another inode in maps):
  // trust the process's root, and the plain path only when it is the same file.
  if (file.deleted) return undefined;
  if (viaRoot) {
    const plainIsSame = plain !== undefined && plain.dev === viaRoot.dev && plain.ino === viaRoot.ino;
    return plainIsSame ? reachable(plainPath, plain) : reachable(rootPath, viaRoot);
  }
  return plain ? reachable(plainPath, plain) : undefined;
}
