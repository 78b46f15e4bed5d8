// The Internet checksum (RFC 1071) of synthesized packets. Headers are summed here one byte pair
// at a time; payloads, the bulk of the bytes (about 1 ns a byte in JavaScript, the biggest share
// of pcapng output), by a WebAssembly SIMD kernel (../output/wasm/checksum.c).

import { WASM_BASE64 } from '../output/wasm/checksum-wasm.js';
import { WasmKernel, lazyModule } from '../output/wasm-kernel.js';

/** Adds the 16-bit big-endian words of `buf[start, end)` to `sum` (an odd tail padded with zero). */
export function sum16(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  // Fold now and then so the sum stays well inside exact integers.
  return (sum & 0xffff) + Math.floor(sum / 0x10000);
}

/** The Internet checksum (RFC 1071) of an accumulated sum. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

const checksumModule = lazyModule(WASM_BASE64);

/** Sums packet payloads with the WebAssembly kernel; each instance has its own memory. */
export class PayloadSummer {
  private readonly kernel = new WasmKernel<{ sum16(src: number, n: number): number }>(checksumModule());

  /** What sum16(data, 0, data.length) gives, folded to 16 bits. */
  sum(data: Uint8Array): number {
    if (data.length === 0) return 0;
    return this.kernel.exports.sum16(this.kernel.load(data), data.length);
  }
}
