import { SHT_DYNSYM, SHT_GNU_HASH, SHT_HASH, SHT_NOBITS, SHT_SYMTAB } from './constants.js';
import { GnuHashTable } from './gnu-hash.js';
import type { SymbolHashTable } from './gnu-hash.js';
import type { ElfSection } from './header.js';
import type { FileSource } from './reader.js';
import { isDefinedFunction, symbolBinding, symbolKind, SymbolTable } from './symbols.js';
import type { ElfSymbolInfo, RawSymbol, SymbolTableName } from './symbols.js';
import { SysvHashTable } from './sysv-hash.js';
import { SymbolVersions } from './versions.js';
import type { StringTableLookup, VersionInfo } from './versions.js';

/** symbols() lists at most this many entries (each becomes an object); findFunctions has no such limit. */
export const MAX_LISTED_SYMBOLS = 1 << 21;

/** A symbol table and what belongs to it: for .dynsym, its versions and hash table. */
export interface LoadedTable {
  table: SymbolTable;
  versions?: SymbolVersions;
  hash?: SymbolHashTable;
}

/** A function found by name, before its file offset is worked out. */
export interface Candidate {
  raw: RawSymbol;
  version: VersionInfo;
  table: SymbolTableName;
}

/** Receives each candidate for a wanted name. */
export type KeepCandidate = (name: string, candidate: Candidate) => void;

/** Where a table's parts come from. */
export interface TableSource {
  src: FileSource;
  bits: 32 | 64;
  littleEndian: boolean;
  sections: readonly ElfSection[];
  strings: StringTableLookup;
}

/** Lower is better: the default version first, then global, weak, local bindings. */
export function rank(c: Candidate): number {
  const binding = symbolBinding(c.raw.info);
  const order = binding === 'global' ? 0 : binding === 'weak' ? 1 : binding === 'local' ? 2 : 3;
  return (c.version.isDefaultVersion ? 0 : 4) + order;
}

/** Splits `name@@VER` / `name@VER`, as .symtab writes versioned names (relocatable objects, some links). */
export function splitVersionedName(full: string): { name: string; version: VersionInfo } {
  const at = full.indexOf('@');
  if (at <= 0) return { name: full, version: { isDefaultVersion: true } };
  const isDefaultVersion = full[at + 1] === '@';
  const version = full.slice(at + (isDefaultVersion ? 2 : 1));
  if (version === '') return { name: full.slice(0, at), version: { isDefaultVersion: true } };
  return { name: full.slice(0, at), version: { version, isDefaultVersion } };
}

/** The public view of a symbol. */
export function toInfo(raw: RawSymbol, name: string, version: VersionInfo, table: SymbolTableName): ElfSymbolInfo {
  const info: ElfSymbolInfo = {
    name,
    isDefaultVersion: version.isDefaultVersion,
    address: raw.value,
    size: raw.size,
    kind: symbolKind(raw.info),
    binding: symbolBinding(raw.info),
    defined: raw.shndx !== 0,
    table,
  };
  if (version.version !== undefined) info.version = version.version;
  return info;
}

/** The version of .dynsym entry `index` (unversioned when there is no .gnu.version). */
async function versionOf(loaded: LoadedTable, index: number): Promise<VersionInfo> {
  if (loaded.versions === undefined) return { isDefaultVersion: true };
  const [entry] = await loaded.versions.entries(index, 1);
  return loaded.versions.describe(entry!);
}

/** Loads .dynsym with its string table, versions and hash table; undefined when there is none. */
export async function loadDynamicTable(from: TableSource): Promise<LoadedTable | undefined> {
  const { src, bits, littleEndian, sections } = from;
  const index = sections.findIndex((s) => s.type === SHT_DYNSYM);
  const section = sections[index];
  if (section === undefined || section.type === SHT_NOBITS) return undefined;
  const strings = from.strings(section.link, '.dynsym strings');
  const loaded: LoadedTable = { table: new SymbolTable(src, bits, littleEndian, section, strings, 'dynsym') };
  const versions = await SymbolVersions.load(src, bits, littleEndian, sections, index, from.strings);
  if (versions !== undefined) loaded.versions = versions;
  const belonging = (type: number): ElfSection | undefined =>
    sections.find((s) => s.type === type && s.link === index) ?? sections.find((s) => s.type === type);
  const gnu = belonging(SHT_GNU_HASH);
  const sysv = belonging(SHT_HASH);
  if (gnu !== undefined) {
    loaded.hash = await GnuHashTable.load(src, bits, littleEndian, gnu, loaded.table.count);
  } else if (sysv !== undefined) {
    loaded.hash = await SysvHashTable.load(src, littleEndian, sysv, loaded.table.count);
  }
  return loaded;
}

/** Loads .symtab with its string table; undefined when there is none (a stripped file). */
export function loadStaticTable(from: TableSource): LoadedTable | undefined {
  const section = from.sections.find((s) => s.type === SHT_SYMTAB);
  if (section === undefined || section.type === SHT_NOBITS) return undefined;
  const strings = from.strings(section.link, '.symtab strings');
  return { table: new SymbolTable(from.src, from.bits, from.littleEndian, section, strings, 'symtab') };
}

/** Looks `wanted` names up through the .dynsym hash table: a handful of small reads per name. */
export async function lookupHashed(
  loaded: LoadedTable,
  hash: SymbolHashTable,
  wanted: ReadonlyMap<string, Buffer>,
  keep: KeepCandidate,
): Promise<void> {
  const { table } = loaded;
  await Promise.all(
    [...wanted].map(async ([name, bytes]) => {
      for (const index of await hash.candidates(bytes)) {
        const raw = await table.get(index);
        if (!isDefinedFunction(raw.info, raw.shndx)) continue;
        if (!(await table.strings.bytes(raw.nameOffset)).equals(bytes)) continue;
        keep(name, { raw, version: await versionOf(loaded, raw.index), table: table.table });
      }
    }),
  );
}

/**
 * The first two bytes a name in `wanted` can start with, marked at `first << 8 | second` in 65536
 * entries: a short name's second byte is its terminator (or '@' before a version when `versioned`),
 * an empty name may be followed by anything.
 */
function namePairs(wanted: readonly Buffer[], versioned: boolean): Uint8Array {
  const pairs = new Uint8Array(1 << 16);
  const ends = versioned ? [0, 0x40] : [0];
  for (const b of wanted) {
    if (b.length >= 2) pairs[(b[0]! << 8) | b[1]!] = 1;
    else if (b.length === 1) for (const end of ends) pairs[(b[0]! << 8) | end] = 1;
    else for (const end of ends) pairs.fill(1, end << 8, (end + 1) << 8);
  }
  return pairs;
}

/** Scans entries [start, end) of a table, in chunks, for defined functions named like one of `wanted`. */
export async function scanTable(
  loaded: LoadedTable,
  wanted: ReadonlyMap<string, Buffer>,
  start: number,
  end: number,
  keep: KeepCandidate,
): Promise<void> {
  const { table } = loaded;
  const versioned = table.table === 'symtab';
  const names = [...wanted.keys()];
  const bytes = [...wanted.values()];
  // The bytes a wanted name can start with (an empty one "starts" with its terminator): one look at
  // the first byte rules out nearly every entry of a big table (node's .symtab has ~110k).
  const starts = new Uint8Array(256);
  for (const b of bytes) {
    if (b.length > 0) {
      starts[b[0]!] = 1;
    } else {
      starts[0] = 1;
      if (versioned) starts[0x40] = 1;
    }
  }
  await table.strings.hold(async () => {
    // Names are compared in place while entries are read; only likely matches become objects.
    const matches = (nameOffset: number): boolean => table.strings.matchAny(nameOffset, bytes, versioned) !== -1;
    const whole = table.strings.held();
    const likely =
      whole !== undefined
        ? (await table.definedFunctions(start, end, whole, namePairs(bytes, versioned))).filter((raw) => matches(raw.nameOffset))
        : await table.scan(start, end, (info, shndx, nameOffset) => {
            if (!isDefinedFunction(info, shndx)) return false;
            const first = table.strings.byteAt(nameOffset);
            if (first !== undefined && starts[first] === 0) return false;
            return matches(nameOffset);
          });
    for (const raw of likely) {
      const full = await table.strings.bytes(raw.nameOffset);
      // .symtab may hold `name@@VER`: compare up to the '@' then.
      const at = versioned ? full.indexOf(0x40) : -1;
      const plain = at > 0 ? full.subarray(0, at) : full;
      const i = bytes.findIndex((b) => b.equals(plain));
      if (i === -1) continue;
      const version = versioned
        ? splitVersionedName(full.toString('utf8')).version
        : await versionOf(loaded, raw.index);
      keep(names[i]!, { raw, version, table: table.table });
    }
  });
}

/** Every entry of a table except the null entry 0, in table order. */
export async function listSymbols(loaded: LoadedTable): Promise<ElfSymbolInfo[]> {
  const { table, versions } = loaded;
  const { strings } = table;
  const raws = await table.scan(1, table.count, () => true);
  const versyms = versions === undefined ? undefined : await versions.entries(0, table.count);
  const out: ElfSymbolInfo[] = [];
  await strings.hold(async () => {
    for (const raw of raws) {
      let full = '';
      if (raw.nameOffset !== 0) {
        full = (strings.peek(raw.nameOffset) ?? (await strings.bytes(raw.nameOffset))).toString('utf8');
      }
      if (versions !== undefined && versyms !== undefined) {
        out.push(toInfo(raw, full, versions.describe(versyms[raw.index]!), table.table));
      } else if (table.table === 'symtab') {
        const { name, version } = splitVersionedName(full);
        out.push(toInfo(raw, name, version, table.table));
      } else {
        out.push(toInfo(raw, full, { isDefaultVersion: true }, table.table));
      }
    }
  });
  return out;
}
