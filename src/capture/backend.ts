// Where a capture's BPF calls go: the addon on this machine, or tlstap-agent on another one
// (src/remote/session.ts). LoadedProgram and CaptureSession make the same calls, in the same order,
// through this interface, so the capture logic exists once.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { hasSymbol, kernelAtLeast, parseKernelVersion } from '../doctor/probe.js';
import { bpfObjectPath, loadAddon } from '../native/binding.js';
import type { NativeBpfSession } from '../native/binding.js';
import { kernelBtfSource, writeEmptyBtf } from './btf.js';
import { ensureTracefs } from './tracefs.js';
import type { SpillStats } from '../events/types.js';

/** A value, or a promise of it: the addon answers at once, the agent over its pipe. */
export type Awaitable<T> = T | Promise<T>;

/** One opened BPF object: the calls of the addon's NativeBpfSession a capture makes, awaited. */
export interface BpfBackendSession {
  setGlobal(section: string, name: string, value: Buffer): Awaitable<void>;
  setMapMaxEntries(map: string, entries: number): Awaitable<void>;
  setAutoload(program: string, autoload: boolean): Awaitable<void>;
  useUprobeMulti(programs: string[]): Awaitable<void>;
  /** Loads the object (off the JS thread for the addon). */
  load(): Promise<void>;
  updateMapElem(map: string, key: Buffer, value: Buffer): Awaitable<void>;
  attachUprobe(program: string, path: string, fileOffset: bigint, pid: number, retprobe: boolean, cookie: bigint): Awaitable<number>;
  attachUprobeMulti(program: string, path: string, offsets: BigUint64Array, cookies: BigUint64Array, pid: number, retprobe: boolean): Awaitable<number>;
  attachTracepoint(program: string, category: string, name: string): Awaitable<number>;
  /**
   * Starts streaming the ring buffer to onBatch; resolves once streaming runs, with a promise that
   * settles (with an error text if polling failed) after the last batch following stopPolling.
   */
  startPolling(ringMap: string, onBatch: (batch: Buffer, count: number) => void, options: { batchBytes: number; timeoutMs: number }): Promise<{ ended: Promise<string | undefined> }>;
  pausePolling(paused: boolean): Awaitable<void>;
  /** The spill between the ring buffer and onBatch (native/core/spill.h), where the backend has one. */
  spillStats?(): SpillStats | undefined;
  /** A batch onBatch was given is no longer used (the addon frees it now). */
  releaseBatch(batch: Buffer): void;
  sumPercpuArray(map: string): Awaitable<bigint[]>;
  detachAll(): Promise<void>;
  stopPolling(): Awaitable<void>;
  close(): Awaitable<void>;
}

/** What a capture asks of the machine it captures on, before and for opening the object. */
export interface BpfMachine {
  /** "this machine", "the agent on HOST": for messages. */
  readonly where: string;
  /** Mounts tracefs if need be; whether per-syscall tracepoints exist. */
  syscallTracepoints(): Awaitable<boolean>;
  /** Whether BPF programs get attach cookies (5.15+). */
  attachCookies(): Awaitable<boolean>;
  /** Where the kernel's BTF is, if it has any. */
  kernelBtf(): Awaitable<string | undefined>;
  /** Whether the kernel has uprobe_multi links. */
  uprobeMulti(): Awaitable<boolean>;
  numPossibleCpus(): Awaitable<number>;
  /** The object can be opened once (the agent holds one per run): a load cannot be started early and made again. */
  readonly opensOnce?: boolean;
  /**
   * Opens the object; `btf`: a BTF file of this front end's machine for CO-RE (--btf), or 'empty'
   * when the kernel has none (the address code is dropped, not the program).
   */
  open(objectName: string, btf: string | 'empty' | undefined): Promise<BpfBackendSession>;
}

/** enum bpf_prog_type and enum bpf_func_id values (linux/bpf.h) for feature probing. */
const BPF_PROG_TYPE_KPROBE = 2;
const BPF_FUNC_GET_ATTACH_COOKIE = 174;

/** The addon's session, as a backend session. */
class LocalSession implements BpfBackendSession {
  constructor(
    private readonly native: NativeBpfSession,
    private readonly cleanup: () => void,
  ) {}
  setGlobal(section: string, name: string, value: Buffer): void {
    this.native.setGlobal(section, name, value);
  }
  setMapMaxEntries(map: string, entries: number): void {
    this.native.setMapMaxEntries(map, entries);
  }
  setAutoload(program: string, autoload: boolean): void {
    this.native.setAutoload(program, autoload);
  }
  useUprobeMulti(programs: string[]): void {
    this.native.useUprobeMulti(programs);
  }
  async load(): Promise<void> {
    try {
      await this.native.loadAsync();
    } finally {
      this.cleanup();
    }
  }
  updateMapElem(map: string, key: Buffer, value: Buffer): void {
    this.native.updateMapElem(map, key, value);
  }
  attachUprobe(program: string, path: string, fileOffset: bigint, pid: number, retprobe: boolean, cookie: bigint): number {
    return this.native.attachUprobe(program, path, fileOffset, pid, retprobe, cookie);
  }
  attachUprobeMulti(program: string, path: string, offsets: BigUint64Array, cookies: BigUint64Array, pid: number, retprobe: boolean): number {
    return this.native.attachUprobeMulti(program, path, offsets, cookies, pid, retprobe);
  }
  attachTracepoint(program: string, category: string, name: string): number {
    return this.native.attachTracepoint(program, category, name);
  }
  async startPolling(ringMap: string, onBatch: (batch: Buffer, count: number) => void, options: { batchBytes: number; timeoutMs: number }) {
    return { ended: this.native.startPolling(ringMap, onBatch, options) };
  }
  pausePolling(paused: boolean): void {
    this.native.pausePolling(paused);
  }
  spillStats(): SpillStats | undefined {
    return this.native.spillStats?.();
  }
  releaseBatch(batch: Buffer): void {
    this.native.releaseBatch(batch);
  }
  sumPercpuArray(map: string): bigint[] {
    return this.native.sumPercpuArray(map);
  }
  detachAll(): Promise<void> {
    return this.native.detachAll();
  }
  stopPolling(): void {
    this.native.stopPolling();
  }
  close(): void {
    this.cleanup();
    this.native.close();
  }
}

/**
 * Whether this kernel has uprobe_multi links: 6.6 has them; an older one only if they were backported,
 * which its link attach function in /proc/kallsyms shows (read only then: it takes a few hundred ms).
 * It must be asked first: an older kernel (Debian's 6.1) loads the programs made for these links and
 * only refuses the attach, with EINVAL.
 */
function localUprobeMulti(): boolean {
  const version = parseKernelVersion(release());
  if (version === undefined || kernelAtLeast(version, 6, 6)) return true;
  try {
    return hasSymbol(readFileSync('/proc/kallsyms', 'utf8'), 'bpf_uprobe_multi_link_attach');
  } catch {
    return false;
  }
}

/** This machine, through the addon. */
export const localMachine: BpfMachine = {
  where: 'this machine',
  syscallTracepoints: () => ensureTracefs().syscallTracepoints,
  attachCookies: () => loadAddon().probeHelper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_GET_ATTACH_COOKIE),
  kernelBtf: () => kernelBtfSource(),
  uprobeMulti: localUprobeMulti,
  numPossibleCpus: () => loadAddon().numPossibleCpus(),
  async open(objectName, btf) {
    // Without kernel BTF, libbpf gets an empty one in its place; it is removed once the load settled.
    const empty = btf === 'empty' ? writeEmptyBtf() : undefined;
    const remove = () => empty?.remove();
    try {
      const native = new (loadAddon().BpfSession)(bpfObjectPath(objectName), empty?.path ?? btf);
      return new LocalSession(native, remove);
    } catch (err) {
      remove();
      throw err;
    }
  },
};
