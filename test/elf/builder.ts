// A tiny ELF writer for tests: small but valid shared objects in any class and byte order, with
// .dynsym/.symtab, GNU versions, a GNU or System V hash table, .dynamic, a build-ID note and two
// PT_LOAD segments whose address-to-offset deltas differ.

/** One symbol to put in the sample. `offset` is relative to the start of .text (or .data for objects). */
export interface SampleSymbol {
  name: string;
  kind: 'func' | 'object';
  binding: 'global' | 'weak' | 'local';
  offset: number;
  size: number;
  /** In .dynsym (and .symtab); locals are never dynamic. */
  dynamic: boolean;
  /** An undefined reference (st_shndx = 0, value 0). */
  undefined?: boolean;
  /** GNU version name (must be listed in `versions`); hidden gives `name@VER`. */
  version?: string;
  hidden?: boolean;
}

/** What to build. */
export interface SampleOptions {
  bits: 32 | 64;
  littleEndian: boolean;
  machine: number;
  symbols: readonly SampleSymbol[];
  /** Version definitions (indexes 2, 3, ... in this order); index 1 is the soname. */
  versions: readonly string[];
  needed: readonly string[];
  buildId: Buffer;
  hash: 'gnu' | 'sysv' | 'none';
  /** Size of .text (zeros except where `extra` says). */
  textSize: number;
  /** An extra PROGBITS section `.rodata` with these bytes (not loaded). */
  rodata?: Buffer;
  /** Use e_shnum = 0 and e_shstrndx = SHN_XINDEX, with the real values in section 0. */
  extendedNumbering?: boolean;
}

/** The built file plus where things ended up, for assertions and targeted corruption. */
export interface SampleElf {
  bytes: Buffer;
  /** File offset of each section by name. */
  offsets: Map<string, number>;
  /** Virtual address of .text and of .data, and the file offset of .text. */
  textAddr: bigint;
  textOffset: number;
  dataAddr: bigint;
  /** Load segment bases: vaddr = base + file offset, different per segment. */
  firstBase: bigint;
  secondBase: bigint;
  /** .dynsym order of the dynamic symbols (index 1 = first element). */
  dynsymOrder: readonly SampleSymbol[];
}

const SONAME = 'libsample.so.1';

class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  constructor(
    readonly littleEndian: boolean,
    readonly bits: 32 | 64,
  ) {}
  bytes(b: Buffer): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }
  u8(v: number): this {
    return this.bytes(Buffer.from([v & 0xff]));
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    if (this.littleEndian) b.writeUInt16LE(v);
    else b.writeUInt16BE(v);
    return this.bytes(b);
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    if (this.littleEndian) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return this.bytes(b);
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    if (this.littleEndian) b.writeBigUInt64LE(v);
    else b.writeBigUInt64BE(v);
    return this.bytes(b);
  }
  /** Address/offset/size-sized field. */
  word(v: bigint | number): this {
    return this.bits === 64 ? this.u64(BigInt(v)) : this.u32(Number(v));
  }
  pad(align: number): this {
    const extra = (align - (this.length % align)) % align;
    return this.bytes(Buffer.alloc(extra));
  }
  done(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

class Strings {
  private readonly map = new Map<string, number>();
  private readonly parts: Buffer[] = [Buffer.alloc(1)];
  private size = 1;
  add(s: string): number {
    if (s === '') return 0;
    const known = this.map.get(s);
    if (known !== undefined) return known;
    const at = this.size;
    const b = Buffer.from(`${s}\0`, 'utf8');
    this.parts.push(b);
    this.size += b.length;
    this.map.set(s, at);
    return at;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** DJB hash as in .gnu.hash (written independently of src/elf for the test). */
function djb(name: string): number {
  let h = 5381;
  for (const c of Buffer.from(name, 'utf8')) h = (Math.imul(h, 33) + c) >>> 0;
  return h;
}

/** System V ELF hash. */
function elfHash(name: string): number {
  let h = 0;
  for (const c of Buffer.from(name, 'utf8')) {
    h = ((h << 4) >>> 0) + c;
    const g = h & 0xf0000000;
    if (g !== 0) h ^= g >>> 24;
    h = (h & ~g) >>> 0;
  }
  return h;
}

const STT = { object: 1, func: 2 } as const;
const STB = { local: 0, global: 1, weak: 2 } as const;
const NBUCKETS = 3;

/** Builds a sample ET_DYN file as described by `opts`. */
export function buildElf(opts: SampleOptions): SampleElf {
  const { bits, littleEndian } = opts;
  const W = bits / 8;
  const symSize = bits === 64 ? 24 : 16;
  const shdrSize = bits === 64 ? 64 : 40;
  const phdrSize = bits === 64 ? 56 : 32;
  const ehdrSize = bits === 64 ? 64 : 52;
  const firstBase = 0x10000n;
  const secondBase = 0x30000n;
  const w = (): Writer => new Writer(littleEndian, bits);

  // .dynsym order: undefined first (not hashed), then defined symbols grouped by GNU hash bucket.
  const dynamic = opts.symbols.filter((s) => s.dynamic);
  const unhashed = dynamic.filter((s) => s.undefined === true);
  let hashed = dynamic.filter((s) => s.undefined !== true);
  if (opts.hash === 'gnu') hashed = [...hashed].sort((a, b) => (djb(a.name) % NBUCKETS) - (djb(b.name) % NBUCKETS));
  const dynsymOrder = [...unhashed, ...hashed];
  const symoffset = 1 + unhashed.length;

  const dynstr = new Strings();
  dynstr.add(SONAME);
  for (const n of opts.needed) dynstr.add(n);
  for (const v of opts.versions) dynstr.add(v);
  const dynNames = dynsymOrder.map((s) => dynstr.add(s.name));
  const dynstrBytes = dynstr.done();

  // Fixed layout: each piece is 8-aligned. Addresses are filled in once offsets are known.
  const phnum = 4;
  const offsets = new Map<string, number>();
  let cursor = ehdrSize + phnum * phdrSize;
  const place = (name: string, size: number, align = 8): number => {
    cursor = Math.ceil(cursor / align) * align;
    const at = cursor;
    offsets.set(name, at);
    cursor += size;
    return at;
  };

  // Note.
  const note = w()
    .u32(4)
    .u32(opts.buildId.length)
    .u32(3)
    .bytes(Buffer.from('GNU\0'))
    .bytes(opts.buildId)
    .pad(4)
    .done();
  place('.note.gnu.build-id', note.length, 4);

  // Hash table.
  let hashBytes: Buffer | undefined;
  if (opts.hash === 'gnu') {
    const bloomShift = 6;
    let bloom = 0n;
    const mask = bits === 64 ? 0xffffffffffffffffn : 0xffffffffn;
    const buckets = new Array<number>(NBUCKETS).fill(0);
    const chain: number[] = [];
    hashed.forEach((s, i) => {
      const h = djb(s.name);
      bloom |= 1n << BigInt(h % bits);
      bloom |= 1n << BigInt((h >>> bloomShift) % bits);
      const b = h % NBUCKETS;
      if (buckets[b] === 0) buckets[b] = symoffset + i;
      const next = hashed[i + 1];
      const last = next === undefined || djb(next.name) % NBUCKETS !== b;
      chain.push(((h & ~1) | (last ? 1 : 0)) >>> 0);
    });
    const hw = w().u32(NBUCKETS).u32(symoffset).u32(1).u32(bloomShift).word(bloom & mask);
    for (const b of buckets) hw.u32(b);
    for (const c of chain) hw.u32(c);
    hashBytes = hw.done();
    place('.gnu.hash', hashBytes.length);
  } else if (opts.hash === 'sysv') {
    const nchain = 1 + dynsymOrder.length;
    const buckets = new Array<number>(NBUCKETS).fill(0);
    const chains = new Array<number>(nchain).fill(0);
    dynsymOrder.forEach((s, i) => {
      const index = i + 1;
      const b = elfHash(s.name) % NBUCKETS;
      // Prepend to the bucket's chain.
      chains[index] = buckets[b]!;
      buckets[b] = index;
    });
    const hw = w().u32(NBUCKETS).u32(nchain);
    for (const b of buckets) hw.u32(b);
    for (const c of chains) hw.u32(c);
    hashBytes = hw.done();
    place('.hash', hashBytes.length);
  }

  const dynsymCount = 1 + dynsymOrder.length;
  place('.dynsym', dynsymCount * symSize);
  place('.dynstr', dynstrBytes.length, 1);
  place('.gnu.version', dynsymCount * 2, 2);
  const verdefCount = 1 + opts.versions.length;
  place('.gnu.version_d', verdefCount * 28, 4);
  const dynEntries = opts.needed.length + (opts.hash === 'none' ? 0 : 1) + 9;
  place('.dynamic', dynEntries * 2 * W);
  const firstEnd = cursor;

  // Second segment: .text and .data, loaded at a different base.
  const textOffset = place('.text', opts.textSize, 16);
  const dataSize = 64;
  place('.data', dataSize);
  const secondEnd = cursor;
  const rodata = opts.rodata;
  if (rodata !== undefined) place('.rodata', rodata.length, 1);

  const addrOf = (name: string): bigint => {
    const off = BigInt(offsets.get(name)!);
    return (offsets.get(name)! >= textOffset ? secondBase : firstBase) + off;
  };
  const textAddr = addrOf('.text');
  const dataAddr = addrOf('.data');
  const valueOf = (s: SampleSymbol): bigint =>
    s.undefined === true ? 0n : (s.kind === 'func' ? textAddr : dataAddr) + BigInt(s.offset);

  // Section indexes (fixed order below).
  const sectionNames = [
    '',
    '.note.gnu.build-id',
    ...(opts.hash === 'gnu' ? ['.gnu.hash'] : opts.hash === 'sysv' ? ['.hash'] : []),
    '.dynsym',
    '.dynstr',
    '.gnu.version',
    '.gnu.version_d',
    '.dynamic',
    '.text',
    '.data',
    ...(rodata !== undefined ? ['.rodata'] : []),
    '.symtab',
    '.strtab',
    '.shstrtab',
  ];
  const idx = (name: string): number => sectionNames.indexOf(name);

  const symbol = (sw: Writer, name: number, s: SampleSymbol | undefined): void => {
    const info = s === undefined ? 0 : (STB[s.binding] << 4) | STT[s.kind];
    const shndx = s === undefined || s.undefined === true ? 0 : idx(s.kind === 'func' ? '.text' : '.data');
    const value = s === undefined ? 0n : valueOf(s);
    const size = s === undefined ? 0 : s.size;
    if (bits === 64) sw.u32(name).u8(info).u8(0).u16(shndx).u64(value).u64(BigInt(size));
    else sw.u32(name).u32(Number(value)).u32(size).u8(info).u8(0).u16(shndx);
  };

  const dynsymW = w();
  symbol(dynsymW, 0, undefined);
  dynsymOrder.forEach((s, i) => symbol(dynsymW, dynNames[i]!, s));

  const versymW = w().u16(0);
  for (const s of dynsymOrder) {
    const v = s.version === undefined ? 1 : 2 + opts.versions.indexOf(s.version);
    versymW.u16(v | (s.hidden === true ? 0x8000 : 0));
  }

  // Verdef entries (20 bytes) each followed by one verdaux (8 bytes): 28 bytes apart.
  const verdefW = w();
  [SONAME, ...opts.versions].forEach((name, i) => {
    const last = i === opts.versions.length;
    verdefW
      .u16(1)
      .u16(i === 0 ? 1 : 0)
      .u16(i + 1)
      .u16(1)
      .u32(elfHash(name))
      .u32(20)
      .u32(last ? 0 : 28);
    verdefW.u32(dynstr.add(name)).u32(0);
  });

  const dynamicW = w();
  for (const n of opts.needed) dynamicW.word(1).word(dynstr.add(n)); // DT_NEEDED
  dynamicW.word(14).word(dynstr.add(SONAME)); // DT_SONAME
  if (opts.hash === 'gnu') dynamicW.word(0x6ffffef5).word(addrOf('.gnu.hash')); // DT_GNU_HASH
  if (opts.hash === 'sysv') dynamicW.word(4).word(addrOf('.hash')); // DT_HASH
  dynamicW.word(5).word(addrOf('.dynstr')); // DT_STRTAB
  dynamicW.word(6).word(addrOf('.dynsym')); // DT_SYMTAB
  dynamicW.word(10).word(dynstrBytes.length); // DT_STRSZ
  dynamicW.word(11).word(symSize); // DT_SYMENT
  dynamicW.word(0x6ffffff0).word(addrOf('.gnu.version')); // DT_VERSYM
  dynamicW.word(0x6ffffffc).word(addrOf('.gnu.version_d')); // DT_VERDEF
  dynamicW.word(0x6ffffffd).word(verdefCount); // DT_VERDEFNUM
  dynamicW.word(0).word(0); // DT_NULL

  // .symtab: locals first (sh_info = first global), all symbols, plain names.
  const strtab = new Strings();
  const all = [...opts.symbols].sort((a, b) => Number(a.binding !== 'local') - Number(b.binding !== 'local'));
  const symtabW = w();
  symbol(symtabW, 0, undefined);
  for (const s of all) symbol(symtabW, strtab.add(s.name), s);
  const firstGlobal = 1 + all.filter((s) => s.binding === 'local').length;
  const strtabBytes = strtab.done();
  const symtabBytes = symtabW.done();
  place('.symtab', symtabBytes.length);
  place('.strtab', strtabBytes.length, 1);

  const shstr = new Strings();
  const shNames = sectionNames.map((n) => shstr.add(n));
  const shstrBytes = shstr.done();
  place('.shstrtab', shstrBytes.length, 1);
  cursor = Math.ceil(cursor / 8) * 8;
  const shoff = cursor;

  const contents = new Map<string, Buffer>([
    ['.note.gnu.build-id', note],
    ['.dynsym', dynsymW.done()],
    ['.dynstr', dynstrBytes],
    ['.gnu.version', versymW.done()],
    ['.gnu.version_d', verdefW.done()],
    ['.dynamic', dynamicW.done()],
    ['.text', Buffer.alloc(opts.textSize, 0xcc)],
    ['.data', Buffer.alloc(dataSize)],
    ['.symtab', symtabBytes],
    ['.strtab', strtabBytes],
    ['.shstrtab', shstrBytes],
  ]);
  if (hashBytes !== undefined) contents.set(opts.hash === 'gnu' ? '.gnu.hash' : '.hash', hashBytes);
  if (rodata !== undefined) contents.set('.rodata', rodata);

  // Section headers.
  const SHT: Record<string, number> = {
    '.note.gnu.build-id': 7,
    '.gnu.hash': 0x6ffffff6,
    '.hash': 5,
    '.dynsym': 11,
    '.dynstr': 3,
    '.gnu.version': 0x6fffffff,
    '.gnu.version_d': 0x6ffffffd,
    '.dynamic': 6,
    '.text': 1,
    '.data': 1,
    '.rodata': 1,
    '.symtab': 2,
    '.strtab': 3,
    '.shstrtab': 3,
  };
  const shw = w();
  sectionNames.forEach((name, i) => {
    if (i === 0) {
      // Section 0: all zero, except the real counts under extended numbering.
      const ext = opts.extendedNumbering === true;
      shw.u32(0).u32(0).word(0).word(0).word(0);
      shw.word(ext ? sectionNames.length : 0);
      shw.u32(ext ? idx('.shstrtab') : 0).u32(0);
      shw.word(0).word(0);
      return;
    }
    const data = contents.get(name)!;
    const alloc = !['.symtab', '.strtab', '.shstrtab', '.rodata'].includes(name);
    const flags = alloc ? (name === '.text' ? 6 : name === '.data' || name === '.dynamic' ? 3 : 2) : 0;
    let link = 0;
    let info = 0;
    let entsize = 0;
    if (['.gnu.hash', '.hash', '.gnu.version'].includes(name)) link = idx('.dynsym');
    if (['.dynsym', '.gnu.version_d', '.dynamic'].includes(name)) link = idx('.dynstr');
    if (name === '.symtab') link = idx('.strtab');
    if (name === '.dynsym') info = 1;
    if (name === '.symtab') info = firstGlobal;
    if (name === '.gnu.version_d') info = verdefCount;
    if (name === '.dynsym' || name === '.symtab') entsize = symSize;
    if (name === '.gnu.version') entsize = 2;
    if (name === '.hash') entsize = 4;
    if (name === '.dynamic') entsize = 2 * W;
    const align = name === '.gnu.version' ? 2 : name === '.note.gnu.build-id' ? 4 : name.endsWith('strtab') || name === '.dynstr' || name === '.rodata' ? 1 : 8;
    shw.u32(shNames[i]!).u32(SHT[name]!);
    shw.word(flags).word(alloc ? addrOf(name) : 0n).word(offsets.get(name)!).word(data.length);
    shw.u32(link).u32(info).word(align).word(entsize);
  });
  const shdrs = shw.done();

  // Program headers: two PT_LOADs with different deltas, PT_DYNAMIC, PT_NOTE.
  const phw = w();
  const phdr = (type: number, flags: number, offset: number, vaddr: bigint, size: number, align: number): void => {
    if (bits === 64) {
      phw.u32(type).u32(flags).u64(BigInt(offset)).u64(vaddr).u64(vaddr).u64(BigInt(size)).u64(BigInt(size)).u64(BigInt(align));
    } else {
      phw.u32(type).u32(offset).u32(Number(vaddr)).u32(Number(vaddr)).u32(size).u32(size).u32(flags).u32(align);
    }
  };
  phdr(1, 4, 0, firstBase, firstEnd, 0x1000);
  phdr(1, 5, textOffset, secondBase + BigInt(textOffset), secondEnd - textOffset, 0x1000);
  phdr(2, 6, offsets.get('.dynamic')!, addrOf('.dynamic'), contents.get('.dynamic')!.length, W);
  phdr(4, 4, offsets.get('.note.gnu.build-id')!, addrOf('.note.gnu.build-id'), note.length, 4);
  const phdrs = phw.done();

  // ELF header.
  const ext = opts.extendedNumbering === true;
  const eh = w()
    .bytes(Buffer.from([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, littleEndian ? 1 : 2, 1, 0]))
    .bytes(Buffer.alloc(8))
    .u16(3)
    .u16(opts.machine)
    .u32(1)
    .word(textAddr)
    .word(ehdrSize)
    .word(shoff)
    .u32(0)
    .u16(ehdrSize)
    .u16(phdrSize)
    .u16(phnum)
    .u16(shdrSize)
    .u16(ext ? 0 : sectionNames.length)
    .u16(ext ? 0xffff : idx('.shstrtab'))
    .done();

  const file = Buffer.alloc(shoff + shdrs.length);
  eh.copy(file, 0);
  phdrs.copy(file, ehdrSize);
  for (const [name, data] of contents) data.copy(file, offsets.get(name)!);
  shdrs.copy(file, shoff);
  return { bytes: file, offsets, textAddr, textOffset, dataAddr, firstBase, secondBase, dynsymOrder };
}
