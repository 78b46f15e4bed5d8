// What the WebAssembly kernels of src/output/wasm/ share: the module compiled once from its
// committed bytes, and an instance whose memory grows on demand to hold a call's input and output.

import type { ByteTarget } from './batch.js';

/** What every kernel module exports besides its function. */
interface KernelExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
}

const PAGE = 65536;
/** Kernels may read and write up to 16 bytes past the ends they are given. */
const SLACK = 16;

/** A kernel function: reads src[0, n), writes at dst, returns the bytes written. */
export type KernelFunction = (src: number, n: number, dst: number) => number;

/** Rounds n up to a multiple of 16 (the kernels load and store 16 bytes at a time). */
function align16(n: number): number {
  return (n + 15) & ~15;
}

/** A module compiled on first use from its base64 bytes (importing a kernel's file does nothing). */
export function lazyModule(base64: string): () => WebAssembly.Module {
  let compiled: WebAssembly.Module | undefined;
  return () => (compiled ??= new WebAssembly.Module(Buffer.from(base64, 'base64')));
}

/** An instance of a kernel module with memory of its own, free from `base` on. */
export class WasmKernel<Exports> {
  readonly exports: Exports & KernelExports;
  /** The instance's memory; replaced when the memory grows. */
  memory: Uint8Array;
  /** The first free byte, 16-aligned. */
  readonly base: number;

  constructor(module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, {});
    this.exports = instance.exports as unknown as Exports & KernelExports;
    this.base = align16(this.exports.__heap_base.value as number);
    this.memory = new Uint8Array(this.exports.memory.buffer);
  }

  /**
   * Copies `data` into memory, runs `kernel` on it (which writes at most `maxOutput` bytes), and
   * appends what it wrote at `target.pos`.
   */
  appendThrough(data: Uint8Array, maxOutput: number, kernel: KernelFunction, target: ByteTarget): void {
    const n = data.length;
    const dst = align16(this.base + n + SLACK);
    this.ensureMemory(dst + maxOutput + SLACK);
    const length = kernel(this.load(data), n, dst);
    target.reserve(length);
    target.buf.set(this.memory.subarray(dst, dst + length), target.pos);
    target.pos += length;
  }

  /** Copies `data` into memory at `base` (growing it if need be); returns `base`. */
  load(data: Uint8Array): number {
    this.ensureMemory(this.base + data.length + SLACK);
    // TypedArray set: Buffer.copy of a range makes a view of its own on each call.
    this.memory.set(data, this.base);
    return this.base;
  }

  /** Grows the memory until it holds `bytes` bytes. */
  ensureMemory(bytes: number): void {
    if (bytes <= this.memory.length) return;
    this.exports.memory.grow(Math.ceil((bytes - this.memory.length) / PAGE));
    this.memory = new Uint8Array(this.exports.memory.buffer);
  }
}
