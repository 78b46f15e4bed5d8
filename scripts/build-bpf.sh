#!/usr/bin/env bash
# Compiles bpf/*.bpf.c with Debian's clang into build/*.bpf.o (CO-RE, BTF, no kernel headers).
# -mcpu=v3: atomic fetch-and-add (connection ids and sequence numbers) needs it (kernel >= 5.12).
set -euo pipefail
cd "$(dirname "$0")/.."

case "$(uname -m)" in
x86_64) arch=x86 ;;
aarch64) arch=arm64 ;;
armv7* | armv8l) arch=arm ;;
riscv64) arch=riscv ;;
s390x) arch=s390 ;;
ppc64le) arch=powerpc ;;
*) echo "build-bpf: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
# asm/ptrace.h (pt_regs of the user-space ABI) lives in the multiarch include directory.
multiarch=$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")

mkdir -p build
for src in bpf/*.bpf.c; do
	obj="build/$(basename "${src%.c}").o"
	clang -target bpf -mcpu=v3 -O2 -g -Wall -Werror \
		-D"__TARGET_ARCH_${arch}" \
		-I bpf -I "/usr/include/${multiarch}" \
		-c "$src" -o "$obj"
	echo "built $obj"
done
