// Inputs for property tests: a seeded random source (a failing case can be run again) and
// every byte value at every place.

/** mulberry32: a small PRNG whose low bits are as random as its high bits; returns 0 .. n-1. */
export function random(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}

/**
 * Calls `check(data, label)` for every byte value at every place of a `size`-byte buffer of
 * `fill` bytes, and for the buffer cut just after that byte (so it is also the last byte).
 */
export function forEachByteAtEachPlace(size: number, fill: number, check: (data: Buffer, label: string) => void): void {
  for (let b = 0; b < 256; b++) {
    for (let at = 0; at < size; at++) {
      const data = Buffer.alloc(size, fill);
      data[at] = b;
      check(data, `byte 0x${b.toString(16)} at ${at}`);
      check(data.subarray(0, at + 1), `byte 0x${b.toString(16)} last of ${at + 1}`);
    }
  }
}
