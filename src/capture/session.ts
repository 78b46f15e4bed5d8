import { BpfError } from '../native/binding.js';
import { localMachine } from './backend.js';
import type { BpfBackendSession, BpfMachine } from './backend.js';
import { EVENT_LAYOUT, makeCookie } from '../events/layout.js';
import { PROBED_FUNCTIONS, isDataFunction, isGoFunction } from '../events/types.js';
import type { GoTlsFunction, ProbedFunction } from '../events/types.js';
import { countersFromValues } from '../events/counters.js';
import type { KernelCounters } from '../events/counters.js';
import type { SpillStats } from '../events/types.js';

export type { KernelCounters } from '../events/counters.js';

/** A file to probe and the functions in it (a ProbeTarget from src/targets fits). */
export interface AttachFile {
  path: string;
  functions: readonly { name: ProbedFunction; fileOffset: bigint }[];
  /** A Go program's probes (bpf/go.bpf.h); its Go `functions` are attached through these only. */
  goSites?: readonly { offset: bigint; kind: 'entry' | 'return-site'; func: GoTlsFunction }[];
}

/** Settings applied in the kernel, fixed at load time. */
export interface KernelSettings {
  /** Only this process (also narrows the uprobes to it). */
  pid?: number;
  uid?: number;
  /** Only threads with this name; the kernel keeps 15 bytes of it. */
  comm?: string;
  /** Bytes copied per call at most; the rest is counted as truncated. */
  maxCallBytes: number;
  /** Ring buffer size in bytes: a power of two, at least one page. */
  ringBufferBytes: number;
  /** Only connections with this local or remote port. */
  port?: number;
  /** Only connections with this local or remote address (4 or 16 bytes). */
  host?: { family: 'ipv4' | 'ipv6'; bytes: Buffer };
  /** One perf-event probe per function even where uprobe_multi links exist (what kernels before 6.6 get). */
  perProbeLinks?: boolean;
  /** A BTF file for the kernel's types (--btf), in place of /sys/kernel/btf/vmlinux or libbpf's fallback paths. */
  btfPath?: string;
  /** Act as if the kernel lacked per-syscall tracepoints (Android GKI): raw_syscalls (TLSTAP_NO_SYSCALL_TRACEPOINTS=1). */
  noSyscallTracepoints?: boolean;
  /** Act as if the kernel lacked attach cookies (before 5.15; TLSTAP_NO_ATTACH_COOKIES=1). */
  noAttachCookies?: boolean;
  /** Act as if the kernel had no BTF: addresses unknown, every byte still captured (TLSTAP_NO_KERNEL_BTF=1). */
  noKernelBtf?: boolean;
  /** Connections the kernel tracks at once: the size of its connection maps (default MAX_CONNS). */
  maxConnections?: number;
  /**
   * Loads Go's programs (bpf/go.bpf.h) too: about 150 ms more of the verifier's time, so only when a Go
   * program is among the files to probe (needsGoPrograms).
   */
  goPrograms?: boolean;
}

/** Whether probing `files` needs Go's programs loaded (a Go program among them). */
export function needsGoPrograms(files: readonly AttachFile[]): boolean {
  return files.some((f) => (f.goSites?.length ?? 0) > 0);
}

/** How the program meets this kernel, chosen at load from what the kernel has (and the switches). */
export interface KernelPaths {
  /** Per-syscall tracepoints, or raw_syscalls:sys_enter (every syscall, picked by number) where they are missing. */
  syscallHooks: 'syscalls' | 'raw_syscalls';
  /**
   * Attach cookies (5.15+): one entry program names function and file. Without them, one entry
   * program per function, the file from the probe address's page offset (bpf/tlstap.h).
   */
  attachCookies: boolean;
  /** Where CO-RE finds the kernel's types; undefined: nowhere, so socket addresses are unknown. */
  btf: string | undefined;
}

/** One line on how the program meets this kernel, for --verbose. */
export function describePaths(paths: KernelPaths, multiLinks: boolean): string {
  const hooks = paths.syscallHooks === 'syscalls' ? 'per-syscall tracepoints' : 'raw_syscalls:sys_enter (no per-syscall tracepoints)';
  const probes = paths.attachCookies
    ? `attach cookies, ${multiLinks ? 'uprobe_multi links' : 'one perf-event probe per function'}`
    : 'no attach cookies: one entry program per function';
  return `kernel: ${hooks}; ${probes}; BTF ${paths.btf ?? 'missing: addresses unknown'}`;
}

/** The switches that make tlstap act as on an older or smaller kernel, from the environment. */
export function switchesFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<KernelSettings, 'noSyscallTracepoints' | 'noAttachCookies' | 'noKernelBtf'> {
  const on = (name: string): true | undefined => (env[name] === '1' ? true : undefined);
  return {
    noSyscallTracepoints: on('TLSTAP_NO_SYSCALL_TRACEPOINTS'),
    noAttachCookies: on('TLSTAP_NO_ATTACH_COOKIES'),
    noKernelBtf: on('TLSTAP_NO_KERNEL_BTF'),
  };
}


const C = EVENT_LAYOUT.constants;
const ENTRY_PROGRAM = 'probe_enter';
const RETURN_PROGRAM = 'probe_return';
/** The entry program of one function, for kernels without attach cookies. */
const entryProgramOf = (func: number): string => `probe_enter_${func}`;
const FUNC_ENTRY_PROGRAMS = Array.from({ length: C.FUNC_LIBRARY_COUNT }, (_, func) => entryProgramOf(func));
/** Go's programs (bpf/go.bpf.h), by what a site is: they take function and file from the attach cookie. */
const GO_PROGRAMS: Readonly<Record<string, string>> = { 'entry:crypto/tls.(*Conn).Write': 'go_write_enter', 'entry:crypto/tls.(*Conn).Read': 'go_read_enter', 'return-site:crypto/tls.(*Conn).Read': 'go_read_return' };
/** The library functions of a file (Go's are attached through its goSites). */
const libraryFunctions = (file: AttachFile) => file.functions.filter((fn) => !isGoFunction(fn.name));
/** Go's maps (bpf/go.bpf.h): filled by Go's programs only, read by the syscall hooks. */
const GO_MAPS = ['go_pids', 'go_inflight'];
const SYSCALL_PROGRAMS = ['syscall_fd_io', 'syscall_close'];
const RAW_SYSCALL_PROGRAM = 'raw_syscall';
/** Socket I/O syscalls whose first argument is the fd a TLS call uses. */
const FD_SYSCALLS = ['read', 'write', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'readv', 'writev'];
const AF_INET = 2;
const AF_INET6 = 10;

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

function u8(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}

/** The comm as the kernel stores it: at most 15 bytes and a NUL, zero-padded to 16. */
export function kernelComm(comm: string): Buffer {
  const bytes = Buffer.alloc(C.COMM_LEN);
  Buffer.from(comm, 'utf8').copy(bytes, 0, 0, C.COMM_LEN - 1);
  return bytes;
}

/**
 * The tlstap BPF program loaded with its settings, not attached yet. Loading (kernel BTF, verifier)
 * takes tens of milliseconds: a capture starts it with `load` and looks for the files to probe meanwhile.
 */
export class LoadedProgram {
  private done = false;

  private constructor(
    private readonly native: BpfBackendSession,
    private readonly settings: KernelSettings,
    /** Whether probes will be uprobe_multi links (one per file and program) rather than one per probe. */
    readonly multiLinks: boolean,
    /** How the program meets this kernel. */
    readonly paths: KernelPaths,
  ) {}

  /** Loads the program on `machine` (this one by default; off the JS thread), for uprobe_multi links where the kernel has them. */
  static async load(settings: KernelSettings, objectName = 'tlstap.bpf.o', machine: BpfMachine = localMachine): Promise<LoadedProgram> {
    const paths = await kernelPaths(settings, machine);
    const btf = settings.btfPath ?? (paths.btf === undefined ? 'empty' : undefined);
    for (const multi of await linkKinds(settings, paths, machine)) {
      let native: BpfBackendSession | undefined;
      try {
        native = await machine.open(objectName, btf);
        await configure(native, settings, multi, paths, await machine.numPossibleCpus());
        await native.load();
        return new LoadedProgram(native, settings, multi, paths);
      } catch (err) {
        await native?.close();
        if (!fallsBack(err, multi)) throw err;
      }
    }
    throw new Error('unreachable: loading for per-probe links does not fall back');
  }

  /** Attaches every function of every file and the syscall tracepoints, and starts polling; once. */
  async attach(files: readonly AttachFile[], onBatch: (batch: Buffer, count: number) => void): Promise<CaptureSession> {
    if (this.done) throw new Error('this loaded program was attached or closed already');
    this.done = true;
    const { native, multiLinks, paths } = this;
    const pid = this.settings.pid;
    try {
      const ambiguous = paths.attachCookies ? [] : await fillProbeSites(native, files);
      let probes = multiLinks ? await attachMulti(native, files, pid) : await attachEach(native, files, pid, paths.attachCookies);
      if (paths.attachCookies) for (const [i, file] of files.entries()) probes += await this.attachGoSites(file, i);
      const goWithoutCookies = paths.attachCookies ? [] : files.filter((f) => f.goSites?.length).map((f) => f.path);
      if (paths.syscallHooks === 'syscalls') {
        for (const name of FD_SYSCALLS) await native.attachTracepoint('syscall_fd_io', 'syscalls', `sys_enter_${name}`);
        await native.attachTracepoint('syscall_close', 'syscalls', 'sys_enter_close');
      } else {
        await native.attachTracepoint(RAW_SYSCALL_PROGRAM, 'raw_syscalls', 'sys_enter');
      }
      await native.attachTracepoint('process_exit', 'sched', 'sched_process_exit');
      return await CaptureSession.polling(native, probes, multiLinks, onBatch, { ambiguousProbes: ambiguous, pid, attachCookies: paths.attachCookies, goWithoutCookies });
    } catch (err) {
      await native.close();
      throw err;
    }
  }

  /** A Go program's sites, through Go's programs: an error if they were not loaded (KernelSettings.goPrograms). */
  private attachGoSites(file: AttachFile, fileIndex: number): Promise<number> {
    if (needsGoPrograms([file]) && this.settings.goPrograms !== true) {
      throw new Error(`${file.path} is a Go program, and the program was loaded without Go's programs (KernelSettings.goPrograms)`);
    }
    return attachGo(this.native, file, fileIndex, this.settings.pid);
  }

  /** Releases the program without attaching it (the capture failed before it started). */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.native.close();
  }
}

/**
 * A loaded and attached tlstap BPF program streaming batches of records. Resources are
 * released in reverse order: probes, polling, ring buffer, object.
 */
export class CaptureSession {
  private polling: Promise<string | undefined> | undefined;
  private closed = false;
  /** The native session is closed (after the final batch): nothing may call it. */
  private released = false;
  /** The spill as the stop left it (the native session is closed then). */
  private finalSpill: SpillStats | undefined;

  private constructor(
    private readonly native: BpfBackendSession,
    /** Number of uprobes and uretprobes attached. */
    public probeCount: number,
    /** Whether they are uprobe_multi links (one per file and program) rather than one per probe. */
    readonly multiLinks: boolean,
    /** Without attach cookies: functions whose calls name no file (ProbeSites.ambiguous). */
    readonly ambiguousProbes: readonly string[],
    private readonly pid: number | undefined,
    private readonly attachCookies: boolean,
    /** Go programs whose probes were not attached: Go's programs need attach cookies (5.15+). */
    readonly goWithoutCookies: readonly string[] = [],
  ) {}

  /** Loads the program with `settings`, attaches every function of every file, starts polling. */
  static async open(
    files: readonly AttachFile[],
    settings: KernelSettings,
    onBatch: (batch: Buffer, count: number) => void,
    objectName = 'tlstap.bpf.o',
  ): Promise<CaptureSession> {
    return (await LoadedProgram.load({ goPrograms: needsGoPrograms(files), ...settings }, objectName)).attach(files, onBatch);
  }

  /** A session for an attached program, polling its ring buffer (LoadedProgram.attach). */
  static async polling(
    native: BpfBackendSession,
    probeCount: number,
    multiLinks: boolean,
    onBatch: (batch: Buffer, count: number) => void,
    how: { ambiguousProbes?: readonly string[]; pid?: number; attachCookies?: boolean; goWithoutCookies?: readonly string[] } = {},
  ): Promise<CaptureSession> {
    const session = new CaptureSession(native, probeCount, multiLinks, how.ambiguousProbes ?? [], how.pid, how.attachCookies ?? true, how.goWithoutCookies ?? []);
    session.polling = (await native.startPolling('events', onBatch, { batchBytes: 1 << 20, timeoutMs: 20 })).ended;
    return session;
  }
  /**
   * Probes one more file while capturing (a probed library replaced on disk), its events named by
   * `fileIndex`; returns the number of probes added.
   */
  async attachFile(file: AttachFile, fileIndex: number): Promise<number> {
    if (this.closed) return 0;
    // Without attach cookies the new file's sites are not in probe_sites: its records name no file.
    let probes = this.multiLinks ? await attachMulti(this.native, [file], this.pid, fileIndex) : await attachEach(this.native, [file], this.pid, this.attachCookies, fileIndex);
    if (this.attachCookies) probes += await attachGo(this.native, file, fileIndex, this.pid);
    this.probeCount += probes;
    return probes;
  }

  /** Stops or resumes delivery (while outputs are behind, records wait in the spill, then in the ring buffer, where the kernel counts). */
  async pause(paused: boolean): Promise<void> {
    // Also while stopping: the spill drains at the outputs' pace.
    if (!this.released) await this.native.pausePolling(paused);
  }

  /** The spill now (after stop: as it ended); undefined where the session has none. */
  spill(): SpillStats | undefined {
    return this.closed ? this.finalSpill : this.native.spillStats?.();
  }

  /**
   * Frees a batch onBatch was given, now rather than when V8 collects it. Only for a batch no
   * one holds on to: the pipeline copies what it keeps past a batch; the --record writer does not.
   */
  release(batch: Buffer): void {
    this.native.releaseBatch(batch);
  }

  /** Current kernel counters. */
  async counters(): Promise<KernelCounters> {
    return countersFromValues((await this.native.sumPercpuArray('counters')).map(Number));
  }

  /**
   * Detaches the probes, delivers every record still in the ring buffer, and closes.
   * Resolves with the final counters.
   */
  async stop(): Promise<KernelCounters> {
    if (this.closed) throw new Error('capture session already stopped');
    this.closed = true;
    try {
      await this.native.detachAll();
      // Delivery still follows the outputs' pace (a failed output resolves its drain at once).
      await this.native.stopPolling();
      const pollError = await this.polling;
      const final = await this.counters();
      this.finalSpill = this.native.spillStats?.();
      if (pollError) throw new Error(`polling the ring buffer failed: ${pollError}`);
      return final;
    } finally {
      this.released = true;
      await this.native.close();
    }
  }
}

/** uprobe_multi links where allowed, then one perf-event probe per function (what kernels before 6.6 get). */
async function linkKinds(settings: KernelSettings, paths: KernelPaths, machine: BpfMachine): Promise<boolean[]> {
  return settings.perProbeLinks === true || !paths.attachCookies || !(await machine.uprobeMulti()) ? [false] : [true, false];
}

/** What the machine's kernel offers (tracefs mounted if need be), less what the switches turn off. */
export async function kernelPaths(settings: KernelSettings, machine: BpfMachine = localMachine): Promise<KernelPaths> {
  const s = { ...switchesFromEnv(), ...settings };
  const syscalls = await machine.syscallTracepoints();
  const cookies = !s.noAttachCookies && (await machine.attachCookies());
  return {
    syscallHooks: syscalls && !s.noSyscallTracepoints ? 'syscalls' : 'raw_syscalls',
    attachCookies: cookies,
    btf: s.btfPath ?? (s.noKernelBtf ? undefined : await machine.kernelBtf()),
  };
}

/** Whether a failed load for `multi` links is retried with per-probe links: a libbpf failure is. */
function fallsBack(err: unknown, multi: boolean): boolean {
  return multi && err instanceof BpfError;
}

/** Applies the settings and paths to an opened object: ready for load(). */
async function configure(native: BpfBackendSession, settings: KernelSettings, multi: boolean, paths: KernelPaths, cpus: number): Promise<void> {
  await applySettings(native, settings);
  // Programs a path does not use are not loaded: a kernel may lack what they call.
  await native.setAutoload(ENTRY_PROGRAM, paths.attachCookies);
  for (const name of FUNC_ENTRY_PROGRAMS) await native.setAutoload(name, !paths.attachCookies);
  // Go's programs need attach cookies (5.15).
  const goLoaded = paths.attachCookies && settings.goPrograms === true;
  for (const name of Object.values(GO_PROGRAMS)) await native.setAutoload(name, goLoaded);
  for (const name of SYSCALL_PROGRAMS) await native.setAutoload(name, paths.syscallHooks === 'syscalls');
  await native.setAutoload(RAW_SYSCALL_PROGRAM, paths.syscallHooks === 'raw_syscalls');
  await native.setGlobal('.rodata', 'nr_cpus', u32(cpus));
  if (multi) await native.useUprobeMulti([ENTRY_PROGRAM, RETURN_PROGRAM]);
  // Maps no loaded program fills get one entry: the kernel allocates a hash map's entries up front,
  // a few ms of every start for each (Go's without Go's programs; probe_sites with attach cookies).
  if (!goLoaded) for (const map of GO_MAPS) await shrinkUnusedMap(native, map);
  if (paths.attachCookies) await shrinkUnusedMap(native, 'probe_sites');
}

/** Gives an unused map one entry; an object without that map (the benchmark's floor) has nothing to shrink. */
async function shrinkUnusedMap(native: BpfBackendSession, map: string): Promise<void> {
  try {
    await native.setMapMaxEntries(map, 1);
  } catch (err) {
    if (!(err instanceof BpfError && err.code === 'ENOENT')) throw err;
  }
}

/** One entry link and one return link per file, each with all of the file's offsets. */
async function attachMulti(native: BpfBackendSession, files: readonly AttachFile[], pid = -1, firstIndex = 0): Promise<number> {
  let probes = 0;
  for (const [i, file] of files.entries()) {
    const fileIndex = firstIndex + i;
    const cookie = (fn: AttachFile['functions'][number]) => makeCookie(fileIndex, PROBED_FUNCTIONS.indexOf(fn.name));
    const functions = libraryFunctions(file);
    if (functions.length === 0) continue;
    const data = functions.filter((fn) => isDataFunction(fn.name));
    await native.attachUprobeMulti(ENTRY_PROGRAM, file.path, BigUint64Array.from(functions, (f) => f.fileOffset), BigUint64Array.from(functions, cookie), pid, false);
    await native.attachUprobeMulti(RETURN_PROGRAM, file.path, BigUint64Array.from(data, (f) => f.fileOffset), BigUint64Array.from(data, cookie), pid, true);
    probes += functions.length + data.length;
  }
  return probes;
}

/**
 * One perf-event uprobe per function entry and per data function return (older kernels). Without
 * attach cookies, each function's own entry program (cookie 0: libbpf then needs no cookie support).
 */
async function attachEach(native: BpfBackendSession, files: readonly AttachFile[], pid: number | undefined, cookies: boolean, firstIndex = 0): Promise<number> {
  let probes = 0;
  for (const [i, file] of files.entries()) {
    const fileIndex = firstIndex + i;
    for (const fn of libraryFunctions(file)) {
      const func = PROBED_FUNCTIONS.indexOf(fn.name);
      const cookie = cookies ? makeCookie(fileIndex, func) : 0n;
      await native.attachUprobe(cookies ? ENTRY_PROGRAM : entryProgramOf(func), file.path, fn.fileOffset, pid ?? -1, false, cookie);
      probes++;
      if (!isDataFunction(fn.name)) continue;
      await native.attachUprobe(RETURN_PROGRAM, file.path, fn.fileOffset, pid ?? -1, true, cookie);
      probes++;
    }
  }
  return probes;
}

/**
 * A Go program's probes: a plain uprobe (never a uretprobe) at each site, with the cookie naming
 * function and file. Only where attach cookies exist (5.15+), which Go's programs need.
 */
async function attachGo(native: BpfBackendSession, file: AttachFile, fileIndex: number, pid = -1): Promise<number> {
  for (const site of file.goSites ?? []) {
    const program = GO_PROGRAMS[`${site.kind}:${site.func}`];
    if (program === undefined) throw new Error(`no Go program for a ${site.kind} of ${site.func}`);
    await native.attachUprobe(program, file.path, site.offset, pid, false, makeCookie(fileIndex, PROBED_FUNCTIONS.indexOf(site.func)));
  }
  return file.goSites?.length ?? 0;
}

/** A key and value of probe_sites, and the functions whose calls name no file on this path. */
export interface ProbeSites {
  sites: { func: number; pageOffset: number; file: number }[];
  /** `SSL_write in /a and /b`: functions of two files at one page offset (told apart only with attach cookies). */
  ambiguous: string[];
}

/** probe_sites for a plan: (function, page offset of its file offset) -> file index, or ambiguous (bpf/tlstap.h). */
export function probeSites(files: readonly AttachFile[]): ProbeSites {
  const sites = new Map<string, { func: number; pageOffset: number; file: number; paths: Set<string> }>();
  files.forEach((file, fileIndex) => {
    for (const fn of libraryFunctions(file)) {
      const func = PROBED_FUNCTIONS.indexOf(fn.name);
      const pageOffset = Number(fn.fileOffset & BigInt(C.PAGE_OFFSET_MASK));
      const key = `${func}:${pageOffset}`;
      const seen = sites.get(key);
      if (seen === undefined) sites.set(key, { func, pageOffset, file: fileIndex, paths: new Set([file.path]) });
      else if (seen.file !== fileIndex) {
        seen.file = C.FILE_AMBIGUOUS;
        seen.paths.add(file.path);
      }
    }
  });
  const all = [...sites.values()];
  return {
    sites: all.map(({ func, pageOffset, file }) => ({ func, pageOffset, file })),
    ambiguous: all.filter((s) => s.file === C.FILE_AMBIGUOUS).map((s) => `${PROBED_FUNCTIONS[s.func]} in ${[...s.paths].join(' and ')}`),
  };
}

/** Fills probe_sites; returns the ambiguous functions. */
async function fillProbeSites(native: BpfBackendSession, files: readonly AttachFile[]): Promise<string[]> {
  const { sites, ambiguous } = probeSites(files);
  for (const site of sites) {
    const key = Buffer.alloc(8);
    key.writeUInt32LE(site.func, 0);
    key.writeUInt32LE(site.pageOffset, 4);
    await native.updateMapElem('probe_sites', key, u32(site.file));
  }
  return ambiguous;
}

async function applySettings(native: BpfBackendSession, settings: KernelSettings): Promise<void> {
  if (settings.pid !== undefined) await native.setGlobal('.rodata', 'targ_pid', u32(settings.pid));
  if (settings.uid !== undefined) {
    await native.setGlobal('.rodata', 'targ_uid', u32(settings.uid));
    await native.setGlobal('.rodata', 'filter_uid', u8(1));
  }
  if (settings.comm !== undefined) {
    await native.setGlobal('.rodata', 'targ_comm', kernelComm(settings.comm));
    await native.setGlobal('.rodata', 'filter_comm', u8(1));
  }
  await native.setGlobal('.rodata', 'max_call_bytes', u32(settings.maxCallBytes));
  if (settings.port !== undefined) await native.setGlobal('.rodata', 'targ_port', u16(settings.port));
  if (settings.host !== undefined) {
    const bytes = Buffer.alloc(16);
    settings.host.bytes.copy(bytes);
    await native.setGlobal('.rodata', 'targ_host', bytes);
    await native.setGlobal('.rodata', 'targ_host_family', u16(settings.host.family === 'ipv4' ? AF_INET : AF_INET6));
  }
  await native.setMapMaxEntries('events', settings.ringBufferBytes);
  if (settings.maxConnections !== undefined) {
    for (const map of ['conns', 'conn_pids', 'fd_conns']) await native.setMapMaxEntries(map, settings.maxConnections);
  }
  // Wake the reader when a quarter of the ring is waiting (at most 256 KiB), so small rings do not overflow between its timer polls.
  await native.setGlobal('.rodata', 'wakeup_bytes', u32(Math.min(256 * 1024, settings.ringBufferBytes / 4)));
  // ...and at most once a millisecond, less for a ring that 16 GB/s of records would fill sooner.
  await native.setGlobal('.rodata', 'wakeup_gap_ns', u32(Math.min(1_000_000, Math.floor(settings.ringBufferBytes / 16))));
}
