// Where a Go function's body starts: after the stack-growth check of its prologue. When the goroutine's
// stack is too small, the check branches to a block that calls runtime.morestack and then jumps back to
// the function's first instruction, so a probe there fires twice for one call (and a Write would be
// captured twice). The body start is reached once per call, with the arguments still in their registers:
// the check only compares the stack pointer with the goroutine's stack guard, through scratch registers.
import { DecodeError, loadIced } from './returns.js';
import type { ReturnArch } from './returns.js';

/** How many instructions a Go prologue's stack check takes at most, its branch included. */
const MAX_CHECK_INSTRUCTIONS = 4;

/**
 * The offset of the first instruction after the stack-growth check of a Go function on x86-64:
 * `[LEAQ -N(SP), R12 |  MOVQ SP, R12; SUBQ $N, R12]; CMPQ 16(R14), SP|R12; JBE morestack`. Only R12
 * and R13 (scratch in Go's register ABI) may be written before the branch; the branch must stay inside
 * the function.
 */
export function x86BodyStart(code: Uint8Array, address: bigint = 0n): number {
  const { Decoder, DecoderOptions, Mnemonic, OpKind, Register } = loadIced();
  const decoder = new Decoder(64, code, DecoderOptions.None);
  decoder.ip = address;
  const instruction = decoder.decode();
  const scratch = new Set([Register.R12, Register.R13]);
  try {
    let offset = 0;
    for (let i = 0; i < MAX_CHECK_INSTRUCTIONS && !instruction.isInvalid; i++) {
      offset += instruction.length;
      const mnemonic = instruction.mnemonic;
      if (mnemonic === Mnemonic.Jbe) {
        const target = instruction.nearBranchTarget;
        if (target <= address || target >= address + BigInt(code.length)) break;
        return offset;
      }
      const writesScratch = instruction.op0Kind === OpKind.Register && scratch.has(instruction.op0Register);
      const allowed = mnemonic === Mnemonic.Cmp || ((mnemonic === Mnemonic.Lea || mnemonic === Mnemonic.Mov || mnemonic === Mnemonic.Sub) && writesScratch);
      if (!allowed || !decoder.canDecode) break;
      decoder.decodeOut(instruction);
    }
  } finally {
    instruction.free();
    decoder.free();
  }
  throw new DecodeError('no stack-growth check (CMP with the goroutine\'s stack guard, then JBE) at the start of the function');
}

/** `MOVD 16(R28), R16` (ldr x16, [x28, #16]): every arm64 Go prologue with a stack check loads the guard first. */
export const ARM64_LOAD_STACK_GUARD = 0xf9400b90;

/**
 * The offset of the first instruction after the stack-growth check of a Go function on arm64:
 * `MOVD 16(R28), R16; [SUB $N, RSP, R17]; CMP R16, RSP|R17; BLS morestack`. The words between the load
 * and the branch may write only R16, R17 or the zero register (a compare); the branch stays inside.
 */
export function arm64BodyStart(code: Uint8Array): number {
  if (code.length % 4 !== 0) throw new DecodeError(`arm64 code of ${code.length} bytes is not whole 4-byte instructions`);
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const words = Math.min(MAX_CHECK_INSTRUCTIONS, code.length / 4);
  if (words > 0 && view.getUint32(0, true) === ARM64_LOAD_STACK_GUARD) {
    for (let i = 1; i < words; i++) {
      const word = view.getUint32(i * 4, true);
      if ((word & 0xff000010) >>> 0 === 0x54000000 && (word & 0xf) === 0x9) {
        // B.LS: imm19 (bits 5-23) counts words from this instruction.
        const target = i + ((word << 8) >> 13);
        if (target > i && target < code.length / 4) return (i + 1) * 4;
        break;
      }
      if (![16, 17, 31].includes(word & 0x1f)) break;
    }
  }
  throw new DecodeError('no stack-growth check (load of the goroutine\'s stack guard, CMP, then B.LS) at the start of the function');
}

/** The body start of `code` (a whole Go function) for `arch`: where an entry probe sees each call once. */
export function bodyStart(arch: ReturnArch, code: Uint8Array, address: bigint = 0n): number {
  return arch === 'x86_64' ? x86BodyStart(code, address) : arm64BodyStart(code);
}
