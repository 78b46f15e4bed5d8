#!/usr/bin/env bash
# Compiles bpf/*.bpf.c with Debian's clang, once per architecture tlstap ships, from any host:
# build/bpf/<arch>/<name>.bpf.o with <arch> as Node names it (process.arch: x64, arm64), which is how
# the runtime picks the object (CO-RE, BTF, no kernel headers).
#   bash scripts/build-bpf.sh             every architecture
#   bash scripts/build-bpf.sh arm64 ...   only these
# -mcpu=v3: ALU32 and the wider jump set (kernel >= 5.1, below the ring buffer's 5.8); no fetch-and-add is used (docs/kernels.md).
set -euo pipefail
cd "$(dirname "$0")/.."

# Node's name -> libbpf's __TARGET_ARCH_* (bpf_tracing.h: which registers hold arguments) and the
# Debian multiarch triplet whose include directory has that architecture's asm/ptrace.h (user pt_regs).
target_arch() {
	case "$1" in
	x64) echo x86 ;;
	arm64) echo arm64 ;;
	*) echo "build-bpf: unsupported architecture '$1' (expected: x64, arm64)" >&2; return 1 ;;
	esac
}
triplet() {
	case "$1" in
	x64) echo x86_64-linux-gnu ;;
	arm64) echo aarch64-linux-gnu ;;
	esac
}
# asm/ptrace.h: linux-libc-dev:<arch> puts it in /usr/include/<triplet>, the cross toolchain's
# linux-libc-dev-<arch>-cross in /usr/<triplet>/include.
asm_include() {
	local t
	t=$(triplet "$1")
	for dir in "/usr/include/$t" "/usr/$t/include"; do
		if [ -f "$dir/asm/ptrace.h" ]; then echo "$dir"; return; fi
	done
	echo "build-bpf: no asm/ptrace.h for $1 (install linux-libc-dev:$1 or linux-libc-dev-$1-cross; scripts/setup.sh does)" >&2
	return 1
}

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x64 arm64)
for arch in "${archs[@]}"; do
	define=$(target_arch "$arch")
	include=$(asm_include "$arch")
	mkdir -p "build/bpf/$arch"
	for src in bpf/*.bpf.c; do
		obj="build/bpf/$arch/$(basename "${src%.c}").o"
		clang -target bpf -mcpu=v3 -O2 -g -Wall -Werror -fdebug-prefix-map="$PWD"=. \
			-D"__TARGET_ARCH_${define}" \
			-I bpf -I "$include" \
			-c "$src" -o "$obj"
		# DWARF is for debuggers; libbpf needs only the BTF, which stays.
		llvm-strip -g "$obj"
		echo "built $obj"
	done
done
