// HPACK header blocks (RFC 7541) masked in place as their bytes go by: the value of every literal
// whose name is a credential header (or that the sender marked never-indexed) is overwritten, and
// the dynamic table is followed so that names given by index are known. Masked values keep their
// encoded length: raw strings become '*' bytes, Huffman strings 0xF9 bytes, which decode to '*'.
import { createRequire } from 'node:module';
import type * as StaticTable from 'hpack.js/lib/hpack/static-table.js';
import { isSensitiveHeader } from '../http/redact.js';
import { HUFFMAN_MASK_BYTE, HuffmanReader } from './huffman.js';
import { MASK_BYTE } from './types.js';
import type { RedactStats } from './types.js';

// Loaded with require: importing a CommonJS file as an ES module makes node run its CommonJS lexer
// over it (its two tables: 11-19 ms imported, ~4 ms required, in a fresh node; see huffman.ts).
const STATIC_TABLE = (createRequire(import.meta.url)('hpack.js/lib/hpack/static-table.js') as typeof StaticTable).table;

/** SETTINGS_HEADER_TABLE_SIZE until a size update says otherwise. */
const DEFAULT_TABLE_SIZE = 4096;
/** Name bytes kept to tell the header; longer names are no credential header. */
const MAX_NAME = 256;

const enum State {
  Op,
  Int,
  StrHead,
  Str,
}

type Representation = 'indexed' | 'incremental' | 'plain' | 'never' | 'size';

interface Entry {
  /** Undefined when it was added before the masker joined the stream. */
  name: string | undefined;
  size: number;
}

/**
 * Follows the header blocks of one direction of an HTTP/2 connection. With `tableKnown` false (the
 * capture joined the connection late), a name that refers to a table entry from before is unknown,
 * and its value is masked. Anything it cannot parse makes it blind: every later header byte is masked.
 */
export class HpackMasker {
  private state = State.Op;
  private rep: Representation = 'indexed';
  private intValue = 0;
  private intShift = 0;
  private intFor: 'index' | 'name' | 'value' = 'index';
  private name: string | undefined;
  private nameSize = 0;
  private strLeft = 0;
  private huffman: HuffmanReader | undefined;
  private rawName = '';
  /** Encoded bytes of the current string so far. */
  private strBytes = 0;
  private masking = false;
  private counted = false;
  private readonly dynamic: Entry[] = [];
  private tableSize = 0;
  private maxTableSize = DEFAULT_TABLE_SIZE;
  /** Could not follow the blocks: every header byte from now on is masked. */
  blind = false;

  constructor(
    private readonly stats: RedactStats,
    private readonly tableKnown: boolean,
  ) {}

  /** Masks the header block bytes buf[start, end) in place. */
  feed(buf: Buffer, start: number, end: number): void {
    for (let i = start; i < end; i++) {
      if (this.blind) {
        buf[i] = MASK_BYTE;
        this.stats.blindBytes++;
        continue;
      }
      this.byte(buf, i);
    }
  }

  /** A header block ended (END_HEADERS): it must end between two fields. */
  endBlock(): void {
    if (this.state !== State.Op) this.goBlind();
  }

  private goBlind(): void {
    if (!this.blind) this.stats.blindStreams++;
    this.blind = true;
  }

  private byte(buf: Buffer, i: number): void {
    const b = buf[i]!;
    switch (this.state) {
      case State.Op:
        if (b & 0x80) this.startOp('indexed', b, 7);
        else if (b & 0x40) this.startOp('incremental', b, 6);
        else if (b & 0x20) this.startOp('size', b, 5);
        else this.startOp(b & 0x10 ? 'never' : 'plain', b, 4);
        return;
      case State.Int:
        this.intValue += (b & 0x7f) * 2 ** this.intShift;
        this.intShift += 7;
        if (this.intShift > 28) return this.goBlind();
        if ((b & 0x80) === 0) this.intDone();
        return;
      case State.StrHead:
        this.huffman = b & 0x80 ? new HuffmanReader(this.intFor === 'name' ? MAX_NAME : 0) : undefined;
        this.intValue = b & 0x7f;
        this.intShift = 0;
        if (this.intValue === 0x7f) this.state = State.Int;
        else this.intDone();
        return;
      case State.Str:
        this.strByte(buf, i);
        return;
    }
  }

  /** A field representation starts: its first byte holds an integer of `prefix` bits (an index, or a size). */
  private startOp(rep: Representation, b: number, prefix: number): void {
    this.rep = rep;
    this.intFor = 'index';
    const mask = (1 << prefix) - 1;
    this.intValue = b & mask;
    this.intShift = 0;
    if (this.intValue === mask) this.state = State.Int;
    else this.intDone();
  }

  /** An integer is complete: what it means depends on what it was for. */
  private intDone(): void {
    const n = this.intValue;
    if (this.intFor === 'index') {
      this.state = State.Op;
      if (this.rep === 'indexed') {
        if (n === 0 || (this.tableKnown && n > STATIC_TABLE.length + this.dynamic.length)) this.goBlind();
        return;
      }
      if (this.rep === 'size') {
        this.maxTableSize = n;
        this.evict();
        return;
      }
      if (n === 0) {
        this.startString('name');
        return;
      }
      const known = this.lookup(n);
      if (known === null) return this.goBlind();
      this.name = known.name;
      this.nameSize = known.size;
      this.startString('value');
      return;
    }
    // A string's length.
    this.strLeft = n;
    this.state = State.Str;
    if (this.intFor === 'value') this.startValue();
    if (n === 0) this.strDone();
  }

  private startString(what: 'name' | 'value'): void {
    this.intFor = what;
    this.state = State.StrHead;
    this.strBytes = 0;
    if (what === 'name') this.rawName = '';
  }

  private startValue(): void {
    const name = this.name;
    this.masking = name === undefined || (!name.startsWith(':') && (this.rep === 'never' || isSensitiveHeader(name)));
    this.counted = false;
    this.strBytes = 0;
  }

  private strByte(buf: Buffer, i: number): void {
    const b = buf[i]!;
    this.strBytes++;
    if (this.huffman) this.huffman.push(b);
    if (this.intFor === 'name') {
      if (!this.huffman && this.rawName.length < MAX_NAME) this.rawName += String.fromCharCode(b);
    } else {
      if (this.masking) {
        buf[i] = this.huffman ? HUFFMAN_MASK_BYTE : MASK_BYTE;
        this.stats.bytes++;
        if (!this.counted) {
          this.counted = true;
          this.stats.values++;
        }
      }
    }
    if (--this.strLeft === 0) this.strDone();
  }

  private strDone(): void {
    if (this.huffman?.failed) return this.goBlind();
    const size = this.huffman ? this.huffman.symbols : this.strBytes;
    if (this.intFor === 'name') {
      // A name too long to keep is no credential header name we know: treated as unknown, masked.
      this.name = size > MAX_NAME ? undefined : this.huffman ? this.huffman.text : this.rawName;
      this.nameSize = size;
      this.startString('value');
      return;
    }
    // RFC 7541 4.1: an entry's size is its name and value lengths plus 32.
    if (this.rep === 'incremental') this.insert({ name: this.name, size: this.nameSize + size + 32 });
    this.state = State.Op;
    this.name = undefined;
  }

  /** The name of table entry `index` (1-based), undefined when unknown, null when it cannot exist. */
  private lookup(index: number): { name: string | undefined; size: number } | null {
    if (index <= STATIC_TABLE.length) {
      const name = STATIC_TABLE[index - 1]!.name;
      return { name, size: name.length };
    }
    const entry = this.dynamic[index - STATIC_TABLE.length - 1];
    if (entry !== undefined) return { name: entry.name, size: entry.name?.length ?? 0 };
    return this.tableKnown ? null : { name: undefined, size: 0 };
  }

  private insert(entry: Entry): void {
    this.dynamic.unshift(entry);
    this.tableSize += entry.size;
    this.evict();
  }

  private evict(): void {
    while (this.tableSize > this.maxTableSize && this.dynamic.length > 0) this.tableSize -= this.dynamic.pop()!.size;
  }
}
