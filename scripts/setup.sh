#!/usr/bin/env bash
# Sets up tlstap on Debian bookworm as root, idempotently: system packages (only the missing
# ones), npm packages, the BPF object, the native addon, the TypeScript, the bench load generator.
#   bash scripts/setup.sh          set up only
#   bash scripts/setup.sh demo     set up, then run `tlstap demo`
#   bash scripts/setup.sh test     set up, then run every test (what .ci/run does)
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-}

# Build: clang (BPF), libbpf/libelf/zlib (addon), pkg-config, make/g++ (node-gyp), libssl-dev (loadgen),
# lld (wasm-ld: the tests check the committed WebAssembly against a fresh build of its C source).
# Run and test: curl and openssl (demo, clients), bpftool (layout check), binutils (ELF tests),
# nginx (a real TLS server), tshark (reads our pcapng back); other TLS libraries' clients: wget
# (GnuTLS), android-boringssl (bssl-tool, BoringSSL's libssl.so.0), libnss3-dev (builds the NSS test
# client) and libnss3-tools; golang-go (Debian's Go 1.19) builds the Go test programs
# (fixtures/go/build.sh, which also fetches esbuild builds of other Go releases from npm) and checks
# them (go tool nm, go version -m); llvm's llvm-objdump disassembles their arm64 code. chromium (driven
# headless by playwright-core, never a downloaded browser) tests the --web page.
# Both architectures from any host (scripts/build-bpf.sh, scripts/build-native.sh): the cross
# toolchains and each architecture's libbpf, libelf and zlib archives (linked into the addon);
# linux-libc-dev of each architecture has its asm/ptrace.h for the BPF object; qemu-user-static runs
# the arm64 addon in a test, in Debian's arm64 Node 18 (unpacked below); libssl3:arm64 is the foreign
# library discovery must skip (test/arch.test.ts). tlstap-agent (agent/): gcc -static for x86_64,
# the cross toolchain for aarch64; its tests run the arm64 build under qemu-user-static against arm64
# libssl and BoringSSL (android-libboringssl:arm64), and pack an APK with zip.
cross=(crossbuild-essential-arm64 libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libssl3:arm64 qemu-user-static)
case "$(dpkg --print-architecture)" in
amd64) ;;
arm64) cross=(crossbuild-essential-amd64 libbpf-dev:amd64 libelf-dev:amd64 zlib1g-dev:amd64 qemu-user-static) ;;
*) echo "setup: tlstap builds on amd64 or arm64 hosts, not $(dpkg --print-architecture)" >&2; exit 1 ;;
esac
# The VM test (scripts/vm-test.sh): QEMU for both architectures, mmdebstrap for the guests' root file
# systems, cpio for their initramfs, kmod (depmod) for their module index.
vm=(qemu-system-x86 qemu-system-arm mmdebstrap cpio kmod)
packages=(clang llvm lld libbpf-dev libelf-dev zlib1g-dev pkg-config make g++ python3 libssl-dev
	curl openssl ca-certificates bpftool binutils nginx tshark
	wget android-boringssl libnss3-dev libnss3-tools golang-go
	python3-requests python3-httpx python3-aiohttp mitmproxy "${cross[@]}" "${vm[@]}"
	gcc android-libboringssl:arm64 zip chromium openssh-server)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing packages: ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	foreign=${cross[1]#*:}
	if ! dpkg --print-foreign-architectures | grep -qx "$foreign"; then dpkg --add-architecture "$foreign"; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's arm64 Node 18, unpacked into build/arm64-node (qemu-aarch64-static -L build/arm64-node runs it),
# never installed: nodejs:arm64 or libnode108:arm64 would make apt replace the installed amd64 nodejs.
arm64_node=(nodejs:arm64 libnode108:arm64 libuv1:arm64 libicu72:arm64 libc-ares2:arm64 libbrotli1:arm64
	libnghttp2-14:arm64 node-acorn node-cjs-module-lexer node-undici)
if [ "$(dpkg --print-architecture)" = amd64 ] && [ ! -x build/arm64-node/usr/bin/node ]; then
	rm -rf build/arm64-node.tmp && mkdir -p build/arm64-node.tmp
	(cd build/arm64-node.tmp && apt-get download -qq "${arm64_node[@]}" && for deb in *.deb; do dpkg -x "$deb" .; done && rm ./*.deb)
	mv build/arm64-node.tmp build/arm64-node
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
npm run --silent build
bash scripts/build-agent.sh
bash bench/build.sh
bash test/support/build-nss-client.sh
bash fixtures/go/build.sh

case "$action" in
"") echo "setup: done. Try: bin/tlstap.js demo" ;;
demo) exec bin/tlstap.js demo ;;
test) exec npm test --silent ;;
*) echo "setup: unknown action '$action' (expected: demo, test)" >&2; exit 2 ;;
esac
