// Whether a payload goes into jsonl as `text` (valid UTF-8 without NUL) or as `base64`, decided
// from its first bytes when they already say "binary". Node's isUtf8 costs ~0.25 µs a call however
// short the buffer, and validates the whole buffer however early it is broken (~2.4 µs for 16 KiB
// of binary here); most binary payloads (compressed, encrypted, random) show it in a few bytes.

import { isUtf8 } from 'node:buffer';

/** Bytes looked at in JavaScript, before any native call. */
const SCAN_BYTES = 32;
/** Payloads this long also have their first PROBE_BYTES checked by isUtf8 before the whole. */
const PROBE_FROM = 4096;
const PROBE_BYTES = 256;

/**
 * False when the first bytes already rule text out: a NUL, a byte UTF-8 never uses (C0, C1,
 * F5-FF), a continuation byte (10xxxxxx) where no character is open, or a character cut short
 * by another. True means "not ruled out": the full check decides. Overlongs and surrogates are
 * left to it.
 */
function mayBeText(data: Uint8Array): boolean {
  const end = Math.min(data.length, SCAN_BYTES);
  // Continuation bytes the open character still needs.
  let open = 0;
  for (let i = 0; i < end; i++) {
    const b = data[i]!;
    if (b === 0) return false;
    if (b < 0x80) {
      if (open > 0) return false;
    } else if (b < 0xc0) {
      if (open === 0) return false;
      open--;
    } else {
      if (b < 0xc2 || b > 0xf4 || open > 0) return false;
      open = b < 0xe0 ? 1 : b < 0xf0 ? 2 : 3;
    }
  }
  return true;
}

/**
 * Where to end the probe at or before `limit` so that no UTF-8 sequence is cut: the first byte
 * after it is not a continuation byte. In valid UTF-8 such a byte starts a character, so a
 * prefix that ends there is valid whenever the whole is: an invalid prefix proves the whole
 * invalid. 0 when the bytes before `limit` are all continuation bytes (no safe end within reach).
 */
function probeEnd(data: Uint8Array, limit: number): number {
  for (let end = limit; end > limit - 4; end--) {
    if ((data[end]! & 0xc0) !== 0x80) return end;
  }
  return 0;
}

/** True when `data` is valid UTF-8 with no NUL byte: exactly `isUtf8(data) && data.indexOf(0) === -1`. */
export function isNulFreeUtf8(data: Buffer): boolean {
  if (!mayBeText(data)) return false;
  if (data.length >= PROBE_FROM) {
    const end = probeEnd(data, PROBE_BYTES);
    if (end > 0) {
      const head = data.subarray(0, end);
      if (head.indexOf(0) !== -1 || !isUtf8(head)) return false;
    }
  }
  return isUtf8(data) && data.indexOf(0) === -1;
}
