// The classic 16-bytes-a-line hex dump (as `hexdump -C` prints it), written byte by byte from
// lookup tables straight into the output batch.

import { GrowableBytes } from './batch.js';
import type { ByteTarget } from './batch.js';

const DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const SPACE = 0x20;
const BAR = 0x7c;
const DOT = 0x2e;
const NEWLINE = 0x0a;
/** `00000000  ` + 16 × `xx ` + 1 + ` |` + 16 + `|\n`. */
const LINE_BYTES = 10 + 48 + 1 + 2 + 16 + 2;

/**
 * Appends `data[0, end)` as hex dump lines, each ending with a newline:
 * `00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|`.
 */
export function hexdumpInto(target: ByteTarget, data: Buffer, end = data.length): void {
  const lines = Math.ceil(end / 16);
  target.reserve(lines * LINE_BYTES);
  const buf = target.buf;
  let pos = target.pos;
  for (let line = 0; line < end; line += 16) {
    for (let shift = 28; shift >= 0; shift -= 4) buf[pos++] = DIGITS[(line >>> shift) & 0xf]!;
    buf[pos++] = SPACE;
    buf[pos++] = SPACE;
    const stop = Math.min(line + 16, end);
    for (let i = line; i < line + 16; i++) {
      if (i < stop) {
        const b = data[i]!;
        buf[pos++] = DIGITS[b >>> 4]!;
        buf[pos++] = DIGITS[b & 0xf]!;
      } else {
        // A short last line: blanks keep the ASCII column in place.
        buf[pos++] = SPACE;
        buf[pos++] = SPACE;
      }
      buf[pos++] = SPACE;
      if (i - line === 7) buf[pos++] = SPACE;
    }
    buf[pos++] = SPACE;
    buf[pos++] = BAR;
    for (let i = line; i < stop; i++) {
      const b = data[i]!;
      buf[pos++] = b >= 0x20 && b < 0x7f ? b : DOT;
    }
    buf[pos++] = BAR;
    buf[pos++] = NEWLINE;
  }
  target.pos = pos;
}

/** `data[0, end)` as a hex dump string (see hexdumpInto). */
export function hexdump(data: Buffer, end = data.length): string {
  const bytes = new GrowableBytes();
  hexdumpInto(bytes, data, end);
  return bytes.toString();
}
