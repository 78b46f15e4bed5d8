import type { ElfSection } from './header.js';
import { Decoder } from './reader.js';
import type { FileSource } from './reader.js';

/** A symbol hash table over .dynsym: finds the few entries a name can be at without reading the table. */
export interface SymbolHashTable {
  /** Indexes of .dynsym entries whose name may be `name` (UTF-8 bytes); callers compare the names. */
  candidates(name: Uint8Array): Promise<number[]>;
  /** .dynsym entries below this index are not in the table (the GNU table starts at `symoffset`). */
  readonly firstHashed: number;
}

/** The GNU hash function (DJB: h = h * 33 + c), as used by .gnu.hash. */
export function gnuHash(name: Uint8Array): number {
  let h = 5381;
  for (const c of name) h = (h * 33 + c) >>> 0;
  return h;
}

const CHAIN_CHUNK = 64;

interface GnuHashHeader {
  nbuckets: number;
  symoffset: number;
  bloomSize: number;
  bloomShift: number;
  /** Chain entries present in the section. */
  chainCount: number;
  /** Entries in the .dynsym the table belongs to. */
  symCount: number;
}

/**
 * `.gnu.hash`: header (nbuckets, symoffset, bloom_size, bloom_shift: u32 each), a Bloom filter of
 * bloom_size address-sized words, nbuckets u32 buckets, then one u32 chain value per symbol from
 * symoffset on. A chain value is the symbol's hash with bit 0 set on the last symbol of a bucket.
 */
export class GnuHashTable implements SymbolHashTable {
  readonly firstHashed: number;
  private readonly nbuckets: number;
  private readonly bloomSize: number;
  private readonly bloomShift: number;
  private readonly chainCount: number;
  private readonly symCount: number;

  private constructor(
    private readonly src: FileSource,
    private readonly bits: 32 | 64,
    private readonly littleEndian: boolean,
    private readonly offset: number,
    header: GnuHashHeader,
  ) {
    this.firstHashed = header.symoffset;
    this.nbuckets = header.nbuckets;
    this.bloomSize = header.bloomSize;
    this.bloomShift = header.bloomShift;
    this.chainCount = header.chainCount;
    this.symCount = header.symCount;
  }

  /** Reads and checks the header of the .gnu.hash section for a .dynsym of `symCount` entries. */
  static async load(
    src: FileSource,
    bits: 32 | 64,
    littleEndian: boolean,
    section: ElfSection,
    symCount: number,
  ): Promise<GnuHashTable> {
    const where = src.range(section.offset, section.size, '.gnu.hash');
    if (where.size < 16) src.corrupt(`.gnu.hash is too small (${where.size} bytes)`);
    const d = new Decoder(await src.read(where.offset, 16, '.gnu.hash header'), littleEndian, bits);
    const nbuckets = d.u32(0);
    const symoffset = d.u32(4);
    const bloomSize = d.u32(8);
    const bloomShift = d.u32(12);
    const tables = 16 + bloomSize * (bits / 8) + nbuckets * 4;
    if (tables > where.size) src.corrupt('.gnu.hash buckets run past the end of the section');
    if (symoffset > symCount) src.corrupt(`.gnu.hash symoffset ${symoffset} is beyond .dynsym (${symCount} entries)`);
    if (bloomShift >= 32) src.corrupt(`.gnu.hash has an invalid bloom shift ${bloomShift}`);
    const chainCount = Math.floor((where.size - tables) / 4);
    return new GnuHashTable(src, bits, littleEndian, where.offset, {
      nbuckets,
      symoffset,
      bloomSize,
      bloomShift,
      chainCount,
      symCount,
    });
  }

  async candidates(name: Uint8Array): Promise<number[]> {
    if (this.nbuckets === 0) return [];
    const h = gnuHash(name);
    const wordBytes = this.bits / 8;
    if (this.bloomSize > 0) {
      // Two bits per name must be set in one Bloom word; otherwise the name is certainly absent.
      const wordIndex = Math.floor(h / this.bits) % this.bloomSize;
      const word = await this.read(16 + wordIndex * wordBytes, wordBytes, 'bloom filter');
      const value = word.word(0);
      const bit1 = BigInt(h % this.bits);
      const bit2 = BigInt((h >>> this.bloomShift) % this.bits);
      if (((value >> bit1) & (value >> bit2) & 1n) === 0n) return [];
    }
    const bucketsAt = 16 + this.bloomSize * wordBytes;
    const chainAt = bucketsAt + this.nbuckets * 4;
    let index = (await this.read(bucketsAt + (h % this.nbuckets) * 4, 4, 'bucket')).u32(0);
    if (index === 0) return [];
    const out: number[] = [];
    // Chains never loop: each step moves to the next symbol, bounded by the end of .dynsym.
    for (;;) {
      const chainIndex = index - this.firstHashed;
      if (index < this.firstHashed || index >= this.symCount || chainIndex >= this.chainCount) {
        this.src.corrupt(`.gnu.hash chain reaches symbol ${index}, outside .dynsym (${this.symCount} entries)`);
      }
      const n = Math.min(CHAIN_CHUNK, this.chainCount - chainIndex, this.symCount - index);
      const chunk = await this.read(chainAt + chainIndex * 4, n * 4, 'chain');
      for (let i = 0; i < n; i++, index++) {
        const value = chunk.u32(i * 4);
        if ((value | 1) === (h | 1)) out.push(index);
        if ((value & 1) !== 0) return out;
      }
    }
  }

  private async read(at: number, length: number, what: string): Promise<Decoder> {
    const buf = await this.src.read(this.offset + at, length, `.gnu.hash ${what}`);
    return new Decoder(buf, this.littleEndian, this.bits);
  }
}
