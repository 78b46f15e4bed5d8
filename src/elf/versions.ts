import {
  SHT_GNU_VERDEF,
  SHT_GNU_VERNEED,
  SHT_GNU_VERSYM,
  SHT_NOBITS,
  VER_NDX_GLOBAL,
  VERSYM_HIDDEN,
} from './constants.js';
import type { ElfSection } from './header.js';
import { Decoder } from './reader.js';
import type { FileSource } from './reader.js';
import type { StringTable } from './strings.js';

/** Largest .gnu.version_d / .gnu.version_r we read (real ones are a few KiB). */
export const MAX_VERSION_SECTION = 1024 * 1024;
/** Version indexes are 15 bits wide, so there cannot be more definitions or requirements than this. */
const MAX_VERSIONS = 0x7fff;

/** The GNU version of one dynamic symbol. */
export interface VersionInfo {
  version?: string;
  isDefaultVersion: boolean;
}

/** Looks up a string table by section index (shared so that pages are cached once). */
export type StringTableLookup = (sectionIndex: number, what: string) => StringTable;

/** `.gnu.version` (one index per .dynsym entry) plus the names from `.gnu.version_d` and `.gnu.version_r`. */
export class SymbolVersions {
  private constructor(
    private readonly src: FileSource,
    private readonly littleEndian: boolean,
    private readonly versymOffset: number,
    private readonly versymCount: number,
    private readonly definitions: ReadonlyMap<number, string>,
    private readonly requirements: ReadonlyMap<number, string>,
  ) {}

  /** Loads the version tables that belong to the .dynsym at `dynsymIndex`; undefined when there is no .gnu.version. */
  static async load(
    src: FileSource,
    bits: 32 | 64,
    littleEndian: boolean,
    sections: readonly ElfSection[],
    dynsymIndex: number,
    strings: StringTableLookup,
  ): Promise<SymbolVersions | undefined> {
    const versym =
      sections.find((s) => s.type === SHT_GNU_VERSYM && s.link === dynsymIndex) ??
      sections.find((s) => s.type === SHT_GNU_VERSYM);
    if (versym === undefined || versym.type === SHT_NOBITS) return undefined;
    const where = src.range(versym.offset, versym.size, '.gnu.version');
    const definitions = new Map<number, string>();
    const requirements = new Map<number, string>();
    const verdef = sections.find((s) => s.type === SHT_GNU_VERDEF);
    if (verdef !== undefined) {
      const d = await readVersionSection(src, bits, littleEndian, verdef, '.gnu.version_d');
      await parseVerdef(src, d, strings(verdef.link, '.gnu.version_d strings'), definitions);
    }
    const verneed = sections.find((s) => s.type === SHT_GNU_VERNEED);
    if (verneed !== undefined) {
      const d = await readVersionSection(src, bits, littleEndian, verneed, '.gnu.version_r');
      await parseVerneed(src, d, strings(verneed.link, '.gnu.version_r strings'), requirements);
    }
    return new SymbolVersions(src, littleEndian, where.offset, Math.floor(where.size / 2), definitions, requirements);
  }

  /** Raw .gnu.version entries for symbols `start` .. `start + count - 1` (VER_NDX_GLOBAL past the table's end). */
  async entries(start: number, count: number): Promise<Uint16Array> {
    const out = new Uint16Array(count).fill(VER_NDX_GLOBAL);
    const first = Math.min(start, this.versymCount);
    const n = Math.min(count, this.versymCount - first);
    if (n <= 0) return out;
    const buf = await this.src.read(this.versymOffset + first * 2, n * 2, '.gnu.version');
    const d = new Decoder(buf, this.littleEndian, 32);
    for (let i = 0; i < n; i++) out[i] = d.u16(i * 2);
    return out;
  }

  /**
   * Version name and default-ness for a raw .gnu.version entry. A definition is the default
   * (`name@@VER`) unless the hidden bit is set; a requirement (an undefined symbol's version, from
   * .gnu.version_r) is written `name@VER` by nm and readelf, so it is not a default either.
   */
  describe(entry: number): VersionInfo {
    const index = entry & ~VERSYM_HIDDEN;
    // 0 is local and 1 is the unversioned global base: neither has a version name.
    if (index <= VER_NDX_GLOBAL) return { isDefaultVersion: true };
    const defined = this.definitions.get(index);
    if (defined !== undefined) return { version: defined, isDefaultVersion: (entry & VERSYM_HIDDEN) === 0 };
    const required = this.requirements.get(index);
    if (required !== undefined) return { version: required, isDefaultVersion: false };
    return { isDefaultVersion: true };
  }
}

async function readVersionSection(
  src: FileSource,
  bits: 32 | 64,
  littleEndian: boolean,
  section: ElfSection,
  what: string,
): Promise<Decoder> {
  if (section.type === SHT_NOBITS) return new Decoder(Buffer.alloc(0), littleEndian, bits);
  const where = src.range(section.offset, section.size, what);
  if (where.size > MAX_VERSION_SECTION) src.corrupt(`${what} is implausibly large (${where.size} bytes)`);
  return new Decoder(await src.read(where.offset, where.size, what), littleEndian, bits);
}

// Elf_Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32.
// Elf_Verdaux: vda_name u32, vda_next u32. The first aux entry names the version itself.
async function parseVerdef(
  src: FileSource,
  d: Decoder,
  strings: StringTable,
  names: Map<number, string>,
): Promise<void> {
  const size = d.buf.length;
  let at = 0;
  for (let n = 0; size > 0; n++) {
    if (n >= MAX_VERSIONS) src.corrupt('.gnu.version_d has too many entries');
    if (at + 20 > size) src.corrupt('.gnu.version_d entry runs past the end of the section');
    const revision = d.u16(at);
    if (revision !== 1) src.fail(`.gnu.version_d has unsupported revision ${revision}`);
    const index = d.u16(at + 4);
    const count = d.u16(at + 6);
    const aux = d.u32(at + 12);
    const next = d.u32(at + 16);
    if (count > 0) {
      const auxAt = at + aux;
      if (auxAt + 8 > size) src.corrupt('.gnu.version_d auxiliary entry runs past the end of the section');
      names.set(index & ~VERSYM_HIDDEN, await strings.get(d.u32(auxAt)));
    }
    if (next === 0) break;
    at += next;
  }
}

// Elf_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
// Elf_Vernaux: vna_hash u32, vna_flags u16, vna_other u16 (the version index), vna_name u32, vna_next u32.
async function parseVerneed(
  src: FileSource,
  d: Decoder,
  strings: StringTable,
  names: Map<number, string>,
): Promise<void> {
  const size = d.buf.length;
  let at = 0;
  let total = 0;
  for (let n = 0; size > 0; n++) {
    if (n >= MAX_VERSIONS) src.corrupt('.gnu.version_r has too many entries');
    if (at + 16 > size) src.corrupt('.gnu.version_r entry runs past the end of the section');
    const revision = d.u16(at);
    if (revision !== 1) src.fail(`.gnu.version_r has unsupported revision ${revision}`);
    const count = d.u16(at + 2);
    const next = d.u32(at + 12);
    let auxAt = at + d.u32(at + 8);
    for (let j = 0; j < count; j++) {
      if (++total > MAX_VERSIONS) src.corrupt('.gnu.version_r has too many entries');
      if (auxAt + 16 > size) src.corrupt('.gnu.version_r auxiliary entry runs past the end of the section');
      names.set(d.u16(auxAt + 6) & ~VERSYM_HIDDEN, await strings.get(d.u32(auxAt + 8)));
      const auxNext = d.u32(auxAt + 12);
      if (auxNext === 0) break;
      auxAt += auxNext;
    }
    if (next === 0) break;
    at += next;
  }
}
