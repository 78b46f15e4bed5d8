// Go's function table (.gopclntab): function names, entry addresses and sizes, present in every Go
// binary, also one stripped of .symtab and DWARF (-ldflags=-s -w). Layout: Go's runtime/symtab.go
// (pcHeader, functab, _func) and debug/gosym/pclntab.go.
import { PF_W, PF_X, PT_LOAD, SHT_NOBITS } from '../constants.js';
import { ElfError } from '../errors.js';
import type { ElfFile } from '../elf-file.js';

/** The pclntab layouts tlstap reads, by the Go versions that write them. */
export type PclntabLayout = 'go1.16' | 'go1.18' | 'go1.20';

/** The header magic of each layout; 0xfffffffb (Go 1.2-1.15) is known but not read. */
export const PCLNTAB_MAGIC: Readonly<Record<PclntabLayout, number>> = {
  'go1.16': 0xfffffffa, // Go 1.16 and 1.17
  'go1.18': 0xfffffff0, // Go 1.18 and 1.19
  'go1.20': 0xfffffff1, // Go 1.20 and later
};

/** The magic of Go 1.2-1.15's pclntab, which has no name-table offsets in its header. */
export const PCLNTAB_MAGIC_GO12 = 0xfffffffb;

/** How the table was found in the file. */
export type PclntabSource = 'section' | 'symbol' | 'scan';

/** A Go function found in the pclntab. */
export interface GoFunction {
  name: string;
  /** Virtual address of the first instruction. */
  address: bigint;
  /** Bytes up to the next function's entry (alignment padding included). */
  size: number;
  /** Where the first instruction is in the file (what a uprobe attaches by). */
  fileOffset: bigint;
}

/** A Go binary's pclntab was not found, or its layout is one tlstap does not read. */
export class PclntabError extends ElfError {
  constructor(path: string, reason: string, hint?: string) {
    super(path, reason, hint === undefined ? {} : { hint });
    this.name = 'PclntabError';
  }
}

/** Bytes of the header we read: 8 fixed bytes plus up to 8 address-sized fields. */
const HEADER_BYTES = 8 + 8 * 8;
/** Most functions we accept in one table; the largest Go binaries have a few hundred thousand. */
const MAX_FUNCTIONS = 4_000_000;
/** The scan for a table without a section header reads this much at a time. */
const SCAN_CHUNK = 4 * 1024 * 1024;

/** The decoded pcHeader: where each table is, relative to the start of the pclntab. */
interface PclntabHeader {
  layout: PclntabLayout;
  littleEndian: boolean;
  ptrSize: 4 | 8;
  /** Instruction size quantum: 1 on x86, 4 on arm64. */
  quantum: number;
  nfunc: number;
  /** runtime.text: function entries are offsets from it (Go 1.18+). */
  textStart: bigint;
  funcnameOffset: number;
  cuOffset: number;
  functabOffset: number;
}

/** The layout for a magic (read in either byte order), or undefined. */
function layoutOf(magic: number): PclntabLayout | undefined {
  for (const [layout, value] of Object.entries(PCLNTAB_MAGIC) as [PclntabLayout, number][]) {
    if (value === magic) return layout;
  }
  return undefined;
}

function unsupported(path: string, magic: number): PclntabError {
  const hex = `0x${magic.toString(16)}`;
  if (magic === PCLNTAB_MAGIC_GO12) {
    return new PclntabError(path, `its Go function table has the Go 1.2-1.15 layout (magic ${hex}), which tlstap does not read`, 'rebuild it with Go 1.16 or later');
  }
  return new PclntabError(path, `its Go function table has a layout tlstap does not know (magic ${hex})`, 'a Go release newer than tlstap knows may have changed it; please report it with `go version FILE`');
}

/** Decodes a pcHeader from its first bytes; throws PclntabError for a layout we do not read. */
export function parsePclntabHeader(path: string, buf: Buffer): PclntabHeader {
  if (buf.length < 8) throw new PclntabError(path, 'its Go function table is too short for a header');
  let littleEndian = true;
  let magic = buf.readUInt32LE(0);
  let layout = layoutOf(magic);
  if (layout === undefined && layoutOf(buf.readUInt32BE(0)) !== undefined) {
    littleEndian = false;
    magic = buf.readUInt32BE(0);
    layout = layoutOf(magic);
  }
  if (layout === undefined) {
    const be = buf.readUInt32BE(0);
    throw unsupported(path, be === PCLNTAB_MAGIC_GO12 ? be : magic);
  }
  const quantum = buf[6]!;
  const ptrSize = buf[7]!;
  if (buf[4] !== 0 || buf[5] !== 0 || (ptrSize !== 4 && ptrSize !== 8) || ![1, 2, 4].includes(quantum)) {
    throw new PclntabError(path, `its Go function table header is corrupt (pad ${buf[4]},${buf[5]}, quantum ${quantum}, pointer size ${ptrSize})`);
  }
  const fields = layout === 'go1.16' ? 7 : 8;
  if (buf.length < 8 + fields * ptrSize) throw new PclntabError(path, 'its Go function table is too short for a header');
  const field = (i: number): bigint => {
    const at = 8 + i * ptrSize;
    if (ptrSize === 8) return littleEndian ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at);
    return BigInt(littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  };
  const small = (i: number, what: string): number => {
    const v = field(i);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PclntabError(path, `its Go function table header is corrupt (${what} ${v})`);
    return Number(v);
  };
  // Go 1.16: nfunc, nfiles, funcname, cu, filetab, pctab, functab offsets.
  // Go 1.18+: nfunc, nfiles, textStart, then the same five offsets.
  const skip = layout === 'go1.16' ? 0 : 1;
  const header: PclntabHeader = {
    layout,
    littleEndian,
    ptrSize,
    quantum,
    nfunc: small(0, 'function count'),
    textStart: layout === 'go1.16' ? 0n : field(2),
    funcnameOffset: small(2 + skip, 'name table offset'),
    cuOffset: small(3 + skip, 'compilation unit table offset'),
    functabOffset: small(6 + skip, 'function table offset'),
  };
  if (header.nfunc === 0 || header.nfunc > MAX_FUNCTIONS) {
    throw new PclntabError(path, `its Go function table header is corrupt (${header.nfunc} functions)`);
  }
  if (!(header.funcnameOffset < header.cuOffset && header.cuOffset <= header.functabOffset)) {
    throw new PclntabError(path, 'its Go function table header is corrupt (tables out of order)');
  }
  return header;
}

/** A Go binary's function table, opened for lookups by name. */
export class Pclntab {
  private constructor(
    private readonly elf: ElfFile,
    /** File offset of the table's first byte. */
    readonly fileOffset: bigint,
    private readonly header: PclntabHeader,
    /** How the table was found. */
    readonly source: PclntabSource,
  ) {}

  /** The layout of the table, named by the first Go release that writes it. */
  get layout(): PclntabLayout {
    return this.header.layout;
  }

  /** How many functions the table lists. */
  get functionCount(): number {
    return this.header.nfunc;
  }

  /** The instruction size quantum: 1 on x86, 4 on arm64. */
  get quantum(): number {
    return this.header.quantum;
  }

  /**
   * Finds the pclntab of `elf`: the `.gopclntab` section (`.data.rel.ro.gopclntab` in some PIE builds),
   * else the `runtime.pclntab` symbol, else a scan of the read-only PT_LOAD segments for a header that
   * holds together (files whose section headers were removed). Returns undefined when there is none (not
   * a Go program); throws PclntabError for a table whose layout tlstap does not read.
   */
  static async find(elf: ElfFile): Promise<Pclntab | undefined> {
    const section = elf.section('.gopclntab') ?? elf.section('.data.rel.ro.gopclntab');
    if (section !== undefined && section.type !== SHT_NOBITS) {
      return Pclntab.at(elf, section.offset, 'section');
    }
    // A data symbol (STT_OBJECT), which findFunctions does not look at: the .symtab list is searched.
    const symbol = (await elf.symbols('symtab')).find((sym) => sym.name === 'runtime.pclntab' && sym.defined);
    if (symbol !== undefined) return Pclntab.at(elf, elf.fileOffsetOf(symbol.address), 'symbol');
    return Pclntab.scan(elf);
  }

  /** The table whose header is at file offset `offset`. */
  static async at(elf: ElfFile, offset: bigint, source: PclntabSource): Promise<Pclntab> {
    const size = Math.min(HEADER_BYTES, elf.fileSize - Number(offset));
    const header = parsePclntabHeader(elf.path, await elf.readAt(offset, Math.max(0, size), 'Go function table header'));
    const table = new Pclntab(elf, offset, header, source);
    table.checkHeader();
    return table;
  }

  /**
   * Looks for a pclntab header in the read-only, non-executable PT_LOAD segments: a known magic, two zero
   * bytes, a quantum and a pointer size, tables in order, and (Go 1.18+) a text start inside an
   * executable segment. The first candidate that holds together wins.
   */
  static async scan(elf: ElfFile): Promise<Pclntab | undefined> {
    const magics = Object.values(PCLNTAB_MAGIC);
    const patterns = magics.map((m) => {
      const b = Buffer.alloc(4);
      if (elf.littleEndian) b.writeUInt32LE(m);
      else b.writeUInt32BE(m);
      return b;
    });
    for (const segment of elf.segments) {
      if (segment.type !== PT_LOAD || (segment.flags & (PF_W | PF_X)) !== 0) continue;
      const end = segment.offset + segment.filesz;
      for (let start = segment.offset; start < end; start += BigInt(SCAN_CHUNK)) {
        const length = Number(end - start < BigInt(SCAN_CHUNK + 8) ? end - start : BigInt(SCAN_CHUNK + 8));
        const buf = await elf.readAt(start, length, 'read-only segment');
        // The runtime aligns the pclntab to the pointer size at least.
        for (let i = 0; i + 8 <= buf.length && i < SCAN_CHUNK; i += 4) {
          if (buf[i + 4] !== 0 || buf[i + 5] !== 0) continue;
          if (!patterns.some((p) => buf.compare(p, 0, 4, i, i + 4) === 0)) continue;
          try {
            return await Pclntab.at(elf, start + BigInt(i), 'scan');
          } catch (err) {
            if (!(err instanceof ElfError)) throw err;
          }
        }
      }
    }
    return undefined;
  }

  /**
   * Functions by exact name (e.g. `crypto/tls.(*Conn).Write`); missing names are absent from the map.
   * A name listed twice (a function and its ABI wrapper) gives the larger function.
   */
  async findFunctions(names: readonly string[]): Promise<Map<string, GoFunction>> {
    const h = this.header;
    const nameTable = await this.read(h.funcnameOffset, h.cuOffset - h.funcnameOffset, 'Go function name table');
    // funcnametab holds each name once, NUL-terminated; a function's nameoff points at its first byte.
    const wanted = new Map<number, string>();
    for (const name of new Set(names)) {
      const needle = Buffer.from(`${name}\0`, 'utf8');
      if (nameTable.subarray(0, needle.length).equals(needle)) wanted.set(0, name);
      const found = nameTable.indexOf(Buffer.concat([Buffer.from([0]), needle]));
      if (found >= 0) wanted.set(found + 1, name);
    }
    const result = new Map<string, GoFunction>();
    if (wanted.size === 0) return result;
    for (const fn of await this.entries()) {
      const name = wanted.get(fn.nameOffset);
      if (name === undefined) continue;
      // One name may belong to two functions: a Go function and its ABI wrapper (a few instructions
      // that move arguments between stack and registers, then jump). The body is the larger one.
      const kept = result.get(name);
      if (kept !== undefined && kept.size >= fn.size) continue;
      result.set(name, { name, address: fn.address, size: fn.size, fileOffset: this.elf.fileOffsetOf(fn.address) });
    }
    return result;
  }

  /** Every function of the table with its name (for tests and diagnostics; reads the whole name table). */
  async allFunctions(): Promise<{ name: string; address: bigint; size: number }[]> {
    const h = this.header;
    const nameTable = await this.read(h.funcnameOffset, h.cuOffset - h.funcnameOffset, 'Go function name table');
    return (await this.entries()).map((fn) => {
      const end = nameTable.indexOf(0, fn.nameOffset);
      const name = nameTable.toString('utf8', fn.nameOffset, end < 0 ? nameTable.length : end);
      return { name, address: fn.address, size: fn.size };
    });
  }

  /** Each function's entry, size and name offset, from functab and the _func records it points to. */
  private async entries(): Promise<{ address: bigint; size: number; nameOffset: number }[]> {
    const h = this.header;
    const wide = h.layout === 'go1.16';
    // functab: nfunc (entry, funcoff) pairs, then the end of the text alone; uintptr fields in Go 1.16,
    // uint32 fields (entries relative to runtime.text) from Go 1.18.
    const field = wide ? h.ptrSize : 4;
    const tabBytes = (h.nfunc * 2 + 1) * field;
    const tab = await this.read(h.functabOffset, tabBytes, 'Go function table');
    const get = (at: number): bigint => {
      if (field === 8) return h.littleEndian ? tab.readBigUInt64LE(at) : tab.readBigUInt64BE(at);
      return BigInt(h.littleEndian ? tab.readUInt32LE(at) : tab.readUInt32BE(at));
    };
    let maxFuncOffset = 0;
    const raw: { entry: bigint; funcOffset: number }[] = [];
    for (let i = 0; i < h.nfunc; i++) {
      const funcOffset = Number(get(i * 2 * field + field));
      raw.push({ entry: get(i * 2 * field), funcOffset });
      maxFuncOffset = Math.max(maxFuncOffset, funcOffset);
    }
    raw.push({ entry: get(h.nfunc * 2 * field), funcOffset: 0 });
    // The _func records follow functab; read them in one piece: entry (uintptr in Go 1.16, uint32 offset
    // from Go 1.18), then the int32 name offset.
    const nameAt = wide ? h.ptrSize : 4;
    const recordsStart = tabBytes;
    if (maxFuncOffset < recordsStart) this.corrupt('a function record overlaps the function table');
    const records = await this.read(h.functabOffset + recordsStart, maxFuncOffset - recordsStart + nameAt + 4, 'Go function records');
    const recordField = (at: number, bytes: number): bigint => {
      if (bytes === 8) return h.littleEndian ? records.readBigUInt64LE(at) : records.readBigUInt64BE(at);
      return BigInt(h.littleEndian ? records.readUInt32LE(at) : records.readUInt32BE(at));
    };
    const base = wide ? 0n : h.textStart;
    const out: { address: bigint; size: number; nameOffset: number }[] = [];
    for (let i = 0; i < h.nfunc; i++) {
      const { entry, funcOffset } = raw[i]!;
      const next = raw[i + 1]!.entry;
      if (next < entry) this.corrupt(`function ${i} ends before it starts`);
      const at = funcOffset - recordsStart;
      if (recordField(at, wide ? h.ptrSize : 4) !== entry) this.corrupt(`function ${i}'s record disagrees with the function table`);
      const nameOffset = Number(recordField(at + nameAt, 4));
      out.push({ address: base + entry, size: Number(next - entry), nameOffset });
    }
    return out;
  }

  /** Checks that the tables the header points to lie inside the file. */
  private checkHeader(): void {
    const h = this.header;
    const end = BigInt(this.elf.fileSize);
    if (this.fileOffset + BigInt(h.functabOffset) >= end) this.corrupt('its function table lies past the end of the file');
    if (h.layout !== 'go1.16') {
      // runtime.text lies in an executable segment. In a PIE the field may be left to a dynamic
      // relocation (reads 0); then, as Go's debug/gosym does, the start of .text stands in for it.
      const inText = (a: bigint): boolean =>
        this.elf.segments.some((s) => s.type === PT_LOAD && (s.flags & PF_X) !== 0 && a >= s.vaddr && a < s.vaddr + s.memsz);
      if (!inText(h.textStart)) {
        const text = this.elf.section('.text')?.addr;
        if (text === undefined || !inText(text)) this.corrupt(`its text start 0x${h.textStart.toString(16)} is in no executable segment`);
        h.textStart = text;
      }
    }
  }

  private read(offset: number, size: number, what: string): Promise<Buffer> {
    return this.elf.readAt(this.fileOffset + BigInt(offset), size, what);
  }

  private corrupt(reason: string): never {
    throw new PclntabError(this.elf.path, `its Go function table is corrupt: ${reason}`, 'the file is truncated or corrupt');
  }
}
