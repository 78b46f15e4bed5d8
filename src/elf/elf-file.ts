import { EM_ARM, PT_DYNAMIC, PT_LOAD, PT_NOTE, SHT_DYNAMIC, SHT_NOBITS, SHT_NOTE } from './constants.js';
import { dynamicStringTable, neededOffsets, parseDynamic } from './dynamic.js';
import type { DynamicEntry } from './dynamic.js';
import { ElfError } from './errors.js';
import { readHeaders } from './header.js';
import type { ElfHeaders, ElfSection, ElfSegment } from './header.js';
import {
  listSymbols,
  loadDynamicTable,
  loadStaticTable,
  lookupHashed,
  MAX_LISTED_SYMBOLS,
  rank,
  scanTable,
  toInfo,
} from './lookup.js';
import type { Candidate, LoadedTable, TableSource } from './lookup.js';
import { buildIdFrom, parseNotes } from './notes.js';
import { FileSource } from './reader.js';
import type { PositionalFile } from './reader.js';
import { StringTable } from './strings.js';
import type { ElfSymbolInfo } from './symbols.js';

/** A defined function and the file offset a uprobe attaches to. */
export interface ResolvedFunction extends ElfSymbolInfo {
  fileOffset: bigint;
}

/** Most bytes of one note area or .dynamic we read; real ones are far smaller. */
const MAX_METADATA_READ = 1024 * 1024;
/** findInSection reads this much at a time... */
const SCAN_CHUNK = 1024 * 1024;
/** ...plus this much of the next chunk, so that a match across a boundary is still seen whole. */
const SCAN_OVERLAP = 4096;
/** Default limit of findInSection (node's .rodata is ~47 MiB). */
const DEFAULT_SCAN_LIMIT = 64 * 1024 * 1024;

/** An ELF file opened for lazy, positional reads: headers at open, everything else on demand. */
export class ElfFile {
  /** The path the file was opened with. */
  readonly path: string;
  /** ELF class. */
  readonly bits: 32 | 64;
  /** Data encoding. */
  readonly littleEndian: boolean;
  /** e_machine. */
  readonly machine: number;
  /** 'x86_64', 'aarch64', 'arm', 'i386', 'riscv', 'ppc64', 's390x', ... else `machine ${n}`. */
  readonly machineName: string;
  /** e_type. */
  readonly type: 'exec' | 'dyn' | 'rel' | 'core' | 'other';
  /** e_entry. */
  readonly entry: bigint;
  /** Size of the file in bytes when it was opened. */
  readonly fileSize: number;
  /** Program headers. */
  readonly segments: readonly ElfSegment[];
  /** Section headers, with names. */
  readonly sections: readonly ElfSection[];

  private readonly src: FileSource;
  private readonly stringTables = new Map<number, StringTable>();
  private dynsym?: Promise<LoadedTable | undefined>;
  private symtab?: Promise<LoadedTable | undefined>;
  private buildIdResult?: Promise<string | undefined>;

  private constructor(src: FileSource, headers: ElfHeaders) {
    this.src = src;
    this.path = src.path;
    this.fileSize = src.size;
    this.bits = headers.bits;
    this.littleEndian = headers.littleEndian;
    this.machine = headers.machine;
    this.machineName = headers.machineName;
    this.type = headers.type;
    this.entry = headers.entry;
    this.segments = Object.freeze(headers.segments);
    this.sections = Object.freeze(headers.sections);
  }

  /** Opens and validates `path`, reading the ELF header and the program and section headers only. */
  static async open(path: string): Promise<ElfFile> {
    return ElfFile.fromSource(await FileSource.open(path));
  }

  /** Opens and validates the ELF in `file` (a remote file, a slice of an APK); `path` names it in messages. */
  static async openFile(path: string, file: PositionalFile): Promise<ElfFile> {
    return ElfFile.fromSource(FileSource.over(path, file));
  }

  private static async fromSource(src: FileSource): Promise<ElfFile> {
    try {
      return new ElfFile(src, await readHeaders(src));
    } catch (err) {
      await src.close().catch(() => undefined);
      throw err;
    }
  }

  /** Bytes read from the file so far: a diagnostic showing that lookups stay small. */
  get bytesRead(): number {
    return this.src.bytesRead;
  }

  /** The first section called `name`, if any. */
  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  /** The GNU build ID (NT_GNU_BUILD_ID) in lowercase hex, from the note sections or else PT_NOTE segments. */
  buildId(): Promise<string | undefined> {
    return (this.buildIdResult ??= this.readBuildId());
  }

  private async readBuildId(): Promise<string | undefined> {
    const areas: { offset: bigint; size: bigint; align: bigint; what: string }[] = [];
    const notes = this.sections.filter((s) => s.type === SHT_NOTE);
    // The usual home first; the other note sections only if it is missing.
    const usual = (s: ElfSection): number => Number(s.name === '.note.gnu.build-id');
    notes.sort((a, b) => usual(b) - usual(a));
    for (const s of notes) {
      areas.push({ offset: s.offset, size: s.size, align: s.addralign, what: s.name || 'note section' });
    }
    if (notes.length === 0) {
      for (const p of this.segments) {
        if (p.type !== PT_NOTE) continue;
        areas.push({ offset: p.offset, size: p.filesz, align: p.align, what: 'PT_NOTE segment' });
      }
    }
    for (const area of areas) {
      const buf = await this.readArea(area.offset, area.size, area.what);
      const id = buildIdFrom(parseNotes(buf, this.littleEndian, area.align === 8n ? 8 : 4));
      if (id !== undefined) return id;
    }
    return undefined;
  }

  /** DT_NEEDED library names from .dynamic (or the PT_DYNAMIC segment when there are no section headers). */
  async neededLibraries(): Promise<string[]> {
    let entries: DynamicEntry[];
    let strings: StringTable;
    const section = this.sections.find((s) => s.type === SHT_DYNAMIC);
    if (section !== undefined) {
      if (section.type === SHT_NOBITS) return [];
      const buf = await this.readArea(section.offset, section.size, '.dynamic');
      entries = parseDynamic(buf, this.littleEndian, this.bits);
      if (neededOffsets(entries).length === 0) return [];
      strings = this.stringTable(section.link, '.dynamic strings');
    } else {
      const segment = this.segments.find((p) => p.type === PT_DYNAMIC);
      if (segment === undefined) return [];
      const buf = await this.readArea(segment.offset, segment.filesz, 'PT_DYNAMIC segment');
      entries = parseDynamic(buf, this.littleEndian, this.bits);
      if (neededOffsets(entries).length === 0) return [];
      const table = dynamicStringTable(entries);
      if (table === undefined) this.src.corrupt('.dynamic has DT_NEEDED entries but no DT_STRTAB/DT_STRSZ');
      const where = this.src.range(this.fileOffsetOf(table.address), table.size, 'dynamic string table');
      strings = new StringTable(this.src, where.offset, where.size, 'dynamic string table');
    }
    const names: string[] = [];
    for (const offset of neededOffsets(entries)) names.push(await strings.get(Number(offset)));
    return names;
  }

  /**
   * Defined functions by plain name; prefers .dynsym (default version), then .symtab. Missing names are absent
   * from the map. Throws ElfError if the file is corrupt or a found function lies in no PT_LOAD segment.
   */
  async findFunctions(names: readonly string[]): Promise<Map<string, ResolvedFunction>> {
    const missing = new Map<string, Buffer>();
    for (const name of names) if (name !== '') missing.set(name, Buffer.from(name, 'utf8'));
    const best = new Map<string, Candidate>();
    const keep = (name: string, c: Candidate): void => {
      const old = best.get(name);
      if (old === undefined || rank(c) < rank(old)) best.set(name, c);
    };
    const forget = (): void => {
      for (const name of best.keys()) missing.delete(name);
    };

    const dynsym = await this.dynamicSymbols();
    if (dynsym !== undefined && missing.size > 0) {
      if (dynsym.hash !== undefined) {
        await lookupHashed(dynsym, dynsym.hash, missing, keep);
        forget();
        // Entries below the hash table's first symbol are normally undefined ones; check them anyway.
        const below = dynsym.hash.firstHashed;
        if (missing.size > 0 && below > 1) await scanTable(dynsym, missing, 1, below, keep);
      } else {
        await scanTable(dynsym, missing, 1, dynsym.table.count, keep);
      }
      forget();
    }
    if (missing.size > 0) {
      const symtab = await this.staticSymbols();
      if (symtab !== undefined) await scanTable(symtab, missing, 1, symtab.table.count, keep);
    }

    const result = new Map<string, ResolvedFunction>();
    for (const name of names) {
      const c = best.get(name);
      if (c === undefined || result.has(name)) continue;
      result.set(name, { ...toInfo(c.raw, name, c.version, c.table), fileOffset: this.functionOffset(c.raw.value) });
    }
    return result;
  }

  /** Every symbol of a table except the null entry 0, in table order (at most 2M); [] when the table is absent. */
  async symbols(table: 'dynsym' | 'symtab'): Promise<ElfSymbolInfo[]> {
    const loaded = table === 'dynsym' ? await this.dynamicSymbols() : await this.staticSymbols();
    if (loaded === undefined) return [];
    if (loaded.table.count > MAX_LISTED_SYMBOLS) {
      const reason = `.${table} has too many symbols to list (${loaded.table.count})`;
      this.src.fail(reason, 'use findFunctions to look up names');
    }
    return listSymbols(loaded);
  }

  /** The file offset of a virtual address; throws ElfError when no PT_LOAD segment holds it. */
  fileOffsetOf(address: bigint): bigint {
    for (const segment of this.segments) {
      if (segment.type !== PT_LOAD) continue;
      // Within a PT_LOAD segment the file maps linearly: offset = addr - p_vaddr + p_offset.
      // This is the offset a uprobe attaches to.
      if (address >= segment.vaddr && address - segment.vaddr < segment.filesz) {
        return address - segment.vaddr + segment.offset;
      }
    }
    throw new ElfError(this.path, `address 0x${address.toString(16)} is in no PT_LOAD segment`, {
      hint:
        this.type === 'rel'
          ? 'relocatable objects (.o) cannot be probed; use the linked binary'
          : 'the file is corrupt or the address belongs to another file',
    });
  }

  /** Reads `size` bytes at file offset `offset` (checked against the file size); `what` names them in errors. */
  async readAt(offset: bigint, size: number, what: string): Promise<Buffer> {
    const where = this.src.range(offset, BigInt(size), what);
    return this.src.read(where.offset, where.size, what);
  }

  /** Reads `size` bytes at virtual address `address` through the PT_LOAD segment that holds them. */
  async readAddress(address: bigint, size: number, what: string): Promise<Buffer> {
    const offset = this.fileOffsetOf(address);
    if (size > 0) this.fileOffsetOf(address + BigInt(size) - 1n);
    return this.readAt(offset, size, what);
  }

  /**
   * First match of `pattern` (applied to latin1 text) in a section's bytes, scanned in bounded chunks with
   * overlap; undefined if none/absent. Matches longer than 4 KiB may be missed; ^ and $ see chunk edges.
   */
  async findInSection(
    sectionName: string,
    pattern: RegExp,
    maxBytes: number = DEFAULT_SCAN_LIMIT,
  ): Promise<string | undefined> {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
    }
    const section = this.section(sectionName);
    if (section === undefined || section.type === SHT_NOBITS) return undefined;
    const where = this.src.range(section.offset, section.size, sectionName);
    const limit = Math.min(where.size, maxBytes);
    // A fresh, stateless copy: with 'g' or 'y', exec() would depend on lastIndex.
    const regex = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
    for (let start = 0; start < limit; start += SCAN_CHUNK) {
      const end = Math.min(limit, start + SCAN_CHUNK + SCAN_OVERLAP);
      const text = (await this.src.read(where.offset + start, end - start, sectionName)).toString('latin1');
      const match = regex.exec(text);
      // A match that starts in the overlap is found again, whole, by the next chunk.
      if (match !== null && (match.index < SCAN_CHUNK || end === limit)) return match[0];
    }
    return undefined;
  }

  /** Closes the file; other methods throw ElfError afterwards. Safe to call twice. */
  async close(): Promise<void> {
    await this.src.close();
  }

  private functionOffset(value: bigint): bigint {
    // On 32-bit ARM, bit 0 of a function address marks Thumb code; the first instruction is at the even address.
    return this.fileOffsetOf(this.machine === EM_ARM ? value & ~1n : value);
  }

  private async readArea(offset: bigint, size: bigint, what: string): Promise<Buffer> {
    const where = this.src.range(offset, size, what);
    return this.src.read(where.offset, Math.min(where.size, MAX_METADATA_READ), what);
  }

  private stringTable(index: number, what: string): StringTable {
    let strings = this.stringTables.get(index);
    if (strings === undefined) {
      const section = this.sections[index];
      if (section === undefined) this.src.corrupt(`${what}: section index ${index} is out of range`);
      const name = section.name || what;
      if (section.type === SHT_NOBITS) this.src.corrupt(`${what}: section ${name} has no data`);
      const where = this.src.range(section.offset, section.size, name);
      strings = new StringTable(this.src, where.offset, where.size, name);
      this.stringTables.set(index, strings);
    }
    return strings;
  }

  private tableSource(): TableSource {
    return {
      src: this.src,
      bits: this.bits,
      littleEndian: this.littleEndian,
      sections: this.sections,
      strings: (index, what) => this.stringTable(index, what),
    };
  }

  private dynamicSymbols(): Promise<LoadedTable | undefined> {
    return (this.dynsym ??= loadDynamicTable(this.tableSource()));
  }

  private staticSymbols(): Promise<LoadedTable | undefined> {
    return (this.symtab ??= Promise.resolve().then(() => loadStaticTable(this.tableSource())));
  }
}

/** Opens, runs fn, always closes. */
export async function withElfFile<T>(path: string, fn: (elf: ElfFile) => Promise<T>): Promise<T> {
  const elf = await ElfFile.open(path);
  try {
    return await fn(elf);
  } finally {
    await elf.close();
  }
}
