#!/usr/bin/env bash
# Builds tlstap-agent (agent/, docs/agent.md), statically linked, for x86_64 and aarch64 from any
# host: agent/build/<uname -m name>/tlstap-agent. Each holds the capture core (native/core/), the
# BPF object of its architecture (build/bpf/<arch>/tlstap.bpf.o, from scripts/build-bpf.sh) and
# that architecture's libbpf.a, libelf.a and libz.a (libbpf-dev:<arch> ..., found by its compiler).
# An architecture whose compiler is missing is skipped with a message (scripts/setup.sh installs
# gcc, crossbuild-essential-arm64 and the arm64 -dev packages).
#   bash scripts/build-agent.sh [x86_64|aarch64 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p "require('./package.json').version")
sources=(agent/main.c agent/requests.c agent/plan.c agent/wire.c agent/files.c agent/embedded.c
	native/core/tlstap_core.c native/core/core_links.c native/core/core_log.c)

# uname -m's name -> Node's, which names the BPF object's directory.
bpf_arch() {
	case "$1" in
	x86_64) echo x64 ;;
	aarch64) echo arm64 ;;
	*) echo "build-agent: unsupported architecture '$1' (expected: x86_64, aarch64)" >&2; return 1 ;;
	esac
}

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x86_64 aarch64)
for arch in "${archs[@]}"; do
	object=build/bpf/$(bpf_arch "$arch")/tlstap.bpf.o
	cc=$arch-linux-gnu-gcc
	if [ "$arch" = "$(uname -m)" ] && ! command -v "$cc" >/dev/null; then cc=gcc; fi
	if ! command -v "$cc" >/dev/null; then
		echo "build-agent: no $cc; skipping $arch (apt-get install crossbuild-essential-arm64)" >&2
		continue
	fi
	if [ ! -f "$object" ]; then
		echo "build-agent: $object is missing: run \`npm run build:bpf\` first" >&2
		exit 1
	fi
	libs=()
	for lib in libbpf.a libelf.a libz.a; do
		path=$("$cc" -print-file-name=$lib)
		if [ "$path" = "$lib" ]; then
			echo "build-agent: no $lib for $arch (apt-get install libbpf-dev:<arch> libelf-dev:<arch> zlib1g-dev:<arch>, or run scripts/setup.sh)" >&2
			exit 1
		fi
		libs+=("$path")
	done
	out=agent/build/$arch
	mkdir -p "$out"
	"$cc" -static -Os -std=gnu11 -Wall -Wextra -Werror -ffunction-sections -fdata-sections -Wl,--gc-sections -s \
		-I native/core -I bpf -DTLSTAP_AGENT_VERSION="\"$version\"" -DTLSTAP_BPF_OBJECT="\"$PWD/$object\"" \
		-o "$out/tlstap-agent.tmp" "${sources[@]}" "${libs[@]}" -lpthread
	mv -f "$out/tlstap-agent.tmp" "$out/tlstap-agent"
	echo "built $out/tlstap-agent ($(stat -c %s "$out/tlstap-agent") bytes)"
done
