// JSON string escaping of UTF-8 payloads at memory speed, for the jsonl output: the bytes go
// through a small WebAssembly SIMD kernel (wasm/json-escape.c) and come back escaped.

import type { ByteTarget } from './batch.js';
import { WASM_BASE64 } from './wasm/json-escape-wasm.js';

interface EscapeExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  json_escape(src: number, n: number, dst: number): number;
}

const PAGE = 65536;
/** The kernel reads and writes up to 16 bytes past the ends it is given. */
const SLACK = 16;

let compiled: WebAssembly.Module | undefined;

/** The module, compiled on first use (importing this file does nothing). */
function escapeModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

/**
 * Appends the inside of a JSON string for UTF-8 bytes: `"`, `\` and C0 controls escaped exactly as
 * JSON.stringify escapes them, every other byte as it is. Each instance has its own memory.
 */
export class JsonEscaper {
  private readonly exports: EscapeExports;
  /** The kernel's memory; replaced when the memory grows. */
  private memory: Uint8Array;
  /** Where the input goes in the kernel's memory (the output follows it). */
  private readonly base: number;

  constructor() {
    const instance = new WebAssembly.Instance(escapeModule(), {});
    this.exports = instance.exports as unknown as EscapeExports;
    this.base = align16(this.exports.__heap_base.value as number);
    this.memory = new Uint8Array(this.exports.memory.buffer);
  }

  /** Appends the escape of `data` (valid UTF-8) at `target.pos`. */
  append(data: Buffer, target: ByteTarget): void {
    const n = data.length;
    const src = this.base;
    const dst = align16(src + n + SLACK);
    this.ensureMemory(dst + 6 * n + SLACK);
    // TypedArray set: Buffer.copy of a range makes a view of its own on each call.
    this.memory.set(data, src);
    const length = this.exports.json_escape(src, n, dst);
    target.reserve(length);
    target.buf.set(this.memory.subarray(dst, dst + length), target.pos);
    target.pos += length;
  }

  private ensureMemory(bytes: number): void {
    if (bytes <= this.memory.length) return;
    this.exports.memory.grow(Math.ceil((bytes - this.memory.length) / PAGE));
    this.memory = new Uint8Array(this.exports.memory.buffer);
  }
}
