import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import type { SpillStats } from '../events/types.js';

/** A libbpf failure: the operation, the errno and libbpf's last messages (e.g. the verifier log). */
export class BpfError extends Error {
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  readonly libbpfLog: string;
  constructor(message: string, details: { op: string; errno: number; libbpfLog?: string }) {
    super(message);
    this.name = 'BpfError';
    this.op = details.op;
    this.errno = details.errno;
    this.code = errnoName(details.errno);
    this.libbpfLog = details.libbpfLog ?? '';
  }
  /** What a user can do about it. */
  get hint(): string {
    switch (this.errno) {
      case 1: // EPERM
      case 13: // EACCES
        return 'run tlstap as root (it needs CAP_BPF and CAP_PERFMON); `tlstap doctor` checks the details';
      case 2: // ENOENT
        return 'the file or program is missing: rebuild with `npm run build`, or check the path';
      case 7: // E2BIG
      case 12: // ENOMEM
        return 'the kernel refused the memory: try a smaller --ring-buffer';
      default:
        return 'run `tlstap doctor`; set TLSTAP_LIBBPF_DEBUG=1 to see libbpf\'s messages';
    }
  }
}

function errnoName(errno: number): string {
  const names: Record<number, string> = {
    1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 7: 'E2BIG', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES',
    16: 'EBUSY', 22: 'EINVAL', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP',
  };
  return names[errno] ?? `errno ${errno}`;
}

/** sizeof/offsetof of struct tlstap_data_event and the header's constants, as compiled into the addon. */
export interface NativeLayout {
  data: { size: number; fields: Record<string, { offset: number; size: number }> };
  conn: { size: number; fields: Record<string, { offset: number; size: number }> };
  counters: { size: number; fields: Record<string, { offset: number; size: number }> };
  constants: Record<string, number>;
}

/** One loaded BPF object (native/src/bpf_session.cc). Call order: setGlobal/setMapMaxEntries, load or loadAsync, attach, poll, close. */
export interface NativeBpfSession {
  setGlobal(section: string, name: string, value: Buffer): void;
  setMapMaxEntries(map: string, entries: number): void;
  /** Before load: whether a program is loaded at all. */
  setAutoload(program: string, autoload: boolean): void;
  /** After load: writes one entry of a map. */
  updateMapElem(map: string, key: Buffer, value: Buffer): void;
  load(): void;
  /** load() on a worker thread; every other call fails with EBUSY until the promise settles. */
  loadAsync(): Promise<void>;
  attachUprobe(program: string, binaryPath: string, fileOffset: bigint, pid: number, retprobe: boolean, cookie: bigint): number;
  attachTracepoint(program: string, category: string, name: string): number;
  /** Before load: the programs will be attached with uprobe_multi links (kernel 6.6+). */
  useUprobeMulti(programs: string[]): void;
  attachUprobeMulti(program: string, binaryPath: string, offsets: BigUint64Array, cookies: BigUint64Array, pid: number, retprobe: boolean): number;
  /** Resolves (with an error text if polling failed) once the final batch after stopPolling() was delivered. */
  startPolling(
    ringMap: string,
    onBatch: OnNativeBatch,
    options: { batchBytes: number; timeoutMs: number; spillMemoryBytes?: number; spillFileBytes?: number },
  ): Promise<string | undefined>;
  stopPolling(): void;
  /** Stops (true) or resumes (false) delivery: backpressure from slow outputs (the ring buffer is still read, into the spill). */
  pausePolling(paused: boolean): void;
  /** The spill between the ring buffer and JS; undefined before polling, or where there is none (remote). */
  spillStats?(): SpillStats | undefined;
  /** JS is done with a batch it was given: its memory is freed now (views of it become empty). */
  releaseBatch(batch: Buffer): void;
  sumPercpuArray(map: string): bigint[];
  /** Resolves once every probe is detached (done off the JS thread). */
  detachAll(): Promise<void>;
  close(): void;
}

/**
 * A batch of `count` records framed [u32 LE length][record]; `spilled`: it waited in the spill
 * (JS was behind), else it came straight from the poller.
 */
export type OnNativeBatch = (batch: Buffer, count: number, spilled: boolean) => void;

/** feedRecords' plan: record i is `recordBytes` long, i as a u64 LE then the byte i % 251. */
export interface RecordFeedPlan {
  records: number;
  recordBytes: number;
  batchBytes: number;
  /** The producer flushes its batch after this many records, then sleeps pollIntervalUs (as the poller between polls). */
  recordsPerPoll: number;
  pollIntervalUs: number;
  spillMemoryBytes: number;
  spillFileBytes: number;
  /** Each batch is released (as by releaseBatch) once onBatch returned, as the capture pipeline does. */
  releaseBatches?: boolean;
}

/** The addon's whole interface. */
export interface NativeAddon {
  init(classes: { BpfError: typeof BpfError }): void;
  layout(): NativeLayout;
  numPossibleCpus(): number;
  /** The linked libbpf's version, e.g. `v1.1`. */
  libbpfVersion(): string;
  /** Whether the kernel lets programs of a type (enum bpf_prog_type) call a helper (enum bpf_func_id). */
  probeHelper(progType: number, helperId: number): boolean;
  /** btfPath replaces the kernel's BTF for CO-RE relocations (libbpf's btf_custom_path). */
  BpfSession: new (objectPath: string, btfPath?: string) => NativeBpfSession;
  /** Synthetic records through the poller's delivery path (direct, or through the spill), from a native thread; for tests. */
  feedRecords(onBatch: OnNativeBatch, plan: RecordFeedPlan): Promise<SpillStats>;
}

/** The architectures tlstap ships a BPF object and a prebuilt addon for (Node's names, process.arch). */
export const SHIPPED_ARCHS = ['x64', 'arm64'] as const;

/** Paths tried for the addon, in order: the prebuilt one for this platform, then a local node-gyp build. */
export function addonCandidates(root = packageRoot(), arch: string = process.arch): string[] {
  return [
    join(root, 'prebuilds', `${process.platform}-${arch}`, 'tlstap.node'),
    join(root, 'native', 'build', 'Release', 'tlstap_native.node'),
    join(root, 'native', 'build', 'Debug', 'tlstap_native.node'),
  ];
}

/** The first line of a load error (dlopen's message), or the whole text. */
export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** How to get a working addon, for error messages and `tlstap doctor`. */
export const ADDON_FIX =
  `reinstall tlstap (its package holds prebuilt addons for linux-${SHIPPED_ARCHS.join(' and linux-')}); ` +
  'from a clone: `npm run build:native` (needs a C++ compiler and libbpf-dev, libelf-dev, zlib1g-dev)';

/** Loads the first of `paths` that loads; the error lists every path tried and why it was passed over. */
export function loadFirstAddon(paths: readonly string[]): { addon: NativeAddon; path: string } {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      tried.push(`${path}: missing`);
      continue;
    }
    try {
      return { addon: require(path) as NativeAddon, path };
    } catch (error) {
      tried.push(`${path}: ${firstLine(error)}`);
    }
  }
  throw new Error(`tlstap's native addon did not load; tried:\n  ${tried.join('\n  ')}\n${ADDON_FIX}`);
}

let loaded: NativeAddon | undefined;

/** Loads the addon once, from the first of addonCandidates() that loads. */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  const { addon } = loadFirstAddon(addonCandidates());
  addon.init({ BpfError });
  loaded = addon;
  return addon;
}

/** Where the compiled BPF object `name` for an architecture is: build/bpf/<arch>/. */
export function bpfObjectFile(name = 'tlstap.bpf.o', root = packageRoot(), arch: string = process.arch): string {
  return join(root, 'build', 'bpf', arch, name);
}

/** Path of the compiled BPF object `name` for this machine; throws when it is missing. */
export function bpfObjectPath(name = 'tlstap.bpf.o', root = packageRoot()): string {
  const path = bpfObjectFile(name, root);
  if (!existsSync(path)) {
    const shipped = (SHIPPED_ARCHS as readonly string[]).includes(process.arch)
      ? 'build it with `npm run build:bpf` (needs clang)'
      : `tlstap ships BPF objects for ${SHIPPED_ARCHS.join(' and ')} only, not ${process.arch}`;
    throw new Error(`BPF object ${path} is missing: ${shipped}`);
  }
  return path;
}
