#!/usr/bin/env bash
# Builds the native addon for each architecture tlstap ships, from any host, into
# prebuilds/linux-<arch>/tlstap.node (prebuildify's layout, <arch> as Node names it), where the
# loader looks first. libbpf, libelf and zlib are linked in (native/binding.gyp). Foreign
# architectures are cross-compiled with Debian's cross toolchains (crossbuild-essential-arm64) and
# that architecture's -dev packages (libbpf-dev:arm64 ...); Node's headers are the same for all.
#   bash scripts/build-native.sh             every architecture
#   bash scripts/build-native.sh x64 ...     only these
# Each architecture builds in its own copy of native/ (build/native-<arch>/), incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Node's architecture name -> the GNU triplet of its compilers and libraries.
triplet() {
	case "$1" in
	x64) echo x86_64-linux-gnu ;;
	arm64) echo aarch64-linux-gnu ;;
	*) echo "build-native: unsupported architecture '$1' (expected: x64, arm64)" >&2; return 1 ;;
	esac
}

# node-gyp builds against the installed Node's headers when they are there; nothing is downloaded.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
node_gyp=("$root/node_modules/.bin/node-gyp")

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(x64 arm64)
for arch in "${archs[@]}"; do
	t=$(triplet "$arch")
	for tool in gcc g++ strip; do
		if ! command -v "$t-$tool" >/dev/null; then
			echo "build-native: $t-$tool is missing (for $arch: apt-get install crossbuild-essential-$arch, or run scripts/setup.sh)" >&2
			exit 1
		fi
	done
	dir="build/native-$arch"
	mkdir -p "$dir/native" "$dir/bpf"
	# cp -p keeps the sources' times, so make rebuilds only what changed.
	cp -pr native/binding.gyp native/src native/core "$dir/native/"
	cp -p bpf/tlstap.h "$dir/bpf/"
	(
		cd "$dir/native"
		export CC="$t-gcc" CXX="$t-g++"
		if [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ]; then
			"${node_gyp[@]}" configure --arch="$arch" --silent
		fi
		"${node_gyp[@]}" build --silent
	)
	out="prebuilds/linux-$arch/tlstap.node"
	mkdir -p "$(dirname "$out")"
	"$t-strip" --strip-unneeded -o "$out" "$dir/native/build/Release/tlstap_native.node"
	echo "built $out"
done
