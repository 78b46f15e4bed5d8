// Go binaries: the function table (.gopclntab), the build info (.go.buildinfo) and the return
// instructions of a function, all read through the ELF reader's positional reads.
import type { ElfFile } from '../elf-file.js';
import { readGoBuildInfo } from './buildinfo.js';
import type { GoBuildInfo } from './buildinfo.js';
import { Pclntab, PclntabError } from './pclntab.js';
import type { GoFunction, PclntabLayout, PclntabSource } from './pclntab.js';

export { BUILDINFO_MAGIC, parseModinfo, readGoBuildInfo } from './buildinfo.js';
export type { GoBuildInfo } from './buildinfo.js';
export { PCLNTAB_MAGIC, PCLNTAB_MAGIC_GO12, Pclntab, PclntabError, parsePclntabHeader } from './pclntab.js';
export type { GoFunction, PclntabLayout, PclntabSource } from './pclntab.js';
export { ARM64_RET, DecodeError, arm64ReturnOffsets, returnOffsets, x86ReturnOffsets } from './returns.js';
export type { ReturnArch } from './returns.js';
export { ARM64_LOAD_STACK_GUARD, arm64BodyStart, bodyStart, x86BodyStart } from './prologue.js';

/** What a Go binary holds, as far as tlstap needs: its Go version, its function table, some functions. */
export interface GoBinary {
  /** The build info, when the binary has it (or a version string in .rodata). */
  buildInfo?: GoBuildInfo;
  /** The function table, when found and of a layout tlstap reads. */
  pclntab?: { layout: PclntabLayout; source: PclntabSource; functionCount: number; quantum: number };
  /** Why the function table could not be used (unknown or old layout, corrupt), when it could not. */
  pclntabProblem?: string;
  /** The functions asked for that the table lists. */
  functions: Map<string, GoFunction>;
}

/** Sections only the Go linker writes. */
const GO_SECTIONS = new Set(['.gopclntab', '.data.rel.ro.gopclntab', '.go.buildinfo', '.note.go.buildid']);

/**
 * Whether `elf` may be a Go binary, from its section names alone (no read): one of GO_SECTIONS, or no
 * section headers at all (then only a look inside tells). Keeps the searches below off other programs.
 */
export function mayBeGo(elf: ElfFile): boolean {
  return elf.sections.length === 0 || elf.sections.some((s) => GO_SECTIONS.has(s.name));
}

/**
 * Reads `elf` as a Go binary and looks up `names` in its function table. Undefined when it is not a Go
 * binary (no build info and no function table). A table tlstap cannot read is described in
 * `pclntabProblem` rather than thrown: the caller still knows it is a Go program and which version.
 */
export async function readGoBinary(elf: ElfFile, names: readonly string[]): Promise<GoBinary | undefined> {
  if (!mayBeGo(elf)) return undefined;
  const buildInfo = await readGoBuildInfo(elf);
  let table: Pclntab | undefined;
  let problem: string | undefined;
  try {
    table = await Pclntab.find(elf);
  } catch (err) {
    if (!(err instanceof PclntabError)) throw err;
    problem = err.hint === undefined ? err.reason : `${err.reason} (${err.hint})`;
  }
  if (buildInfo === undefined && table === undefined && problem === undefined) return undefined;
  const binary: GoBinary = { functions: new Map() };
  if (buildInfo !== undefined) binary.buildInfo = buildInfo;
  if (problem !== undefined) binary.pclntabProblem = problem;
  if (table !== undefined) {
    binary.pclntab = { layout: table.layout, source: table.source, functionCount: table.functionCount, quantum: table.quantum };
    try {
      binary.functions = await table.findFunctions(names);
    } catch (err) {
      if (!(err instanceof PclntabError)) throw err;
      binary.pclntabProblem = err.hint === undefined ? err.reason : `${err.reason} (${err.hint})`;
    }
  } else if (buildInfo !== undefined && problem === undefined) {
    binary.pclntabProblem = 'it has Go build info but no Go function table (.gopclntab) that tlstap could find';
  }
  return binary;
}
