// The capture requests of the agent protocol, as a BpfBackendSession (src/capture/backend.ts) beside
// the addon's: the same calls, in the same order, served by the agent's copy of the native core.
// Record batches arrive as TFRM frames, handed to the onBatch given to startPolling.
import type { BpfBackendSession } from '../capture/backend.js';
import { BpfError } from '../native/binding.js';
import { AgentError } from './connection.js';
import { Args, OP } from './protocol.js';

/** A BpfError on the agent's machine: a missing privilege is the agent's there, not this process's. */
class RemoteBpfError extends BpfError {
  override get hint(): string {
    return this.errno === 1 || this.errno === 13
      ? "run the agent as root there: --remote 'ssh root@HOST', or 'adb shell su -c' on a rooted phone"
      : super.hint;
  }
}

/** Where a remote session's requests go: a live agent (AgentConnection), or a plan being written (PlanWriter). */
export interface AgentRequests {
  request(op: number, args?: Uint8Array, what?: string): Promise<Buffer>;
  /** Settles when the agent can take no more requests. */
  readonly gone: Promise<Error>;
  /** Where TFRM frames' record batches go. */
  onRecords: (batch: Buffer, count: number) => void;
}

/** A BPF session on the agent's machine; failures are BpfErrors, as with the local addon. */
export class RemoteBpfSession implements BpfBackendSession {
  private ended: ((error: string | undefined) => void) | undefined;

  constructor(private readonly agent: AgentRequests) {
    // The pipe closing ends the polling: the capture learns it from the session's end.
    void agent.gone.then((err) => this.ended?.(err.message));
  }

  /** Before load: whether a program is loaded at all. */
  async setAutoload(program: string, autoload: boolean): Promise<void> {
    await this.call(OP.SET_AUTOLOAD, 'setAutoload', new Args().u8(autoload ? 1 : 0).u8(0).bytes(program), program);
  }

  /** After load: writes one entry of a map (probe_sites, for kernels without attach cookies). */
  async updateMapElem(map: string, key: Buffer, value: Buffer): Promise<void> {
    await this.call(OP.UPDATE_ELEM, 'updateMapElem', new Args().str16(map).u32(key.length).bytes(key).bytes(value), map);
  }

  /** Batches are the TFRM frames' payloads: nothing to free early. */
  releaseBatch(): void {}

  /** The agent releases the object when it says goodbye (AgentConnection.close). */
  close(): void {}

  /** Before load: a `const volatile` setting. */
  setGlobal(section: string, name: string, value: Buffer): Promise<void> {
    return this.call(OP.SET_GLOBAL, 'setGlobal', new Args().str16(section).str16(name).bytes(value)).then(() => undefined);
  }

  /** Before load: a map's max_entries (the ring buffer's size). */
  setMapMaxEntries(map: string, entries: number): Promise<void> {
    return this.call(OP.SET_MAP_MAX, 'setMapMaxEntries', new Args().u32(entries).bytes(map)).then(() => undefined);
  }

  /** Before load: the programs will be attached with uprobe_multi links. */
  async useUprobeMulti(programs: readonly string[]): Promise<void> {
    for (const p of programs) await this.call(OP.USE_MULTI, 'useUprobeMulti', new Args().bytes(p));
  }

  /** Loads the object (the verifier runs on the agent's machine). */
  async load(): Promise<void> {
    await this.call(OP.LOAD, 'load', new Args());
  }

  /** One uprobe or uretprobe; resolves with the link index. */
  async attachUprobe(program: string, path: string, fileOffset: bigint, pid: number, retprobe: boolean, cookie: bigint): Promise<number> {
    const args = new Args().u64(fileOffset).u64(cookie).u32(pid).u8(retprobe ? 1 : 0).u8(0).str16(program).bytes(path);
    return (await this.call(OP.ATTACH_UPROBE, 'attachUprobe', args, path)).readUInt32LE(0);
  }

  /** One uprobe_multi link over many offsets of a file; resolves with the link index. */
  async attachUprobeMulti(program: string, path: string, offsets: BigUint64Array, cookies: BigUint64Array, pid: number, retprobe: boolean): Promise<number> {
    if (offsets.length === 0 || offsets.length !== cookies.length) {
      throw new RangeError('attachUprobeMulti: offsets and cookies must be non-empty and of one length');
    }
    const args = new Args().u32(offsets.length).u32(pid).u8(retprobe ? 1 : 0).u8(0).str16(program);
    for (const o of offsets) args.u64(o);
    for (const c of cookies) args.u64(c);
    return (await this.call(OP.ATTACH_MULTI, 'attachUprobeMulti', args.bytes(path), path)).readUInt32LE(0);
  }

  /** A tracepoint program; resolves with the link index. */
  async attachTracepoint(program: string, category: string, name: string): Promise<number> {
    const args = new Args().str16(program).str16(category).bytes(name);
    return (await this.call(OP.ATTACH_TP, 'attachTracepoint', args, `${category}:${name}`)).readUInt32LE(0);
  }

  /** Starts streaming the ring buffer: each TFRM frame goes to onBatch(payload, count). */
  async startPolling(ringMap: string, onBatch: (batch: Buffer, count: number) => void, options: { batchBytes: number; timeoutMs: number }) {
    const ended = new Promise<string | undefined>((resolve) => (this.ended = resolve));
    this.agent.onRecords = onBatch;
    await this.call(OP.START, 'startPolling', new Args().u32(options.batchBytes).u32(options.timeoutMs).bytes(ringMap));
    return { ended };
  }

  /** Stops (true) or resumes (false) reading the ring buffer on the device: backpressure. */
  async pausePolling(paused: boolean): Promise<void> {
    await this.call(OP.PAUSE, 'pausePolling', new Args().u8(paused ? 1 : 0));
  }

  /** Each key of a per-CPU u64 array summed over CPUs. */
  async sumPercpuArray(map: string): Promise<bigint[]> {
    const result = await this.call(OP.COUNTERS, 'sumPercpuArray', new Args().bytes(map));
    return Array.from({ length: result.length / 8 }, (_, i) => result.readBigUInt64LE(i * 8));
  }

  /** Destroys every probe link; no record is made after it resolves. */
  async detachAll(): Promise<void> {
    await this.call(OP.DETACH, 'detachAll', new Args());
  }

  /** Drains the ring buffer: every batch has reached onBatch when this resolves (frames come in order). */
  async stopPolling(): Promise<void> {
    await this.call(OP.STOP, 'stopPolling', new Args());
    this.ended?.(undefined);
  }

  private async call(op: number, name: string, args: Args, what?: string): Promise<Buffer> {
    try {
      return await this.agent.request(op, args.done(), what);
    } catch (err) {
      if (!(err instanceof AgentError)) throw err;
      // The addon's error class, so capture code handles a remote failure as a local one (fallbacks, hints).
      throw new RemoteBpfError(`${name}${what === undefined ? '' : ` ${what}`} on the agent: ${err.message}`, { op: name, errno: err.errno, libbpfLog: err.message });
    }
  }
}
