// JSON string escaping of UTF-8 payloads at memory speed, for the jsonl output: the bytes go
// through a small WebAssembly SIMD kernel (wasm/json-escape.c) and come back escaped.

import type { ByteTarget } from './batch.js';
import { WASM_BASE64 } from './wasm/json-escape-wasm.js';
import { WasmKernel, lazyModule } from './wasm-kernel.js';
import type { KernelFunction } from './wasm-kernel.js';

const escapeModule = lazyModule(WASM_BASE64);

/**
 * Appends the inside of a JSON string for UTF-8 bytes: `"`, `\` and C0 controls escaped exactly as
 * JSON.stringify escapes them, every other byte as it is. Each instance has its own memory.
 */
export class JsonEscaper {
  private readonly kernel = new WasmKernel<{ json_escape: KernelFunction }>(escapeModule());

  /** Appends the escape of `data` (valid UTF-8) at `target.pos`. */
  append(data: Buffer, target: ByteTarget): void {
    // \u00xx, six bytes, is the longest escape of a byte.
    this.kernel.appendThrough(data, 6 * data.length, this.kernel.exports.json_escape, target);
  }
}
