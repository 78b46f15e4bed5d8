// Runs binutils (readelf, nm) and parses their output, so tests can check src/elf against them.
import { execFileSync, spawnSync } from 'node:child_process';

/** Output of a binutils command; throws if it fails. */
export function run(tool: 'readelf' | 'nm', args: readonly string[]): string {
  return execFileSync(tool, [...args], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Output and stderr of readelf, for checking that it has no complaints about a file. */
export function readelfWithWarnings(args: readonly string[]): { stdout: string; stderr: string } {
  const result = spawnSync('readelf', [...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error !== undefined) throw result.error;
  return { stdout: result.stdout, stderr: result.stderr + (result.status === 0 ? '' : `exit status ${result.status}`) };
}

/** One line of `nm -D` / `nm` output. */
export interface NmSymbol {
  address?: bigint;
  type: string;
  name: string;
  version?: string;
  /** '@@' in the output. */
  isDefault: boolean;
}

/** Parses nm output lines such as `0000000000035430 T SSL_read@@OPENSSL_3.0.0` and `U free@GLIBC_2.2.5`. */
export function parseNm(text: string): NmSymbol[] {
  const out: NmSymbol[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)?\s+([A-Za-z?-])\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const full = m[3]!;
    const at = full.indexOf('@');
    const sym: NmSymbol = { type: m[2]!, name: at > 0 ? full.slice(0, at) : full, isDefault: full.includes('@@') };
    if (m[1] !== undefined) sym.address = BigInt(`0x${m[1]}`);
    if (at > 0) sym.version = full.slice(at + (sym.isDefault ? 2 : 1));
    out.push(sym);
  }
  return out;
}

/** One PT_LOAD line of `readelf -lW`. */
export interface LoadSegment {
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

/** All program headers of `readelf -lW` as [type, offset, vaddr, filesz, memsz]. */
export function programHeaders(path: string): { type: string; offset: bigint; vaddr: bigint; filesz: bigint; memsz: bigint }[] {
  const out = [];
  for (const line of run('readelf', ['-lW', path]).split('\n')) {
    const m = /^\s+([A-Z_0-9]+|LOOS\+0x[0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s/.exec(line);
    if (m === null) continue;
    out.push({ type: m[1]!, offset: BigInt(`0x${m[2]}`), vaddr: BigInt(`0x${m[3]}`), filesz: BigInt(`0x${m[4]}`), memsz: BigInt(`0x${m[5]}`) });
  }
  return out;
}

/** The PT_LOAD segments of `readelf -lW`. */
export function loadSegments(path: string): LoadSegment[] {
  return programHeaders(path).filter((p) => p.type === 'LOAD');
}

/** File offset of `address` computed from readelf's PT_LOAD lines (independently of src/elf). */
export function offsetFromReadelf(segments: readonly LoadSegment[], address: bigint): bigint {
  const seg = segments.find((s) => address >= s.vaddr && address < s.vaddr + s.filesz);
  if (seg === undefined) throw new Error(`0x${address.toString(16)} is in no PT_LOAD of readelf's list`);
  return address - seg.vaddr + seg.offset;
}

/** One section of `readelf -SW` (section 0 left out). */
export interface ReadelfSection {
  index: number;
  name: string;
  type: string;
  address: bigint;
  offset: bigint;
  size: bigint;
}

/** Sections 1..n of `readelf -SW`. */
export function sections(path: string): ReadelfSection[] {
  const out: ReadelfSection[] = [];
  for (const line of run('readelf', ['-SW', path]).split('\n')) {
    const m = /^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s/.exec(line);
    if (m === null || m[1] === '0') continue;
    out.push({
      index: Number(m[1]),
      name: m[2]!,
      type: m[3]!,
      address: BigInt(`0x${m[4]}`),
      offset: BigInt(`0x${m[5]}`),
      size: BigInt(`0x${m[6]}`),
    });
  }
  return out;
}

/** The build ID as `readelf -n` prints it. */
export function buildId(path: string): string | undefined {
  return /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', path]))?.[1];
}

/** DT_NEEDED names as `readelf -dW` prints them. */
export function needed(path: string): string[] {
  return [...run('readelf', ['-dW', path]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
}

/** One entry of a `readelf -sW` symbol table listing. */
export interface ReadelfSymbol {
  value: bigint;
  type: string;
  bind: string;
  ndx: string;
  name: string;
}

/** The entries of `table` ('.dynsym' or '.symtab') as `readelf -sW` lists them. */
export function readelfSymbols(path: string, table: '.dynsym' | '.symtab'): ReadelfSymbol[] {
  const text = run('readelf', ['-sW', path]).split(`Symbol table '${table}'`)[1]?.split('Symbol table')[0] ?? '';
  const out: ReadelfSymbol[] = [];
  for (const m of text.matchAll(/^\s*\d+: ([0-9a-f]+)\s+\S+\s+(\S+)\s+(\S+)\s+\S+\s+(\S+)\s+(\S+)$/gm)) {
    out.push({ value: BigInt(`0x${m[1]}`), type: m[2]!, bind: m[3]!, ndx: m[4]!, name: m[5]! });
  }
  return out;
}
