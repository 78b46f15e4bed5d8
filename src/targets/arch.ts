// Which code this machine runs: a file built for another CPU or ELF class is never probed (a uprobe
// there would read the wrong registers, if the kernel let it attach at all).
import { endianness } from 'node:os';

/** The CPU and ELF class a file is built for, as its ELF header says. */
export interface ElfArch {
  /** e_machine's short name: 'x86_64', 'aarch64', ... */
  machine: string;
  bits: 32 | 64;
  littleEndian: boolean;
}

/** Node's process.arch → what this machine's own ELF files say. */
const NODE_ARCHES: Readonly<Record<string, Omit<ElfArch, 'littleEndian'>>> = {
  x64: { machine: 'x86_64', bits: 64 },
  arm64: { machine: 'aarch64', bits: 64 },
  arm: { machine: 'arm', bits: 32 },
  ia32: { machine: 'i386', bits: 32 },
  riscv64: { machine: 'riscv', bits: 64 },
  s390x: { machine: 's390x', bits: 64 },
  ppc64: { machine: 'ppc64', bits: 64 },
  loong64: { machine: 'loongarch', bits: 64 },
};

/** The architecture of this machine, as an ELF header would state it (undefined on one tlstap does not know). */
export function hostArch(): ElfArch | undefined {
  const known = NODE_ARCHES[process.arch];
  return known && { ...known, littleEndian: endianness() === 'LE' };
}

/** 'aarch64', 'x86_64', or 'ppc64 big-endian' / 'i386 (32-bit)' where the name alone does not say. */
export function archLabel(a: ElfArch): string {
  const host = hostArch();
  const order = host && a.littleEndian !== host.littleEndian ? (a.littleEndian ? ' little-endian' : ' big-endian') : '';
  const sameNameOtherClass = host !== undefined && a.machine === host.machine && a.bits !== host.bits;
  return `${a.machine}${order}${sameNameOtherClass ? ` (${a.bits}-bit)` : ''}`;
}

/** Why a file of architecture `a` cannot be probed on `host` (default: this machine), or undefined when it can or `host` is unknown. */
export function foreignArchReason(a: ElfArch, host: ElfArch | undefined = hostArch()): string | undefined {
  if (host === undefined) return undefined;
  if (a.machine === host.machine && a.bits === host.bits && a.littleEndian === host.littleEndian) return undefined;
  return `built for ${archLabel(a)} (ELF ${a.bits}-bit), while this machine runs ${archLabel(host)} (ELF ${host.bits}-bit) code: no program here can load it`;
}

/** What to do about a library of another architecture. */
export function foreignArchHint(): string {
  const host = hostArch();
  return host
    ? `name the ${host.machine} build of the library (on Debian, under /usr/lib/${host.machine}-linux-gnu), or run tlstap on a machine of the library's architecture`
    : 'run tlstap on a machine of the library\'s architecture';
}
