#!/usr/bin/env bash
# Builds bench/bin/loadgen from bench/loadgen.c against the system OpenSSL (libssl-dev).
# Re-running is safe: it rebuilds only when the source or this script is newer than the binary.
#   bash bench/build.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/loadgen.c"
out="$here/bin/loadgen"
cc="${CC:-cc}"

fresh() { [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "${BASH_SOURCE[0]}" ]]; }
if [[ "${1:-}" != "--force" ]] && fresh; then
	echo "loadgen: up to date ($out)"
	exit 0
fi

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "loadgen: no C compiler ($cc): apt-get install build-essential" >&2
	exit 1
fi
if ! printf '#include <openssl/ssl.h>\n' | "$cc" -E -x c - >/dev/null 2>&1; then
	echo "loadgen: OpenSSL headers not found (openssl/ssl.h): apt-get install libssl-dev" >&2
	exit 1
fi

mkdir -p "$here/bin"
# Build to a temporary name and rename, so a failed build never leaves a half-written binary.
"$cc" -O2 -g -Wall -Wextra -Werror -std=gnu11 -o "$out.tmp" "$src" -lssl -lcrypto
mv -f "$out.tmp" "$out"
echo "loadgen: built $out"
