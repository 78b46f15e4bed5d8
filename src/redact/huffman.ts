// HPACK's Huffman code (RFC 7541 Appendix B), read from hpack.js's table: a streaming decoder that
// counts or collects the symbols of a string whose bytes arrive in pieces.
import { createRequire } from 'node:module';
import type * as Huffman from 'hpack.js/lib/hpack/huffman.js';

// Loaded with require, not imported: node would run its CommonJS lexer over the file at every start.
const { encode } = createRequire(import.meta.url)('hpack.js/lib/hpack/huffman.js') as typeof Huffman;

const EOS = 256;

/** For each code length, code → symbol. */
const BY_LENGTH: Map<number, number>[] = [];
for (let symbol = 0; symbol < encode.length; symbol++) {
  const [bits, code] = encode[symbol]!;
  (BY_LENGTH[bits] ??= new Map()).set(code, symbol);
}
const MAX_BITS = BY_LENGTH.length - 1;

/** The byte whose 8 bits are the code of '*' (11111001): a masked Huffman string is N of them, N '*'. */
export const HUFFMAN_MASK_BYTE = 0xf9;

/**
 * Decodes one Huffman-coded string fed in pieces. `symbols` counts what was decoded; `text` holds it
 * when asked to keep it (names), up to `keep` symbols. `failed` is set on a code no symbol has (EOS).
 */
export class HuffmanReader {
  symbols = 0;
  failed = false;
  private code = 0;
  private bits = 0;
  private readonly chars: number[] = [];

  constructor(private readonly keep = 0) {}

  /** Decodes one more byte of the string. */
  push(byte: number): void {
    for (let i = 7; i >= 0; i--) {
      this.code = ((this.code << 1) | ((byte >> i) & 1)) >>> 0;
      this.bits++;
      const symbol = BY_LENGTH[this.bits]?.get(this.code);
      if (symbol !== undefined) {
        if (symbol === EOS) this.failed = true;
        else if (this.chars.length < this.keep) this.chars.push(symbol);
        this.symbols++;
        this.code = 0;
        this.bits = 0;
      } else if (this.bits > MAX_BITS) {
        this.failed = true;
        this.code = 0;
        this.bits = 0;
      }
    }
  }

  /** What was decoded and kept, as latin1 text. */
  get text(): string {
    return String.fromCharCode(...this.chars);
  }
}
