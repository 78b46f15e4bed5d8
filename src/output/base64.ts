// Base64 of binary payloads straight into the output buffer, for the jsonl output: the bytes go
// through a small WebAssembly SIMD kernel (wasm/base64.c), with no string per call.

import type { ByteTarget } from './batch.js';
import { WASM_BASE64 } from './wasm/base64-wasm.js';
import { WasmKernel, lazyModule } from './wasm-kernel.js';
import type { KernelFunction } from './wasm-kernel.js';

const base64Module = lazyModule(WASM_BASE64);

/** Bytes of the base64 of n bytes, padding included. */
export function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3);
}

/** Appends base64 (RFC 4648, '=' padding): byte for byte what Buffer.toString('base64') gives. Each instance has its own memory. */
export class Base64Encoder {
  private readonly kernel = new WasmKernel<{ base64_encode: KernelFunction }>(base64Module());

  /** Appends the base64 of `data` at `target.pos`. */
  append(data: Uint8Array, target: ByteTarget): void {
    this.kernel.appendThrough(data, base64Length(data.length), this.kernel.exports.base64_encode, target);
  }
}
