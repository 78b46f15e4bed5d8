#!/usr/bin/env bash
# Before `npm pack`/`npm publish` (package.json "prepack"): builds everything the package ships, for
# every architecture, from this tree, a clean clone included: dist/src, build/bpf/<arch>/tlstap.bpf.o
# prebuilds/linux-<arch>/tlstap.node and agent/build/<machine>/tlstap-agent (package.json "files" lists them). Needs what
# scripts/setup.sh installs (clang, the cross toolchain, the -dev packages of both architectures).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then npm ci --ignore-scripts --no-audit --no-fund; fi
npm run --silent build
bash scripts/build-agent.sh
