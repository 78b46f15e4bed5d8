// The Internet checksum (RFC 1071) of synthesized packets. Summing 16-bit words one byte pair at
// a time costs about 1 ns a byte, the biggest share of pcapng output, so long aligned stretches
// are summed 32 bits at a time: a sum of 16-bit words read in the host's byte order is the
// byte-swapped sum of the big-endian words (RFC 1071, "byte order independence").

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Below this many bytes the word view costs more than it saves. */
const WORDS_FROM = 64;

/** Adds the 16-bit big-endian words of `buf[start, end)` to `sum` (odd tails padded with zero). */
export function sum16(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  // Byte pairs up to a 4-byte boundary of the underlying memory, when one is reachable.
  const misaligned = (buf.byteOffset + i) & 3;
  if (end - i >= WORDS_FROM && (misaligned & 1) === 0) {
    if (misaligned === 2) {
      sum += (buf[i]! << 8) | buf[i + 1]!;
      i += 2;
    }
    const words = (end - i) >>> 2;
    sum += sumWords(buf, i, words);
    i += words * 4;
  }
  return sumBytePairs(buf, i, end, sum);
}

/** The plain way: one big-endian 16-bit word at a time. */
export function sumBytePairs(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  // Fold now and then so the sum stays well inside exact integers.
  return (sum & 0xffff) + Math.floor(sum / 0x10000);
}

/** The sum of `count` 32-bit words from `buf[start]` (4-byte aligned) as big-endian 16-bit words, folded to 16 bits. */
function sumWords(buf: Uint8Array, start: number, count: number): number {
  const words = new Uint32Array(buf.buffer, buf.byteOffset + start, count);
  let sum = 0;
  // At most 16384 words of a 64 KiB packet: the sum stays below 2^31.
  for (let k = 0; k < count; k++) {
    const w = words[k]!;
    sum += (w & 0xffff) + (w >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return LITTLE_ENDIAN ? ((sum & 0xff) << 8) | (sum >>> 8) : sum;
}

/** The Internet checksum (RFC 1071) of an accumulated sum. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}
