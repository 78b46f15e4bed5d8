// Go programs: Go's crypto/tls is linked into the program, found through its function table rather
// than ELF symbols. A Go program tlstap's Go probes handle is captured; every place that lists
// targets says why the traffic of one they do not handle is not shown.
import type { ElfFile } from '../elf/index.js';
import type { GoFunction, PclntabLayout } from '../elf/go/index.js';
import { GO_FUNCTIONS } from '../events/types.js';
import type { GoTlsFunction } from '../events/types.js';
import { TargetError } from './errors.js';

export type { GoTlsFunction } from '../events/types.js';

/** Go's TLS read: `func (c *Conn) Read(b []byte) (int, error)`, captured at entry and at each return. */
export const GO_TLS_READ: GoTlsFunction = GO_FUNCTIONS[0];
/** Go's TLS write: `func (c *Conn) Write(b []byte) (int, error)`, captured at entry. */
export const GO_TLS_WRITE: GoTlsFunction = GO_FUNCTIONS[1];
/** The Go functions tlstap looks for. */
export const GO_TLS_FUNCTIONS: readonly GoTlsFunction[] = [GO_TLS_WRITE, GO_TLS_READ];

/**
 * The first Go release that passes arguments in registers (the register ABI, ABIInternal) on each
 * architecture: Go 1.17 on amd64, Go 1.18 on arm64. Earlier releases pass them on the stack.
 */
export const GO_REGISTER_ABI_SINCE: Readonly<Record<string, number>> = { x86_64: 17, aarch64: 18 };

/** Where a Go program stands with tlstap. */
export type GoStatus =
  /** Its crypto/tls is found and tlstap's Go probes handle it: it is captured. */
  | 'captured'
  /** A Go release, architecture or function table tlstap's Go probes will not handle. */
  | 'unsupported'
  /** It has no crypto/tls: whatever TLS it does is not Go's (or it does none). */
  | 'no-crypto-tls';

/** What tlstap knows about a Go program. */
export interface GoProgram {
  /** The path to open the file by (may be under /proc/PID/root). */
  path: string;
  /** How a user knows the file. */
  displayPath: string;
  /** e.g. 'x86_64', 'aarch64' (the ELF machine). */
  arch: string;
  /** e.g. 'go1.19.8'; absent when the binary does not say. */
  goVersion?: string;
  /** Where the version was read: the build info, or a version string in .rodata. */
  versionSource?: 'buildinfo' | 'rodata';
  /** The main package path, from the build info. */
  mainPath?: string;
  /** The function table layout, when tlstap reads it. */
  layout?: PclntabLayout;
  /** crypto/tls.(*Conn).Write and Read as found in the function table. */
  functions: GoFunction[];
  status: GoStatus;
  /** Why the status is what it is, as a sentence fragment after the program's name. */
  reason: string;
}

/** What a file's analysis keeps about a Go program (the paths are added per candidate). */
export type GoFacts = Omit<GoProgram, 'path' | 'displayPath'>;

/** The minor release number of `go1.N[.M]`, or undefined for another form (a devel build). */
export function goMinorVersion(version: string | undefined): number | undefined {
  const m = version === undefined ? null : /^go1\.(\d+)(?:\D|$)/.exec(version);
  return m === null ? undefined : Number(m[1]);
}

/** The lowest Go release a layout's table can come from. */
const LAYOUT_SINCE: Readonly<Record<PclntabLayout, number>> = { 'go1.16': 16, 'go1.18': 18, 'go1.20': 20 };

/** Why a Go program with crypto/tls cannot get Go probes, or undefined when it can. */
function unsupportedReason(arch: string, version: string | undefined, layout: PclntabLayout): string | undefined {
  const since = GO_REGISTER_ABI_SINCE[arch];
  if (since === undefined) {
    return `tlstap's Go probes will know amd64 (x86_64) and arm64 (aarch64) programs; this one is ${arch}`;
  }
  const minor = goMinorVersion(version) ?? (LAYOUT_SINCE[layout] >= since ? LAYOUT_SINCE[layout] : undefined);
  if (minor === undefined) {
    return `its Go release is unknown (its function table is of the Go ${LAYOUT_SINCE[layout] === 16 ? '1.16/1.17' : layout.slice(2)} layout), so whether it passes arguments in registers is too`;
  }
  if (minor < since) {
    return `Go before 1.${since} passes arguments on the stack on ${arch}, and tlstap's Go probes read registers (rebuild it with Go 1.${since} or later)`;
  }
  return undefined;
}

/** Marks a Go program (or its facts) as one whose crypto/tls tlstap cannot capture, and why. */
export function cannotCapture(program: Pick<GoFacts, 'status' | 'reason'>, why: string): void {
  program.status = 'unsupported';
  program.reason = `its crypto/tls cannot be captured: ${why}`;
}

/**
 * Reads `elf` as a Go program: its Go version, function table and crypto/tls functions, and where it
 * stands. Undefined when it is not a Go program. Cheap for other files (their section names tell).
 */
export async function goFacts(elf: ElfFile): Promise<GoFacts | undefined> {
  // Go's readers load on first use: a start whose files all come from the analysis store needs none.
  const { mayBeGo, readGoBinary } = await import('../elf/go/index.js');
  if (!mayBeGo(elf)) return undefined;
  const go = await readGoBinary(elf, GO_TLS_FUNCTIONS);
  if (go === undefined) return undefined;
  const facts: GoFacts = { arch: elf.machineName, functions: [...go.functions.values()], status: 'captured', reason: '' };
  if (go.buildInfo !== undefined) {
    facts.goVersion = go.buildInfo.goVersion;
    facts.versionSource = go.buildInfo.versionSource;
    if (go.buildInfo.path !== undefined) facts.mainPath = go.buildInfo.path;
  }
  if (go.pclntab !== undefined) facts.layout = go.pclntab.layout;
  const names = new Set(go.functions.keys());
  if (go.pclntab === undefined) {
    facts.status = 'unsupported';
    facts.reason = go.pclntabProblem ?? 'its Go function table was not found';
  } else if (!names.has(GO_TLS_WRITE) && !names.has(GO_TLS_READ)) {
    facts.status = 'no-crypto-tls';
    facts.reason = "it has no crypto/tls (Go's TLS) in it: it makes no TLS connections of Go's own";
  } else {
    const why = unsupportedReason(elf.machineName, facts.goVersion, go.pclntab.layout);
    const lacking = GO_TLS_FUNCTIONS.filter((n) => !names.has(n));
    if (why !== undefined) {
      cannotCapture(facts, why);
    } else if (lacking.length > 0) {
      // The linker dropped the unused one (a program that only writes, or only reads).
      facts.reason = `its crypto/tls is captured (it has no ${lacking.join(' or ')})`;
    } else {
      facts.reason = 'its crypto/tls is captured';
    }
  }
  return facts;
}

/** The program for a file at `path`, known to users as `displayPath`. */
export function goProgram(facts: GoFacts, path: string, displayPath: string): GoProgram {
  return { path, displayPath, ...facts };
}

/** What to do about a Go program whose crypto/tls tlstap cannot capture. */
export const GO_UNSUPPORTED_HINT =
  'see its traffic through a TLS proxy, or write its keys with tls.Config.KeyLogWriter and decrypt a packet capture';

/** "Go program PATH (go1.19.8)", the way every message names a Go program. */
export function goProgramName(p: GoProgram): string {
  const version = p.goVersion ?? 'Go release unknown';
  return `Go program ${p.displayPath} (${version})`;
}

/** One line saying why a Go program's TLS is not shown: for libs, the start and the summary. */
export function goProgramMessage(p: GoProgram): string {
  return `${goProgramName(p)}: ${p.reason}`;
}

/** The hint that follows the messages about these programs (what comes, what to do), if one does. */
export function goProgramsHint(programs: readonly GoProgram[]): string | undefined {
  return programs.some((p) => p.status === 'unsupported') ? GO_UNSUPPORTED_HINT : undefined;
}

/** A line per Go program, each after `prefix`, then one `hint:` line: the warning at the start of a capture. */
export function formatGoNotice(programs: readonly GoProgram[], prefix: string): string {
  const hint = goProgramsHint(programs);
  return programs.map((p) => `${prefix}${goProgramMessage(p)}\n`).join('') + (hint === undefined ? '' : `  hint: ${hint}\n`);
}

/**
 * Tells `onGo` about the Go program a discovered file is, if it is one. System-wide (`everyGo` false)
 * only Go programs with crypto/tls are told: one without makes no Go TLS connection to explain.
 */
export function reportGo(
  file: { openPath: string; displayPath: string },
  analysis: { go?: GoFacts },
  onGo: ((program: GoProgram) => void) | undefined,
  everyGo: boolean,
): void {
  const go = analysis.go;
  if (go === undefined || onGo === undefined || (!everyGo && go.status === 'no-crypto-tls')) return;
  onGo(goProgram(go, file.openPath, file.displayPath));
}

/** A file named with --lib is a Go program: no TLS library target, but a Go program to tell about. */
export class GoProgramError extends TargetError {
  constructor(readonly program: GoProgram) {
    const hint = goProgramsHint([program]);
    super(goProgramMessage(program), hint === undefined ? { path: program.displayPath } : { path: program.displayPath, hint });
    this.name = 'GoProgramError';
  }
}

/** The error when nothing can be probed but Go programs were found: it names them and why. */
export function onlyGoProgramsError(where: string, programs: readonly GoProgram[]): TargetError {
  const named = programs.map(goProgramMessage).join('; ');
  const hint = goProgramsHint(programs);
  return new TargetError(`no TLS library to probe in ${where}, only Go's own TLS: ${named}`, hint === undefined ? {} : { hint });
}
