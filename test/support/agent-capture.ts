// The requests a capture sends to tlstap-agent, made here from a probed file's functions, for tests
// that drive the agent binary the way the front end will (src/remote/session.ts's ops). The program
// names and the order follow src/capture/session.ts (LoadedProgram): settings, autoload, multi, load,
// attach, tracepoints, start. Attach cookies and per-syscall tracepoints are assumed (kernel 5.15 and
// later, as on the test machines); probes are uprobe_multi links (6.6 and later) or one per function.
import { release, hostname } from 'node:os';
import { ElfFile } from '../../src/elf/index.js';
import { EVENT_LAYOUT, makeCookie } from '../../src/events/layout.js';
import { PROBED_FUNCTIONS, isDataFunction } from '../../src/events/types.js';
import type { ProbedFunction } from '../../src/events/types.js';
import { kernelComm } from '../../src/capture/session.js';
import type { PlannedRequest } from '../../src/remote/plan.js';
import { Args, OP } from '../../src/remote/protocol.js';
import type { AgentConnection } from '../../src/remote/connection.js';
import type { RecordHeader } from '../../src/record/index.js';
import { tlstapVersion } from '../../src/version.js';

/** A probed file: its path and the file offsets of its TLS functions (from the ELF reader). */
export interface ProbedFile {
  path: string;
  functions: { name: ProbedFunction; fileOffset: bigint }[];
}

/** What the ELF reader finds to probe in `path`. */
export async function probedFile(path: string): Promise<ProbedFile> {
  const elf = await ElfFile.open(path);
  try {
    const found = await elf.findFunctions(PROBED_FUNCTIONS);
    return { path, functions: [...found].map(([name, f]) => ({ name: name as ProbedFunction, fileOffset: f.fileOffset })) };
  } finally {
    await elf.close();
  }
}

const u32 = (v: number): Buffer => Buffer.from(new Uint32Array([v]).buffer);
const C = EVENT_LAYOUT.constants;
const FD_SYSCALLS = ['read', 'write', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'readv', 'writev'];

/** Settings of a test capture: only threads named `comm`. */
export interface AgentCaptureSettings {
  comm: string;
  cpus: number;
  maxCallBytes: number;
  ringBufferBytes: number;
  /** One uprobe_multi link per file and program, else one perf-event link per probe. */
  multiLinks: boolean;
}

/** The requests of a capture of `files`, in the order a live front end sends them; START last. */
export function captureRequests(files: readonly ProbedFile[], s: AgentCaptureSettings): PlannedRequest[] {
  const r: PlannedRequest[] = [];
  const global = (name: string, value: Buffer) => r.push({ op: OP.SET_GLOBAL, args: new Args().str16('.rodata').str16(name).bytes(value).done() });
  const autoload = (prog: string, on: boolean) => r.push({ op: OP.SET_AUTOLOAD, args: new Args().u8(on ? 1 : 0).u8(0).bytes(prog).done() });
  global('targ_comm', kernelComm(s.comm));
  global('filter_comm', Buffer.from([1]));
  global('max_call_bytes', u32(s.maxCallBytes));
  global('wakeup_bytes', u32(Math.min(256 * 1024, s.ringBufferBytes / 4)));
  global('nr_cpus', u32(s.cpus));
  r.push({ op: OP.SET_MAP_MAX, args: new Args().u32(s.ringBufferBytes).bytes('events').done() });
  autoload('probe_enter', true);
  for (let func = 0; func < C.FUNC_LIBRARY_COUNT; func++) autoload(`probe_enter_${func}`, false);
  autoload('syscall_fd_io', true);
  autoload('syscall_close', true);
  autoload('raw_syscall', false);
  if (s.multiLinks) for (const prog of ['probe_enter', 'probe_return']) r.push({ op: OP.USE_MULTI, args: new Args().bytes(prog).done() });
  r.push({ op: OP.LOAD });
  files.forEach((file, fileIndex) => {
    const cookie = (f: ProbedFile['functions'][number]) => makeCookie(fileIndex, PROBED_FUNCTIONS.indexOf(f.name));
    if (!s.multiLinks) {
      for (const f of file.functions) {
        const one = (prog: string, ret: boolean) => new Args().u64(f.fileOffset).u64(cookie(f)).u32(-1).u8(ret ? 1 : 0).u8(0).str16(prog).bytes(file.path).done();
        r.push({ op: OP.ATTACH_UPROBE, args: one('probe_enter', false) });
        if (isDataFunction(f.name)) r.push({ op: OP.ATTACH_UPROBE, args: one('probe_return', true) });
      }
      return;
    }
    const multi = (prog: string, fns: ProbedFile['functions'], ret: boolean) => {
      const args = new Args().u32(fns.length).u32(-1).u8(ret ? 1 : 0).u8(0).str16(prog);
      for (const f of fns) args.u64(f.fileOffset);
      for (const f of fns) args.u64(cookie(f));
      r.push({ op: OP.ATTACH_MULTI, args: args.bytes(file.path).done() });
    };
    multi('probe_enter', file.functions, false);
    multi('probe_return', file.functions.filter((f) => isDataFunction(f.name)), true);
  });
  const tracepoint = (prog: string, category: string, name: string) => r.push({ op: OP.ATTACH_TP, args: new Args().str16(prog).str16(category).bytes(name).done() });
  for (const name of FD_SYSCALLS) tracepoint('syscall_fd_io', 'syscalls', `sys_enter_${name}`);
  tracepoint('syscall_close', 'syscalls', 'sys_enter_close');
  tracepoint('process_exit', 'sched', 'sched_process_exit');
  r.push({ op: OP.START, args: new Args().u32(1 << 20).u32(20).bytes('events').done() });
  return r;
}

/** Sends the requests one after another; rejects at the first the agent refuses. */
export async function sendRequests(agent: AgentConnection, requests: readonly PlannedRequest[]): Promise<void> {
  for (const req of requests) await agent.request(req.op, req.args);
}

/** A recording's header for a capture of `files` on this machine, less the fields of the moment. */
export function recordingHeader(files: readonly ProbedFile[], s: AgentCaptureSettings): Omit<RecordHeader, 'formatVersion' | 'createdAt' | 'monotonicToWallNs'> {
  return {
    tlstapVersion: tlstapVersion(),
    layout: EVENT_LAYOUT as unknown as Record<string, unknown>,
    littleEndian: true,
    files: files.map((f) => f.path),
    host: { kernel: release(), arch: process.arch, hostname: hostname() },
    settings: { pid: null, uid: null, comm: s.comm, maxBytes: s.maxCallBytes, redacted: false },
  };
}
