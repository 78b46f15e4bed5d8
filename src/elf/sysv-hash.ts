import type { ElfSection } from './header.js';
import { Decoder } from './reader.js';
import type { FileSource } from './reader.js';
import type { SymbolHashTable } from './gnu-hash.js';

/** The System V ELF hash function, as used by .hash. */
export function sysvHash(name: Uint8Array): number {
  let h = 0;
  for (const c of name) {
    h = ((h << 4) + c) >>> 0;
    const g = h & 0xf0000000;
    if (g !== 0) h = (h ^ (g >>> 24)) >>> 0;
    h = (h & ~g) >>> 0;
  }
  return h;
}

/**
 * `.hash`: nbucket, nchain, nbucket bucket entries, nchain chain entries (u32 each; 64-bit on s390x,
 * which sh_entsize says). bucket[h % nbucket] is the first symbol, chain[i] the next; 0 ends the chain.
 */
export class SysvHashTable implements SymbolHashTable {
  readonly firstHashed = 0;

  private constructor(
    private readonly src: FileSource,
    private readonly littleEndian: boolean,
    private readonly offset: number,
    private readonly entry: 4 | 8,
    private readonly nbucket: number,
    private readonly nchain: number,
  ) {}

  /** Reads and checks the header of a .hash section for a .dynsym of `symCount` entries. */
  static async load(
    src: FileSource,
    littleEndian: boolean,
    section: ElfSection,
    symCount: number,
  ): Promise<SysvHashTable> {
    const where = src.range(section.offset, section.size, '.hash');
    const entry = section.entsize === 8n ? 8 : 4;
    if (where.size < 2 * entry) src.corrupt(`.hash is too small (${where.size} bytes)`);
    const head = new Decoder(await src.read(where.offset, 2 * entry, '.hash header'), littleEndian, 64);
    const nbucket = entry === 8 ? Number(head.u64(0) & 0xffffffffn) : head.u32(0);
    const nchain = entry === 8 ? Number(head.u64(8) & 0xffffffffn) : head.u32(4);
    if ((2 + nbucket + nchain) * entry > where.size) src.corrupt('.hash tables run past the end of the section');
    return new SysvHashTable(src, littleEndian, where.offset, entry, nbucket, Math.min(nchain, symCount));
  }

  async candidates(name: Uint8Array): Promise<number[]> {
    if (this.nbucket === 0) return [];
    const out: number[] = [];
    let index = await this.at(2 + (sysvHash(name) % this.nbucket));
    // A corrupt chain can loop; no honest chain is longer than the symbol count.
    while (index !== 0) {
      if (index >= this.nchain) this.src.corrupt(`.hash chain reaches symbol ${index}, outside .dynsym`);
      if (out.length >= this.nchain) this.src.corrupt('.hash chain loops');
      out.push(index);
      index = await this.at(2 + this.nbucket + index);
    }
    return out;
  }

  private async at(slot: number): Promise<number> {
    const buf = await this.src.read(this.offset + slot * this.entry, this.entry, '.hash');
    const d = new Decoder(buf, this.littleEndian, 64);
    return this.entry === 8 ? Number(d.u64(0) & 0xffffffffn) : d.u32(0);
  }
}
