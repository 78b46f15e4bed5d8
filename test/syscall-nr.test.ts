// The system call numbers the raw_syscalls hook picks out (bpf/syscall_nr.h) are the kernel's,
// for both architectures: checked against the UAPI headers of linux-libc-dev.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const HEADER = fileURLToPath(new URL('../../bpf/syscall_nr.h', import.meta.url));
const NAMES = ['read', 'write', 'close', 'readv', 'writev', 'sendto', 'recvfrom', 'sendmsg', 'recvmsg'];
const UAPI = {
  x86: '/usr/include/x86_64-linux-gnu/asm/unistd_64.h',
  arm64: '/usr/include/asm-generic/unistd.h',
};

/** `#define PREFIXname N` lines of a text, as name -> N. */
function defines(text: string, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^#define ${prefix}(\\w+)\\s+(\\d+)\\s*$`, 'gm'))) out.set(m[1]!.toLowerCase(), Number(m[2]));
  return out;
}

/** The block of bpf/syscall_nr.h for one __TARGET_ARCH_. */
function archBlock(text: string, arch: string): string {
  const start = text.indexOf(`defined(__TARGET_ARCH_${arch})`);
  assert.ok(start >= 0, `bpf/syscall_nr.h has a block for ${arch}`);
  const end = text.indexOf('#el', start);
  return text.slice(start, end);
}

for (const [arch, uapi] of Object.entries(UAPI)) {
  test(`bpf/syscall_nr.h: the ${arch} numbers are the kernel's (${uapi})`, (t) => {
    if (!existsSync(uapi)) {
      t.skip(`${uapi} is missing (install linux-libc-dev)`);
      return;
    }
    const ours = defines(archBlock(readFileSync(HEADER, 'utf8'), arch), 'TLSTAP_NR_');
    const kernel = defines(readFileSync(uapi, 'utf8'), '__NR_');
    assert.deepEqual([...ours.keys()].sort(), [...NAMES].sort());
    for (const name of NAMES) assert.equal(ours.get(name), kernel.get(name), name);
  });
}
