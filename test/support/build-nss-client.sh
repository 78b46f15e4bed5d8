#!/usr/bin/env bash
# Builds the NSS test client (test/support/nss-client.c) into build/nss-client, against the system's
# NSS and NSPR (Debian: libnss3-dev, libnspr4-dev). Does nothing when the binary is newer than the source.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=test/support/nss-client.c
out=build/nss-client

if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
	exit 0
fi
if ! pkg-config --exists nss nspr; then
	echo "build-nss-client: pkg-config knows no nss/nspr: apt-get install libnss3-dev libnspr4-dev" >&2
	exit 1
fi
mkdir -p build
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
${CC:-cc} -O2 -g -Wall -Wextra -o "$out.tmp" "$src" $(pkg-config --cflags --libs nss nspr)
mv -f "$out.tmp" "$out"
echo "build-nss-client: built $out"
