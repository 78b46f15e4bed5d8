import type { FileSource } from './reader.js';

/** Longest name we accept from a string table; longer means the table is corrupt. */
export const MAX_STRING = 64 * 1024;
const PAGE = 4096;
const MAX_CACHED_PAGES = 256;
/** Largest table `hold` reads whole; a larger one is read page by page. */
export const MAX_WHOLE_TABLE = 32 * 1024 * 1024;

/** A NUL-terminated string table (.dynstr, .strtab, .shstrtab), read lazily in cached pages. */
export class StringTable {
  private readonly pages = new Map<number, Buffer>();
  private readonly pending = new Map<number, Promise<Buffer>>();
  private whole?: Buffer;
  private holders = 0;

  /** `offset`/`size` must already be checked against the file size. */
  constructor(
    private readonly src: FileSource,
    private readonly offset: number,
    readonly size: number,
    readonly name: string,
  ) {}

  /**
   * Runs `fn` with the whole table in memory (when it is at most MAX_WHOLE_TABLE bytes): walking a
   * symbol table touches its names in no useful order, which would thrash the page cache.
   */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    if (this.size > MAX_WHOLE_TABLE) return fn();
    if (this.whole === undefined) {
      const whole = await this.src.read(this.offset, this.size, this.name);
      this.whole ??= whole;
    }
    this.holders++;
    try {
      return await fn();
    } finally {
      if (--this.holders === 0) this.whole = undefined;
    }
  }

  /** The whole table while `hold` keeps it in memory, else undefined. */
  held(): Buffer | undefined {
    return this.whole;
  }

  private async page(index: number): Promise<Buffer> {
    if (this.whole !== undefined) {
      const start = index * PAGE;
      return this.whole.subarray(start, Math.min(this.size, start + PAGE));
    }
    const cached = this.pages.get(index);
    if (cached !== undefined) return cached;
    let promise = this.pending.get(index);
    if (promise === undefined) {
      const start = index * PAGE;
      promise = this.src.read(this.offset + start, Math.min(PAGE, this.size - start), this.name);
      this.pending.set(index, promise);
    }
    try {
      const page = await promise;
      if (this.pages.size >= MAX_CACHED_PAGES) {
        const oldest = this.pages.keys().next().value;
        if (oldest !== undefined) this.pages.delete(oldest);
      }
      this.pages.set(index, page);
      return page;
    } finally {
      this.pending.delete(index);
    }
  }

  private checkOffset(offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) {
      this.src.corrupt(`string offset ${offset} is outside ${this.name} (${this.size} bytes)`);
    }
  }

  /** The bytes of the string at `offset` if they are in memory already: a cheap, synchronous path. */
  peek(offset: number): Buffer | undefined {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) return undefined;
    if (this.whole !== undefined) {
      const nul = this.whole.indexOf(0, offset);
      return nul === -1 || nul - offset > MAX_STRING ? undefined : this.whole.subarray(offset, nul);
    }
    const index = Math.floor(offset / PAGE);
    const page = this.pages.get(index);
    if (page === undefined) return undefined;
    const from = offset - index * PAGE;
    const nul = page.indexOf(0, from);
    return nul === -1 ? undefined : page.subarray(from, nul);
  }

  /** The byte at `offset` if it is in memory already (the table held whole, or its page cached). */
  byteAt(offset: number): number | undefined {
    if (this.whole !== undefined) return this.whole[offset];
    const index = Math.floor(offset / PAGE);
    return this.pages.get(index)?.[offset - index * PAGE];
  }

  /**
   * Which of `wanted` the string at `offset` is (optionally followed by '@' and a version when
   * `versioned`): its index, -1 for none, or undefined when those bytes are not in memory. Synchronous
   * and allocation-free, for walking whole symbol tables inside `hold`.
   */
  matchAny(offset: number, wanted: readonly Buffer[], versioned: boolean): number | undefined {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) return undefined;
    let buf: Buffer | undefined = this.whole;
    let from = offset;
    if (buf === undefined) {
      const index = Math.floor(offset / PAGE);
      buf = this.pages.get(index);
      if (buf === undefined) return undefined;
      from = offset - index * PAGE;
    }
    for (let i = 0; i < wanted.length; i++) {
      const want = wanted[i]!;
      const end = from + want.length;
      if (end >= buf.length) {
        if (buf === this.whole) continue;
        return undefined;
      }
      const next = buf[end];
      if (next !== 0 && !(versioned && next === 0x40)) continue;
      if (buf.compare(want, 0, want.length, from, end) === 0) return i;
    }
    return -1;
  }

  /** The string starting at `offset`, decoded as UTF-8. */
  async get(offset: number): Promise<string> {
    return (await this.bytes(offset)).toString('utf8');
  }

  /** The bytes of the string starting at `offset`, without its terminator. */
  async bytes(offset: number): Promise<Buffer> {
    this.checkOffset(offset);
    const parts: Buffer[] = [];
    let length = 0;
    let at = offset;
    for (;;) {
      if (at >= this.size) this.src.corrupt(`unterminated string at offset ${offset} in ${this.name}`);
      const index = Math.floor(at / PAGE);
      const page = this.pages.get(index) ?? (await this.page(index));
      const from = at - index * PAGE;
      const nul = page.indexOf(0, from);
      const end = nul === -1 ? page.length : nul;
      parts.push(page.subarray(from, end));
      length += end - from;
      if (length > MAX_STRING) {
        this.src.corrupt(`string at offset ${offset} in ${this.name} is longer than ${MAX_STRING} bytes`);
      }
      if (nul !== -1) break;
      at = (index + 1) * PAGE;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}
