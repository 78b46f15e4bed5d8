import { BpfError, bpfObjectPath, loadAddon } from '../native/binding.js';
import type { NativeBpfSession } from '../native/binding.js';
import { EVENT_LAYOUT, makeCookie } from '../events/layout.js';
import { PROBED_FUNCTIONS, isDataFunction } from '../events/types.js';
import type { ProbedFunction } from '../events/types.js';
import { ensureTracefs } from './tracefs.js';
import { countersFromValues } from '../events/counters.js';
import type { KernelCounters } from '../events/counters.js';

export type { KernelCounters } from '../events/counters.js';

/** A file to probe and the functions in it (a ProbeTarget from src/targets fits). */
export interface AttachFile {
  path: string;
  functions: readonly { name: ProbedFunction; fileOffset: bigint }[];
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
  /** Connections the kernel tracks at once: the size of its connection maps (default MAX_CONNS). */
  maxConnections?: number;
}


const C = EVENT_LAYOUT.constants;
const ENTRY_PROGRAM = 'probe_enter';
const RETURN_PROGRAM = 'probe_return';
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
    private readonly native: NativeBpfSession,
    private readonly settings: KernelSettings,
    /** Whether probes will be uprobe_multi links (one per file and program) rather than one per probe. */
    readonly multiLinks: boolean,
  ) {}

  /** Loads the program off the JS thread, for uprobe_multi links where the kernel has them. */
  static async load(settings: KernelSettings, objectName = 'tlstap.bpf.o'): Promise<LoadedProgram> {
    // The fd of each call comes from the socket syscalls made inside it; close() ends connections.
    ensureTracefs();
    for (const multi of linkKinds(settings)) {
      let native: NativeBpfSession | undefined;
      try {
        native = openProgram(objectName, settings, multi);
        await native.loadAsync();
        return new LoadedProgram(native, settings, multi);
      } catch (err) {
        native?.close();
        if (!fallsBack(err, multi)) throw err;
      }
    }
    throw new Error('unreachable: loading for per-probe links does not fall back');
  }

  /** `load`, on the JS thread. */
  static loadSync(settings: KernelSettings, objectName = 'tlstap.bpf.o'): LoadedProgram {
    ensureTracefs();
    for (const multi of linkKinds(settings)) {
      let native: NativeBpfSession | undefined;
      try {
        native = openProgram(objectName, settings, multi);
        native.load();
        return new LoadedProgram(native, settings, multi);
      } catch (err) {
        native?.close();
        if (!fallsBack(err, multi)) throw err;
      }
    }
    throw new Error('unreachable: loading for per-probe links does not fall back');
  }

  /** Attaches every function of every file and the syscall tracepoints, and starts polling; once. */
  attach(files: readonly AttachFile[], onBatch: (batch: Buffer, count: number) => void): CaptureSession {
    if (this.done) throw new Error('this loaded program was attached or closed already');
    this.done = true;
    const { native, multiLinks } = this;
    const pid = this.settings.pid;
    try {
      const probes = multiLinks ? attachMulti(native, files, pid) : attachEach(native, files, pid);
      for (const name of FD_SYSCALLS) native.attachTracepoint('syscall_fd_io', 'syscalls', `sys_enter_${name}`);
      native.attachTracepoint('syscall_close', 'syscalls', 'sys_enter_close');
      native.attachTracepoint('process_exit', 'sched', 'sched_process_exit');
      return CaptureSession.polling(native, probes, multiLinks, onBatch, pid);
    } catch (err) {
      native.close();
      throw err;
    }
  }

  /** Releases the program without attaching it (the capture failed before it started). */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.native.close();
  }
}

/**
 * A loaded and attached tlstap BPF program streaming batches of records. Resources are
 * released in reverse order: probes, polling thread, ring buffer, object.
 */
export class CaptureSession {
  private polling: Promise<string | undefined> | undefined;
  private closed = false;

  private constructor(
    private readonly native: NativeBpfSession,
    /** Number of uprobes and uretprobes attached. */
    public probeCount: number,
    /** Whether they are uprobe_multi links (one per file and program) rather than one per probe. */
    readonly multiLinks: boolean,
    private readonly pid?: number,
  ) {}

  /** Loads the program with `settings`, attaches every function of every file, starts polling. */
  static open(
    files: readonly AttachFile[],
    settings: KernelSettings,
    onBatch: (batch: Buffer, count: number) => void,
    objectName = 'tlstap.bpf.o',
  ): CaptureSession {
    return LoadedProgram.loadSync(settings, objectName).attach(files, onBatch);
  }

  /** A session for an attached program, polling its ring buffer (LoadedProgram.attach). */
  static polling(
    native: NativeBpfSession,
    probeCount: number,
    multiLinks: boolean,
    onBatch: (batch: Buffer, count: number) => void,
    pid?: number,
  ): CaptureSession {
    const session = new CaptureSession(native, probeCount, multiLinks, pid);
    session.polling = native.startPolling('events', onBatch, { batchBytes: 1 << 20, timeoutMs: 20 });
    return session;
  }
  /**
   * Probes one more file while capturing (a probed library replaced on disk), its events named by
   * `fileIndex`; returns the number of probes added.
   */
  attachFile(file: AttachFile, fileIndex: number): number {
    if (this.closed) return 0;
    const probes = this.multiLinks ? attachMulti(this.native, [file], this.pid, fileIndex) : attachEach(this.native, [file], this.pid, fileIndex);
    this.probeCount += probes;
    return probes;
  }

  /** Stops or resumes reading the ring buffer (while outputs are behind, the kernel buffers and counts). */
  pause(paused: boolean): void {
    if (!this.closed) this.native.pausePolling(paused);
  }

  /**
   * Frees a batch onBatch was given, now rather than when V8 collects it. Only for a batch no
   * one holds on to: the pipeline copies what it keeps past a batch; the --record writer does not.
   */
  release(batch: Buffer): void {
    this.native.releaseBatch(batch);
  }

  /** Current kernel counters. */
  counters(): KernelCounters {
    return countersFromValues(this.native.sumPercpuArray('counters').map(Number));
  }

  /**
   * Detaches the probes, delivers every record still in the ring buffer, and closes.
   * Resolves with the final counters.
   */
  async stop(): Promise<KernelCounters> {
    if (this.closed) throw new Error('capture session already stopped');
    this.closed = true;
    await this.native.detachAll();
    this.native.pausePolling(false);
    this.native.stopPolling();
    const pollError = await this.polling;
    const final = this.counters();
    this.native.close();
    if (pollError) throw new Error(`polling the ring buffer failed: ${pollError}`);
    return final;
  }
}

/** uprobe_multi links where allowed, then one perf-event probe per function (what kernels before 6.6 get). */
function linkKinds(settings: KernelSettings): boolean[] {
  return settings.perProbeLinks === true ? [false] : [true, false];
}

/** Whether a failed load for `multi` links is retried with per-probe links: a libbpf failure is. */
function fallsBack(err: unknown, multi: boolean): boolean {
  return multi && err instanceof BpfError;
}

/** Opens the object and applies the settings: ready for load() or loadAsync(). */
function openProgram(objectName: string, settings: KernelSettings, multi: boolean): NativeBpfSession {
  const native = new (loadAddon().BpfSession)(bpfObjectPath(objectName));
  try {
    applySettings(native, settings);
    if (multi) native.useUprobeMulti([ENTRY_PROGRAM, RETURN_PROGRAM]);
    return native;
  } catch (err) {
    native.close();
    throw err;
  }
}

/** One entry link and one return link per file, each with all of the file's offsets. */
function attachMulti(native: NativeBpfSession, files: readonly AttachFile[], pid = -1, firstIndex = 0): number {
  let probes = 0;
  files.forEach((file, i) => {
    const fileIndex = firstIndex + i;
    const cookie = (fn: AttachFile['functions'][number]) => makeCookie(fileIndex, PROBED_FUNCTIONS.indexOf(fn.name));
    const data = file.functions.filter((fn) => isDataFunction(fn.name));
    native.attachUprobeMulti(ENTRY_PROGRAM, file.path, BigUint64Array.from(file.functions, (f) => f.fileOffset), BigUint64Array.from(file.functions, cookie), pid, false);
    native.attachUprobeMulti(RETURN_PROGRAM, file.path, BigUint64Array.from(data, (f) => f.fileOffset), BigUint64Array.from(data, cookie), pid, true);
    probes += file.functions.length + data.length;
  });
  return probes;
}

/** One perf-event uprobe per function entry and per data function return (older kernels). */
function attachEach(native: NativeBpfSession, files: readonly AttachFile[], pid = -1, firstIndex = 0): number {
  let probes = 0;
  files.forEach((file, i) => {
    const fileIndex = firstIndex + i;
    for (const fn of file.functions) {
      const cookie = makeCookie(fileIndex, PROBED_FUNCTIONS.indexOf(fn.name));
      native.attachUprobe(ENTRY_PROGRAM, file.path, fn.fileOffset, pid, false, cookie);
      probes++;
      if (!isDataFunction(fn.name)) continue;
      native.attachUprobe(RETURN_PROGRAM, file.path, fn.fileOffset, pid, true, cookie);
      probes++;
    }
  });
  return probes;
}

function applySettings(native: NativeBpfSession, settings: KernelSettings): void {
  if (settings.pid !== undefined) native.setGlobal('.rodata', 'targ_pid', u32(settings.pid));
  if (settings.uid !== undefined) {
    native.setGlobal('.rodata', 'targ_uid', u32(settings.uid));
    native.setGlobal('.rodata', 'filter_uid', u8(1));
  }
  if (settings.comm !== undefined) {
    native.setGlobal('.rodata', 'targ_comm', kernelComm(settings.comm));
    native.setGlobal('.rodata', 'filter_comm', u8(1));
  }
  native.setGlobal('.rodata', 'max_call_bytes', u32(settings.maxCallBytes));
  if (settings.port !== undefined) native.setGlobal('.rodata', 'targ_port', u16(settings.port));
  if (settings.host !== undefined) {
    const bytes = Buffer.alloc(16);
    settings.host.bytes.copy(bytes);
    native.setGlobal('.rodata', 'targ_host', bytes);
    native.setGlobal('.rodata', 'targ_host_family', u16(settings.host.family === 'ipv4' ? AF_INET : AF_INET6));
  }
  native.setMapMaxEntries('events', settings.ringBufferBytes);
  if (settings.maxConnections !== undefined) {
    for (const map of ['conns', 'conn_pids', 'fd_conns']) native.setMapMaxEntries(map, settings.maxConnections);
  }
  // Wake the reader when a quarter of the ring is waiting (at most 256 KiB), so small rings do not overflow between its timer polls.
  native.setGlobal('.rodata', 'wakeup_bytes', u32(Math.min(256 * 1024, settings.ringBufferBytes / 4)));
}
