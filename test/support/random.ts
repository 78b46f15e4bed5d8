// A seeded random source for property tests, so a failing case can be run again.

/** mulberry32: a small PRNG whose low bits are as random as its high bits; returns 0 .. n-1. */
export function random(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
}
