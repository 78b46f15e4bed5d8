// The return instructions of a function, found by decoding its machine code: where a probe sees a Go
// function's results without a uretprobe (which rewrites the return address on a goroutine stack that
// the Go runtime may move, and crashes the program).
import { createRequire } from 'node:module';

/** Architectures whose return instructions we can find. */
export type ReturnArch = 'x86_64' | 'aarch64';

/** arm64 `RET` (RET X30); every A64 instruction is 4 bytes, little-endian. */
export const ARM64_RET = 0xd65f03c0;
/** arm64 `RET Xn` for any register: the encoding with the register field (bits 5-9) masked out. */
const ARM64_RET_MASK = 0xfffffc1f;
const ARM64_RET_ANY = 0xd65f0000;

/** The iced-x86 decoder module (WebAssembly), loaded on first use: most runs never decode x86. */
export type Iced = typeof import('iced-x86');
let iced: Iced | undefined;
export function loadIced(): Iced {
  return (iced ??= createRequire(import.meta.url)('iced-x86') as Iced);
}

/** A function's code could not be decoded to the end: a return site might be missed, so none are given. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** Whether every byte from `from` on is alignment padding (INT3, or zeros in older linkers). */
function isPadding(code: Uint8Array, from: number): boolean {
  for (let i = from; i < code.length; i++) if (code[i] !== 0xcc && code[i] !== 0) return false;
  return true;
}

/**
 * Byte offsets (from the start of `code`) of every return instruction of x86-64 code: RET (C3) and
 * RET imm16 (C2 iw), near forms only, at the instruction boundaries found by decoding from the first
 * byte with iced-x86. An invalid instruction is accepted only in the alignment padding at the end
 * (INT3 or zero bytes); anywhere else it is an error, since a wrong boundary could hide a return or
 * invent one.
 */
export function x86ReturnOffsets(code: Uint8Array, address: bigint = 0n): number[] {
  const { Decoder, DecoderOptions, Code } = loadIced();
  const decoder = new Decoder(64, code, DecoderOptions.None);
  decoder.ip = address;
  const instruction = decoder.decode();
  const out: number[] = [];
  let offset = 0;
  try {
    for (;;) {
      if (instruction.isInvalid || offset + instruction.length > code.length) {
        if (isPadding(code, offset)) break;
        throw new DecodeError(`no valid x86-64 instruction at offset ${offset} (byte 0x${(code[offset] ?? 0).toString(16)})`);
      }
      if (instruction.code === Code.Retnq || instruction.code === Code.Retnq_imm16) out.push(offset);
      offset += instruction.length;
      if (!decoder.canDecode) break;
      decoder.decodeOut(instruction);
    }
  } finally {
    instruction.free();
    decoder.free();
  }
  return out;
}

/**
 * Byte offsets of every RET of arm64 code. A64 instructions are fixed-width and aligned, so every
 * 4-byte word is an instruction; a word of a literal pool that happens to encode RET would be taken
 * for one (Go's arm64 functions keep their constants in pools after the code).
 */
export function arm64ReturnOffsets(code: Uint8Array): number[] {
  if (code.length % 4 !== 0) throw new DecodeError(`arm64 code of ${code.length} bytes is not whole 4-byte instructions`);
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const out: number[] = [];
  for (let i = 0; i < code.length; i += 4) {
    if ((view.getUint32(i, true) & ARM64_RET_MASK) >>> 0 === ARM64_RET_ANY) out.push(i);
  }
  return out;
}

/** Return-instruction offsets of `code` (a whole function) for `arch`. */
export function returnOffsets(arch: ReturnArch, code: Uint8Array, address: bigint = 0n): number[] {
  return arch === 'x86_64' ? x86ReturnOffsets(code, address) : arm64ReturnOffsets(code);
}
