#!/usr/bin/env bash
# Builds tlstap-agent (agent/, docs/agent.md), statically linked, for x86_64 and aarch64 from any
# host: agent/build/<uname -m name>/tlstap-agent. An architecture whose compiler is missing is
# skipped with a message (scripts/setup.sh installs gcc and crossbuild-essential-arm64).
#   bash scripts/build-agent.sh [x86_64|aarch64 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p "require('./package.json').version")
sources=(agent/main.c agent/requests.c agent/plan.c agent/wire.c agent/files.c agent/core_none.c)
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x86_64 aarch64)
for arch in "${archs[@]}"; do
	cc=$arch-linux-gnu-gcc
	if [ "$arch" = "$(uname -m)" ] && ! command -v "$cc" >/dev/null; then cc=gcc; fi
	if ! command -v "$cc" >/dev/null; then
		echo "build-agent: no $cc; skipping $arch (apt-get install crossbuild-essential-arm64)" >&2
		continue
	fi
	out=agent/build/$arch
	mkdir -p "$out"
	"$cc" -static -Os -std=gnu11 -Wall -Wextra -Werror -ffunction-sections -fdata-sections -Wl,--gc-sections -s \
		-DTLSTAP_AGENT_VERSION="\"$version\"" -o "$out/tlstap-agent.tmp" "${sources[@]}"
	mv -f "$out/tlstap-agent.tmp" "$out/tlstap-agent"
done
