// The probes a Go program will need, as data: where (file offsets), of which kind (entry or return
// site: never a uretprobe on Go code), and in which registers the Go register ABI leaves each value.
// The kernel side of Go capture consumes this plan; until it lands, `tlstap libs` shows it.
import { stat } from 'node:fs/promises';
import { withElfFile } from '../elf/index.js';
import type { ElfFile } from '../elf/index.js';
import { bodyStart, DecodeError, returnOffsets } from '../elf/go/index.js';
import type { ReturnArch } from '../elf/go/index.js';
import { cannotCapture, GO_TLS_READ, GO_TLS_WRITE } from './go.js';
import type { GoProgram, GoTlsFunction } from './go.js';
import type { GoSite, ProbeTarget } from './types.js';

/** A register as Go's assembler names it and as the kernel's `struct pt_regs` field a BPF program reads. */
export interface GoRegister {
  /** Go's name (RAX, R14; R0, R28 on arm64). */
  go: string;
  /** The pt_regs field: `ax`, `r14` on x86_64; `regs[0]`, `regs[28]` on arm64 (libbpf's PT_REGS_* use these). */
  ptRegs: string;
}

/**
 * Where the register ABI (ABIInternal: Go 1.17+ on amd64, 1.18+ on arm64) puts what the probes read of
 * `func (c *Conn) Write(b []byte) (n int, err error)` and `Read` (same signature), and the goroutine.
 * Integer arguments go in order into RAX, RBX, RCX, RDI, RSI, R8-R11 (amd64) or R0-R15 (arm64); a slice
 * takes three (pointer, length, capacity); results reuse the same registers from the first.
 */
export interface GoRegisterAbi {
  /** The receiver `c *Conn`: the connection's identity (one per tls.Conn). */
  conn: GoRegister;
  /** `b`'s data pointer at entry. */
  buf: GoRegister;
  /** `b`'s length at entry. */
  len: GoRegister;
  /** `n` at a return instruction (bytes written or read). */
  returnN: GoRegister;
  /** `err`'s type word at a return instruction: 0 means a nil error. */
  returnErr: GoRegister;
  /**
   * The current goroutine (`g`), valid inside Go code at entry and at every return: the key of a call in
   * flight (goroutines move between threads, so a thread id is not one).
   */
  goroutine: GoRegister;
}

const reg = (go: string, ptRegs: string): GoRegister => ({ go, ptRegs });

/** The register ABI on the architectures tlstap's Go probes handle. */
export const GO_REGISTER_ABI: Readonly<Record<ReturnArch, GoRegisterAbi>> = {
  x86_64: {
    conn: reg('RAX', 'ax'),
    buf: reg('RBX', 'bx'),
    len: reg('RCX', 'cx'),
    returnN: reg('RAX', 'ax'),
    returnErr: reg('RBX', 'bx'),
    goroutine: reg('R14', 'r14'),
  },
  aarch64: {
    conn: reg('R0', 'regs[0]'),
    buf: reg('R1', 'regs[1]'),
    len: reg('R2', 'regs[2]'),
    returnN: reg('R0', 'regs[0]'),
    returnErr: reg('R1', 'regs[1]'),
    goroutine: reg('R28', 'regs[28]'),
  },
};

/**
 * One probe of a Go program. `entry`: the first instruction after the function's stack-growth check,
 * reached once per call (the function's own first instruction is reached again after the stack grows)
 * with the arguments still in registers (Write: the buffer to copy; Read: the buffer to remember, keyed
 * by goroutine). `return-site`: one of Read's return instructions
 * (n bytes arrived in the buffer).
 */
export interface GoProbeSite extends GoSite {
  /** The file to attach to. */
  file: string;
  /** Its virtual address, for messages and checks. */
  address: bigint;
}

/** Everything the kernel side needs to capture one Go program. */
export interface GoProbePlan {
  file: string;
  arch: ReturnArch;
  goVersion?: string;
  abi: GoRegisterAbi;
  sites: GoProbeSite[];
}

/**
 * The probes for a Go program whose status is 'captured': an entry probe (after the stack check) on
 * Write and on Read, and a probe on each of Read's return instructions, found by decoding its machine
 * code. Throws (ElfError, DecodeError) when the code cannot be read or decoded.
 */
export async function planGoProbes(program: GoProgram): Promise<GoProbePlan> {
  return withElfFile(program.path, (elf) => planGoProbesIn(elf, program));
}

/** planGoProbes with the program's file already open (a local file, or one read through the agent). */
export async function planGoProbesIn(elf: ElfFile, program: GoProgram): Promise<GoProbePlan> {
  if (program.status !== 'captured') throw new Error(`${program.displayPath}: no Go probes for it: ${program.reason}`);
  const arch = program.arch as ReturnArch;
  const abi = GO_REGISTER_ABI[arch];
  const sites: GoProbeSite[] = [];
  for (const fn of program.functions) {
    const func = fn.name as GoTlsFunction;
    const code = await elf.readAt(fn.fileOffset, fn.size, `${fn.name} code`);
    const body = BigInt(bodyStart(arch, code, fn.address));
    sites.push({ file: program.path, offset: fn.fileOffset + body, address: fn.address + body, kind: 'entry', func });
    if (func !== GO_TLS_READ) continue;
    for (const at of returnOffsets(arch, code, fn.address)) {
      sites.push({ file: program.path, offset: fn.fileOffset + BigInt(at), address: fn.address + BigInt(at), kind: 'return-site', func });
    }
  }
  const order = (s: GoProbeSite) => (s.func === GO_TLS_WRITE ? 0 : 1);
  sites.sort((a, b) => order(a) - order(b) || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const plan: GoProbePlan = { file: program.path, arch, abi, sites };
  if (program.goVersion !== undefined) plan.goVersion = program.goVersion;
  return plan;
}

/**
 * Runs `plan`; when the program's code does not decode as expected (DecodeError), the program is
 * marked as not captured with the reason and undefined comes back: it is named, not probed.
 */
export async function planOrExplain(program: GoProgram, plan: () => Promise<GoProbePlan>): Promise<GoProbePlan | undefined> {
  try {
    return await plan();
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    cannotCapture(program, err.message);
    return undefined;
  }
}

/**
 * A Go program whose crypto/tls is captured, as a file to probe: its functions and its probe plan's
 * sites; undefined (the program marked, see planOrExplain) when its code does not decode.
 */
export async function goProbeTarget(program: GoProgram, source: ProbeTarget['source']): Promise<ProbeTarget | undefined> {
  const plan = await planOrExplain(program, () => planGoProbes(program));
  if (plan === undefined) return undefined;
  const st = await stat(program.path, { bigint: true });
  return goTargetOf(program, plan, st, source);
}

/** The target for a Go program and its plan, with the file's identity (device and inode) as stat gave it. */
export function goTargetOf(program: GoProgram, plan: GoProbePlan, st: { dev: bigint; ino: bigint }, source: ProbeTarget['source']): ProbeTarget {
  const functions = [...program.functions]
    .sort((a, b) => (a.name === GO_TLS_READ ? 0 : 1) - (b.name === GO_TLS_READ ? 0 : 1))
    .map((f) => ({ name: f.name as GoTlsFunction, fileOffset: f.fileOffset, address: f.address }));
  const target: ProbeTarget = {
    path: program.path,
    displayPath: program.displayPath,
    dev: st.dev,
    ino: st.ino,
    flavour: 'Go',
    arch: program.arch,
    functions,
    missing: [GO_TLS_READ, GO_TLS_WRITE].filter((n) => !functions.some((f) => f.name === n)),
    goSites: plan.sites.map(({ offset, kind, func }) => ({ offset, kind, func })),
    source,
  };
  if (program.goVersion !== undefined) target.version = program.goVersion;
  return target;
}
