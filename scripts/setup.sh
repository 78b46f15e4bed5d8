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
packages=(clang llvm lld libbpf-dev libelf-dev zlib1g-dev pkg-config make g++ python3 libssl-dev
	curl openssl ca-certificates bpftool binutils nginx tshark
	wget android-boringssl libnss3-dev libnss3-tools golang-go chromium)

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
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
# node-gyp builds against the installed Node's headers; nothing is downloaded.
if [ -d /usr/include/node ]; then export npm_config_nodedir=/usr; fi
npm run --silent build
bash bench/build.sh
bash test/support/build-nss-client.sh
bash fixtures/go/build.sh

case "$action" in
"") echo "setup: done. Try: node dist/src/cli.js demo" ;;
demo) exec node dist/src/cli.js demo ;;
test) exec npm test --silent ;;
*) echo "setup: unknown action '$action' (expected: demo, test)" >&2; exit 2 ;;
esac
