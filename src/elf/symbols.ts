import {
  SHN_UNDEF,
  STB_GLOBAL,
  STB_LOCAL,
  STB_WEAK,
  STT_COMMON,
  STT_FUNC,
  STT_OBJECT,
  SYM_SIZE,
} from './constants.js';
import type { ElfSection } from './header.js';
import { Decoder } from './reader.js';
import type { FileSource } from './reader.js';
import type { StringTable } from './strings.js';

/** Most entries we accept in one symbol table (node's .symtab has ~110k). */
export const MAX_SYMBOLS = 1 << 22;
/** Symbols read per positional read when walking a table. */
export const SYMBOL_CHUNK = 4096;

/** Which symbol table a symbol came from. */
export type SymbolTableName = 'dynsym' | 'symtab';

/** One symbol, as callers see it. */
export interface ElfSymbolInfo {
  /** Name without the version suffix. */
  name: string;
  /** GNU version name, e.g. 'OPENSSL_3.0.0'. */
  version?: string;
  /** '@@' (true) vs hidden '@' (false); true when unversioned. */
  isDefaultVersion: boolean;
  /** st_value. */
  address: bigint;
  size: bigint;
  kind: 'func' | 'object' | 'other';
  binding: 'local' | 'global' | 'weak' | 'other';
  /** st_shndx != SHN_UNDEF. */
  defined: boolean;
  table: SymbolTableName;
}

/** A symbol table entry before its name and version are looked up. */
export interface RawSymbol {
  index: number;
  nameOffset: number;
  value: bigint;
  size: bigint;
  info: number;
  shndx: number;
}

/** The `kind` of an st_info byte. STT_GNU_IFUNC is 'other': its address is a resolver, not the function. */
export function symbolKind(info: number): ElfSymbolInfo['kind'] {
  const type = info & 0xf;
  if (type === STT_FUNC) return 'func';
  if (type === STT_OBJECT || type === STT_COMMON) return 'object';
  return 'other';
}

/** The `binding` of an st_info byte. */
export function symbolBinding(info: number): ElfSymbolInfo['binding'] {
  switch (info >> 4) {
    case STB_LOCAL:
      return 'local';
    case STB_GLOBAL:
      return 'global';
    case STB_WEAK:
      return 'weak';
    default:
      return 'other';
  }
}

/** True for a defined function symbol: what findFunctions looks for. */
export function isDefinedFunction(info: number, shndx: number): boolean {
  return (info & 0xf) === STT_FUNC && shndx !== SHN_UNDEF;
}

/** A .dynsym or .symtab section with its string table; entries are read on demand. */
export class SymbolTable {
  /** Number of entries, including the null entry 0. */
  readonly count: number;
  private readonly offset: number;
  private readonly entsize: number;

  constructor(
    private readonly src: FileSource,
    private readonly bits: 32 | 64,
    private readonly littleEndian: boolean,
    section: ElfSection,
    readonly strings: StringTable,
    readonly table: SymbolTableName,
  ) {
    const min = SYM_SIZE[bits];
    if (section.entsize !== 0n && (section.entsize < BigInt(min) || section.entsize > 1024n)) {
      src.fail(`.${table} has an invalid entry size ${section.entsize}`);
    }
    this.entsize = section.entsize === 0n ? min : Number(section.entsize);
    const where = src.range(section.offset, section.size, `.${table}`);
    this.offset = where.offset;
    this.count = Math.floor(where.size / this.entsize);
    if (this.count > MAX_SYMBOLS) src.fail(`.${table} has too many symbols (${this.count})`);
  }

  /**
   * Entries `start` to `end` (exclusive) that pass `keep(info, shndx, nameOffset)`, read in chunks
   * of SYMBOL_CHUNK entries; `keep` sees each entry before any object is made for it.
   */
  async scan(
    start: number,
    end: number,
    keep: (info: number, shndx: number, nameOffset: number) => boolean,
  ): Promise<RawSymbol[]> {
    const out: RawSymbol[] = [];
    const last = Math.min(end, this.count);
    for (let first = Math.max(0, start); first < last; first += SYMBOL_CHUNK) {
      const n = Math.min(SYMBOL_CHUNK, last - first);
      const buf = await this.src.read(this.offset + first * this.entsize, n * this.entsize, `.${this.table}`);
      this.scanChunk(new Decoder(buf, this.littleEndian, this.bits), first, n, keep, out);
    }
    return out;
  }

  /**
   * Defined functions among entries `start` to `end` (exclusive) whose name's first two bytes, as
   * `first << 8 | second`, are marked in `pairs` (65536 entries), the names read from `names` (the whole
   * string table, in memory); a name that starts at its last byte or past its end is kept, for the
   * caller to judge. What scan() with that filter gives, in one loop with no
   * call per entry: it runs cold at every start, over the 110k entries of node's .symtab.
   */
  async definedFunctions(start: number, end: number, names: Buffer, pairs: Uint8Array): Promise<RawSymbol[]> {
    const out: RawSymbol[] = [];
    const last = Math.min(end, this.count);
    for (let first = Math.max(0, start); first < last; first += SYMBOL_CHUNK) {
      const n = Math.min(SYMBOL_CHUNK, last - first);
      const buf = await this.src.read(this.offset + first * this.entsize, n * this.entsize, `.${this.table}`);
      const d = new Decoder(buf, this.littleEndian, this.bits);
      for (const at of this.functionsInChunk(buf, n, names, pairs)) {
        out.push(this.decode(d, at, first + at / this.entsize, buf[at + this.infoAt()]!, this.shndxAt(buf, at)));
      }
    }
    return out;
  }

  private infoAt(): number {
    return this.bits === 64 ? 4 : 12;
  }

  private shndxAt(buf: Buffer, at: number): number {
    const lo = buf[at + this.infoAt() + 2]!;
    const hi = buf[at + this.infoAt() + 3]!;
    return this.littleEndian ? lo | (hi << 8) : (lo << 8) | hi;
  }

  // The byte offsets in `buf` of the entries definedFunctions() keeps: fields read in place, the
  // common case (not a function, undefined, or a name starting otherwise) decided inline.
  private functionsInChunk(buf: Buffer, n: number, names: Buffer, pairs: Uint8Array): number[] {
    const { entsize, littleEndian } = this;
    const infoAt = this.infoAt();
    const kept: number[] = [];
    for (let at = 0, stop = n * entsize; at < stop; at += entsize) {
      if ((buf[at + infoAt]! & 0xf) !== STT_FUNC) continue;
      const lo = buf[at + infoAt + 2]!;
      const hi = buf[at + infoAt + 3]!;
      if ((lo | hi) === SHN_UNDEF) continue;
      const nameOffset = littleEndian
        ? (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0
        : ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
      if (nameOffset + 1 < names.length && pairs[(names[nameOffset]! << 8) | names[nameOffset + 1]!] === 0) continue;
      kept.push(at);
    }
    return kept;
  }

  // The loop over a table's entries lives outside the async scan(), where V8 can optimise it while it
  // runs (on-stack replacement), and reads the fields in place: it runs 110k times for node.
  private scanChunk(
    d: Decoder,
    first: number,
    n: number,
    keep: (info: number, shndx: number, nameOffset: number) => boolean,
    out: RawSymbol[],
  ): void {
    // Elf64_Sym: name u32, info u8, other u8, shndx u16, value, size.
    // Elf32_Sym: name, value, size (u32 each), info u8, other u8, shndx u16.
    const { buf, littleEndian } = d;
    const infoAt = this.bits === 64 ? 4 : 12;
    for (let i = 0, at = 0; i < n; i++, at += this.entsize) {
      const info = buf[at + infoAt]!;
      const lo = buf[at + infoAt + 2]!;
      const hi = buf[at + infoAt + 3]!;
      const shndx = littleEndian ? lo | (hi << 8) : (lo << 8) | hi;
      const nameOffset = littleEndian ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
      if (keep(info, shndx, nameOffset)) out.push(this.decode(d, at, first + i, info, shndx));
    }
  }

  /** The entry at `index`. */
  async get(index: number): Promise<RawSymbol> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.count) {
      this.src.corrupt(`symbol index ${index} is outside .${this.table} (${this.count} entries)`);
    }
    const buf = await this.src.read(this.offset + index * this.entsize, SYM_SIZE[this.bits], `.${this.table}`);
    const d = new Decoder(buf, this.littleEndian, this.bits);
    return this.bits === 64
      ? this.decode(d, 0, index, d.u8(4), d.u16(6))
      : this.decode(d, 0, index, d.u8(12), d.u16(14));
  }

  private decode(d: Decoder, at: number, index: number, info: number, shndx: number): RawSymbol {
    if (this.bits === 64) {
      return { index, nameOffset: d.u32(at), value: d.u64(at + 8), size: d.u64(at + 16), info, shndx };
    }
    return { index, nameOffset: d.u32(at), value: BigInt(d.u32(at + 4)), size: BigInt(d.u32(at + 8)), info, shndx };
  }
}
