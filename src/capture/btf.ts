// Where the kernel's BTF comes from. The BPF program reads kernel structs (task -> fd -> socket)
// with CO-RE only for socket addresses; without BTF it still captures every byte.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';

/** The kernel's own BTF, as modern kernels expose it (CONFIG_DEBUG_INFO_BTF). */
export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

/** Where libbpf looks for kernel BTF when /sys/kernel/btf/vmlinux is missing (libbpf_find_kernel_btf). */
export function btfFallbackPaths(kernelRelease = release()): string[] {
  const r = kernelRelease;
  return [
    `/boot/vmlinux-${r}`,
    `/lib/modules/${r}/vmlinux-${r}`,
    `/lib/modules/${r}/build/vmlinux`,
    `/usr/lib/modules/${r}/kernel/vmlinux`,
    `/usr/lib/debug/boot/vmlinux-${r}`,
    `/usr/lib/debug/boot/vmlinux-${r}.debug`,
    `/usr/lib/debug/lib/modules/${r}/vmlinux`,
  ];
}

/** The first place libbpf finds kernel BTF in, or undefined. */
export function kernelBtfSource(exists: (path: string) => boolean = existsSync, kernelRelease = release()): string | undefined {
  return [VMLINUX_BTF, ...btfFallbackPaths(kernelRelease)].find(exists);
}

/**
 * A BTF with one type (int) and nothing the program asks for. Given to libbpf in place of the
 * kernel's, every CO-RE relocation finds no match: the program's have_kernel_btf() is then 0 and
 * the address code behind it is dead code the verifier drops.
 */
export function emptyBtf(): Buffer {
  const strings = Buffer.from('\0int\0', 'latin1');
  const types = Buffer.alloc(16);
  types.writeUInt32LE(1, 0); // name_off: "int"
  types.writeUInt32LE(1 << 24, 4); // info: BTF_KIND_INT
  types.writeUInt32LE(4, 8); // size
  types.writeUInt32LE((1 << 24) | 32, 12); // BTF_INT_SIGNED, 32 bits
  const header = Buffer.alloc(24);
  header.writeUInt16LE(0xeb9f, 0);
  header.writeUInt8(1, 2); // version
  header.writeUInt32LE(24, 4); // hdr_len
  header.writeUInt32LE(0, 8); // type_off
  header.writeUInt32LE(types.length, 12);
  header.writeUInt32LE(types.length, 16); // str_off
  header.writeUInt32LE(strings.length, 20);
  return Buffer.concat([header, types, strings]);
}

/** The empty BTF in a temporary file, and what removes it. */
export function writeEmptyBtf(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-btf-'));
  const path = join(dir, 'empty.btf');
  writeFileSync(path, emptyBtf(), { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
