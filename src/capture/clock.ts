/**
 * Converts the kernel's CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall-clock nanoseconds. Node's
 * process.hrtime is CLOCK_MONOTONIC too, so one reading of both clocks gives the offset.
 */
export function monotonicToWallOffsetNs(): bigint {
  const mono = process.hrtime.bigint();
  const wallNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
  return wallNs - mono;
}
