// Turning captured bytes into terminal-safe text: valid UTF-8 is kept, everything that could drive
// the terminal (C0/C1 controls, DEL, lone CR, invalid bytes) becomes a visible \xNN escape.

/** `\xNN` for every byte value, so escaping is a table lookup. */
const BYTE_ESCAPES: readonly string[] = Array.from(
  { length: 256 },
  (_, b) => `\\x${b.toString(16).padStart(2, '0')}`,
);

/**
 * Length of the well-formed UTF-8 sequence starting at `i` (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when the bytes there are not one.
 */
function sequenceLength(data: Uint8Array, i: number, end: number): number {
  const b = data[i]!;
  if (b >= 0xc2 && b <= 0xdf) {
    return i + 1 < end && (data[i + 1]! & 0xc0) === 0x80 ? 2 : 0;
  }
  if (b >= 0xe0 && b <= 0xef) {
    if (i + 2 >= end) return 0;
    const c1 = data[i + 1]!;
    const lo = b === 0xe0 ? 0xa0 : 0x80;
    const hi = b === 0xed ? 0x9f : 0xbf;
    if (c1 < lo || c1 > hi) return 0;
    return (data[i + 2]! & 0xc0) === 0x80 ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (i + 3 >= end) return 0;
    const c1 = data[i + 1]!;
    const lo = b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xf4 ? 0x8f : 0xbf;
    if (c1 < lo || c1 > hi) return 0;
    return (data[i + 2]! & 0xc0) === 0x80 && (data[i + 3]! & 0xc0) === 0x80 ? 4 : 0;
  }
  return 0;
}

/**
 * The bytes `data[start, end)` as text safe to print: printable ASCII, tab, newline, CR-LF and
 * well-formed UTF-8 (except C1 controls) verbatim; any other byte as `\xNN`.
 */
export function escapePayload(data: Buffer, start = 0, end = data.length): string {
  let out = '';
  // Start of the run of bytes that are printed verbatim.
  let run = start;
  let i = start;
  while (i < end) {
    const b = data[i]!;
    if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x09) {
      i++;
      continue;
    }
    if (b === 0x0d && i + 1 < end && data[i + 1] === 0x0a) {
      i += 2;
      continue;
    }
    let n = b >= 0x80 ? sequenceLength(data, i, end) : 0;
    // U+0080..U+009F (C1 controls, C2 80..C2 9F) can act as terminal escapes, like ESC does.
    if (n === 2 && b === 0xc2 && data[i + 1]! < 0xa0) n = 0;
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) out += data.toString('utf8', run, i);
    out += BYTE_ESCAPES[b]!;
    i++;
    run = i;
  }
  if (run === start) return data.toString('utf8', start, end);
  if (end > run) out += data.toString('utf8', run, end);
  return out;
}

/**
 * Where to cut `data` to show at most `limit` bytes without splitting a UTF-8 sequence (the cut moves
 * back over at most three continuation bytes).
 */
export function previewEnd(data: Buffer, limit: number): number {
  if (limit >= data.length) return data.length;
  let cut = Math.max(0, limit);
  const floor = Math.max(0, cut - 3);
  while (cut > floor && (data[cut]! & 0xc0) === 0x80) cut--;
  // No lead byte within reach: the bytes are not UTF-8, cut where asked.
  return (data[cut]! & 0xc0) === 0x80 ? limit : cut;
}
