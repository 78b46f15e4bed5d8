import {
  EHDR_SIZE,
  EM_S390,
  ET_CORE,
  ET_DYN,
  ET_EXEC,
  ET_REL,
  MACHINE_NAMES,
  PHDR_SIZE,
  PN_XNUM,
  SHDR_SIZE,
  SHN_XINDEX,
  SHT_NOBITS,
} from './constants.js';
import { Decoder } from './reader.js';
import type { FileSource } from './reader.js';
import { StringTable } from './strings.js';

/** Most program headers we accept (e_phnum is 16 bits; PN_XNUM extension aside, 65535 is plenty). */
export const MAX_SEGMENTS = 65_536;
/** Most section headers we accept (large -ffunction-sections objects can exceed 65535). */
export const MAX_SECTIONS = 1 << 20;

/** One program header. */
export interface ElfSegment {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  /** p_align. */
  align: bigint;
}

/** One section header, with its name looked up in the section header string table. */
export interface ElfSection {
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: bigint;
  size: bigint;
  link: number;
  info: number;
  entsize: bigint;
  /** sh_addralign. */
  addralign: bigint;
}

/** The decoded ELF header plus the program and section header tables. */
export interface ElfHeaders {
  bits: 32 | 64;
  littleEndian: boolean;
  type: 'exec' | 'dyn' | 'rel' | 'core' | 'other';
  machine: number;
  machineName: string;
  entry: bigint;
  segments: ElfSegment[];
  sections: ElfSection[];
}

/** Short name for an e_machine value: 'x86_64', 'aarch64', ... or `machine ${n}`. */
export function machineName(machine: number, bits: 32 | 64): string {
  if (machine === EM_S390) return bits === 64 ? 's390x' : 's390';
  return MACHINE_NAMES.get(machine) ?? `machine ${machine}`;
}

function typeName(type: number): ElfHeaders['type'] {
  switch (type) {
    case ET_REL:
      return 'rel';
    case ET_EXEC:
      return 'exec';
    case ET_DYN:
      return 'dyn';
    case ET_CORE:
      return 'core';
    default:
      return 'other';
  }
}

interface RawSection extends Omit<ElfSection, 'name'> {
  nameOffset: number;
}

function decodeSection(d: Decoder, at: number): RawSection {
  if (d.bits === 64) {
    return {
      nameOffset: d.u32(at),
      type: d.u32(at + 4),
      flags: d.u64(at + 8),
      addr: d.u64(at + 16),
      offset: d.u64(at + 24),
      size: d.u64(at + 32),
      link: d.u32(at + 40),
      info: d.u32(at + 44),
      addralign: d.u64(at + 48),
      entsize: d.u64(at + 56),
    };
  }
  return {
    nameOffset: d.u32(at),
    type: d.u32(at + 4),
    flags: BigInt(d.u32(at + 8)),
    addr: BigInt(d.u32(at + 12)),
    offset: BigInt(d.u32(at + 16)),
    size: BigInt(d.u32(at + 20)),
    link: d.u32(at + 24),
    info: d.u32(at + 28),
    addralign: BigInt(d.u32(at + 32)),
    entsize: BigInt(d.u32(at + 36)),
  };
}

function decodeSegment(d: Decoder, at: number): ElfSegment {
  if (d.bits === 64) {
    return {
      type: d.u32(at),
      flags: d.u32(at + 4),
      offset: d.u64(at + 8),
      vaddr: d.u64(at + 16),
      filesz: d.u64(at + 32),
      memsz: d.u64(at + 40),
      align: d.u64(at + 48),
    };
  }
  return {
    type: d.u32(at),
    offset: BigInt(d.u32(at + 4)),
    vaddr: BigInt(d.u32(at + 8)),
    filesz: BigInt(d.u32(at + 16)),
    memsz: BigInt(d.u32(at + 20)),
    flags: d.u32(at + 24),
    align: BigInt(d.u32(at + 28)),
  };
}

/** Reads and validates the ELF header, the program headers and the section headers (with names). */
export async function readHeaders(src: FileSource): Promise<ElfHeaders> {
  if (src.size < 16) src.fail(`file is too small to be ELF (${src.size} bytes)`);
  const ident = await src.read(0, Math.min(src.size, EHDR_SIZE[64]), 'ELF header');
  if (ident.readUInt32BE(0) !== 0x7f454c46) {
    src.fail('not an ELF file (bad magic number)', 'expected an executable or a shared library');
  }
  const elfClass = ident[4];
  if (elfClass !== 1 && elfClass !== 2) src.fail(`unknown ELF class ${elfClass}`);
  const bits = elfClass === 1 ? 32 : 64;
  const data = ident[5];
  if (data !== 1 && data !== 2) src.fail(`unknown ELF data encoding ${data}`);
  const littleEndian = data === 1;
  if (ident[6] !== 1) src.fail(`unsupported ELF version ${ident[6]}`);
  if (ident.length < EHDR_SIZE[bits]) src.fail(`ELF header is truncated (${src.size} bytes)`);

  const d = new Decoder(ident, littleEndian, bits);
  const w = bits === 64 ? 8 : 4;
  const type = d.u16(16);
  const machine = d.u16(18);
  const entry = d.word(24);
  const phoff = d.word(24 + w);
  const shoff = d.word(24 + 2 * w);
  const rest = 24 + 3 * w + 4; // past e_flags
  const phentsize = d.u16(rest + 2);
  let phnum = d.u16(rest + 4);
  const shentsize = d.u16(rest + 6);
  let shnum = d.u16(rest + 8);
  let shstrndx = d.u16(rest + 10);

  // Section headers first: with extended numbering, section 0 holds the real counts.
  let rawSections: RawSection[] = [];
  if (shoff !== 0n) {
    if (shentsize < SHDR_SIZE[bits]) src.fail(`e_shentsize ${shentsize} is smaller than a section header`);
    if (shnum === 0) {
      const first = src.range(shoff, BigInt(shentsize), 'section header 0');
      const buf = await src.read(first.offset, first.size, 'section header 0');
      const zero = decodeSection(new Decoder(buf, littleEndian, bits), 0);
      if (zero.size > BigInt(MAX_SECTIONS)) src.fail(`too many sections (${zero.size})`);
      shnum = Number(zero.size);
    }
    if (shnum > MAX_SECTIONS) src.fail(`too many sections (${shnum})`);
    const table = src.range(shoff, BigInt(shnum) * BigInt(shentsize), 'section header table');
    const buf = new Decoder(await src.read(table.offset, table.size, 'section header table'), littleEndian, bits);
    for (let i = 0; i < shnum; i++) rawSections.push(decodeSection(buf, i * shentsize));
  }
  const zero = rawSections[0];
  if (shstrndx === SHN_XINDEX && zero !== undefined) shstrndx = zero.link;
  if (phnum === PN_XNUM && zero !== undefined) phnum = zero.info;

  let names: StringTable | undefined;
  if (rawSections.length > 0 && shstrndx !== 0) {
    const strtab = rawSections[shstrndx];
    if (strtab === undefined) src.fail(`e_shstrndx ${shstrndx} is out of range (${rawSections.length} sections)`);
    if (strtab.type === SHT_NOBITS) src.fail('the section name table has no data');
    const where = src.range(strtab.offset, strtab.size, 'section name table');
    names = new StringTable(src, where.offset, where.size, 'section name table');
  }
  const sections: ElfSection[] = [];
  for (const raw of rawSections) {
    const { nameOffset, ...rest } = raw;
    const name = names === undefined || nameOffset === 0 ? '' : await names.get(nameOffset);
    sections.push({ name, ...rest });
  }
  rawSections = [];

  const segments: ElfSegment[] = [];
  if (phoff !== 0n && phnum > 0) {
    if (phentsize < PHDR_SIZE[bits]) src.fail(`e_phentsize ${phentsize} is smaller than a program header`);
    if (phnum > MAX_SEGMENTS) src.fail(`too many program headers (${phnum})`);
    const table = src.range(phoff, BigInt(phnum) * BigInt(phentsize), 'program header table');
    const buf = new Decoder(await src.read(table.offset, table.size, 'program header table'), littleEndian, bits);
    for (let i = 0; i < phnum; i++) segments.push(decodeSegment(buf, i * phentsize));
  }

  return {
    bits,
    littleEndian,
    type: typeName(type),
    machine,
    machineName: machineName(machine, bits),
    entry,
    segments,
    sections,
  };
}
