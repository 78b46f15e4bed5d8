// Finding what to probe on an Android device, through a FileView (the agent's, or a local root):
// conscrypt's and the platform's BoringSSL, libraries apps bring (extracted or mapped straight from
// their APK), every process's maps, and one app's processes by its uid from packages.list.
import { posix } from 'node:path';
import { ElfFile, sliceFile } from '../elf/index.js';
import type { PositionalFile } from '../elf/index.js';
import type { FileView, ViewStat } from '../remote/view.js';
import { analyzeElfSymbols } from './analyze.js';
import { apkLibraries } from './apk.js';
import type { ApkLibrary } from './apk.js';
import { ANDROID_LIBRARY_DIRS } from './discover.js';
import type { SkippedFile } from './discover.js';
import { TargetError } from './errors.js';
import { isTlsLibraryName } from './families.js';
import { detectFlavour } from './flavour.js';
import { goFacts, goProgram } from './go.js';
import type { GoProgram } from './go.js';
import { goTargetOf, planGoProbesIn, planOrExplain } from './go-probes.js';
import { mappedFiles, mappedProcessFile, parseProcMaps } from './proc-maps.js';
import type { MappedFile } from './proc-maps.js';
import type { ProbeTarget } from './types.js';

/** Where Android keeps the 64-bit system TLS libraries: conscrypt's APEX (what apps' HTTPS uses) and the platform's. */
export const ANDROID_LIB64_DIRS: readonly string[] = ANDROID_LIBRARY_DIRS.filter((d) => d.endsWith('64'));
/** Their 32-bit twins: looked at only to count what is skipped. */
export const ANDROID_LIB32_DIRS: readonly string[] = ANDROID_LIBRARY_DIRS.filter((d) => !d.endsWith('64'));
/** Installed apps: /data/app/<pkg>-<id>/ (before Android 11) or /data/app/~~<id>/<pkg>-<id>/. */
export const ANDROID_APP_DIR = '/data/app';
/** One line per installed package: name, app id, debuggable, data dir, ... */
export const PACKAGES_LIST = '/data/system/packages.list';
/** uid = userId * PER_USER_RANGE + appId (android.os.UserHandle). */
export const PER_USER_RANGE = 100000;

const APP_ABIS_64 = new Set(['arm64', 'arm64-v8a', 'x86_64']);
const APP_ABIS_32 = new Set(['arm', 'armeabi-v7a', 'armeabi', 'x86']);
const ELFCLASS32 = 1;

/** A file to probe on the device, possibly inside an APK, and the processes seen mapping it. */
export interface AndroidTarget extends ProbeTarget {
  /** Where the ELF starts in `path`: 0, or the entry's data offset inside an APK (function offsets include it). */
  base: bigint;
  /** Processes that had it mapped when discovery walked /proc. */
  pids: number[];
}

/** What Android discovery found, and what it passed over. */
export interface AndroidDiscovery {
  targets: AndroidTarget[];
  /** With a package: the uids its running processes have (one per Android user running it). */
  uids: number[];
  /** With a package: its app id (its uid in Android user 0). */
  appId?: number;
  /** 32-bit processes and libraries: tlstap probes 64-bit code only. */
  skipped32: { processes: number; libraries: number };
  /** Files that could not be looked into, and why. */
  skipped: SkippedFile[];
  /** Go programs found whose crypto/tls is not captured, and why (captured ones are among `targets`). */
  goPrograms: GoProgram[];
}

/** Where a machine seen through a view keeps its libraries: Android's places, or a Linux distribution's. */
export interface ViewLayout {
  /** Directories of 64-bit libraries whose TLS-named files are looked into. */
  lib64Dirs: readonly string[];
  /** Their 32-bit twins: looked at only to count what is skipped. */
  lib32Dirs: readonly string[];
  /** Whether installed Android apps (/data/app) are looked into. */
  apps: boolean;
}

/** Android's layout. */
export const ANDROID_LAYOUT: ViewLayout = { lib64Dirs: ANDROID_LIB64_DIRS, lib32Dirs: ANDROID_LIB32_DIRS, apps: true };

/** Debian's multiarch names of the 64-bit machines the agent is built for, and of 32-bit ones to count. */
const MULTIARCH: Record<string, string> = { x86_64: 'x86_64-linux-gnu', aarch64: 'aarch64-linux-gnu' };
const MULTIARCH_32 = ['i386-linux-gnu', 'arm-linux-gnueabihf'];

/** A Linux machine's layout, for its `uname -m`: its multiarch directories and the usual others. */
export function linuxLayout(machine: string): ViewLayout {
  const triplet = MULTIARCH[machine];
  const multiarch = triplet === undefined ? [] : [`/usr/lib/${triplet}`, `/lib/${triplet}`];
  return {
    lib64Dirs: [...multiarch, '/usr/lib64', '/lib64', '/usr/lib', '/usr/local/lib'],
    lib32Dirs: MULTIARCH_32.map((t) => `/usr/lib/${t}`),
    apps: false,
  };
}

/** Options of androidTargets. */
export interface AndroidDiscoveryOptions {
  /** Only this app: its own libraries and its processes (any Android user), plus the system's TLS libraries. */
  package?: string;
  /** Only this process: the TLS libraries it maps (-p). */
  pid?: number;
  /** Files named by the user (--lib), looked into as they are. */
  lib?: readonly string[];
  /** Where the libraries are (default: Android's). */
  layout?: ViewLayout;
}

/** An installed package from packages.list. */
export interface AndroidPackage {
  name: string;
  appId: number;
}

/** Parses /data/system/packages.list; malformed lines are skipped. */
export function parsePackagesList(text: string): Map<string, AndroidPackage> {
  const packages = new Map<string, AndroidPackage>();
  for (const line of text.split('\n')) {
    const [name, appId] = line.trim().split(/\s+/);
    if (name === undefined || appId === undefined || !/^\d+$/.test(appId)) continue;
    packages.set(name, { name, appId: Number(appId) });
  }
  return packages;
}

/** The app id of a uid (the same app in every Android user). */
export function appIdOf(uid: number): number {
  return uid % PER_USER_RANGE;
}

/** The real uid from the text of /proc/PID/status, if it has one. */
export function uidFromStatus(text: string): number | undefined {
  const m = /^Uid:\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A file (or APK entry) found somewhere, before it is looked into. */
interface Found {
  path: string;
  /** The APK entry, for a library mapped from its APK. */
  entry?: ApkLibrary;
  source: ProbeTarget['source'];
  pids: Set<number>;
}

function displayOf(f: Found): string {
  return f.entry === undefined ? f.path : `${f.path}!/${f.entry.name}`;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? ((err as { reason?: string }).reason ?? err.message) : String(err);
}

async function listDir(view: FileView, dir: string): Promise<string[]> {
  return (await view.readdir(dir).catch(() => [])).map((d) => d.name).sort();
}

/** e_ident's class byte from a file's first 5 bytes: 1 for a 32-bit ELF, 2 for 64-bit, undefined if not ELF. */
function elfClassOf(head: Buffer): number | undefined {
  return head.length >= 5 && head.readUInt32BE(0) === 0x7f454c46 ? head[4] : undefined;
}

/** The class byte of an opened file. */
async function elfClass(file: PositionalFile): Promise<number | undefined> {
  const head = Buffer.alloc(5);
  const n = await file.read(head, 0, 5, 0);
  return elfClassOf(head.subarray(0, n));
}

/** The app directories of installed packages (of one package, if named): /data/app/[~~x/]pkg-y. */
async function appDirs(view: FileView, pkg: string | undefined): Promise<string[]> {
  const dirs: string[] = [];
  for (const name of await listDir(view, ANDROID_APP_DIR)) {
    const dir = posix.join(ANDROID_APP_DIR, name);
    const inner = name.startsWith('~~') ? (await listDir(view, dir)).map((n) => posix.join(dir, n)) : [dir];
    dirs.push(...inner.filter((d) => pkg === undefined || posix.basename(d).startsWith(`${pkg}-`)));
  }
  return dirs;
}

/** Walks Android's places and processes, collecting files to look into and counting 32-bit ones passed over. */
class Walk {
  readonly found = new Map<string, Found>();
  /** Processes' executables and --lib files: each may be a Go program. */
  readonly executables = new Map<string, Found>();
  readonly skipped: SkippedFile[] = [];
  readonly uids = new Set<number>();
  processes32 = 0;
  libraries32 = 0;
  private readonly apks = new Map<string, Promise<ApkLibrary[]>>();
  private readonly plainStats = new Map<string, Promise<ViewStat | undefined>>();

  constructor(
    private readonly view: FileView,
    private readonly layout: ViewLayout,
  ) {}

  add(path: string, source: ProbeTarget['source'], pid?: number, entry?: ApkLibrary, into: Map<string, Found> = this.found): void {
    const key = entry === undefined ? path : `${path}@${entry.dataOffset}`;
    let f = into.get(key);
    if (f === undefined) {
      f = { path, source, pids: new Set() };
      if (entry !== undefined) f.entry = entry;
      into.set(key, f);
    }
    if (pid !== undefined) f.pids.add(pid);
  }

  /**
   * The path that opens the very file a process maps, as local discovery finds it (reachProcessFile):
   * its own path when that is the file (the inode the maps give; one stat per path, shared by every
   * process), else the same path under /proc/PID/root (a container's own file), else the mapping's
   * /proc/PID/map_files link (a file deleted or replaced since), else the process's root unchecked (a
   * file system such as overlayfs reports another inode in maps); undefined when nothing reaches it.
   */
  private async reach(pid: number, file: MappedFile): Promise<string | undefined> {
    const statFile = (path: string) => this.view.stat(path).then((st) => (st.type === 'file' ? st : undefined), () => undefined);
    let plain = this.plainStats.get(file.path);
    if (plain === undefined) this.plainStats.set(file.path, (plain = statFile(file.path)));
    if (!file.deleted && (await plain)?.ino === file.inode) return file.path;
    const viaRoot = `/proc/${pid}/root${file.path}`;
    const identity = mappedProcessFile(pid, file).identityPath;
    const [inRoot, known] = await Promise.all([file.deleted ? undefined : statFile(viaRoot), statFile(identity)]);
    if (inRoot !== undefined && inRoot.ino === file.inode) return viaRoot;
    if (known !== undefined) return identity;
    return inRoot === undefined ? undefined : viaRoot;
  }

  /** A process's executable or a --lib file, to be looked at as a Go program. */
  addExecutable(path: string, source: ProbeTarget['source'], pid?: number): void {
    this.add(path, source, pid, undefined, this.executables);
  }

  /** The libraries an APK stores (read once per APK); [] with a note if it is not a readable zip. */
  apkLibraries(path: string): Promise<ApkLibrary[]> {
    let list = this.apks.get(path);
    if (list === undefined) {
      list = (async () => {
        const file = await this.view.openFile(path);
        try {
          return await apkLibraries(file);
        } finally {
          await file.close();
        }
      })().catch((err: unknown) => {
        this.skipped.push({ path, reason: `cannot read it as a zip: ${reasonOf(err)}` });
        return [];
      });
      this.apks.set(path, list);
    }
    return list;
  }

  async systemLibraries(): Promise<void> {
    for (const dir of this.layout.lib64Dirs) {
      for (const name of await listDir(this.view, dir)) if (isTlsLibraryName(name)) this.add(posix.join(dir, name), 'system');
    }
    for (const dir of this.layout.lib32Dirs) {
      for (const name of await listDir(this.view, dir)) if (isTlsLibraryName(name)) this.libraries32++;
    }
  }

  /** Libraries an app brings: extracted ones in lib/<abi>/, stored ones in its APKs. */
  async appLibraries(dir: string): Promise<void> {
    for (const abi of await listDir(this.view, posix.join(dir, 'lib'))) {
      const libs = (await listDir(this.view, posix.join(dir, 'lib', abi))).filter((n) => n.endsWith('.so'));
      if (APP_ABIS_32.has(abi)) this.libraries32 += libs.length;
      else if (APP_ABIS_64.has(abi)) for (const n of libs) this.add(posix.join(dir, 'lib', abi, n), 'system');
    }
    for (const name of await listDir(this.view, dir)) {
      if (!name.endsWith('.apk')) continue;
      const apk = posix.join(dir, name);
      for (const lib of await this.apkLibraries(apk)) {
        if (lib.method !== 0) continue; // compressed: extracted to lib/<abi>/ at install
        if (APP_ABIS_32.has(lib.abi)) this.libraries32++;
        else if (APP_ABIS_64.has(lib.abi)) this.add(apk, 'system', undefined, lib);
      }
    }
  }

  /** Every process (of the app id, or the one pid, if given): 32-bit ones counted, the others' mapped libraries added. */
  async processes(appId: number | undefined, only?: number): Promise<void> {
    const names = only === undefined ? await listDir(this.view, '/proc') : [String(only)];
    // All at once: over the agent's pipe the requests overlap, so the walk takes a few round trips, not thousands.
    await Promise.all(names.filter((name) => /^\d+$/.test(name)).map((name) => this.process(Number(name), appId, only !== undefined)));
  }

  private async process(pid: number, appId: number | undefined, every: boolean): Promise<void> {
    try {
      const uid = uidFromStatus((await this.view.readFile(`/proc/${pid}/status`)).toString('latin1'));
      if (appId !== undefined && (uid === undefined || appIdOf(uid) !== appId)) return;
      // Five bytes of the executable, not a block of it: a phone has a thousand processes.
      if (elfClassOf(await this.view.read(`/proc/${pid}/exe`, 0, 5)) === ELFCLASS32) {
        this.processes32++;
        return;
      }
      if (uid !== undefined && appId !== undefined) this.uids.add(uid);
      // The kernel's link is absolute; a fixture root's is relative to /proc/PID.
      const exe = await this.view.readlink(`/proc/${pid}/exe`).then((link) => posix.resolve(`/proc/${pid}`, link), () => undefined);
      await this.mappings(pid, (await this.view.readFile(`/proc/${pid}/maps`)).toString('latin1'), every, exe);
    } catch {
      // Kernel threads have no executable; processes exit while we look.
    }
  }

  /**
   * A process's TLS-named and app libraries, or (`every`, for -p) every executable file it maps, and
   * its executable (`exe`, the link's target) as a possible Go program; each by a path that opens the
   * very file the process maps (see reach).
   */
  private async mappings(pid: number, maps: string, every: boolean, exe: string | undefined): Promise<void> {
    const regions = parseProcMaps(maps);
    const wanted: { file: MappedFile; executable: boolean }[] = [];
    for (const file of mappedFiles(regions)) {
      if (file.path.endsWith('.apk') || !file.executable) continue;
      const appLib = file.path.startsWith(`${ANDROID_APP_DIR}/`) && file.path.endsWith('.so');
      const library = every || appLib || isTlsLibraryName(posix.basename(file.path));
      if (library || file.path === exe) wanted.push({ file, executable: file.path === exe });
    }
    for (const { file, executable } of wanted) {
      const path = await this.reach(pid, file);
      if (path === undefined) {
        if (!executable) this.skipped.push({ path: file.path, reason: `process ${pid} maps it, and neither that path, /proc/${pid}/root nor /proc/${pid}/map_files reaches the file` });
        continue;
      }
      if (executable) this.addExecutable(path, 'process', pid);
      if (!executable || every) this.add(path, 'process', pid);
    }
    // A library mapped from its APK: each of its mappings lies inside the entry's bytes.
    for (const r of regions) {
      if (r.pathname === undefined || !r.pathname.endsWith('.apk') || r.perms[2] !== 'x') continue;
      const offset = Number(r.offset);
      const lib = (await this.apkLibraries(r.pathname)).find((l) => offset >= l.dataOffset && offset < l.dataOffset + l.size);
      if (lib !== undefined) this.add(r.pathname, 'process', pid, lib);
    }
  }
}

/** Opens a found file as ELF: the file itself, or its APK entry's slice. */
async function openFound(view: FileView, f: Found): Promise<PositionalFile> {
  const file = await view.openFile(f.path);
  return f.entry === undefined ? file : sliceFile(file, f.entry.dataOffset, f.entry.size);
}

/** A companion (libcrypto) next to a file: in its directory, or beside its entry in the APK. */
function companionOpener(view: FileView, walk: Walk, f: Found) {
  return async <T>(name: string, fn: (companion: ElfFile) => Promise<T>): Promise<T | undefined> => {
    let file: PositionalFile;
    let shown: string;
    if (f.entry === undefined) {
      shown = posix.join(posix.dirname(f.path), name);
      file = await view.openFile(shown);
    } else {
      const entryName = posix.join(posix.dirname(f.entry.name), name);
      const entry = (await walk.apkLibraries(f.path)).find((l) => l.name === entryName && l.method === 0);
      if (entry === undefined) return undefined;
      shown = `${f.path}!/${entryName}`;
      file = sliceFile(await view.openFile(f.path), entry.dataOffset, entry.size);
    }
    const elf = await ElfFile.openFile(shown, file);
    try {
      return await fn(elf);
    } finally {
      await elf.close();
    }
  };
}

/** Looks into one found file; undefined (with a count or a note) when it is not a 64-bit TLS library. */
async function analyzeFound(view: FileView, walk: Walk, f: Found): Promise<AndroidTarget | undefined> {
  const shown = displayOf(f);
  const file = await openFound(view, f);
  if ((await elfClass(file)) === ELFCLASS32) {
    walk.libraries32++;
    await file.close();
    return undefined;
  }
  const elf = await ElfFile.openFile(shown, file);
  try {
    // The device's architecture, not this machine's: 32-bit files were counted and skipped above.
    const symbols = await analyzeElfSymbols(elf, null);
    if (symbols.functions.length === 0) {
      if (isTlsLibraryName(posix.basename(f.entry?.name ?? f.path))) walk.skipped.push({ path: shown, reason: 'defines none of the TLS functions (stripped)' });
      return undefined;
    }
    const flavour = await detectFlavour(elf, companionOpener(view, walk, f));
    const st = await view.stat(f.path);
    const base = BigInt(f.entry?.dataOffset ?? 0);
    const target: AndroidTarget = {
      path: f.path,
      displayPath: shown,
      dev: st.dev,
      ino: st.ino,
      flavour: flavour.flavour,
      functions: symbols.functions.map((fn) => ({ ...fn, fileOffset: fn.fileOffset + base })),
      missing: symbols.missing,
      arch: symbols.arch,
      source: f.source,
      base,
      pids: [...f.pids].sort((a, b) => a - b),
    };
    if (flavour.version !== undefined) target.version = flavour.version;
    if (symbols.buildId !== undefined) target.buildId = symbols.buildId;
    return target;
  } finally {
    await elf.close();
  }
}

/**
 * Looks at an executable as a Go program: undefined when it is not one (or is 32-bit); with a target
 * when its crypto/tls is captured, else the program with the reason.
 */
async function analyzeGo(view: FileView, f: Found): Promise<{ program: GoProgram; target?: AndroidTarget } | undefined> {
  const file = await view.openFile(f.path);
  if ((await elfClass(file)) === ELFCLASS32) {
    await file.close();
    return undefined;
  }
  const elf = await ElfFile.openFile(f.path, file);
  try {
    const facts = await goFacts(elf);
    if (facts === undefined) return undefined;
    const program = goProgram(facts, f.path, f.path);
    if (program.status !== 'captured') return { program };
    const plan = await planOrExplain(program, () => planGoProbesIn(elf, program));
    if (plan === undefined) return { program };
    const target = goTargetOf(program, plan, await view.stat(f.path), f.source);
    return { program, target: { ...target, base: 0n, pids: [...f.pids].sort((a, b) => a - b) } };
  } finally {
    await elf.close();
  }
}

/**
 * The TLS code to probe on an Android device seen through `view`: the system's BoringSSL (conscrypt's
 * and the platform's), libraries apps bring (extracted under /data/app/.../lib/arm64/ or stored in
 * their APK), and what every process maps (all apps run as app_process64, so each process's maps
 * are read). With `package`, only that app's libraries and processes (its uid in every Android user).
 */
export async function androidTargets(view: FileView, options: AndroidDiscoveryOptions = {}): Promise<AndroidDiscovery> {
  let appId: number | undefined;
  if (options.package !== undefined) {
    let text: string;
    try {
      text = (await view.readFile(PACKAGES_LIST)).toString('utf8');
    } catch (err) {
      throw new TargetError(`cannot read ${PACKAGES_LIST} (${view.where}): ${reasonOf(err)}`, {
        path: PACKAGES_LIST,
        hint: 'run the agent as root (adb shell su -c), or capture without --package',
      });
    }
    const pkg = parsePackagesList(text).get(options.package);
    if (pkg === undefined) {
      throw new TargetError(`no package ${options.package} in ${PACKAGES_LIST}`, {
        path: PACKAGES_LIST,
        hint: 'list the installed packages with `adb shell pm list packages`',
      });
    }
    appId = pkg.appId;
  }
  const layout = options.layout ?? ANDROID_LAYOUT;
  const walk = new Walk(view, layout);
  if (options.pid === undefined) {
    await walk.systemLibraries();
    if (layout.apps) for (const dir of await appDirs(view, options.package)) await walk.appLibraries(dir);
  } else if (!(await view.stat(`/proc/${options.pid}`).then(() => true, () => false))) {
    throw new TargetError(`no process ${options.pid} (${view.where})`, { hint: 'check the pid there, e.g. with ps' });
  }
  await walk.processes(appId, options.pid);
  for (const path of options.lib ?? []) {
    walk.add(path, 'lib-option');
    walk.addExecutable(path, 'lib-option');
  }

  const targets: AndroidTarget[] = [];
  // Every file looked into at once (their reads overlap on the agent's pipe), the results taken in order.
  const found = [...walk.found.values()];
  const analysed = await Promise.all(found.map((f) => analyzeFound(view, walk, f).catch((err: unknown) => err as Error)));
  for (const [i, result] of analysed.entries()) {
    if (result instanceof Error) {
      walk.skipped.push({ path: displayOf(found[i]!), reason: reasonOf(result) });
      continue;
    }
    const target = result;
    if (target === undefined) continue;
    // One file reached by two paths (a symlink in /system/lib64) is one target, with both's processes.
    const twin = targets.find((t) => t.dev === target.dev && t.ino === target.ino && t.base === target.base);
    if (twin === undefined) targets.push(target);
    else twin.pids = [...new Set([...twin.pids, ...target.pids])].sort((a, b) => a - b);
  }
  // Go programs among the executables (system-wide, only those with crypto/tls: the others make no Go TLS).
  const goPrograms: GoProgram[] = [];
  const executables = [...walk.executables.values()];
  const programs = await Promise.all(executables.map((f) => analyzeGo(view, f).catch((err: unknown) => err as Error)));
  for (const [i, result] of programs.entries()) {
    if (result instanceof Error) {
      // A --lib file was already reported by the library analysis; a process's executable is passed over.
      if (executables[i]!.source !== 'lib-option') walk.skipped.push({ path: executables[i]!.path, reason: reasonOf(result) });
      continue;
    }
    if (result === undefined) continue;
    if (result.target !== undefined) targets.push(result.target);
    else if (options.pid !== undefined || executables[i]!.source === 'lib-option' || result.program.status !== 'no-crypto-tls') goPrograms.push(result.program);
  }
  targets.sort((a, b) => (a.displayPath < b.displayPath ? -1 : a.displayPath > b.displayPath ? 1 : 0));
  return {
    targets,
    goPrograms,
    ...(appId === undefined ? {} : { appId }),
    uids: [...walk.uids].sort((a, b) => a - b),
    skipped32: { processes: walk.processes32, libraries: walk.libraries32 },
    skipped: walk.skipped,
  };
}
